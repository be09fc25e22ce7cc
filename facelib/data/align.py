"""Face detection + 5-point landmark alignment into FACECOM's framing (``facelib align``).

FACECOM's clean images are LFW deep-funneled photos at 224 x 224: the face fills roughly the central
55% of the side. :func:`align_image` detects the largest face (dlib HOG or CNN), takes dlib's 5 landmarks,
fits the similarity transform (rotation + uniform scale + translation, least squares) that maps the two
eye centres and the nose onto :data:`TEMPLATE` and warps the photo to ``size x size``. Where no face is
found, the fallback framing is the centred square of side ``min(w, h)``.

:func:`align_folder` aligns a FACECOM-layout folder: each clean photo is detected, and each of its
``distortion/<stem>_<kind>.jpg`` copies is warped with the same transform (no detection on them).

Coordinates are continuous: pixel ``i`` covers ``[i, i + 1)``, so its centre is ``i + 0.5`` (PIL's
``Image.transform`` convention); dlib's integer landmark ``x`` becomes ``x + 0.5``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
from PIL import Image

from facelib.commands import AlignConfig  # the defaults of `facelib align`
from facelib.config import AUTO_UPSAMPLE_BELOW, DETECTORS, NO_FACE  # the registry's names
from facelib.data.distortions import save_jpeg
from facelib.data.folders import load_image, name_list, scan_folder
from facelib.errors import DataError, FacelibError
from facelib.io import atomic_path, write_json

__all__ = ["TEMPLATE", "DETECTORS", "NO_FACE", "Aligner", "AlignReport", "LandmarkFinder", "similarity_transform",
           "apply_transform", "key_points", "face_transform", "fallback_transform", "warp", "align_image",
           "align_paths", "align_to_folder", "align_folder"]

# Median positions, as fractions of the image side (continuous coordinates), of the image-left eye centre,
# the image-right eye centre (each the mean of the eye's two corner landmarks) and the nose landmark: dlib
# HOG (upsample 1) + 5-point model on 600 LFW-derived FACECOM train clean photos (at most 2 per identity,
# `_frontal` identities left out; 596 found). Interquartile ranges are about +-0.007; extra_faces/lfw (250 px
# originals) gives the same within 0.004. Measured with:
#   python benchmarks/align_compare.py --template --n 600 --upsample 1
TEMPLATE = np.array([[0.4219, 0.4576],   # image-left eye
                     [0.5826, 0.4554],   # image-right eye
                     [0.5022, 0.5781]])  # nose (dlib landmark 4, below the tip)
DETECT_MAX_SIDE = 1024  # larger photos are detected downscaled to this (HOG/CNN time grows with the pixels)
MARKER = ".facelib-align.json"  # written into OUT; a non-empty OUT without it is refused
MISSING_DLIB = "face alignment needs dlib: pip install 'facelib[align]'"


class LandmarkFinder(Protocol):
    """What :func:`align_image` needs: ``landmarks(img) -> [5, 2] float (dlib pixel x, y) or None``."""

    def landmarks(self, img: Image.Image) -> np.ndarray | None: ...


def _import_dlib():
    try:
        import dlib
    except ImportError:
        raise FacelibError(MISSING_DLIB) from None
    return dlib


def model_file(name: str) -> Path:
    """A model file of the ``face_recognition_models`` package, found without importing it (its
    ``__init__`` needs the removed ``pkg_resources``)."""
    spec = importlib.util.find_spec("face_recognition_models")
    roots = list(spec.submodule_search_locations or []) if spec else []
    path = Path(roots[0]) / "models" / name if roots else None
    if path is None or not path.is_file():
        raise FacelibError(f"face alignment needs the model file {name}: pip install 'facelib[align]'")
    return path


class Aligner:
    """dlib face detector (``hog`` or ``cnn``) + 5-point shape predictor.

    Args:
        detector: ``hog`` (``get_frontal_face_detector``) or ``cnn`` (MMOD, slow on CPU).
        upsample: detector upsampling count; ``None`` = 1 when the shorter side is below
            :data:`AUTO_UPSAMPLE_BELOW` px (dlib misses faces under ~80 px), else 0.
    """

    def __init__(self, detector: str = AlignConfig.detector, upsample: int | None = None):
        if detector not in DETECTORS:
            raise FacelibError(f"unknown face detector {detector!r}; choose one of {', '.join(DETECTORS)}")
        if upsample is not None and not 0 <= upsample <= 4:
            raise FacelibError(f"upsample must be 0 to 4 (or None for automatic), got {upsample}")
        dlib = _import_dlib()
        self.detector_name, self.upsample, self._rectangle = detector, upsample, dlib.rectangle
        self.shape = dlib.shape_predictor(str(model_file("shape_predictor_5_face_landmarks.dat")))
        if detector == "hog":
            self.detector = dlib.get_frontal_face_detector()
        else:
            self.detector = dlib.cnn_face_detection_model_v1(str(model_file("mmod_human_face_detector.dat")))

    def upsample_for(self, width: int, height: int) -> int:
        if self.upsample is not None:
            return self.upsample
        return 1 if min(width, height) < AUTO_UPSAMPLE_BELOW else 0

    def landmarks(self, img: Image.Image) -> np.ndarray | None:
        """The 5 landmarks [5, 2] (dlib pixel x, y) of the largest face in an image, or None. Photos larger
        than :data:`DETECT_MAX_SIDE` are detected at that size; the landmarks use full resolution."""
        img = img.convert("RGB")
        scale = min(1.0, DETECT_MAX_SIDE / max(img.size))
        small = img if scale == 1.0 else img.resize((max(1, round(img.width * scale)),
                                                     max(1, round(img.height * scale))), Image.Resampling.BILINEAR)
        boxes = self.detector(np.asarray(small), self.upsample_for(*small.size))
        if self.detector_name == "cnn":
            boxes = [b.rect for b in boxes]
        if not len(boxes):
            return None
        box = max(boxes, key=lambda r: r.width() * r.height())
        if scale != 1.0:
            box = self._rectangle(*(round(v / scale) for v in (box.left(), box.top(), box.right(), box.bottom())))
        shape = self.shape(np.asarray(img), box)
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; no reflection) mapping
    ``src`` [N, 2] onto ``dst`` [N, 2], N >= 2. Returns [2, 3]: ``dst ~ M[:, :2] @ p + M[:, 2]``."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need two [N>=2, 2] point sets, got {src.shape} and {dst.shape}")
    # unknowns (a, b, tx, ty): x' = a x - b y + tx, y' = b x + a y + ty
    x, y = src[:, 0], src[:, 1]
    one, zero = np.ones_like(x), np.zeros_like(x)
    A = np.concatenate([np.stack([x, -y, one, zero], 1), np.stack([y, x, zero, one], 1)])
    (a, b, tx, ty), *_ = np.linalg.lstsq(A, np.concatenate([dst[:, 0], dst[:, 1]]), rcond=None)
    return np.array([[a, -b, tx], [b, a, ty]])


def apply_transform(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a [2, 3] affine matrix to points [N, 2]."""
    return np.asarray(points, np.float64) @ m[:, :2].T + m[:, 2]


def key_points(landmarks: np.ndarray) -> np.ndarray:
    """dlib's 5 landmarks [5, 2] (pixel coordinates) -> [3, 2] continuous (image-left eye centre,
    image-right eye centre, nose), in the order of :data:`TEMPLATE`."""
    p = np.asarray(landmarks, np.float64) + 0.5
    eyes = sorted([p[0:2].mean(0), p[2:4].mean(0)], key=lambda e: e[0])
    return np.array([eyes[0], eyes[1], p[4]])


def fallback_transform(width: int, height: int, size: int) -> np.ndarray:
    """[2, 3]: the centred square of side ``min(width, height)`` scaled to ``size``."""
    side = min(width, height)
    s = size / side
    return np.array([[s, 0.0, -s * (width - side) / 2], [0.0, s, -s * (height - side) / 2]])


def face_transform(img: Image.Image, aligner: LandmarkFinder, size: int = 224) -> np.ndarray | None:
    """[2, 3] image -> aligned ``size x size`` frame, or None when no face is found."""
    lm = aligner.landmarks(img)
    if lm is None:
        return None
    return similarity_transform(key_points(lm), TEMPLATE * size)


def warp(img: Image.Image, m: np.ndarray, size: int = 224, from_size: tuple[int, int] | None = None) -> Image.Image:
    """Warp ``img`` by ``m`` [2, 3] to a ``size x size`` RGB image (bicubic; strong shrinking is
    box-reduced first, to avoid aliasing). ``from_size``: the (w, h) ``m`` was fitted on, when ``img``
    is a copy of another size (e.g. a resized distorted copy)."""
    img = img.convert("RGB")
    m = np.asarray(m, np.float64).copy()
    if from_size is not None and tuple(from_size) != img.size:
        m[:, :2] = m[:, :2] * np.array([from_size[0] / img.width, from_size[1] / img.height])
    factor = int(1.0 / np.sqrt(abs(np.linalg.det(m[:, :2]))))  # input pixels per output pixel
    if factor >= 2:
        img = img.reduce(factor)
        m[:, :2] *= factor
    inv = np.linalg.inv(np.vstack([m, [0.0, 0.0, 1.0]]))[:2]  # output -> input, as PIL wants
    return img.transform((size, size), Image.Transform.AFFINE, tuple(inv.ravel()), Image.Resampling.BICUBIC)


def align_image(img: Image.Image, aligner: LandmarkFinder, size: int = 224) -> tuple[Image.Image, bool]:
    """Align the largest face of ``img`` to ``size x size`` RGB; ``found`` False: fallback framing."""
    m = face_transform(img, aligner, size)
    found = m is not None
    return warp(img, m if found else fallback_transform(*img.size, size), size), found


def align_paths(paths: Sequence[str | os.PathLike], aligner: LandmarkFinder,
                size: int = 224) -> list[tuple[Image.Image, bool]]:
    """Align image files in memory: ``[(aligned image, found)]`` in ``paths`` order."""
    return [align_image(load_image(p), aligner, size) for p in paths]


def align_to_folder(paths: Sequence[str | os.PathLike], out: str | os.PathLike, aligner: LandmarkFinder,
                    size: int = 224) -> tuple[list[Path], list[bool]]:
    """Align image files into ``out/NNNNNN.png`` (lossless; e.g. a temporary folder for ``identify``), one
    at a time. Returns the new paths (in ``paths`` order) and whether a face was found in each."""
    new, found = [], []
    for i, path in enumerate(paths):
        img, ok = align_image(load_image(path), aligner, size)
        new.append(Path(out) / f"{i:06d}.png")
        with atomic_path(new[-1]) as tmp:
            img.save(tmp, format="PNG")
        found.append(ok)
    return new, found


@dataclass
class AlignReport:
    """What :func:`align_folder` did. A photo is an image that was detected: a clean photo, or an orphan
    (a distorted copy without a usable clean photo). ``no_face`` and ``unreadable`` hold relative paths."""

    src: str
    out: str
    detector: str
    size: int
    no_face_policy: str
    n_photos: int = 0          # images detected (clean photos + orphans)
    n_found: int = 0
    n_fallback: int = 0        # no face, fallback framing written (keep)
    n_skipped_no_face: int = 0  # no face, left out with their distorted copies (skip)
    n_orphans: int = 0         # distorted copies without a usable clean photo, detected on themselves
    n_written: int = 0         # image files written (clean + distorted)
    per_kind: Counter = field(default_factory=Counter)  # distorted copies written, per kind
    no_face: list[str] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # skipped files: (relative path, reason)
    seconds: float = 0.0

    def summary(self) -> str:
        lines = [f"aligned {self.src} -> {self.out} ({self.detector}, {self.size} px): face found in "
                 f"{self.n_found} of {self.n_photos} photos, {self.n_written} images written in {self.seconds:.0f} s"]
        if self.no_face:
            what = (f"fallback framing (centred square) for {self.n_fallback}" if self.no_face_policy == "keep"
                    else f"skipped {self.n_skipped_no_face} with their distorted copies")
            lines.append(f"  no face in {len(self.no_face)}: {what}: " + name_list(self.no_face))
        if self.n_orphans:
            lines.append(f"  {self.n_orphans} distorted copies had no usable clean photo (detected on themselves)")
        if self.unreadable:
            why = Counter(w.split(":")[0] for _, w in self.unreadable)
            counts = ", ".join(f"{n} {w}" for w, n in sorted(why.items()))
            names = name_list([p for p, _ in self.unreadable])
            lines.append(f"  skipped {len(self.unreadable)} files ({counts}): {names}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {**asdict(self), "per_kind": dict(self.per_kind)}


def _out_rel(rel: str) -> str:
    p = Path(rel)
    return (p if p.suffix.lower() in (".jpg", ".jpeg") else p.with_suffix(".jpg")).as_posix()


def _prepare_out(src: Path, out: Path) -> list[str]:
    """Check ``out`` may be written; return the files of the previous align run there (to prune)."""
    if out.resolve() == src.resolve() or src.resolve() in out.resolve().parents:
        raise DataError(f"the output folder must be outside the source folder: {out}")
    marker = out / MARKER
    if marker.is_file():
        try:
            return list(json.loads(marker.read_text()).get("files", []))
        except (OSError, ValueError):
            return []
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out} exists and is not the output of a previous 'facelib align' run; "
                        "choose a new or empty folder")
    return []


def align_folder(src: str | os.PathLike, out: str | os.PathLike, detector: str = AlignConfig.detector,
                 size: int = AlignConfig.size, no_face: str = AlignConfig.no_face, upsample: int | None = None,
                 progress: bool = True, aligner: LandmarkFinder | None = None, quality: int = 95) -> AlignReport:
    """Align a FACECOM-layout folder into ``out`` (same relative paths, JPEG; non-JPEG names get ``.jpg``).

    Each clean photo is detected and aligned; its distorted copies are warped with the same transform.
    ``no_face``: ``keep`` writes the fallback framing, ``skip`` leaves the photo and its copies out (both
    counted and named). ``out`` must be new, empty, or a previous align output (overwritten atomically,
    its files not written this time removed). ``aligner`` overrides ``detector``/``upsample`` (tests).
    """
    if no_face not in NO_FACE:
        raise FacelibError(f"unknown no_face policy {no_face!r}; choose one of {', '.join(NO_FACE)}",
                           fields=("no_face",))
    if size < 16:
        raise FacelibError(f"size must be at least 16 px, got {size}", fields=("size",))
    t0 = time.perf_counter()
    src, out = Path(src), Path(out)
    aligner = aligner or Aligner(detector, upsample)
    previous = _prepare_out(src, out)
    folder = scan_folder(src)
    report = AlignReport(str(src), str(out), getattr(aligner, "detector_name", detector), size, no_face,
                         unreadable=[(p, why) for p, why in folder.report.skipped_files])
    clean: dict[str, object] = {}
    copies: dict[str, list] = {}
    for s in folder.samples:
        if s.is_clean and s.photo in clean:  # a.jpg and a.png: one output name
            report.unreadable.append((s.rel, "duplicate photo name"))
        elif s.is_clean:
            clean[s.photo] = s
        else:
            copies.setdefault(s.photo, []).append(s)
    planned = {_out_rel(s.rel) for s in folder.samples}
    write_json(out / MARKER, {"complete": False, "files": sorted(set(previous) | planned)})
    written: set[str] = set()

    def save(img: Image.Image, rel: str) -> None:
        save_jpeg(img, out / _out_rel(rel), quality)
        written.add(_out_rel(rel))

    def load(s) -> Image.Image | None:
        try:
            return load_image(s.path)
        except (OSError, SyntaxError, ValueError) as e:  # changed since the scan
            report.unreadable.append((s.rel, f"unreadable: {e}"))
            return None

    def align_unit(photo, dist: list, orphan: bool) -> None:
        img = load(photo)
        if img is None:  # its distorted copies are detected on themselves
            for d in dist:
                align_unit(d, [], True)
            return
        m = face_transform(img, aligner, size)
        report.n_photos += 1
        report.n_orphans += orphan
        if m is None:
            report.no_face.append(photo.rel)
            if no_face == "skip":
                report.n_skipped_no_face += 1
                return
            report.n_fallback += 1
            m = fallback_transform(*img.size, size)
        else:
            report.n_found += 1
        save(warp(img, m, size), photo.rel)
        if orphan:
            report.per_kind[photo.distortion] += 1
        for d in dist:
            dimg = load(d)
            if dimg is not None:
                save(warp(dimg, m, size, from_size=img.size), d.rel)
                report.per_kind[d.distortion] += 1

    units = [(clean[k], copies.get(k, []), False) for k in sorted(clean)]
    units += [(d, [], True) for k in sorted(set(copies) - set(clean)) for d in copies[k]]
    if progress:
        from tqdm.auto import tqdm

        units = tqdm(units, desc="aligning", unit="photo", disable=None)
    for photo, dist, orphan in units:
        align_unit(photo, dist, orphan)
    report.n_written = len(written)
    for rel in sorted(set(previous) - written):  # stale files of an earlier run
        if not Path(rel).is_absolute() and ".." not in Path(rel).parts:
            (out / rel).unlink(missing_ok=True)
    for d in sorted((p for p in out.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        if not any(d.iterdir()):
            d.rmdir()
    report.seconds = time.perf_counter() - t0
    write_json(out / MARKER, {"complete": True, "files": sorted(written), "report": report.to_dict()})
    return report
