"""Matching speed: chunked matmul top-k vs FAISS vs per-probe Python loops.

    python benchmarks/match_speed.py            # Q x G in {10k, 100k} x {10k, 100k}
    python benchmarks/match_speed.py --quick    # Q x G in {2k, 10k} x {10k, 100k}

D = 512 random unit vectors, top-5 by cosine. The loops are timed on a subset of probes
and extrapolated linearly to all Q (the table says so). Memory stays bounded: the chunked
matmul holds one [chunk, G] float32 block (4096 x 100k = 1.6 GB), never [Q, G].
Prints a markdown table (machine, date, settings) on stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import cpu_name  # noqa: E402  (also puts the repository on sys.path)
from facelib.metrics import _faiss, cosine_topk  # noqa: E402


def unit_vectors(n: int, d: int, seed: int) -> np.ndarray:
    import torch

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    return torch.nn.functional.normalize(x, dim=1).numpy()


def loop_matvec(q: np.ndarray, g: np.ndarray, k: int) -> np.ndarray:
    """Per probe: one gallery @ probe product and a full argsort (the seed code's shape)."""
    out = np.empty((len(q), k), np.int64)
    for i, v in enumerate(q):
        sims = g @ v
        out[i] = np.argsort(-sims)[:k]
    return out


def loop_pairs(q: np.ndarray, g: np.ndarray, k: int) -> np.ndarray:
    """Per probe, per gallery row: a Python-level dot product, then sort."""
    out = np.empty((len(q), k), np.int64)
    for i, v in enumerate(q):
        sims = [float(np.dot(v, row)) for row in g]
        out[i] = np.argsort(-np.asarray(sims))[:k]
    return out


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux: KiB


def fmt_s(t: float) -> str:
    if t >= 3600:
        return f"{t / 3600:.1f} h"
    if t >= 60:
        return f"{t / 60:.1f} min"
    return f"{t:.2f} s" if t >= 0.1 else f"{t * 1000:.0f} ms"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="Q in {2k, 10k} instead of {10k, 100k}")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--chunk", type=int, default=4096)
    ap.add_argument("--loop-probes", type=int, default=200, help="probes timed for the matvec loop")
    ap.add_argument("--pair-probes", type=int, default=2, help="probes timed for the per-pair loop")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import torch

    qs = (2_000, 10_000) if args.quick else (10_000, 100_000)
    gs = (10_000, 100_000)
    have_faiss = _faiss() is not None
    cosine_topk(unit_vectors(64, args.dim, 9), unit_vectors(256, args.dim, 8), k=args.k)  # warm-up

    rows = []
    for n_g in gs:
        g = unit_vectors(n_g, args.dim, args.seed + 1)
        for n_q in qs:
            q = unit_vectors(n_q, args.dim, args.seed)
            t0 = time.perf_counter()
            s, idx = cosine_topk(q, g, k=args.k, chunk=args.chunk, use_faiss=False)
            t_chunk = time.perf_counter() - t0
            t_faiss = None
            if have_faiss:
                t0 = time.perf_counter()
                cosine_topk(q, g, k=args.k, use_faiss=True)
                t_faiss = time.perf_counter() - t0
            m = min(args.loop_probes, n_q)
            t0 = time.perf_counter()
            ref = loop_matvec(q[:m], g, args.k)
            t_loop = (time.perf_counter() - t0) * n_q / m
            p = min(args.pair_probes, n_q)
            t0 = time.perf_counter()
            ref2 = loop_pairs(q[:p], g, args.k)
            t_pairs = (time.perf_counter() - t0) * n_q / p
            agree = bool(np.array_equal(ref[:, 0], idx[:m, 0]) and np.array_equal(ref2[:, 0], idx[:p, 0]))
            rows.append((n_q, n_g, t_chunk, t_faiss, t_loop, t_pairs, agree, peak_rss_gb()))
            print(f"  done Q={n_q} G={n_g}: chunked {fmt_s(t_chunk)}", file=sys.stderr, flush=True)
            del q, s, idx

    print(f"## Matching speed (top-{args.k} cosine, D={args.dim})\n")
    print(f"- date: {dt.datetime.now().astimezone().isoformat(timespec='minutes')}")
    print(
        f"- machine: {cpu_name()}, {os.cpu_count()} logical CPUs, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), numpy {np.__version__}, Python {platform.python_version()}"
    )
    print(
        f"- settings: random unit vectors (seed {args.seed}), chunk {args.chunk} probes per matmul, "
        f"FAISS {'IndexFlatIP' if have_faiss else 'not installed'}"
    )
    print(
        f"- loops timed on a subset and extrapolated linearly to all Q: matvec loop on "
        f"{args.loop_probes} probes, per-pair loop on {args.pair_probes} probes\n"
    )
    print("| Q | G | chunked matmul + topk (cosine_topk) | FAISS IndexFlatIP | per-probe loop: `G @ q` + argsort (extrap.) "
          "| per-pair Python loop (extrap.) | speed-up vs per-probe loop | top-1 agrees | peak RSS |")
    print("|---:|---:|---:|---:|---:|---:|---:|:---:|---:|")
    for n_q, n_g, tc, tf, tl, tp, agree, rss in rows:
        print(
            f"| {n_q:,} | {n_g:,} | {fmt_s(tc)} | {fmt_s(tf) if tf is not None else 'n/a'} | {fmt_s(tl)} "
            f"| {fmt_s(tp)} | {tl / tc:.0f}x | {'yes' if agree else 'NO'} | {rss:.1f} GB |"
        )


if __name__ == "__main__":
    main()
