"""A real peer: dlib's pretrained ResNet face descriptor (the `face_recognition` package), scored with
facelib's own protocols on the same probes as facelib's models and the pixel baseline.

    pip install -e ".[peers]"            # dlib-bin + face-recognition-models (the model files ship inside)
    python benchmarks/peer_face_recognition.py                        # FACECOM val, ~10 min on 2 CPUs
    python benchmarks/peer_face_recognition.py --limit-identities 20  # a quick look
    python benchmarks/peer_face_recognition.py --quick                # synthetic faces, smoke check
    python benchmarks/peer_face_recognition.py --variants plain median  # + the restoration front-end row
    python benchmarks/peer_face_recognition.py --variants plain student # + dlib given the student's pixels

What it computes is ``face_recognition.face_encodings(img, known_face_locations=[box], num_jitters=1,
model="small")``: dlib's HOG frontal-face detector (upsampled once, as ``face_locations`` does by
default; the largest box is kept), the 5-point shape predictor, and the 128-d ResNet descriptor
(``dlib.face_recognition_model_v1.compute_face_descriptor``), called directly so that nothing but
dlib and the model files is needed. Where the detector finds no face, the whole image is the box;
both counts are reported. The ``median`` variant is a restoration front-end: facelib's 3x3 median filter
(``facelib.data.framing.Restore``) before detection and description, and where no face is found the fixed central
box of FACECOM's framing (the central 55% of the side) instead of the whole image. The ``student`` variant gives
dlib no more pixels than the 64 px student gets: each photo is shrunk so that the central 55% of its side is 64 px
(antialiased bilinear), then enlarged back (bicubic), before detection and description. Descriptors are L2-normalised
and scored by cosine, as facelib scores its own embeddings: cross-photo (primary; galleries of all images and of
identity means), the gallery protocol (a distorted copy against the clean originals), verification, and top-1 per
distortion kind.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

MODEL_FILES = {"shape": "shape_predictor_5_face_landmarks.dat",
               "descriptor": "dlib_face_recognition_resnet_model_v1.dat"}


def model_paths() -> dict[str, Path]:
    """The model files inside the `face_recognition_models` package (:func:`facelib.data.align.model_file`)."""
    from facelib.data.align import model_file
    from facelib.errors import FacelibError

    try:
        return {k: model_file(v) for k, v in MODEL_FILES.items()}
    except FacelibError:
        raise SystemExit('face-recognition-models is not installed: pip install -e ".[peers]"') from None


class DlibDescriptor:
    """HOG detector + 5-point landmarks + ResNet descriptor: RGB uint8 [H, W, 3] -> ([128], face found)."""

    def __init__(self, upsample: int = 1, restore: str = "none", fallback: str = "whole", face_px: int | None = None):
        try:
            import dlib
        except ImportError:
            raise SystemExit('dlib is not installed: pip install -e ".[peers]"') from None
        paths = model_paths()
        self.dlib = dlib
        self.upsample = upsample
        self.restore, self.fallback, self.face_px = restore, fallback, face_px
        self.detector = dlib.get_frontal_face_detector()
        self.shape = dlib.shape_predictor(str(paths["shape"]))
        self.net = dlib.face_recognition_model_v1(str(paths["descriptor"]))

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, bool]:
        if self.face_px:
            rgb = at_student_resolution(rgb, self.face_px)
        if self.restore != "none":
            from PIL import Image

            from facelib.data.framing import Restore

            rgb = np.asarray(Restore(self.restore)(Image.fromarray(rgb)))
        boxes = self.detector(rgb, self.upsample)
        if len(boxes):
            box = max(boxes, key=lambda r: r.width() * r.height())
        elif self.fallback == "centre":
            from facelib.config import DEFAULT_FACE_CROP
            from facelib.data.framing import face_crop_box

            left, top, right, bottom = face_crop_box(rgb.shape[1], rgb.shape[0], DEFAULT_FACE_CROP)
            box = self.dlib.rectangle(left, top, right - 1, bottom - 1)
        else:
            box = self.dlib.rectangle(0, 0, rgb.shape[1] - 1, rgb.shape[0] - 1)
        desc = self.net.compute_face_descriptor(rgb, self.shape(rgb, box), 1)
        return np.asarray(desc, dtype=np.float32), bool(len(boxes))


def at_student_resolution(rgb: np.ndarray, face_px: int) -> np.ndarray:
    """[H, W, 3] uint8 -> the same size, holding only the detail of a copy whose face crop (the central
    ``DEFAULT_FACE_CROP`` of the shorter side) is ``face_px`` pixels: :func:`facelib.data.distortions.shrink`, the
    resampling of facelib's ``resized`` distortion."""
    from PIL import Image

    from facelib.config import DEFAULT_FACE_CROP
    from facelib.data.distortions import shrink

    factor = DEFAULT_FACE_CROP * min(rgb.shape[:2]) / face_px
    return rgb if factor <= 1 else np.asarray(shrink(Image.fromarray(rgb), factor))


VARIANTS = {"plain": dict(restore="none", fallback="whole"), "median": dict(restore="median", fallback="centre"),
            "student": dict(restore="none", fallback="whole", face_px=64)}


def embed_folder_dlib(folder, log=common.log_err, variant: str = "plain") -> tuple[Any, np.ndarray]:
    """Descriptors of every sample of a scanned folder: (EmbeddingSet, found [N] bool). ``variant``: a key of
    :data:`VARIANTS` (``median``: the restoration front-end; ``student``: the student's 64 px of detail)."""
    from facelib.data.folders import load_image
    from facelib.evaluation.embedding_set import EmbeddingSet
    from facelib.evaluation.metrics import l2_normalize

    net = DlibDescriptor(**VARIANTS[variant])
    out = np.zeros((len(folder.samples), 128), np.float32)
    found = np.zeros(len(folder.samples), bool)
    t0 = time.perf_counter()
    for i, s in enumerate(folder.samples):
        out[i], found[i] = net(np.asarray(load_image(s.path)))
        if (i + 1) % 500 == 0:
            log(f"  {i + 1}/{len(folder.samples)} images, {(i + 1) / (time.perf_counter() - t0):.1f} img/s")
    return EmbeddingSet.from_samples(l2_normalize(out), folder.samples), found


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--data-root", default=None, help=f"FACECOM Task B root (default {common.DEFAULT_DATA_ROOT})")
    ap.add_argument("--limit-identities", type=int, default=None, help="only the first N val identities")
    ap.add_argument("--quick", action="store_true", help="synthetic faces instead of FACECOM (smoke check)")
    ap.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=["plain"],
                    help="plain dlib, and/or median: a 3x3 median filter first, the central box where no face is "
                         "found, and/or student: the photo shrunk to the 64 px student's detail and back")
    ap.add_argument("--save-embeddings", default=None, metavar="NPZ", help="keep the descriptors (EmbeddingSet)")
    ap.add_argument("--json", default="peer_face_recognition", help="benchmarks/out/<name>.json ('' = none)")
    args = ap.parse_args(argv)

    from facelib.data.folders import scan_folder
    from facelib.evaluation.baselines import pixel_baseline
    from facelib.evaluation.protocols import run_protocol

    if args.quick:
        from facelib.data.synthetic import make_dataset

        root = common.scratch_dir("facelib-peer-")
        make_dataset(root, identities=12, photos=3, image_size=112, seed=0)
    else:
        root = common.resolve_data_root(args.data_root)
    val = scan_folder(root / "val")
    if args.limit_identities:
        keep = set(val.identities[: args.limit_identities])
        val = val.select(lambda s: s.identity in keep)
    info = common.machine_info("cpu")
    t0 = time.perf_counter()
    sets, founds = {}, {}
    for variant in args.variants:
        sets[variant], founds[variant] = embed_folder_dlib(val, variant=variant)
    seconds = time.perf_counter() - t0
    es, found = sets[args.variants[0]], founds[args.variants[0]]
    if args.save_embeddings:
        es.to_npz(args.save_embeddings)

    rows: dict[str, dict[str, Any]] = {}
    names = {"plain": "dlib ResNet descriptor (face_recognition)",
             "median": "dlib + 3x3 median filter (central box where no face)",
             "student": "dlib given the student's pixels (face crop at 64 px, enlarged back)"}
    runners: dict[str, Any] = {names[v]: (lambda name, e=e, **kw: run_protocol(name, e, **kw)) for v, e in sets.items()}
    runners["pixel cosine 32x32 gray"] = lambda name, **kw: pixel_baseline(name, es, **kw)
    for label, run in runners.items():
        c_all, c_mean = (run("cross-photo", gallery=g) for g in ("all", "mean"))
        g_all, g_mean = (run("gallery", gallery=g) for g in ("all", "mean"))
        v = run("verification")
        rows[label] = dict(cross_all=c_all.top1, cross_mean=c_mean.top1, gallery_all=g_all.top1,
                           gallery_mean=g_mean.top1, per_distortion=c_all.per_distortion, n_probes=c_all.n_probes,
                           auc=v.roc_auc, eer=v.eer, tar_1e2=v.tar_at_far.get(1e-2, float("nan")))

    kinds = sorted({s.distortion or "clean" for s in val.samples})
    per_kind_found = {v: {k: float(np.mean([f for f, s in zip(fd, val.samples) if (s.distortion or "clean") == k]))
                          for k in kinds} for v, fd in founds.items()}
    settings = dict(data=str(root / "val"), images=len(es), identities=len(val.identities),
                    face_found=int(found.sum()), whole_image=int((~found).sum()),
                    seconds=round(seconds, 1), img_per_s=round(len(es) * len(sets) / seconds, 2),
                    detector="dlib HOG frontal, upsample 1, largest box; whole image where none",
                    descriptor="dlib_face_recognition_resnet_model_v1, 5-point landmarks, 1 jitter")
    common.print_header("Peer: dlib's ResNet face descriptor through facelib's protocols", info, settings)
    print(common.markdown_table(
        ["embedding", "cross-photo top-1 (all)", "cross-photo top-1 (mean)", "gallery top-1 (all)",
         "gallery top-1 (mean)", "verification AUC", "EER", "TAR@FAR=1e-2"],
        [[n, f"{r['cross_all']:.3f}", f"{r['cross_mean']:.3f}", f"{r['gallery_all']:.3f}",
          f"{r['gallery_mean']:.3f}", f"{r['auc']:.3f}", f"{r['eer']:.3f}", f"{r['tar_1e2']:.3f}"]
         for n, r in rows.items()]))
    print("\nCross-photo top-1 (all-images gallery) per probe kind, and how often dlib found a face:\n")
    pk = sorted({k for r in rows.values() for k in r["per_distortion"]})
    table = [[n] + [f"{r['per_distortion'].get(k, float('nan')):.3f}" for k in pk] for n, r in rows.items()]
    for v, pf in per_kind_found.items():
        table.append([f"face found (dlib HOG, {v})"] + [f"{pf.get(k, float('nan')):.2f}" for k in pk])
    print(common.markdown_table(["embedding"] + pk, table))
    print()
    if args.json:
        path = common.write_json(args.json + ("_quick" if args.quick else ""),
                                 dict(machine=info, settings=settings, results=rows, face_found=per_kind_found))
        common.log_err(f"wrote {path}")


if __name__ == "__main__":
    main()
