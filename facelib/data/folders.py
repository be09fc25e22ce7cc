"""The FACECOM folder layout: scanning, robust image loading, and a torch Dataset.

Layout::

    root/<identity>/<stem>.jpg                          clean photos
    root/<identity>/distortion/<stem>_<kind>.jpg        distorted copies (optional)

Every file that cannot be used (zero bytes, not an image, corrupt or truncated) is
skipped and counted in a :class:`ScanReport`; the run goes on.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from facelib.config import DISTORTION_KINDS  # the registry's names
from facelib.errors import DataError

DISTORTION_DIR = "distortion"
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm"})
# Pixel-count guard: refuse decompression bombs with a clear message instead of PIL's warning.
Image.MAX_IMAGE_PIXELS = 10_000 * 10_000


@dataclass(frozen=True)
class Sample:
    """One usable image.

    ``photo`` names the source photo (``identity/stem``): a clean image and its seven
    distorted copies share it. ``distortion`` is the kind, or ``""`` for a clean image.
    ``synthetic``: a distorted copy made on the fly from the clean photo at ``path``
    (:meth:`FaceFolder.with_synthetic_distortions`), not a file of its own.
    """

    path: Path
    rel: str
    identity: str
    photo: str
    distortion: str
    synthetic: bool = False

    @property
    def is_clean(self) -> bool:
        return self.distortion == ""


@dataclass
class ScanReport:
    """What a scan found and what it skipped (reason -> count), for a one-paragraph summary."""

    root: str
    n_identities: int = 0
    n_clean: int = 0
    n_distorted: int = 0
    skipped: Counter = field(default_factory=Counter)
    skipped_files: list[tuple[str, str]] = field(default_factory=list)
    empty_identities: list[str] = field(default_factory=list)
    single_image_identities: list[str] = field(default_factory=list)
    sources: list["ScanReport"] = field(default_factory=list)  # one per folder when several were scanned

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    def summary(self) -> str:
        """A short human-readable summary, with every skip counted (one paragraph per source)."""
        if self.sources:
            return "\n".join([r.summary() for r in self.sources] + [
                f"{len(self.sources)} sources (people in different folders are different people): "
                f"{self.n_identities} identities, {self.n_clean} clean + {self.n_distorted} distorted images"])
        lines = [
            f"{self.root}: {self.n_identities} identities, {self.n_clean} clean + "
            f"{self.n_distorted} distorted images"
        ]
        if self.skipped:
            reasons = ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items()))
            lines.append(f"  skipped {self.n_skipped} files ({reasons})")
            for path, why in self.skipped_files[:5]:
                lines.append(f"    {why}: {path}")
            if len(self.skipped_files) > 5:
                lines.append(f"    ... and {len(self.skipped_files) - 5} more")
        if self.empty_identities:
            lines.append(
                f"  skipped {len(self.empty_identities)} identities with no usable image: "
                + name_list(self.empty_identities)
            )
        if self.single_image_identities:
            lines.append(
                f"  {len(self.single_image_identities)} identities have a single image (no positive for a "
                "triplet; used as negatives and for evaluation only): " + name_list(self.single_image_identities)
            )
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "root": self.root,
            "n_identities": self.n_identities,
            "n_clean": self.n_clean,
            "n_distorted": self.n_distorted,
            "skipped": dict(self.skipped),
            "empty_identities": list(self.empty_identities),
            "single_image_identities": list(self.single_image_identities),
        }


def name_list(names: Sequence[str], limit: int = 5) -> str:
    """The first ``limit`` names, comma-separated, and how many more: for one-line summaries."""
    shown = ", ".join(names[:limit])
    return shown + (f", ... (+{len(names) - limit})" if len(names) > limit else "")


@dataclass
class FaceFolder:
    """A scanned FACECOM-layout folder: the usable samples and the sorted identity list."""

    root: Path
    samples: list[Sample]
    identities: list[str]
    report: ScanReport

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def labels(self) -> np.ndarray:
        """(N,) int64 index into :attr:`identities`."""
        index = {name: i for i, name in enumerate(self.identities)}
        return np.array([index[s.identity] for s in self.samples], dtype=np.int64)

    @property
    def identity_names(self) -> np.ndarray:
        return np.array([s.identity for s in self.samples], dtype=object)

    @property
    def photos(self) -> np.ndarray:
        return np.array([s.photo for s in self.samples], dtype=object)

    @property
    def distortions(self) -> np.ndarray:
        return np.array([s.distortion for s in self.samples], dtype=object)

    @property
    def paths(self) -> list[Path]:
        return [s.path for s in self.samples]

    @property
    def synthetic_kinds(self) -> list[str]:
        """Per sample, the distortion to make on the fly (``""`` for a file used as it is)."""
        return [s.distortion if s.synthetic else "" for s in self.samples]

    def select(self, keep: Callable[[Sample], bool]) -> "FaceFolder":
        """A new FaceFolder with the samples for which ``keep`` is true (identity list unchanged)."""
        return FaceFolder(self.root, [s for s in self.samples if keep(s)], list(self.identities), self.report)

    def with_synthetic_distortions(self, kinds: Sequence[str] = DISTORTION_KINDS) -> tuple["FaceFolder", int]:
        """Add, for every clean photo that has no distorted copy, one synthetic sample per kind in ``kinds``
        (made on the fly by :class:`ImageDataset`). Returns the new folder and the number of such photos."""
        has_copies = {s.photo for s in self.samples if not s.is_clean}
        bare = [s for s in self.samples if s.is_clean and s.photo not in has_copies]
        made = [Sample(s.path, f"{s.rel}#{k}", s.identity, s.photo, k, synthetic=True) for s in bare for k in kinds]
        return FaceFolder(self.root, self.samples + made, list(self.identities), self.report), len(bare)


def source_tags(roots: Sequence[str | os.PathLike]) -> list[str]:
    """A short distinct name per training source: the folder's name, made unique with its parent's name
    or a number (``train``, ``lfw``, ``celeba_aligned``; two ``train`` folders: ``a/train``, ``b/train``)."""
    paths = [Path(r) for r in roots]
    names = [p.name or str(p) for p in paths]
    tags = [f"{p.parent.name}/{n}" if names.count(n) > 1 and p.parent.name else n for p, n in zip(paths, names)]
    seen: Counter = Counter()
    out = []
    for tag in tags:
        seen[tag] += 1
        out.append(f"{tag}#{seen[tag]}" if tags.count(tag) > 1 else tag)
    return out


def scan_sources(roots: str | os.PathLike | Sequence[str | os.PathLike], include_distortions: bool = True,
                 verify: bool = True) -> FaceFolder:
    """Scan one folder, or several training sources into one :class:`FaceFolder`.

    People in different folders are different people: with several sources every identity is named
    ``<source tag>/<identity>`` (:func:`source_tags`), so two folders' ``John_Doe`` never merge. The
    report sums the sources' counts; its summary gives one line per source, then the total.
    """
    if isinstance(roots, (str, os.PathLike)):
        return scan_folder(roots, include_distortions=include_distortions, verify=verify)
    roots = list(roots)
    if len(roots) == 1:
        return scan_folder(roots[0], include_distortions=include_distortions, verify=verify)
    if not roots:
        raise DataError("no data folder given")
    folders = [scan_folder(r, include_distortions=include_distortions, verify=verify) for r in roots]
    tags = source_tags(roots)
    samples = [Sample(s.path, f"{tag}/{s.rel}", f"{tag}/{s.identity}", f"{tag}/{s.photo}", s.distortion)
               for tag, f in zip(tags, folders) for s in f.samples]
    report = ScanReport(root=" + ".join(str(r) for r in roots))
    for tag, f in zip(tags, folders):
        r = f.report
        report.n_identities += r.n_identities
        report.n_clean += r.n_clean
        report.n_distorted += r.n_distorted
        report.skipped.update(r.skipped)
        report.skipped_files += [(f"{tag}/{p}", why) for p, why in r.skipped_files]
        report.empty_identities += [f"{tag}/{i}" for i in r.empty_identities]
        report.single_image_identities += [f"{tag}/{i}" for i in r.single_image_identities]
        report.sources.append(r)
    return FaceFolder(Path(roots[0]), samples, sorted({s.identity for s in samples}), report)


def scan_images(roots: Sequence[str | os.PathLike], verify: bool = True) -> tuple[list[Path], ScanReport]:
    """Every image file under ``roots`` (any layout, recursively; hidden files and folders left out), each
    decoded once when ``verify``: ``(paths, report)`` with the skipped files counted. Photos without identities
    (``TrainConfig.unlabelled``). :class:`DataError` for a missing folder or one without a usable image."""
    paths: list[Path] = []
    report = ScanReport(root=" + ".join(str(r) for r in roots))
    for root in map(Path, roots):
        if not root.is_dir():
            raise DataError(f"unlabelled folder not found: {root}")
        found = sorted(f for f in root.rglob("*") if f.is_file()
                       and not any(part.startswith(".") for part in f.relative_to(root).parts))
        for f in found:
            why = "not an image" if f.suffix.lower() not in IMAGE_EXTENSIONS else check_image(f) if verify else None
            if why is None:
                paths.append(f)
            else:
                report.skipped[why] += 1
                report.skipped_files.append((str(f), why))
        if not any(p.is_relative_to(root) for p in paths):
            raise DataError(f"no usable images in unlabelled folder {root}")
    report.n_clean = len(paths)
    return paths, report


def parse_distorted_name(stem: str) -> tuple[str, str]:
    """Split ``'<photo>_<kind>'`` into ``(photo, kind)``; unknown suffixes are kept as the kind."""
    head, sep, tail = stem.rpartition("_")
    if sep and head:
        return head, tail
    return stem, "unknown"


def check_image(path: Path) -> str | None:
    """Return ``None`` if ``path`` decodes as an image, else the reason it cannot be used."""
    try:
        if path.stat().st_size == 0:
            return "zero-byte"
        with Image.open(path) as im:
            im.draft("RGB", (32, 32))  # JPEG: decode at 1/8 scale; still fails on truncation
            im.load()
    except UnidentifiedImageError:
        return "not an image"
    except Image.DecompressionBombError:
        return "too large"
    except (OSError, SyntaxError, ValueError, EOFError):
        return "corrupt or truncated"
    return None


def scan_folder(
    root: str | os.PathLike,
    include_distortions: bool = True,
    verify: bool = True,
    workers: int | None = None,
) -> FaceFolder:
    """Scan ``root/<identity>/...`` into a :class:`FaceFolder`.

    Args:
        include_distortions: also take ``<identity>/distortion/*`` images.
        verify: decode every image once (fast, at 1/8 scale for JPEG) and skip the bad ones.
    Raises:
        DataError: the folder is missing, is not a folder, or holds no usable image.
    """
    root = Path(root)
    if not root.exists():
        raise DataError(f"data folder not found: {root} (expected <identity>/*.jpg inside)")
    if not root.is_dir():
        raise DataError(f"not a folder: {root}")
    report = ScanReport(root=str(root))
    candidates: list[tuple[Path, str, str, str]] = []  # path, identity, photo, distortion
    identity_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    loose = [p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")]
    for p in loose:
        report.skipped["outside an identity folder"] += 1
        report.skipped_files.append((str(p.relative_to(root)), "outside an identity folder"))
    for ident_dir in identity_dirs:
        ident = ident_dir.name
        files = [(f, "") for f in sorted(ident_dir.iterdir()) if f.is_file()]
        dist_dir = ident_dir / DISTORTION_DIR
        if include_distortions and dist_dir.is_dir():
            files += [(f, "d") for f in sorted(dist_dir.iterdir()) if f.is_file()]
        for f, flag in files:
            if f.name.startswith("."):
                continue
            if f.suffix.lower() not in IMAGE_EXTENSIONS:
                report.skipped["not an image"] += 1
                report.skipped_files.append((str(f.relative_to(root)), "not an image"))
                continue
            if flag:
                photo_stem, kind = parse_distorted_name(f.stem)
            else:
                photo_stem, kind = f.stem, ""
            candidates.append((f, ident, f"{ident}/{photo_stem}", kind))

    if verify and candidates:
        with ThreadPoolExecutor(max_workers=workers or min(8, (os.cpu_count() or 1) * 2)) as pool:
            problems = list(pool.map(check_image, (c[0] for c in candidates)))
    else:
        problems = [None] * len(candidates)

    samples: list[Sample] = []
    for (f, ident, photo, kind), why in zip(candidates, problems):
        if why is not None:
            report.skipped[why] += 1
            report.skipped_files.append((str(f.relative_to(root)), why))
            continue
        samples.append(Sample(f, f.relative_to(root).as_posix(), ident, photo, kind))

    per_identity = Counter(s.identity for s in samples)
    report.empty_identities = [d.name for d in identity_dirs if per_identity[d.name] == 0]
    report.single_image_identities = sorted(i for i, n in per_identity.items() if n == 1)
    identities = sorted(per_identity)
    report.n_identities = len(identities)
    report.n_clean = sum(s.is_clean for s in samples)
    report.n_distorted = len(samples) - report.n_clean
    if not samples:
        why = f"no usable images in {root}"
        if not identity_dirs:
            why += " (it has no <identity>/ subfolders)"
        elif report.n_skipped:
            why += f" ({report.n_skipped} files skipped: {dict(report.skipped)})"
        raise DataError(why)
    return FaceFolder(root=root, samples=samples, identities=identities, report=report)


def load_image(path: str | os.PathLike) -> Image.Image:
    """Open any image as 8-bit RGB.

    EXIF orientation is applied; grayscale, 16-bit, float, palette, CMYK and images with
    alpha (composited on white) all come out as ``mode == "RGB"``.
    """
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        return to_rgb(im)


def to_rgb(im: Image.Image) -> Image.Image:
    """Convert a PIL image of any mode to 8-bit RGB."""
    mode = im.mode
    if mode == "RGB":
        return im.copy()
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        arr = np.asarray(im, dtype=np.float64)
        hi = 65535.0 if (mode.startswith("I;16") or arr.max(initial=0) > 255) else 255.0
        if mode == "F" and arr.max(initial=0) <= 1.0:
            hi = 1.0
        arr = np.clip(arr / hi * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode in ("RGBa", "La"):
        return im.convert(mode.upper()[:-1] + "A").convert("RGB")
    return im.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV


class ImageDataset:
    """Map-style torch dataset over samples: item ``i`` is ``(transform(image), label)``.

    Args:
        paths: image files.
        labels: (N,) integer labels (or any per-sample value).
        transform: callable on a PIL RGB image, typically returning a (3, H, W) tensor.
        distortions: (N,) a FACECOM distortion kind to apply on the fly before ``transform``
            (:func:`facelib.data.distortions.distort`), or ``""`` for the image as it is.
    """

    def __init__(self, paths: Sequence[Path], labels: Sequence[int], transform: Callable | None = None,
                 distortions: Sequence[str] | None = None):
        if len(paths) != len(labels):
            raise ValueError(f"{len(paths)} paths but {len(labels)} labels")
        if distortions is not None and len(distortions) != len(paths):
            raise ValueError(f"{len(paths)} paths but {len(distortions)} distortions")
        self.paths = list(paths)
        self.labels = np.asarray(labels)
        self.transform = transform
        self.distortions = list(distortions) if distortions is not None and any(distortions) else None

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        try:
            img = load_image(self.paths[i])
        except (OSError, SyntaxError, ValueError) as e:  # changed on disk since the scan
            raise DataError(f"cannot read image {self.paths[i]}: {e}") from None
        img = self._distorted(img, i)
        if self.transform is not None:
            img = self.transform(img)
        return img, int(self.labels[i])

    def _distorted(self, img: Image.Image, i: int, scale: float | None = None) -> Image.Image:
        """``img`` with item ``i``'s made distortion, if it has one (``scale``: :func:`distort`'s)."""
        if self.distortions is None or not self.distortions[i]:
            return img
        from facelib.data.distortions import distort

        # a fresh distortion each time, from Python's generator (seeded per DataLoader worker by torch)
        return distort(img, self.distortions[i], np.random.default_rng(random.getrandbits(64)), scale=scale)
