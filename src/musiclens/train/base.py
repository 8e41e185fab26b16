"""The training contract: backbones, objectives and the data they ask for.

Everything in :mod:`musiclens.train` meets at three small things:

- a **backbone** (:class:`Backbone`): a network that maps waveforms ``[batch, n_samples]`` to
  per-layer hidden states; one family per file in :mod:`musiclens.train.models`, a dataclass
  config each, registered in :data:`musiclens.extract.checkpoint.MODELS` so that every checkpoint
  musiclens writes loads back as an extractor with all its layers;
- an **objective** (:class:`Objective`): an ``nn.Module`` that owns a backbone plus whatever heads,
  teachers and targets its loss needs, and turns a batch into ``{"loss": ..., <other scalars>}``;
  one per file in :mod:`musiclens.train.objectives`, registered in :data:`OBJECTIVES`;
- a **data spec** (:class:`DataSpec`): what an objective needs from the corpora (rate, crop,
  views, frame targets, corpus kinds), so the Lightning data module can build batches.

Randomness: the engine reseeds torch's global RNG from ``(seed, global_step)`` before every
training step, so masks, augmentations and dropout drawn from the global RNG (or from the
``generator`` passed to :meth:`Objective.training_loss`) are a function of the step: a run
resumed at step k draws exactly what an uninterrupted run draws.

Batches (``dict``): ``audio`` ``[batch, n_samples]`` float32 (``[batch, n_views, n_samples]``
when ``DataSpec.views > 1``); ``lengths`` ``[batch]`` int64 valid samples; frame targets at
``DataSpec.frame_rate``: ``piano_roll``/``onset_roll`` ``[batch, n_frames, 88]`` float32;
``phonemes`` (list of lists of phoneme strings) for speech; ``kind`` (list: "music"/"speech").
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from musiclens.errors import ConfigError
from musiclens.registry import Registry

__all__ = ["BackboneOutput", "Backbone", "DataSpec", "Objective", "OBJECTIVES", "config_from_dict",
           "config_to_dict", "step_generator"]

C = TypeVar("C")


def config_from_dict(cls: type[C], values: Mapping[str, Any] | None, *, where: str) -> C:
    """Build dataclass ``cls`` from ``values``; unknown keys raise :class:`ConfigError` naming the valid ones.

    ``where`` names the config section in the message (e.g. ``"objective 'ntxent' options"``).
    Lists are converted to tuples where the field default is a tuple.
    """
    values = dict(values or {})
    names = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - set(names))
    if unknown:
        import difflib

        hints = [f"{u!r} (did you mean {difflib.get_close_matches(u, names, n=1)[0]!r}?)"
                 if difflib.get_close_matches(u, names, n=1) else repr(u) for u in unknown]
        raise ConfigError(f"unknown key(s) {', '.join(hints)} in {where}; valid keys: {', '.join(sorted(names))}")
    for k, v in list(values.items()):
        f = names[k]
        if isinstance(v, list) and isinstance(f.default, tuple):
            values[k] = tuple(tuple(x) if isinstance(x, list) else x for x in v)
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"invalid {where}: {err}") from err


def config_to_dict(config: Any) -> dict[str, Any]:
    """JSON-ready dict of a dataclass config (tuples become lists)."""
    def conv(v: Any) -> Any:
        if isinstance(v, tuple | list):
            return [conv(x) for x in v]
        return v
    return {k: conv(v) for k, v in dataclasses.asdict(config).items()}


def step_generator(seed: int, step: int, *, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator seeded from ``(seed, step)``: the per-step randomness of training."""
    g = torch.Generator(device=device)
    g.manual_seed((int(seed) * 1_000_003 + int(step) * 7919 + 12345) % (2**63 - 1))
    return g


@dataclass
class BackboneOutput:
    """What a backbone returns.

    Attributes
    ----------
    hidden_states
        ``n_layers + 1`` tensors ``[batch, n_special + n_frames, dim]``; entry 0 is the input
        embedding / front-end output (Hugging Face's ``hidden_states[0]``).
    n_special
        Leading special tokens (the ViT-1D class token: 1), excluded from frame-level losses.
    attentions
        Per layer ``[batch, heads, tokens, tokens]`` when asked for, else ``None``.
    frame_mask
        ``[batch, n_frames]`` bool, True where a frame was masked (masked-prediction objectives).
    extras
        Anything family-specific an objective needs (e.g. un-masked conv features).
    """

    hidden_states: list[torch.Tensor]
    n_special: int = 0
    attentions: list[torch.Tensor] | None = None
    frame_mask: torch.Tensor | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def last(self) -> torch.Tensor:
        return self.hidden_states[-1]

    def frames(self, layer: int = -1) -> torch.Tensor:
        """Frame tokens of ``layer`` (special tokens removed), ``[batch, n_frames, dim]``."""
        return self.hidden_states[layer][:, self.n_special:]


class Backbone(nn.Module, ABC):
    """A network that turns waveforms into per-layer hidden states.

    Subclasses set :attr:`family` (their name in ``MODELS``) and keep their dataclass config in
    :attr:`config` (whose ``sample_rate`` field is :attr:`sample_rate` unless they override it).  They expose ``musiclens_layers`` (``{"layer_00": submodule path, ...}``)
    and ``extract_forward`` so checkpoints load as extractors (:mod:`musiclens.extract.checkpoint`).
    """

    family: str = ""
    config: Any

    @property
    def sample_rate(self) -> int:
        """Input rate, Hz (default: the config's ``sample_rate``)."""
        return int(self.config.sample_rate)

    @property
    @abstractmethod
    def frame_rate_hz(self) -> float:
        """Rate of the hidden states' frame tokens, Hz."""

    @property
    @abstractmethod
    def hidden_size(self) -> int:
        """Width of the hidden states."""

    @property
    @abstractmethod
    def n_layers(self) -> int:
        """Transformer layers (hidden states hold ``n_layers + 1`` entries)."""

    @abstractmethod
    def n_frames(self, n_samples: int) -> int:
        """Frame tokens produced for ``n_samples`` input samples."""

    @abstractmethod
    def forward(self, waveforms: torch.Tensor, *, frame_mask: torch.Tensor | None = None,
                output_attentions: bool = False) -> BackboneOutput:
        """Hidden states of ``waveforms`` ``[batch, n_samples]``; ``frame_mask`` ``[batch, n_frames]``
        replaces those frames' input embeddings by a learned mask embedding."""

    def extract_forward(self, waveforms: torch.Tensor) -> BackboneOutput:
        """Plain forward used by extraction hooks."""
        return self.forward(waveforms)

    def checkpoint_meta(self) -> dict[str, Any]:
        """Keyword arguments for :func:`musiclens.extract.checkpoint.save_checkpoint` besides the module."""
        from musiclens.train.base import config_to_dict

        return {"family": self.family, "config": config_to_dict(self.config), "sample_rate": self.sample_rate,
                "layers": dict(getattr(self, "musiclens_layers")), "to_frames": "btd",
                "frame_rate_hz": self.frame_rate_hz, "frame_offset_s": getattr(self, "frame_offset_s", None),
                "n_special": int(getattr(self, "n_special", 0))}

    def save(self, path: str | Path, *, extra: Mapping[str, Any] | None = None) -> Path:
        """Write this backbone as a musiclens checkpoint folder (loads back as an extractor)."""
        from musiclens.extract.checkpoint import save_checkpoint

        return save_checkpoint(self, path, **self.checkpoint_meta(), extra=extra)


@dataclass(frozen=True)
class DataSpec:
    """What an objective needs from the data.

    Attributes
    ----------
    sample_rate
        Rate the audio is resampled to, Hz.
    crop_s
        Crop length, s (``None``: whole items, padded to the longest in the batch).
    views
        Crops per item (2 for NT-Xent: temporally close crops of one clip).
    max_view_gap_s
        Largest distance between the starts of two views, s.
    frame_rate
        Rate of frame targets (piano roll, onsets), Hz; ``None`` when none are needed.
    targets
        Batch keys required besides ``audio`` (e.g. ``("piano_roll",)``, ``("phonemes",)``).
    kinds
        Corpus kinds accepted (``"music"``, ``"speech"``).
    """

    sample_rate: int
    crop_s: float | None = 4.0
    views: int = 1
    max_view_gap_s: float = 2.0
    frame_rate: float | None = None
    targets: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ("music", "speech")


class Objective(nn.Module, ABC):
    """A loss over a backbone: heads, teachers and targets included.

    Subclasses take ``(backbone, options)`` where ``options`` is their dataclass config, build
    everything in ``__init__`` (so parameters exist before the optimizer is made), and
    implement :meth:`training_loss`.  ``validation_metrics`` may add task scores (mir_eval F1...).
    """

    name: str = ""
    #: The learning bar this objective's runs are held to (see :mod:`musiclens.train.bar`): a
    #: validation metric, a threshold, a direction and optionally ``relative_to: init``.
    default_bar: dict[str, Any] | None = None
    #: True when some trainable parameter gets no gradient in a training step (e.g. a backbone's
    #: mask embedding under an objective that never masks): several processes then train with
    #: DDP's ``find_unused_parameters`` (a little slower), which DDP otherwise refuses.
    ddp_unused_parameters: bool = False

    def __init__(self, backbone: Backbone) -> None:
        super().__init__()
        self.backbone = backbone

    def learning_bar(self) -> dict[str, Any] | None:
        """The default learning bar of this objective instance (options may change it)."""
        return dict(self.default_bar) if self.default_bar else None

    @abstractmethod
    def data_spec(self) -> DataSpec:
        """What batches must contain."""

    @abstractmethod
    def training_loss(self, batch: Mapping[str, Any], *, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """``{"loss": scalar, **other scalars to log}`` for one batch."""

    def validation_loss(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """Validation scalars for one batch; default: the training loss with a fixed generator."""
        return self.training_loss(batch, generator=step_generator(0, 0))

    def validation_outputs(self, batch: Mapping[str, Any]) -> Any:
        """Per-batch data kept for :meth:`validation_metrics` (default: nothing)."""
        return None

    def validation_metrics(self, outputs: Sequence[Any]) -> dict[str, float]:
        """Epoch-level metrics from the collected :meth:`validation_outputs` (default: none)."""
        return {}

    def after_optimizer_step(self, step: int) -> None:
        """Hook after each optimizer step (EMA teachers update here)."""

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters the optimizer updates (EMA teachers and frozen targets excluded)."""
        return [p for p in self.parameters() if p.requires_grad]

    def prepare(self, batches: Callable[[], Any]) -> None:
        """Fit anything that must exist before training (e.g. a k-means teacher) from
        ``batches()``, an iterator of training batches. Default: nothing."""


#: Objectives by name: ``OBJECTIVES.get(name)`` is a builder ``(options: dict, model: dict) -> Objective``
#: where ``model`` is the ``model`` config section (``family``, ``config``, ``init_from``).
OBJECTIVES: Registry[Callable[[Mapping[str, Any], Mapping[str, Any]], Objective]] = Registry("objective")
