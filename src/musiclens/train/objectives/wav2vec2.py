"""Objective ``wav2vec2``: wav2vec 2.0's contrastive + diversity loss (transformers' ``Wav2Vec2ForPreTraining``).

The heads (Gumbel quantiser, ``project_hid``, ``project_q``) come from a
``Wav2Vec2ForPreTraining`` built from the backbone's transformers config plus the options below;
its ``wav2vec2`` attribute is then set to the backbone's own ``Wav2Vec2Model``, so the weights
trained (and saved by :meth:`~musiclens.train.base.Backbone.save`) are the backbone's.  The
pretraining wrapper itself is not a registered submodule: the objective's ``state_dict`` holds
``backbone.*`` plus ``quantizer.*``, ``project_hid.*``, ``project_q.*`` once each.

Per step (as ``examples/pytorch/speech-pretraining/run_wav2vec2_pretraining_no_trainer.py``):

1. span mask over the valid frames: transformers' ``_compute_mask_indices`` (``mask_prob``,
   ``mask_length``), and negatives ``_sample_negative_indices`` drawn among each clip's valid
   frames.  Both draw from NumPy's global RNG, which is seeded from the step's torch generator
   (or torch's global RNG) for the call and restored afterwards, so masks are a function of
   the step;
2. loss = (contrastive + ``diversity_loss_weight`` x diversity) / number of masked frames
   (transformers sums over masked frames; the example script divides the same way);
   the quantiser is transformers' computation on its own weights (:class:`GumbelQuantizer`) with
   the Gumbel noise drawn from the step's generator;
3. Gumbel temperature ``max(max_gumbel_temperature * gumbel_temperature_decay ** step,
   min_gumbel_temperature)`` with ``step`` the optimizer steps done so far, kept in a buffer
   (saved with the objective, so a resumed run continues the schedule).

With several processes the batch is the global one: masks, negatives and Gumbel noise are drawn
for every rank's clips and each rank keeps its rows (negatives stay within their clip), the code
perplexity is that of the global batch's masked frames, and the contrastive sum is divided by the
global number of masked frames (:mod:`musiclens.train.distributed`).

Only the ``wav2vec2`` backbone family has these heads; any other family is a
:class:`~musiclens.errors.ConfigError`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from musiclens.errors import ConfigError, TrainingError
from musiclens.train.base import Backbone, DataSpec, Objective, config_from_dict
from musiclens.train.distributed import batch_denominator, current_shard, gather_rows, global_sum, local_rows
from musiclens.train.objectives._common import (masked_frames, objective_backbone, register_objective, seeded_heads,
                                                seeded_numpy, span_mask, valid_frames)

__all__ = ["Wav2Vec2Options", "Wav2Vec2Objective", "GumbelQuantizer", "build_wav2vec2",
           "contrastive_accuracy", "seeded_numpy", "span_mask",
           "valid_frames", "objective_backbone"]

logger = logging.getLogger(__name__)


@dataclass
class Wav2Vec2Options:
    """Options of the ``wav2vec2`` objective.

    Attributes
    ----------
    mask_prob, mask_length, min_masks
        Span masking (wav2vec 2.0 base: 0.65, 10 frames).
    num_negatives
        Distractors per masked frame (paper: 100; tiny default 20).
    num_codevector_groups, num_codevectors_per_group, codevector_dim, proj_codevector_dim
        Quantiser: groups G, entries V per group, code width, contrastive projection width.
    contrastive_logits_temperature
        kappa of the contrastive softmax.
    diversity_loss_weight
        alpha of the diversity (codebook perplexity) loss.
    max_gumbel_temperature, min_gumbel_temperature, gumbel_temperature_decay
        Gumbel-softmax temperature schedule, per optimizer step.
    feat_quantizer_dropout
        Dropout on the conv features before quantisation.
    crop_s
        Training crop, s.
    """

    mask_prob: float = 0.65
    mask_length: int = 10
    min_masks: int = 2
    num_negatives: int = 20
    num_codevector_groups: int = 2
    num_codevectors_per_group: int = 32
    codevector_dim: int = 64
    proj_codevector_dim: int = 64
    contrastive_logits_temperature: float = 0.1
    diversity_loss_weight: float = 0.1
    max_gumbel_temperature: float = 2.0
    min_gumbel_temperature: float = 0.5
    gumbel_temperature_decay: float = 0.999995
    feat_quantizer_dropout: float = 0.0
    crop_s: float = 4.0

    def __post_init__(self) -> None:
        if not 0.0 < self.mask_prob <= 1.0:
            raise ConfigError(f"options.mask_prob must lie in (0, 1], got {self.mask_prob}")
        if self.mask_length < 1 or self.min_masks < 0 or self.num_negatives < 1:
            raise ConfigError("options.mask_length and num_negatives must be >= 1 and min_masks >= 0")
        if min(self.num_codevector_groups, self.num_codevectors_per_group, self.codevector_dim,
               self.proj_codevector_dim) < 1:
            raise ConfigError("options: codebook sizes (groups, entries, codevector_dim, proj_codevector_dim) must be >= 1")
        if self.codevector_dim % self.num_codevector_groups:
            raise ConfigError(f"options.codevector_dim {self.codevector_dim} must be divisible by num_codevector_groups "
                             f"{self.num_codevector_groups}")
        if self.contrastive_logits_temperature <= 0:
            raise ConfigError(f"options.contrastive_logits_temperature must be positive, got {self.contrastive_logits_temperature}")
        if not 0 < self.min_gumbel_temperature <= self.max_gumbel_temperature:
            raise ConfigError(f"options: need 0 < min_gumbel_temperature <= max_gumbel_temperature, got "
                             f"{self.min_gumbel_temperature}, {self.max_gumbel_temperature}")
        if not 0 < self.gumbel_temperature_decay <= 1:
            raise ConfigError(f"options.gumbel_temperature_decay must lie in (0, 1], got {self.gumbel_temperature_decay}")
        if self.diversity_loss_weight < 0 or not 0 <= self.feat_quantizer_dropout < 1:
            raise ConfigError("options.diversity_loss_weight must be >= 0 and feat_quantizer_dropout in [0, 1)")
        if self.crop_s <= 0:
            raise ConfigError(f"options.crop_s must be positive, got {self.crop_s}")


class Wav2Vec2Objective(Objective):
    """wav2vec 2.0 pretraining on a ``wav2vec2`` backbone (see the module docstring)."""

    name = "wav2vec2"
    #: learned = masked-frame contrastive accuracy at least 0.1 above the same network at initialisation
    default_bar = {"metric": "val/contrastive_accuracy", "threshold": 0.1, "direction": "higher",
                   "relative_to": "init"}

    def __init__(self, backbone: Backbone, options: Wav2Vec2Options, *, seed: int = 0) -> None:
        super().__init__(backbone)
        if getattr(backbone, "family", None) != "wav2vec2":
            raise ConfigError(f"objective 'wav2vec2' needs a backbone of family 'wav2vec2' (it owns the quantiser "
                              f"heads of transformers' Wav2Vec2ForPreTraining), got {backbone.family!r}; use "
                              "objective 'data2vec' for other families")
        from transformers import Wav2Vec2ForPreTraining

        self.options = options
        hf = backbone.model.config.to_dict()
        hf.update(num_negatives=options.num_negatives, num_codevector_groups=options.num_codevector_groups,
                  num_codevectors_per_group=options.num_codevectors_per_group,
                  codevector_dim=options.codevector_dim, proj_codevector_dim=options.proj_codevector_dim,
                  contrastive_logits_temperature=options.contrastive_logits_temperature,
                  diversity_loss_weight=options.diversity_loss_weight,
                  feat_quantizer_dropout=options.feat_quantizer_dropout)
        config = type(backbone.model.config)(**{k: v for k, v in hf.items() if k not in (
            "transformers_version", "architectures", "_name_or_path", "model_type")})
        with seeded_heads(seed):
            pretraining = Wav2Vec2ForPreTraining(config)
        pretraining.wav2vec2 = backbone.model            # the backbone's weights are the ones trained
        pretraining.quantizer = GumbelQuantizer(pretraining.quantizer)   # same weights; noise from the step
        self.quantizer = pretraining.quantizer
        self.project_hid = pretraining.project_hid
        self.project_q = pretraining.project_q
        self.dropout_features = pretraining.dropout_features
        object.__setattr__(self, "_pretraining", pretraining)   # not a submodule: no duplicate weights
        self.register_buffer("optimizer_steps", torch.zeros((), dtype=torch.long))

    def data_spec(self) -> DataSpec:
        return DataSpec(sample_rate=self.backbone.sample_rate, crop_s=self.options.crop_s)

    def gumbel_temperature(self, step: int | None = None) -> float:
        """Temperature after ``step`` optimizer steps (default: the steps done so far)."""
        o = self.options
        s = int(self.optimizer_steps.item()) if step is None else int(step)
        return max(o.max_gumbel_temperature * o.gumbel_temperature_decay ** s, o.min_gumbel_temperature)

    def after_optimizer_step(self, step: int) -> None:
        self.optimizer_steps.fill_(int(step) + 1)

    def training_loss(self, batch: Mapping[str, Any], *, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        from transformers.models.wav2vec2.modeling_wav2vec2 import _sample_negative_indices

        o = self.options
        shard = current_shard()
        audio, valid, mask = masked_frames(self.backbone, batch, objective="wav2vec2", mask_prob=o.mask_prob,
                                           mask_length=o.mask_length, min_masks=o.min_masks, generator=generator)
        n = valid.shape[1]
        if int(valid.sum(dim=1).min()) < 2:
            raise TrainingError("a clip has fewer than 2 valid frames: no negatives can be drawn; use longer crops")
        valid_all = gather_rows(valid)   # several processes: negatives drawn for the global batch, rows kept
        with seeded_numpy(generator):
            negatives = _sample_negative_indices((valid_all.shape[0], n), o.num_negatives,
                                                 mask_time_indices=valid_all.cpu().numpy())
        negatives = torch.from_numpy(np.ascontiguousarray(local_rows(negatives) - shard.rank * audio.shape[0] * n))
        negatives = negatives.to(audio.device)
        self._pretraining.set_gumbel_temperature(self.gumbel_temperature())
        self.quantizer.generator = generator
        try:
            out = self._pretraining(self.backbone.prepare_input(audio), mask_time_indices=mask,
                                    sampled_negative_indices=negatives)
        finally:
            self.quantizer.generator = None
        n_masked = batch_denominator(mask.sum().clamp_min(1))   # the global batch's masked frames
        contrastive = out.contrastive_loss / n_masked
        n_codes = o.num_codevector_groups * o.num_codevectors_per_group
        diversity = (n_codes - out.codevector_perplexity) / n_codes
        accuracy = contrastive_accuracy(out.projected_states, out.projected_quantized_states, negatives, mask)
        return {"loss": contrastive + o.diversity_loss_weight * diversity, "contrastive_accuracy": accuracy,
                "contrastive_loss": contrastive, "diversity_loss": diversity,
                "codevector_perplexity": out.codevector_perplexity.detach(),
                "gumbel_temperature": torch.tensor(self.gumbel_temperature()),
                "masked_fraction": mask.float().mean()}


class GumbelQuantizer(nn.Module):
    """transformers' ``Wav2Vec2GumbelVectorQuantizer`` (same parameters, same computation), with the
    Gumbel noise drawn from :attr:`generator` (the training step's) and, in a training step of several
    processes, for the global batch (each rank keeps its rows), and the code perplexity of the global
    batch's masked frames (the masked soft-distribution sums are added over ranks with their gradient).

    Parameters
    ----------
    hf
        The quantiser of a ``Wav2Vec2ForPreTraining`` (its ``codevectors`` and ``weight_proj`` are taken over).
    """

    def __init__(self, hf: nn.Module) -> None:
        super().__init__()
        self.num_groups, self.num_vars = int(hf.num_groups), int(hf.num_vars)
        self.codevectors = hf.codevectors
        self.weight_proj = hf.weight_proj
        self.temperature = hf.temperature
        #: the step's generator, set for the duration of a training forward (None: torch's global RNG)
        self.generator: torch.Generator | None = None

    @staticmethod
    def perplexity(probs: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Perplexity of the marginal code distribution of ``probs`` ``[frames, groups, codes]`` over ``mask``."""
        if mask is None:
            summed, count = probs.sum(dim=0), torch.tensor(probs.shape[0], device=probs.device)
        else:
            keep = mask.flatten()[:, None, None].expand(probs.shape)
            summed, count = torch.where(keep, probs, torch.zeros_like(probs)).sum(dim=0), mask.sum()
        if current_shard().world_size > 1:
            from torch.distributed.nn.functional import all_reduce

            summed, count = all_reduce(summed), global_sum(count)
        marginal = summed / count
        return torch.exp(-torch.sum(torch.xlogy(marginal, marginal), dim=-1)).sum()

    def forward(self, hidden_states: torch.Tensor, mask_time_indices: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        b, t, _ = hidden_states.shape
        logits = self.weight_proj(hidden_states).view(b * t * self.num_groups, -1)
        if self.training:   # hard Gumbel-softmax, as torch.nn.functional.gumbel_softmax(hard=True)
            g = self.generator
            n_all = logits.shape[0] * current_shard().world_size
            u = torch.empty((n_all, logits.shape[1]), device=g.device if g is not None else logits.device)
            gumbels = -local_rows(u.exponential_(generator=g)).to(logits.device).log()
            soft_noisy = ((logits.float() + gumbels) / self.temperature).softmax(dim=-1)
            hard = torch.zeros_like(soft_noisy).scatter_(-1, soft_noisy.argmax(dim=-1, keepdim=True), 1.0)
            probs = (hard - soft_noisy.detach() + soft_noisy).type_as(logits)
            soft = torch.softmax(logits.view(b * t, self.num_groups, -1).float(), dim=-1)
            perplexity = self.perplexity(soft, mask_time_indices)
        else:
            idx = logits.argmax(dim=-1)
            probs = logits.new_zeros(logits.shape).scatter_(-1, idx.view(-1, 1), 1.0)
            perplexity = self.perplexity(probs.view(b * t, self.num_groups, -1), mask_time_indices)
        probs = probs.view(b * t, -1)
        codevectors = (probs.unsqueeze(-1) * self.codevectors).view(b * t, self.num_groups, self.num_vars, -1)
        return codevectors.sum(-2).view(b, t, -1), perplexity


@torch.no_grad()
def contrastive_accuracy(predicted: torch.Tensor, quantized: torch.Tensor, negative_indices: torch.Tensor,
                         mask: torch.Tensor) -> torch.Tensor:
    """Masked-frame retrieval accuracy of wav2vec 2.0's contrastive task.

    For each masked frame, the fraction of frames whose context vector (``project_hid`` output,
    ``predicted`` ``[B, T, D]``) is more cosine-similar to its own quantised target
    (``project_q`` output, ``quantized`` ``[B, T, D]``) than to every one of its sampled
    distractors (``negative_indices`` ``[B, T, K]``, flat indices into ``B * T`` as transformers'
    ``_sample_negative_indices`` returns them).  As in transformers' loss, a distractor equal to
    the positive is not counted against it; a tie with a different distractor counts as a miss.
    Chance is about ``1 / (K + 1)``.
    """
    b, t, d = quantized.shape
    flat = quantized.reshape(-1, d)
    negs = flat[negative_indices.long().reshape(-1)].reshape(b, t, -1, d)            # [B, T, K, D]
    pos_sim = torch.cosine_similarity(predicted.float(), quantized.float(), dim=-1)      # [B, T]
    neg_sim = torch.cosine_similarity(predicted.float()[:, :, None], negs.float(), dim=-1)  # [B, T, K]
    same = (negs == quantized[:, :, None]).all(-1)
    neg_sim = neg_sim.masked_fill(same, float("-inf"))
    hit = (pos_sim > neg_sim.amax(dim=-1))[mask]
    return hit.float().mean() if hit.numel() else torch.tensor(float("nan"))


def build_wav2vec2(options: Mapping[str, Any], model: Mapping[str, Any], *,
                   seed: int = 0) -> Wav2Vec2Objective:
    """The ``wav2vec2`` objective from its options and the ``model`` section (default: tiny wav2vec2).

    ``seed`` draws the backbone's random initialisation and the heads (the engine passes the run seed).
    """
    opts = config_from_dict(Wav2Vec2Options, options, where="objective 'wav2vec2' options")
    family = dict(model or {}).get("family", "wav2vec2")
    if family != "wav2vec2":
        raise ConfigError(f"objective 'wav2vec2' needs model.family 'wav2vec2', got {family!r}; "
                          "use objective 'data2vec' for other families")
    return Wav2Vec2Objective(objective_backbone(model, seed=seed), opts, seed=seed)


register_objective("wav2vec2", build_wav2vec2, help="wav2vec 2.0 contrastive + diversity loss")
