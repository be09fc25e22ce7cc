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
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from facelib.commands import (
    COMMAND_CONFIGS,
    AlignConfig,
    DistortConfig,
    EmbedConfig,
    EnrollConfig,
    ExportConfig,
    IdentifyConfig,
    SynthConfig,
)
from facelib.config import RECIPES, TrainConfig

TRAIN_DESCRIPTION = "Train an embedder on a FACECOM-layout folder."
TEST_DESCRIPTION = "Evaluate a checkpoint on a FACECOM-layout folder."
# The flags' layout: which TrainConfig fields each help group offers, in order. Help text, choices, defaults
# and metavars come from the fields (facelib.config.setting); "recipe" is the one flag that is not a field.
TRAIN_GROUPS: dict[str, tuple[str, ...]] = {
    "data": ("data", "val_data", "include_distortions", "synth_distortions", "face_crop", "restore", "augment",
             "workers", "frame_cache"),
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
    """The flag of config field ``f`` as its registry entry describes it (:func:`facelib.config.setting`); a
    field without a default is a required flag."""
    m = f.metadata
    flag = m["flag"] or "--" + f.name.replace("_", "-")
    kw: dict[str, Any] = dict(help=m["help"].replace("{default}", _shown(f.default)))
    required = f.default is dataclasses.MISSING
    default = None if m["cli"] == "if_given" or required else f.default
    if m["kind"] == "bool":
        p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, **kw)
    elif m["kind"] == "true":
        p.add_argument(flag, action="store_true", **kw)
    elif m["kind"] == "false":
        p.add_argument(flag, dest=f.name, action="store_false", **kw)
    elif m["kind"] == "append":
        p.add_argument(flag, action="append", default=None, metavar=m["metavar"], **kw)
    else:
        union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        alternatives = typing.get_args(hint) if union else (hint,)
        scalar = next((t for t in alternatives if t in (int, float)), None)
        many = any(typing.get_origin(t) in (list, tuple) for t in alternatives)
        if many:
            kw["nargs"] = "+"
        if m["kind"] == "positional":
            p.add_argument(f.name, type=scalar, choices=m["choices"], metavar=m["metavar"], **kw)
        else:
            kw.update({"required": True} if required else {"default": default})
            p.add_argument(flag, type=scalar, choices=m["choices"], metavar=m["metavar"], **kw)


def add_config_args(p: argparse._ActionsContainer, cls: type, names: Sequence[str] | None = None,
                    extra: dict[str, Callable[[argparse._ActionsContainer], Any]] | None = None) -> None:
    """The flags of ``cls``'s fields ``names``, in order (default: the fields ``cls`` declares, then those of its
    shared groups, :class:`facelib.config.Runtime` and the like); a name in ``extra`` adds a flag that is no
    field."""
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    if names is None:
        declared = (n for k in cls.__mro__ for n in vars(k).get("__annotations__", {}))
        names = [n for n in dict.fromkeys(declared) if n in by_name]
    for name in names:
        if extra and name in extra:
            extra[name](p)
        else:
            add_field_arg(p, by_name[name], hints[name])


def config_from_args(cls: type, a: argparse.Namespace) -> Any:
    """The ``cls`` config of the parsed flags (every field has its flag)."""
    return cls(**{f.name: getattr(a, f.name) for f in dataclasses.fields(cls)})


def add_train_args(p: argparse.ArgumentParser) -> None:
    recipe = {"recipe": lambda g: g.add_argument(
        "--recipe", choices=RECIPES, default=RECIPES[0],
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
    kw["data"] = (a.data[0] if len(a.data) == 1 else list(a.data)) if a.data else base.data
    if a.batch_size is not None and (kw.get("sampler") or base.sampler) == "pk":
        kw["k"] = max(2, a.batch_size // a.p)
    return base.replace(**kw)


def add_test_args(p: argparse.ArgumentParser) -> None:
    quiet = {"quiet_report": lambda g: g.add_argument("--quiet-report", action="store_true",
                                                      help="do not print the per-class classification report")}
    add_config_args(p, COMMAND_CONFIGS["test"], TEST_FLAGS, quiet)


def cmd_embed(a: EmbedConfig) -> int:
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
    from facelib.models.checkpoint import load_checkpoint, model_fingerprint
    from facelib.runtime import resolve_device

    dev = resolve_device(device)
    model, spec, _ = load_checkpoint(checkpoint, dev)
    return model, spec, model_fingerprint(model.state_dict(), spec), dev


def cmd_enroll(a: EnrollConfig) -> int:
    from facelib.data.folders import scan_folder
    from facelib.evaluation.extract import embed_images
    from facelib.recognition.gallery import build_gallery, threshold_from_metrics

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


def cmd_identify(a: IdentifyConfig) -> int:
    import json

    from facelib.errors import DataError
    from facelib.evaluation.extract import embed_images
    from facelib.recognition.gallery import Gallery, identify, image_paths

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


def cmd_export(a: ExportConfig) -> int:
    from facelib.recognition.export import export_onnx

    model, spec, fp, _ = _load_model(a.checkpoint, "cpu")
    export_onnx(model, spec, a.out)
    print(f"wrote {a.out}: input 'images' float32 [N, 3, {spec.image_size}, {spec.image_size}] RGB in [0, 1]; "
          f"output 'embeddings' [N, {spec.embedding_dim}] L2-normalised; model {fp}")
    return 0


def cmd_distort(a: DistortConfig) -> int:
    from facelib.data.distortions import distort_folder

    counts = distort_folder(a.src, a.out, kinds=a.kinds, seed=a.seed)
    print(f"wrote {a.out}: " + ", ".join(f"{v} {k}" for k, v in counts.items() if not isinstance(v, (dict, list))))
    return 0


def cmd_synth(a: SynthConfig) -> int:
    from facelib.data.synthetic import make_dataset

    info = make_dataset(a.out, identities=a.identities, photos=a.photos, image_size=a.image_size, seed=a.seed)
    verb = "reused" if info.get("reused") else "wrote"
    print(f"{verb} synthetic FACECOM-layout data set in {a.out}: "
          + ", ".join(f"{k} {v}" for k, v in info.items() if isinstance(v, (int, float)) and k != "reused"))
    return 0




def cmd_align(a: AlignConfig) -> int:
    from facelib.data.align import align_folder

    report = align_folder(a.src, a.out, detector=a.detector, size=a.size, no_face=a.no_face, upsample=a.upsample)
    print(report.summary())
    return 0


@dataclass(frozen=True)
class Command:
    """A ``facelib`` command: its help, its config (``facelib.commands.COMMAND_CONFIGS``: the flags are the
    fields', laid out by ``add_args``; ``make_config``: made from the flags otherwise than field by field) and its
    job, ``"module:function"`` imported when it runs (``--help`` stays torch-free), called with the config and
    the keywords ``options(args)`` makes of the flags that are no field."""

    help: str
    description: str
    job: str
    add_args: Callable[[argparse.ArgumentParser, type], None] = lambda p, cls: add_config_args(p, cls)
    make_config: Callable[[argparse.Namespace], Any] | None = None
    options: Callable[[argparse.Namespace], dict[str, Any]] = lambda a: {}


COMMANDS: dict[str, Command] = {
    "train": Command("train an embedder with triplet loss", TRAIN_DESCRIPTION, "facelib.jobs:train",
                     lambda p, cls: add_train_args(p), train_config_from_args),
    "test": Command("evaluate a checkpoint: metrics.json, report, confusion matrix", TEST_DESCRIPTION,
                    "facelib.evaluation.report:run_test", lambda p, cls: add_test_args(p),
                    options=lambda a: {"print_report": not a.quiet_report}),
    "embed": Command("write embeddings of a folder to .npz",
                     "Embed every image of a folder: npz with embeddings, paths, identities, distortions, photos.",
                     "facelib.cli:cmd_embed"),
    "enroll": Command("enrol the identities of a folder into a gallery file",
                      "Embed the clean photos of a FACECOM-layout folder (<identity>/*.jpg) into a gallery .npz: one "
                      "row per identity, with the model's fingerprint and the decision threshold.",
                      "facelib.cli:cmd_enroll"),
    "identify": Command("name the people in photos against an enrolled gallery",
                        "For each image (folders are searched recursively): the best gallery identity and its cosine "
                        "score, or 'unknown' below the threshold.", "facelib.cli:cmd_identify"),
    "export": Command("export the embedder to ONNX",
                      "Write the embedder as ONNX: input float32 [N, 3, S, S] RGB in [0, 1] resized to S x S, "
                      "normalisation (and the checkpoint's flip test) inside, output L2-normalised embeddings.",
                      "facelib.cli:cmd_export"),
    "align": Command("detect faces and align them into FACECOM's framing (needs facelib[align])",
                     "Detect the largest face of every clean photo (dlib), map its eyes and nose onto FACECOM's "
                     "framing and write SRC's layout to OUT as JPEG. Distorted copies get their clean photo's "
                     "transform.", "facelib.cli:cmd_align"),
    "distort": Command("write the seven FACECOM distortions of a folder",
                       "Copy a folder-per-identity data set and add <identity>/distortion/<stem>_<kind>.jpg for "
                       "every clean image.", "facelib.cli:cmd_distort"),
    "synth": Command("make the synthetic demo data set (procedural faces)",
                     "Write a synthetic FACECOM-layout data set: train/ and val/ on disjoint identities, "
                     "distortions included.", "facelib.cli:cmd_synth"),
    "demo": Command("synthetic data -> short training -> evaluation, in a few minutes on CPU",
                    "The main job on the embedded default data: makes the synthetic set if missing, trains a few "
                    "epochs, evaluates.", "facelib.jobs:demo"),
}


def add_command_args(p: argparse.ArgumentParser, command: str) -> None:
    """The flags of ``command``: its config's fields, laid out by its :class:`Command`."""
    COMMANDS[command].add_args(p, COMMAND_CONFIGS[command])
    p.set_defaults(command=command)


def build_parser() -> argparse.ArgumentParser:
    from facelib import __version__

    parser = argparse.ArgumentParser(
        prog="facelib", description="Face recognition by deep metric learning (triplet loss on a timm embedder).",
    )
    parser.add_argument("--version", action="version", version=f"facelib {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, c in COMMANDS.items():
        add_command_args(sub.add_parser(name, help=c.help, description=c.description), name)
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


def run(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None) -> int:
    """Run the command of the parsed flags: its config made from them, then its job (exit status 0). User errors
    become one ``error:`` line and exit status 2. A library error names config fields (``pretrained=False``); the
    flags that set them are added from ``parser``."""
    import importlib

    from facelib.errors import FacelibError

    c = COMMANDS[args.command]
    try:
        cfg = c.make_config(args) if c.make_config else config_from_args(COMMAND_CONFIGS[args.command], args)
        module, name = c.job.split(":")
        status = getattr(importlib.import_module(module), name)(cfg, **c.options(args))
        return status if isinstance(status, int) else 0
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
    return run(args, command_parser(parser, args.command))


def legacy_main(command: str, argv: Sequence[str] | None = None) -> int:
    """``python train.py`` / ``python test.py``: the original scripts' defaults, same flags as the CLI."""
    argv = list(sys.argv[1:] if argv is None else argv)
    description = TRAIN_DESCRIPTION if command == "train" else TEST_DESCRIPTION
    parser = argparse.ArgumentParser(prog=f"{command}.py", description=description)
    add_command_args(parser, command)
    return run(parser.parse_args(argv), parser)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
