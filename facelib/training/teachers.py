"""Teachers: pretrained embedders whose embedding of each clean photo a student learns to match
(:mod:`facelib.training.distill`), and the on-disk cache of those embeddings.

A teacher is a registered component, as timm's models are: :func:`register_teacher` adds a class under a name,
:func:`get_teacher` builds one from ``TrainConfig.teacher`` (a registered name such as ``dlib``, or a path: a
facelib checkpoint ``.pth`` or an ONNX embedder ``.onnx``, see :class:`CheckpointTeacher`, :class:`OnnxTeacher`).
Each teacher maps PIL RGB images to ``([N, D] float32 unit rows, [N] bool face found)`` and has a ``key`` that
names what it computes (model file, detector settings), so a cache never mixes two teachers.

:func:`teacher_embeddings` computes the teacher's embedding of every given file once, in one process per core
with a progress bar, and keeps it in :class:`TeacherCache`: one folder per teacher key, rows keyed by the
SHA-256 of the file's bytes (a changed file is a new key; a renamed one is not recomputed), written in
atomic shards, so a killed pass keeps what it finished and the next run computes only the rest.

Torch-free at import (the dlib workers import nothing heavy).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np
from PIL import Image

from facelib.errors import ConfigError, FacelibError

__all__ = ["Teacher", "TEACHERS", "register_teacher", "get_teacher", "teacher_names", "DlibTeacher",
           "CheckpointTeacher", "OnnxTeacher", "TeacherCache", "TeacherPass", "teacher_embeddings",
           "default_cache_root", "file_key"]

Log = Callable[[str], None]
MISSING_DLIB_TEACHER = "the dlib teacher needs dlib and its model files: pip install 'facelib[align]'"
SHARD_ROWS = 256  # rows per cache shard: at most this much work is lost when a pass is killed


class Teacher(Protocol):
    """``embed(images) -> (emb [N, dim] float32 with unit rows, found [N] bool)``; ``key`` names the teacher
    and its settings (the cache's folder); ``dim`` its embedding size."""

    key: str
    dim: int

    def embed(self, images: Sequence[Image.Image]) -> tuple[np.ndarray, np.ndarray]: ...


TEACHERS: dict[str, type] = {}


def register_teacher(name: str):
    """Class decorator: ``@register_teacher("dlib")`` makes ``get_teacher("dlib")`` build the class (no
    arguments)."""
    def wrap(cls: type) -> type:
        TEACHERS[name] = cls
        return cls
    return wrap


def teacher_names() -> tuple[str, ...]:
    """The registered teacher names (what ``--teacher`` accepts besides a file path)."""
    return tuple(TEACHERS)


def get_teacher(spec: str) -> Teacher:
    """A teacher from ``spec``: a registered name, or a path to a facelib checkpoint (``.pth``/``.pt``) or an
    ONNX embedder (``.onnx``). :class:`ConfigError` naming ``teacher`` otherwise."""
    if spec in TEACHERS:
        return TEACHERS[spec]()
    path = Path(spec)
    if path.suffix.lower() in (".pth", ".pt", ".onnx"):
        if not path.is_file():
            raise ConfigError(f"teacher file not found: {path}", fields=("teacher",))
        return OnnxTeacher(path) if path.suffix.lower() == ".onnx" else CheckpointTeacher(path)
    raise ConfigError(f"unknown teacher {spec!r}: use one of {', '.join(TEACHERS)} or a facelib checkpoint "
                      "(.pth) or ONNX embedder (.onnx) file", fields=("teacher",))


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@register_teacher("dlib")
class DlibTeacher:
    """dlib's ResNet face descriptor (``face-recognition-models``, public domain; 128-d), as the
    ``face_recognition`` package computes it: the HOG frontal-face detector (upsampled once below 300 px, as
    :class:`facelib.data.align.Aligner` does; the largest face), the 5-point landmarks, one jitter. Where no face
    is found the box is the central 55% of the side (where FACECOM's and ``facelib align``'s faces sit),
    reported as ``found`` False. ``restore``: a :class:`facelib.data.framing.Restore` front-end first."""

    dim = 128

    def __init__(self, restore: str = "none"):
        # dlib loads on the first photo to embed: a run whose photos are all cached needs neither dlib nor time
        self.restore, self.key, self.dlib = restore, f"dlib-resnet-v1_hog-auto_5pt_centre055_{restore}", None

    def _load(self) -> None:
        from facelib.data.align import AUTO_UPSAMPLE_BELOW, model_file

        try:
            import dlib
            shape = model_file("shape_predictor_5_face_landmarks.dat")
            net = model_file("dlib_face_recognition_resnet_model_v1.dat")
        except (ImportError, FacelibError):
            raise FacelibError(MISSING_DLIB_TEACHER, fields=("teacher",)) from None
        self.upsample_below = AUTO_UPSAMPLE_BELOW
        self.detector = dlib.get_frontal_face_detector()
        self.shape = dlib.shape_predictor(str(shape))
        self.net = dlib.face_recognition_model_v1(str(net))
        self.dlib = dlib

    def box(self, rgb: np.ndarray):
        """The largest detected face's box, or ``None``."""
        boxes = self.detector(rgb, 1 if min(rgb.shape[:2]) < self.upsample_below else 0)
        return max(boxes, key=lambda r: r.width() * r.height()) if len(boxes) else None

    def embed(self, images: Sequence[Image.Image]) -> tuple[np.ndarray, np.ndarray]:
        from facelib.config import DEFAULT_FACE_CROP
        from facelib.data.framing import Restore, face_crop_box

        if self.dlib is None:
            self._load()
        out = np.zeros((len(images), self.dim), np.float32)
        found = np.zeros(len(images), bool)
        for i, img in enumerate(images):
            if self.restore != "none":
                img = Restore(self.restore)(img)
            rgb = np.ascontiguousarray(np.asarray(img.convert("RGB")))
            box = self.box(rgb)
            found[i] = box is not None
            if box is None:
                left, top, right, bottom = face_crop_box(rgb.shape[1], rgb.shape[0], DEFAULT_FACE_CROP)
                box = self.dlib.rectangle(left, top, right - 1, bottom - 1)
            out[i] = np.asarray(self.net.compute_face_descriptor(rgb, self.shape(rgb, box), 1), np.float32)
        return _unit(out), found


class CheckpointTeacher:
    """A facelib checkpoint as the teacher: its embedding (the checkpoint's own framing and flip test) of each
    image; ``found`` is always True. Its key is the model's fingerprint."""

    def __init__(self, path: str | os.PathLike):
        import torch

        from facelib.models.checkpoint import load_checkpoint, model_fingerprint
        from facelib.models.network import for_inference
        from facelib.models.transforms import build_transform

        model, self.spec, ckpt = load_checkpoint(path)  # eval mode
        self.model = for_inference(model, self.spec)  # the flip test where the checkpoint evaluates with it
        self.transform = build_transform(self.spec, train=False)
        self.dim = self.spec.embedding_dim
        self.key = f"checkpoint-{model_fingerprint(ckpt['model'], self.spec)}"
        self._torch = torch

    def embed(self, images: Sequence[Image.Image]) -> tuple[np.ndarray, np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            x = torch.stack([self.transform(img.convert("RGB")) for img in images])
            z = self.model(x).float().numpy()
        return _unit(z), np.ones(len(images), bool)


class OnnxTeacher:
    """An ONNX embedder as the teacher, with the contract of ``facelib export``: input [N, 3, S, S] RGB in
    [0, 1], output [N, D]; S from the input's shape, the face crop, restoration filter and interpolation from the
    model's metadata (:func:`facelib.recognition.export.preprocessing_contract`; the whole frame, no filter and
    bilinear where absent), applied by :func:`facelib.models.transforms.graph_input_transform` as ``facelib embed``
    applies them; ``found`` is always True. Its key is the SHA-256 of the file."""

    def __init__(self, path: str | os.PathLike):
        try:
            import onnxruntime as ort
        except ImportError:
            raise FacelibError("an ONNX teacher needs onnxruntime: pip install 'facelib[onnx]'",
                               fields=("teacher",)) from None
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        inp = self.session.get_inputs()[0]
        size = inp.shape[-1] if isinstance(inp.shape[-1], int) else int(meta.get("image_size", 112))
        from facelib.models.network import ModelSpec
        from facelib.models.transforms import graph_input_transform

        self.size, self.face_crop = int(size), float(meta.get("face_crop", 1.0))
        self.transform = graph_input_transform(ModelSpec(
            image_size=self.size, face_crop=self.face_crop, restore=meta.get("restore", "none"),
            interpolation=meta.get("interpolation", "bilinear")))
        self.input = inp.name
        out_dim = self.session.get_outputs()[0].shape[-1]
        self.dim = int(out_dim) if isinstance(out_dim, int) else int(meta.get("embedding_dim", 0))
        self.key = f"onnx-{file_key(path)[:16]}"

    def embed(self, images: Sequence[Image.Image]) -> tuple[np.ndarray, np.ndarray]:
        x = np.stack([self.transform(img.convert("RGB")).numpy() for img in images])
        z = self.session.run(None, {self.input: x})[0]
        if not self.dim:
            self.dim = z.shape[1]
        return _unit(z), np.ones(len(images), bool)


# ----------------------------------------------------------------------------------------------- the cache

def default_cache_root() -> Path:
    """``$FACELIB_CACHE``, else ``$XDG_CACHE_HOME/facelib``, else ``~/.cache/facelib``."""
    if os.environ.get("FACELIB_CACHE"):
        return Path(os.environ["FACELIB_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "facelib"


def file_key(path: str | os.PathLike) -> str:
    """SHA-256 hex of a file's bytes: the cache key of a photo (a changed file gets a new one)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class TeacherCache:
    """Embeddings of one teacher, by file content: ``root/teachers/<teacher key>/`` holds ``teacher.json`` (the
    key and size) and ``part-*.npz`` shards (``keys`` [n] str, ``emb`` [n, D] float32, ``found`` [n] bool), each
    written atomically. A folder written by another teacher is refused; an unreadable shard is counted and its
    rows computed again."""

    def __init__(self, teacher_key: str, dim: int, root: str | os.PathLike | None = None):
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", teacher_key)
        self.folder = Path(root if root is not None else default_cache_root()) / "teachers" / safe
        self.key, self.dim = teacher_key, dim
        self.emb: dict[str, np.ndarray] = {}
        self.found: dict[str, bool] = {}
        self.bad_shards: list[str] = []
        meta = self.folder / "teacher.json"
        if meta.is_file():
            try:
                held = json.loads(meta.read_text())
            except (OSError, ValueError):
                held = {}
            if held.get("teacher") != teacher_key or int(held.get("dim", -1)) != dim:
                raise ConfigError(f"teacher cache {self.folder} holds the embeddings of teacher "
                                  f"{held.get('teacher')!r} ({held.get('dim')}-d), not {teacher_key!r} ({dim}-d): "
                                  "choose another teacher_cache folder or delete that one", fields=("teacher_cache",))
        self._load()

    def _load(self) -> None:
        for shard in sorted(self.folder.glob("part-*.npz")):
            try:
                with np.load(shard, allow_pickle=False) as z:
                    keys, emb, found = z["keys"], z["emb"], z["found"]
                if emb.ndim != 2 or emb.shape != (len(keys), self.dim) or len(found) != len(keys):
                    raise ValueError("shape")
            except (OSError, ValueError, KeyError, EOFError):
                self.bad_shards.append(shard.name)
                continue
            for k, e, f in zip(keys.tolist(), emb, found):
                self.emb[k], self.found[k] = e, bool(f)

    def __contains__(self, key: str) -> bool:
        return key in self.emb

    def __len__(self) -> int:
        return len(self.emb)

    def add(self, keys: Sequence[str], emb: np.ndarray, found: np.ndarray) -> None:
        """Write one shard atomically and keep its rows."""
        from facelib.io import atomic_path, write_json

        if not len(keys):
            return
        meta = self.folder / "teacher.json"
        if not meta.is_file():
            write_json(meta, {"teacher": self.key, "dim": self.dim})
        shard = self.folder / f"part-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}.npz"
        with atomic_path(shard) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, keys=np.array(list(keys)), emb=np.asarray(emb, np.float32),
                         found=np.asarray(found, bool))
        for k, e, f in zip(keys, np.asarray(emb, np.float32), found):
            self.emb[k], self.found[k] = e, bool(f)


# ----------------------------------------------------------------------------------------------- the pass

@dataclass
class TeacherPass:
    """The teacher's embedding of each file: ``emb`` [N, D] (zero rows where ``ok`` is False), ``ok`` [N]
    (the file was read), ``found`` [N] (the teacher found a face; False with ``ok`` means its fallback box), and
    what the pass did."""

    teacher: str
    emb: np.ndarray
    ok: np.ndarray
    found: np.ndarray
    computed: int = 0
    reused: int = 0
    seconds: float = 0.0
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    no_face: list[str] = field(default_factory=list)
    bad_shards: list[str] = field(default_factory=list)
    cache: str = ""

    def summary(self) -> str:
        from facelib.data.folders import name_list

        n = len(self.ok)
        lines = [f"teacher {self.teacher}: {n} clean photos, {self.reused} from the cache {self.cache}, "
                 f"{self.computed} computed in {self.seconds:.0f} s"
                 + (f" ({self.computed / max(self.seconds, 1e-9):.1f} photos/s)" if self.computed else "")]
        if self.no_face:
            lines.append(f"  no face found in {len(self.no_face)} ({len(self.no_face) / max(n, 1):.1%}): the "
                         "fallback box (central 55% of the side) was used: " + name_list(self.no_face))
        if self.unreadable:
            lines.append(f"  skipped {len(self.unreadable)} unreadable files (no teacher target): "
                         + name_list([p for p, _ in self.unreadable]))
        if self.bad_shards:
            lines.append(f"  {len(self.bad_shards)} unreadable cache shards ignored, their rows computed again: "
                         + name_list(self.bad_shards))
        return "\n".join(lines)


_WORKER: dict[str, Teacher] = {}


def _worker_init(spec: str) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _WORKER["teacher"] = get_teacher(spec)


def _read(path: str) -> tuple[Image.Image | None, str]:
    from facelib.data.folders import load_image

    try:
        return load_image(path), ""
    except Exception as e:  # noqa: BLE001 - any decoding failure is a counted skip
        return None, f"{type(e).__name__}: {e}"


def _embed_chunk(teacher: Teacher, paths: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Embed files: (emb [n, D], found [n], error [n] ('' where read))."""
    imgs, errors = zip(*(_read(p) for p in paths))
    good = [i for i, img in enumerate(imgs) if img is not None]
    emb = np.zeros((len(paths), teacher.dim), np.float32)
    found = np.zeros(len(paths), bool)
    if good:
        e, f = teacher.embed([imgs[i] for i in good])
        emb[good], found[good] = e, f
    return emb, found, list(errors)


def _worker_chunk(paths: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    return _embed_chunk(_WORKER["teacher"], paths)


def teacher_embeddings(paths: Sequence[str | os.PathLike], teacher: str | Teacher,
                       cache_root: str | os.PathLike | None = None, workers: int | None = None,
                       progress: bool = True, chunk: int = 32, log: Log = print) -> TeacherPass:
    """The teacher's embedding of every file in ``paths``, from the cache where it holds the file's content,
    else computed (``workers`` processes, default one per core; 0: in this process) and added to the cache.

    ``teacher``: a spec for :func:`get_teacher` (workers build their own) or a :class:`Teacher` object (runs in
    this process). Unreadable files are counted and named, with ``ok`` False; files where the teacher finds no
    face keep its fallback embedding, counted and named.
    """
    t0 = time.perf_counter()
    spec = teacher if isinstance(teacher, str) else None
    model = get_teacher(teacher) if isinstance(teacher, str) else teacher
    cache = TeacherCache(model.key, model.dim, cache_root)
    paths = [str(p) for p in paths]
    out = TeacherPass(model.key, np.zeros((len(paths), model.dim), np.float32), np.zeros(len(paths), bool),
                      np.zeros(len(paths), bool), cache=str(cache.folder), bad_shards=list(cache.bad_shards))
    keys: list[str | None] = []
    for p in paths:
        try:
            keys.append(file_key(p))
        except OSError as e:
            keys.append(None)
            out.unreadable.append((p, f"{type(e).__name__}: {e}"))
    todo_keys: dict[str, str] = {}  # content key -> one path holding it
    for p, k in zip(paths, keys):
        if k is not None and k not in cache and k not in todo_keys:
            todo_keys[k] = p
    out.reused = sum(k is not None and k in cache for k in keys)
    todo = list(todo_keys.items())
    failed: dict[str, str] = {}
    if todo:
        chunks = [todo[i:i + chunk] for i in range(0, len(todo), chunk)]
        n_workers = (os.cpu_count() or 1) if workers is None else workers
        n_workers = min(n_workers, len(chunks)) if spec is not None else 0
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(todo), desc=f"teacher {model.key[:24]}", unit="photo", disable=None)
        pending: list[tuple[str, np.ndarray, bool]] = []

        def take(part: list[tuple[str, str]], result: tuple[np.ndarray, np.ndarray, list[str]]) -> None:
            emb, found, errors = result
            for (k, _), e, f, err in zip(part, emb, found, errors):
                if err:
                    failed[k] = err
                else:
                    pending.append((k, e, bool(f)))
            if len(pending) >= SHARD_ROWS:
                flush()
            if bar is not None:
                bar.update(len(part))

        def flush() -> None:
            if pending:
                k, e, f = zip(*pending)
                cache.add(list(k), np.stack(e), np.array(f))
                pending.clear()

        try:
            if n_workers > 0:
                import multiprocessing as mp

                with ProcessPoolExecutor(n_workers, mp_context=mp.get_context("spawn"), initializer=_worker_init,
                                         initargs=(spec,)) as pool:
                    for part, result in zip(chunks, pool.map(_worker_chunk, [[p for _, p in c] for c in chunks])):
                        take(part, result)
            else:
                for part in chunks:
                    take(part, _embed_chunk(model, [p for _, p in part]))
        finally:
            flush()  # what was finished is kept, also when the pass is interrupted
            if bar is not None:
                bar.close()
        out.computed = len(todo) - len(failed)
    for i, (p, k) in enumerate(zip(paths, keys)):
        if k is None:
            continue
        if k in cache:
            out.emb[i], out.found[i], out.ok[i] = cache.emb[k], cache.found[k], True
            if not out.found[i]:
                out.no_face.append(p)
        else:
            out.unreadable.append((p, failed.get(k, "not computed")))
    out.seconds = time.perf_counter() - t0
    return out
