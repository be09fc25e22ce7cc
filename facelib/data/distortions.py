"""The seven FACECOM distortions, imitated with numpy and PIL.

Parameters were calibrated on the real FACECOM Task-B validation pairs (clean vs
``distortion/<stem>_<kind>.jpg``, 224x224): measured on 45 pairs, the real data shows

=========  ==================================================================
blurred    Gaussian blur, sigma ~2.25 px at 224 px (high-frequency energy x0.2)
foggy      patchy light-grey haze: mean +43, contrast x0.55
lowlight   linear darkening: mean and contrast both x0.30
noisy      grey salt-and-pepper (~9% of pixels off by >80), diff std ~40
rainy      thin slanted light streaks (~15-20 px long) on an image dimmed x0.9
resized    down-sampled by ~1.5-2 and scaled back up (bicubic)
sunny      whitish glare: a bright elliptical glow over the face plus a global
           wash, mean +95 (range +17..+125), R-B tint pulled towards white
=========  ==================================================================

Sizes (blur sigma, streak length) scale with ``min(width, height) / 224`` so a 64 px
image gets the same relative degradation as a 224 px one.

After the face crop
-------------------
:func:`distort` takes the reference ``scale`` explicitly too: a made distortion applied to a framed crop
(:mod:`facelib.data.frames`: the central ``face_crop`` of the side, decoded once) passes the ORIGINAL photo's
``min(width, height) / 224`` (times any resize of the crop), so pixel sizes stay those of the full photo.
The image then is the centre of a *virtual frame*, the square of side ``224 * scale`` it was cropped from:

=========  ==================================================================
blurred    sigma from ``scale``: the same blur; only the crop's border differs (edge pixels repeated)
lowlight   per pixel: the same
noisy      per pixel: the same distribution
resized    relative factor: the same distribution (the sampling grid's phase may differ)
rainy      streak length and softening from ``scale``, count per pixel: the same density
foggy      DIFFERS if done on the crop's own frame: its patches (3-10 cells across the image) would be
           ~1/face_crop times smaller; so the haze field is made over the virtual frame and its centre kept
sunny      DIFFERS likewise: the glow's centre and radii are fractions of the image; so they are placed
           in the virtual frame's coordinates (the glow over the face, its size relative to the photo)
=========  ==================================================================

The virtual frame is square: for a non-square photo the glow's and haze's layout is that of its central square
(horizontal positions scale with the shorter side). Without ``scale`` (or when the frame is no larger than the
image) every distortion is exactly as before.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from facelib.data.folders import DISTORTION_DIR, DISTORTION_KINDS, DataError, load_image, scan_folder, to_rgb
from facelib.io import atomic_path

KINDS: tuple[str, ...] = DISTORTION_KINDS

__all__ = ["KINDS", "distort", "distort_all", "distort_folder", "image_rng", "save_jpeg", "shrink"]


def image_rng(seed: int, *keys: object) -> np.random.Generator:
    """A generator derived from ``seed`` and string-able keys by a stable hash (SHA-256).

    The same (seed, keys) give the same stream on every run, platform and process
    (unlike Python's salted ``hash()``).
    """
    text = "\x1f".join([str(int(seed))] + [str(k) for k in keys])
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return np.random.default_rng([int.from_bytes(digest[i : i + 8], "little") for i in range(0, 32, 8)])


def _arr(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.float32)


def _img(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8), mode="RGB")


def _scale(img: Image.Image, scale: float | None = None) -> float:
    """The reference scale: ``scale`` if given, else ``min(img.size) / 224``."""
    return min(img.size) / 224.0 if scale is None else float(scale)


def _frame(img: Image.Image, scale: float | None) -> tuple[int, int, int] | None:
    """The virtual frame ``(side, left, top)`` the image is the centre of (the photo a crop came from), or
    ``None`` when there is none: no ``scale``, or a frame no larger than the image."""
    if scale is None:
        return None
    side = round(224.0 * scale)
    w, h = img.size
    if side <= max(w, h):
        return None
    return side, (side - w) // 2, (side - h) // 2


def _smooth_field(shape: tuple[int, int], rng: np.random.Generator, cells: int) -> np.ndarray:
    """Low-frequency noise in [0, 1], (H, W) float32: a random coarse grid, bicubic-upsampled."""
    h, w = shape
    gh, gw = max(2, cells), max(2, round(cells * w / max(h, 1)))
    grid = rng.random((gh, gw)).astype(np.float32)
    field = np.asarray(Image.fromarray(grid, mode="F").resize((w, h), Image.BICUBIC), dtype=np.float32)
    lo, hi = float(field.min()), float(field.max())
    return (field - lo) / (hi - lo) if hi > lo else np.zeros((h, w), np.float32)


def _blurred(img: Image.Image, rng: np.random.Generator, scale: float | None = None) -> Image.Image:
    sigma = rng.uniform(1.6, 3.0) * _scale(img, scale)
    return img.filter(ImageFilter.GaussianBlur(max(sigma, 0.6)))


def _foggy(img: Image.Image, rng: np.random.Generator, scale: float | None = None) -> Image.Image:
    a = _arr(img)
    h, w = a.shape[:2]
    frame = _frame(img, scale)
    fh, fw = (h, w) if frame is None else (frame[0], frame[0])  # the field over the virtual frame
    patches = 0.6 * _smooth_field((fh, fw), rng, int(rng.integers(3, 6))) + 0.4 * _smooth_field(
        (fh, fw), rng, int(rng.integers(6, 11))
    )
    if frame is not None:
        _, left, top = frame
        patches = patches[top : top + h, left : left + w]
    lo = rng.uniform(0.15, 0.3)
    hi = rng.uniform(0.6, 0.8)
    alpha = (lo + (hi - lo) * patches)[..., None]
    grey = rng.uniform(200.0, 225.0)
    fog = np.array([grey - 3.0, grey, grey + 5.0], dtype=np.float32)
    return _img(a * (1.0 - alpha) + fog * alpha)


def _lowlight(img: Image.Image, rng: np.random.Generator, scale: float | None = None) -> Image.Image:
    return _img(_arr(img) * rng.uniform(0.24, 0.36))


def _noisy(img: Image.Image, rng: np.random.Generator, scale: float | None = None) -> Image.Image:
    a = _arr(img)
    h, w = a.shape[:2]
    a = a + rng.normal(0.0, rng.uniform(2.0, 5.0), size=(h, w, 1)).astype(np.float32)
    amount = rng.uniform(0.09, 0.14)
    u = rng.random((h, w))
    a[u < amount / 2] = rng.uniform(0.0, 25.0)
    a[(u >= amount / 2) & (u < amount)] = rng.uniform(230.0, 255.0)
    return _img(a)


def _rainy(img: Image.Image, rng: np.random.Generator, scale: float | None = None) -> Image.Image:
    w, h = img.size
    s = _scale(img, scale)
    dim = rng.uniform(0.84, 0.94)
    base = _arr(img) * dim
    layer = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(layer)
    n = int(w * h * rng.uniform(0.007, 0.012))
    slant = rng.uniform(-0.35, 0.35)  # dx per unit dy, shared by all streaks
    length = rng.uniform(12.0, 22.0) * s
    xs = rng.uniform(-0.2 * w, 1.2 * w, n)
    ys = rng.uniform(-length, h, n)
    ls = length * rng.uniform(0.6, 1.2, n)
    vals = rng.integers(110, 210, n)
    for x, y, ln, v in zip(xs, ys, ls, vals):
        dy = ln / np.sqrt(1.0 + slant * slant)
        draw.line([(x, y), (x + slant * dy, y + dy)], fill=int(v), width=1)
    if s > 0.6:
        layer = layer.filter(ImageFilter.GaussianBlur(0.4 * s))
    alpha = _arr(layer)[..., None] / 255.0
    colour = np.array([205.0, 205.0, 210.0], dtype=np.float32)
    return _img(base * (1.0 - alpha) + colour * alpha)


def shrink(img: Image.Image, factor: float) -> Image.Image:
    """``img`` down-sampled by ``factor`` (antialiased bilinear) and scaled back up to its size (bicubic): the same
    size, holding only the detail of the smaller copy."""
    w, h = img.size
    small = img.resize((max(1, round(w / factor)), max(1, round(h / factor))), Image.BILINEAR)
    return small.resize((w, h), Image.BICUBIC)


def _resized(img: Image.Image, rng: np.random.Generator, scale: float | None = None) -> Image.Image:
    return shrink(img, rng.uniform(1.5, 2.5))


def _sunny(img: Image.Image, rng: np.random.Generator, scale: float | None = None) -> Image.Image:
    a = _arr(img)
    h, w = a.shape[:2]
    frame = _frame(img, scale)
    fw, fh, left, top = (w, h, 0, 0) if frame is None else (frame[0], frame[0], frame[1], frame[2])
    cx = fw * rng.uniform(0.4, 0.6) - left  # placed in the virtual frame, in the image's coordinates
    cy = fh * rng.uniform(0.3, 0.5) - top
    rx = fw * rng.uniform(0.3, 0.5)
    ry = rx * rng.uniform(1.0, 1.35)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2
    glow = np.clip(np.exp(-1.5 * np.maximum(r2 - 0.5, 0.0)) * rng.uniform(0.9, 1.0), 0.0, 1.0)
    wash = rng.uniform(0.15, 0.45)
    alpha = (1.0 - (1.0 - glow) * (1.0 - wash))[..., None]
    white = np.array([255.0, 252.0, 242.0], dtype=np.float32)
    return _img(a * (1.0 - alpha) + white * alpha)


_FUNCS: dict[str, Callable[[Image.Image, np.random.Generator, float | None], Image.Image]] = {
    "blurred": _blurred,
    "foggy": _foggy,
    "lowlight": _lowlight,
    "noisy": _noisy,
    "rainy": _rainy,
    "resized": _resized,
    "sunny": _sunny,
}


def _check_kinds(kinds: Iterable[str]) -> tuple[str, ...]:
    kinds = tuple(kinds)
    bad = [k for k in kinds if k not in _FUNCS]
    if bad:
        raise ValueError(f"unknown distortion kind(s) {bad}; choose from {list(KINDS)}")
    return kinds


def distort(img: Image.Image, kind: str, rng: np.random.Generator, scale: float | None = None) -> Image.Image:
    """Apply one distortion ``kind`` (see :data:`KINDS`); returns a new RGB image of the same size.

    ``scale``: the reference scale, ``min(width, height) / 224`` of the photo the image was cropped from (in
    this image's pixels); ``None``: the image's own (as before). See "After the face crop" above.

    Raises:
        ValueError: unknown ``kind``.
    """
    if kind not in _FUNCS:
        raise ValueError(f"unknown distortion kind {kind!r}; choose from {list(KINDS)}")
    if img.mode != "RGB":
        img = to_rgb(img)
    out = _FUNCS[kind](img, rng, scale)
    return out if out.mode == "RGB" else out.convert("RGB")


def distort_all(img: Image.Image, seed: int, kinds: Sequence[str] = KINDS) -> dict[str, Image.Image]:
    """Every kind in ``kinds`` applied to ``img``; kind ``k`` uses ``image_rng(seed, k)``."""
    return {k: distort(img, k, image_rng(seed, k)) for k in _check_kinds(kinds)}


def save_jpeg(img: Image.Image, path: str | os.PathLike, quality: int = 95) -> Path:
    """Write ``img`` as a JPEG atomically (the temp name has no .jpg suffix, so the format is explicit)."""
    with atomic_path(path) as tmp:
        img.save(tmp, format="JPEG", quality=quality)
    return Path(path)


def distort_folder(
    src: str | os.PathLike,
    out: str | os.PathLike,
    kinds: Sequence[str] = KINDS,
    seed: int = 0,
    quality: int = 95,
    workers: int | None = None,
) -> dict:
    """Copy a folder-per-identity dataset to ``out`` and add distorted copies.

    Clean images ``src/<identity>/*`` are copied byte for byte to ``out/<identity>/``;
    for each and every kind, ``out/<identity>/distortion/<stem>_<kind>.jpg`` is written.
    An existing ``distortion/`` folder in ``src`` is ignored. Image ``(identity, stem)``
    and kind ``k`` use ``image_rng(seed, identity, stem, k)``, so output is deterministic.
    Unusable files (zero-byte, corrupt, not an image) are skipped and counted.

    Returns:
        ``{"identities", "clean", "distorted", "skipped", "skipped_reasons", "out"}``.
    Raises:
        DataError: ``src`` is missing or holds no usable image.
        ValueError: an unknown kind.
    """
    kinds = _check_kinds(kinds)
    src, out = Path(src), Path(out)
    if src.exists() and out.exists() and src.resolve() == out.resolve():
        raise DataError(f"distort_folder: output folder must differ from the source ({src})")
    folder = scan_folder(src, include_distortions=False, workers=workers)
    failed: list[tuple[str, str]] = []

    def work(sample) -> int:
        try:
            img = load_image(sample.path)
        except (OSError, SyntaxError, ValueError) as e:  # changed since the scan
            failed.append((sample.rel, f"unreadable: {e}"))
            return 0
        stem = sample.path.stem
        ident_dir = out / sample.identity
        with atomic_path(ident_dir / sample.path.name) as tmp:
            shutil.copyfile(sample.path, tmp)
        for k in kinds:
            d = distort(img, k, image_rng(seed, sample.identity, stem, k))
            save_jpeg(d, ident_dir / DISTORTION_DIR / f"{stem}_{k}.jpg", quality=quality)
        return 1

    n_workers = workers or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=n_workers) as pool:
        done = list(pool.map(work, folder.samples))
    n_clean = sum(done)
    reasons = dict(folder.report.skipped)
    if failed:
        reasons["unreadable"] = reasons.get("unreadable", 0) + len(failed)
    identities = sorted({s.identity for s, ok in zip(folder.samples, done) if ok})
    return {
        "identities": len(identities),
        "clean": n_clean,
        "distorted": n_clean * len(kinds),
        "skipped": folder.report.n_skipped + len(failed),
        "skipped_reasons": reasons,
        "kinds": list(kinds),
        "out": str(out),
    }
