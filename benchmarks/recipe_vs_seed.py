"""Original (seed) recipe vs the new default at an equal wall-clock training budget.

    python benchmarks/recipe_vs_seed.py --quick                      # smoke check on synthetic faces
    python benchmarks/recipe_vs_seed.py --budget-min 6 --workers 2   # CPU: resnet18, 64 px, random init
    python benchmarks/recipe_vs_seed.py --backbone resnet50 --image-size 224 --pretrained \
        --budget-min 10 --device cuda                                # GPU
    python benchmarks/recipe_vs_seed.py --budget-min 3 --no-baselines \
        --recipes pk,miner=batch_hard pk,miner=batch_all pk,miner=semi_hard   # a miner sweep

Each recipe trains on ``<data-root>/train`` for the same wall-clock budget (data loading
included, model setup excluded; the LR schedule is a warm-up + cosine over the budget) and
is scored on ``<data-root>/val`` with the cross-photo protocol (gallery = per-identity mean
of clean embeddings; a probe's own source photo never takes part). The untrained model
(same seed, same init) and the pixel-cosine baseline are scored on the same probes.

A recipe is ``original`` (TrainConfig.original(): random triplets, 3 forward passes each,
margin 1.0) or ``pk`` (the TrainConfig defaults: P x K batches, one pass per image,
in-batch mining), optionally followed by comma-separated overrides of TrainConfig fields,
e.g. ``pk,miner=batch_all,margin=0.2,p=32,k=4``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

DEFAULT_RECIPES = ["original", "pk"]  # the seed recipe vs the TrainConfig defaults (P x K, batch-hard)


def parse_recipe(text: str) -> tuple[str, dict[str, Any]]:
    """``"pk,miner=batch_all,margin=0.2"`` -> ``("pk", {"miner": "batch_all", "margin": 0.2})``."""
    base, *pairs = text.split(",")
    if base not in ("original", "pk"):
        raise SystemExit(f"recipe must start with 'original' or 'pk', got {text!r}")
    over: dict[str, Any] = {}
    for pair in pairs:
        key, _, val = pair.partition("=")
        v: Any = val
        for cast in (int, float):
            try:
                v = cast(val)
                break
            except ValueError:
                pass
        if val in ("true", "false", "none"):
            v = {"true": True, "false": False, "none": None}[val]
        over[key.strip()] = v
    return base, over


def make_config(text: str, common_kw: dict[str, Any]):
    from facelib.config import TrainConfig

    base, over = parse_recipe(text)
    kw = dict(common_kw, **over)
    return TrainConfig.original(**kw) if base == "original" else TrainConfig(**kw)


def recipe_label(cfg) -> str:
    if cfg.sampler == "triplets":
        return f"random triplets x{cfg.batch_size}/step, 3 passes each, margin {cfg.margin:g}"
    return f"P x K {cfg.p}x{cfg.k}, {cfg.miner}, margin {cfg.margin:g}"


def score(model, spec, folder, device, workers: int) -> dict[str, Any]:
    """Cross-photo top-1/top-5 (gallery = identity mean) of ``model`` on ``folder``."""
    from facelib.embed import embed_folder
    from facelib.protocols import cross_photo_protocol

    es = embed_folder(model, spec, folder, batch_size=128, workers=workers, device=device, amp=True)
    r = cross_photo_protocol(es, gallery="mean")
    return {"top1": float(r.top1), "top5": float(r.top5), "n_probes": int(r.n_probes),
            "n_probe_identities": int(r.n_probe_identities), "n_gallery": int(r.n_gallery), "es": es}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--data-root", default=None, help=f"FACECOM Task B root (default {common.DEFAULT_DATA_ROOT})")
    ap.add_argument("--budget-min", type=float, default=6.0, help="training wall-clock minutes per recipe")
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--embedding-dim", type=int, default=512)
    ap.add_argument("--lr", type=float, default=1e-3, help="shared by every recipe")
    ap.add_argument("--pretrained", action="store_true", help="timm hub weights (default: random init)")
    ap.add_argument("--recipes", nargs="+", default=DEFAULT_RECIPES, help="see the module docstring")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    ap.add_argument("--no-baselines", action="store_true", help="skip the untrained-model and pixel rows")
    ap.add_argument("--quick", action="store_true", help="tiny run on synthetic faces (smoke check)")
    ap.add_argument("--json", default="recipe_vs_seed", help="name of benchmarks/out/<name>.json ('' = none)")
    args = ap.parse_args(argv)

    from facelib.data import scan_folder
    from facelib.embed import resolve_device

    if args.quick:
        from facelib.synthetic import make_dataset

        root = Path(tempfile.mkdtemp(prefix="facelib-rvs-"))
        make_dataset(root, identities=24, photos=5, image_size=64, seed=args.seed)
        args.budget_min = min(args.budget_min, 0.15)
        args.embedding_dim = min(args.embedding_dim, 128)
    else:
        root = common.resolve_data_root(args.data_root)
    device = resolve_device(args.device)
    budget_s = args.budget_min * 60
    common_kw = dict(data=str(root / "train"), backbone=args.backbone, image_size=args.image_size,
                     pretrained=args.pretrained, embedding_dim=args.embedding_dim, lr=args.lr,
                     device=str(device), seed=args.seed, workers=args.workers, progress=False, epochs=1000)
    val = scan_folder(root / "val")
    info = common.machine_info(str(device))
    load_before = common.loadavg()

    rows: list[dict[str, Any]] = []
    init_row = None
    for i, text in enumerate(args.recipes):
        cfg = make_config(text, dict(common_kw, out=common.tmp_out("rvs-")))
        common.log_err(f"== {text}: {recipe_label(cfg)}, budget {budget_s:.0f} s")
        want_init = i == 0 and not args.no_baselines
        load0 = common.loadavg()
        run = common.train_for(
            cfg, budget_s,
            evaluate_init=(lambda tr: score(tr.model, tr.spec, val, device, args.workers)) if want_init else None,
        )
        load1 = common.loadavg()
        if want_init:
            init_row = run["init_eval"]
        s = score(run["model"], run["spec"], val, device, args.workers)
        hist = run["history"]
        row = dict(recipe=text, label=recipe_label(cfg), top1=s["top1"], top5=s["top5"], steps=run["steps"],
                   images=run["images"], seconds=run["seconds"], img_per_s=run["images"] / run["seconds"],
                   final_loss=hist[-1].get("loss") if hist else None,
                   final_active=hist[-1].get("active_fraction") if hist else None,
                   final_spread=hist[-1].get("spread") if hist else None,
                   min_spread=min((h.get("spread", 1.0) for h in hist), default=None),
                   load_before=load0, load_after=load1, history=hist)
        rows.append(row)
        common.log_err(f"   -> top-1 {s['top1']:.4f}  top-5 {s['top5']:.4f}  ({run['steps']} steps, "
                       f"{row['img_per_s']:.1f} img/s, spread {row['final_spread']})")
        ref_es = s["es"]
        del run
    pixel = None
    if not args.no_baselines:
        from facelib.baselines import pixel_baseline

        r = pixel_baseline("cross-photo", ref_es, gallery="mean")
        pixel = {"top1": float(r.top1), "top5": float(r.top5)}
    load_after = common.loadavg()

    n_probes, n_ids = s["n_probes"], s["n_probe_identities"]
    settings = dict(data=str(root), backbone=args.backbone, image_size=args.image_size,
                    weights="timm-hub" if args.pretrained else "random init", embedding_dim=args.embedding_dim,
                    lr=args.lr, budget=f"{args.budget_min:g} min/recipe", seed=args.seed, workers=args.workers,
                    protocol=f"cross-photo, gallery=mean ({n_probes} probes of {n_ids} identities, "
                             f"{s['n_gallery']} gallery identities)",
                    loadavg_before=load_before, loadavg_after=load_after)
    common.print_header("Original recipe vs new default at equal wall-clock budget", info, settings)
    orig = next((r for r in rows if r["recipe"].startswith("original")), None)
    table = []
    if init_row is not None:
        table.append(["untrained model (same init)", f"{init_row['top1']:.3f}", f"{init_row['top5']:.3f}",
                      "-", "-", "-", "-", "-", "-"])
    if pixel is not None:
        table.append(["pixel cosine 32x32 (no learning)", f"{pixel['top1']:.3f}", f"{pixel['top5']:.3f}",
                      "-", "-", "-", "-", "-", "-"])
    for r in rows:
        ratio = f"{r['top1'] / orig['top1']:.2f}x" if orig and orig["top1"] > 0 else "-"
        spread = (f"{r['final_spread']:.3f} (min {r['min_spread']:.3f})" if r["final_spread"] is not None else "-")
        table.append([f"`{r['recipe']}`: {r['label']}", f"{r['top1']:.3f}", f"{r['top5']:.3f}", ratio,
                      r["steps"], f"{r['img_per_s']:.1f}", f"{r['seconds']:.0f}", spread,
                      f"{r['load_before'][0]} -> {r['load_after'][0]}" if r["load_before"] else "-"])
    print(common.markdown_table(["recipe", "top-1", "top-5", "top-1 vs original", "steps", "img/s (train)",
                                 "train s", "final spread", "loadavg 1 min (before -> after)"], table))
    print()
    if args.json:
        payload = dict(machine=info, settings=settings, untrained=init_row and {k: v for k, v in init_row.items()
                                                                               if k != "es"},
                       pixel=pixel, runs=rows)
        path = common.write_json(args.json + ("_quick" if args.quick else ""), payload)
        common.log_err(f"wrote {path}")


if __name__ == "__main__":
    main()
