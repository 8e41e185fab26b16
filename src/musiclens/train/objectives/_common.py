"""Helpers shared by the objectives: batch checks, span masks, seeded heads, builders.

The span-mask helpers draw from NumPy's global RNG seeded from the step's torch generator (see
:func:`seeded_numpy`), so masks are a function of the step.  :func:`build_objective` is the
builder of every objective whose default backbone is the tiny ``wav2vec2``
(:func:`objective_backbone`); its heads draw from :func:`seeded_heads`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import numpy as np
import torch

from musiclens.errors import ConfigError, TrainingError
from musiclens.train.base import OBJECTIVES, Backbone, Objective, config_from_dict

__all__ = ["seeded_numpy", "valid_frames", "span_mask", "objective_backbone", "seeded_heads", "batch_audio",
           "check_layer", "masked_frames", "build_objective", "register_objective"]

O = TypeVar("O", bound=Objective)


# ---------------------------------------------------------------------- masks and backbones
@contextlib.contextmanager
def seeded_numpy(generator: torch.Generator | None) -> Iterator[int]:
    """Seed NumPy's global RNG from ``generator`` (or torch's global RNG) for the block, then restore it.

    transformers' mask and negative samplers draw from ``np.random``; this makes them a function
    of the torch randomness the engine reseeds per step.  Yields the NumPy seed used.
    """
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator).item())
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield seed
    finally:
        np.random.set_state(state)


def valid_frames(backbone: Backbone, batch: Mapping[str, Any], n_frames: int) -> torch.Tensor:
    """``[batch, n_frames]`` bool, True for frames inside each clip's ``lengths`` (all True without lengths)."""
    audio = batch["audio"]
    b = audio.shape[0]
    lengths = batch.get("lengths")
    if lengths is None:
        return torch.ones(b, n_frames, dtype=torch.bool, device=audio.device)
    counts = torch.tensor([min(n_frames, backbone.n_frames(int(n))) for n in lengths], device=audio.device)
    return torch.arange(n_frames, device=audio.device)[None, :] < counts[:, None]


def span_mask(valid: torch.Tensor, *, mask_prob: float, mask_length: int, min_masks: int = 2,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """Span mask ``[batch, n_frames]`` bool over the valid frames (transformers' ``_compute_mask_indices``).

    Parameters
    ----------
    valid
        ``[batch, n_frames]`` bool, True for real (not padding) frames.
    mask_prob
        Fraction of frames chosen as span starts times ``mask_length`` (so roughly the masked
        fraction before overlaps), as in wav2vec 2.0 / data2vec.
    mask_length
        Span length, frames.
    min_masks
        Fewest spans per clip.
    generator
        Seeds NumPy for the draw (see :func:`seeded_numpy`).
    """
    from transformers.models.wav2vec2.modeling_wav2vec2 import _compute_mask_indices

    b, n = valid.shape
    if n <= mask_length:
        raise TrainingError(f"clips of {n} frames are too short for mask spans of {mask_length} frames; "
                            "use longer crops or a smaller mask_length")
    with seeded_numpy(generator):
        mask = _compute_mask_indices((b, n), mask_prob=mask_prob, mask_length=mask_length,
                                     attention_mask=valid.long().cpu(), min_masks=min_masks)
    return torch.from_numpy(mask).to(device=valid.device, dtype=torch.bool) & valid


def objective_backbone(model: Mapping[str, Any] | None, *, seed: int) -> Backbone:
    """``build_backbone(model or {"family": "wav2vec2"}, seed=seed)`` (the tiny wav2vec2 default)."""
    from musiclens.train.models import build_backbone

    model = dict(model or {})
    model.setdefault("family", "wav2vec2")
    return build_backbone(model, seed=seed)


@contextlib.contextmanager
def seeded_heads(seed: int) -> Iterator[None]:
    """Draw the block's random initialisation (an objective's heads) from torch seeded with ``seed + 1``.

    The global RNG is forked (CPU state restored afterwards), so building heads does not move
    the randomness of anything drawn later; ``seed + 1`` keeps the heads apart from the
    backbone, which draws from ``seed``.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed) + 1)
        yield


# ---------------------------------------------------------------------- batches
def batch_audio(batch: Mapping[str, Any], *, objective: str) -> torch.Tensor:
    """``batch["audio"]`` ``[batch, n_samples]``; another shape is a :class:`TrainingError` naming ``objective``."""
    audio = batch["audio"]
    if audio.ndim != 2:
        raise TrainingError(f"objective {objective!r} takes audio [batch, n_samples], got {tuple(audio.shape)}")
    return audio


def check_layer(backbone: Backbone, layer: int) -> None:
    """Raise :class:`ConfigError` unless ``layer`` indexes the backbone's ``n_layers + 1`` hidden states."""
    n = int(backbone.n_layers) + 1
    if not -n <= layer < n:
        raise ConfigError(f"layer {layer} does not exist: the backbone has hidden states 0..{n - 1}")


def masked_frames(backbone: Backbone, batch: Mapping[str, Any], *, objective: str, mask_prob: float,
                  mask_length: int, min_masks: int,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Audio of ``batch`` with its valid frames and a span mask over them (masked-prediction objectives).

    Parameters
    ----------
    backbone
        Gives the frame count of the clips (``n_frames``).
    batch
        ``audio`` ``[batch, n_samples]``, optional ``lengths`` ``[batch]`` in samples.
    objective
        Name used in error messages.
    mask_prob, mask_length, min_masks, generator
        As in :func:`span_mask`.

    Returns
    -------
    tuple of torch.Tensor
        ``audio`` ``[batch, n_samples]``, ``valid`` and ``mask`` ``[batch, n_frames]`` bool.  In a
        training step of several processes the mask is this rank's rows of the global batch's
        (:mod:`musiclens.train.distributed`).
    """
    from musiclens.train.distributed import gather_rows, local_rows

    audio = batch_audio(batch, objective=objective)
    valid = valid_frames(backbone, batch, backbone.n_frames(audio.shape[1]))
    # several processes: the mask of the global batch is drawn, this rank keeps its rows
    mask = local_rows(span_mask(gather_rows(valid), mask_prob=mask_prob, mask_length=mask_length,
                                min_masks=min_masks, generator=generator))
    return audio, valid, mask


# ---------------------------------------------------------------------- builders
def build_objective(objective: type[O], options_cls: type[Any], options: Mapping[str, Any] | None,
                    model: Mapping[str, Any] | None, *, seed: int = 0) -> O:
    """``objective(backbone, options, seed=seed)`` from the config sections (an objective's builder).

    ``options`` is parsed into ``options_cls`` (unknown keys and bad values are a
    :class:`ConfigError` naming ``objective 'NAME' options``); the backbone is
    :func:`objective_backbone` of ``model`` (default: tiny wav2vec2).  ``seed`` draws the backbone's
    random initialisation and the heads (the engine passes the run seed).
    """
    opts = config_from_dict(options_cls, options, where=f"objective {objective.name!r} options")
    make: Callable[..., O] = objective   # objectives take (backbone, options, *, seed)
    return make(objective_backbone(model, seed=seed), opts, seed=seed)


def register_objective(name: str, builder: Callable[..., Objective], *, help: str) -> None:
    """Register ``builder`` in :data:`~musiclens.train.base.OBJECTIVES` as ``name`` unless the name is taken
    (a module imported again keeps the first registration)."""
    if name not in OBJECTIVES:
        OBJECTIVES.register(name, builder, help=help)
