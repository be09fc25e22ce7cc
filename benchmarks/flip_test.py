"""The flip test: checkpoints scored with and without averaging each photo with its mirror image, and pixel
cosine likewise, on FACECOM val (cross-photo, all-images gallery).

    python benchmarks/flip_test.py m/tb_model.pth [more checkpoints] [--data-root ../shared/data/facecom_task_b]
    python benchmarks/flip_test.py --quick      # a tiny checkpoint on synthetic faces (smoke check)

The trained weights are the same in both rows of a checkpoint: only the spec's ``flip_test`` changes
(evaluation runs ``facelib.models.network.FlipTest`` around the net, or the net alone), so the difference is
what the flip test adds to that model. The pixel rows mirror-average the pixel vectors on the checkpoint's own
framing, so the baseline gets the same help.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
from recipe_vs_seed import score

KINDS = ("clean", "blurred", "foggy", "lowlight", "noisy", "rainy", "resized", "sunny")


def mirrored_pixels(paths, face_crop: float, size: int = 32) -> np.ndarray:
    """Pixel embeddings [N, size*size] of the photo plus its mirror image (both unit vectors)."""
    from facelib.evaluation.baselines import pixel_embeddings

    x = pixel_embeddings(list(paths), size=size, face_crop=face_crop)
    return x + x.reshape(-1, size, size)[:, :, ::-1].reshape(len(x), -1)


def quick_checkpoint() -> tuple[list[str], str]:
    """A 32 px ResNet-18 trained for a few steps on 12 synthetic people: ``([checkpoint], data_root)``."""
    from facelib import TrainConfig, make_dataset, train

    root = Path(common.tmp_out("flip-")).parent
    make_dataset(root, identities=12, photos=4, image_size=32, seed=0)
    out = root / "tb_model.pth"
    train(TrainConfig(data=str(root / "train"), backbone="resnet18", image_size=32, pretrained=False, embedding_dim=32,
                      epochs=1, steps_per_epoch=3, p=4, k=2, workers=0, progress=False, out=str(out)),
          log=lambda m: None)
    return [str(out)], str(root)


def row(name: str, flip: bool, top1: float, interval, per_distortion: dict[str, float]) -> list:
    per = {("clean" if k in ("", "clean") else k): v for k, v in per_distortion.items()}
    lo, hi = interval
    return [name, "yes" if flip else "no", f"{top1:.3f}", f"{lo:.3f}-{hi:.3f}"] + [
        f"{per[k]:.3f}" if k in per else "" for k in KINDS]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="*")
    ap.add_argument("--data-root", default=str(common.DEFAULT_DATA_ROOT))
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--json", default="flip_test", help="name of benchmarks/out/<name>.json ('' = none)")
    ap.add_argument("--quick", action="store_true", help="a tiny checkpoint on synthetic faces (smoke check)")
    args = ap.parse_args(argv)
    if args.quick:
        args.checkpoints, args.data_root = quick_checkpoint()
        args.json = args.json and args.json + "_quick"
    elif not args.checkpoints:
        ap.error("give one or more checkpoints, or --quick")

    from facelib import load_checkpoint, scan_folder
    from facelib.evaluation.baselines import pixel_embedding_set
    from facelib.evaluation.protocols import cross_photo_protocol

    val = scan_folder(Path(args.data_root) / "val")
    rows, out, es, crop = [], {}, None, 1.0
    for path in args.checkpoints:
        model, spec, _ = load_checkpoint(path)
        crop = spec.face_crop
        for flip in (False, True):
            r = score(model, replace(spec, flip_test=flip), val, "cpu", args.workers)
            es = r.pop("es")  # score() already ran the cross-photo protocol: its figures are in r
            rows.append(row(path, flip, r["top1_all"], r["top1_all_ci"], r["per_distortion"]))
            out[f"{path} flip={flip}"] = r
            common.log_err(f"{path} flip {flip}: top-1 {r['top1_all']:.3f}")
    for flip in (False, True):
        embed = (lambda paths: mirrored_pixels(paths, crop)) if flip else None
        result = cross_photo_protocol(pixel_embedding_set(es, face_crop=crop, embed=embed), gallery="all")
        rows.append(row(f"pixel cosine, central {crop:.0%}", flip, result.top1, result.top1_interval,
                        result.per_distortion))
        out[f"pixel flip={flip}"] = {"top1_all": float(result.top1), "top1_all_ci": list(result.top1_interval)}
    common.print_header("The flip test (cross-photo, all-images gallery)", common.machine_info("cpu"),
                        {"data": str(Path(args.data_root) / "val")})
    print(common.markdown_table(["embedding", "flip test", "top-1", "95% interval", *KINDS], rows,
                                align="llrr" + "r" * len(KINDS)))
    if args.json:
        common.write_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
