"""Training recipes side by side at an equal budget, scored on unseen identities.

    python benchmarks/recipe_vs_seed.py --quick                          # smoke check on synthetic faces
    python benchmarks/recipe_vs_seed.py --budget-min 10                  # FACECOM, resnet18, 64 px, random init
    python benchmarks/recipe_vs_seed.py --steps 400 --recipes default default,neck=none,miner=batch_hard
    python benchmarks/recipe_vs_seed.py --synthetic 40,5,64,5 --epochs 4 \
        --recipes default default,miner=batch_hard,neck=none,min_photos=1
    python benchmarks/recipe_vs_seed.py --budget-min 30 --curve --recipes default   # top-1 against time
    python benchmarks/recipe_vs_seed.py --steps 10000 --curve-every 1000 --recipes default,teacher=dlib  # the long run
    python benchmarks/recipe_vs_seed.py --backbone resnet50 --image-size 224 --budget-min 10 --device cuda

A recipe is ``default`` (the TrainConfig defaults: what ``facelib train`` does), ``original``
(``TrainConfig.original()``: random triplets, three forward passes each, margin 1.0), or
``smoke`` (the smoke profile's settings), optionally followed by comma-separated TrainConfig
overrides, e.g. ``default,miner=batch_all,p=32,k=4`` or ``default,loss=arcface``.

Budget: ``--budget-min`` (``TrainConfig.max_seconds``: the run stops after that much training,
data loading included, and its learning-rate schedule is fitted to the budget), or
``--steps`` (equal optimisation steps; fair between recipes of equal batch size and input
size when the machine is shared), or ``--epochs`` (full epochs). Each recipe is then scored on
``val`` with the cross-photo protocol (a probe never matches its own source photo), gallery of
all images (the primary figure, with a 95% interval from a bootstrap over the probe identities)
and of per-identity means, per distortion kind; the pixel baseline and the untrained network are
scored on the same probes. Everything goes through the
public API: ``facelib.training.trainer.train``, ``facelib.evaluation.extract.embed_folder``, the protocols.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

DEFAULT_RECIPES = ["original", "default"]
def make_config(text: str, common_kw: dict[str, Any]):
    """``"default,miner=batch_all,margin=0.2"``: a start (original, default or smoke) with ``field=value``
    overrides, typed and validated by :meth:`facelib.config.TrainConfig.from_overrides`."""
    from facelib.config import TrainConfig, get_profile

    base, *pairs = text.split(",")
    if base not in ("original", "default", "smoke"):
        raise SystemExit(f"recipe must start with 'original', 'default' or 'smoke', got {text!r}")
    if base == "original":
        return TrainConfig.from_overrides(pairs, base=TrainConfig.original(**common_kw))
    start = get_profile("smoke").train if base == "smoke" else TrainConfig()
    # the recipe's own learning rate unless the command line or the recipe sets one
    kw = {k: v for k, v in common_kw.items() if not (k == "lr" and v is None)}
    return TrainConfig.from_overrides(pairs, base=start.replace(**kw))


def recipe_label(cfg) -> str:
    if cfg.sampler == "triplets":
        return f"random triplets x{cfg.batch_size}/step, 3 passes each, margin {cfg.margin:g}"
    what = f"{cfg.miner}, margin {cfg.margin:g}" + (", soft" if cfg.soft_margin else "")
    if cfg.metric_loss != "triplet":
        what = f"{cfg.metric_loss}"
    return f"P x K {cfg.p}x{cfg.k}, {what}, neck {cfg.neck}, lr {cfg.base_lr:g}, wd {cfg.base_weight_decay:g}"


def score(model, spec, folder, device, workers: int) -> dict[str, Any]:
    """Cross-photo top-1 (gallery of all images and of identity means) and per-distortion top-1."""
    from facelib.evaluation.extract import embed_folder
    from facelib.evaluation.protocols import cross_photo_protocol

    es = embed_folder(model, spec, folder, batch_size=128, workers=workers, device=device, amp=True)
    r_all = cross_photo_protocol(es, gallery="all")
    r_mean = cross_photo_protocol(es, gallery="mean")
    return {"top1_all": float(r_all.top1), "top1_mean": float(r_mean.top1), "top5_all": float(r_all.top5),
            "top1_all_ci": list(r_all.top1_interval),
            "per_distortion": r_all.per_distortion, "n_probes": int(r_all.n_probes),
            "n_probe_identities": int(r_all.n_probe_identities), "es": es}


def train_probe(train, val, seed: int):
    """A val-shaped subset of the *training* identities: as many multi-photo identities (capped at val's
    largest photo count) and single-photo identities as val has, all their images. Scored next to val
    in ``--curve``, it separates "has not learned faces yet" from "has learned these faces only"."""
    import numpy as np

    def photos_per_identity(folder) -> dict[str, int]:
        out: dict[str, set[str]] = {}
        for smp in folder.samples:
            out.setdefault(smp.identity, set()).add(smp.photo)
        return {k: len(v) for k, v in out.items()}

    vp, tp = photos_per_identity(val), photos_per_identity(train)
    cap = max(vp.values())
    rng = np.random.default_rng(seed)
    multi = sorted(k for k, n in tp.items() if 2 <= n <= cap)
    single = sorted(k for k, n in tp.items() if n == 1)
    n_multi, n_single = sum(n >= 2 for n in vp.values()), sum(n == 1 for n in vp.values())
    keep = set(rng.choice(multi, min(n_multi, len(multi)), replace=False)) | set(
        rng.choice(single, min(n_single, len(single)), replace=False))
    return train.select(lambda smp: smp.identity in keep)


def people_subset(facecom_train: Path, extra: list[str], people: int, seed: int) -> list[str]:
    """Folders of symbolic links to ``people`` - (FACECOM train's people with 2+ photos) people drawn at random
    from the ``extra`` sources (each keeps its own folder, so sources stay apart)."""
    import numpy as np

    from facelib.data.folders import scan_folder

    base = sum(1 for n in _photo_counts(scan_folder(facecom_train, include_distortions=False)).values() if n >= 2)
    pool = [(src, d.name) for src in extra for d in sorted(Path(src).iterdir()) if d.is_dir()]
    want = people - base
    if not 0 <= want <= len(pool):
        raise SystemExit(f"--people {people}: FACECOM train has {base} people with 2+ photos and the extra sources "
                         f"{len(pool)} more")
    pick = set(np.random.default_rng(seed).choice(len(pool), want, replace=False).tolist())
    out = common.scratch_dir("facelib-people-")
    folders = []
    for src in extra:
        dst = out / Path(src).name
        dst.mkdir()
        folders.append(str(dst))
    for i, (src, name) in enumerate(pool):
        if i in pick:
            (out / Path(src).name / name).symlink_to(Path(src).resolve() / name)
    return [f for f in folders if any(Path(f).iterdir())]


def _photo_counts(folder) -> dict[str, int]:
    out: dict[str, set[str]] = {}
    for smp in folder.samples:
        out.setdefault(smp.identity, set()).add(smp.photo)
    return {k: len(v) for k, v in out.items()}


def budget_kwargs(args) -> dict[str, Any]:
    """TrainConfig fields that express the budget."""
    if args.steps and args.curve_every:  # epochs of that many steps; one schedule over all of them
        if args.steps % args.curve_every:
            raise SystemExit(f"--curve-every {args.curve_every} must divide --steps {args.steps}")
        return dict(epochs=args.steps // args.curve_every, steps_per_epoch=args.curve_every)
    if args.steps:  # one "epoch" of exactly that many P x K steps (warm-up and cosine are fractions of it)
        return dict(epochs=1, steps_per_epoch=args.steps)
    if args.epochs:
        return dict(epochs=args.epochs)
    # time budget: the epochs only bound it; the schedule (warm-up, cosine) runs over the budget
    return dict(epochs=1000, max_seconds=args.budget_min * 60)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--data-root", default=None, help=f"FACECOM Task B root (default {common.DEFAULT_DATA_ROOT})")
    ap.add_argument("--synthetic", default=None, metavar="IDS,PHOTOS,PX,SEED",
                    help="use `facelib synth` data with these settings instead of FACECOM")
    ap.add_argument("--extra", action="append", default=[], metavar="FOLDER",
                    help="another training source beside FACECOM train (repeatable), e.g. extra_faces/lfw")
    ap.add_argument("--people", type=int, default=None, metavar="N",
                    help="train on FACECOM train plus extra people drawn at random (seed) from the --extra sources, "
                         "N training people with 2+ photos in all (the data-scaling curve)")
    ap.add_argument("--budget-min", type=float, default=10.0, help="training minutes per recipe (max_seconds)")
    ap.add_argument("--steps", type=int, default=None, help="equal steps per recipe instead of equal time")
    ap.add_argument("--epochs", type=int, default=None, help="equal epochs per recipe instead of equal time")
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=None, help="override every recipe's learning rate")
    ap.add_argument("--pretrained", action="store_true", help="timm hub weights (default: random init)")
    ap.add_argument("--recipes", nargs="+", default=DEFAULT_RECIPES, help="see the module docstring")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--curve", action="store_true",
                    help="score val, and a val-shaped subset of the training identities, after every epoch")
    ap.add_argument("--curve-every", type=int, default=None, metavar="STEPS",
                    help="with --steps: score the curve every STEPS steps (epochs of STEPS steps; the learning-rate "
                         "schedule still spans all --steps)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--no-baselines", action="store_true", help="skip the untrained-network and pixel rows")
    ap.add_argument("--quick", action="store_true", help="tiny run on synthetic faces (smoke check)")
    ap.add_argument("--json", default="recipe_vs_seed", help="name of benchmarks/out/<name>.json ('' = none)")
    args = ap.parse_args(argv)
    if args.curve_every:
        if not args.steps:
            raise SystemExit("--curve-every needs --steps")
        args.curve = True

    from facelib.data.folders import scan_folder
    from facelib.models.network import build_model
    from facelib.runtime import resolve_device

    if args.quick or args.synthetic:
        from facelib.data.synthetic import make_dataset

        ids, photos, px, sseed = (int(v) for v in (args.synthetic or "24,5,64,0").split(","))
        root = common.scratch_dir("facelib-rvs-")
        make_dataset(root, identities=ids, photos=photos, image_size=px, seed=sseed)
        if args.quick:
            args.budget_min = min(args.budget_min, 0.15)
    else:
        root = common.resolve_data_root(args.data_root)
    device = resolve_device(args.device)
    data: Any = str(root / "train")
    if args.extra:
        data = [data] + (people_subset(root / "train", args.extra, args.people, args.seed) if args.people
                         else list(args.extra))
    common_kw = dict(data=data, backbone=args.backbone, image_size=args.image_size,
                     pretrained=args.pretrained, lr=args.lr, device=str(device), seed=args.seed,
                     workers=args.workers, progress=False, patience=None, **budget_kwargs(args))
    val = scan_folder(root / "val")
    info = common.machine_info(str(device))
    load_before = common.loadavg()

    from facelib.jobs import train
    from facelib.training.trainer import Trainer

    # the same probe of training identities for every recipe, scanned once
    seen = train_probe(scan_folder(root / "train"), val, args.seed) if args.curve else None
    seen_es: list[Any] = []  # its embedded set (any model's: the pixel baseline needs only the metadata)
    rows: list[dict[str, Any]] = []
    for text in args.recipes:
        cfg = make_config(text, dict(common_kw, out=common.tmp_out("rvs-")))
        common.log_err(f"== {text}: {recipe_label(cfg)}")
        load0 = common.loadavg()
        curve: list[dict[str, Any]] = []
        if args.curve:  # score after every epoch: top-1 against training time within this one run
            trainer = Trainer(cfg, log=lambda m: common.log_err("  " + m))

            def at_epoch_end(entry: dict[str, Any], t=trainer, curve=curve) -> None:
                t.model.eval()
                c = score(t.model, t.spec, val, device, args.workers)
                c_seen = score(t.model, t.spec, seen, device, args.workers)
                seen_es[:] = [c_seen["es"]]
                curve.append(dict(train_s=t.elapsed, steps=t.steps_done, top1_all=c["top1_all"],
                                  top1_mean=c["top1_mean"], train_top1_all=c_seen["top1_all"],
                                  top1_all_ci=c["top1_all_ci"], per_distortion=c["per_distortion"],
                                  spread=entry.get("spread")))
                common.log_err(f"   curve: {t.elapsed:7.0f} s  {t.steps_done:5d} steps  top-1 {c['top1_all']:.4f} "
                               f"(training identities {c_seen['top1_all']:.4f})")

            result = trainer.fit(on_epoch_end=at_epoch_end)
        else:
            result = train(cfg, log=lambda m: common.log_err("  " + m))
        load1 = common.loadavg()
        from facelib.models.checkpoint import load_checkpoint

        model, spec, _ = load_checkpoint(result.checkpoint, device=device)
        s = score(model, spec, val, device, args.workers)
        hist = result.history
        steps = sum(h["steps"] for h in hist)
        seconds = sum(h["seconds"] for h in hist)
        images = sum(h["images_per_sec"] * h["seconds"] for h in hist)
        row = dict(recipe=text, label=recipe_label(cfg), steps=steps, seconds=seconds, img_per_s=images / seconds,
                   final_spread=hist[-1].get("spread"), min_spread=min(h.get("spread", 1.0) for h in hist),
                   collapse_warnings=len(result.warnings), load_before=load0, load_after=load1,
                   history=hist, curve=curve, **{k: v for k, v in s.items() if k != "es"})
        rows.append(row)
        common.log_err(f"   -> cross-photo top-1 {s['top1_all']:.4f} (all) {s['top1_mean']:.4f} (mean), "
                       f"{steps} steps, {row['img_per_s']:.1f} img/s, spread {row['final_spread']:.3f}, "
                       f"{len(result.warnings)} collapse warnings")
        ref_es = s["es"]
    baselines: dict[str, dict[str, Any]] = {}
    if not args.no_baselines:
        from facelib.evaluation.baselines import pixel_baseline

        crop = spec.face_crop  # the last run's framing
        pa, pm = (pixel_baseline("cross-photo", ref_es, gallery=g, face_crop=crop) for g in ("all", "mean"))
        baselines[f"pixel cosine 32x32 gray, face crop {crop:g} (no learning)"] = dict(
            top1_all=float(pa.top1), top1_mean=float(pm.top1), top1_all_ci=list(pa.top1_interval),
            per_distortion=pa.per_distortion)
        from facelib.runtime import seed_everything

        seed_everything(args.seed)
        model, spec = build_model(args.backbone, 512, pretrained=False, image_size=args.image_size, neck="none",
                                  face_crop=crop)
        u = score(model.eval(), spec, val, device, args.workers)
        baselines["untrained network (random init)"] = {k: v for k, v in u.items() if k != "es"}

    n_probes, n_ids = s["n_probes"], s["n_probe_identities"]
    budget = (f"{args.steps} steps/recipe" if args.steps else f"{args.epochs} epochs/recipe" if args.epochs
              else f"{args.budget_min:g} min/recipe")
    settings = dict(data=str(root), extra=args.extra, people=args.people, backbone=args.backbone,
                    image_size=args.image_size,
                    weights="timm-hub" if args.pretrained else "random init", budget=budget, seed=args.seed,
                    workers=args.workers,
                    protocol=f"cross-photo ({n_probes} probes of {n_ids} identities)",
                    loadavg_before=load_before, loadavg_after=common.loadavg())
    common.print_header("Training recipes at an equal budget", info, settings)
    orig = next((r for r in rows if r["recipe"].startswith("original")), None)

    def ci(r: dict[str, Any]) -> str:
        return "{:.3f}-{:.3f}".format(*r["top1_all_ci"])

    table = [[name, f"{b['top1_all']:.3f}", ci(b), f"{b['top1_mean']:.3f}", "-", "-", "-", "-", "-", "-"]
             for name, b in baselines.items()]
    for r in rows:
        ratio = f"{r['top1_all'] / orig['top1_all']:.2f}x" if orig and orig["top1_all"] > 0 else "-"
        table.append([f"`{r['recipe']}`: {r['label']}", f"{r['top1_all']:.3f}", ci(r), f"{r['top1_mean']:.3f}", ratio,
                      r["steps"], f"{r['img_per_s']:.1f}", f"{r['seconds']:.0f}",
                      f"{r['final_spread']:.3f} (min {r['min_spread']:.3f})", r["collapse_warnings"]])
    print(common.markdown_table(["recipe", "top-1 (all)", "95% interval", "top-1 (mean)", "vs original", "steps",
                                 "img/s", "train s", "final spread", "collapse warnings"], table))
    print()
    seen_pixel = None
    if seen_es:
        from facelib.evaluation.baselines import pixel_baseline

        seen_pixel = float(pixel_baseline("cross-photo", seen_es[0], gallery="all").top1)
    for r in rows:
        if r["curve"]:
            print(f"Top-1 against training time within one run of `{r['recipe']}` (its schedule spans the whole "
                  "budget, so early points are at a high learning rate, not the end of a shorter run):\n")
            print(common.markdown_table(
                ["train min", "steps", "val top-1 (all)", "val top-1 (mean)", "training identities top-1 (all)",
                 "spread"],
                [[f"{c['train_s'] / 60:.1f}", c["steps"], f"{c['top1_all']:.3f}", f"{c['top1_mean']:.3f}",
                  f"{c['train_top1_all']:.3f}", f"{c['spread']:.3f}"] for c in r["curve"]]))
            print(f"\nPixel cosine on the same training identities (top-1, all gallery): {seen_pixel:.3f}\n")
    kinds = sorted({k for r in list(baselines.values()) + rows for k in r.get("per_distortion", {})})
    if kinds:
        print("Per distortion kind, cross-photo top-1 (gallery of all images):\n")
        lines = [[name] + [f"{b['per_distortion'].get(k, float('nan')):.3f}" for k in kinds]
                 for name, b in list(baselines.items()) + [(f"`{r['recipe']}`", r) for r in rows]]
        print(common.markdown_table(["model"] + kinds, lines))
        print()
    if args.json:
        payload = dict(machine=info, settings=settings, baselines=baselines, runs=rows,
                       pixel_on_training_identities=seen_pixel)
        path = common.write_json(args.json + ("_quick" if args.quick else ""), payload)
        common.log_err(f"wrote {path}")


if __name__ == "__main__":
    main()
