"""Data-parallel training over processes (``torchrun``): the environment, the process group, the
collectives the training loop needs, and a BatchNorm with statistics over all ranks for CPU.

``torchrun`` starts one process per device and sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``;
:func:`env_from` reads them and :func:`init_process_group` joins the group (NCCL on CUDA, each rank
on ``cuda:LOCAL_RANK``; gloo on CPU). Without those variables, or with ``WORLD_SIZE=1``, nothing here
is used and a run is the plain single-process one.

Call every collective below on *every* rank, in the same order, or the ranks wait for each other
until the timeout.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Iterable, Mapping

import torch
import torch.distributed as dist
from torch import nn

from facelib.errors import ConfigError

# Rank 0 validates and writes checkpoints while the other ranks wait in the next collective:
# give that wait the time a validation pass can take.
TIMEOUT = timedelta(minutes=30)


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands: ``rank`` of ``world_size`` processes, ``local_rank`` on its machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """More than one process: collectives are needed."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that logs and writes files."""
        return self.rank == 0


def env_from(environ: Mapping[str, str] | None = None) -> DistEnv:
    """The torchrun variables ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK`` (defaults: one process). Without
    ``WORLD_SIZE`` > 1 it is one process, whatever ``RANK`` says (other launchers set it too).

    Raises :class:`ConfigError` for values that are not integers or not consistent."""
    environ = os.environ if environ is None else environ
    try:
        world = int(environ.get("WORLD_SIZE") or "1")
        if world == 1:
            return DistEnv()
        rank = int(environ.get("RANK", "0"))
        local = int(environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise ConfigError("WORLD_SIZE, RANK and LOCAL_RANK must be integers (as torchrun sets them)") from None
    if world < 1 or not 0 <= rank < world or local < 0:
        raise ConfigError(f"inconsistent torchrun environment: RANK={rank}, WORLD_SIZE={world}, LOCAL_RANK={local}")
    return DistEnv(rank, world, local)


def current() -> DistEnv:
    """This process's place in the initialised process group; one process when there is none."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistEnv()
    return DistEnv(dist.get_rank(), dist.get_world_size(), env_from().local_rank)


def device_for(env: DistEnv, device: torch.device) -> torch.device:
    """Under torchrun, a CUDA device becomes ``cuda:LOCAL_RANK``; anything else is kept."""
    if env.enabled and device.type == "cuda":
        return torch.device("cuda", env.local_rank)
    return device


def init_process_group(env: DistEnv, device: torch.device) -> None:
    """Join the group torchrun set up (``MASTER_ADDR``/``MASTER_PORT`` from the environment): NCCL when
    ``device`` is CUDA (and select ``cuda:LOCAL_RANK``), gloo on CPU. Does nothing for one process."""
    if not env.enabled or dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(env.local_rank)
        backend = "nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend, rank=env.rank, world_size=env.world_size, timeout=TIMEOUT)


def destroy_process_group() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward returns the slice of the gradient that belongs to this rank."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        world, rank = dist.get_world_size(), dist.get_rank()
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous())
        ctx.rank, ctx.n, ctx.world = rank, x.shape[0], world
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        # Every rank computes the same loss over the global batch; each back-propagates only through its
        # own rows. DDP then *averages* the ranks' parameter gradients, so scale by the world size: the
        # average of the ranks' partial gradients times W is the gradient of the global loss.
        return grad[ctx.rank * ctx.n:(ctx.rank + 1) * ctx.n] * ctx.world


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """[n, ...] on each rank -> [world * n, ...] in rank order, identical on every rank; gradients flow
    back to this rank's rows only (scaled by the world size, see :class:`_GatherWithGrad`). Every rank
    must pass the same ``n``."""
    return _GatherWithGrad.apply(x)


def gather(x: torch.Tensor) -> torch.Tensor:
    """[n, ...] on each rank -> [world * n, ...] in rank order, without gradient."""
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def average_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """Replace each parameter's ``.grad`` by its mean over the ranks (for parameters outside the DDP
    module, e.g. the ArcFace/CosFace class weights)."""
    world = dist.get_world_size()
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad.div_(world)


def average(values: torch.Tensor) -> torch.Tensor:
    """The mean over the ranks of a float tensor (a copy)."""
    out = values.clone()
    dist.all_reduce(out)
    return out / dist.get_world_size()


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are over the batches of all ranks, on any backend (gloo on CPU
    included, where ``nn.SyncBatchNorm`` does not run): the per-channel sums are all-reduced with autograd,
    so the gradient also flows across ranks. Input [N, C] or [N, C, *]; in eval mode, or in one process,
    it is a plain BatchNorm. Three small all-reduces per layer in the forward (count, mean, then centred
    squares: no cancellation), two in the backward."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected [N, C] or [N, C, *] input, got {input.dim()}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        self._check_input_dim(x)
        dtype, x = x.dtype, x.float()  # statistics in fp32 under bf16/fp16 autocast, as BatchNorm keeps them
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = torch.tensor([x.numel() // x.shape[1]], dtype=torch.float64, device=x.device)
        dist.all_reduce(count)
        n = float(count)
        mean = all_reduce(x.sum(dims)) / n
        centred = x - mean.view(shape)
        var = all_reduce((centred * centred).sum(dims)) / n
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.lerp_(mean.detach(), factor)
                self.running_var.lerp_(var.detach() * (n / max(n - 1.0, 1.0)), factor)
        return y.to(dtype)


def convert_global_batchnorm(module: nn.Module) -> nn.Module:
    """``module`` with every BatchNorm layer replaced by a :class:`GlobalBatchNorm` holding the same
    parameters and statistics (same state-dict keys); in place below the root, like
    ``nn.SyncBatchNorm.convert_sync_batchnorm``."""
    out = module
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlobalBatchNorm):
        out = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats)
        if module.affine:
            out.weight, out.bias = module.weight, module.bias
        if module.track_running_stats:
            out.running_mean, out.running_var = module.running_mean, module.running_var
            out.num_batches_tracked = module.num_batches_tracked
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, convert_global_batchnorm(child))
    return out


def broadcast_floats(values: list[float], device: torch.device) -> list[float]:
    """Rank 0's ``values`` on every rank (float64, on ``device``: NCCL needs a CUDA tensor)."""
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.broadcast(t, src=0)
    return t.tolist()
