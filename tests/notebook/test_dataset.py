"""facelib.notebook.tables and .dataset: the views of a FACECOM-layout folder used by notebook 01."""

from __future__ import annotations

from facelib import notebook as nb
from facelib.data.folders import scan_folder


def test_table_prints_text_and_html():
    t = nb.Table([["a", 1, 0.5], ["b", 22, float("nan")]], ["name", "n", "x"], title="t")
    assert str(t).splitlines() == ["t", "name   n      x", "----  --  -----", "a      1  0.500", "b     22      -"]
    assert "<caption>t</caption>" in t._repr_html_()


def test_tables_and_dataset_figures(synth_root):
    train, val = scan_folder(synth_root / "train"), scan_folder(synth_root / "val")
    t = nb.split_table({"train": train, "val": val})
    assert t.rows[0][:4] == ["train", 12, 48, 336]
    assert "train/" in nb.folder_tree(synth_root / "train") and "distortion/" in nb.folder_tree(synth_root / "train")
    props = nb.image_properties(train)
    assert sum(r[-1] for r in props.rows) == len(train)
    assert "cross-photo" in nb.identity_overlap(train, val)
    fig = nb.distortion_grid_figure(train, n_photos=2)
    assert len(fig.axes) == 2 * 8
    assert len(nb.photos_per_identity_figure({"train": train, "val": val}).axes) == 2
    batch = nb.pk_batch(train, 4, 3)
    assert len(batch) == 12 and len(set(train.labels[batch])) == 4
    assert len(nb.image_grid_figure(train, [batch[:3], batch[3:6]]).axes) == 6


def test_photos_per_identity_panels_share_their_scales():
    """One split with more than 50 identities puts every panel on log counts, not just its own."""
    from types import SimpleNamespace

    def folder(n_identities, photos):
        return SimpleNamespace(samples=[SimpleNamespace(identity=f"p{i}", is_clean=True)
                                        for i in range(n_identities) for _ in range(photos)])

    fig = nb.photos_per_identity_figure({"train": folder(80, 2), "val": folder(5, 3)})
    assert [ax.get_yscale() for ax in fig.axes] == ["log", "log"]
    assert [ax.get_xscale() for ax in fig.axes] == ["linear", "linear"]
    fig = nb.photos_per_identity_figure({"train": folder(20, 2), "val": folder(5, 60)})
    assert [ax.get_yscale() for ax in fig.axes] == ["linear", "linear"]
    assert [ax.get_xscale() for ax in fig.axes] == ["log", "log"]


def test_framing_figure_shows_the_whole_frame_the_crop_and_the_aligned_face(synth_root):
    """Whole frame and the 55% crop at the input size; with an aligner, photos where it finds a face come first."""
    import numpy as np

    train = scan_folder(synth_root / "train")
    fig = nb.framing_figure(train, 0.55, 16, n_photos=2)
    assert len(fig.axes) == 2 * 2
    whole, crop = (ax.get_images()[0].get_array() for ax in fig.axes[:2])
    assert crop.shape[:2] == (16, 16) and whole.shape[0] > 16       # the crop is resized to the input size

    class FindsEveryOther:                                          # a LandmarkFinder: a face in every other photo
        calls = 0

        def landmarks(self, img):
            FindsEveryOther.calls += 1
            if FindsEveryOther.calls % 2:
                return None
            w, h = img.size
            return np.array([[0.65 * w, 0.4 * h], [0.55 * w, 0.4 * h], [0.35 * w, 0.4 * h], [0.45 * w, 0.4 * h],
                             [0.5 * w, 0.7 * h]])

    fig = nb.framing_figure(train, 0.55, 32, aligner=FindsEveryOther(), n_photos=2)
    labels = [ax.get_xlabel() for ax in fig.axes[2::3]]
    assert len(fig.axes) == 2 * 3 and labels == ["face found", "face found"]
