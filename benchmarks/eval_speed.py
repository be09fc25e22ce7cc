"""Embedding-extraction speed: ``facelib.evaluation.extract.embed_images`` vs the raw model forward.

    python benchmarks/eval_speed.py --quick                                     # smoke check, synthetic faces
    python benchmarks/eval_speed.py --backbone resnet50 --image-size 64 224 --images 512   # CPU
    python benchmarks/eval_speed.py --backbone resnet50 --image-size 224 --images 4096 \
        --batch-size 256 --workers 12 --device cuda                             # GPU
    python benchmarks/eval_speed.py ... --with-matching                         # + benchmarks/match_speed.py --quick

Three rates per (backbone, image size), in images per second:

- embed_images: real JPEGs (a seeded sample of ``<data-root>/val``, clean and distorted)
  through the eval transform, a DataLoader with ``--workers`` workers, ``inference_mode``,
  autocast on CUDA, L2-normalisation and the copy back to numpy. This is what
  ``facelib test`` / ``facelib embed`` run.
- raw forward: the same model on pre-made tensors already on the device, same batch size,
  same precision and memory format: the ceiling. Goal: embed_images >= 90% of it.
- loader only: the same DataLoader with no model: the input pipeline's ceiling.

One untimed warm-up pass precedes each timing; CUDA timings synchronise before reading the
clock. Weights are random (speed does not depend on them). The matching step (top-k over
a gallery) is benchmarked by ``benchmarks/match_speed.py``; ``--with-matching`` runs its
``--quick`` table after this one.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def sample_paths(root: Path, n: int, seed: int) -> list[Path]:
    from facelib.data.folders import scan_folder

    folder = scan_folder(root, verify=False)
    paths = folder.paths
    idx = np.random.default_rng(seed).choice(len(paths), size=min(n, len(paths)), replace=False)
    return [paths[i] for i in sorted(idx)]


def time_embed(model, spec, paths, args, device) -> float:
    from facelib.evaluation.extract import embed_images

    embed_images(model, paths[: args.batch_size], spec, batch_size=args.batch_size, workers=args.workers,
                 device=device)  # warm-up (allocator, cuDNN autotune, worker code paths)
    sync(device)
    t0 = time.perf_counter()
    emb = embed_images(model, paths, spec, batch_size=args.batch_size, workers=args.workers, device=device)
    sync(device)
    dt = time.perf_counter() - t0
    assert emb.shape == (len(paths), spec.embedding_dim)
    return len(paths) / dt


def time_raw_forward(model, spec, n_images: int, args, device) -> float:
    """Raw ``for_inference(model, spec)(x)`` on batches already on the device, same precision/memory format as
    embed_images."""
    import torch

    from facelib.models.network import for_inference
    from facelib.runtime import autocast_dtype

    dtype = autocast_dtype(device, True)
    mf = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    x = torch.randn(args.batch_size, 3, spec.image_size, spec.image_size).to(device, memory_format=mf)
    n_batches = max(1, -(-n_images // args.batch_size))
    net = for_inference(model.eval(), spec)
    with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        net(x)  # warm-up
        sync(device)
        t0 = time.perf_counter()
        for _ in range(n_batches):
            net(x)
        sync(device)
    return n_batches * args.batch_size / (time.perf_counter() - t0)


def time_loader(spec, paths, args, device) -> float:
    from facelib.evaluation.extract import image_loader
    from facelib.models.transforms import build_transform

    loader = image_loader(paths, build_transform(spec, train=False), args.batch_size, args.workers, device)
    t0 = time.perf_counter()
    n = 0
    for x, _ in loader:
        n += x.shape[0]
    return n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--data-root", default=None, help=f"FACECOM Task B root (default {common.DEFAULT_DATA_ROOT})")
    ap.add_argument("--split", default="val")
    ap.add_argument("--backbone", nargs="+", default=["resnet50"])
    ap.add_argument("--image-size", type=int, nargs="+", default=[64])
    ap.add_argument("--embedding-dim", type=int, default=512)
    ap.add_argument("--images", type=int, default=512, help="JPEGs embedded per timing")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--with-matching", action="store_true", help="also run benchmarks/match_speed.py --quick")
    ap.add_argument("--quick", action="store_true", help="tiny run on synthetic faces (smoke check)")
    ap.add_argument("--json", default="eval_speed", help="name of benchmarks/out/<name>.json ('' = none)")
    args = ap.parse_args(argv)

    from facelib.models.network import build_model
    from facelib.runtime import resolve_device

    if args.quick:
        from facelib.data.synthetic import make_dataset

        root = common.scratch_dir("facelib-evs-")
        make_dataset(root, identities=12, photos=3, image_size=64, seed=0)
        args.images, args.batch_size = min(args.images, 64), min(args.batch_size, 16)
        args.backbone, args.image_size = args.backbone[:1], args.image_size[:1]
    else:
        root = common.resolve_data_root(args.data_root)
    device = resolve_device(args.device)
    paths = sample_paths(root / args.split, args.images, args.seed)
    info = common.machine_info(str(device))

    rows: list[dict[str, Any]] = []
    for backbone in args.backbone:
        for size in args.image_size:
            model, spec = build_model(backbone, args.embedding_dim, pretrained=False, image_size=size)
            model.to(device)
            load0 = common.loadavg()
            loader = time_loader(spec, paths, args, device)
            emb = time_embed(model, spec, paths, args, device)
            raw = time_raw_forward(model, spec, len(paths), args, device)
            load1 = common.loadavg()
            rows.append(dict(backbone=backbone, image_size=size, embed_images=emb, raw_forward=raw,
                             loader_only=loader, ratio=emb / raw, load_before=load0, load_after=load1))
            common.log_err(f"{backbone} {size}px: embed_images {emb:.1f}, raw {raw:.1f} ({emb / raw:.0%}), "
                           f"loader {loader:.1f} img/s; load {load0} -> {load1}")
            del model

    from facelib.runtime import autocast_dtype

    dtype = autocast_dtype(device, True)
    settings = dict(data=f"{len(paths)} JPEGs sampled from {root / args.split} (seed {args.seed})",
                    batch_size=args.batch_size, workers=args.workers, embedding_dim=args.embedding_dim,
                    precision="fp32" if dtype is None else f"autocast {str(dtype).replace('torch.', '')}",
                    weights="random init")
    common.print_header("Embedding extraction speed (images/s)", info, settings)
    table = [[r["backbone"], r["image_size"], f"{r['embed_images']:.1f}", f"{r['raw_forward']:.1f}",
              f"{r['ratio']:.0%}", f"{r['loader_only']:.1f}", f"{r['load_before']} -> {r['load_after']}"]
             for r in rows]
    print(common.markdown_table(["backbone", "image px", "embed_images (JPEG -> numpy)", "raw forward (tensors)",
                                 "embed / raw", "loader only", "loadavg before -> after"], table, align="lrrrrrl"))
    print()
    if args.json:
        path = common.write_json(args.json + ("_quick" if args.quick else ""),
                                 dict(machine=info, settings=settings, rows=rows))
        common.log_err(f"wrote {path}")
    if args.with_matching:
        import match_speed

        match_speed.main(["--quick"])
    else:
        print("Matching (top-k over the gallery): see `python benchmarks/match_speed.py [--quick]`.\n")


if __name__ == "__main__":
    main()
