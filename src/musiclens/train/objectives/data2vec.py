"""Objective ``data2vec``: masked regression onto an EMA teacher's averaged top-K layers (data2vec-audio).

The recipe of data2vec for audio (fairseq ``examples/data2vec``, ``data2vec_audio`` with
``base_librispeech.yaml``):

- **student**: the backbone on the waveform with a span mask (``mask_prob`` 0.65,
  ``mask_length`` 10) applied to its frame embeddings (``frame_mask``: the learned mask
  embedding replaces masked frames);
- **teacher**: a deep copy of the backbone, no gradients, always in ``eval()`` mode, updated
  after every optimizer step by an exponential moving average whose decay goes linearly from
  ``ema_decay`` (0.999) to ``ema_end_decay`` (0.9999) over ``ema_anneal_end_steps`` steps, then
  stays.  With ``ema_transformer_only`` (data2vec's default) only the transformer is averaged:
  parameters outside the backbone's ``transformer_prefix`` (the convolutional front end) are
  copied from the student, so the teacher sees the student's current front end.  Families that
  declare no prefix average everything;
- **targets**: the teacher sees the *unmasked* input; each of its top ``top_k`` (default 8,
  clipped to the number of layers) blocks' outputs is instance-normalised over time (per clip
  and channel, no affine), the K results are averaged.  ``target_source="ffn"`` uses each
  block's feed-forward output before the residual sum (what data2vec-audio regresses; needs a
  backbone with ``ffn_module_names()``, as the ``wav2vec2``/``data2vec-audio`` families have);
  ``"layer"`` uses the block outputs (``hidden_states[1:]``), which every family has;
  ``"auto"`` (default) picks ``"ffn"`` when available;
- **prediction**: a linear regression head on the student's final output (the backbone's
  ``extras["last_hidden_state"]`` when it has one, which for the pre-LN wav2vec2 variant includes
  the final layer norm as in data2vec; else the last hidden state);
- **loss** on masked frames only: per frame the sum over channels of the squared error (or
  smooth-L1 with ``loss_beta``), divided by ``sqrt(dim)`` (data2vec's default scale), averaged
  over masked frames.

The teacher is a registered submodule, so it is saved and restored with the objective (exact
resume) but excluded from :meth:`trainable_parameters`; the exported backbone is the student.
Masks draw from NumPy seeded by the step's torch generator (see
:func:`musiclens.train.objectives.wav2vec2.span_mask`).
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from musiclens.errors import ConfigError, TrainingError
from musiclens.train.base import Backbone, DataSpec, Objective
from musiclens.train.distributed import batch_mean
from musiclens.train.objectives._common import build_objective, register_objective, masked_frames, seeded_heads

__all__ = ["Data2VecOptions", "Data2VecObjective", "build_data2vec", "ema_decay_at", "instance_norm_time"]

logger = logging.getLogger(__name__)

_TARGET_SOURCES = ("auto", "ffn", "layer")
_LOSSES = ("mse", "smooth_l1")


@dataclass
class Data2VecOptions:
    """Options of the ``data2vec`` objective (see the module docstring).

    Attributes
    ----------
    mask_prob, mask_length, min_masks
        Student span mask.
    top_k
        Teacher layers averaged into the target (clipped to the backbone's depth).
    target_source
        ``"auto"``, ``"ffn"`` or ``"layer"``.
    instance_norm_targets
        Instance-normalise each teacher layer over time before averaging.
    ema_decay, ema_end_decay, ema_anneal_end_steps
        EMA decay schedule (linear from start to end over that many optimizer steps).
    ema_transformer_only
        Average only the transformer; copy the rest from the student.
    loss, loss_beta
        ``"mse"`` or ``"smooth_l1"`` (with ``loss_beta``).
    crop_s
        Training crop, s.
    """

    mask_prob: float = 0.65
    mask_length: int = 10
    min_masks: int = 2
    top_k: int = 8
    target_source: str = "auto"
    instance_norm_targets: bool = True
    ema_decay: float = 0.999
    ema_end_decay: float = 0.9999
    ema_anneal_end_steps: int = 30000
    ema_transformer_only: bool = True
    loss: str = "mse"
    loss_beta: float = 0.25
    crop_s: float = 4.0

    def __post_init__(self) -> None:
        if not 0.0 < self.mask_prob <= 1.0:
            raise ConfigError(f"options.mask_prob must lie in (0, 1], got {self.mask_prob}")
        if self.mask_length < 1 or self.min_masks < 0 or self.top_k < 1:
            raise ConfigError("options.mask_length and top_k must be >= 1, min_masks >= 0")
        if self.target_source not in _TARGET_SOURCES:
            raise ConfigError(f"options.target_source must be one of {_TARGET_SOURCES}, got {self.target_source!r}")
        if self.loss not in _LOSSES:
            raise ConfigError(f"options.loss must be one of {_LOSSES}, got {self.loss!r}")
        if not 0.0 <= self.ema_decay <= self.ema_end_decay <= 1.0:
            raise ConfigError(f"options: need 0 <= ema_decay <= ema_end_decay <= 1, got {self.ema_decay}, {self.ema_end_decay}")
        if self.ema_anneal_end_steps < 0 or self.loss_beta <= 0 or self.crop_s <= 0:
            raise ConfigError("options.ema_anneal_end_steps must be >= 0, loss_beta and crop_s positive")


def ema_decay_at(step: int, *, start: float, end: float, anneal_steps: int) -> float:
    """EMA decay after ``step`` optimizer steps: linear from ``start`` to ``end`` over ``anneal_steps``."""
    if anneal_steps <= 0 or step >= anneal_steps:
        return float(end)
    return float(end - (end - start) * (1.0 - step / anneal_steps))


def instance_norm_time(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``[batch, n_frames, dim]`` normalised per clip and channel over time (``F.instance_norm``, no affine)."""
    return F.instance_norm(x.transpose(1, 2).float(), eps=eps).transpose(1, 2)


class Data2VecObjective(Objective):
    """data2vec masked regression onto an EMA teacher (see the module docstring)."""

    name = "data2vec"
    #: learned = validation regression loss at least 20 % below the same network at initialisation.
    #: The teacher moves with the student, so this says the student learned to predict its teacher;
    #: it cannot tell learning from a collapse to time-constant targets (instance norm makes those
    #: zero) -- read it with the network's RSA and probes.
    default_bar = {"metric": "val/loss", "threshold": 0.2, "direction": "lower", "relative_to": "init",
                   "relative": True}

    def __init__(self, backbone: Backbone, options: Data2VecOptions, *, seed: int = 0) -> None:
        super().__init__(backbone)
        self.options = options
        source = options.target_source
        has_ffn = callable(getattr(backbone, "ffn_module_names", None))
        if source == "auto":
            source = "ffn" if has_ffn else "layer"
        if source == "ffn" and not has_ffn:
            raise ConfigError(f"target_source 'ffn' needs a backbone exposing ffn_module_names(); family "
                              f"{backbone.family!r} does not: use target_source 'layer'")
        self.target_source = source
        self.top_k = min(int(options.top_k), int(backbone.n_layers))
        if self.top_k < options.top_k:
            logger.info("data2vec top_k %d clipped to the backbone's %d layers", options.top_k, self.top_k)
        self.teacher = copy.deepcopy(backbone)
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.teacher.eval()
        with seeded_heads(seed):
            self.regression_head = nn.Linear(backbone.hidden_size, backbone.hidden_size)
        prefix = getattr(backbone, "transformer_prefix", None) if options.ema_transformer_only else None
        self._ema_prefix: str | None = prefix

    # ------------------------------------------------------------------ module plumbing
    def train(self, mode: bool = True) -> Data2VecObjective:
        super().train(mode)
        self.teacher.eval()
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        teacher = {id(p) for p in self.teacher.parameters()}
        return [p for p in self.parameters() if p.requires_grad and id(p) not in teacher]

    def data_spec(self) -> DataSpec:
        return DataSpec(sample_rate=self.backbone.sample_rate, crop_s=self.options.crop_s)

    # ------------------------------------------------------------------ EMA
    def ema_decay(self, step: int) -> float:
        o = self.options
        return ema_decay_at(step, start=o.ema_decay, end=o.ema_end_decay, anneal_steps=o.ema_anneal_end_steps)

    @torch.no_grad()
    def after_optimizer_step(self, step: int) -> None:
        """Move the teacher towards the student (decay :meth:`ema_decay` of ``step``)."""
        decay = self.ema_decay(step)
        student = dict(self.backbone.named_parameters())
        for name, t in self.teacher.named_parameters():
            s = student[name].detach()
            if self._ema_prefix is not None and not name.startswith(self._ema_prefix):
                t.copy_(s)
            else:
                t.mul_(decay).add_(s.to(t.dtype), alpha=1.0 - decay)
        student_buffers = dict(self.backbone.named_buffers())
        for name, b in self.teacher.named_buffers():
            b.copy_(student_buffers[name])

    # ------------------------------------------------------------------ targets and loss
    @torch.no_grad()
    def targets(self, audio: torch.Tensor) -> torch.Tensor:
        """Teacher targets ``[batch, n_frames, dim]`` of unmasked ``audio``."""
        self.teacher.eval()
        n_layers = int(self.teacher.n_layers)
        if self.target_source == "ffn":
            names = self.teacher.ffn_module_names()[n_layers - self.top_k:]
            captured: dict[str, torch.Tensor] = {}
            handles = []
            for name in names:
                def hook(_m: nn.Module, _i: Any, out: Any, _n: str = name) -> None:
                    captured[_n] = out[0] if isinstance(out, tuple) else out
                handles.append(self.teacher.get_submodule(name).register_forward_hook(hook))
            try:
                out = self.teacher(audio)
            finally:
                for h in handles:
                    h.remove()
            n_special = out.n_special
            layers = [captured[n][:, n_special:] for n in names]
        else:
            out = self.teacher(audio)
            layers = [out.frames(i) for i in range(n_layers + 1 - self.top_k, n_layers + 1)]
        if self.options.instance_norm_targets:
            layers = [instance_norm_time(x) for x in layers]
        return torch.stack([x.float() for x in layers]).mean(dim=0)

    def training_loss(self, batch: Mapping[str, Any], *, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        o = self.options
        audio, _, mask = masked_frames(self.backbone, batch, objective="data2vec", mask_prob=o.mask_prob,
                                       mask_length=o.mask_length, min_masks=o.min_masks, generator=generator)
        student = self.backbone(audio, frame_mask=mask)
        last = student.extras.get("last_hidden_state")
        pred = self.regression_head(last[:, student.n_special:] if last is not None else student.frames(-1))
        target = self.targets(audio)
        if target.shape != pred.shape:
            raise TrainingError(f"teacher targets {tuple(target.shape)} and student predictions {tuple(pred.shape)} differ")
        p, y = pred[mask].float(), target[mask]
        if p.shape[0] == 0:
            raise TrainingError("no frame was masked; raise mask_prob or use longer crops")
        if o.loss == "mse":
            per = F.mse_loss(p, y, reduction="none")
        else:
            per = F.smooth_l1_loss(p, y, reduction="none", beta=o.loss_beta)
        loss = batch_mean(per.sum(dim=-1)) / math.sqrt(p.shape[-1])   # over the global batch's masked frames
        return {"loss": loss, "target_var": y.var(dim=0).mean().detach(), "pred_var": p.var(dim=0).mean().detach(),
                "masked_fraction": mask.float().mean()}


def build_data2vec(options: Mapping[str, Any], model: Mapping[str, Any], *,
                   seed: int = 0) -> Data2VecObjective:
    """The ``data2vec`` objective from its options and the ``model`` section (default: tiny wav2vec2;
    see :func:`~musiclens.train.objectives._common.build_objective`)."""
    return build_objective(Data2VecObjective, Data2VecOptions, options, model, seed=seed)


register_objective("data2vec", build_data2vec, help="data2vec masked regression onto an EMA teacher")
