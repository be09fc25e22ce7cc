"""Pixel cosine on FACECOM val at several face crops: how much of the frame is face.

    python benchmarks/face_crop.py [--data-root ROOT] [--crops 1 0.7 0.55 0.45]

Scores the cross-photo protocol (a probe never meets its own photo; gallery of all images, the primary
figure, with its 95% interval) with 32x32 grey pixel embeddings of the central crop of each image, the
framing ``facelib.data.framing.FaceCrop`` gives a model. Trained models at each crop: ``recipe_vs_seed.py
--recipes default,face_crop=1 default,face_crop=0.7 ...``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=None, help=f"FACECOM Task B root (default {common.DEFAULT_DATA_ROOT})")
    ap.add_argument("--crops", type=float, nargs="+", default=[1.0, 0.7, 0.55, 0.45])
    ap.add_argument("--json", default="face_crop_pixels")
    args = ap.parse_args(argv)

    import numpy as np

    from facelib.data.folders import scan_folder
    from facelib.evaluation.baselines import pixel_baseline
    from facelib.evaluation.embedding_set import EmbeddingSet

    root = common.resolve_data_root(args.data_root)
    val = scan_folder(root / "val")
    es = EmbeddingSet.from_samples(np.zeros((len(val), 1), np.float32), val.samples)  # metadata only
    rows, payload = [], {}
    for crop in args.crops:
        r = {g: pixel_baseline("cross-photo", es, gallery=g, face_crop=crop) for g in ("all", "mean")}
        lo, hi = r["all"].top1_interval
        payload[str(crop)] = dict(top1_all=float(r["all"].top1), top1_all_ci=[lo, hi], top1_mean=float(r["mean"].top1),
                                  per_distortion=r["all"].per_distortion, n_probes=int(r["all"].n_probes))
        rows.append([f"{crop:g}", f"{r['all'].top1:.3f}", f"{lo:.3f}-{hi:.3f}", f"{r['mean'].top1:.3f}",
                     r["all"].n_probes])
    common.print_header("Pixel cosine by face crop", common.machine_info("cpu"), dict(data=str(root / "val")))
    print(common.markdown_table(["face crop (of the side)", "top-1 (all)", "95% interval", "top-1 (mean)", "probes"],
                                rows))
    if args.json:
        common.log_err(f"wrote {common.write_json(args.json, payload)}")


if __name__ == "__main__":
    main()
