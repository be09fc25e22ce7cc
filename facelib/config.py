"""The config registry: every setting of a run is a dataclass field carrying its help text, its choices and
the rule its value must meet (``field(metadata=...)`` through :func:`setting`). :meth:`TrainConfig.validate`
runs every rule; the CLI builds its parsers from the fields (``facelib.cli``), the notebook widgets take their
options and ranges from them, and :meth:`TrainConfig.from_overrides` parses ``field=value`` text by the fields'
types. The field groups several commands share live here too; the other commands' configs are in
:mod:`facelib.commands`. Torch-free, so ``--help`` stays fast.

Profiles: ``smoke`` (tiny images, few steps: CPU, CI, notebook checks) and ``full``
(ResNet-50 at 224 px, 20 epochs). ``FACELIB_PROFILE`` picks one; without it, ``full``
when a GPU is present, else ``smoke``.
"""

from __future__ import annotations

import os
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Any, Callable, Iterable, Mapping

from facelib.errors import ConfigError

# Every name a user can choose is defined here, once; the modules build their tables from these tuples
# (tests/test_layout.py checks that they agree) and the CLI and the widgets offer them as choices.
MINERS = ("random", "batch_all", "batch_hard", "semi_hard")  # facelib.training.miners.MINER_TABLE
DISTANCES = ("euclidean", "cosine")  # facelib.training.distances.DISTANCE_TABLE
SAMPLERS = ("pk", "triplets")
# The --loss choices: the keys of facelib.training.losses.LOSS_TABLE (tests/training/test_losses.py checks they
# agree). A list: facelib.training.losses.register_loss appends a loss registered under a new name.
# "none": no metric loss, the distillation term alone (needs a teacher)
LOSSES: list[str] = ["triplet", "arcface", "cosface", "none"]
# The loss margins' defaults, written once: the triplet margin (TrainConfig.margin; the losses and miners default
# to it), each margin softmax's additive margin (TrainConfig.class_margin None picks it) and logit scale
TRIPLET_MARGIN = 0.2
CLASS_MARGINS = {"arcface": 0.5, "cosface": 0.35}
CLASS_SCALE = 30.0
# facelib.training.distill.DistillLoss; a form joined by "+" sums its parts
DISTILL_FORMS = ("projection", "similarity", "neighbours", "prototypes", "projection+similarity",
                 "projection+similarity+prototypes")
# Peak AdamW learning rates. Fine-tuning ImageNet weights: a small rate keeps what they know (timm and
# Bag-of-Tricks use 1e-4 to 3.5e-4). From random initialisation nothing is to be kept, and on a CPU budget
# 10x faster learning wins (measured: lab notes 0.7, 9.12 in docs/lab-notes.md).
FINETUNE_LR = 3e-4
SCRATCH_LR = 3e-3
# AdamW weight decay: without a teacher the original 1e-4; with one 0.05 (DeiT's AdamW value), which
# scored higher on new people at 3,400 steps (seeds 0-2) and after 10,000 (seeds 0, 1) (lab notes 10.13)
WEIGHT_DECAY = 1e-4
TEACHER_WEIGHT_DECAY = 0.05
NECKS = ("bn", "none")
AUGMENTS = ("none", "mild", "strong")  # training augmentation: facelib.models.transforms.build_transform
# facelib.evaluation.protocols.PROTOCOL_RUNNERS; open-set is always reported beside the primary protocol
PROTOCOL_NAMES = ("closed", "gallery", "cross-photo", "verification", "open-set")
PROTOCOLS = ("auto",) + PROTOCOL_NAMES[:-1]  # what `facelib test --protocol` may choose as the primary
GALLERY_MODES = ("single", "mean", "all")  # one row per identity (first photo, mean) or every photo
ENROLL_MODES = tuple(m for m in GALLERY_MODES if m != "single")  # a recogniser's gallery: mean or all
DEFAULT_CHECKPOINT = "tb_model.pth"  # the original scripts' file name: train writes it, the rest read it
RESTORERS = ("none", "median")  # restoration front-end before the face crop: facelib.data.framing.Restore
# The face crop kept by default: the central 55% of the side, where FACECOM's (LFW's) face sits and where
# `facelib align` puts it (measured: lab notes 9.2, 9.11 in docs/lab-notes.md).
DEFAULT_FACE_CROP = 0.55
RECIPES = ("default", "original")  # `facelib train --recipe`: TrainConfig() or TrainConfig.original()
PROFILES = ("smoke", "full")  # get_profile
DISTORTION_KINDS = ("blurred", "foggy", "lowlight", "noisy", "rainy", "resized", "sunny")  # FACECOM's seven
DETECTORS = ("hog", "cnn")  # dlib's face detectors, the default first: facelib.data.align.Aligner
NO_FACE = ("keep", "skip")  # a clean photo without a detected face: facelib.data.align.align_folder
AUTO_UPSAMPLE_BELOW = 300  # upsample=None: upsample once when the shorter side is below this (px): FACECOM, LFW, CelebA
EXPORT_FORMATS = ("onnx",)  # facelib.recognition.export
DEVICE_RULE = "device must be auto, cpu, cuda or cuda:N, got {value!r}"


def setting(default: Any = MISSING, help: str = "", *, choices: tuple | None = None,
            check: Callable[[Any], bool] | None = None, rule: str = "", bounds: tuple | None = None,
            widget: tuple | None = None, flag: str | None = None, kind: str = "value", metavar: str | None = None,
            cli: str = "always") -> Any:
    """A config field and its registry entry (``Field.metadata``); no default: a required setting.

    ``help``: the CLI's help text (``{default}`` is replaced by the default, ``yes``/``no`` for a bool);
    ``choices``: the allowed values (of each item, for a list); ``check(value) -> bool`` with ``rule`` (the
    message when it fails): :meth:`validate` runs both. ``bounds=(low, high)`` (``None``: open) is the check
    ``low <= value <= high`` (``None`` passes where it is the default); ``widget=(low, high[, step])`` is the
    notebook control's range, within ``bounds`` (``None``: the bound; :func:`widget_range`). How the CLI offers
    it: ``flag`` (default ``--field-name``), ``kind`` (``value``; ``positional``; ``bool``: ``--x/--no-x``;
    ``true``: store_true; ``false``: store_false under ``flag``; ``append``: repeatable; a list-typed value
    takes one or more), ``metavar``, and ``cli``: ``always``; ``if_given`` (the recipe's value unless the flag
    is given); ``default_recipe`` (the original recipe keeps its own).
    """
    if bounds is not None and check is None:
        check = _within(bounds, none_ok=default is None)
    meta = dict(help=help, choices=choices, check=check, rule=rule, bounds=bounds, widget=widget, flag=flag,
                kind=kind, metavar=metavar, cli=cli)
    return field(default=default, metadata=meta)


def _within(bounds: tuple, none_ok: bool) -> Callable[[Any], bool]:
    low, high = bounds
    return lambda v: (v is None and none_ok) or (v is not None and (low is None or v >= low)
                                                 and (high is None or v <= high))


def widget_range(cls: type, name: str) -> tuple:
    """``(low, high, step)`` of the notebook control of field ``name`` of ``cls``: its ``widget`` entry, a
    ``None`` end taken from the field's ``bounds`` (``step`` ``None`` unless given)."""
    m = next(f.metadata for f in fields(cls) if f.name == name)
    low, high, *step = m["widget"]
    bounds = m["bounds"] or (None, None)
    return (bounds[0] if low is None else low, bounds[1] if high is None else high, step[0] if step else None)


def _positive(v: Any) -> bool:
    return v > 0


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


def _device(v: str) -> bool:
    return isinstance(v, str) and (v in ("auto", "cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit()))


def device_setting() -> Any:
    """The ``device`` field of every config that runs a model: auto, cpu, cuda or cuda:N."""
    return setting("auto", "auto|cpu|cuda (default: %(default)s)", check=_device, rule=DEVICE_RULE)


def _timm_model(name: str) -> bool:
    import timm  # only here: the rest of this module stays torch-free

    return bool(name.strip()) and timm.is_model(name.strip())


def _validate(cfg: Any) -> None:
    """Every field's choices and rule, in declaration order; :class:`ConfigError` naming the field."""
    for f in fields(cfg):
        value, m = getattr(cfg, f.name), f.metadata
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        if value is None and f.default is None:  # an unset coupled default (lr, loss): resolved by a property
            continue
        if m.get("choices") is not None and (not items or any(v not in m["choices"] for v in items)):
            raise ConfigError(f"{f.name} must be one of {m['choices']}, got {value!r}", fields=(f.name,))
        if m.get("check") is not None and not m["check"](value):
            raise ConfigError(m["rule"].format(value=value), fields=(f.name,))


def choices(cls: type, name: str) -> tuple:
    """The allowed values of config field ``name`` of ``cls`` (what the CLI and the widgets offer)."""
    return next(f.metadata["choices"] for f in fields(cls) if f.name == name)


def _parse(text: str, hint: Any, name: str) -> Any:
    """``text`` as the type ``hint`` of field ``name`` (``none`` -> None where None is allowed)."""
    args = typing.get_args(hint) or (hint,)
    if text.lower() in ("none", "null") and type(None) in args:
        return None
    if "+" in text and any(typing.get_origin(a) is list for a in args):
        return [p for p in text.split("+") if p]
    for t in [a for a in args if a is not type(None)]:
        if t is bool:
            if text.lower() in ("true", "yes", "1", "on", "false", "no", "0", "off"):
                return text.lower() in ("true", "yes", "1", "on")
        elif t in (int, float):
            try:
                return t(text)
            except ValueError:
                continue
        elif t is str:
            return text
        elif typing.get_origin(t) is list:
            return [p for p in text.split("+") if p]
    raise ConfigError(f"{name}={text!r}: expected {hint}", fields=(name,))


def overrides_from(cls: type, items: Mapping[str, Any] | Iterable[str]) -> dict[str, Any]:
    """Typed ``{field: value}`` from a mapping or from ``"field=value"`` strings (values parsed by the field's
    type: ``none``, ``true``/``false``, numbers; several folders as ``a+b``); unknown fields raise."""
    hints = typing.get_type_hints(cls)
    out: dict[str, Any] = {}
    pairs = items.items() if isinstance(items, Mapping) else (str(i).partition("=")[::2] for i in items)
    for key, value in pairs:
        key = key.strip()
        if key not in hints:
            raise ConfigError(f"unknown {cls.__name__} field {key!r}; fields: {', '.join(hints)}")
        out[key] = _parse(value.strip(), hints[key], key) if isinstance(value, str) and hints[key] is not str \
            else value
    return out


@dataclass
class TrainConfig:
    """Everything a training run depends on. Defaults are the measured best recipe.

    ``sampler="pk"`` draws P identities x K images per batch and mines triplets inside it
    (one forward pass per image; ``batch_size`` is unused there: a batch is ``p * k`` images, and the CLI's
    ``--batch-size B`` sets ``k = B // p``); ``sampler="triplets"`` is the original recipe: random
    (anchor, positive, negative) triplets, ``batch_size`` (default 32) per step, three forward passes each.
    """

    # one folder, or several sources (people in different folders are different)
    data: str | list[str] = setting(
        "train", "training folder, <identity>/*.jpg; repeat for several sources (--data A --data B): people "
        "in different folders are different people, so never split one person over two folders "
        "(default: {default})", kind="append", metavar="FOLDER",
        check=lambda v: bool([v] if isinstance(v, str) else list(v)), rule="data must name at least one folder")
    val_data: str | None = setting(None, "validation folder: scored every epoch, best model kept")
    epochs: int = setting(20, "epochs (default: %(default)s)", bounds=(1, None), widget=(None, 1000),
                          rule="epochs must be >= 1")
    # the notebook's slider offers a coarser range, in steps; any size >= 16 trains
    image_size: int = setting(224, "square input size in pixels (default: %(default)s)", metavar="PX",
                              bounds=(16, None), widget=(32, 512, 16), rule="image size must be >= 16 pixels")
    batch_size: int | None = setting(None, "triplets per step with --sampler triplets; with --sampler pk, sets "
                                           "K = B // P",
                                     metavar="B", cli="if_given", check=_optional(lambda v: v >= 1),
                                     rule="batch size must be >= 1")
    # None: FINETUNE_LR from pretrained weights, SCRATCH_LR from random init (base_lr)
    lr: float | None = setting(None, f"peak AdamW learning rate (default: {FINETUNE_LR:g} from pretrained weights, "
                               f"{SCRATCH_LR:g} from random initialisation)", check=_optional(_positive),
                               widget=(1e-6, 1e-1), rule="learning rate must be > 0")
    weight_decay: float | None = setting(None, f"AdamW weight decay (default: {WEIGHT_DECAY:g}; "
                                         f"{TEACHER_WEIGHT_DECAY:g} with --teacher)",
                                         check=_optional(lambda v: v >= 0), rule="weight decay must be >= 0")
    backbone: str = setting("resnet50", "timm model name (default: %(default)s)", check=_timm_model,
                            rule="{value!r} is not a timm model (e.g. resnet18, resnet34, resnet50)")
    pretrained: bool = setting(True, "start from timm hub ImageNet weights (default: yes; offline use --weights or "
                               "--no-pretrained)", kind="bool")
    weights: str | None = setting(None, "local backbone weights file (.pth/.safetensors)", metavar="FILE")
    # start the whole embedder from a facelib checkpoint (fine-tuning); new optimiser
    init: str | None = setting(None, "start the whole embedder from a facelib checkpoint (e.g. pre-trained on more "
                               "people), with a new optimiser and schedule: fine-tuning; needs the same --backbone, "
                               "--embedding-dim, --neck", metavar="CHECKPOINT")
    embedding_dim: int = setting(512, "embedding size (default: %(default)s)", check=lambda v: v >= 2,
                                 rule="embedding dim must be >= 2")
    # central fraction of the side kept before the resize (facelib.data.framing)
    face_crop: float = setting(
        DEFAULT_FACE_CROP, "keep the central FRACTION of the side before the resize: where FACECOM's faces sit and "
        "where `facelib align` puts them; recorded in the checkpoint and applied by every command (1: the whole "
        "frame) (default: %(default)s)", metavar="FRACTION", check=lambda v: 0.0 < v <= 1.0,
        rule="face crop must be a fraction of the side in (0, 1], got {value}")
    # restoration front-end before the crop (facelib.data.framing)
    restore: str = setting("none", "restoration front-end before the crop: median = 3x3 median filter (removes "
                           "salt-and-pepper noise); recorded in the checkpoint (default: %(default)s)",
                           choices=RESTORERS)
    # evaluation embeds the photo and its mirror image and averages them (models.network.FlipTest; lab notes 9.7)
    flip_test: bool = setting(True, "the model embeds a photo and its mirror image and averages them when it "
                              "evaluates (train mode sees one view); recorded in the checkpoint and applied by every "
                              "command and the ONNX graph (default: yes)", kind="bool")
    # BatchNorm before the L2 norm: no collapse, and +0.03 top-1 on FACECOM (lab notes 0.1, 0.2)
    neck: str = setting("bn", "'bn': BatchNorm1d before the L2 norm (keeps random-init training from collapsing); "
                        "default: {default}", choices=NECKS, cli="if_given")
    out: str = setting(DEFAULT_CHECKPOINT, "checkpoint path (default: %(default)s)", metavar="FILE")
    device: str = device_setting()
    seed: int = setting(0, "random seed (default: %(default)s)")
    workers: int = setting(2, "DataLoader workers; 0 also runs the teacher pass in this process instead of one "
                           "process per core (default: %(default)s)", bounds=(0, None), rule="workers must be >= 0")
    sampler: str = setting("pk", "pk (P x K batches) or triplets (original)", choices=SAMPLERS, cli="if_given")
    # None: triplet without a teacher, none with one (metric_loss): the teacher alone scored 0.504 at 3,400 steps
    # (seeds 0-2), against 0.443 beside the triplet loss (seed 1; lab notes 10.9, 10.10)
    loss: str | None = setting(None, "triplet (mined in P x K batches), or a margin softmax over the training "
                               "identities (arcface, cosface; its class weights are dropped from the checkpoint), or "
                               "none (the distillation term alone, with --teacher) (default: triplet; none with "
                               "--teacher)", choices=LOSSES, cli="if_given")
    # best on synthetic faces and FACECOM from random init (lab notes 0.2, 0.3)
    miner: str = setting("batch_all", "triplet miner (default: {default})", choices=MINERS, cli="if_given")
    p: int = setting(16, "identities per batch (default: %(default)s)", bounds=(2, None), widget=(None, 512),
                     rule="p (identities per batch) must be >= 2")
    k: int = setting(4, "images per identity (default: %(default)s)", bounds=(2, None), widget=(None, 128),
                     rule="k (images per identity) must be >= 2")
    margin: float = setting(TRIPLET_MARGIN, "triplet margin (default: {default})", cli="if_given", bounds=(0, None),
                            widget=(None, 2.0, 0.05), rule="margin must be >= 0")
    distance: str = setting("euclidean", "triplet distance; cosine normalises the embeddings itself, euclidean "
                            "compares them as --[no-]normalize-embeddings leaves them (default: %(default)s)",
                            choices=DISTANCES)
    soft_margin: bool = setting(False, "softplus instead of hinge", kind="true")
    # The triplet loss on L2-normalised embeddings (True) or on the BN neck's output scaled by 1/sqrt(dim),
    # so a standardised embedding has unit expected norm and the margin keeps its scale (False).
    # ArcFace/CosFace always compare on the sphere. Measured: lab notes 0.8.
    normalize_embeddings: bool = setting(
        True, "triplet loss on L2-normalised embeddings; --no-normalize-embeddings: on the neck's output scaled by "
        "1/sqrt(dim) (evaluation always normalises) (default: {default})", kind="bool", cli="if_given")
    # arcface/cosface additive margin (None: the loss's own, CLASS_MARGINS)
    class_margin: float | None = setting(
        None, "arcface/cosface margin (default: " + ", ".join(f"{m:g} {k}" for k, m in CLASS_MARGINS.items()) + ")",
        check=_optional(lambda v: v >= 0), rule="class margin must be >= 0")
    class_scale: float = setting(CLASS_SCALE, "arcface/cosface logit scale (default: %(default)s)", check=_positive,
                                 rule="class scale must be > 0")
    # a pretrained teacher's embedding of each clean photo, matched by the student (facelib.training.distill)
    teacher: str | None = setting(
        None, "distil from a teacher: dlib (its ResNet descriptor; the [align] extra), or a facelib checkpoint (.pth) "
        "or ONNX embedder (.onnx); its embedding of every clean photo is computed once and cached (default: none)",
        # which names are registered is checked where the teacher is built (facelib.training.teachers.get_teacher)
        metavar="NAME|FILE", check=_optional(lambda v: bool(str(v).strip())), rule="teacher must name a teacher")
    distill_weight: float = setting(1.0, "weight of the distillation term beside the metric loss (default: "
                                    "%(default)s)", metavar="W", check=lambda v: v >= 0,
                                    rule="distill weight must be >= 0")
    # the sum won at 3,400 steps: 0.504 over seeds 0-2 alone, against 0.411 for similarity alone; beside the
    # triplet loss 0.443 against 0.396 for projection (seed 1; lab notes 10.9)
    distill: str = setting("projection+similarity", "distillation form: projection (a linear map to the "
                           "teacher's size, cosine; training only), similarity (the batch's similarity matrix, "
                           "dimension-free), neighbours (each photo's softmax over the batch, dimension-free), "
                           "prototypes (each photo's softmax over every training person's mean teacher embedding, "
                           "through the map), or the sums projection+similarity and "
                           "projection+similarity+prototypes (default: %(default)s)", choices=DISTILL_FORMS)
    teacher_cache: str | None = setting(None, "folder of the teacher-embedding cache (default: $FACELIB_CACHE or "
                                        "~/.cache/facelib)", metavar="FOLDER")
    unlabelled: list[str] | None = setting(
        None, "a folder of photos without identities (any layout; repeat for several): they teach through the "
        "teacher alone, each shown clean or with a made distortion as --clean-fraction says (needs --teacher)",
        kind="append", metavar="FOLDER")
    unlabelled_per_batch: int = setting(16, "unlabelled photos added to each batch (default: %(default)s)",
                                        metavar="N", check=lambda v: v >= 1, rule="unlabelled per batch must be >= 1")
    # 0.75 won a FACECOM sweep but lost on synthetic faces and in the CLI check (lab notes 0.6)
    clean_fraction: float = setting(0.5, "share of clean images among each identity's K (default: %(default)s)",
                                    check=lambda v: 0.0 <= v <= 1.0, rule="clean fraction must be within [0, 1]")
    # batch identities need 2+ photos: 2x top-1 on FACECOM (lab notes 0.2)
    min_photos: int = setting(2, "draw as batch identities only those with at least this many distinct photos "
                              "(default: %(default)s)", check=lambda v: v >= 1, rule="min photos must be >= 1")
    # extra images per P x K batch from identities that are not batch identities: negatives only
    negatives: int = setting(0, "add N images per batch, one each from identities that are not batch identities "
                             "(single-photo ones): negatives only (default: %(default)s)", metavar="N",
                             check=lambda v: v >= 0, rule="negatives must be >= 0")
    include_distortions: bool = setting(True, "ignore <identity>/distortion/ images (default: use them)",
                                        kind="false", flag="--no-distortions")
    # photos without distortion/ copies get the seven distortions made on the fly (facelib.data.distortions),
    # drawn as distorted images within clean_fraction, so every source also teaches robustness
    synth_distortions: bool = setting(True, "photos without distortion/ copies get the seven distortions made on "
                                      "the fly, drawn within --clean-fraction (default: yes)", kind="bool")
    # the training images decoded and framed once, in shared memory (facelib.data.frames), within a memory budget
    frame_cache: bool = setting(True, "decode and frame the training images once and keep them in shared memory "
                                "(within a quarter of the available memory; else read from disk each time) "
                                "(default: yes)", kind="bool")
    # none | mild | strong (facelib.models.transforms.build_transform; lab notes 0.7)
    augment: str = setting("mild", "training augmentation: none, mild (crop 0.8-1, flip, jitter) or strong (wider "
                           "crops, grayscale, random erasing) (default: %(default)s)", choices=AUGMENTS)
    steps_per_epoch: int | None = setting(None, "cap the steps of an epoch (quick runs)", bounds=(1, None),
                                          rule="steps per epoch must be >= 1")
    # stop after this much training time; the LR schedule fits the budget
    max_seconds: float | None = setting(None, "stop after S seconds of training; the learning-rate schedule is "
                                        "fitted to the budget", metavar="S", check=_optional(_positive),
                                        rule="max seconds must be > 0")
    # linear warm-up over this fraction of the run (steps, or the max_seconds budget)
    warmup: float = setting(0.05, "linear warm-up over this fraction of the run, then cosine decay (default: "
                            "%(default)s)", metavar="FRACTION", cli="default_recipe", check=lambda v: 0.0 <= v < 1.0,
                            rule="warm-up must be a fraction of the run within [0, 1)")
    grad_clip: float | None = setting(5.0, "max gradient norm (default: %(default)s)", cli="default_recipe",
                                      check=_optional(lambda v: v >= 0), rule="grad clip must be >= 0 (0: none)")
    amp: bool = setting(True, "mixed precision: bf16/fp16 autocast on CUDA, bf16 when training on a CPU with native "
                              "bf16 (AVX-512/AMX; fp32 on AVX2) (default: on)", kind="bool")
    compile: bool = setting(False, "torch.compile the model (opt-in)", kind="true")
    resume: bool = setting(False, "continue from <out stem>.last.pth", kind="true")
    patience: int | None = setting(5, "early stop after this many epochs without validation gain (default: "
                                   "%(default)s)", cli="default_recipe", check=_optional(lambda v: v >= 0),
                                   rule="patience must be >= 0 (0: none)")
    progress: bool = setting(True, "no progress bars", kind="false", flag="--no-progress")
    # under torchrun: mine the all-gathered global batch (False: each process its own share)
    gather: bool = setting(True, "under torchrun: mine triplets over the global batch, all-gathered from every "
                           "process; --no-gather: each process mines its own share (default: gather; no effect in "
                           "one process)", kind="bool")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` (a ValueError) naming the field(s) of an impossible setting: each
        field's choices and rule (see :func:`setting`), then the rules that tie fields together."""
        _validate(self)
        checks = [
            (self.metric_loss == "triplet" or self.sampler == "pk",
             "arcface/cosface train on P x K batches (sampler pk)",
             ("loss", "sampler")),
            (self.metric_loss != "none" or self.teacher is not None,
             "loss none trains on the distillation term alone: give a teacher", ("loss", "teacher")),
            (self.teacher is None or self.sampler == "pk", "distillation trains on P x K batches (sampler pk)",
             ("teacher", "sampler")),
            (not self.unlabelled or self.teacher is not None,
             "unlabelled photos teach through a teacher alone: give a teacher", ("unlabelled", "teacher")),
            (self.init is None or self.weights is None,
             "give init (a facelib checkpoint) or weights (backbone weights), not both", ("init", "weights")),
            # semi-hard negatives lie strictly inside (d_ap, d_ap + margin): none exists with margin 0 (the
            # miner and the margin act only with the triplet loss)
            (self.metric_loss != "triplet" or self.miner != "semi_hard" or self.margin > 0,
             "semi-hard mining needs a margin > 0 (with margin 0 it never finds a triplet)", ("miner", "margin")),
        ]
        for ok, message, names in checks:
            if not ok:
                raise ConfigError(message, fields=names)

    @classmethod
    def from_overrides(cls, overrides: Mapping[str, Any] | Iterable[str] = (),
                       base: "TrainConfig | None" = None) -> "TrainConfig":
        """``base`` (default: ``TrainConfig()``) with ``overrides`` applied and validated: a mapping of field
        -> value, or ``"field=value"`` strings parsed by the field's type, e.g.
        ``TrainConfig.from_overrides(["miner=batch_hard", "margin=0.3", "neck=none", "lr=none"])``."""
        return (base or cls()).replace(**overrides_from(cls, overrides))

    @property
    def data_folders(self) -> list[str]:
        """``data`` as a list of folders (one or several sources)."""
        return [self.data] if isinstance(self.data, str) else list(self.data)

    @property
    def base_lr(self) -> float:
        """The peak learning rate: ``lr`` if set, else :data:`FINETUNE_LR` when the network starts from
        trained weights (hub, file or an ``init`` checkpoint) and :data:`SCRATCH_LR` from random
        initialisation."""
        if self.lr is not None:
            return self.lr
        return FINETUNE_LR if (self.pretrained or self.weights or self.init) else SCRATCH_LR

    @property
    def base_weight_decay(self) -> float:
        """The AdamW weight decay: ``weight_decay`` if set, else :data:`TEACHER_WEIGHT_DECAY` with a teacher
        (lab notes 10.13) and :data:`WEIGHT_DECAY` without one."""
        if self.weight_decay is not None:
            return self.weight_decay
        return TEACHER_WEIGHT_DECAY if self.teacher is not None else WEIGHT_DECAY

    @property
    def metric_loss(self) -> str:
        """The loss that trains beside any distillation term: ``loss`` if set, else ``none`` with a teacher
        (the teacher alone: lab notes 10.9) and ``triplet`` without one."""
        if self.loss is not None:
            return self.loss
        return "none" if self.teacher is not None else "triplet"

    @classmethod
    def original(cls, **overrides: Any) -> "TrainConfig":
        """The seed scripts' recipe: random triplets, 3 passes each, TripletMarginLoss(margin=1)."""
        base = dict(sampler="triplets", miner="random", margin=1.0, batch_size=32, warmup=0.0,
                    grad_clip=None, patience=None, clean_fraction=0.5, neck="none", loss="triplet",
                    normalize_embeddings=True)
        base.update(overrides)
        return cls(**base)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def replace(self, **changes: Any) -> "TrainConfig":
        return replace(self, **changes)


@dataclass(kw_only=True)
class Checked:
    """A config whose every field is checked when it is made (its choices and rule: :func:`setting`)."""

    def __post_init__(self) -> None:
        _validate(self)


# The field groups that several commands share (facelib.commands holds the commands' configs)
@dataclass(kw_only=True)
class Runtime(Checked):
    """DataLoader workers and device: every command that runs a model."""

    workers: int = setting(2, "DataLoader workers (default: %(default)s)", bounds=(0, None),
                           rule="workers must be >= 0")
    device: str = device_setting()


@dataclass(kw_only=True)
class ModelFile(Checked):
    """The facelib checkpoint a command reads."""

    checkpoint: str = setting(DEFAULT_CHECKPOINT, "model checkpoint (default: %(default)s)")


@dataclass(kw_only=True)
class Inference(ModelFile, Runtime):
    """A command that embeds images with a checkpoint: batch size, workers, device."""

    batch_size: int = setting(64, "embedding batch size (default: %(default)s)", bounds=(1, None),
                              rule="batch size must be >= 1")


@dataclass(kw_only=True)
class Seeded(Checked):
    """A command that draws random numbers."""

    seed: int = setting(0, "random seed (default: %(default)s)")


@dataclass
class EvalConfig(Inference):
    """Evaluation settings (`facelib test`): which protocol, which gallery representatives."""

    data: str = setting("val", "probe folder (default: %(default)s)")
    train_data: str | None = setting("train", "training folder: the gallery for --protocol closed (default: "
                                     "%(default)s)")
    protocol: str = setting(
        "auto", "closed = one gallery entry per train class (the original); gallery = clean images of each val "
        "identity vs their distorted copies (FACECOM's); cross-photo = a probe never meets its own source photo; "
        "auto = closed if val identities are in train, else cross-photo (default: %(default)s)", choices=PROTOCOLS)
    gallery: str = setting("mean", "gallery representative per identity (default: %(default)s)",
                           choices=GALLERY_MODES)
    out: str = setting(".", "folder for metrics.json and figures (default: %(default)s)")
    baseline: bool = setting(True, "skip the pixel-cosine baseline", kind="false", flag="--no-baseline")
    seed: int = setting(0, "seed for sampled verification pairs (default: %(default)s)")
    # the decision threshold written to metrics.json is chosen at this FAR
    target_far: float = setting(
        1e-2, "choose the decision threshold (metrics.json 'threshold', read by `enroll`) at this false accept "
        "rate on the verification pairs (default: %(default)g)", metavar="FAR", check=lambda v: 0 < v < 1,
        rule="target_far must be in (0, 1), got {value}")


@dataclass
class Profile:
    """A named set of defaults for notebooks and the demo."""

    name: str
    train: TrainConfig
    synth: dict[str, int] = field(default_factory=dict)


def gpu_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001
        return False


def profile_name(env: dict[str, str] | None = None) -> str:
    """``FACELIB_PROFILE`` if set, else ``full`` with a GPU and ``smoke`` without."""
    env = os.environ if env is None else env
    name = env.get("FACELIB_PROFILE", "").strip().lower()
    if name:
        if name not in PROFILES:
            raise ConfigError(f"FACELIB_PROFILE must be one of {', '.join(PROFILES)}, got {name!r}")
        return name
    return "full" if gpu_available() else "smoke"


def get_profile(name: str | None = None) -> Profile:
    """The profile's settings: ``smoke`` runs the notebook series in minutes on a 2-core CPU."""
    name = name or profile_name()
    if name == "smoke":
        # The default recipe (miner, margin, neck, learning rate for a random start) at CPU size: ResNet-18
        # at 64 px, 2 x 120 steps of P 8 x K 4 (half the default batch, for time), 128-d: a minute or two on
        # a 2-core CPU, enough to beat the pixel baseline on unseen synthetic identities
        # (tests/training/test_learning.py).
        train = TrainConfig(backbone="resnet18", pretrained=False, image_size=64, epochs=2, p=8, k=4,
                            embedding_dim=128, steps_per_epoch=120, workers=0, patience=None, progress=True)
        return Profile("smoke", train, synth=dict(identities=100, photos=5, image_size=64))
    if name == "full":
        return Profile("full", TrainConfig(), synth=dict(identities=60, photos=8, image_size=112))
    raise ConfigError(f"unknown profile {name!r}")

