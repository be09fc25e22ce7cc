"""The teacher pass: a teacher's embedding of every clean photo of the training sources, timed, with the faces
found per source, then the same call again (it must come from the cache).

    python benchmarks/teacher_pass.py --data ../shared/data/facecom_task_b/train \\
        --data ../shared/data/extra_faces/lfw --data celeba_aligned            # dlib, one process per core
    python benchmarks/teacher_pass.py --quick                                  # synthetic faces

Through the public API: :func:`facelib.training.teachers.teacher_embeddings` (what ``facelib train --teacher``
calls). The cache is the default one (``$FACELIB_CACHE`` or ``~/.cache/facelib``) unless ``--cache`` is given.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", action="append", default=[], help="a training source (repeat)")
    ap.add_argument("--teacher", default="dlib")
    ap.add_argument("--cache", default=None, help="cache root (default: facelib's)")
    ap.add_argument("--workers", type=int, default=None, help="processes (default: one per core)")
    ap.add_argument("--quick", action="store_true", help="synthetic faces in a temporary folder and cache")
    ap.add_argument("--json", default="teacher_pass")
    args = ap.parse_args(argv)

    from facelib.data.folders import scan_sources
    from facelib.training.teachers import teacher_embeddings

    if args.quick:
        from facelib.data.synthetic import make_dataset

        tmp = common.scratch_dir("facelib-teacher-")
        make_dataset(tmp / "d", identities=6, photos=3, image_size=112, seed=0)
        args.data, args.cache = [str(tmp / "d" / "train")], str(tmp / "cache")
    if not args.data:
        raise SystemExit("give --data (one or more training sources) or --quick")
    folder = scan_sources(args.data if len(args.data) > 1 else args.data[0], include_distortions=False)
    clean = [s for s in folder.samples if s.is_clean]
    info = common.machine_info("cpu")
    first = teacher_embeddings([s.path for s in clean], args.teacher, cache_root=args.cache, workers=args.workers)
    t0 = time.perf_counter()
    second = teacher_embeddings([s.path for s in clean], args.teacher, cache_root=args.cache, workers=args.workers,
                                progress=False)
    again = time.perf_counter() - t0
    source = [s.identity.split("/")[0] if len(args.data) > 1 else Path(args.data[0]).name for s in clean]
    n, found = Counter(source), Counter(src for src, f in zip(source, first.found) if f)
    settings = dict(teacher=first.teacher, photos=len(clean), computed=first.computed, reused=first.reused,
                    seconds=round(first.seconds, 1), photos_per_s=round(first.computed / max(first.seconds, 1e-9), 2),
                    second_call_s=round(again, 2), second_call_computed=second.computed,
                    unreadable=len(first.unreadable), cache=first.cache)
    common.print_header("The teacher pass", info, settings)
    print(common.markdown_table(["source", "clean photos", "face found", "fallback box"],
                                [[k, n[k], f"{found[k] / n[k]:.3f}", n[k] - found[k]] for k in sorted(n)]))
    print(first.summary())
    if args.json and not args.quick:
        path = common.write_json(args.json, dict(machine=info, settings=settings,
                                                 found={k: found[k] / n[k] for k in n}))
        common.log_err(f"wrote {path}")


if __name__ == "__main__":
    main()
