"""The Lightning engine: one :class:`~musiclens.train.base.Objective`, trained resumably in a run directory.

:func:`train` is the public entry point (``musiclens train`` wraps it)::

    RUN_DIR/config.yaml            the resolved config (a different config in the same folder is refused)
    RUN_DIR/manifest.json          versions, seeds, corpus content hashes, steps, timings, finished flag
    RUN_DIR/checkpoints/last.ckpt  Lightning checkpoint (every ``trainer.checkpoint_every_n_steps`` and at the end)
    RUN_DIR/logs/                  metrics.csv (default) or TensorBoard logs
    RUN_DIR/backbone/              the trained backbone, a musiclens checkpoint (loads with
                                   musiclens.extract.checkpoint.checkpoint_extractor / ``musiclens extract``)
    RUN_DIR/backbone-step0001000/  with ``export.every_checkpoint``
    RUN_DIR/rsa_curve.csv          with ``rsa_callback.every_n_steps`` (see :mod:`musiclens.train.callbacks`)

Exact resumption: the global RNG is reseeded from ``(seed, step)`` before every training batch,
the objective gets ``step_generator(seed, step)``, and the data stream is a pure function of
``(seed, micro-batch)`` (:mod:`musiclens.train.data`), so a run killed after checkpoint ``k`` and
resumed equals an uninterrupted run (CPU, ``trainer.deterministic``).  ``Objective.prepare`` runs
once before the first step; its result lives in the objective's ``state_dict`` and a flag buffer
marks it done, so a resumed run does not prepare again.

Kills: ``last.ckpt`` is replaced atomically (a temporary file next to it, synced and renamed), and
only once everything its step logs and writes is on disk (validation, callbacks' files, every
``metrics.csv`` row); it records how many ``metrics.csv`` rows there were.  A run resumed from it
cuts ``metrics.csv`` back to those rows and logs every later one again, so a run killed at any
moment (SIGKILL included) and resumed ends with each row exactly once (:mod:`musiclens.train.checkpointing`).

Checkpoint safety: ``last.ckpt`` is resumed with ``torch.load(weights_only=True)`` (Lightning's
``fit(..., weights_only=True)``): it holds only tensors and primitive containers (no hyper-parameter
objects are saved).  Only the run directory's own ``last.ckpt`` is ever loaded, and only after its
``config.yaml`` matched; a checkpoint that needs a full unpickle is refused with an error.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import shutil
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import yaml

from musiclens.errors import CheckpointError, ConfigError, TrainingError
from musiclens.fsutil import (MARKER_FILE, atomic_dir, atomic_write_json, atomic_write_text, check_out, mark_output,
                              remove_dead_temporaries)
from musiclens.provenance import Timer, environment, hash_bytes
from musiclens.train.bar import evaluate_bar, resolve_bar
from musiclens.train import distributed as ddp
from musiclens.train.callbacks import PlainProgress, _ExportCallback
from musiclens.train.checkpointing import (MetricsCSV, _AtomicCheckpointIO, _checkpoint_info, _LastCheckpoint,
                                           _resume_metrics)
from musiclens.train.base import Objective, step_generator
from musiclens.train.config import check_against_objective, config_text, load_train_config, objective_builder
from musiclens.train.data import TrainDataModule

__all__ = ["ObjectiveModule", "TrainResult", "train", "build_objective", "lr_factor", "CHECKPOINT_DIR"]

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
_RUN_OUTPUTS = ("checkpoints", "logs", "backbone", "rsa_curve.csv", "rsa_stimuli", "manifest.json")


def lr_factor(step: int, *, warmup_steps: int, max_steps: int, schedule: str, min_ratio: float) -> float:
    """Learning-rate multiplier after ``step`` optimizer steps: linear warm-up, then the schedule.

    ``cosine`` and ``linear`` decay from 1 at the end of warm-up to ``min_ratio`` at ``max_steps``;
    ``constant`` stays at 1.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    span = max(1, max_steps - warmup_steps)
    t = min(1.0, max(0.0, (step - warmup_steps) / span))
    decay = 0.5 * (1.0 + math.cos(math.pi * t)) if schedule == "cosine" else 1.0 - t
    return min_ratio + (1.0 - min_ratio) * decay


def _seed_of(seed: int, step: int, salt: int) -> int:
    return int(step_generator(int(seed) * 31 + salt, step).initial_seed())


class ObjectiveModule(pl.LightningModule):
    """A :class:`LightningModule` around an objective.

    Parameters
    ----------
    objective
        The objective (owns the backbone).
    optim
        The ``optim`` config section.
    seed
        Run seed (per-step reseeding).
    prepare_batches
        ``() -> iterator of training batches`` given to :meth:`Objective.prepare` before the first step.
    """

    def __init__(self, objective: Objective, *, optim: Mapping[str, Any], seed: int,
                 prepare_batches: Callable[[], Iterator[Any]] | None = None) -> None:
        super().__init__()
        self.objective = objective
        self.optim_cfg = dict(optim)
        self.seed = int(seed)
        self._prepare_batches = prepare_batches
        self.register_buffer("prepared", torch.zeros((), dtype=torch.bool))
        self._micro = 0
        self._rng_step = 0
        self._val_outputs: list[Any] = []
        #: ``(metrics) -> None`` called once with the validation metrics of the untrained network
        #: (set by :func:`train` on a fresh run); ``val_batches`` gives the validation batches.
        self.on_init_validation: Callable[[dict[str, float]], None] | None = None
        self.val_batches: Callable[[], Any] | None = None

    # --------------------------------------------------------------------- training
    def on_train_start(self) -> None:
        self._micro = 0
        if not bool(self.prepared) and self._prepare_batches is not None:
            logger.info("preparing objective %s (runs once; saved in the checkpoint)", type(self.objective).__name__)
            from lightning.fabric.utilities.apply_func import move_data_to_device

            source = self._prepare_batches
            device = self.device

            def batches() -> Iterator[Any]:
                for b in source():
                    yield move_data_to_device(b, device)

            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                torch.manual_seed(_seed_of(self.seed, 0, 3))
                self.objective.prepare(batches)
            ddp.broadcast_state(self.objective)   # several processes: rank 0's teachers, identical by construction
        self.prepared.fill_(True)
        if self.on_init_validation is not None and self.val_batches is not None and int(self.trainer.global_step) == 0:
            self.on_init_validation(self.validate_now(self.val_batches()))

    @torch.no_grad()
    def validate_now(self, batches: Any) -> dict[str, float]:
        """Validation metrics of the objective as it is now, computed as the validation loop does
        (batch-size-weighted means of the per-batch scalars, then ``validation_metrics``), with the
        RNG state of training left untouched.  Used once before training (the network at init)."""
        from lightning.fabric.utilities.apply_func import move_data_to_device

        was_training = self.objective.training
        self.objective.eval()
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        kept: list[Any] = []
        try:
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                for batch_idx, batch in enumerate(batches):
                    batch = move_data_to_device(batch, self.device)
                    torch.manual_seed(_seed_of(self.seed, batch_idx, 2))
                    out = self.objective.validation_loss(batch)
                    n = int(batch["audio"].shape[0])
                    for key, value in out.items():
                        if isinstance(value, torch.Tensor) and value.numel() == 1 and torch.isfinite(value):
                            sums[key] = sums.get(key, 0.0) + float(value) * n
                            counts[key] = counts.get(key, 0) + n
                    extra = self.objective.validation_outputs(batch)
                    if extra is not None:
                        kept.append(extra)
                metrics = {f"val/{k}": sums[k] / counts[k] for k in sums}
                metrics.update({f"val/{k}": float(v) for k, v in (self.objective.validation_metrics(kept) or {}).items()})
        finally:
            self.objective.train(was_training)
        return metrics

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        acc = int(self.optim_cfg["accumulate"])
        self._rng_step = int(self.trainer.global_step) * acc + self._micro
        torch.manual_seed(_seed_of(self.seed, self._rng_step, 1))

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        gen = step_generator(self.seed, self._rng_step, device=self.device)
        rank, world = int(self.trainer.global_rank), int(self.trainer.world_size)
        with ddp.sharded(rank, world):   # several processes: what looks across the batch sees the global one
            batch = ddp.pad_to_global(batch)
            out = self.objective.training_loss(batch, generator=gen)
        if "loss" not in out:
            raise TrainingError(f"{type(self.objective).__name__}.training_loss returned no 'loss' (keys: {sorted(out)})")
        n = int(batch["audio"].shape[0])
        for key, value in out.items():   # several processes: the mean over ranks (the global batch's loss)
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                self.log(f"train/{key}", value.detach().float(), on_step=True, on_epoch=False,
                         prog_bar=key == "loss", batch_size=n, sync_dist=world > 1)
            elif isinstance(value, int | float):
                self.log(f"train/{key}", float(value), on_step=True, on_epoch=False, batch_size=n)
        self.log("train/lr", float(self.trainer.optimizers[0].param_groups[0]["lr"]), on_step=True, on_epoch=False,
                 batch_size=n)
        loss = out["loss"]
        if not torch.isfinite(loss.detach()):
            raise TrainingError(f"non-finite training loss {float(loss)} at step {self.trainer.global_step}; "
                                "lower optim.lr, raise optim.warmup_steps or enable optim.grad_clip")
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self._micro = (self._micro + 1) % int(self.optim_cfg["accumulate"])

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        # Lightning counts the step as completed after this hook returns: this is step number global_step + 1.
        self.objective.after_optimizer_step(int(self.trainer.global_step) + 1)

    def configure_optimizers(self) -> dict[str, Any]:
        o = self.optim_cfg
        params = [p for p in self.objective.trainable_parameters() if p.requires_grad]
        if not params:
            raise TrainingError(f"{type(self.objective).__name__} has no trainable parameters")
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        groups = [{"params": decay, "weight_decay": float(o["weight_decay"])},
                  {"params": no_decay, "weight_decay": 0.0}]
        opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=float(o["lr"]), betas=tuple(o["betas"]),
                                eps=float(o["eps"]))
        fn = functools.partial(lr_factor, warmup_steps=int(o["warmup_steps"]), max_steps=int(o["max_steps"]),
                               schedule=str(o["schedule"]), min_ratio=float(o["min_lr"]) / float(o["lr"]))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, fn)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 1}}

    # --------------------------------------------------------------------- validation
    def on_validation_epoch_start(self) -> None:
        self._val_outputs = []

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        torch.manual_seed(_seed_of(self.seed, batch_idx, 2))
        out = self.objective.validation_loss(batch)
        n = int(batch["audio"].shape[0])
        for key, value in out.items():
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                self.log(f"val/{key}", value.detach().float(), on_step=False, on_epoch=True, batch_size=n,
                         sync_dist=True, prog_bar=key == "loss")
        kept = self.objective.validation_outputs(batch)
        if kept is not None:
            self._val_outputs.append(kept)

    def on_validation_epoch_end(self) -> None:
        metrics = self.objective.validation_metrics(self._val_outputs)
        for key, value in (metrics or {}).items():
            self.log(f"val/{key}", float(value), on_step=False, on_epoch=True)
        self._val_outputs = []


# ------------------------------------------------------------------------------------- running
@dataclass
class TrainResult:
    """What :func:`train` did.

    Attributes
    ----------
    run_dir
        The run directory.
    backbone
        The exported backbone (a musiclens checkpoint folder), ``None`` when not exported.
    last_checkpoint
        ``RUN_DIR/checkpoints/last.ckpt`` (``None`` if none was written).
    global_step
        Optimizer steps done.
    finished
        ``max_steps`` reached (and the backbone exported when ``export.at_end``).
    resumed_from
        Step this invocation resumed from (``None``: started fresh or was already finished).
    already_finished
        True when the run had finished before and nothing was redone.
    metrics
        Last logged scalars (``train/loss``, ``val/...``).
    seconds
        Wall-clock seconds of this invocation.
    """

    run_dir: Path
    backbone: Path | None
    last_checkpoint: Path | None
    global_step: int
    finished: bool
    resumed_from: int | None = None
    already_finished: bool = False
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def build_objective(cfg: Mapping[str, Any]) -> Objective:
    """The objective of a validated config, its random initialisation drawn from ``cfg["seed"]``.

    The seed is passed as ``seed=`` to builders that accept it, and seeds torch's global RNG
    around the builder call for the others.
    """
    import inspect

    builder = objective_builder(cfg["objective"])
    try:
        takes_seed = "seed" in inspect.signature(builder).parameters
    except (TypeError, ValueError):
        takes_seed = False
    extra = {"seed": int(cfg["seed"])} if takes_seed else {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(cfg["seed"]))
        objective = builder(dict(cfg["options"] or {}), dict(cfg["model"] or {}), **extra)
    if not isinstance(objective, Objective):
        raise TrainingError(f"the builder of objective {cfg['objective']!r} returned {type(objective).__name__}, "
                            "not a musiclens.train.base.Objective")
    return objective


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError:
        return {}


def _prepare_run_dir(run_dir: Path, text: str, *, overwrite: bool, resume: bool) -> None:
    check_out(run_dir, "train")   # a folder musiclens did not make is never written into or cleared
    cfg_path = run_dir / "config.yaml"
    if cfg_path.is_file():
        same = yaml.safe_load(cfg_path.read_text()) == yaml.safe_load(text)
        if not same and not overwrite:
            raise ConfigError(f"{run_dir} holds a training run of a different configuration; use a new --out folder, "
                              "or --overwrite to delete the old run, so results of two configurations never mix")
        if not same or not resume:
            for name in _RUN_OUTPUTS + ("config.yaml",):
                p = run_dir / name
                if p.is_dir():
                    shutil.rmtree(p)
                elif p.exists():
                    p.unlink()
            for p in run_dir.glob("backbone-step*"):
                shutil.rmtree(p, ignore_errors=True)
    elif run_dir.exists() and any(p.name != MARKER_FILE for p in run_dir.iterdir()):
        raise ConfigError(f"{run_dir} exists, is not empty and is not a musiclens training run (no config.yaml); "
                          "choose a new or empty --out folder")
    run_dir.mkdir(parents=True, exist_ok=True)
    mark_output(run_dir, "train")
    atomic_write_text(cfg_path, text)


def _make_logger(cfg: Mapping[str, Any], run_dir: Path) -> Any:
    """The run's logger: ``logs/metrics.csv`` (:class:`MetricsCSV`, default), TensorBoard or none.
    A resumed run's ``metrics.csv`` was cut back to its checkpoint's rows first (:func:`_resume_metrics`)."""
    kind = cfg["trainer"]["logger"]
    if kind == "none":
        return False
    if kind == "tensorboard":
        from lightning.pytorch.loggers import TensorBoardLogger

        return TensorBoardLogger(save_dir=str(run_dir), name="logs", version="")
    return MetricsCSV(run_dir)


def export_backbone(objective: Objective, path: Path, *, step: int, cfg: Mapping[str, Any], config_sha256: str) -> Path:
    """Write the objective's backbone as a musiclens checkpoint folder (atomically)."""
    extra = {"training": {"objective": cfg["objective"], "step": int(step), "seed": int(cfg["seed"]),
                          "config_sha256": config_sha256}}
    with atomic_dir(path, overwrite=True) as tmp:
        objective.backbone.save(tmp, extra=extra)
    return path


def _accelerator(name: str) -> str:
    return "gpu" if name == "cuda" else name


def _align_lightning_logging() -> None:
    """Lightning sets its loggers to INFO when imported; follow the application's level instead
    (``musiclens -v`` shows Lightning's banners and tips, the default keeps them out)."""
    level = logging.getLogger().getEffectiveLevel()
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(max(level, logging.INFO))


def train(
    config: str | Path | Mapping[str, Any],
    *,
    out: str | Path,
    resume: bool = True,
    overwrite: bool = False,
    overrides: Sequence[str] = (),
    max_steps: int | None = None,
    objective: str | None = None,
    callbacks: Sequence[pl.Callback] = (),
) -> TrainResult:
    """Train the config's objective in run directory ``out`` (resuming when it holds a checkpoint).

    Parameters
    ----------
    config
        A training config (YAML file or mapping; see :mod:`musiclens.train.config`).
    out
        Run directory.
    resume
        Continue from ``out/checkpoints/last.ckpt`` when it exists; ``False`` starts over
        (the old run's outputs are deleted).
    overwrite
        Replace a run of a *different* config in ``out`` (otherwise an error).
    overrides
        ``"section.key=value"`` overrides (``--set``).
    max_steps
        Override of ``optim.max_steps``.
    objective
        Objective name (the command line's); must agree with the config's when both are given.
    callbacks
        Extra Lightning callbacks (picklable when the config asks for several processes: each
        process gets a copy).

    Several processes (``trainer.devices`` x ``trainer.num_nodes`` > 1): this call starts them
    and returns rank 0's result, or, started by a launcher (torchrun, srun), is one of them; see
    :mod:`musiclens.train.distributed`.

    Returns
    -------
    TrainResult

    Raises
    ------
    ConfigError
        Any invalid config, detected before the run directory is touched.
    TrainingError, CheckpointError
        Training could not start or continue.
    """
    _align_lightning_logging()
    started = time.perf_counter()
    run_dir = check_out(out, "train") if ddp.global_rank() == 0 else Path(out)   # before any work
    cfg = load_train_config(config, overrides=overrides, max_steps=max_steps, objective=objective)
    if ddp.needs_spawn(cfg["trainer"]):
        return ddp.spawn_training(train, config, trainer=cfg["trainer"], out=out, resume=resume, overwrite=overwrite,
                                  overrides=tuple(overrides), max_steps=max_steps, objective=objective,
                                  callbacks=tuple(callbacks))
    with ddp.session(cfg["trainer"]) as sess:
        return _train(cfg, run_dir, sess, resume=resume, overwrite=overwrite, callbacks=callbacks, started=started)


def _plan_run(run_dir: Path, cfg: Mapping[str, Any], text: str, *, resume: bool, overwrite: bool, bar: Any,
              rsa_cb: Any) -> dict[str, Any]:
    """Rank 0's preparation of the run directory: what to resume from, or that the run is finished."""
    if rsa_cb is not None:
        rsa_cb.check()   # a note set the RSA cannot use fails before the run directory is touched
    _prepare_run_dir(run_dir, text, overwrite=overwrite, resume=resume)
    manifest_path = run_dir / "manifest.json"
    manifest = _read_json(manifest_path)
    last = run_dir / CHECKPOINT_DIR / "last.ckpt"
    backbone_dir = run_dir / "backbone"
    if resume and manifest.get("finished") and last.is_file() and (
            backbone_dir.is_dir() or not cfg["export"]["at_end"]):
        logger.info("run %s already finished at step %s; nothing to do", run_dir, manifest.get("global_step"))
        if bar is not None:   # the verdict follows the current bar (e.g. a corrected default), from saved metrics
            init_file = run_dir / "val_at_init.json"
            at_init = _read_json(init_file).get("metrics") if init_file.is_file() else None
            verdict = evaluate_bar(bar, dict(manifest.get("metrics", {})), at_init)
            if verdict != manifest.get("bar"):
                atomic_write_json(manifest_path, {**manifest, "bar": verdict, "metrics_at_init": at_init})
        return {"finished": True, "manifest": manifest}
    ckpt_path = str(last) if resume and last.is_file() else None
    if rsa_cb is not None:
        rsa_cb.save_stimuli()
    remove_dead_temporaries(run_dir / CHECKPOINT_DIR)
    start_step, kept_rows = 0, None
    if ckpt_path is not None:
        start_step, kept_rows = _checkpoint_info(last)
        logger.info("resuming %s from step %d", run_dir, start_step)
        _resume_metrics(run_dir / "logs" / "metrics.csv", rows=kept_rows, before_step=start_step)  # logged again
    elif (run_dir / "logs").is_dir():
        shutil.rmtree(run_dir / "logs")   # a run killed before its first checkpoint: all of it is logged again
    return {"finished": False, "manifest": manifest, "ckpt_path": ckpt_path, "start_step": start_step}


def _train(cfg: dict[str, Any], run_dir: Path, sess: ddp.Session, *, resume: bool, overwrite: bool,
           callbacks: Sequence[pl.Callback], started: float) -> TrainResult:
    """:func:`train` in this process (one rank of ``sess``)."""
    timer = Timer()
    zero = sess.rank == 0
    with timer("build"):
        objective_ = build_objective(cfg)
        checked = check_against_objective(cfg, objective_)
        bar = resolve_bar(cfg["bar"], objective_.learning_bar())
        d, o, t = cfg["data"], cfg["optim"], cfg["trainer"]
        data_seed = int(cfg["seed"] if d["seed"] is None else d["seed"])
        dm = TrainDataModule(train=d["train"], val=d["val"], spec=checked["spec"], crop_s=checked["crop_s"],
                             batch_size=d["batch_size"], num_workers=d["num_workers"], weights=d["weights"],
                             seed=data_seed, max_steps=o["max_steps"], accumulate=o["accumulate"],
                             val_max_items=d["val_max_items"])
        rsa_cb = None
        if cfg["rsa_callback"]["every_n_steps"] and zero:   # evaluated and written by rank 0 only
            from musiclens.train.callbacks import RSACallback

            rsa_cb = RSACallback.from_config(cfg["rsa_callback"], run_dir=run_dir, seed=int(cfg["seed"]))
    # ---- everything is valid: now the run directory (rank 0's; the others follow its plan)
    text = config_text(cfg)
    sha = hash_bytes(text.encode())
    plan = sess.from_rank_zero(lambda: _plan_run(run_dir, cfg, text, resume=resume, overwrite=overwrite, bar=bar,
                                                 rsa_cb=rsa_cb))
    manifest_path = run_dir / "manifest.json"
    manifest = plan["manifest"]
    last = run_dir / CHECKPOINT_DIR / "last.ckpt"
    backbone_dir = run_dir / "backbone"
    if plan["finished"]:
        return TrainResult(run_dir=run_dir, backbone=backbone_dir if backbone_dir.is_dir() else None,
                           last_checkpoint=last, global_step=int(manifest.get("global_step", 0)), finished=True,
                           already_finished=True, metrics=dict(manifest.get("metrics", {})),
                           seconds=time.perf_counter() - started)
    ckpt_path, start_step = plan["ckpt_path"], plan["start_step"]
    module = ObjectiveModule(objective_, optim=o, seed=int(cfg["seed"]),
                             prepare_batches=lambda: dm.stream(start=0, whole_batches=True))
    run_logger = _make_logger(cfg, run_dir)
    every_ckpt = int(t["checkpoint_every_n_steps"]) or int(o["max_steps"])
    ckpt_cb = _LastCheckpoint(last, every_ckpt, run_logger if isinstance(run_logger, MetricsCSV) else None)
    cbs: list[pl.Callback] = [ckpt_cb.writer, ckpt_cb]
    if rsa_cb is not None:
        cbs.append(rsa_cb)
    if cfg["export"]["every_checkpoint"]:
        cbs.append(_ExportCallback(run_dir, every_ckpt, cfg, sha))
    import sys

    plain_progress = bool(t["progress_bar"]) and not sys.stderr.isatty()   # a redrawn bar is useless in a log
    if plain_progress:
        cbs.append(PlainProgress(run_dir.name, int(o["max_steps"])))
    cbs += list(callbacks)
    val_every = int(t["val_every_n_steps"])
    has_val = bool(dm.val_refs) and val_every > 0
    pl.seed_everything(int(cfg["seed"]), workers=True, verbose=False)
    trainer = pl.Trainer(
        accelerator=_accelerator(t["accelerator"]), devices=t["devices"], num_nodes=t["num_nodes"],
        strategy=ddp.lightning_strategy(t, objective_), precision=t["precision"],
        deterministic=bool(t["deterministic"]),
        max_steps=int(o["max_steps"]), max_epochs=-1, accumulate_grad_batches=int(o["accumulate"]),
        gradient_clip_val=o["grad_clip"] or None, gradient_clip_algorithm="norm",
        log_every_n_steps=min(int(t["log_every_n_steps"]), int(o["max_steps"]) * int(o["accumulate"])),
        logger=run_logger, callbacks=cbs, plugins=[_AtomicCheckpointIO(), *ddp.cluster_plugins(t)],
        enable_progress_bar=bool(t["progress_bar"]) and not plain_progress and zero, enable_model_summary=False,
        num_sanity_val_steps=0, val_check_interval=(val_every * int(o["accumulate"])) if has_val else None,
        check_val_every_n_epoch=None, limit_val_batches=1.0 if has_val else 0,
        use_distributed_sampler=False, inference_mode=False, default_root_dir=str(run_dir),
    )
    init_path = run_dir / "val_at_init.json"
    if has_val and ckpt_path is None and not init_path.is_file():
        module.val_batches = dm.val_dataloader

        def _save_init(metrics: dict[str, float]) -> None:
            if zero:
                atomic_write_json(init_path, {"global_step": 0, "metrics": metrics})
            logger.info("validation at initialisation: %s", ", ".join(f"{k} {v:.4g}" for k, v in sorted(metrics.items())))

        module.on_init_validation = _save_init
    manifest.update(_manifest_base(cfg, checked, objective_, data_seed, sha))
    runs = list(manifest.get("runs", []))
    runs.append({"started_at_step": start_step, "resumed": ckpt_path is not None, "processes": sess.world_size})
    manifest.update(runs=runs, finished=False)
    if zero:
        atomic_write_json(manifest_path, manifest)
    with timer("fit"):
        try:
            with warnings.catch_warnings():
                # Lightning 2.6 calls a torch pytree API that torch 2.13 deprecates; not ours to fix
                warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
                trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path, weights_only=True)
        except Exception as err:
            if ckpt_path is not None and "weights_only" in str(err):
                raise CheckpointError(
                    f"{last} could not be loaded with torch.load(weights_only=True) ({err}); it was not written by "
                    "this version of musiclens. Start over with --no-resume"
                ) from err
            raise
    step = int(trainer.global_step)
    finished = step >= int(o["max_steps"])
    exported: Path | None = None
    if finished:
        ckpt_cb.save(trainer)
        if cfg["export"]["at_end"] and zero:
            with timer("export"):
                exported = export_backbone(objective_, backbone_dir, step=step, cfg=cfg, config_sha256=sha)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()
               if isinstance(v, torch.Tensor) and v.numel() == 1}
    runs[-1].update(ended_at_step=step, seconds=round(time.perf_counter() - started, 3),
                    timings_s={k: round(v, 3) for k, v in timer.seconds.items()})
    at_init = _read_json(init_path).get("metrics") if init_path.is_file() else None
    manifest.update(metrics_at_init=at_init,
                    bar=evaluate_bar(bar, metrics, at_init) if bar is not None and finished else None)
    if zero and bar is not None and finished and not manifest["bar"]["passed"]:
        b = manifest["bar"]
        logger.warning("%s did not reach its learning bar %s (value %s, at init %s)%s", run_dir, b["rule"],
                       b["value"], b["at_init"], f": {b['reason']}" if b["reason"] else "")
    manifest.update(runs=runs, global_step=step, finished=finished and (exported is not None or not cfg["export"]["at_end"]),
                    metrics=metrics, backbone="backbone" if exported is not None else None)
    if zero:
        atomic_write_json(manifest_path, manifest)
    sess.barrier()   # every rank returns once rank 0 has written everything
    return TrainResult(run_dir=run_dir, backbone=exported, last_checkpoint=last if last.is_file() else None,
                       global_step=step, finished=finished, resumed_from=start_step if ckpt_path else None,
                       metrics=metrics, seconds=time.perf_counter() - started)


def _manifest_base(cfg: Mapping[str, Any], checked: Mapping[str, Any], objective: Objective, data_seed: int,
                   sha: str) -> dict[str, Any]:
    n_params = sum(p.numel() for p in objective.parameters())
    n_train = sum(p.numel() for p in objective.trainable_parameters())
    return {
        "objective": cfg["objective"],
        "config_sha256": sha,
        "seeds": {"seed": int(cfg["seed"]), "data": data_seed},
        "corpora": {f: {"kind": k, "sample_rate": sr, "n_pieces": n, "content_hash": h}
                    for f, (k, sr, n, h) in checked["corpora"].items()},
        "data_spec": dataclasses.asdict(checked["spec"]),
        "backbone": {"family": objective.backbone.family, "n_layers": int(objective.backbone.n_layers),
                     "hidden_size": int(objective.backbone.hidden_size),
                     "sample_rate": int(objective.backbone.sample_rate)},
        "parameters": {"total": int(n_params), "trainable": int(n_train)},
        "max_steps": int(cfg["optim"]["max_steps"]),
        "environment": environment(),
    }
