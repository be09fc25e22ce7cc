"""Inference speed on CPU: torch eager vs the exported ONNX graph in onnxruntime.

    python benchmarks/export_speed.py                        # resnet18 + resnet50, 64 and 224 px, batch 32
    python benchmarks/export_speed.py --quick                # resnet18 at 64 px, 1 run: checks the script

Random-init embedders (512-d), exported with ``facelib.recognition.export.export_onnx`` (normalisation inside the
graph), fed the same random [0, 1] batch. Times are the median of ``--reps`` runs after one warm-up,
with the same thread count for both. Prints a markdown table (machine, date, settings) on stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import cpu_name  # also puts the repository on sys.path


def median_time(fn, reps: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbones", nargs="+", default=["resnet18", "resnet50"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[64, 224])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--quick", action="store_true", help="resnet18 at 64 px, batch 8, 1 run")
    args = ap.parse_args(argv)
    if args.quick:
        args.backbones, args.sizes, args.batch, args.reps = ["resnet18"], [64], 8, 1

    import onnxruntime as ort
    import torch

    from facelib.models.network import EmbeddingNet, ModelSpec
    from facelib.recognition.export import export_onnx, normalized_embedder

    torch.set_num_threads(args.threads)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for backbone in args.backbones:
            torch.manual_seed(0)
            model = EmbeddingNet(backbone, 512).eval()
            for size in args.sizes:
                spec = ModelSpec(backbone=backbone, embedding_dim=512, image_size=size)
                path = Path(tmp) / f"{backbone}_{size}.onnx"
                t0 = time.perf_counter()
                export_onnx(model, spec, path)
                t_export = time.perf_counter() - t0
                x = np.random.default_rng(0).random((args.batch, 3, size, size), dtype=np.float32)
                wrapped = normalized_embedder(model, spec)
                xt = torch.from_numpy(x)
                with torch.inference_mode():
                    ref = wrapped(xt).numpy()
                    t_torch = median_time(partial(wrapped, xt), args.reps)
                sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
                got = sess.run(["embeddings"], {"images": x})[0]
                t_ort = median_time(partial(sess.run, ["embeddings"], {"images": x}), args.reps)
                cos = float(np.einsum("ij,ij->i", got, ref).min())
                rows.append((backbone, size, t_torch, t_ort, cos, t_export, path.stat().st_size / 2**20))
                print(f"  {backbone} {size}px: torch {t_torch:.3f} s, onnxruntime {t_ort:.3f} s",
                      file=sys.stderr, flush=True)

    print("## Export: torch eager vs onnxruntime (CPU)\n")
    print(f"- date: {dt.datetime.now().astimezone().isoformat(timespec='minutes')}")
    print(f"- machine: {cpu_name()}, {os.cpu_count()} logical CPUs, {args.threads} threads for both; torch "
          f"{torch.__version__}, onnxruntime {ort.__version__}, Python {platform.python_version()}")
    print(f"- settings: random-init {', '.join(args.backbones)} + 512-d head, batch {args.batch} of random [0, 1] "
          f"images, median of {args.reps} runs after 1 warm-up; ONNX from `facelib.recognition.export.export_onnx` "
          "(torch.export-based exporter, opset 18)\n")
    print("| backbone | px | torch eager (s / batch) | onnxruntime (s / batch) | torch img/s | onnxruntime img/s "
          "| ORT speed-up | min cosine ORT vs torch | export time | .onnx size |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for backbone, size, tt, to, cos, te, mb in rows:
        print(f"| {backbone} | {size} | {tt:.3f} | {to:.3f} | {args.batch / tt:.0f} | {args.batch / to:.0f} "
              f"| {tt / to:.2f}x | {cos:.6f} | {te:.0f} s | {mb:.0f} MiB |")


if __name__ == "__main__":
    main()
