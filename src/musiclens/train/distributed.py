"""Data-parallel training on ``torch.distributed``: the processes, the run directory, the global batch.

A config with more than one process (``trainer.devices`` per node times ``trainer.num_nodes``)
trains with Lightning's ``ddp`` strategy:

- **processes**: ``musiclens train`` (or :func:`~musiclens.train.engine.train`) starts
  ``devices`` processes itself (:func:`musiclens.extract.distributed.spawn`; CPU: gloo, GPU:
  NCCL) unless a launcher started this one (``torchrun``, ``srun`` with several tasks, or
  ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``/``MASTER_PORT`` set by hand), in which case every
  launched process is one rank.  Each process joins the process group *before* Lightning does
  (Lightning then reuses it), so the ranks can agree on the run directory first;
- **the run directory** is rank 0's: it alone checks and clears it, writes ``config.yaml``,
  ``manifest.json``, ``metrics.csv``, the RSA curve, checkpoints and the exported backbone, and
  decides what to resume from; the other ranks receive that decision
  (:meth:`Session.from_rank_zero`) and never write there;
- **data**: rank r of W reads its slice of every global micro-batch
  (:class:`~musiclens.train.data.StepBatchSampler`): with a per-process ``data.batch_size`` b
  the global batch is the ``W b`` items a one-process run with batch ``W b`` reads, in the same
  order.  A training batch is zero-padded to the longest clip of the *global* batch
  (:func:`pad_to_global`), as one process would pad it.  Validation is run whole on every rank
  with batches of ``W b`` (the one-process batches), so its numbers equal a one-process run's;
- **the global batch inside objectives**: during a training step the engine sets the rank's
  :class:`Shard`; what looks across the batch then sees all of it -- random draws (masks,
  augmentations, Gumbel noise, in-batch mixing) are drawn for the global batch from the step's
  generator and each rank keeps its rows (:func:`local_rows`); NT-Xent gathers the embeddings
  with their gradient (:func:`gather_rows`); means over masked frames divide by the global count
  (:func:`batch_denominator`, :func:`mean_loss`), scaled by W so that DDP's gradient *average*
  is the gradient of the global mean;
- **state outside the model** (k-means / RVQ teachers, EMA teachers, schedules) is a function of
  identical inputs on every rank; after :meth:`Objective.prepare` rank 0's whole objective state
  is broadcast (:func:`broadcast_state`) so that it is identical by construction.

What stays per rank, and therefore differs from one process with the global batch: dropout and
anything else drawn from torch's *global* RNG, which is reseeded identically on every rank
(Lightning's convention), so rank r draws the dropout masks rank 0 draws; batch-level *metrics*
that are not losses (accuracies, ``pos_sim``...) are per-rank means averaged over ranks, which
equals the global mean only when the ranks hold equally many masked frames.  With dropout 0 a
run of W processes x batch b equals one process x batch W b up to float rounding (measured:
``tests/train/test_ddp.py``).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from musiclens.errors import ConfigError, TrainingError
from musiclens.extract.distributed import SPAWNED_ENV, launcher_env, process_group, spawn

__all__ = ["Shard", "current_shard", "sharded", "gather_rows", "local_rows", "global_sum", "batch_denominator",
           "batch_mean", "mean_loss", "pad_to_global", "broadcast_state", "Session", "session", "global_rank",
           "process_count", "needs_spawn", "spawn_training", "lightning_strategy", "cluster_plugins"]

logger = logging.getLogger(__name__)

#: Lightning strategies that start their processes their own way (musiclens starts them: use ``ddp``).
_REFUSED = ("ddp_spawn", "ddp_fork", "ddp_notebook", "dp")
#: How long ranks wait for each other (rank 0 may prepare the run directory or render RSA stimuli meanwhile).
TIMEOUT_S = 3600.0


# ------------------------------------------------------------------------------ the global batch
@dataclass(frozen=True)
class Shard:
    """This process's part of the global batch: ``rank`` of ``world_size`` equal slices."""

    rank: int = 0
    world_size: int = 1


_SHARD: contextvars.ContextVar[Shard] = contextvars.ContextVar("musiclens_train_shard", default=Shard())


def current_shard() -> Shard:
    """The shard of the training step running now (``Shard()``, the whole batch, anywhere else)."""
    return _SHARD.get()


@contextlib.contextmanager
def sharded(rank: int, world_size: int) -> Iterator[Shard]:
    """Mark the block as a training step on ``rank`` of ``world_size`` (the engine does this)."""
    token = _SHARD.set(Shard(int(rank), int(world_size)))
    try:
        yield _SHARD.get()
    finally:
        _SHARD.reset(token)


def gather_rows(x: torch.Tensor, *, grad: bool = False) -> torch.Tensor:
    """The global batch of ``x`` (this rank's rows ``[n, ...]``): every rank's rows, in rank order.

    ``grad=True`` keeps the gradient path (``torch.distributed.nn.functional.all_gather``, whose
    backward sums the gradients of all ranks into each rank's rows).  Identity outside a shard.
    """
    s = current_shard()
    if s.world_size == 1:
        return x
    import torch.distributed as dist

    if grad:
        from torch.distributed.nn.functional import all_gather

        return torch.cat(list(all_gather(x.contiguous())), dim=0)
    src = x.detach()
    kind = src.dtype
    if kind == torch.bool:
        src = src.to(torch.uint8)
    parts = [torch.empty_like(src) for _ in range(s.world_size)]
    dist.all_gather(parts, src.contiguous())
    out = torch.cat(parts, dim=0)
    return out.to(kind) if kind == torch.bool else out


def local_rows(x: Any) -> Any:
    """This rank's rows of a global-batch array or tensor (``[W n, ...] -> [n, ...]``)."""
    s = current_shard()
    if s.world_size == 1:
        return x
    n = x.shape[0]
    if n % s.world_size:
        raise TrainingError(f"a global batch of {n} rows does not split into {s.world_size} equal shards")
    k = n // s.world_size
    return x[s.rank * k:(s.rank + 1) * k]


def global_sum(x: torch.Tensor) -> torch.Tensor:
    """``x`` summed over the ranks (no gradient); ``x`` itself outside a shard."""
    if current_shard().world_size == 1:
        return x
    import torch.distributed as dist

    out = x.detach().clone()
    dist.all_reduce(out)
    return out


def batch_denominator(count: torch.Tensor | int | float) -> torch.Tensor | int | float:
    """The denominator that makes ``local_sum / d`` a term of the global mean under DDP.

    One process: ``count``.  In a shard: the global count divided by the number of ranks, so that
    the ranks' losses ``local_sum * W / global_count`` *average* (as DDP averages gradients) to
    ``global_sum / global_count``.
    """
    s = current_shard()
    if s.world_size == 1:
        return count
    t = count.detach().double() if isinstance(count, torch.Tensor) else torch.tensor(float(count), dtype=torch.float64)
    return (global_sum(t) / s.world_size).float()


def batch_mean(values: torch.Tensor) -> torch.Tensor:
    """``values.mean()``; in a shard, this rank's term of the mean over every rank's ``values``
    (``values.sum()`` over :func:`batch_denominator` of the element count)."""
    if current_shard().world_size == 1:
        return values.mean()
    d = batch_denominator(values.numel())
    return values.sum() / (d.to(values.device) if isinstance(d, torch.Tensor) else d)


def mean_loss(fn: Callable[..., torch.Tensor], *args: Any, **kwargs: Any) -> torch.Tensor:
    """``fn(*args, **kwargs)`` (a loss with ``reduction="mean"``) as a mean over the global batch.

    One process: ``fn`` itself.  In a shard: ``fn(..., reduction="none")`` summed and divided by
    :func:`batch_denominator` of its element count.
    """
    if current_shard().world_size == 1:
        return fn(*args, **kwargs)
    return batch_mean(fn(*args, reduction="none", **kwargs))


def _global_max(n: int, device: torch.device) -> int:
    import torch.distributed as dist

    t = torch.tensor([int(n)], dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def pad_to_global(batch: Mapping[str, Any]) -> dict[str, Any]:
    """Zero-pad ``audio`` (last axis) and the frame rolls (frame axis) to the global batch's longest clip."""
    out = dict(batch)
    if current_shard().world_size == 1:
        return out
    audio = out["audio"]
    n = _global_max(audio.shape[-1], audio.device)
    if n > audio.shape[-1]:
        out["audio"] = torch.nn.functional.pad(audio, (0, n - audio.shape[-1]))
    for key in ("piano_roll", "onset_roll"):
        roll = out.get(key)
        if isinstance(roll, torch.Tensor):
            t = _global_max(roll.shape[-2], roll.device)
            if t > roll.shape[-2]:
                out[key] = torch.nn.functional.pad(roll, (0, 0, 0, t - roll.shape[-2]))
    return out


def broadcast_state(module: torch.nn.Module) -> None:
    """Copy rank 0's parameters and buffers into every rank (in place); nothing in one process."""
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_initialized() or dist.get_world_size() == 1:
        return
    for tensor in module.state_dict().values():
        if isinstance(tensor, torch.Tensor):
            dist.broadcast(tensor, src=0)


# ------------------------------------------------------------------------------ processes
def process_count(trainer: Mapping[str, Any]) -> int:
    """Processes per node of a ``trainer`` config section (``devices`` resolved as Lightning does)."""
    devices, acc = trainer["devices"], str(trainer["accelerator"])
    cuda = acc in ("gpu", "cuda") or (acc == "auto" and torch.cuda.is_available())
    if isinstance(devices, list | tuple):
        return len(devices)
    if devices == "auto" or devices == -1:
        return max(1, torch.cuda.device_count()) if cuda else 1
    return int(devices)


def _world(trainer: Mapping[str, Any]) -> int:
    return process_count(trainer) * int(trainer["num_nodes"])


def global_rank() -> int:
    """This process's global rank: the process group's when one exists, else the launcher's (0 alone)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return int(dist.get_rank())
    env = launcher_env()
    return env.rank if env is not None else 0


def _check_strategy(trainer: Mapping[str, Any]) -> None:
    strategy = str(trainer["strategy"])
    if strategy in _REFUSED:
        raise ConfigError(f"trainer.strategy {strategy!r} starts processes Lightning's way; musiclens starts them "
                          "itself (or a launcher does): use strategy 'ddp' (or 'auto')")


def needs_spawn(trainer: Mapping[str, Any]) -> bool:
    """True when the config asks for several processes and nothing started them yet (start them here)."""
    if _world(trainer) == 1:
        return False
    _check_strategy(trainer)
    import torch.distributed as dist

    return launcher_env() is None and not (dist.is_available() and dist.is_initialized())


def spawn_training(fn: Callable[..., Any], config: Any, *, trainer: Mapping[str, Any], **kwargs: Any) -> Any:
    """``fn(config, **kwargs)`` in ``devices`` new processes (one node of ``num_nodes``); rank 0's result."""
    n, nodes = process_count(trainer), int(trainer["num_nodes"])
    if nodes > 1 and "NODE_RANK" not in os.environ:
        raise ConfigError(f"trainer.num_nodes is {nodes}: start `musiclens train` on every node with NODE_RANK, "
                          "WORLD_SIZE, MASTER_ADDR and MASTER_PORT set, or use torchrun / srun (see "
                          "examples/launch/)")
    if nodes > 1:
        os.environ.setdefault("WORLD_SIZE", str(n * nodes))
    cuda = str(trainer["accelerator"]) in ("gpu", "cuda") or (
        str(trainer["accelerator"]) == "auto" and torch.cuda.is_available())
    logger.info("training on %d processes (%s)", n, "NCCL" if cuda else "gloo")
    return spawn(fn, (config,), kwargs, nprocs=n, what="training", error=TrainingError,
                 threads=None if not cuda else 1)


def lightning_strategy(trainer: Mapping[str, Any], objective: Any = None) -> str:
    """The strategy Lightning gets: ``ddp`` for ``auto`` with several processes (with
    ``find_unused_parameters`` when the objective says some parameter gets no gradient), else the config's."""
    strategy = str(trainer["strategy"])
    if _world(trainer) == 1 or strategy not in ("auto", "ddp"):
        return strategy
    return "ddp_find_unused_parameters_true" if getattr(objective, "ddp_unused_parameters", False) else "ddp"


def cluster_plugins(trainer: Mapping[str, Any]) -> list[Any]:
    """Lightning's cluster environment for processes musiclens started (others: Lightning detects it)."""
    if _world(trainer) > 1 and os.environ.get(SPAWNED_ENV) == "1":
        from lightning.pytorch.plugins.environments import LightningEnvironment

        return [LightningEnvironment()]
    return []


class RankZeroFailure(TrainingError):
    """What the other ranks raise when rank 0 failed to prepare the run (rank 0 raises the cause)."""

    peer_failure = True


@dataclass
class Session:
    """This process's place in the training group (``rank`` 0 of 1 alone)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    def from_rank_zero(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` run on rank 0, its result (or its failure) sent to every rank."""
        if self.world_size == 1:
            return fn()
        import torch.distributed as dist

        payload: list[Any] = [None]
        if self.rank == 0:
            try:
                payload = [("ok", fn())]
            except BaseException as err:
                dist.broadcast_object_list([("error", f"{type(err).__name__}: {err}")], src=0)
                raise
        dist.broadcast_object_list(payload, src=0)
        kind, value = payload[0]
        if kind == "error":
            raise RankZeroFailure(f"rank 0 could not prepare the run: {value}")
        return value

    def barrier(self) -> None:
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier()


@contextlib.contextmanager
def session(trainer: Mapping[str, Any]) -> Iterator[Session]:
    """The process group of a launched or spawned rank (joined here, left afterwards), or a lone session."""
    world = _world(trainer)
    if world == 1:
        yield Session()
        return
    _check_strategy(trainer)
    env = launcher_env()
    import torch.distributed as dist

    if env is None:
        if not (dist.is_available() and dist.is_initialized()):
            raise TrainingError("several training processes but no launcher environment and no process group")
        from musiclens.extract.distributed import LaunchEnv

        env = LaunchEnv(rank=dist.get_rank(), world_size=dist.get_world_size(),
                        local_rank=int(os.environ.get("LOCAL_RANK", 0)), master_addr="", master_port=0, source="group")
    if env.world_size != world:
        raise ConfigError(f"the config asks for {world} processes (trainer.devices x trainer.num_nodes) but "
                          f"{env.world_size} were started; make them agree")
    acc = str(trainer["accelerator"])
    cuda = acc in ("gpu", "cuda") or (acc == "auto" and torch.cuda.is_available())
    device_id = None
    if cuda:
        devices = trainer["devices"]
        index = devices[env.local_rank] if isinstance(devices, list | tuple) else env.local_rank
        torch.cuda.set_device(int(index))
        device_id = torch.device("cuda", int(index))
    with process_group(env, backend="nccl" if cuda else "gloo", timeout_s=TIMEOUT_S, device_id=device_id):
        yield Session(rank=env.rank, world_size=env.world_size, local_rank=env.local_rank)
