"""Attention maps of one clip, ``[layers, heads, tokens, tokens]``, from any network that exposes them.

Sources (:data:`ATTENTION_SOURCES`, tried in order on the built model):

``hf``
    a Hugging Face extractor (:class:`~musiclens.extract.hf.HFExtractor`: wav2vec2, HuBERT,
    data2vec-audio, MERT, Whisper encoder, AST) through its ``extract_attentions`` (eager
    attention for that call);
``backbone``
    a musiclens :class:`~musiclens.train.base.Backbone` (e.g. the ViT-1D) through
    ``forward(waveforms, output_attentions=True)``;
``checkpoint``
    a musiclens checkpoint extractor whose module is such a backbone.

Anything :func:`~musiclens.extract.runner.build_extractor` accepts (a registry name with options,
a Hugging Face directory, a musiclens checkpoint folder) is built first.  A model with no
attention (``cqt``, a CNN) raises :class:`~musiclens.errors.AnalysisError`.

Conventions: layer ``layer_01`` ... ``layer_L`` names the block whose *output* is that hidden
state (``layer_00``, the input embedding, has no attention).  The first ``n_special`` tokens are
the special tokens (class token...).  ``frame_times`` are the sequence tokens' centres, seconds
(HF: the extractor's own times; backbones: ``(j + 0.5) / frame_rate_hz``, as the checkpoint
extractor).  Tokens that share a frame time (AST's frequency patches) are collapsed into one
frame token: a frame's *row* is the mean of its tokens' rows, its *column* the sum of its
tokens' columns, so every row still sums to 1.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from musiclens.errors import AnalysisError
from musiclens.extract.base import layer_name, resolve_layers
from musiclens.registry import Registry
from musiclens.ssm.frames import group_tokens_by_time

__all__ = ["AttentionMaps", "AttentionSource", "ATTENTION_SOURCES", "attention_source", "attention_maps",
           "collapse_tokens"]

logger = logging.getLogger(__name__)


@dataclass
class AttentionMaps:
    """Attention of one clip.

    Attributes
    ----------
    maps
        ``[shape=(n_layers, n_heads, n_special + T, n_special + T)]`` float32, rows = queries
        (each sums to 1), columns = keys.
    layer_names
        One name per entry of the first axis.
    n_special
        Leading special tokens.
    frame_times
        ``[shape=(T,)]`` seconds, the sequence tokens' centres.
    clip_id, network
        Identifiers for tables.
    """

    maps: np.ndarray
    layer_names: list[str]
    n_special: int
    frame_times: np.ndarray
    clip_id: str = "clip"
    network: str = "network"

    def __post_init__(self) -> None:
        self.maps = np.asarray(self.maps, dtype=np.float32)
        self.frame_times = np.asarray(self.frame_times, dtype=np.float64)
        if self.maps.ndim != 4 or self.maps.shape[2] != self.maps.shape[3]:
            raise AnalysisError(f"attention maps must be [layers, heads, tokens, tokens], got {self.maps.shape}")
        if self.maps.shape[0] != len(self.layer_names):
            raise AnalysisError(f"{self.maps.shape[0]} attention layers but {len(self.layer_names)} layer names")
        if self.maps.shape[2] != self.n_special + self.frame_times.size:
            raise AnalysisError(
                f"attention over {self.maps.shape[2]} tokens, but n_special={self.n_special} + "
                f"{self.frame_times.size} frame times"
            )

    @property
    def n_heads(self) -> int:
        return int(self.maps.shape[1])

    @property
    def n_frames(self) -> int:
        return int(self.frame_times.size)

    @property
    def frame_rate_hz(self) -> float:
        return float(1.0 / np.median(np.diff(self.frame_times))) if self.n_frames > 1 else float("nan")

    @property
    def sequence(self) -> np.ndarray:
        """Sequence-to-sequence attention ``[shape=(n_layers, n_heads, T, T)]``."""
        s = self.n_special
        return self.maps[:, :, s:, s:]

    @property
    def special_rows(self) -> np.ndarray:
        """Attention of the special tokens to the sequence ``[shape=(n_layers, n_heads, n_special, T)]``."""
        s = self.n_special
        return self.maps[:, :, :s, s:]

    def mean_heads(self) -> np.ndarray:
        """Head-averaged maps ``[shape=(n_layers, n_special + T, n_special + T)]`` (PAPERS §2.9 step 1)."""
        return self.maps.mean(axis=1)

    def select(self, layers: str | int | Sequence[str | int] | None) -> AttentionMaps:
        names = resolve_layers(self.layer_names, layers)
        idx = [self.layer_names.index(n) for n in names]
        return AttentionMaps(self.maps[idx], names, self.n_special, self.frame_times, self.clip_id, self.network)


def collapse_tokens(att: np.ndarray, *, n_special: int, token_times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Collapse sequence tokens that share a time into one frame token.

    Parameters
    ----------
    att
        ``[shape=(..., n_special + n_tokens, n_special + n_tokens)]``.
    n_special
        Leading special tokens (kept as they are).
    token_times
        ``[shape=(n_tokens,)]`` non-decreasing.

    Returns
    -------
    (att, frame_times)
        ``[shape=(..., n_special + T, n_special + T)]`` with frame rows = mean of token rows and
        frame columns = sum of token columns; ``[shape=(T,)]`` unique times.
    """
    times, groups = group_tokens_by_time(token_times)
    if times.size == np.asarray(token_times).size:
        return att, times
    s = n_special
    idx = [np.arange(k, k + 1) for k in range(s)] + [g + s for g in groups]
    rows = np.stack([att[..., g, :].mean(axis=-2) for g in idx], axis=-2)
    return np.stack([rows[..., :, g].sum(axis=-1) for g in idx], axis=-1), times


class AttentionSource(Protocol):
    """What :func:`attention_maps` needs from a network."""

    name: str
    sample_rate: int
    layer_names: list[str]

    def attentions(self, clip: np.ndarray, layers: list[str]) -> tuple[dict[str, np.ndarray], int, np.ndarray]:
        """``({layer: [heads, N, N]}, n_special, token_times [N - n_special])`` of one clip."""
        ...


class _HFSource:
    def __init__(self, ext: Any) -> None:
        self.ext = ext
        self.name = str(ext.name)
        self.sample_rate = int(ext.sample_rate)
        self.layer_names = list(ext.layer_names[1:])

    def attentions(self, clip: np.ndarray, layers: list[str]) -> tuple[dict[str, np.ndarray], int, np.ndarray]:
        maps = self.ext.extract_attentions(clip, layers=layers)
        n_special = int(getattr(self.ext, "n_special", 0))
        n = next(iter(maps.values())).shape[-1] - n_special
        times = np.asarray(self.ext._times(n), dtype=np.float64)
        times = times[np.isfinite(times)][:n]
        return maps, n_special, times


class _BackboneSource:
    def __init__(self, backbone: Any, name: str | None = None) -> None:
        self.backbone = backbone
        self.name = name or f"backbone:{getattr(backbone, 'family', type(backbone).__name__)}"
        self.sample_rate = int(backbone.sample_rate)
        self.layer_names = [layer_name(i) for i in range(1, int(backbone.n_layers) + 1)]

    def attentions(self, clip: np.ndarray, layers: list[str]) -> tuple[dict[str, np.ndarray], int, np.ndarray]:
        import torch

        bb = self.backbone.eval()
        device = next((p.device for p in bb.parameters()), torch.device("cpu"))
        x = torch.from_numpy(np.ascontiguousarray(clip, dtype=np.float32))[None].to(device)
        with torch.inference_mode():
            out = bb(x, output_attentions=True)
        if not out.attentions:
            raise AnalysisError(f"{self.name}: forward(output_attentions=True) returned no attention maps")
        if len(out.attentions) != len(self.layer_names):
            raise AnalysisError(f"{self.name}: {len(out.attentions)} attention maps for {len(self.layer_names)} layers")
        s = int(out.n_special)
        n = int(bb.n_frames(clip.size))
        maps = {name: out.attentions[self.layer_names.index(name)][0, :, :s + n, :s + n].float().cpu().numpy()
                for name in layers}
        times = (np.arange(n, dtype=np.float64) + 0.5) / float(bb.frame_rate_hz)
        return maps, s, times


def _is_backbone(obj: Any) -> bool:
    try:
        from musiclens.train.base import Backbone
    except ImportError:  # pragma: no cover - torch missing
        return False
    return isinstance(obj, Backbone)


#: Adapters ``name -> (matches(model) -> bool, build(model) -> AttentionSource)``, tried in order.
ATTENTION_SOURCES: Registry[tuple[Callable[[Any], bool], Callable[[Any], AttentionSource]]] = Registry("attention source")
ATTENTION_SOURCES.register("hf", (lambda m: callable(getattr(m, "extract_attentions", None)), _HFSource),
                           help="Hugging Face extractors (extract_attentions, eager attention)")
ATTENTION_SOURCES.register("backbone", (_is_backbone, _BackboneSource),
                           help="musiclens Backbones (forward(output_attentions=True))")
ATTENTION_SOURCES.register(
    "checkpoint",
    (lambda m: _is_backbone(getattr(m, "module", None)), lambda m: _BackboneSource(m.module, name=str(m.name))),
    help="musiclens checkpoints of transformer backbones",
)


def attention_source(model: Any, **build_options: Any) -> AttentionSource:
    """An :class:`AttentionSource` for ``model`` (a built extractor, a Backbone, or a spec).

    Raises
    ------
    AnalysisError
        The model exposes no attention maps (e.g. ``cqt``, a CNN, a checkpoint of a
        non-transformer backbone).
    """
    if isinstance(model, (str, os.PathLike)):
        from musiclens.extract.runner import build_extractor

        model = build_extractor(model, **build_options)
    for name in ATTENTION_SOURCES.names():
        matches, build = ATTENTION_SOURCES.get(name)
        if matches(model):
            return build(model)
    label = getattr(model, "name", type(model).__name__)
    raise AnalysisError(
        f"model {label!r} exposes no attention maps: attention analysis needs a transformer, i.e. a Hugging Face "
        "family (wav2vec2, hubert, data2vec-audio, mert, whisper, ast) or a musiclens checkpoint / Backbone of a "
        "transformer (vit1d, ...). Use `musiclens ssm` for models without attention"
    )


def attention_maps(
    source: AttentionSource | Any,
    audio: np.ndarray,
    *,
    sample_rate: int,
    layers: str | int | Sequence[str | int] | None = None,
    clip_id: str = "clip",
    network: str | None = None,
) -> AttentionMaps:
    """Attention maps of one clip.

    Parameters
    ----------
    source
        An :class:`AttentionSource` (from :func:`attention_source`) or anything it accepts.
    audio
        ``[shape=(n_samples,)]`` (or ``(channels, n_samples)``) at ``sample_rate``; downmixed and
        resampled to the model's rate.
    sample_rate
        Hz.
    layers
        Block layers (``layer_01`` ...; names, indices into them, or ranges); default all.
    clip_id, network
        Identifiers (network defaults to the source's name).
    """
    from musiclens.audio import prepare

    is_source = callable(getattr(source, "attentions", None)) and hasattr(source, "layer_names")
    src = source if is_source else attention_source(source)
    names = resolve_layers(src.layer_names, layers)
    clip = prepare(np.asarray(audio), sample_rate=int(sample_rate), target_sr=src.sample_rate, name=clip_id)
    maps, n_special, times = src.attentions(clip, names)
    stacked = np.stack([np.asarray(maps[n], dtype=np.float32) for n in names])
    stacked, frame_times = collapse_tokens(stacked, n_special=n_special, token_times=times)
    return AttentionMaps(stacked, names, n_special, frame_times, clip_id, network or src.name)


def describe_sources() -> Mapping[str, str]:
    return ATTENTION_SOURCES.describe()
