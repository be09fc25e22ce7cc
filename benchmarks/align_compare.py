"""Face detectors for `facelib align` (dlib HOG and CNN): detection rate and images/s, per data set and per
FACECOM distortion kind; and `--template`, which re-measures the alignment template (facelib.data.align.TEMPLATE).

    pip install -e ".[align]"
    nice -n 10 python benchmarks/align_compare.py --quick                     # synthetic faces, smoke check
    nice -n 10 python benchmarks/align_compare.py                 # hog on 200 images per set, cnn on 10 of them
    nice -n 10 python benchmarks/align_compare.py --detectors cnn --n 30 --n-cnn 30   # CNN on CPU: ~1 img/s
    nice -n 10 python benchmarks/align_compare.py --detectors cnn --sets distorted --kinds noisy rainy sunny \
        --n 40 --n-cnn 40                                           # cnn on the hard kinds, 40 images each
    nice -n 10 python benchmarks/align_compare.py --template --n 600          # the TEMPLATE constants

Sets (N images each, sampled with --seed from the sorted file list; cnn takes the first --n-cnn of them):
`celeba` and `lfw` (../shared/data/extra_faces), `facecom` (FACECOM val clean photos) and `facecom:<kind>`
(FACECOM val distorted copies of one kind, detected directly on the distorted image). The rate is the
fraction of images where `Aligner.landmarks` returns a face; images/s times detection + landmarks only
(images decoded before).

`--template`: the median positions, as fractions of the side (continuous coordinates), of the two eye
centres and the nose landmark over N LFW-derived FACECOM train clean photos (`_frontal` identities left
out, at most 2 photos per identity), with their interquartile ranges; then the same for the `_frontal`
photos and for extra_faces/lfw, for comparison.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

EXTRA_ROOT = common.REPO.parent / "shared" / "data" / "extra_faces"


def sample_files(files: list[Path], n: int, seed: int) -> list[Path]:
    """``n`` of ``files`` in random order (so any prefix, e.g. cnn's ``--n-cnn``, is a random sample too)."""
    files = sorted(files)
    return [files[i] for i in np.random.default_rng(seed).permutation(len(files))[:n]]


def build_sets(args) -> dict[str, list[Path]]:
    from facelib.data.folders import DISTORTION_KINDS, scan_folder

    sets: dict[str, list[Path]] = {}
    if args.quick:
        from facelib.data.synthetic import make_dataset

        root = common.scratch_dir("facelib-align-bench-")
        make_dataset(root, identities=4, photos=2, image_size=112, seed=0)
        val = scan_folder(root / "val")
        sets["synthetic"] = sample_files([s.path for s in val.samples if s.is_clean], args.n, args.seed)
        return sets
    for name in ("celeba", "lfw"):
        if (EXTRA_ROOT / name).is_dir() and name in args.sets:
            sets[name] = sample_files(list((EXTRA_ROOT / name).glob("*/*.jpg")), args.n, args.seed)
    val = scan_folder(common.resolve_data_root(args.data_root) / "val", verify=False)
    if "facecom" in args.sets:
        sets["facecom"] = sample_files([s.path for s in val.samples if s.is_clean], args.n, args.seed)
    if "distorted" in args.sets:
        for kind in args.kinds or DISTORTION_KINDS:
            sets[f"facecom:{kind}"] = sample_files([s.path for s in val.samples if s.distortion == kind],
                                                   args.n, args.seed)
    return sets


def measure(aligner, images) -> tuple[float, float]:
    """(detection rate, images/s) of ``aligner.landmarks`` over decoded images."""
    t0 = time.perf_counter()
    found = sum(aligner.landmarks(im) is not None for im in images)
    return found / max(len(images), 1), len(images) / (time.perf_counter() - t0)


def compare(args) -> None:
    from facelib.data.align import Aligner
    from facelib.data.folders import load_image

    sets = build_sets(args)
    info = common.machine_info("cpu")
    common.print_header("Face detection for facelib align", info,
                        {"images per set": args.n, "cnn images per set": args.n_cnn,
                         "detectors": ", ".join(args.detectors), "seed": args.seed, "upsample": args.upsample,
                         "load before": common.loadavg()})
    rows, payload = [], {"info": info, "settings": vars(args), "results": {}}
    decoded = {name: [load_image(p) for p in paths] for name, paths in sets.items()}
    for name, images in decoded.items():
        sizes = sorted({im.size for im in images})
        row = [name, len(images), "x".join(map(str, sizes[0])) + ("+" if len(sizes) > 1 else "")]
        for det in args.detectors:
            aligner = Aligner(det, upsample=None if args.upsample == "auto" else int(args.upsample))
            rate, speed = measure(aligner, images[: args.n_cnn] if det == "cnn" else images)
            common.log_err(f"  {name} {det}: {rate:.1%} found, {speed:.1f} img/s")
            row += [f"{rate:.1%}", f"{speed:.1f}"]
            n = min(len(images), args.n_cnn) if det == "cnn" else len(images)
            payload["results"][f"{name}/{det}"] = {"rate": rate, "images_per_s": speed, "n": n}
        rows.append(row)
    if "cnn" in args.detectors and args.n_cnn < args.n:
        print(f"cnn: the first {args.n_cnn} images of each set's (shuffled) sample\n")
    headers = ["set", "images", "size"] + [h for d in args.detectors for h in (f"{d} found", f"{d} img/s")]
    print(common.markdown_table(headers, rows, "lrl" + "r" * (2 * len(args.detectors))))
    print(f"\nload after: {common.loadavg()}")
    if args.json:
        common.log_err(f"wrote {common.write_json(args.json, payload)}")


def template(args) -> None:
    from facelib.data.align import TEMPLATE, Aligner, key_points
    from facelib.data.folders import load_image

    aligner = Aligner("hog", upsample=None if args.upsample == "auto" else int(args.upsample))
    root = common.resolve_data_root(args.data_root) / "train"
    rng = np.random.default_rng(args.seed)
    lfw, frontal = [], []
    for ident in sorted(p for p in root.iterdir() if p.is_dir()):
        photos = sorted(ident.glob("*.jpg"))
        pick = [photos[i] for i in sorted(rng.choice(len(photos), min(2, len(photos)), replace=False))]
        (frontal if ident.name.endswith("_frontal") else lfw).extend(pick)
    groups = {"FACECOM train, LFW-derived": sample_files(lfw, args.n, args.seed),
              "FACECOM train, _frontal": sample_files(frontal, args.n, args.seed)}
    if (EXTRA_ROOT / "lfw").is_dir():
        groups["extra_faces/lfw"] = sample_files(list((EXTRA_ROOT / "lfw").glob("*/*.jpg")), args.n, args.seed)
    names = ("left eye x", "left eye y", "right eye x", "right eye y", "nose x", "nose y")
    rows, first = [], None
    for label, paths in groups.items():
        pts = []
        for p in paths:
            im = load_image(p)
            lm = aligner.landmarks(im)
            if lm is not None:
                pts.append(key_points(lm).ravel() / np.array([im.width, im.height] * 3))
        pts = np.array(pts)
        med, q1, q3 = np.median(pts, 0), *np.percentile(pts, [25, 75], axis=0)
        first = med if first is None else first
        cells = [f"{m:.4f} ({a:.3f}-{b:.3f})" for m, a, b in zip(med, q1, q3, strict=True)]
        rows.append([label, f"{len(pts)}/{len(paths)}", *cells])
    print(common.markdown_table(["photos", "found"] + list(names), rows))
    print("\nTEMPLATE = np.array([[{:.4f}, {:.4f}],   # image-left eye\n"
          "                     [{:.4f}, {:.4f}],   # image-right eye\n"
          "                     [{:.4f}, {:.4f}]])  # nose".format(*first))
    print(f"current facelib.data.align.TEMPLATE: {TEMPLATE.ravel().round(4).tolist()}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--detectors", nargs="+", default=["hog", "cnn"], choices=["hog", "cnn"])
    ap.add_argument("--sets", nargs="+", default=["celeba", "lfw", "facecom", "distorted"],
                    choices=["celeba", "lfw", "facecom", "distorted"])
    ap.add_argument("--kinds", nargs="+", default=None, metavar="KIND",
                    help="distortion kinds of the `distorted` set (default: all seven)")
    ap.add_argument("--n", type=int, default=200, help="images per set (default: %(default)s)")
    ap.add_argument("--n-cnn", type=int, default=10,
                    help="images per set for cnn, a random subset of the --n sample (default: %(default)s; ~1 img/s)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--upsample", default="auto", help="auto (facelib's default), 0, 1 or 2")
    ap.add_argument("--data-root", default=None, help=f"FACECOM Task B root (default {common.DEFAULT_DATA_ROOT})")
    ap.add_argument("--template", action="store_true", help="re-measure facelib.data.align.TEMPLATE instead")
    ap.add_argument("--quick", action="store_true", help="synthetic faces instead of real data (smoke check)")
    ap.add_argument("--json", default="align_compare", help="benchmarks/out/<name>.json ('' = none)")
    args = ap.parse_args(argv)
    template(args) if args.template else compare(args)


if __name__ == "__main__":
    main()
