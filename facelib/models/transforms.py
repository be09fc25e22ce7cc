"""The input transform a model's spec prescribes: PIL RGB image -> the tensor the network takes.

The spec's framing (:mod:`facelib.data.framing`: the restoration filter, then the central face crop) runs first,
then the resize (evaluation) or the training augmentation, then the spec's normalisation.
"""

from __future__ import annotations

import torch

from facelib.models.network import ModelSpec


def build_transform(spec: ModelSpec, train: bool = False, augment: str = "mild", framed: bool = False):
    """torchvision v2 pipeline: PIL RGB image -> normalised float tensor [3, S, S].

    First the spec's framing (:mod:`facelib.data.framing`): the restoration front-end (``spec.restore``), then
    the central ``spec.face_crop`` of the side; ``framed=True`` leaves it out, for images framed already
    (:class:`facelib.data.frames.FramedDataset`). Evaluation (``train=False``) then is a plain resize.
    Training adds augmentation by ``augment``
    (one of :data:`facelib.config.AUGMENTS`):

    * ``"none"``: the evaluation resize;
    * ``"mild"`` (default): random resized crop close to the full face (scale 0.8-1), horizontal
      flip, small colour jitter;
    * ``"strong"``: wider crops (scale 0.5-1), flip, stronger colour jitter, 10% grayscale,
      random erasing of a patch (Zhong et al. 2020; the re-ID "Bag of Tricks").
    """
    from torchvision.transforms import InterpolationMode, v2

    from facelib.config import AUGMENTS

    if augment not in AUGMENTS:
        raise ValueError(f"augment must be one of {AUGMENTS}, got {augment!r}")
    size = (spec.image_size, spec.image_size)
    interp = {"bicubic": InterpolationMode.BICUBIC, "nearest": InterpolationMode.NEAREST}.get(
        spec.interpolation, InterpolationMode.BILINEAR
    )
    tail = [
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean=list(spec.mean), std=list(spec.std)),
    ]
    if not train or augment == "none":
        head = [v2.Resize(size, interpolation=interp, antialias=True)]
    elif augment == "mild":
        head = [
            v2.RandomResizedCrop(size, scale=(0.8, 1.0), ratio=(0.9, 1.1), interpolation=interp, antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.1),
        ]
    else:  # strong
        head = [
            v2.RandomResizedCrop(size, scale=(0.5, 1.0), ratio=(0.8, 1.25), interpolation=interp, antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.3, hue=0.05),
            v2.RandomGrayscale(p=0.1),
        ]
        tail = tail + [v2.RandomErasing(p=0.5, scale=(0.02, 0.2), value=0)]
    return v2.Compose(([] if framed else framing_steps(spec)) + head + tail)


def graph_input_transform(spec: ModelSpec):
    """The evaluation transform without its normalisation: PIL RGB image -> float32 [3, S, S] in [0, 1], framed
    and resized as :func:`build_transform` does. What an exported graph takes (its normalisation is inside)."""
    from torchvision.transforms import v2

    steps = build_transform(spec, train=False).transforms
    assert isinstance(steps[-1], v2.Normalize)
    return v2.Compose(steps[:-1])


def framing_steps(spec: ModelSpec) -> list:
    """The PIL steps before the resize: [Restore] [FaceCrop], each only where it changes the image."""
    from facelib.data.framing import FaceCrop, Restore

    steps: list = []
    if spec.restore != "none":
        steps.append(Restore(spec.restore))
    if spec.face_crop < 1.0:
        steps.append(FaceCrop(spec.face_crop))
    return steps


def describe_framing(spec: ModelSpec) -> str:
    """One line: how the model frames a photo before the resize."""
    crop = (f"central {spec.face_crop:.0%} of the side" if spec.face_crop < 1.0 else "the whole frame")
    restore = "" if spec.restore == "none" else f", after a {spec.restore} filter"
    flip = "; embedding: the photo and its mirror image, averaged" if spec.flip_test else ""
    return f"input: {crop}{restore}, resized to {spec.image_size} px{flip}"
