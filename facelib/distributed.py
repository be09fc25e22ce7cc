"""Data-parallel training over processes (``torchrun``): the environment, the process group, and the
collectives the training loop needs.

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
    """The torchrun variables ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK`` (defaults: one process).

    Raises :class:`ConfigError` for values that are not integers or not consistent."""
    environ = os.environ if environ is None else environ
    try:
        world = int(environ.get("WORLD_SIZE", "1"))
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


def broadcast_floats(values: list[float], device: torch.device) -> list[float]:
    """Rank 0's ``values`` on every rank (float64, on ``device``: NCCL needs a CUDA tensor)."""
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.broadcast(t, src=0)
    return t.tolist()
