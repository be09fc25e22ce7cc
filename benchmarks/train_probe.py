"""Cross-photo top-1 of a checkpoint on a val-shaped subset of its own training people (FACECOM train).

    python benchmarks/train_probe.py CHECKPOINT [--data-root ../shared/data/facecom_task_b]

Next to the same checkpoint's FACECOM val figure it separates "has not learnt faces yet" (both low) from
"has learnt these faces only" (training people high, new people low; lab notes 0.7). The subset is
``recipe_vs_seed.train_probe``: as many multi-photo and single-photo people as val has (seed 0).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
from recipe_vs_seed import score, train_probe


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--data-root", default=common.DEFAULT_DATA_ROOT)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args(argv)

    from facelib import load_checkpoint, scan_folder

    model, spec, _ = load_checkpoint(args.checkpoint)
    root = Path(args.data_root)
    val = scan_folder(root / "val")
    out = {}
    for name, folder in (("val (new people)", val),
                         ("train people (val-shaped subset)", train_probe(scan_folder(root / "train"), val, seed=0))):
        r = score(model, spec, folder, "cpu", args.workers)
        r.pop("es")
        out[name] = r
        lo, hi = r["top1_all_ci"]
        common.log_err(f"{name:34s} top-1 {r['top1_all']:.3f} ({lo:.3f}-{hi:.3f}), "
                       f"{r['n_probes']} probes of {r['n_probe_identities']} people")
    return out


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
