"""Several processes, one extraction: the stimuli split across a ``torch.distributed`` process group.

``musiclens extract ... --devices N`` (``extract_to_store(..., devices=N)``) starts ``N`` processes
on this machine.  Under a launcher every launched process is one rank (``--devices auto``, the
command line's default, or ``devices="env"``):

- ``torchrun`` (one node or several): ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
  ``MASTER_PORT``; the same variables set by hand for each process work the same way;
- SLURM (``srun`` with more than one task): ``SLURM_PROCID``, ``SLURM_NTASKS``, ``SLURM_LOCALID``;
  the address is ``MASTER_ADDR`` or the first host of ``SLURM_JOB_NODELIST``, the port
  ``MASTER_PORT`` or 15000 + the last four digits of ``SLURM_JOB_ID`` (Lightning's choices, so
  training and extraction meet at the same place).

``N`` local processes on one node of several (``NODE_RANK`` k, ``WORLD_SIZE`` processes in all,
``MASTER_ADDR``/``MASTER_PORT`` of node 0) take global ranks ``k N .. k N + N - 1``.  Ranks on
several nodes need a file system they all see (the shards and the merged store are folders).

How the work is split: the stimuli are cut into the store's chunks (``chunk_size`` rows); rank r of W
takes chunks ``[r K / W, (r + 1) K / W)`` of the K chunks, a contiguous, chunk-aligned row range
(:func:`shard_ranges`).  Each rank extracts its range into a shard store
``<out>.shards/rows-<lo>-<hi>`` (resumable like any store), the ranks meet (``all_gather_object``
of their outcome over gloo), and rank 0 joins the shards with
:func:`~musiclens.extract.store.merge_stores` into ``<out>`` and deletes ``<out>.shards``.  Every
chunk holds the rows it holds in one process, so every forward pass sees the same clips, and the
merged arrays are byte-identical to a one-process store's (on CPU: with the same number of torch
threads per process; the spawned processes use ``cpu_count // N`` each).  The merged store carries
the one-process request and key: a finished store is found finished whichever way it is run again.

Failures: a rank that raises reports it when the ranks meet, and every rank fails with an
:class:`~musiclens.errors.ExtractionError` naming it; a rank that dies (killed, out of memory)
breaks the others' connections and they fail the same way; with ``devices=N`` the parent stops
the remaining processes and raises.  Nothing is merged then -- ``<out>`` does not exist, finished
shards stay in ``<out>.shards`` -- and running the same command again resumes: finished shards
are reused, a partial one resumes at its first missing chunk.

:func:`spawn` (start N local processes, collect rank 0's result, turn a failure into one error)
and :func:`launcher_env` are shared with data-parallel training (:mod:`musiclens.train.distributed`).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import pickle
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from musiclens.errors import ConfigError, ExtractionError, MusicLensError, StoreError

__all__ = ["LaunchEnv", "launcher_env", "resolve_devices", "shard_ranges", "spawn", "process_group",
           "extract_distributed", "free_port", "SPAWNED_ENV"]

logger = logging.getLogger(__name__)

#: Set to ``"1"`` in the processes :func:`spawn` starts.
SPAWNED_ENV = "MUSICLENS_SPAWNED"
#: How long ranks wait for each other when they meet (the slowest shard may finish long after the fastest).
DEFAULT_TIMEOUT_S = 24 * 3600.0


@dataclass(frozen=True)
class LaunchEnv:
    """Where this process stands in a group of processes started by a launcher.

    Attributes
    ----------
    rank, world_size
        Global rank and number of processes.
    local_rank
        Rank among the processes of this node (picks the GPU).
    master_addr, master_port
        Where rank 0 hosts the rendezvous.
    source
        ``"env"`` (torchrun or by hand) or ``"slurm"``.
    """

    rank: int
    world_size: int
    local_rank: int
    master_addr: str
    master_port: int
    source: str


def _int_env(name: str, default: int | None = None) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"environment variable {name}={value!r} must be an integer") from None


def slurm_root_node(nodelist: str) -> str:
    """The first host of a SLURM node list (``"node[03-05],gpu7"`` -> ``"node03"``), as Lightning reads it."""
    nodes = re.sub(r"\[(.*?)[,-].*\]", "\\1", nodelist)
    nodes = re.sub(r"\[(.*?)\]", "\\1", nodes)
    return nodes.split(" ")[0].split(",")[0]


def launcher_env() -> LaunchEnv | None:
    """The process group a launcher placed this process in, or ``None`` (a lone process).

    ``RANK`` and ``WORLD_SIZE`` (torchrun, or set by hand) come first, then SLURM's task variables;
    a group of one process is ``None``.
    """
    env = os.environ
    if "RANK" in env and "WORLD_SIZE" in env:
        world = _int_env("WORLD_SIZE", 1) or 1
        if world > 1:
            rank = int(_int_env("RANK", 0) or 0)
            if not 0 <= rank < world:
                raise ConfigError(f"RANK={rank} is outside 0..WORLD_SIZE-1 ({world - 1})")
            if "MASTER_ADDR" not in env or "MASTER_PORT" not in env:
                raise ConfigError("RANK and WORLD_SIZE are set but MASTER_ADDR or MASTER_PORT is not: set both to the "
                                  "address of rank 0 and a free port on it (torchrun sets them)")
            return LaunchEnv(rank=rank, world_size=world, local_rank=int(_int_env("LOCAL_RANK", 0) or 0),
                             master_addr=env["MASTER_ADDR"], master_port=int(_int_env("MASTER_PORT") or 0),
                             source="env")
    if "SLURM_PROCID" in env and (_int_env("SLURM_NTASKS", 1) or 1) > 1:
        world = int(_int_env("SLURM_NTASKS", 1) or 1)
        addr = env.get("MASTER_ADDR") or slurm_root_node(env.get("SLURM_JOB_NODELIST", env.get("SLURM_NODELIST",
                                                                                          "127.0.0.1")))
        port = _int_env("MASTER_PORT")
        if port is None:
            job = env.get("SLURM_JOB_ID")
            port = int(job[-4:]) + 15000 if job and job[-4:].isdigit() else 12910
        return LaunchEnv(rank=int(_int_env("SLURM_PROCID", 0) or 0), world_size=world,
                         local_rank=int(_int_env("SLURM_LOCALID", 0) or 0), master_addr=addr, master_port=int(port),
                         source="slurm")
    return None


def resolve_devices(devices: int | str) -> int | str:
    """``1``, a process count ``N > 1`` (start them here) or ``"env"`` (this process is one launched rank).

    ``"auto"`` is ``"env"`` under a launcher (:func:`launcher_env`), else 1.
    """
    env = launcher_env()
    if isinstance(devices, str):
        text = devices.strip().lower()
        if text == "auto":
            return "env" if env is not None else 1
        if text == "env":
            if env is None:
                raise ConfigError("devices='env' needs a launcher's environment (torchrun, srun with several tasks, "
                                  "or RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT); none is set: give a process count")
            return "env"
        if not text.isdigit():
            raise ConfigError(f"devices must be a process count, 'auto' or 'env', got {devices!r}")
        devices = int(text)
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
        raise ConfigError(f"devices must be a process count >= 1, 'auto' or 'env', got {devices!r}")
    if devices > 1 and env is not None:
        raise ConfigError(f"this process is rank {env.rank} of {env.world_size} started by a launcher ({env.source}); "
                          f"devices={devices} would start {devices} more processes per rank: use devices 'auto' or "
                          "'env' (each launched process is one rank)")
    return int(devices)


def shard_ranges(n: int, chunk_size: int, world_size: int) -> list[tuple[int, int]]:
    """Row range ``(lo, hi)`` of every rank: whole chunks of ``chunk_size`` rows, as evenly as possible
    (a rank may get an empty range when there are fewer chunks than ranks)."""
    k = -(-int(n) // int(chunk_size))
    out = []
    for r in range(world_size):
        a, b = r * k // world_size, (r + 1) * k // world_size
        out.append((min(a * chunk_size, n), min(b * chunk_size, n)))
    return out


def free_port() -> int:
    """A TCP port free on this machine now (for a rendezvous on 127.0.0.1)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------------ spawning
def _watch_parent(parent: int) -> None:
    """Exit when the parent is gone (killed): a spawned rank never runs on as an orphan."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(1)


def _dump(path: str, value: tuple[str, Any, str]) -> None:
    try:
        data = pickle.dumps(value)
    except Exception:  # an unpicklable exception or result: keep its text
        kind, obj, text = value
        data = pickle.dumps((kind, None, text or repr(obj)))
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _child(fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any], env: Mapping[str, str],
           result: str, parent: int, threads: int | None, log_level: int) -> None:
    os.environ.update(env)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    logging.basicConfig(level=log_level, stream=sys.stderr,
                        format=f"[rank {env['RANK']}] %(levelname)s %(name)s: %(message)s")
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    try:
        value = fn(*args, **dict(kwargs))
    except BaseException as err:  # noqa: BLE001 - reported to the parent, then this process exits
        text = traceback.format_exc()
        _dump(result, ("error", err, text))
        sys.stderr.write(text)
        sys.stderr.flush()
        os._exit(1)
    _dump(result, ("ok", value if env["LOCAL_RANK"] == "0" else None, ""))


def _is_connection_error(err: BaseException | None) -> bool:
    """An error a rank raises because *another* rank failed (a lost connection, or a peer's report)."""
    if err is None:   # an error that could not be sent whole: its text is the cause
        return False
    try:
        import torch.distributed as dist

        if isinstance(err, dist.DistError):
            return True
    except (ImportError, AttributeError):  # pragma: no cover
        pass
    return bool(getattr(err, "peer_failure", False)) or "Connection closed by peer" in str(err) \
        or "Connection reset by peer" in str(err)


def spawn(fn: Callable[..., Any], args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None, *,
          nprocs: int, what: str, error: type[MusicLensError] = ExtractionError, threads: int | None = None) -> Any:
    """Run ``fn(*args, **kwargs)`` in ``nprocs`` new processes (start method ``spawn``), one rank each.

    Each process gets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``NODE_RANK``,
    ``MASTER_ADDR``, ``MASTER_PORT`` and :data:`SPAWNED_ENV`; on a node of several
    (``NODE_RANK``/``WORLD_SIZE`` set here) its global rank is ``NODE_RANK * nprocs + local rank``.
    ``threads`` sets torch's intra-op threads per process (default ``cpu_count // nprocs`` on CPU).
    A process exits when this one dies.

    Returns
    -------
    Any
        What ``fn`` returned in local rank 0.

    Raises
    ------
    MusicLensError
        The exception a rank raised (the first real cause, not the lost connections it left
        the others with), re-raised here with a note naming the rank; ``error`` when a rank
        died without one (a kill, out of memory).
    """
    import multiprocessing as mp

    node_rank = int(_int_env("NODE_RANK", 0) or 0)
    world = int(_int_env("WORLD_SIZE", nprocs) or nprocs)
    if world % nprocs or not 0 <= node_rank * nprocs < world:
        raise ConfigError(f"WORLD_SIZE={world} and NODE_RANK={node_rank} do not fit {nprocs} processes per node: "
                          f"WORLD_SIZE must be the number of nodes times {nprocs}")
    if world > nprocs and ("MASTER_ADDR" not in os.environ or "MASTER_PORT" not in os.environ):
        raise ConfigError("several nodes (WORLD_SIZE > processes per node) need MASTER_ADDR and MASTER_PORT: the "
                          "address of node 0 and a free port on it")
    addr = os.environ.get("MASTER_ADDR", "127.0.0.1")
    port = int(_int_env("MASTER_PORT") or free_port())
    if threads is None:
        threads = max(1, (os.cpu_count() or 1) // nprocs)
    ctx = mp.get_context("spawn")
    tmp = tempfile.mkdtemp(prefix="musiclens-ranks-")
    procs: list[Any] = []
    try:
        for local in range(nprocs):
            env = {"RANK": str(node_rank * nprocs + local), "WORLD_SIZE": str(world), "LOCAL_RANK": str(local),
                   "LOCAL_WORLD_SIZE": str(nprocs), "NODE_RANK": str(node_rank), "MASTER_ADDR": addr,
                   "MASTER_PORT": str(port), SPAWNED_ENV: "1"}
            p = ctx.Process(target=_child, args=(fn, tuple(args), dict(kwargs or {}), env,
                                                 os.path.join(tmp, f"rank-{local}.pkl"), os.getpid(), threads,
                                                 logging.getLogger().getEffectiveLevel()),
                            name=f"musiclens-{what}-rank-{local}")
            try:
                p.start()
            except (pickle.PicklingError, TypeError, AttributeError, RuntimeError) as err:
                if procs or "pickl" not in str(err).lower() and "serializ" not in str(err).lower():
                    raise
                raise ConfigError(f"cannot start the {what} processes: their arguments do not pickle ({err}); "
                                  "pass a model name or path rather than a built model object") from err
            procs.append(p)
        failed: list[int] = []   # the processes that ended badly before the others were stopped
        while True:
            codes = [p.exitcode for p in procs]
            if any(c not in (None, 0) for c in codes):
                failed = [r for r, c in enumerate(codes) if c not in (None, 0)]
                break
            if all(c == 0 for c in codes):
                break
            procs[[c is None for c in codes].index(True)].join(0.1)
    finally:
        for p in procs:   # on failure (or an interrupt here): stop the others
            if p.exitcode is None:
                p.terminate()
        for p in procs:
            p.join(10)
            if p.exitcode is None:
                p.kill()
                p.join()
    results: list[tuple[str, Any, str] | None] = []
    for local in range(nprocs):
        path = os.path.join(tmp, f"rank-{local}.pkl")
        try:
            with open(path, "rb") as fh:
                results.append(pickle.load(fh))
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
            results.append(None)
    shutil.rmtree(tmp, ignore_errors=True)
    if not failed:
        first = results[0]
        return first[1] if first is not None else None
    causes = [(r, res) for r, res in enumerate(results) if res is not None and res[0] == "error"]
    real = [(r, res) for r, res in causes if not _is_connection_error(res[1])]
    if real:
        rank, (_, err, text) = real[0]
        if isinstance(err, BaseException):
            err.add_note(f"(raised in {what} process rank {node_rank * nprocs + rank}; its traceback:\n{text})")
            raise err
        raise error(f"{what} process rank {node_rank * nprocs + rank} failed:\n{text}")
    dead = [r for r in failed if results[r] is None] or failed
    rank, code = dead[0], procs[dead[0]].exitcode
    how = f"killed by signal {-code}" if isinstance(code, int) and code < 0 else f"exit code {code}"
    detail = f"; the others then failed: {causes[0][1][2].strip().splitlines()[-1]}" if causes else ""
    raise error(f"{what} process rank {node_rank * nprocs + rank} died ({how}) without an error of its own{detail}. "
                "Nothing was finished by the group; run the same command again to resume")


@contextlib.contextmanager
def process_group(env: LaunchEnv, *, backend: str = "gloo", timeout_s: float = DEFAULT_TIMEOUT_S,
                  device_id: Any = None) -> Iterator[bool]:
    """The default process group of ``env`` (created, and destroyed afterwards, unless one exists).

    Yields whether it was created here.
    """
    import torch.distributed as dist

    if dist.is_initialized():
        if dist.get_world_size() != env.world_size or dist.get_rank() != env.rank:
            raise ConfigError(f"a process group of {dist.get_world_size()} processes (this one rank "
                              f"{dist.get_rank()}) exists, but the environment says rank {env.rank} of "
                              f"{env.world_size}")
        yield False
        return
    os.environ["MASTER_ADDR"] = env.master_addr
    os.environ["MASTER_PORT"] = str(env.master_port)
    extra = {"device_id": device_id} if device_id is not None else {}
    logger.info("joining process group: rank %d of %d at %s:%d (%s)", env.rank, env.world_size, env.master_addr,
                env.master_port, backend)
    dist.init_process_group(backend, init_method="env://", rank=env.rank, world_size=env.world_size,
                            timeout=datetime.timedelta(seconds=float(timeout_s)), **extra)
    try:
        yield True
    finally:
        with contextlib.suppress(Exception):
            dist.destroy_process_group()


class PeerFailure(ExtractionError):
    """Another rank failed: this one stops without finishing (the cause is in the message)."""

    peer_failure = True


def _meet(stage: str, status: tuple[str, str], *, rank: int, where: Path) -> None:
    """All ranks exchange ``("ok" | "error", message)``; any error fails every rank, naming the ranks."""
    import torch.distributed as dist

    gathered: list[Any] = [None] * dist.get_world_size()
    try:
        dist.all_gather_object(gathered, status)
    except Exception as err:  # a rank died: its connections broke
        raise PeerFailure(
            f"rank {rank}: lost contact with another rank during {stage} ({type(err).__name__}: {err}); it died or "
            f"was killed. Nothing was merged; run the same command again to resume (finished shards are kept in "
            f"{where})") from err
    bad = [(r, msg) for r, (kind, msg) in enumerate(gathered) if kind != "ok"]
    if bad and status[0] == "ok":
        listed = "; ".join(f"rank {r}: {msg}" for r, msg in bad)
        raise PeerFailure(f"distributed extraction failed during {stage} ({listed}). Nothing was merged; fix the "
                          f"cause and run the same command again to resume (finished shards are kept in {where})")


def _rank_device(device: str, local_rank: int) -> str:
    if device in ("cuda", "auto"):
        import torch

        if torch.cuda.is_available():
            return f"cuda:{local_rank % torch.cuda.device_count()}"
        if device == "cuda":
            raise ConfigError("device 'cuda' requested but CUDA is not available; use --device cpu")
        return "cpu"
    return device


def _extract_rank(model: Any, stimuli: Any, out: Path, kwargs: dict[str, Any], timeout_s: float) -> Path:
    """One rank of a distributed extraction (see the module docstring)."""
    from musiclens.extract.runner import _extract_range, _load_stimuli, extraction_request
    from musiclens.extract.store import FeatureStore, merge_stores, request_key
    from musiclens.fsutil import check_out, mark_output

    env = launcher_env()
    if env is None:
        raise ConfigError("a distributed extraction rank needs a launcher's environment (RANK, WORLD_SIZE, ...)")
    out = Path(out)
    shards_dir = out.with_name(out.name + ".shards")
    _, _, ids, set_hash = _load_stimuli(stimuli, kwargs["sample_rate"], kwargs["stimulus_ids"])
    n = len(ids)
    request = extraction_request(model, options=kwargs["options"], randomize=kwargs["randomize"], seed=kwargs["seed"],
                                 layers=kwargs["layers"], pooling=kwargs["pooling"], window_s=kwargs["window_s"],
                                 hop_s=kwargs["hop_s"], lo=0, hi=n, set_hash=set_hash,
                                 batch_size=kwargs["batch_size"], chunk_size=kwargs["chunk_size"])
    key = request_key(request)
    if FeatureStore.is_complete(out, key=key):
        logger.info("%s is already a finished store of this request; nothing to do", out)
        return out
    ranges = shard_ranges(n, int(kwargs["chunk_size"]), env.world_size)
    with process_group(env, timeout_s=timeout_s):
        rank = env.rank
        status: tuple[str, str] = ("ok", "")
        if rank == 0:
            try:
                check_out(out, "features")
                if out.exists() and not kwargs["overwrite"]:
                    raise StoreError(f"{out} already exists and was made by a different request (model, stimuli, "
                                     "layers, pooling or options differ); choose another --out or pass --overwrite")
                check_out(shards_dir, "features")
                shards_dir.mkdir(parents=True, exist_ok=True)
                mark_output(shards_dir, "features")
            except Exception as err:
                status = ("error", f"{type(err).__name__}: {err}")
                _meet("setup", status, rank=rank, where=shards_dir)
                raise
        _meet("setup", status, rank=rank, where=shards_dir)
        lo, hi = ranges[rank]
        shard = shards_dir / f"rows-{lo:07d}-{hi:07d}"
        if lo < hi:
            try:
                _extract_range(model, stimuli, shard, start=lo, stop=hi,
                               **{**kwargs, "overwrite": True, "device": _rank_device(kwargs["device"], env.local_rank),
                                  "progress": bool(kwargs["progress"]) and rank == 0})
            except Exception as err:
                _meet("extraction", ("error", f"{type(err).__name__}: {err}"), rank=rank, where=shards_dir)
                raise
        _meet("extraction", ("ok", ""), rank=rank, where=shards_dir)
        if rank == 0:
            shards = [shards_dir / f"rows-{a:07d}-{b:07d}" for a, b in ranges if a < b]
            try:
                merge_stores(shards, out, overwrite=bool(kwargs["overwrite"]), manifest={
                    "key": key, "request": request, "range": [0, n], "merged_from": None,
                    "distributed": {"world_size": env.world_size, "launcher": env.source,
                                    "shards": [[a, b] for a, b in ranges if a < b]}})
                shutil.rmtree(shards_dir, ignore_errors=True)
            except Exception as err:
                _meet("merge", ("error", f"{type(err).__name__}: {err}"), rank=rank, where=shards_dir)
                raise
        _meet("merge", ("ok", ""), rank=rank, where=shards_dir)
    logger.info("rank %d of %d: %s finished", env.rank, env.world_size, out)
    return out


def extract_distributed(model: Any, stimuli: Any, out: str | os.PathLike[str], *, devices: int | str,
                        timeout_s: float = DEFAULT_TIMEOUT_S, **kwargs: Any) -> Path:
    """:func:`~musiclens.extract.runner.extract_to_store` over several processes (see the module docstring).

    Parameters
    ----------
    devices
        ``N > 1``: start ``N`` processes here; ``"env"``: this process is one rank of a launched group.
    timeout_s
        How long ranks wait for each other when they meet.
    **kwargs
        The other keyword arguments of ``extract_to_store`` (all of them, as it passes them).
    """
    from musiclens.fsutil import check_out

    out = Path(out)
    if devices == "env":
        return _extract_rank(model, stimuli, out, kwargs, timeout_s)
    check_out(out, "features")   # before any process starts
    spawn(_extract_rank, (model, stimuli, out, kwargs, timeout_s), nprocs=int(devices), what="extraction",
          error=ExtractionError)
    return out
