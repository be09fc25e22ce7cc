"""Face framing and restoration: the image steps that run before the resize, part of a model's preprocessing.

A checkpoint records them (``ModelSpec.face_crop``, ``ModelSpec.restore``) and every command that feeds
the model (``train``, ``test``, ``embed``, ``enroll``/``identify``, ``export``'s :func:`load_inputs`)
applies them through :func:`facelib.models.transforms.build_transform`, so a model always sees faces framed as in
training.

* :class:`FaceCrop`: the central ``fraction`` of the shorter side, as a square. In FACECOM (LFW's
  deep-funneled framing; ``facelib align`` writes the same framing) the face fills about the central
  55% of the side, so at 64 px the whole frame leaves the face about 30 px wide.
* :class:`Restore`: an optional restoration front-end; ``median`` is a 3x3 median filter, which removes
  FACECOM's salt-and-pepper ``noisy`` distortion almost entirely and leaves clean faces nearly as they are.
"""

from __future__ import annotations

from PIL import Image, ImageFilter

from facelib.config import RESTORERS

__all__ = ["RESTORERS", "FaceCrop", "Restore", "face_crop_box"]


def face_crop_box(width: int, height: int, fraction: float) -> tuple[int, int, int, int]:
    """The centred square ``(left, top, right, bottom)`` whose side is ``fraction`` of ``min(width, height)``
    (at least 1 px)."""
    side = max(1, round(min(width, height) * fraction))
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


class FaceCrop:
    """PIL image -> its central square of side ``fraction * min(w, h)``; ``fraction`` 1 keeps the centred
    square of the whole image (a no-op on square images)."""

    def __init__(self, fraction: float):
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"face crop must be a fraction of the side in (0, 1], got {fraction}")
        self.fraction = float(fraction)

    def __call__(self, img: Image.Image) -> Image.Image:
        box = face_crop_box(img.width, img.height, self.fraction)
        if box == (0, 0, img.width, img.height):
            return img
        return img.crop(box)

    def __repr__(self) -> str:
        return f"FaceCrop({self.fraction:g})"


class Restore:
    """PIL image -> the image restored by ``method`` (one of :data:`RESTORERS`; ``none`` is the identity)."""

    def __init__(self, method: str = "median"):
        if method not in RESTORERS:
            raise ValueError(f"restore must be one of {RESTORERS}, got {method!r}")
        self.method = method

    def __call__(self, img: Image.Image) -> Image.Image:
        if self.method == "median":
            return img.filter(ImageFilter.MedianFilter(3))
        return img

    def __repr__(self) -> str:
        return f"Restore({self.method!r})"
