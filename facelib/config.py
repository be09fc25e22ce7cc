"""Dataclass configs shared by the CLI, the notebooks and the widgets, and the run profiles.

Profiles: ``smoke`` (tiny images, few steps: CPU, CI, notebook checks) and ``full``
(ResNet-50 at 224 px, 20 epochs). ``FACELIB_PROFILE`` picks one; without it, ``full``
when a GPU is present, else ``smoke``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from facelib.errors import ConfigError

MINERS = ("random", "batch_all", "batch_hard", "semi_hard")
SAMPLERS = ("pk", "triplets")
LOSSES = ("triplet", "arcface", "cosface")
# Peak AdamW learning rates. Fine-tuning ImageNet weights: a small rate keeps what they know (timm and
# Bag-of-Tricks use 1e-4 to 3.5e-4). From random initialisation nothing is to be kept, and on a CPU budget
# 10x faster learning wins (measured: benchmarks/RESULTS.md, section 1).
FINETUNE_LR = 3e-4
SCRATCH_LR = 3e-3
NECKS = ("bn", "none")
AUGMENTS = ("none", "mild", "strong")  # training augmentation: facelib.training.model.build_transform
PROTOCOLS = ("auto", "closed", "gallery", "cross-photo", "verification")
GALLERY_MODES = ("single", "mean", "all")
RESTORERS = ("none", "median")  # restoration front-end before the face crop: facelib.data.framing.Restore
# The face crop kept by default: the central 55% of the side, where FACECOM's (LFW's) face sits and where
# `facelib align` puts it (measured: benchmarks/RESULTS.md section 9).
DEFAULT_FACE_CROP = 0.55


@dataclass
class TrainConfig:
    """Everything a training run depends on. Defaults are the measured best recipe.

    ``sampler="pk"`` draws P identities x K images per batch and mines triplets inside it
    (one forward pass per image); ``sampler="triplets"`` is the original recipe: random
    (anchor, positive, negative) triplets, three forward passes each.
    """

    data: str | list[str] = "train"  # one folder, or several sources (people in different folders are different)
    val_data: str | None = None
    epochs: int = 20
    image_size: int = 224
    batch_size: int | None = None  # triplets per step for sampler="triplets"; P*K for "pk"
    lr: float | None = None  # None: FINETUNE_LR from pretrained weights, SCRATCH_LR from random init (base_lr)
    weight_decay: float = 1e-4
    backbone: str = "resnet50"
    pretrained: bool = True
    weights: str | None = None
    init: str | None = None  # start the whole embedder from a facelib checkpoint (fine-tuning); new optimiser
    embedding_dim: int = 512
    face_crop: float = DEFAULT_FACE_CROP  # central fraction of the side kept before the resize (facelib.data.framing)
    restore: str = "none"  # restoration front-end before the crop: none | median (facelib.data.framing)
    neck: str = "bn"  # BatchNorm before the L2 norm: no collapse, and +0.03 top-1 on FACECOM (RESULTS.md 1)
    out: str = "tb_model.pth"
    device: str = "auto"
    seed: int = 0
    workers: int = 2
    sampler: str = "pk"
    loss: str = "triplet"
    miner: str = "batch_all"  # best on synthetic faces and FACECOM from random init (benchmarks/RESULTS.md 1)
    p: int = 16
    k: int = 4
    margin: float = 0.2
    distance: str = "euclidean"
    soft_margin: bool = False
    # The triplet loss on L2-normalised embeddings (True) or on the BN neck's output scaled by 1/sqrt(dim),
    # so a standardised embedding has unit expected norm and the margin keeps its scale (False).
    # ArcFace/CosFace always compare on the sphere. Measured: RESULTS.md section 0.8.
    normalize_embeddings: bool = True
    class_margin: float | None = None  # arcface/cosface additive margin (None: 0.5 arcface, 0.35 cosface)
    class_scale: float = 30.0  # arcface/cosface logit scale
    clean_fraction: float = 0.5  # 0.75 won a FACECOM sweep but lost on synthetic faces and in the CLI check (RESULTS.md 0.6)
    min_photos: int = 2  # batch identities need 2+ photos: 2x top-1 on FACECOM (benchmarks/RESULTS.md 1)
    negatives: int = 0  # extra images per P x K batch from identities that are not batch identities: negatives only
    include_distortions: bool = True
    # photos without distortion/ copies get the seven distortions made on the fly (facelib.data.distortions),
    # drawn as distorted images within clean_fraction, so every source also teaches robustness
    synth_distortions: bool = True
    augment: str = "mild"  # none | mild | strong (facelib.training.model.build_transform; RESULTS.md 0)
    steps_per_epoch: int | None = None
    max_seconds: float | None = None  # stop after this much training time; the LR schedule fits the budget
    warmup: float = 0.05  # linear warm-up over this fraction of the run (steps, or the max_seconds budget)
    grad_clip: float | None = 5.0
    amp: bool = True
    compile: bool = False
    resume: bool = False
    patience: int | None = 5
    progress: bool = True
    gather: bool = True  # under torchrun: mine the all-gathered global batch (False: each process its own share)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` (a ValueError) with a readable message for an impossible setting."""
        checks = [
            (self.sampler in SAMPLERS, f"sampler must be one of {SAMPLERS}, got {self.sampler!r}"),
            (self.miner in MINERS, f"miner must be one of {MINERS}, got {self.miner!r}"),
            (self.loss in LOSSES, f"loss must be one of {LOSSES}, got {self.loss!r}"),
            (self.neck in NECKS, f"neck must be one of {NECKS}, got {self.neck!r}"),
            (self.augment in AUGMENTS, f"augment must be one of {AUGMENTS}, got {self.augment!r}"),
            (self.loss == "triplet" or self.sampler == "pk", "arcface/cosface train on P x K batches (sampler pk)"),
            (self.class_margin is None or self.class_margin >= 0, "class margin must be >= 0"),
            (self.class_scale > 0, "class scale must be > 0"),
            (0.0 <= self.warmup < 1.0, "warm-up must be a fraction of the run within [0, 1)"),
            (self.max_seconds is None or self.max_seconds > 0, "max seconds must be > 0"),
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.image_size >= 16, "image size must be >= 16 pixels"),
            (self.p >= 2, "P (identities per batch) must be >= 2"),
            (self.k >= 2, "K (images per identity) must be >= 2"),
            (self.lr is None or self.lr > 0, "learning rate must be > 0"),
            (self.margin >= 0, "margin must be >= 0"),
            (self.distance in ("euclidean", "cosine"), "distance must be euclidean or cosine"),
            (0.0 <= self.clean_fraction <= 1.0, "clean fraction must be within [0, 1]"),
            (self.min_photos >= 1, "min photos must be >= 1"),
            (self.negatives >= 0, "negatives must be >= 0"),
            (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"), "device: auto|cpu|cuda"),
            (self.batch_size is None or self.batch_size >= 1, "batch size must be >= 1"),
            (self.embedding_dim >= 2, "embedding dim must be >= 2"),
            (0.0 < self.face_crop <= 1.0, f"face crop must be a fraction of the side in (0, 1], got {self.face_crop}"),
            (self.restore in RESTORERS, f"restore must be one of {RESTORERS}, got {self.restore!r}"),
            (bool(self.data_folders), "data must name at least one folder"),
            (self.init is None or self.weights is None,
             "give init (a facelib checkpoint) or weights (backbone weights), not both"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

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


@dataclass
class EvalConfig:
    """Evaluation settings: which protocol, which gallery representatives."""

    data: str = "val"
    train_data: str | None = "train"
    checkpoint: str = "tb_model.pth"
    protocol: str = "auto"
    gallery: str = "mean"
    out: str = "."
    batch_size: int = 64
    workers: int = 2
    device: str = "auto"
    baseline: bool = True
    seed: int = 0
    target_far: float = 1e-2  # the decision threshold written to metrics.json is chosen at this FAR

    def __post_init__(self) -> None:
        if not 0 < self.target_far < 1:
            raise ConfigError(f"target_far must be in (0, 1), got {self.target_far}")
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        if self.gallery not in GALLERY_MODES:
            raise ConfigError(f"gallery must be one of {GALLERY_MODES}, got {self.gallery!r}")


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
        if name not in ("smoke", "full"):
            raise ConfigError(f"FACELIB_PROFILE must be smoke or full, got {name!r}")
        return name
    return "full" if gpu_available() else "smoke"


def get_profile(name: str | None = None) -> Profile:
    """The profile's settings: ``smoke`` runs the notebook series in minutes on a 2-core CPU."""
    name = name or profile_name()
    if name == "smoke":
        # The default recipe (miner, margin, neck, learning rate for a random start) at CPU size: ResNet-18
        # at 64 px, 2 x 120 steps of P 8 x K 4 (half the default batch, for time), 128-d: a minute or two on
        # a 2-core CPU, enough to beat the pixel baseline on unseen synthetic identities
        # (tests/test_learning.py).
        train = TrainConfig(backbone="resnet18", pretrained=False, image_size=64, epochs=2, p=8, k=4,
                            embedding_dim=128, steps_per_epoch=120, workers=0, patience=None, progress=True)
        return Profile("smoke", train, synth=dict(identities=100, photos=5, image_size=64))
    if name == "full":
        return Profile("full", TrainConfig(), synth=dict(identities=60, photos=8, image_size=112))
    raise ConfigError(f"unknown profile {name!r}")
