"""The ``facelib`` console script: ``train``, ``test``, ``embed``, ``enroll``, ``identify``, ``export``,
``align``, ``distort``, ``synth``, ``demo``.

Errors caused by input (missing folders, bad checkpoints, unavailable weights) are
printed as one ``error:`` line with exit status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

from facelib.config import (
    AUGMENTS, FINETUNE_LR, GALLERY_MODES, LOSSES, MINERS, NECKS, PROTOCOLS, RESTORERS, SAMPLERS, SCRATCH_LR,
    EvalConfig, TrainConfig,
)

_D = TrainConfig.__dataclass_fields__
TRAIN_DESCRIPTION = "Train an embedder on a FACECOM-layout folder."
TEST_DESCRIPTION = "Evaluate a checkpoint on a FACECOM-layout folder."


def _default(name: str):
    return _D[name].default


def add_train_args(p: argparse.ArgumentParser, data_default: str = "train") -> None:
    p.set_defaults(data_default=data_default)
    g = p.add_argument_group("data")
    g.add_argument("--data", action="append", default=None, metavar="FOLDER",
                   help="training folder, <identity>/*.jpg; repeat for several sources (--data A --data B): people "
                        "in different folders are different people, so never split one person over two folders "
                        f"(default: {data_default})")
    g.add_argument("--val-data", default=None, help="validation folder: scored every epoch, best model kept")
    g.add_argument("--no-distortions", dest="include_distortions", action="store_false",
                   help="ignore <identity>/distortion/ images (default: use them)")
    g.add_argument("--synth-distortions", action=argparse.BooleanOptionalAction, default=_default("synth_distortions"),
                   help="photos without distortion/ copies get the seven distortions made on the fly, drawn within "
                        "--clean-fraction (default: yes)")
    g.add_argument("--face-crop", type=float, default=_default("face_crop"), metavar="FRACTION",
                   help="keep the central FRACTION of the side before the resize: where FACECOM's faces sit and where "
                        "`facelib align` puts them; recorded in the checkpoint and applied by every command "
                        "(1: the whole frame) (default: %(default)s)")
    g.add_argument("--restore", choices=RESTORERS, default=_default("restore"),
                   help="restoration front-end before the crop: median = 3x3 median filter (removes salt-and-pepper "
                        "noise); recorded in the checkpoint (default: %(default)s)")
    g.add_argument("--augment", choices=AUGMENTS, default=_default("augment"),
                   help="training augmentation: none, mild (crop 0.8-1, flip, jitter) or strong (wider crops, "
                        "grayscale, random erasing) (default: %(default)s)")
    g.add_argument("--workers", type=int, default=_default("workers"), help="DataLoader workers (default: %(default)s)")
    g = p.add_argument_group("model")
    g.add_argument("--backbone", default=_default("backbone"), help="timm model name (default: %(default)s)")
    g.add_argument("--pretrained", action=argparse.BooleanOptionalAction, default=True,
                   help="start from timm hub ImageNet weights (default: yes; offline use --weights or --no-pretrained)")
    g.add_argument("--weights", default=None, metavar="FILE", help="local backbone weights file (.pth/.safetensors)")
    g.add_argument("--init", default=None, metavar="CHECKPOINT",
                   help="start the whole embedder from a facelib checkpoint (e.g. pre-trained on more people), with a "
                        "new optimiser and schedule: fine-tuning; needs the same --backbone, --embedding-dim, --neck")
    g.add_argument("--embedding-dim", type=int, default=_default("embedding_dim"),
                   help="embedding size (default: %(default)s)")
    g.add_argument("--image-size", type=int, default=_default("image_size"), metavar="PX",
                   help="square input size in pixels (default: %(default)s)")
    g.add_argument("--neck", choices=NECKS, default=None,
                   help=f"'bn': BatchNorm1d before the L2 norm (keeps random-init training from collapsing); "
                        f"default: {_default('neck')}")
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, default=_default("epochs"), help="epochs (default: %(default)s)")
    g.add_argument("--lr", type=float, default=None,
                   help=f"peak AdamW learning rate (default: {FINETUNE_LR:g} from pretrained weights, "
                        f"{SCRATCH_LR:g} from random initialisation)")
    g.add_argument("--weight-decay", type=float, default=_default("weight_decay"), help="(default: %(default)s)")
    g.add_argument("--batch-size", type=int, default=None, metavar="B",
                   help="triplets per step with --sampler triplets; with --sampler pk, sets K = B // P")
    g.add_argument("--steps-per-epoch", type=int, default=None, help="cap the steps of an epoch (quick runs)")
    g.add_argument("--max-seconds", type=float, default=None, metavar="S",
                   help="stop after S seconds of training; the learning-rate schedule is fitted to the budget")
    g.add_argument("--warmup", type=float, default=_default("warmup"), metavar="FRACTION",
                   help="linear warm-up over this fraction of the run, then cosine decay (default: %(default)s)")
    g.add_argument("--grad-clip", type=float, default=_default("grad_clip"), help="max gradient norm (default: %(default)s)")
    g.add_argument("--patience", type=int, default=_default("patience"),
                   help="early stop after this many epochs without validation gain (default: %(default)s)")
    g = p.add_argument_group("loss")
    g.add_argument("--loss", choices=LOSSES, default=_default("loss"),
                   help="triplet (mined in P x K batches), or a margin softmax over the training identities "
                        "(arcface, cosface; its class weights are dropped from the checkpoint) (default: %(default)s)")
    g.add_argument("--class-margin", type=float, default=None,
                   help="arcface/cosface margin (default: 0.5 arcface, 0.35 cosface)")
    g.add_argument("--class-scale", type=float, default=_default("class_scale"),
                   help="arcface/cosface logit scale (default: %(default)s)")
    g = p.add_argument_group("triplets")
    g.add_argument("--recipe", choices=("default", "original"), default="default",
                   help="'original' = the seed scripts: random triplets, 3 passes each, margin 1.0")
    g.add_argument("--sampler", choices=SAMPLERS, default=None, help="pk (P x K batches) or triplets (original)")
    g.add_argument("--miner", choices=MINERS, default=None, help=f"triplet miner (default: {_default('miner')})")
    g.add_argument("--p", type=int, default=_default("p"), help="identities per batch (default: %(default)s)")
    g.add_argument("--k", type=int, default=_default("k"), help="images per identity (default: %(default)s)")
    g.add_argument("--margin", type=float, default=None, help=f"triplet margin (default: {_default('margin')})")
    g.add_argument("--distance", choices=("euclidean", "cosine"), default=_default("distance"),
                   help="triplet distance; cosine normalises the embeddings itself, euclidean compares them as --[no-]normalize-embeddings leaves them (default: %(default)s)")
    g.add_argument("--soft-margin", action="store_true", help="softplus instead of hinge")
    g.add_argument("--normalize-embeddings", action=argparse.BooleanOptionalAction, default=None,
                   help="triplet loss on L2-normalised embeddings; --no-normalize-embeddings: on the neck's "
                        "output scaled by 1/sqrt(dim) (evaluation always normalises) (default: "
                        f"{'yes' if _default('normalize_embeddings') else 'no'})")
    g.add_argument("--min-photos", type=int, default=_default("min_photos"),
                   help="draw as batch identities only those with at least this many distinct photos "
                        "(default: %(default)s)")
    g.add_argument("--negatives", type=int, default=_default("negatives"), metavar="N",
                   help="add N images per batch, one each from identities that are not batch identities "
                        "(single-photo ones): negatives only (default: %(default)s)")
    g.add_argument("--clean-fraction", type=float, default=_default("clean_fraction"),
                   help="share of clean images among each identity's K (default: %(default)s)")
    g = p.add_argument_group("run")
    g.add_argument("--out", default=_default("out"), metavar="FILE", help="checkpoint path (default: %(default)s)")
    g.add_argument("--device", default="auto", help="auto|cpu|cuda (default: %(default)s)")
    g.add_argument("--seed", type=int, default=_default("seed"), help="random seed (default: %(default)s)")
    g.add_argument("--amp", action=argparse.BooleanOptionalAction, default=True,
                   help="bf16/fp16 autocast on CUDA (default: on; no effect on CPU)")
    g.add_argument("--compile", action="store_true", help="torch.compile the model (opt-in)")
    g.add_argument("--resume", action="store_true", help="continue from <out stem>.last.pth")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    g.add_argument("--gather", action=argparse.BooleanOptionalAction, default=_default("gather"),
                   help="under torchrun: mine triplets over the global batch, all-gathered from every process; "
                        "--no-gather: each process mines its own share (default: gather; no effect in one process)")


def train_config_from_args(a: argparse.Namespace) -> TrainConfig:
    base = TrainConfig.original() if a.recipe == "original" else TrainConfig()
    kw = dict(
        data=(a.data[0] if len(a.data) == 1 else list(a.data)) if a.data else a.data_default, val_data=a.val_data, epochs=a.epochs, image_size=a.image_size, lr=a.lr,
        weight_decay=a.weight_decay, backbone=a.backbone, pretrained=a.pretrained, weights=a.weights,
        embedding_dim=a.embedding_dim, out=a.out, device=a.device, seed=a.seed, workers=a.workers,
        p=a.p, k=a.k, distance=a.distance, min_photos=a.min_photos, soft_margin=a.soft_margin, clean_fraction=a.clean_fraction,
        include_distortions=a.include_distortions, steps_per_epoch=a.steps_per_epoch, amp=a.amp,
        compile=a.compile, resume=a.resume, progress=a.progress, max_seconds=a.max_seconds, loss=a.loss,
        class_margin=a.class_margin, class_scale=a.class_scale, gather=a.gather, augment=a.augment,
        negatives=a.negatives, face_crop=a.face_crop, restore=a.restore, synth_distortions=a.synth_distortions,
        init=a.init,
    )
    if a.recipe != "original":
        kw.update(warmup=a.warmup, grad_clip=a.grad_clip, patience=a.patience)
    for name in ("sampler", "miner", "margin", "neck", "normalize_embeddings"):
        if getattr(a, name) is not None:
            kw[name] = getattr(a, name)
    if a.batch_size is not None:
        kw["batch_size"] = a.batch_size
        if (kw.get("sampler") or base.sampler) == "pk":
            kw["k"] = max(2, a.batch_size // a.p)
    return base.replace(**kw)


def cmd_train(a: argparse.Namespace) -> int:
    from facelib.training.trainer import train

    train(train_config_from_args(a))
    return 0


def add_test_args(p: argparse.ArgumentParser, data_default: str = "val") -> None:
    p.add_argument("--data", default=data_default, help="probe folder (default: %(default)s)")
    p.add_argument("--train-data", default="train",
                   help="training folder: the gallery for --protocol closed (default: %(default)s)")
    p.add_argument("--checkpoint", default="tb_model.pth", help="model checkpoint (default: %(default)s)")
    p.add_argument("--protocol", choices=PROTOCOLS, default="auto",
                   help="closed = one gallery entry per train class (the original); gallery = clean images of "
                        "each val identity vs their distorted copies (FACECOM's); cross-photo = a probe never "
                        "meets its own source photo; auto = closed if val identities are in train, else "
                        "cross-photo (default: %(default)s)")
    p.add_argument("--gallery", choices=GALLERY_MODES, default="mean",
                   help="gallery representative per identity (default: %(default)s)")
    p.add_argument("--out", default=".", help="folder for metrics.json and figures (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=64, help="embedding batch size (default: %(default)s)")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers (default: %(default)s)")
    p.add_argument("--device", default="auto", help="auto|cpu|cuda (default: %(default)s)")
    p.add_argument("--no-baseline", dest="baseline", action="store_false",
                   help="skip the pixel-cosine baseline")
    p.add_argument("--seed", type=int, default=0, help="seed for sampled verification pairs (default: %(default)s)")
    p.add_argument("--quiet-report", action="store_true", help="do not print the per-class classification report")
    p.add_argument("--target-far", type=float, default=EvalConfig.target_far, metavar="FAR",
                   help="choose the decision threshold (metrics.json 'threshold', read by `enroll`) at this "
                        "false accept rate on the verification pairs (default: %(default)g)")


def cmd_test(a: argparse.Namespace) -> int:
    from facelib.evaluation.report import run_test

    cfg = EvalConfig(data=a.data, train_data=a.train_data, checkpoint=a.checkpoint, protocol=a.protocol,
                     gallery=a.gallery, out=a.out, batch_size=a.batch_size, workers=a.workers, device=a.device,
                     baseline=a.baseline, seed=a.seed, target_far=a.target_far)
    run_test(cfg, print_report=not a.quiet_report)
    return 0


def cmd_embed(a: argparse.Namespace) -> int:
    import numpy as np

    from facelib.evaluation.extract import embed_checkpoint

    es, folder, _ = embed_checkpoint(a.checkpoint, a.data, device=a.device, batch_size=a.batch_size,
                                     workers=a.workers)
    print(folder.report.summary())
    es.paths = np.array([s.rel for s in folder.samples])  # relative to --data, as the npz contract says
    es.to_npz(a.out)
    print(f"wrote {len(es.embeddings)} x {es.embeddings.shape[1]} embeddings to {a.out}")
    return 0


def _load_model(checkpoint: str, device: str):
    from facelib.evaluation.extract import resolve_device
    from facelib.training.model import load_checkpoint
    from facelib.recognition.gallery import model_fingerprint

    dev = resolve_device(device)
    model, spec, _ = load_checkpoint(checkpoint, dev)
    return model, spec, model_fingerprint(model.state_dict(), spec), dev


def cmd_enroll(a: argparse.Namespace) -> int:
    from facelib.data.folders import scan_folder
    from facelib.evaluation.extract import embed_images
    from facelib.errors import ConfigError
    from facelib.recognition.gallery import build_gallery, threshold_from_metrics

    if a.threshold is not None and a.metrics is not None:
        raise ConfigError("give --threshold or --metrics, not both")
    model, spec, fp, dev = _load_model(a.checkpoint, a.device)
    threshold, source = (a.threshold, "--threshold") if a.threshold is not None else (None, "")
    if a.metrics is not None:
        threshold, source = threshold_from_metrics(a.metrics, fp)
    folder = scan_folder(a.data, include_distortions=False)
    print(folder.report.summary())
    emb = embed_images(model, folder.paths, spec, batch_size=a.batch_size, workers=a.workers, device=dev)
    g = build_gallery(emb, [s.identity for s in folder.samples], fp, spec.image_size, mode=a.mode,
                      threshold=threshold, threshold_source=source)
    g.save(a.out)
    t = f"threshold {threshold:.4f} ({source})" if threshold is not None else \
        "no threshold (identify names the best match for every photo unless given --threshold)"
    print(f"wrote {a.out}: {len(g)} identities from {int(g.counts.sum())} clean photos ({a.mode}), "
          f"model {fp}, {t}")
    return 0


def cmd_identify(a: argparse.Namespace) -> int:
    import json

    from facelib.evaluation.extract import embed_images
    from facelib.errors import ConfigError, DataError
    from facelib.recognition.gallery import Gallery, identify, image_paths

    if a.top_k < 1:
        raise ConfigError(f"--top-k must be at least 1, got {a.top_k}")
    aligner = None
    if a.align:  # before the model loads: a missing dlib fails at once
        from facelib.data.align import Aligner

        aligner = Aligner(a.detector)
    gallery = Gallery.load(a.gallery)
    model, spec, fp, dev = _load_model(a.checkpoint, a.device)
    gallery.check_model(fp, f"checkpoint {a.checkpoint}")
    paths, skipped = image_paths(a.paths)
    for path, why in skipped:
        print(f"skipped {path}: {why}", file=sys.stderr)
    if not paths:
        raise DataError(f"no readable image among {len(skipped)} file(s)" if skipped else "no image files found")
    if aligner is not None:
        import tempfile

        from facelib.data.align import align_to_folder

        with tempfile.TemporaryDirectory(prefix="facelib-align-") as tmp:
            aligned, found = align_to_folder(paths, tmp, aligner)  # 224 px, FACECOM's framing
            emb = embed_images(model, aligned, spec, batch_size=a.batch_size, workers=a.workers, device=dev)
        missed = [str(p) for p, ok in zip(paths, found) if not ok]
        if missed:
            print(f"--align: no face found in {len(missed)} of {len(paths)} photo(s), used the centred square: "
                  + ", ".join(missed[:5]) + (" ..." if len(missed) > 5 else ""), file=sys.stderr)
    else:
        emb = embed_images(model, paths, spec, batch_size=a.batch_size, workers=a.workers, device=dev)
    t = a.threshold if a.threshold is not None else gallery.threshold
    for m in identify(gallery, emb, [str(p) for p in paths], top_k=a.top_k, threshold=t):
        if a.json:
            print(json.dumps(m.to_dict()))
        else:
            who = m.identity if m.identity is not None else f"unknown (best {m.top[0][0]} < threshold {t:.3f})"
            extra = "  top: " + ", ".join(f"{n} {s:.3f}" for n, s in m.top) if a.top_k > 1 else ""
            print(f"{m.path}\t{who}\t{m.score:.3f}{extra}")
    if skipped:
        print(f"skipped {len(skipped)} unreadable file(s)", file=sys.stderr)
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from facelib.recognition.export import export_onnx

    model, spec, fp, _ = _load_model(a.checkpoint, "cpu")
    export_onnx(model, spec, a.out)
    print(f"wrote {a.out}: input 'images' float32 [N, 3, {spec.image_size}, {spec.image_size}] RGB in [0, 1]; "
          f"output 'embeddings' [N, {spec.embedding_dim}] L2-normalised; model {fp}")
    return 0


def cmd_distort(a: argparse.Namespace) -> int:
    from facelib.data.distortions import distort_folder

    counts = distort_folder(a.src, a.out, kinds=a.kinds, seed=a.seed)
    print(f"wrote {a.out}: " + ", ".join(f"{v} {k}" for k, v in counts.items() if not isinstance(v, (dict, list))))
    return 0


def cmd_synth(a: argparse.Namespace) -> int:
    from facelib.data.synthetic import make_dataset

    info = make_dataset(a.out, identities=a.identities, photos=a.photos, image_size=a.image_size, seed=a.seed)
    verb = "reused" if info.get("reused") else "wrote"
    print(f"{verb} synthetic FACECOM-layout data set in {a.out}: "
          + ", ".join(f"{k} {v}" for k, v in info.items() if isinstance(v, (int, float)) and k != "reused"))
    return 0


def cmd_demo(a: argparse.Namespace) -> int:
    """Synthetic data -> a short training run with the smoke profile's recipe -> evaluation, under ``--out``."""
    from facelib.config import get_profile
    from facelib.evaluation.report import run_test
    from facelib.data.synthetic import make_dataset
    from facelib.training.trainer import train

    out = Path(a.out)
    t0 = time.perf_counter()
    data = out / "data"
    smoke = get_profile("smoke")
    info = make_dataset(data, seed=a.seed, **smoke.synth)
    print(("reused" if info.get("reused") else "made") + f" synthetic data in {data}")
    cfg = smoke.train.replace(
        data=str(data / "train"), val_data=str(data / "val"), out=str(out / "tb_model.pth"), workers=a.workers,
        seed=a.seed, device=a.device, backbone=a.backbone,
        **{k: v for k, v in dict(epochs=a.epochs, steps_per_epoch=a.steps).items() if v is not None},
    )
    train(cfg)
    run_test(EvalConfig(data=str(data / "val"), train_data=str(data / "train"), checkpoint=cfg.out,
                        out=str(out), device=a.device, workers=a.workers), print_report=False)
    print(f"\ndemo finished in {time.perf_counter() - t0:.0f} s. Files:")
    for name in ("tb_model.pth", "history.json", "metrics.json", "confusion_matrix.png"):
        print(f"  {out / name}")
    return 0


def add_align_args(p: argparse.ArgumentParser) -> None:
    from facelib.data.align import AUTO_UPSAMPLE_BELOW, DETECTORS, NO_FACE

    p.add_argument("src", help="FACECOM-layout folder: <identity>/*.jpg, optionally <identity>/distortion/")
    p.add_argument("out", help="output folder: new, empty, or the output of an earlier align run (overwritten)")
    p.add_argument("--detector", choices=DETECTORS, default="hog",
                   help="dlib face detector: hog (fast) or cnn (MMOD, about 1 image/s on a CPU) (default: %(default)s)")
    p.add_argument("--size", type=int, default=224, metavar="PX", help="output side (default: %(default)s)")
    p.add_argument("--no-face", choices=NO_FACE, default="keep",
                   help="a clean photo without a detected face: keep (centred square) or skip (left out with "
                        "its distorted copies); both are counted and named (default: %(default)s)")
    p.add_argument("--upsample", type=int, default=None, metavar="N",
                   help=f"detector upsampling, 0-4 (default: 1 when the shorter side is below "
                        f"{AUTO_UPSAMPLE_BELOW} px, else 0)")


def cmd_align(a: argparse.Namespace) -> int:
    from facelib.data.align import align_folder

    report = align_folder(a.src, a.out, detector=a.detector, size=a.size, no_face=a.no_face, upsample=a.upsample)
    print(report.summary())
    return 0


def add_inference_args(p: argparse.ArgumentParser) -> None:
    """Batch size, DataLoader workers and device of a command that embeds images."""
    p.add_argument("--batch-size", type=int, default=64, help="(default: %(default)s)")
    p.add_argument("--workers", type=int, default=2, help="(default: %(default)s)")
    p.add_argument("--device", default="auto", help="auto|cpu|cuda (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    from facelib import __version__

    parser = argparse.ArgumentParser(
        prog="facelib", description="Face recognition by deep metric learning (triplet loss on a timm embedder).",
    )
    parser.add_argument("--version", action="version", version=f"facelib {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("train", help="train an embedder with triplet loss",
                       description=TRAIN_DESCRIPTION)
    add_train_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("test", help="evaluate a checkpoint: metrics.json, report, confusion matrix",
                       description=TEST_DESCRIPTION)
    add_test_args(p)
    p.set_defaults(func=cmd_test)

    p = sub.add_parser("embed", help="write embeddings of a folder to .npz",
                       description="Embed every image of a folder: npz with embeddings, paths, identities, "
                                   "distortions, photos.")
    p.add_argument("--checkpoint", default="tb_model.pth", help="model checkpoint (default: %(default)s)")
    p.add_argument("--data", required=True, help="FACECOM-layout folder to embed")
    p.add_argument("--out", required=True, help="output .npz file")
    add_inference_args(p)
    p.set_defaults(func=cmd_embed)

    from facelib.recognition.gallery import ENROLL_MODES

    p = sub.add_parser("enroll", help="enrol the identities of a folder into a gallery file",
                       description="Embed the clean photos of a FACECOM-layout folder (<identity>/*.jpg) into a "
                                   "gallery .npz: one row per identity, with the model's fingerprint and the "
                                   "decision threshold.")
    p.add_argument("--checkpoint", default="tb_model.pth", help="model checkpoint (default: %(default)s)")
    p.add_argument("--data", required=True, help="folder with one sub-folder of photos per identity")
    p.add_argument("--out", required=True, help="gallery file to write (.npz)")
    p.add_argument("--threshold", type=float, default=None, help="cosine score below which a photo is unknown")
    p.add_argument("--metrics", default=None, metavar="JSON",
                   help="take the threshold from a metrics.json written by `facelib test`")
    p.add_argument("--mode", choices=ENROLL_MODES, default="mean",
                   help="mean = one row per identity (mean of its clean photos); all = one row per photo, an "
                        "identity scores its best photo (default: %(default)s)")
    add_inference_args(p)
    p.set_defaults(func=cmd_enroll)

    p = sub.add_parser("identify", help="name the people in photos against an enrolled gallery",
                       description="For each image (folders are searched recursively): the best gallery identity "
                                   "and its cosine score, or 'unknown' below the threshold.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    p.add_argument("--checkpoint", default="tb_model.pth", help="model checkpoint (default: %(default)s)")
    p.add_argument("--gallery", required=True, help="gallery file written by `facelib enroll`")
    p.add_argument("--threshold", type=float, default=None, help="override the gallery's threshold")
    p.add_argument("--top-k", type=int, default=1, help="identities listed per photo (default: %(default)s)")
    p.add_argument("--json", action="store_true",
                   help='one JSON object per line: {"path", "identity" (null if unknown), "score", "top"}')
    p.add_argument("--align", action="store_true",
                   help="detect and align each photo's face first, as `facelib align` does (needs facelib[align]); "
                        "use it for raw photos when the model was trained on `facelib align` output or FACECOM")
    p.add_argument("--detector", choices=("hog", "cnn"), default="hog",
                   help="face detector of --align (default: %(default)s)")
    add_inference_args(p)
    p.set_defaults(func=cmd_identify)

    from facelib.recognition.export import EXPORT_FORMATS

    p = sub.add_parser("export", help="export the embedder to ONNX",
                       description="Write the embedder as ONNX: input float32 [N, 3, S, S] RGB in [0, 1] resized "
                                   "to S x S, normalisation inside, output L2-normalised embeddings.")
    p.add_argument("--checkpoint", default="tb_model.pth", help="model checkpoint (default: %(default)s)")
    p.add_argument("--format", choices=EXPORT_FORMATS, default="onnx", help="(default: %(default)s)")
    p.add_argument("--out", required=True, help="output file (.onnx)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("align", help="detect faces and align them into FACECOM's framing (needs facelib[align])",
                       description="Detect the largest face of every clean photo (dlib), map its eyes and nose "
                                   "onto FACECOM's framing and write SRC's layout to OUT as JPEG. Distorted "
                                   "copies get their clean photo's transform.")
    add_align_args(p)
    p.set_defaults(func=cmd_align)

    from facelib.data.folders import DISTORTION_KINDS

    p = sub.add_parser("distort", help="write the seven FACECOM distortions of a folder",
                       description="Copy a folder-per-identity data set and add <identity>/distortion/"
                                   "<stem>_<kind>.jpg for every clean image.")
    p.add_argument("--src", required=True, help="source folder, <identity>/*.jpg")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--kinds", nargs="+", choices=DISTORTION_KINDS, default=list(DISTORTION_KINDS),
                   help="distortions to write (default: all seven)")
    p.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    p.set_defaults(func=cmd_distort)

    p = sub.add_parser("synth", help="make the synthetic demo data set (procedural faces)",
                       description="Write a synthetic FACECOM-layout data set: train/ and val/ on disjoint "
                                   "identities, distortions included.")
    p.add_argument("--out", default="data/synthetic", help="output folder (default: %(default)s)")
    p.add_argument("--identities", type=int, default=40, help="number of identities (default: %(default)s)")
    p.add_argument("--photos", type=int, default=6, help="clean photos per identity (default: %(default)s)")
    p.add_argument("--image-size", type=int, default=64, metavar="PX", help="(default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("demo", help="synthetic data -> short training -> evaluation, in a few minutes on CPU",
                       description="The main job on the embedded default data: makes the synthetic set if "
                                   "missing, trains a few epochs, evaluates.")
    p.add_argument("--out", default="facelib-demo", help="output folder (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=None, help="(default: the smoke profile's)")
    p.add_argument("--steps", type=int, default=None, help="steps per epoch (default: the smoke profile's)")
    p.add_argument("--backbone", default="resnet18", help="timm model name (default: %(default)s)")
    p.add_argument("--workers", type=int, default=2, help="(default: %(default)s)")
    p.add_argument("--device", default="auto", help="(default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    p.set_defaults(func=cmd_demo)
    return parser


def run(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Call a command; user errors become one ``error:`` line and exit status 2."""
    from facelib.errors import FacelibError

    try:
        return func(args)
    except FacelibError as e:
        if os.environ.get("FACELIB_DEBUG"):
            raise
        if os.environ.get("WORLD_SIZE", "1") in ("", "1") or os.environ.get("RANK", "0") == "0":
            print(f"error: {e}", file=sys.stderr)  # under torchrun every rank meets the error; rank 0 says it
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return run(args.func, args)


def legacy_main(command: str, argv: Sequence[str] | None = None) -> int:
    """``python train.py`` / ``python test.py``: the original scripts' defaults, same flags as the CLI."""
    argv = list(sys.argv[1:] if argv is None else argv)
    description = TRAIN_DESCRIPTION if command == "train" else TEST_DESCRIPTION
    parser = argparse.ArgumentParser(prog=f"{command}.py", description=description)
    if command == "train":
        add_train_args(parser)
        return run(cmd_train, parser.parse_args(argv))
    add_test_args(parser)
    return run(cmd_test, parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
