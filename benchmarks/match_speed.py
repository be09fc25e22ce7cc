"""Matching speed of ``facelib.evaluation.retrieval.topk`` (torch and FAISS backends, with and without the
own-photo mask) vs per-probe Python loops.

    python benchmarks/match_speed.py                      # Q x G in {10k, 100k} x {10k, 100k}
    python benchmarks/match_speed.py --quick              # Q x G in {2k, 10k} x {10k, 100k}
    python benchmarks/match_speed.py --sizes 10000x10000 100000x10000

D = 512 random unit vectors, top-5 by cosine. "masked" = every query and gallery row belongs to
a group of 5 rows (a photo and its copies) and a query never matches its own group, as in the
cross-photo protocol. The loops are timed on a subset of probes and extrapolated linearly to all Q
(the table says so). Memory stays bounded: the torch backend holds one [chunk, G] float32 block
(4096 x 100k = 1.6 GB), never [Q, G]. Prints a markdown table (machine, date, settings) on stdout.
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

from common import cpu_name  # also puts the repository on sys.path

from facelib.evaluation.retrieval import faiss_available, topk


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
    ap.add_argument("--sizes", nargs="+", default=None, metavar="QxG", help="explicit Q x G pairs, e.g. 10000x10000")
    args = ap.parse_args(argv)

    import torch

    qs = (2_000, 10_000) if args.quick else (10_000, 100_000)
    sizes = [(q, g) for g in (10_000, 100_000) for q in qs]
    if args.sizes:
        sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes]
    have_faiss = faiss_available()
    topk(unit_vectors(64, args.dim, 9), unit_vectors(256, args.dim, 8), k=args.k, backend="torch")  # warm-up

    def timed(q, g, backend, masked):
        kw = dict(query_groups=np.arange(len(q)) // 5, gallery_groups=np.arange(len(g)) // 5) if masked else {}
        t0 = time.perf_counter()
        out = topk(q, g, k=args.k, chunk=args.chunk, backend=backend, **kw)
        return time.perf_counter() - t0, out

    rows = []
    for n_q, n_g in sizes:
        g = unit_vectors(n_g, args.dim, args.seed + 1)
        q = unit_vectors(n_q, args.dim, args.seed)
        t_chunk, (s, idx) = timed(q, g, "torch", False)
        t_chunk_m, (_, idx_m) = timed(q, g, "torch", True)
        t_faiss = t_faiss_m = None
        if have_faiss:
            t_faiss, (_, idx_f) = timed(q, g, "faiss", False)
            t_faiss_m, (_, idx_fm) = timed(q, g, "faiss", True)
            faiss_agree = float(np.mean(idx_f[:, 0] == idx[:, 0])), float(np.mean(idx_fm[:, 0] == idx_m[:, 0]))
        m = min(args.loop_probes, n_q)
        t0 = time.perf_counter()
        ref = loop_matvec(q[:m], g, args.k)
        t_loop = (time.perf_counter() - t0) * n_q / m
        p = min(args.pair_probes, n_q)
        t0 = time.perf_counter()
        ref2 = loop_pairs(q[:p], g, args.k)
        t_pairs = (time.perf_counter() - t0) * n_q / p
        agree = bool(np.array_equal(ref[:, 0], idx[:m, 0]) and np.array_equal(ref2[:, 0], idx[:p, 0]))
        fa = f"{faiss_agree[0]:.4f} / {faiss_agree[1]:.4f}" if have_faiss else "n/a"
        rows.append((n_q, n_g, t_chunk, t_chunk_m, t_faiss, t_faiss_m, t_loop, t_pairs, agree, fa, peak_rss_gb()))
        print(f"  done Q={n_q} G={n_g}: torch {fmt_s(t_chunk)}"
              + (f", faiss {fmt_s(t_faiss)}" if t_faiss is not None else ""), file=sys.stderr, flush=True)
        del q, s, idx

    print(f"## Matching speed: facelib.evaluation.retrieval.topk (top-{args.k} cosine, D={args.dim})\n")
    print(f"- date: {dt.datetime.now().astimezone().isoformat(timespec='minutes')}")
    print(
        f"- machine: {cpu_name()}, {os.cpu_count()} logical CPUs, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), numpy {np.__version__}, Python {platform.python_version()}"
    )
    print(
        f"- settings: random unit vectors (seed {args.seed}), chunk {args.chunk} probes per matmul, "
        f"FAISS {'IndexFlatIP ' + __import__('faiss').__version__ if have_faiss else 'not installed'}, "
        "masked = own group of 5 rows excluded"
    )
    print(
        f"- loops timed on a subset and extrapolated linearly to all Q: matvec loop on "
        f"{args.loop_probes} probes, per-pair loop on {args.pair_probes} probes\n"
    )
    print("| Q | G | torch | torch, masked | FAISS | FAISS, masked | per-probe loop: `G @ q` + argsort (extrap.) "
          "| per-pair Python loop (extrap.) | torch vs per-probe loop | loops' top-1 agrees | FAISS top-1 = torch "
          "(plain / masked) | peak RSS |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|:---:|---:|")
    na = "n/a"
    for n_q, n_g, tc, tcm, tf, tfm, tl, tp, agree, fa, rss in rows:
        print(
            f"| {n_q:,} | {n_g:,} | {fmt_s(tc)} | {fmt_s(tcm)} | {fmt_s(tf) if tf is not None else na} "
            f"| {fmt_s(tfm) if tfm is not None else na} | {fmt_s(tl)} "
            f"| {fmt_s(tp)} | {tl / tc:.0f}x | {'yes' if agree else 'NO'} | {fa} | {rss:.1f} GB |"
        )


if __name__ == "__main__":
    main()
