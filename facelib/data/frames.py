"""Training images decoded and framed once, held in one shared-memory tensor.

Without it every training item is read from disk again: the JPEG decoded, a made distortion applied to the full
photo, the spec's framing (restore, face crop), then the augmentation. :class:`FramedImages` decodes each distinct
path once (a thread pool; PIL releases the GIL), applies the spec's framing (:func:`facelib.models.transforms.
framing_steps`) and keeps the framed crop as uint8 in one tensor in shared memory, so DataLoader workers (forked or
spawned) read it without a copy. :class:`FramedDataset` is :class:`facelib.data.folders.ImageDataset` on top of it:
the item is the stored crop, then the made distortion (on the crop, at the ORIGINAL photo's scale:
:func:`facelib.data.distortions.distort`'s ``scale``), then the augmentation built with ``framed=True``.

Choices:

* One side per store: ``side = min(2 * image_size, the largest framed crop)``. A crop larger than ``side`` is
  resized down (aspect kept, antialiased, the spec's interpolation); a smaller one is NOT resized: it sits in the
  top-left corner of its row, zero-padded, and its own ``(h, w)`` is recorded, so it comes back exactly as framed.
  Framed crops are square; with ``face_crop`` 1 (no crop) a non-square photo is stored with its own aspect.
* Memory: ``N * side * side * 3`` bytes, estimated from the files' headers before decoding; over
  :func:`memory_budget` the store is not built (:class:`FrameBudgetError`) and the trainer reads from disk.
* An unreadable file does not stop the build: it is counted (:attr:`FramedImages.unreadable`) and its item raises
  the same :class:`DataError` as ImageDataset does when it is drawn.
* ``restore`` (a median filter) runs before the crop, but a made distortion must come before it (the filter is
  there to remove the ``noisy`` distortion): rows of photos that get made distortions (``raw``) are stored
  cropped only, and :class:`FramedDataset` restores them after the distortion. A median on the crop equals the
  median on the photo, then cropped, except on the crop's 1 px border.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator, Protocol, Sequence

import numpy as np
import torch
from PIL import Image

from facelib.data.folders import ImageDataset, load_image
from facelib.data.framing import Restore, face_crop_box
from facelib.errors import DataError

__all__ = ["FrameBudgetError", "FramedDataset", "FramedImages", "Framing", "memory_budget"]

MEMORY_SHARE = 0.25  # the store may take this share of the available memory
FALLBACK_BUDGET = 2 << 30  # bytes, where the available memory is unknown
SIDE_CAP = 2  # the stored side is at most SIDE_CAP * image_size
SHM = "/dev/shm"  # where a shared tensor lives (Linux)
MEMINFO = "/proc/meminfo"  # where Linux says how much memory is available
_RESAMPLE = {"bicubic": Image.BICUBIC, "nearest": Image.BILINEAR}  # nearest would alias: bilinear instead


class Framing(Protocol):
    """What the store needs of a model's spec (:class:`facelib.models.network.ModelSpec` has it): the framing
    and the training size."""

    restore: str
    face_crop: float
    image_size: int
    interpolation: str


def available_memory() -> int | None:
    """Bytes of memory a new allocation can have: Linux's ``MemAvailable`` (free memory plus the page cache the
    kernel can reclaim; :data:`MEMINFO`), else ``sysconf``'s free pages, else ``None``. Free pages alone
    undercount on a machine that has read many files: its page cache is reclaimable but not free."""
    try:
        with open(MEMINFO) as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def memory_budget() -> int:
    """Bytes the store may take: :data:`MEMORY_SHARE` of :func:`available_memory` (:data:`FALLBACK_BUDGET` where
    it is unknown), and no more than the free space of ``/dev/shm`` where there is one."""
    available = available_memory()
    budget = FALLBACK_BUDGET if available is None else int(MEMORY_SHARE * available)
    if os.path.isdir(SHM):
        st = os.statvfs(SHM)
        budget = min(budget, st.f_bavail * st.f_frsize)
    return budget


class FrameBudgetError(MemoryError):
    """The store would take ``needed`` bytes, over ``budget``."""

    def __init__(self, n: int, side: int, needed: int, budget: int):
        self.n, self.side, self.needed, self.budget = n, side, needed, budget
        super().__init__(f"{n:,} framed images at {side} px would take {needed / 1e9:.1f} GB, over the budget of "
                         f"{budget / 1e9:.1f} GB ({MEMORY_SHARE:.0%} of the available memory)")


def _size(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` from the file's header, or ``None`` if it cannot be opened."""
    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, SyntaxError, ValueError):
        return None


class FramedImages:
    """The framed crops of ``paths``, decoded once: ``pixels`` uint8 [U, side, side, 3] in shared memory, one row
    per distinct path (``rows`` [N] maps item ``i`` of ``paths`` to its row; repeats share one).

    Per row: ``sizes`` [U, 2] the stored ``(h, w)`` (the rest of the row is zero padding), ``photo_sides`` [U] the
    original photo's shorter side, ``scales`` [U] the reference scale of a made distortion in stored pixels
    (``photo_side / 224`` times the stored / framed size), ``restored`` [U] whether ``spec.restore`` was applied
    (not for the rows of items flagged ``raw``: :class:`FramedDataset` restores them after the distortion).

    Args:
        paths: [N] image files (repeats allowed).
        spec: the model's framing: ``restore``, ``face_crop``, ``image_size`` (the side cap) and ``interpolation``.
        raw: [N] items whose framing stops before ``restore`` (those that get a made distortion); ignored without
            a restore.
        workers: decoding threads.
        progress: a tqdm bar over the decoding.
        budget: bytes the store may take (default :func:`memory_budget`).
    Raises:
        FrameBudgetError: the store would take more than ``budget`` (checked before decoding).
    """

    def __init__(self, paths: Sequence[str | os.PathLike], spec: Framing, raw: Sequence[bool] | None = None,
                 workers: int = 4, progress: bool = False, budget: int | None = None):
        t0 = time.perf_counter()
        self.paths = [Path(p) for p in paths]
        if raw is not None and len(raw) != len(self.paths):
            raise ValueError(f"{len(self.paths)} paths but {len(raw)} raw flags")
        index: dict[Path, int] = {}
        self.rows = np.array([index.setdefault(p, len(index)) for p in self.paths], dtype=np.int64)
        unique = list(index)
        n = len(unique)
        self.restore = Restore(spec.restore) if spec.restore != "none" else None
        late = np.zeros(n, dtype=bool)
        if self.restore is not None and raw is not None:
            late[self.rows[np.asarray(raw, dtype=bool)]] = True
        self.restored = ~late if self.restore is not None else np.zeros(n, dtype=bool)
        workers = max(1, workers)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            headers = list(pool.map(_size, unique))
        cap = SIDE_CAP * spec.image_size
        framed = [self._framed_side(s, spec.face_crop) for s in headers if s is not None]
        self.side = max(1, min(cap, max(framed, default=1)))
        needed = n * self.side * self.side * 3
        budget = memory_budget() if budget is None else budget
        if needed > budget:
            raise FrameBudgetError(n, self.side, needed, budget)
        self.pixels = torch.zeros((n, self.side, self.side, 3), dtype=torch.uint8).share_memory_()
        self.sizes = np.zeros((n, 2), dtype=np.int64)
        self.photo_sides = np.zeros(n, dtype=np.int64)
        self.scales = np.ones(n, dtype=np.float64)
        self.errors: dict[int, str] = {}
        self._crop, self._resample = spec.face_crop, _RESAMPLE.get(spec.interpolation, Image.BILINEAR)

        def work(row: int) -> None:
            try:
                self._decode(row, unique[row], late[row])
            except (OSError, SyntaxError, ValueError) as e:
                self.errors[row] = str(e)

        with ThreadPoolExecutor(max_workers=workers) as pool:
            done: Iterator = pool.map(work, range(n))
            if progress:
                from tqdm.auto import tqdm

                done = tqdm(done, total=n, desc="frames", unit="img", leave=False, disable=None)
            for _ in done:
                pass
        self.seconds = time.perf_counter() - t0

    @staticmethod
    def _framed_side(size: tuple[int, int], fraction: float) -> int:
        """The framed crop's longer side for a ``(w, h)`` photo."""
        if fraction >= 1.0:
            return max(size)
        box = face_crop_box(size[0], size[1], fraction)
        return box[2] - box[0]

    def _decode(self, row: int, path: Path, late_restore: bool) -> None:
        img = load_image(path)
        self.photo_sides[row] = min(img.size)
        if self.restore is not None and not late_restore:
            img = self.restore(img)
        if self._crop < 1.0:
            box = face_crop_box(img.width, img.height, self._crop)
            if box != (0, 0, img.width, img.height):
                img = img.crop(box)
        framed = max(img.size)
        if framed > self.side:
            f = self.side / framed
            img = img.resize((max(1, round(img.width * f)), max(1, round(img.height * f))), self._resample)
        arr = np.asarray(img)
        h, w = arr.shape[:2]
        self.pixels[row].numpy()[:h, :w] = arr  # a view of the shared tensor
        self.sizes[row] = (h, w)
        self.scales[row] = self.photo_sides[row] / 224.0 * max(h, w) / framed

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def unreadable(self) -> int:
        """Distinct files that could not be decoded."""
        return len(self.errors)

    @property
    def nbytes(self) -> int:
        return self.pixels.numel() * self.pixels.element_size()

    def image(self, i: int) -> Image.Image:
        """Item ``i``'s framed crop, a PIL RGB image (a copy). :class:`DataError` if its file was unreadable."""
        row = int(self.rows[i])
        if row in self.errors:
            raise DataError(f"cannot read image {self.paths[i]}: {self.errors[row]}")
        h, w = self.sizes[row]
        return Image.fromarray(self.pixels[row, :h, :w].numpy().copy(), mode="RGB")

    def scale(self, i: int) -> float:
        """The reference scale of a made distortion on item ``i``'s crop (:func:`distort`'s ``scale``)."""
        return float(self.scales[self.rows[i]])

    def restore_later(self, i: int) -> bool:
        """Whether item ``i``'s crop still needs the spec's restore."""
        return self.restore is not None and not self.restored[self.rows[i]]

    def describe(self) -> str:
        """``frames: 27,935 images decoded and framed once (123 px, 1.3 GB in shared memory) in 38 s``."""
        line = (f"frames: {len(self.pixels):,} images decoded and framed once ({self.side} px, "
                f"{self.nbytes / 1e9:.1f} GB in shared memory) in {self.seconds:.0f} s")
        if self.errors:
            line += f"; {self.unreadable} unreadable (an error if drawn)"
        return line


class FramedDataset(ImageDataset):
    """:class:`facelib.data.folders.ImageDataset` over a :class:`FramedImages`: item ``i`` is
    ``(transform(image), label)``, the image being the stored crop, then the made distortion ``distortions[i]``
    (at the original photo's scale), then ``spec.restore`` where the store left it.

    ``transform`` must leave the framing out: ``build_transform(spec, train=True, augment=..., framed=True)``.
    """

    def __init__(self, frames: FramedImages, labels: Sequence[int], transform: Callable | None = None,
                 distortions: Sequence[str] | None = None):
        super().__init__(frames.paths, labels, transform, distortions)
        self.frames = frames

    def __getitem__(self, i: int):
        img = self._distorted(self.frames.image(i), i, scale=self.frames.scale(i))
        if self.frames.restore_later(i):
            img = self.frames.restore(img)
        if self.transform is not None:
            img = self.transform(img)
        return img, int(self.labels[i])
