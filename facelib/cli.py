"""The ``facelib`` console script: ``train``, ``test``, ``embed``, ``enroll``, ``identify``, ``export``,
``align``, ``distort``, ``synth``, ``demo``.

Errors caused by input (missing folders, bad checkpoints, unavailable weights) are
printed as one ``error:`` line with exit status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import typing
from typing import Any, Callable, Sequence

from facelib.config import DEFAULT_CHECKPOINT, ENROLL_MODES, EvalConfig, TrainConfig

TRAIN_DESCRIPTION = "Train an embedder on a FACECOM-layout folder."
TEST_DESCRIPTION = "Evaluate a checkpoint on a FACECOM-layout folder."
# The flags' layout: which TrainConfig fields each help group offers, in order. Help text, choices, defaults
# and metavars come from the fields (facelib.config.setting); "recipe" is the one flag that is not a field.
TRAIN_GROUPS: dict[str, tuple[str, ...]] = {
    "data": ("data", "val_data", "include_distortions", "synth_distortions", "face_crop", "restore", "augment",
             "workers"),
    "model": ("backbone", "pretrained", "weights", "init", "embedding_dim", "image_size", "neck", "flip_test"),
    "optimisation": ("epochs", "lr", "weight_decay", "batch_size", "steps_per_epoch", "max_seconds", "warmup",
                     "grad_clip", "patience"),
    "loss": ("loss", "class_margin", "class_scale"),
    "teacher": ("teacher", "distill_weight", "distill", "teacher_cache", "unlabelled", "unlabelled_per_batch"),
    "triplets": ("recipe", "sampler", "miner", "p", "k", "margin", "distance", "soft_margin",
                 "normalize_embeddings", "min_photos", "negatives", "clean_fraction"),
    "run": ("out", "device", "seed", "amp", "compile", "resume", "progress", "gather"),
}
TEST_FLAGS = ("data", "train_data", "checkpoint", "protocol", "gallery", "out", "batch_size", "workers", "device",
              "baseline", "seed", "quiet_report", "target_far")


def _shown(value: Any) -> str:
    return ("yes" if value else "no") if isinstance(value, bool) else str(value)


def add_field_arg(p: argparse._ActionsContainer, f: dataclasses.Field, hint: Any) -> None:
    """The flag of config field ``f`` as its registry entry describes it (:func:`facelib.config.setting`)."""
    m = f.metadata
    flag = m["flag"] or "--" + f.name.replace("_", "-")
    kw: dict[str, Any] = dict(help=m["help"].replace("{default}", _shown(f.default)))
    default = None if m["cli"] == "if_given" else f.default
    if m["kind"] == "bool":
        p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, **kw)
    elif m["kind"] == "true":
        p.add_argument(flag, action="store_true", **kw)
    elif m["kind"] == "false":
        p.add_argument(flag, dest=f.name, action="store_false", **kw)
    elif m["kind"] == "append":
        p.add_argument(flag, action="append", default=None, metavar=m["metavar"], **kw)
    else:
        scalar = next((t for t in (typing.get_args(hint) or (hint,)) if t in (int, float)), None)
        p.add_argument(flag, type=scalar, choices=m["choices"], default=default, metavar=m["metavar"], **kw)


def add_config_args(p: argparse._ActionsContainer, cls: type, names: Sequence[str],
                    extra: dict[str, Callable[[argparse._ActionsContainer], Any]]) -> None:
    """The flags of ``cls``'s fields ``names``, in order; a name in ``extra`` adds a flag that is no field."""
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for name in names:
        if name in extra:
            extra[name](p)
        else:
            add_field_arg(p, by_name[name], hints[name])


def add_train_args(p: argparse.ArgumentParser, data_default: str = "train") -> None:
    p.set_defaults(data_default=data_default)
    recipe = {"recipe": lambda g: g.add_argument(
        "--recipe", choices=("default", "original"), default="default",
        help="'original' = the seed scripts: random triplets, 3 passes each, margin 1.0")}
    for title, names in TRAIN_GROUPS.items():
        add_config_args(p.add_argument_group(title), TrainConfig, names, recipe)


def train_config_from_args(a: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of the parsed flags: the recipe's config with every flag's value, except flags left
    unset that the recipe decides (``cli="if_given"``) and, for ``--recipe original``, its own schedule
    (``cli="default_recipe"``)."""
    base = TrainConfig.original() if a.recipe == "original" else TrainConfig()
    kw = {}
    for f in dataclasses.fields(TrainConfig):
        cli, value = f.metadata["cli"], getattr(a, f.name)
        if (cli == "if_given" and value is None) or (cli == "default_recipe" and a.recipe == "original"):
            continue
        kw[f.name] = value
    kw["data"] = (a.data[0] if len(a.data) == 1 else list(a.data)) if a.data else a.data_default
    if a.batch_size is not None and (kw.get("sampler") or base.sampler) == "pk":
        kw["k"] = max(2, a.batch_size // a.p)
    return base.replace(**kw)


def cmd_train(a: argparse.Namespace) -> int:
    from facelib.jobs import train

    train(train_config_from_args(a))
    return 0


def add_test_args(p: argparse.ArgumentParser, data_default: str = "val") -> None:
    quiet = {"quiet_report": lambda g: g.add_argument("--quiet-report", action="store_true",
                                                      help="do not print the per-class classification report")}
    add_config_args(p, EvalConfig, TEST_FLAGS, quiet)
    if data_default != EvalConfig.data:
        p.set_defaults(data=data_default)


def cmd_test(a: argparse.Namespace) -> int:
    from facelib.evaluation.report import run_test

    cfg = EvalConfig(**{f.name: getattr(a, f.name) for f in dataclasses.fields(EvalConfig)})
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
    from facelib.runtime import resolve_device
    from facelib.training.checkpoint import load_checkpoint
    from facelib.training.checkpoint import model_fingerprint

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
    from facelib.jobs import demo

    demo(a.out, epochs=a.epochs, steps=a.steps, backbone=a.backbone, workers=a.workers, device=a.device,
         seed=a.seed)
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


def add_model_args(p: argparse.ArgumentParser, data: str | None, out: str | None) -> None:
    """``--checkpoint`` and, where given, the help of the required ``--data`` and ``--out``."""
    p.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT, help="model checkpoint (default: %(default)s)")
    for flag, text in (("--data", data), ("--out", out)):
        if text is not None:
            p.add_argument(flag, required=True, help=text)


def add_embed_args(p: argparse.ArgumentParser) -> None:
    add_model_args(p, "FACECOM-layout folder to embed", "output .npz file")
    add_inference_args(p)


def add_enroll_args(p: argparse.ArgumentParser) -> None:
    add_model_args(p, "folder with one sub-folder of photos per identity", "gallery file to write (.npz)")
    p.add_argument("--threshold", type=float, default=None, help="cosine score below which a photo is unknown")
    p.add_argument("--metrics", default=None, metavar="JSON",
                   help="take the threshold from a metrics.json written by `facelib test`")
    p.add_argument("--mode", choices=ENROLL_MODES, default="mean",
                   help="mean = one row per identity (mean of its clean photos); all = one row per photo, an "
                        "identity scores its best photo (default: %(default)s)")
    add_inference_args(p)


def add_identify_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    add_model_args(p, None, None)
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


def add_export_args(p: argparse.ArgumentParser) -> None:
    from facelib.recognition.export import EXPORT_FORMATS

    add_model_args(p, None, None)
    p.add_argument("--format", choices=EXPORT_FORMATS, default="onnx", help="(default: %(default)s)")
    p.add_argument("--out", required=True, help="output file (.onnx)")


def add_distort_args(p: argparse.ArgumentParser) -> None:
    from facelib.data.folders import DISTORTION_KINDS

    p.add_argument("--src", required=True, help="source folder, <identity>/*.jpg")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--kinds", nargs="+", choices=DISTORTION_KINDS, default=list(DISTORTION_KINDS),
                   help="distortions to write (default: all seven)")
    add_seed_arg(p, "(default: %(default)s)")


def add_synth_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="data/synthetic", help="output folder (default: %(default)s)")
    p.add_argument("--identities", type=int, default=40, help="number of identities (default: %(default)s)")
    p.add_argument("--photos", type=int, default=6, help="clean photos per identity (default: %(default)s)")
    p.add_argument("--image-size", type=int, default=64, metavar="PX", help="(default: %(default)s)")
    add_seed_arg(p, "(default: %(default)s)")


def add_demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="facelib-demo", help="output folder (default: %(default)s)")
    for flag, what in (("--epochs", ""), ("--steps", "steps per epoch ")):
        p.add_argument(flag, type=int, default=None, help=f"{what}(default: the smoke profile's)")
    p.add_argument("--backbone", default="resnet18", help="timm model name (default: %(default)s)")
    p.add_argument("--workers", type=int, default=2, help="(default: %(default)s)")
    p.add_argument("--device", default="auto", help="(default: %(default)s)")
    add_seed_arg(p, "(default: %(default)s)")


def add_seed_arg(p: argparse.ArgumentParser, text: str) -> None:
    p.add_argument("--seed", type=int, default=0, help=text)


# name, one-line help, description, the function that adds its flags, the function that runs it
COMMANDS: tuple[tuple[str, str, str, Callable[[argparse.ArgumentParser], None],
                      Callable[[argparse.Namespace], int]], ...] = (
    ("train", "train an embedder with triplet loss", TRAIN_DESCRIPTION, add_train_args, cmd_train),
    ("test", "evaluate a checkpoint: metrics.json, report, confusion matrix", TEST_DESCRIPTION, add_test_args,
     cmd_test),
    ("embed", "write embeddings of a folder to .npz",
     "Embed every image of a folder: npz with embeddings, paths, identities, distortions, photos.",
     add_embed_args, cmd_embed),
    ("enroll", "enrol the identities of a folder into a gallery file",
     "Embed the clean photos of a FACECOM-layout folder (<identity>/*.jpg) into a gallery .npz: one row per "
     "identity, with the model's fingerprint and the decision threshold.", add_enroll_args, cmd_enroll),
    ("identify", "name the people in photos against an enrolled gallery",
     "For each image (folders are searched recursively): the best gallery identity and its cosine score, or "
     "'unknown' below the threshold.", add_identify_args, cmd_identify),
    ("export", "export the embedder to ONNX",
     "Write the embedder as ONNX: input float32 [N, 3, S, S] RGB in [0, 1] resized to S x S, normalisation "
     "(and the checkpoint's flip test) inside, output L2-normalised embeddings.", add_export_args, cmd_export),
    ("align", "detect faces and align them into FACECOM's framing (needs facelib[align])",
     "Detect the largest face of every clean photo (dlib), map its eyes and nose onto FACECOM's framing and "
     "write SRC's layout to OUT as JPEG. Distorted copies get their clean photo's transform.",
     add_align_args, cmd_align),
    ("distort", "write the seven FACECOM distortions of a folder",
     "Copy a folder-per-identity data set and add <identity>/distortion/<stem>_<kind>.jpg for every clean "
     "image.", add_distort_args, cmd_distort),
    ("synth", "make the synthetic demo data set (procedural faces)",
     "Write a synthetic FACECOM-layout data set: train/ and val/ on disjoint identities, distortions included.",
     add_synth_args, cmd_synth),
    ("demo", "synthetic data -> short training -> evaluation, in a few minutes on CPU",
     "The main job on the embedded default data: makes the synthetic set if missing, trains a few epochs, "
     "evaluates.", add_demo_args, cmd_demo),
)


def build_parser() -> argparse.ArgumentParser:
    from facelib import __version__

    parser = argparse.ArgumentParser(
        prog="facelib", description="Face recognition by deep metric learning (triplet loss on a timm embedder).",
    )
    parser.add_argument("--version", action="version", version=f"facelib {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help, description, add_args, func in COMMANDS:
        p = sub.add_parser(name, help=help, description=description)
        add_args(p)
        p.set_defaults(func=func)
    return parser


def flags_of(parser: argparse.ArgumentParser, fields: Sequence[str]) -> list[str]:
    """The flags of ``parser`` that set the config ``fields`` (``pretrained`` -> ``--pretrained/--no-pretrained``)."""
    out = []
    for name in fields:
        out += ["/".join(a.option_strings) for a in parser._actions if a.dest == name and a.option_strings]
    return out


def command_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Each command's sub-parser, by name."""
    return next((dict(a.choices) for a in parser._actions if isinstance(a, argparse._SubParsersAction)), {})


def command_parser(parser: argparse.ArgumentParser, command: str | None) -> argparse.ArgumentParser:
    """The sub-parser of ``command`` (the parser itself when it has none)."""
    return command_parsers(parser).get(command, parser)


def run(func: Callable[[argparse.Namespace], int], args: argparse.Namespace,
        parser: argparse.ArgumentParser | None = None) -> int:
    """Call a command; user errors become one ``error:`` line and exit status 2. A library error names
    config fields (``pretrained=False``); the flags that set them are added from ``parser``."""
    from facelib.errors import FacelibError

    try:
        return func(args)
    except FacelibError as e:
        if os.environ.get("FACELIB_DEBUG"):
            raise
        flags = flags_of(parser, e.fields) if parser is not None else []
        message = f"{e}" + (f" [flags: {', '.join(flags)}]" if flags else "")
        if os.environ.get("WORLD_SIZE", "1") in ("", "1") or os.environ.get("RANK", "0") == "0":
            print(f"error: {message}", file=sys.stderr)  # under torchrun every rank meets the error; rank 0 says it
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return run(args.func, args, command_parser(parser, args.command))


def legacy_main(command: str, argv: Sequence[str] | None = None) -> int:
    """``python train.py`` / ``python test.py``: the original scripts' defaults, same flags as the CLI."""
    argv = list(sys.argv[1:] if argv is None else argv)
    description = TRAIN_DESCRIPTION if command == "train" else TEST_DESCRIPTION
    parser = argparse.ArgumentParser(prog=f"{command}.py", description=description)
    if command == "train":
        add_train_args(parser)
        return run(cmd_train, parser.parse_args(argv), parser)
    add_test_args(parser)
    return run(cmd_test, parser.parse_args(argv), parser)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
