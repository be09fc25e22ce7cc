"""The training loop: P x K batches with in-batch mining (default) or the original random triplets.

Per epoch it logs ``loss``, ``active_fraction``, ``pos_dist``, ``neg_dist``, ``spread`` and the figures its
callbacks return (validation: :class:`Callback`) to ``history.json`` next to the checkpoint, keeps the best
checkpoint, and writes ``<out stem>.last.pth`` with everything ``--resume`` needs.

Under ``torchrun`` (``WORLD_SIZE`` > 1) the same loop runs data-parallel (:mod:`facelib.training.distributed`):
each rank embeds its share of the global P x K batch, mining sees the all-gathered global batch
(``cfg.gather``), and rank 0 alone logs, validates and writes files.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence

import numpy as np
import torch
from torch import nn

from facelib.config import TrainConfig
from facelib.errors import CheckpointError
from facelib.io import write_json
from facelib.models.checkpoint import read_checkpoint, save_checkpoint
from facelib.models.network import ModelSpec, build_model, describe_weights
from facelib.models.transforms import build_transform, describe_framing
from facelib.runtime import (
    autocast_dtype,
    describe_device,
    memory_format,
    precision_label,
    resolve_device,
    seed_everything,
)
from facelib.training import distributed
from facelib.training.losses import build_loss, embedding_spread
from facelib.training.setup import (
    Batch,
    Indexed,
    TripletImages,
    build_sampler,
    check_data_parallel,
    check_split,
    describe_augmentation,
    describe_optimisation,
    describe_pk,
    place_model,
    teacher_prototypes,
    teacher_targets,
    training_folder,
    training_images,
    triplet_batch,
    triplet_steps,
    unlabelled_images,
    val_mode,
)

COLLAPSE_SPREAD = 0.05  # spread below this: the embeddings have (nearly) collapsed to one point
COLLAPSE_REMEDY = "the defaults avoid it: the BatchNorm neck (neck='bn') and batch-all mining (miner='batch_all')"


class Callback(Protocol):
    """Plugs into :meth:`Trainer.fit` (as arcface_torch's ``CallBackVerification``): called on rank 0 after each
    epoch with the trainer and the epoch's history entry; returns figures to add to that entry, or ``None``. A
    ``val_top1`` among them decides which checkpoint is kept (and early stopping).
    :class:`facelib.evaluation.validation.Validation` is the one :func:`facelib.jobs.train` adds for ``val_data``."""

    def describe(self) -> str: ...

    def __call__(self, trainer: Trainer, entry: dict[str, Any]) -> dict[str, Any] | None: ...


@dataclass
class TrainResult:
    """Where the run wrote its files, and its per-epoch history."""

    checkpoint: Path
    last_checkpoint: Path
    history_path: Path
    history: list[dict[str, Any]]
    identities: list[str]
    spec: ModelSpec
    best_epoch: int | None = None
    stopped_early: bool = False
    warnings: list[str] = field(default_factory=list)


def _quiet(message: str) -> None:
    """The log of ranks other than 0."""


def rank_seed(seed: int, epoch: int, rank: int | None = None) -> int:
    """A 63-bit seed from (seed, epoch[, rank]): per-epoch seeds under data-parallel training."""
    key = [seed, epoch] if rank is None else [seed, epoch, rank]
    return int(np.random.SeedSequence(key).generate_state(2, np.uint64)[0] >> np.uint64(1))


def last_checkpoint_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.stem + ".last" + out.suffix)


def history_path(out: str | Path) -> Path:
    return Path(out).with_name("history.json")


def warmup_cosine(progress: float, warmup: float, floor: float = 0.01) -> float:
    """Learning-rate factor at ``progress`` in [0, 1] of the run: linear warm-up from 10% to 100%
    over the first ``warmup`` fraction, then cosine decay to ``floor``."""
    if warmup > 0 and progress < warmup:
        return 0.1 + 0.9 * progress / warmup
    rest = min(1.0, (progress - warmup) / max(1e-12, 1.0 - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * rest))


STAT_KEYS = ("loss", "spread", "distill", "teacher_cos")  # in the history, beside the loss's own log_stats


class Trainer:
    """Holds the state of one run. Public parts: :meth:`batches` (an epoch's batches),
    :meth:`step` (one optimisation step), :meth:`fit` (the epochs, with history, checkpoints,
    the ``callbacks`` after each epoch, early stop and the ``max_seconds`` budget); :func:`facelib.jobs.train` is the
    usual entry point (it adds the validation callback for ``cfg.val_data``).

    Under ``torchrun`` (``WORLD_SIZE`` > 1; the process group is joined here if it is not yet) it
    trains with DistributedDataParallel; ``log`` is called on rank 0 only.
    """

    def __init__(self, cfg: TrainConfig, log: Callable[[str], None] = print, callbacks: Sequence[Callback] = ()):
        env = distributed.env_from()
        self.device = distributed.device_for(env, resolve_device(cfg.device))
        if env.enabled:  # before joining the group, so a bad setting stops every rank at once
            check_data_parallel(cfg, env.world_size)
        distributed.init_process_group(env, self.device)
        self.dist = distributed.current()
        self.cfg, self.log = cfg, log if self.dist.is_main else _quiet
        log = self.log
        seed_everything(cfg.seed)
        self.folder = training_folder(cfg, log)
        self.labels = self.folder.labels
        self.model, self.spec = build_model(
            cfg.backbone, cfg.embedding_dim, pretrained=cfg.pretrained and not cfg.init, weights=cfg.weights,
            image_size=cfg.image_size, neck=cfg.neck, face_crop=cfg.face_crop, restore=cfg.restore,
            flip_test=cfg.flip_test,
        )
        if cfg.init:
            self._load_init(cfg.init)
        log(describe_weights(self.spec) + f"; neck {cfg.neck}; {describe_optimisation(cfg)}")
        log(describe_framing(self.spec))
        self.amp_dtype = autocast_dtype(self.device, cfg.amp, training=True)
        log(f"device {describe_device(self.device)}, precision {precision_label(self.amp_dtype)}")
        self.memory_format = memory_format(self.device)
        self.gather = self.dist.enabled and cfg.gather
        self.model, self.forward = place_model(self.model, self.device, self.dist.enabled, cfg.compile)
        transform = build_transform(self.spec, train=True, augment=cfg.augment)
        self.images = training_images(cfg, self.folder, self.labels, self.spec, transform, log,
                                      progress=cfg.progress and self.dist.is_main)
        log(describe_augmentation(cfg.augment, transform))
        self.criterion = build_loss(cfg, len(self.folder.identities), log).to(self.device)
        # a loss that compares on the sphere anyway gets unit embeddings (the same values): the log says which
        self.normalize = cfg.normalize_embeddings or self.criterion.unit_embeddings
        self.distill: nn.Module | None = None
        if cfg.teacher:
            from facelib.training.distill import DistillLoss

            # data-parallel: rank 0 runs the teacher pass (filling the cache), the others then read the cache
            if self.dist.enabled and not self.dist.is_main:
                torch.distributed.barrier()
            targets = teacher_targets(cfg, self.folder, log)
            if self.dist.enabled and self.dist.is_main:
                torch.distributed.barrier()
            self.teacher_rows, self.teacher_table = targets.rows.to(self.device), targets.table.to(self.device)
            self.distill = DistillLoss(cfg.distill, cfg.embedding_dim, targets.table.shape[1]).to(self.device)
            if "prototypes" in self.distill.parts:
                self.distill.set_prototypes(teacher_prototypes(targets.rows, self.labels, targets.table))
                log(f"distillation: {len(self.distill.prototypes)} people's prototypes from the teacher")
            self.images = Indexed(self.images)
            self._unlabelled_batches: Iterator | None = None
            if cfg.unlabelled:
                more = unlabelled_images(cfg, len(targets.table), targets.centre, transform, log)
                self.teacher_table = torch.cat([targets.table, more.table]).to(self.device)
                self.unlabelled = more
                log(f"unlabelled: + {cfg.unlabelled_per_batch} per batch, through the teacher alone")
        self.sampler = build_sampler(cfg, self.folder, log)
        self._pk_loader: torch.utils.data.DataLoader | None = None
        if self.sampler is not None:
            if self.dist.enabled:
                self._split_sampler(log)
            self.steps_per_epoch = len(self.sampler)
            describe_pk(cfg, self.sampler, self.criterion.describe(self.normalize), log)
        else:
            self.triplet_batch = cfg.batch_size or 32
            self.steps_per_epoch = triplet_steps(cfg, len(self._epoch_triplets(0)), self.triplet_batch)
            log(f"original recipe: random triplets, {self.triplet_batch} per step, 3 forward passes each, "
                f"{self.steps_per_epoch} steps per epoch, margin {cfg.margin}")
        self.extra_params = list(self.criterion.parameters()) + list(self.distill.parameters() if self.distill else [])
        params = list(self.model.parameters()) + self.extra_params
        self.optimizer = torch.optim.AdamW(params, lr=cfg.base_lr, weight_decay=cfg.base_weight_decay)
        self.total_steps = cfg.epochs * self.steps_per_epoch
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.steps_done = 0
        self.elapsed = 0.0  # training seconds so far (data loading and steps; not validation or saving)
        if cfg.max_seconds:
            log(f"time budget: {cfg.max_seconds:g} s of training; the learning-rate schedule runs over "
                "whichever ends first, the budget or the epochs")
        self.out = Path(cfg.out)
        self.last_path = last_checkpoint_path(self.out)
        self.history_path = history_path(self.out)
        self.history: list[dict[str, Any]] = []
        self.start_epoch = 0
        self.best_score: float | None = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0
        self.warnings: list[str] = []
        self.callbacks = list(callbacks)
        for callback in self.callbacks:
            log(callback.describe())
        if cfg.val_data and not self.callbacks:
            log(f"val_data {cfg.val_data} is not scored: no callback was given (facelib.jobs.train adds "
                "facelib.evaluation.validation.Validation)")
        if cfg.resume:
            self._resume()

    def _load_init(self, path: str) -> None:
        """Start the embedder from a facelib checkpoint's weights (fine-tuning): same backbone, size and neck."""
        ckpt = read_checkpoint(path)
        spec = ckpt.get("model_spec", {})
        want = {"backbone": self.cfg.backbone, "embedding_dim": self.cfg.embedding_dim, "neck": self.cfg.neck}
        differ = {k: spec.get(k) for k, v in want.items() if spec.get(k, "none" if k == "neck" else None) != v}
        if differ:
            raise CheckpointError(
                f"init checkpoint {path} holds another embedder ({', '.join(f'{k} {v}' for k, v in differ.items())}; "
                f"this run: {', '.join(f'{k} {v}' for k, v in want.items())}): set backbone, embedding_dim and neck "
                "to the checkpoint's")
        try:
            self.model.load_state_dict(ckpt["model"])
        except (RuntimeError, KeyError):
            raise CheckpointError(f"init checkpoint {path} does not fit a {self.cfg.backbone} embedder") from None
        self.spec.weights_source = f"init:{path}"
        if spec.get("face_crop", 1.0) != self.cfg.face_crop or spec.get("image_size") != self.cfg.image_size:
            self.log(f"note: init checkpoint {path} was trained at face crop {spec.get('face_crop', 1.0):g} and "
                     f"{spec.get('image_size')} px; this run uses {self.cfg.face_crop:g} and {self.cfg.image_size} px")

    def _split_sampler(self, log: Callable[[str], None]) -> None:
        """Give this rank its share of each global P x K batch; check the split works for the miner."""
        from facelib.data.samplers import RankSplitSampler

        world, p = self.dist.world_size, self.sampler.p
        # P and the negatives may have been clamped to the data: check what the sampler uses
        check_split(p, world, self.gather or not self.criterion.mines, self.sampler.negatives)
        self.sampler = RankSplitSampler(self.sampler, self.dist.rank, world)
        sync_bn = "SyncBatchNorm" if self.device.type == "cuda" else "GlobalBatchNorm"
        log(f"data-parallel: {world} processes ({'nccl' if self.device.type == 'cuda' else 'gloo'}), each "
            f"{p // world} of the P={p} identities per step; mining over "
            + ("the all-gathered global batch" if self.gather else "each process's own share")
            + f"; BatchNorm statistics over the global batch ({sync_bn})")

    # ----------------------------------------------------------------------------- data per epoch

    def _epoch_triplets(self, epoch: int) -> np.ndarray:
        from facelib.data.samplers import original_triplets

        return original_triplets(self.labels, np.random.default_rng([self.cfg.seed, epoch]))

    def batches(self, epoch: int) -> Iterator[Batch]:
        """The batches of ``epoch`` (a pure function of seed and epoch): P x K batches, or, for the
        original recipe, stacked random triplets with their (a, p, n) indices."""
        cfg = self.cfg
        common: dict[str, Any] = dict(num_workers=cfg.workers, pin_memory=self.device.type == "cuda")
        if cfg.workers > 0:
            common["prefetch_factor"] = 4
        if self.dist.enabled:
            # augmentation draws per rank and epoch (so a resumed run repeats them), random mining per
            # epoch and the same on every rank (it picks triplets of the global batch)
            torch.manual_seed(rank_seed(cfg.seed, epoch, self.dist.rank))
            self.criterion.generator = torch.Generator(self.device).manual_seed(rank_seed(cfg.seed, epoch))
        if self.sampler is not None:
            # One loader for the whole run, so worker processes persist across epochs; the batch
            # sampler runs in this process, so set_epoch still decides each epoch's batches.
            self.sampler.set_epoch(epoch)
            if self._pk_loader is None:
                self._pk_loader = torch.utils.data.DataLoader(
                    self.images, batch_sampler=self.sampler, persistent_workers=cfg.workers > 0,
                    generator=torch.Generator().manual_seed(cfg.seed + self.dist.rank), **common)
            return (Batch(b[0], b[1], None, b[2] if len(b) > 2 else None) for b in self._pk_loader)
        triplets = self._epoch_triplets(epoch)[: self.steps_per_epoch * self.triplet_batch]
        loader = torch.utils.data.DataLoader(
            TripletImages(self.images, triplets), batch_size=self.triplet_batch, shuffle=False,
            generator=torch.Generator().manual_seed(cfg.seed * 1000 + epoch), **common)
        return (triplet_batch(x, y) for x, y in loader)

    # ----------------------------------------------------------------------------- one step

    def _unlabelled_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next ``unlabelled_per_batch`` photos without identities: images [U, 3, S, S], teacher rows [U]."""
        if self._unlabelled_batches is None:
            cfg = self.cfg
            draws = cfg.unlabelled_per_batch * max(1, self.total_steps - self.steps_done)
            sampler = torch.utils.data.WeightedRandomSampler(
                self.unlabelled.weights, draws, replacement=True,
                generator=torch.Generator().manual_seed(cfg.seed + 7919 * self.steps_done))
            kw: dict[str, Any] = dict(num_workers=cfg.workers, prefetch_factor=4) if cfg.workers else {}
            self._unlabelled_batches = iter(torch.utils.data.DataLoader(
                self.unlabelled.images, batch_size=cfg.unlabelled_per_batch, sampler=sampler, **kw))
        try:
            return next(self._unlabelled_batches)
        except StopIteration:  # a run longer than planned (a budget in seconds): draw again
            self._unlabelled_batches = None
            return self._unlabelled_batch()

    def progress(self) -> float:
        """Fraction of the run done, in [0, 1]: steps over the planned steps, or time over the budget."""
        done = self.steps_done / max(1, self.total_steps)
        if self.cfg.max_seconds:
            done = max(done, self.elapsed / self.cfg.max_seconds)
        return min(1.0, done)

    def learning_rate(self) -> float:
        """The rate for the next step: :func:`warmup_cosine` of :meth:`progress` times ``cfg.base_lr``."""
        return self.cfg.base_lr * warmup_cosine(self.progress(), self.cfg.warmup)

    def step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One optimisation step: forward, the loss (``criterion(embeddings, labels, triplets)``, one call for every
        loss: the triplet loss mines unless the batch carries its triplets), backward, clip, AdamW at
        :meth:`learning_rate`. Returns detached 0-d tensors on the device (``loss``, ``spread`` and the loss's own
        statistics); nothing is copied to the host, so a GPU never waits.

        Data-parallel with ``gather``: the ranks' embeddings [B/W, D] and labels are all-gathered into
        the global batch [B, D], which every rank mines and scores alike; each back-propagates through
        its own rows."""
        images, extra_rows = batch.images, None
        if self.cfg.unlabelled and batch.index is not None:  # + photos without identities, for the teacher alone
            more, extra_rows = self._unlabelled_batch()
            images = torch.cat([images, more])
        x = images.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        y = batch.labels.to(self.device, non_blocking=True)
        for g in self.optimizer.param_groups:
            g["lr"] = self.learning_rate()
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            if batch.triplets is not None:  # the original recipe: one forward pass per triplet member
                emb = torch.cat([self.forward(part, normalize=self.normalize) for part in x.chunk(3)])
            else:
                emb = self.forward(x, normalize=self.normalize)
        emb = emb.float()
        emb, emb_unlabelled = emb[: len(y)], emb[len(y):]
        if not self.normalize:  # a standardised (BN neck) embedding then has unit expected norm, like the sphere
            emb = emb / math.sqrt(emb.shape[1])
        if self.gather:
            emb, y = distributed.gather_with_grad(emb), distributed.gather(y)
        given = None if batch.triplets is None else tuple(t.to(self.device) for t in batch.triplets)
        loss, stats = self.criterion(emb, y, given)
        if self.distill is not None and batch.index is not None:
            index = batch.index.to(self.device, non_blocking=True)
            if self.gather:
                index = distributed.gather(index)
            rows, student = self.teacher_rows[index], emb
            if extra_rows is not None:
                rows = torch.cat([rows, extra_rows.to(self.device)])
                unl = emb_unlabelled if self.normalize else emb_unlabelled / math.sqrt(emb.shape[1])
                student = torch.cat([emb, unl])
            term, extra = self.distill(student, self.teacher_table[rows.clamp_min(0)], rows >= 0)
            loss = loss + self.cfg.distill_weight * term
            stats = {**stats, **extra, "distill": term.detach()}
        self.optimizer.zero_grad(set_to_none=True)
        if loss.requires_grad:
            self.scaler.scale(loss).backward()
            if self.dist.enabled:  # ArcFace/CosFace class weights, the distillation map: outside the DDP module
                distributed.average_gradients(self.extra_params)
            if self.cfg.grad_clip:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.optimizer.param_groups[0]["params"], self.cfg.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.steps_done += 1
        stats = {k: v for k, v in stats.items() if isinstance(v, torch.Tensor)}
        stats["loss"] = loss.detach()
        stats["spread"] = embedding_spread(nn.functional.normalize(emb.detach(), dim=1))  # on the sphere
        return stats

    # ----------------------------------------------------------------------------- epochs

    def out_of_time(self) -> bool:
        return bool(self.cfg.max_seconds) and self.elapsed >= self.cfg.max_seconds

    def fit(
        self,
        on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
        on_step_end: Callable[[dict[str, Any]], None] | None = None,
    ) -> TrainResult:
        """Train the remaining epochs (or until ``cfg.max_seconds`` of training); the callbacks get each
        epoch's history entry / each step's statistics as floats (``on_step_end`` reads them back from
        the device every step: leave it ``None`` on a GPU when speed matters)."""
        cfg = self.cfg
        stopped_early = False
        for epoch in range(self.start_epoch, cfg.epochs):
            if self.out_of_time():
                break
            self.model.train()
            self.criterion.train()
            sums: dict[str, torch.Tensor] = {}
            steps = n_images = 0
            batches: Iterable[Batch] = self.batches(epoch)
            progress = cfg.progress and self.dist.is_main
            if progress:
                from tqdm.auto import tqdm

                batches = tqdm(batches, total=self.steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                               unit="step", leave=False, disable=None)
            t0 = time.perf_counter()
            elapsed0 = self.elapsed
            for batch in batches:
                stats = self.step(batch)
                steps += 1
                n_images += batch.images.shape[0]
                for key, value in stats.items():
                    sums[key] = sums[key] + value if key in sums else value.clone()
                if on_step_end is not None:
                    on_step_end({"epoch": epoch + 1, "step": steps, **{k: float(v) for k, v in stats.items()}})
                self.elapsed = elapsed0 + time.perf_counter() - t0
                if self.dist.enabled and cfg.max_seconds:  # rank 0's clock: same schedule, same last step
                    self.elapsed = distributed.broadcast_floats([self.elapsed], self.device)[0]
                if self.out_of_time():
                    break
            if progress:
                batches.close()  # type: ignore[union-attr]
            seconds = time.perf_counter() - t0
            if self.dist.enabled:  # the ranks' means (identical already when mining the gathered batch)
                keys = sorted(sums)
                sums = dict(zip(keys, distributed.average(torch.stack([sums[k].float() for k in keys]))))
                n_images *= self.dist.world_size
            entry: dict[str, Any] = {"epoch": epoch + 1}
            keep = STAT_KEYS + tuple(k for k, _ in self.criterion.log_stats)
            entry.update({k: float(v) / max(1, steps) for k, v in sums.items() if k in keep})
            entry.update(lr=self.learning_rate(), seconds=seconds, images_per_sec=n_images / max(seconds, 1e-9),
                         steps=steps)
            if self.dist.is_main:
                for callback in self.callbacks:
                    entry.update(callback(self, entry) or {})
            self.history.append(entry)
            self.log(self._epoch_line(entry))
            if entry.get("spread", 1.0) < COLLAPSE_SPREAD:
                msg = (f"warning: embeddings are collapsing (spread {entry['spread']:.4f} < {COLLAPSE_SPREAD}); "
                       f"{COLLAPSE_REMEDY}")
                self.warnings.append(msg)
                self.log(msg)
            improved = self._track_best(entry)
            if self.dist.is_main:
                self._save(epoch + 1, improved)
            if on_epoch_end is not None:
                on_epoch_end(entry)
            stop = bool(cfg.patience and self.bad_epochs >= cfg.patience)
            if self.dist.enabled:  # rank 0 alone validated: its decision holds for all
                stop = bool(distributed.broadcast_floats([float(stop)], self.device)[0])
            if stop:
                self.log(f"early stop: no validation improvement for {cfg.patience} epochs "
                         f"(best top-1 {self.best_score:.3f} at epoch {self.best_epoch})")
                stopped_early = True
                break
        if self.out_of_time():
            self.log(f"time budget of {cfg.max_seconds:g} s spent after {self.steps_done} steps")
        self.log(f"saved model to {self.out}" + (f" (best epoch {self.best_epoch})" if self.best_epoch else "")
                 + f"; history in {self.history_path}")
        return TrainResult(self.out, self.last_path, self.history_path, self.history, list(self.folder.identities),
                           self.spec, self.best_epoch, stopped_early, self.warnings)

    def _epoch_line(self, entry: dict[str, Any]) -> str:
        nan = float("nan")
        line = f"epoch {entry['epoch']}/{self.cfg.epochs}  loss {entry.get('loss', nan):.4f}  "
        line += "".join(fmt.format(entry.get(key, nan)) + "  " for key, fmt in self.criterion.log_stats)
        if "distill" in entry:
            line += f"distill {entry['distill']:.4f} (teacher cos {entry.get('teacher_cos', nan):.2f})  "
        line += f"spread {entry.get('spread', nan):.3f}  {entry['images_per_sec']:.1f} img/s"
        if "val_top1" in entry:
            line += f"  val top-1 {entry['val_top1']:.3f}{val_mode(entry)}"
        return line

    def _track_best(self, entry: dict[str, Any]) -> bool:
        if "val_top1" not in entry:
            self.best_epoch = None
            return True  # no validation: the latest model is the one kept
        score = entry["val_top1"]
        if self.best_score is None or score > self.best_score:
            self.best_score, self.best_epoch, self.bad_epochs = score, entry["epoch"], 0
            return True
        self.bad_epochs += 1
        return False

    def _state(self, epoch: int) -> dict[str, Any]:
        return dict(
            identities=list(self.folder.identities),
            config=self.cfg.to_dict(),
            epoch=epoch,
            history=self.history,
            best_score=self.best_score,
            best_epoch=self.best_epoch,
            bad_epochs=self.bad_epochs,
            steps_done=self.steps_done,
            elapsed=self.elapsed,
        )

    def _save(self, epoch: int, improved: bool) -> None:
        state = self._state(epoch)
        save_checkpoint(
            self.last_path, self.model, self.spec,
            optimizer=self.optimizer.state_dict(), criterion=self.criterion.state_dict(),
            distill=self.distill.state_dict() if self.distill is not None else {},
            scaler=self.scaler.state_dict(), torch_rng=torch.get_rng_state(), **state,
        )
        if improved:
            save_checkpoint(self.out, self.model, self.spec, **state)
        write_json(self.history_path, self.history)

    def _resume(self) -> None:
        if not self.last_path.exists():
            self.log(f"resume: no {self.last_path} yet, starting from scratch")
            return
        ckpt = read_checkpoint(self.last_path)
        if ckpt.get("identities") != list(self.folder.identities):
            raise CheckpointError(f"{self.last_path} was trained on other identities than "
                                  f"{' + '.join(self.cfg.data_folders)}")
        if "optimizer" not in ckpt:
            raise CheckpointError(f"{self.last_path} holds no training state to resume from")
        try:
            self.model.load_state_dict(ckpt["model"])
        except RuntimeError:
            raise CheckpointError(f"{self.last_path} does not fit the model configured "
                                  f"({self.cfg.backbone}, {self.cfg.embedding_dim}-d)") from None
        try:
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.criterion.load_state_dict(ckpt.get("criterion", {}))
            if self.distill is not None:
                self.distill.load_state_dict(ckpt.get("distill", {}))
        except (ValueError, RuntimeError, KeyError):
            raise CheckpointError(f"{self.last_path} was written by another recipe (loss, neck or optimiser "
                                  "differ); train afresh with resume=False", fields=("resume",)) from None
        for g in self.optimizer.param_groups:  # the configured decay, not the saved one (the rate is set per step)
            g["weight_decay"] = self.cfg.base_weight_decay
        if "scaler" in ckpt:
            self.scaler.load_state_dict(ckpt["scaler"])
        torch.set_rng_state(ckpt["torch_rng"])
        self.start_epoch = int(ckpt["epoch"])
        self.history = list(ckpt.get("history", []))
        self.best_score, self.best_epoch = ckpt.get("best_score"), ckpt.get("best_epoch")
        self.bad_epochs = int(ckpt.get("bad_epochs", 0))
        self.steps_done = int(ckpt.get("steps_done", self.start_epoch * self.steps_per_epoch))
        self.elapsed = float(ckpt.get("elapsed", 0.0))
        self.log(f"resumed from {self.last_path} after epoch {self.start_epoch}")
