"""What the :class:`~facelib.training.trainer.Trainer` is wired from, each a function of the
:class:`~facelib.config.TrainConfig`: the training folder (with its checks and made distortions), the model's
placement (device, data-parallel, compile), the P x K sampler, the batches a step consumes, and
the log lines that describe them.
"""

from __future__ import annotations

import math
import os
from typing import Any, Callable, Mapping, NamedTuple

import numpy as np
import torch
from torch import nn

from facelib.config import TrainConfig
from facelib.data.folders import DISTORTION_KINDS, FaceFolder, ImageDataset, scan_images, scan_sources
from facelib.data.frames import FrameBudgetError, FramedDataset, FramedImages
from facelib.data.samplers import PKSampler
from facelib.errors import ConfigError, DataError
from facelib.models.network import ModelSpec
from facelib.training import distributed
from facelib.training.losses import get_loss

Log = Callable[[str], None]


def check_split(p: int, world: int, global_batch: bool, negatives: int = 0) -> None:
    """P identities (and the extra ``negatives``) per step must split evenly over the processes; a
    process mining its own share (``global_batch`` False) needs two identities of it for negatives."""
    if negatives % world:
        raise ConfigError(f"{negatives} extra negatives per batch cannot be split evenly over "
                          f"{world} processes: use a multiple of {world}", fields=("negatives",))
    if p % world:
        raise ConfigError(f"p={p} identities per batch cannot be split evenly over {world} processes: "
                          f"use a p that is a multiple of {world}", fields=("p",))
    if not global_batch and p // world < 2:
        raise ConfigError(f"with gather=False each process mines its own p/{world}={p // world} identities, "
                          f"which have no negatives: use p >= {2 * world} or gather=True", fields=("gather", "p"))


def check_data_parallel(cfg: TrainConfig, world: int) -> None:
    """Settings that cannot run over ``world`` processes, found before any process joins the group."""
    if cfg.sampler != "pk":
        raise ConfigError("data-parallel training needs the P x K sampler; the original recipe "
                          "(sampler='triplets') runs in one process", fields=("sampler",))
    if cfg.unlabelled:
        raise ConfigError("unlabelled photos train in one process for now", fields=("unlabelled",))
    check_split(cfg.p, world, cfg.gather or not get_loss(cfg.metric_loss).mines, cfg.negatives)


def training_folder(cfg: TrainConfig, log: Log) -> FaceFolder:
    """Every source of ``cfg.data`` scanned, checked for triplets, with the seven distortions made on the fly
    for photos without copies (``synth_distortions``)."""
    folder = scan_sources(cfg.data_folders, include_distortions=cfg.include_distortions)
    log(folder.report.summary())
    data_name = " + ".join(cfg.data_folders)
    if len(folder.identities) < 2:
        raise DataError(f"{data_name}: training needs at least 2 identities, found {len(folder.identities)}")
    if np.bincount(folder.labels).max() < 2:  # before any made distortion: real images only
        raise DataError(f"{data_name}: every identity has a single image, so no triplet has a positive")
    if cfg.synth_distortions and cfg.include_distortions:
        folder, bare = folder.with_synthetic_distortions()
        if bare:
            log(f"{bare} clean photos have no distortion/ copies: their {len(DISTORTION_KINDS)} distortions "
                "are made on the fly (synth_distortions)")
    return folder


def training_images(cfg: TrainConfig, folder: FaceFolder, labels: np.ndarray, spec: ModelSpec, transform,
                    log: Log, progress: bool = False) -> ImageDataset | FramedDataset:
    """The training samples as a dataset of ``(image [3, S, S], label)``: with ``cfg.frame_cache`` read from a
    :class:`FramedImages` store (each file decoded and framed once; ``transform`` rebuilt without its framing),
    unless the store would not fit its memory budget (one log line says so); else read from disk each time."""
    from facelib.models.transforms import build_transform

    kinds = folder.synthetic_kinds
    if cfg.frame_cache:
        try:
            frames = FramedImages(folder.paths, spec, raw=[bool(k) for k in kinds],
                                  workers=min(8, os.cpu_count() or 1), progress=progress)
        except FrameBudgetError as e:
            log(f"frames: not cached: {e}; images are read from disk each time")
        else:
            log(frames.describe())
            framed = build_transform(spec, train=True, augment=cfg.augment, framed=True)
            return FramedDataset(frames, labels, framed, kinds)
    else:
        log("frames: read from disk each time (frame_cache off)")
    return ImageDataset(folder.paths, labels, transform, kinds)


def place_model(model: nn.Module, device: torch.device, data_parallel: bool,
                compile: bool) -> tuple[nn.Module, Callable[[torch.Tensor], torch.Tensor]]:
    """The model on ``device`` (channels-last on CUDA) and the callable a step runs: the model itself, its
    DistributedDataParallel wrapper, and/or ``torch.compile`` of it."""
    from facelib.runtime import memory_format

    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick the fastest kernels
    if data_parallel:
        # BatchNorm over the global batch, as in one process: the BN neck would otherwise standardise
        # over P/W identities. PyTorch's SyncBatchNorm on CUDA; it does not run on CPU, where
        # GlobalBatchNorm all-reduces the statistics over gloo.
        model = (nn.SyncBatchNorm.convert_sync_batchnorm(model) if device.type == "cuda"
                 else distributed.convert_global_batchnorm(model))
    model.to(device, memory_format=memory_format(device))
    forward: Callable[[torch.Tensor], torch.Tensor] = model
    if data_parallel:
        from torch.nn.parallel import DistributedDataParallel

        forward = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if compile:
        forward = torch.compile(forward)
    return model, forward


_PLUMBING = ("ToImage", "ToDtype", "Normalize")  # transform steps not worth naming in the log


def describe_augmentation(augment: str, transform) -> str:
    """``augmentation mild: RandomResizedCrop, RandomHorizontalFlip, ColorJitter``."""
    return f"augmentation {augment}: " + ", ".join(type(t).__name__ for t in transform.transforms
                                                   if type(t).__name__ not in _PLUMBING)


class TeacherTargets(NamedTuple):
    """Per training sample, the row of its clean photo's teacher embedding: ``rows`` [N] int64 (-1: none, e.g.
    an unreadable photo or a distorted copy without its clean photo), ``table`` [M, T] float32 unit rows,
    centred on ``centre`` [T] (:func:`centred`)."""

    rows: torch.Tensor
    table: torch.Tensor
    centre: np.ndarray


def centred(emb: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Teacher rows [M, T] less the teacher's mean ``centre`` [T], L2-normalised again. dlib's descriptors sit in
    a narrow cone (mean pairwise cosine 0.83 over the training photos, lab notes 10.2); a student spread over the
    sphere by its BN neck should learn the teacher's differences, not that common direction. Who is whom stays:
    nearest-neighbour identity over dlib's rows of FACECOM train + LFW is 0.939 raw, 0.936 centred."""
    x = np.asarray(emb, np.float32) - centre
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _teacher_pass(cfg: TrainConfig, paths: list, log: Log):
    """``cfg.teacher``'s embedding of each file (:func:`facelib.training.teachers.teacher_embeddings`: cached;
    one process per core for the photos not cached yet, or this process alone with ``workers=0``), logged."""
    from facelib.training.teachers import teacher_embeddings

    done = teacher_embeddings(paths, cfg.teacher, cache_root=cfg.teacher_cache, workers=None if cfg.workers else 0,
                              progress=cfg.progress, log=log)
    log(done.summary())
    return done


def teacher_targets(cfg: TrainConfig, folder: FaceFolder, log: Log) -> TeacherTargets:
    """The teacher's embedding of every clean photo of ``folder`` (cached), and for each sample, real or made
    copy, the row of its clean photo."""
    clean: dict[str, int] = {}
    paths: list = []
    for s in folder.samples:
        if s.is_clean and s.photo not in clean:
            clean[s.photo] = len(paths)
            paths.append(s.path)
    done = _teacher_pass(cfg, paths, log)
    rows = np.array([clean.get(s.photo, -1) for s in folder.samples], dtype=np.int64)
    ok = np.asarray(done.ok)
    rows = np.where((rows >= 0) & ok[np.maximum(rows, 0)], rows, -1)
    lost = int((rows < 0).sum())
    if lost:
        log(f"distillation: {lost} of {len(rows)} training images have no teacher target (their clean photo is "
            "missing or unreadable): they train on the metric loss alone")
    if not get_loss(cfg.metric_loss).trains and lost == len(rows):
        raise DataError(f"no training image has a teacher target, and loss {cfg.metric_loss} trains on nothing else")
    emb = np.asarray(done.emb, np.float32)
    centre = emb[ok].mean(0) if ok.any() else np.zeros(emb.shape[1], np.float32)
    return TeacherTargets(torch.from_numpy(rows), torch.from_numpy(centred(emb, centre)), centre)


def teacher_prototypes(rows: torch.Tensor, labels, table: torch.Tensor) -> torch.Tensor:
    """Each person's prototype for the ``prototypes`` distillation form: the mean of the teacher's unit rows of
    their clean photos, normalised. ``rows`` [N] per sample (-1: none; a photo's copies share its row),
    ``labels`` [N] per sample, ``table`` [M, T]. Returns [C, T] for the C people with at least one row."""
    rows = torch.as_tensor(rows, dtype=torch.long)
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    keep = rows >= 0
    pairs = torch.unique(torch.stack([labels[keep], rows[keep]], 1), dim=0)  # each photo once per person
    people, person = torch.unique(pairs[:, 0], return_inverse=True)
    sums = torch.zeros(len(people), table.shape[1]).index_add_(0, person, table[pairs[:, 1]].float())
    return torch.nn.functional.normalize(sums, dim=1)


class UnlabelledImages(NamedTuple):
    """Photos without identities: ``images`` (clean and the seven made copies of each photo; an item's label is
    its teacher row, offset past the labelled table), ``weights`` [N] to draw them by (``clean_fraction`` for
    the clean ones, the rest shared by the copies), ``table`` [U, T] their teacher embeddings."""

    images: ImageDataset
    weights: torch.Tensor
    table: torch.Tensor


def unlabelled_images(cfg: TrainConfig, offset: int, centre: np.ndarray, transform, log: Log) -> UnlabelledImages:
    """``cfg.unlabelled`` scanned (skips counted), through the teacher (cached; rows centred on the labelled
    photos' ``centre``), as a dataset of clean photos and made distortions whose labels are teacher rows
    ``offset + j``."""
    paths, report = scan_images(cfg.unlabelled or [])
    line = f"unlabelled: {len(paths)} photos in {report.root}"
    if report.skipped:
        line += f"; skipped {report.n_skipped} files (" + ", ".join(f"{n} {w}" for w, n in report.skipped.items()) + ")"
    log(line)
    done = _teacher_pass(cfg, paths, log)
    kinds = ("",) + DISTORTION_KINDS
    keep = [j for j in range(len(paths)) if done.ok[j]]
    if not keep:
        raise DataError(f"no unlabelled photo in {report.root} could be read by the teacher")
    items = [(paths[j], offset + j, k) for j in keep for k in kinds]
    images = ImageDataset([p for p, _, _ in items], [r for _, r, _ in items], transform, [k for _, _, k in items])
    share = (1.0 - cfg.clean_fraction) / len(DISTORTION_KINDS)
    weights = torch.tensor([cfg.clean_fraction if k == "" else share for _, _, k in items], dtype=torch.double)
    return UnlabelledImages(images, weights, torch.from_numpy(centred(done.emb, centre)))


class Indexed(torch.utils.data.Dataset):
    """``dataset[i] + (i,)``: the sample index travels with the batch (to look up its teacher target)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        return (*self.dataset[i], i)


def build_sampler(cfg: TrainConfig, folder: FaceFolder, log: Log) -> PKSampler | None:
    """The P x K batch sampler of ``sampler="pk"`` (``None`` for the original recipe's random triplets)."""
    if cfg.sampler != "pk":
        return None
    try:
        sampler = PKSampler(
            folder.labels, cfg.p, cfg.k, photos=folder.photos, distortions=folder.distortions,
            clean_fraction=cfg.clean_fraction, min_photos=cfg.min_photos,
            batches_per_epoch=cfg.steps_per_epoch, negatives=cfg.negatives, seed=cfg.seed,
        )
    except ValueError as e:  # e.g. every identity has a single photo (with its distortions)
        raise DataError(f"{' + '.join(cfg.data_folders)}: {e} (min_photos={cfg.min_photos})") from None
    skipped = getattr(sampler, "skipped_identities", [])
    if skipped:
        log(f"P x K sampler: {len(skipped)} identities with a single image give no positive and are "
            "not drawn as batch identities")
    few = sampler.few_photo_identities
    if few:
        log(f"P x K sampler: {len(few)} identities with fewer than {cfg.min_photos} photos are not drawn as "
            f"batch identities (min_photos={cfg.min_photos})")
    return sampler


def val_mode(entry: Mapping[str, Any]) -> str:
    """How an epoch's val top-1 was scored, from its history entry: `` (cross-photo, mean gallery)``; empty when
    ``entry`` does not record it (older histories). The log, the live plot and the history figure name it so."""
    parts = [str(entry[k]) for k in ("val_protocol", "val_gallery") if entry.get(k)]
    if entry.get("val_gallery"):
        parts[-1] += " gallery"
    return f" ({', '.join(parts)})" if parts else ""


def describe_optimisation(cfg: TrainConfig) -> str:
    """The run's peak learning rate and weight decay, each saying when it is the default it resolved to."""
    lr = f"peak learning rate {cfg.base_lr:g}" + ("" if cfg.lr is not None else " (the default for this start)")
    wd = f"weight decay {cfg.base_weight_decay:g}"
    return f"{lr}; {wd}" + (" (the default with a teacher)" if cfg.weight_decay is None and cfg.teacher else "")


def describe_pk(cfg: TrainConfig, sampler, loss: str, log: Log) -> None:
    """The log lines of a P x K run: the extra negatives, then batch shape, steps and the recipe (``loss``: the
    loss's words, :meth:`facelib.training.losses.MetricLoss.describe`, or "" for its name)."""
    if cfg.negatives:
        pool = len(sampler.negative_identities)
        log(f"P x K sampler: + {sampler.negatives} extra negatives per batch, one image each of an "
            f"identity that is not a batch identity ({pool} such identities"
            + (f"; negatives={cfg.negatives} clamped" if sampler.negatives < cfg.negatives else "") + ")")
    what = loss or f"loss {cfg.metric_loss}"
    if cfg.loss is None and cfg.teacher:
        what += " (the default with a teacher; loss triplet adds the triplet loss)"
    if cfg.teacher:
        what += f"; + {cfg.distill_weight:g} x distillation from teacher {cfg.teacher} ({cfg.distill})"
    log(f"P x K batches: P={cfg.p} identities x K={cfg.k} images, {len(sampler)} steps per epoch, " + what)


def triplet_steps(cfg: TrainConfig, n_triplets: int, per_step: int) -> int:
    """Steps per epoch of the original recipe: its random triplets ``per_step`` at a time, capped by
    ``steps_per_epoch``."""
    steps = max(1, math.ceil(n_triplets / per_step))
    return min(steps, cfg.steps_per_epoch) if cfg.steps_per_epoch else steps


class Batch(NamedTuple):
    """One training batch: ``images`` [B, 3, S, S], ``labels`` [B], for the original recipe
    the given ``triplets`` (a, p, n) index tensors [T] into the batch (``None``: mine them), and with a
    teacher the samples' ``index`` [B] into the training folder."""

    images: torch.Tensor
    labels: torch.Tensor
    triplets: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
    index: torch.Tensor | None = None


def triplet_batch(x: torch.Tensor, y: torch.Tensor) -> Batch:
    """[T, 3, C, H, W] stacked triplets -> a Batch of 3T images (anchors, positives, negatives) with
    the triplets (i, T + i, 2T + i)."""
    t = x.shape[0]
    idx = torch.arange(t)
    return Batch(x.transpose(0, 1).reshape(3 * t, *x.shape[2:]), y.T.reshape(-1), (idx, idx + t, idx + 2 * t))


class TripletImages(torch.utils.data.Dataset):
    """The original recipe's dataset: item ``i`` is a stacked (anchor, positive, negative) [3, C, H, W]."""

    def __init__(self, images: ImageDataset, triplets: np.ndarray):
        self.images, self.triplets = images, triplets

    def __len__(self) -> int:
        return len(self.triplets)

    def __getitem__(self, i: int):
        a, p, n = self.triplets[i]
        x = torch.stack([self.images[int(j)][0] for j in (a, p, n)])
        return x, torch.as_tensor(self.images.labels[[a, p, n]])
