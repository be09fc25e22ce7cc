"""The configs of the commands beside ``train`` (:class:`~facelib.config.TrainConfig`) and ``test``
(:class:`~facelib.config.EvalConfig`), built from the registry's fields and shared groups
(:mod:`facelib.config`); :data:`COMMAND_CONFIGS` maps every ``facelib`` command to its config, from which the
CLI builds its parser. Each config checks every field when it is made. Torch-free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from facelib.config import (
    AUTO_UPSAMPLE_BELOW,
    DETECTORS,
    DISTORTION_KINDS,
    ENROLL_MODES,
    EXPORT_FORMATS,
    NO_FACE,
    Checked,
    EvalConfig,
    Inference,
    ModelFile,
    Runtime,
    Seeded,
    TrainConfig,
    setting,
)
from facelib.errors import ConfigError

_BACKBONE = next(f.metadata for f in fields(TrainConfig) if f.name == "backbone")  # the same rule


def _threshold(help: str) -> Any:
    """A cosine-score threshold: any number (above 1 names nobody, -1 or below everybody)."""
    return setting(None, help, check=lambda v: v is None or math.isfinite(v),
                   rule="threshold must be a finite number, got {value}")


@dataclass(kw_only=True)
class EmbedConfig(Inference):
    """`facelib embed`: every image of a folder -> an .npz of embeddings."""

    data: str = setting(help="FACECOM-layout folder to embed")
    out: str = setting(help="output .npz file")


@dataclass(kw_only=True)
class EnrollConfig(Inference):
    """`facelib enroll`: the clean photos of a folder -> a gallery file."""

    data: str = setting(help="folder with one sub-folder of photos per identity")
    out: str = setting(help="gallery file to write (.npz)")
    threshold: float | None = _threshold("cosine score below which a photo is unknown")
    metrics: str | None = setting(None, "take the threshold from a metrics.json written by `facelib test`",
                                  metavar="JSON")
    mode: str = setting("mean", "mean = one row per identity (mean of its clean photos); all = one row per photo, "
                        "an identity scores its best photo (default: %(default)s)", choices=ENROLL_MODES)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.threshold is not None and self.metrics is not None:
            raise ConfigError("give threshold or metrics, not both", fields=("threshold", "metrics"))


@dataclass(kw_only=True)
class IdentifyConfig(Inference):
    """`facelib identify`: photos -> the best gallery identity of each, or unknown."""

    paths: list[str] = setting(help="image files or folders", kind="positional", metavar="PATH")
    gallery: str = setting(help="gallery file written by `facelib enroll`")
    threshold: float | None = _threshold("override the gallery's threshold")
    top_k: int = setting(1, "identities listed per photo (default: %(default)s)", bounds=(1, None),
                         rule="top_k must be at least 1, got {value}")
    json: bool = setting(False, 'one JSON object per line: {"path", "identity" (null if unknown), "score", "top"}',
                         kind="true")
    align: bool = setting(False, "detect and align each photo's face first, as `facelib align` does (needs "
                          "facelib[align]); use it for raw photos when the model was trained on `facelib align` "
                          "output or FACECOM", kind="true")
    detector: str = setting(DETECTORS[0], "face detector of --align (default: %(default)s)", choices=DETECTORS)


@dataclass(kw_only=True)
class ExportConfig(ModelFile):
    """`facelib export`: the embedder as ONNX."""

    format: str = setting("onnx", "(default: %(default)s)", choices=EXPORT_FORMATS)
    out: str = setting(help="output file (.onnx)")


@dataclass(kw_only=True)
class AlignConfig(Checked):
    """`facelib align`: detect the face of every clean photo and map it onto FACECOM's framing."""

    src: str = setting(help="FACECOM-layout folder: <identity>/*.jpg, optionally <identity>/distortion/",
                       kind="positional")
    out: str = setting(help="output folder: new, empty, or the output of an earlier align run (overwritten)",
                       kind="positional")
    detector: str = setting(DETECTORS[0], "dlib face detector: hog (fast) or cnn (MMOD, about 1 image/s on a CPU) "
                            "(default: %(default)s)", choices=DETECTORS)
    size: int = setting(224, "output side (default: %(default)s)", metavar="PX", bounds=(16, None),
                        rule="size must be >= 16 pixels")
    no_face: str = setting("keep", "a clean photo without a detected face: keep (centred square) or skip (left out "
                           "with its distorted copies); both are counted and named (default: %(default)s)",
                           choices=NO_FACE)
    upsample: int | None = setting(None, f"detector upsampling, 0-4 (default: 1 when the shorter side is below "
                                   f"{AUTO_UPSAMPLE_BELOW} px, else 0)", metavar="N", bounds=(0, 4),
                                   rule="upsample must be within 0-4, got {value}")


@dataclass(kw_only=True)
class DistortConfig(Seeded):
    """`facelib distort`: copy a folder and add the seven FACECOM distortions of every clean photo."""

    src: str = setting(help="source folder, <identity>/*.jpg")
    out: str = setting(help="output folder")
    kinds: tuple[str, ...] = setting(DISTORTION_KINDS, "distortions to write (default: all seven)",
                                     choices=DISTORTION_KINDS)


@dataclass(kw_only=True)
class SynthConfig(Seeded):
    """`facelib synth`: the synthetic FACECOM-layout data set (facelib.data.synthetic.make_dataset)."""

    out: str = setting("data/synthetic", "output folder (default: %(default)s)")
    identities: int = setting(40, "number of identities (default: %(default)s)", bounds=(3, None),
                              rule="identities must be >= 3")
    photos: int = setting(6, "clean photos per identity (default: %(default)s)", bounds=(1, None),
                          rule="photos must be >= 1")
    image_size: int = setting(64, "(default: %(default)s)", metavar="PX", bounds=(16, None),
                              rule="image size must be >= 16 pixels")


@dataclass(kw_only=True)
class DemoConfig(Runtime, Seeded):
    """`facelib demo`: synthetic data -> a short training run with the smoke profile's recipe -> evaluation
    (``None``: the smoke profile's value)."""

    out: str = setting("facelib-demo", "output folder (default: %(default)s)")
    epochs: int | None = setting(None, "(default: the smoke profile's)", bounds=(1, None),
                                 rule="epochs must be >= 1")
    steps: int | None = setting(None, "steps per epoch (default: the smoke profile's)", bounds=(1, None),
                                rule="steps must be >= 1")
    backbone: str | None = setting(None, "timm model name (default: the smoke profile's)",
                                   check=lambda v: v is None or _BACKBONE["check"](v), rule=_BACKBONE["rule"])


# every command's config: the CLI builds its parser from the fields (facelib.cli.COMMANDS lays them out)
COMMAND_CONFIGS: dict[str, type] = {
    "train": TrainConfig, "test": EvalConfig, "embed": EmbedConfig, "enroll": EnrollConfig,
    "identify": IdentifyConfig, "export": ExportConfig, "align": AlignConfig, "distort": DistortConfig,
    "synth": SynthConfig, "demo": DemoConfig,
}
