"""Callbacks of the training engine: RSA during training (when does chroma emerge?).

:class:`RSACallback` plays a fixed note set to the backbone every ``every_n_steps`` optimizer
steps (and once before the first step), mean-pools every layer's frames, and runs RSA against
the model RDMs (default ``pitch_height`` and ``chroma``; tau-a and partial tau-b, no permutations
or bootstraps, so it stays cheap).  Values are logged as ``rsa/<model>/<layer>`` and
``rsa/<model>_partial/<layer>`` and kept in ``RUN_DIR/rsa_curve.csv``, a tidy table with columns
``step, layer, statistic, model_rdm, value``, rewritten atomically after every evaluation.  Rows
of steps later than the step a run resumes from are dropped at resume and each evaluation
replaces its own step's rows, so the curve never holds duplicates.

The note set is rendered once into ``RUN_DIR/rsa_stimuli`` (a :class:`StimulusSet` folder) and
reused: a grid name (``quick``, ``additive``, ``paper``; ``instruments``/``midi``/``duration_s``/
``hold_s`` narrow it) or an existing StimulusSet folder.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch

from musiclens.errors import ConfigError
from musiclens.fsutil import atomic_write_text

__all__ = ["RSACallback", "CURVE_COLUMNS", "pool_hidden", "PlainProgress"]

logger = logging.getLogger(__name__)

#: Columns of ``rsa_curve.csv``.
CURVE_COLUMNS = ("step", "layer", "statistic", "model_rdm", "value")


def pool_hidden(hidden: torch.Tensor, *, n_special: int, pooling: str) -> torch.Tensor:
    """Pool ``[batch, n_special + n_frames, dim]`` hidden states to ``[batch, dim]``."""
    frames = hidden[:, n_special:]
    if pooling == "cls":
        if n_special < 1:
            raise ConfigError("pooling 'cls' needs a class token; this backbone has none (use 'mean')")
        return hidden[:, 0]
    if pooling == "mean":
        return frames.mean(dim=1)
    if pooling == "max":
        return frames.max(dim=1).values
    if pooling == "first":
        return frames[:, 0]
    if pooling == "last":
        return frames[:, -1]
    raise ConfigError(f"unknown pooling {pooling!r}; use mean, max, first, last or cls")


class RSACallback(pl.Callback):
    """RSA of the backbone's layers on a fixed note set, every ``every_n_steps`` optimizer steps.

    Parameters
    ----------
    run_dir
        Run directory (``rsa_curve.csv`` and the cached ``rsa_stimuli/`` go there).
    every_n_steps
        Evaluation period in optimizer steps.
    stimuli
        Note grid name (:data:`musiclens.stimuli.notes.GRIDS`) or a StimulusSet folder.
    instruments, midi, duration_s, hold_s
        Narrow a grid (``None`` keeps the grid's value).
    layers
        Layer indices or ``layer_NN`` names (``None``: all).
    pooling
        ``mean`` (default), ``max``, ``first``, ``last`` or ``cls``.
    method, models
        RSA comparison method and model RDMs.
    at_start
        Also evaluate before the first step (step 0).
    batch_size
        Clips per forward pass.
    seed
        Rendering and RSA seed.
    """

    def __init__(self, *, run_dir: str | Path, every_n_steps: int, stimuli: str = "quick",
                 instruments: Sequence[str | int] | None = None, midi: Sequence[int] | None = None,
                 duration_s: float | None = 1.0, hold_s: float | None = 0.75,
                 layers: Sequence[int | str] | None = None, pooling: str = "mean", method: str = "tau-a",
                 models: Sequence[str] = ("pitch_height", "chroma"), at_start: bool = True, batch_size: int = 16,
                 seed: int = 0) -> None:
        if every_n_steps < 1:
            raise ConfigError(f"rsa_callback.every_n_steps must be >= 1, got {every_n_steps}")
        self.run_dir = Path(run_dir)
        self.every = int(every_n_steps)
        self.stimuli = str(stimuli)
        self.instruments = list(instruments) if instruments is not None else None
        self.midi = [int(m) for m in midi] if midi is not None else None
        self.duration_s, self.hold_s = duration_s, hold_s
        self.layers = list(layers) if layers is not None else None
        self.pooling, self.method, self.models = pooling, method, list(models)
        self.at_start, self.batch_size, self.seed = bool(at_start), int(batch_size), int(seed)
        self._set: Any = None
        self._last_step = -1

    @classmethod
    def from_config(cls, section: Mapping[str, Any], *, run_dir: str | Path, seed: int) -> RSACallback:
        """From the ``rsa_callback`` config section."""
        return cls(run_dir=run_dir, seed=seed, **dict(section))

    @property
    def curve_path(self) -> Path:
        return self.run_dir / "rsa_curve.csv"

    # ------------------------------------------------------------------ stimuli
    def prepare_stimuli(self) -> Any:
        """Render (or load the cached) note set; returns the :class:`StimulusSet`."""
        from musiclens.stimuli.notes import GRIDS, render_notes
        from musiclens.stimuli.stimulus_set import StimulusSet

        if self._set is not None:
            return self._set
        cache = self.run_dir / "rsa_stimuli"
        if cache.is_dir():
            self._set = StimulusSet.load(cache)
        elif self.stimuli in GRIDS:
            self._set = render_notes(grid=self.stimuli, instruments=self.instruments, midi=self.midi,
                                     duration_s=self.duration_s, hold_s=self.hold_s, seed=self.seed, progress=False)
        else:
            s = StimulusSet.load(self.stimuli)
            if self.instruments is not None or self.midi is not None:
                m = s.metadata
                keep = np.ones(len(s), dtype=bool)
                if self.instruments is not None:
                    keep &= m["instrument"].isin([str(i) for i in self.instruments]).to_numpy()
                if self.midi is not None:
                    keep &= m["midi"].isin(self.midi).to_numpy()
                s = s.take(np.flatnonzero(keep))
            self._set = s
        return self._set

    def check(self) -> None:
        """Render the note set and dry-run the RSA on random activations: a note set the model RDMs
        cannot be compared on (e.g. chroma without an octave repeat) fails before training starts."""
        from musiclens.errors import MusicLensError

        s = self.prepare_stimuli()
        fake = {"layer_00": np.random.default_rng(0).standard_normal((len(s), 4))}
        try:
            self._run_rsa(fake, s)
        except MusicLensError as err:
            raise ConfigError(f"rsa_callback: the note set {self.stimuli!r} ({len(s)} notes) does not support "
                              f"this RSA: {err}") from err

    def save_stimuli(self) -> None:
        """Cache the note set in ``RUN_DIR/rsa_stimuli`` (once)."""
        cache = self.run_dir / "rsa_stimuli"
        if not cache.is_dir():
            self.prepare_stimuli().save(cache)

    def _run_rsa(self, acts: Mapping[str, np.ndarray], s: Any) -> pd.DataFrame:
        from musiclens.rsa.pipeline import run_rsa

        n_subj = s.metadata["instrument"].nunique() if "instrument" in s.metadata else 1
        one = n_subj < 2  # one instrument: no t-test across subjects; one permutation only fills the p column
        return run_rsa(acts, s.metadata, network="training", models=self.models, method=self.method,
                       subject=None if one else "instrument", condition="midi", stimulus_ids=s.ids,
                       test="permutation" if one else "t-test", n_permutations=1 if one else 0, n_bootstraps=0,
                       partial=True, regression=False, interactions=False, best_layer=False, seed=self.seed).table

    # ------------------------------------------------------------------ extraction
    @torch.no_grad()
    def activations(self, backbone: Any, *, context: Any = None) -> dict[str, np.ndarray]:
        """``{layer_NN: [n_stimuli, dim]}`` pooled activations of ``backbone`` on the note set.

        ``context`` is a factory of the context manager each forward runs in (e.g. autocast).
        """
        from musiclens.audio import resample

        s = self.prepare_stimuli()
        sr = int(backbone.sample_rate)
        clips = [resample(c, orig_sr=s.sample_rate, target_sr=sr) for c in s.audio]
        device = next(backbone.parameters()).device
        n_layers = int(backbone.n_layers) + 1
        names = [f"layer_{i:02d}" for i in range(n_layers)]
        if self.layers is None:
            chosen = list(range(n_layers))
        else:
            chosen = []
            for item in self.layers:
                idx = names.index(item) if isinstance(item, str) and item in names else item
                if not isinstance(idx, int) or not -n_layers <= idx < n_layers:
                    raise ConfigError(f"rsa_callback.layers: {item!r} is not a layer of this backbone "
                                      f"({names[0]}..{names[-1]})")
                chosen.append(idx % n_layers)
        pooled: dict[int, list[np.ndarray]] = {i: [] for i in chosen}
        was_training = backbone.training
        backbone.eval()
        try:
            i = 0
            while i < len(clips):  # batches of consecutive equal-length clips (no padding enters the pool)
                j = i + 1
                while j < len(clips) and j - i < self.batch_size and clips[j].size == clips[i].size:
                    j += 1
                x = torch.from_numpy(np.stack(clips[i:j])).to(device)
                with context() if context is not None else contextlib.nullcontext():
                    out = backbone(x)
                for k in chosen:
                    pooled[k].append(pool_hidden(out.hidden_states[k], n_special=int(out.n_special),
                                                 pooling=self.pooling).float().cpu().numpy())
                i = j
        finally:
            backbone.train(was_training)
        return {names[k]: np.concatenate(v) for k, v in pooled.items()}

    def evaluate(self, backbone: Any, *, step: int, context: Any = None) -> pd.DataFrame:
        """RSA rows (:data:`CURVE_COLUMNS`) of ``backbone`` at ``step``."""
        s = self.prepare_stimuli()
        table = self._run_rsa(self.activations(backbone, context=context), s)
        from musiclens.rsa.pipeline import partial_statistic

        keep = table["statistic"].isin([self.method, partial_statistic(self.method)])
        rows = table.loc[keep, ["layer", "statistic", "model_rdm", "value"]].copy()
        rows.insert(0, "step", int(step))
        return rows.reset_index(drop=True)

    # ------------------------------------------------------------------ curve file
    def read_curve(self) -> pd.DataFrame:
        """The rows written so far (empty table when none)."""
        if self.curve_path.is_file():
            return pd.read_csv(self.curve_path)
        return pd.DataFrame(columns=list(CURVE_COLUMNS))

    def _write(self, curve: pd.DataFrame) -> None:
        curve = curve.sort_values(["step", "statistic", "model_rdm", "layer"], kind="stable")
        atomic_write_text(self.curve_path, curve.to_csv(index=False, float_format="%.10g"))

    # ------------------------------------------------------------------ hooks
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        step = int(trainer.global_step)
        self._last_step = step if step > 0 else -1
        if not trainer.is_global_zero:
            return
        curve = self.read_curve()
        if len(curve) and (curve["step"] > step).any():  # written by a run killed after its last checkpoint
            self._write(curve[curve["step"] <= step])
        if self.at_start and step == 0:
            self._run(trainer, pl_module, 0)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        step = int(trainer.global_step)
        if step > 0 and step % self.every == 0 and step != self._last_step:
            self._last_step = step
            if trainer.is_global_zero:
                self._run(trainer, pl_module, step)

    def _run(self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int) -> None:
        backbone = pl_module.objective.backbone  # type: ignore[union-attr]
        plugin = getattr(trainer, "precision_plugin", None) or getattr(trainer.strategy, "precision_plugin", None)
        context = plugin.forward_context if plugin is not None else None
        rows = self.evaluate(backbone, step=step, context=context)
        curve = self.read_curve()
        curve = pd.concat([curve[curve["step"] != step], rows], ignore_index=True) if len(curve) else rows
        self._write(curve)
        metrics = {}
        for r in rows.itertuples(index=False):
            suffix = "_partial" if str(r.statistic).startswith("partial-") else ""
            metrics[f"rsa/{r.model_rdm}{suffix}/{r.layer}"] = float(r.value)
        for lg in trainer.loggers:
            lg.log_metrics(metrics, step=step)
        logger.info("RSA at step %d: %s", step, ", ".join(f"{k}={v:.3f}" for k, v in list(metrics.items())[:4]))


class PlainProgress(pl.Callback):
    """Progress as plain lines on a stream (default stderr) for logs and pipes, where a redrawn
    bar shows nothing until the end: ``train RUN: step 100/300 (33%) loss 2.71 | 12 s, ~24 s left``,
    about ``n_lines`` times per run and at the last step."""

    def __init__(self, name: str, max_steps: int, *, n_lines: int = 10, stream: Any = None) -> None:
        self.name, self.max_steps = name, int(max_steps)
        self.every = max(1, self.max_steps // max(1, n_lines))
        self.stream = stream
        self._start: float | None = None
        self._start_step = 0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start, self._start_step = time.perf_counter(), int(trainer.global_step)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        import sys

        step = int(trainer.global_step)
        if not trainer.is_global_zero or (step % self.every and step != self.max_steps) or self._start is None:
            return
        elapsed = time.perf_counter() - self._start
        done = max(1, step - self._start_step)
        left = elapsed / done * (self.max_steps - step)
        loss = trainer.callback_metrics.get("train/loss")
        loss_text = f" loss {float(loss):.4g}" if isinstance(loss, torch.Tensor) else ""
        stream = self.stream or sys.stderr
        stream.write(f"train {self.name}: step {step}/{self.max_steps} ({100 * step // self.max_steps}%){loss_text} | "
                     f"{elapsed:.0f} s, ~{left:.0f} s left\n")
        stream.flush()


class _ExportCallback(pl.Callback):
    """Export ``backbone-step{N}/`` whenever a checkpoint step is reached."""

    def __init__(self, run_dir: Path, every: int, cfg: Mapping[str, Any], config_sha256: str) -> None:
        self.run_dir, self.every, self.cfg, self.sha = run_dir, int(every), cfg, config_sha256
        self._done = -1

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        step = int(trainer.global_step)
        if self.every and step and step % self.every == 0 and step != self._done and trainer.is_global_zero:
            self._done = step
            from musiclens.train.engine import export_backbone

            export_backbone(pl_module.objective, self.run_dir / f"backbone-step{step:07d}", step=step,  # type: ignore[arg-type]
                            cfg=self.cfg, config_sha256=self.sha)
