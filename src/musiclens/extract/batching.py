"""Batching that never changes the answer: padding only where it is harmless, buckets otherwise.

:class:`BatchedExtractor` is the shared base of musiclens' own extractors (hooks, Hugging Face,
MERT, checkpoints, hand-crafted baselines).  A subclass implements one method,
:meth:`BatchedExtractor._forward`, which receives clips that are either *all the same length*
or — only when the subclass declares ``padding_invariant = True`` — of mixed lengths, and
returns a :class:`LayerBatch` per requested layer.  :meth:`BatchedExtractor.extract` does the
rest: validation, the batch plan, and assembly into :class:`~musiclens.extract.base.Activations`
in the caller's order.

Why buckets: a network whose front end normalises over time (wav2vec2-base-like configs with
``feat_extract_norm="group"``, MERT; PAPERS §3.5 #19) gives different activations for a padded
clip even with an attention mask.  Such models only ever see batches of equal-length clips, so
batched extraction equals one-at-a-time extraction to float tolerance (tests check this).

This module imports without torch.
"""

from __future__ import annotations

import abc

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from musiclens.audio import validate
from musiclens.errors import AudioError, ConfigError, ExtractionError
from musiclens.extract.base import Activations, resolve_layers

__all__ = ["LayerBatch", "BatchedExtractor", "plan_batches", "centre_times"]

logger = logging.getLogger(__name__)


@dataclass
class LayerBatch:
    """One layer's output for one batch.

    Attributes
    ----------
    values
        ``[shape=(batch, n_special + n_frames, dim)]`` float32; frames past a clip's valid length
        may hold anything (they are zeroed on assembly).
    valid
        ``[shape=(batch,)]`` valid sequence frames per clip.
    times
        ``[shape=(n_special + n_frames,)]`` seconds from clip start to each frame's centre, NaN
        for special tokens.
    """

    values: np.ndarray
    valid: np.ndarray
    times: np.ndarray


def centre_times(n_frames: int, *, hop_s: float, offset_s: float = 0.0, n_special: int = 0) -> np.ndarray:
    """Frame-centre times ``offset_s + j * hop_s`` (seconds) with ``n_special`` leading NaNs."""
    t = offset_s + np.arange(n_frames, dtype=np.float64) * hop_s
    return np.concatenate([np.full(n_special, np.nan), t]) if n_special else t


def plan_batches(lengths: Sequence[int], *, batch_size: int, padding_invariant: bool) -> list[list[int]]:
    """Group clip indices into batches.

    Parameters
    ----------
    lengths
        Samples per clip.
    batch_size
        Maximum clips per batch (>= 1).
    padding_invariant
        When True, clips of any length share a batch (sorted by length, longest first, to waste
        little padding); when False, only clips of identical length share a batch (buckets).

    Returns
    -------
    list of list of int
        Batches of indices into ``lengths``; every index appears exactly once.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    n = len(lengths)
    if padding_invariant:
        order = sorted(range(n), key=lambda i: (-int(lengths[i]), i))
        return [order[i:i + batch_size] for i in range(0, n, batch_size)]
    buckets: dict[int, list[int]] = {}
    for i, length in enumerate(lengths):
        buckets.setdefault(int(length), []).append(i)
    out: list[list[int]] = []
    for length in sorted(buckets, reverse=True):
        idx = buckets[length]
        out.extend(idx[i:i + batch_size] for i in range(0, len(idx), batch_size))
    return out


class BatchedExtractor(abc.ABC):
    """Base of musiclens extractors: validation, a batch plan, and assembly.

    Subclasses set :attr:`name`, :attr:`sample_rate`, :attr:`layer_names`,
    :attr:`frame_rate_hz`, optionally :attr:`padding_invariant`, :attr:`n_special`,
    :attr:`min_samples`, and implement :meth:`_forward` and :meth:`info`.

    Attributes
    ----------
    batch_size
        Clips per forward pass.
    padding_invariant
        True only when padding a clip (with the model's mask) leaves its valid frames unchanged.
    min_samples
        Shortest clip, in samples, the network accepts (its receptive field).
    n_special
        Leading special tokens in every layer.
    """

    name: str = "extractor"
    sample_rate: int = 16000
    layer_names: list[str]
    frame_rate_hz: float = float("nan")
    batch_size: int = 8
    padding_invariant: bool = False
    min_samples: int = 1
    n_special: int = 0

    # ------------------------------------------------------------------ to implement
    @abc.abstractmethod
    def _forward(self, clips: list[np.ndarray], layers: list[str]) -> dict[str, LayerBatch]:
        """Run one batch; ``clips`` share a length unless :attr:`padding_invariant`."""

    def info(self) -> dict[str, Any]:
        """JSON-serialisable description for manifests."""
        return {
            "name": self.name, "class": type(self).__name__, "sample_rate": self.sample_rate,
            "frame_rate_hz": self.frame_rate_hz, "layers": list(self.layer_names),
        }

    # ------------------------------------------------------------------ shared
    def check_clips(self, audio: Sequence[np.ndarray], ids: Sequence[str]) -> list[np.ndarray]:
        """Validate mono clips at :attr:`sample_rate` (finite, non-empty, long enough)."""
        clips: list[np.ndarray] = []
        for a, sid in zip(audio, ids):
            arr = np.asarray(a)
            if arr.ndim != 1:
                raise AudioError(
                    f"{sid}: extractors take mono 1-D clips, got shape {arr.shape}; pass stereo audio "
                    "through musiclens.extract.extract_activations (which downmixes and records it)"
                )
            clips.append(validate(arr, name=str(sid), min_samples=self.min_samples))
        return clips

    def extract(
        self,
        audio: Sequence[np.ndarray],
        *,
        layers: str | int | Sequence[str | int] | None = None,
        stimulus_ids: Sequence[str] | None = None,
    ) -> Activations:
        """Activations of mono float32 clips at :attr:`sample_rate`.

        Parameters
        ----------
        audio
            Clips ``[shape=(n_samples,)]``; lengths may differ.
        layers
            Layer selection (see :func:`~musiclens.extract.base.resolve_layers`); default all.
        stimulus_ids
            One id per clip (default ``"0"``, ``"1"``, ...).

        Returns
        -------
        Activations
            Every requested layer ``[shape=(n_clips, n_frames, dim)]`` in input order.
        """
        names = resolve_layers(self.layer_names, layers)
        ids = [str(i) for i in (stimulus_ids if stimulus_ids is not None else range(len(audio)))]
        if len(ids) != len(audio):
            raise ConfigError(f"{len(audio)} clips but {len(ids)} stimulus ids")
        if not audio:
            raise AudioError("no clips to extract")
        clips = self.check_clips(audio, ids)
        plan = plan_batches([c.size for c in clips], batch_size=self.batch_size,
                            padding_invariant=self.padding_invariant)
        results: list[tuple[list[int], dict[str, LayerBatch]]] = []
        for batch in plan:
            out = self._forward([clips[i] for i in batch], names)
            missing = [n for n in names if n not in out]
            if missing:
                raise ExtractionError(f"{self.name}: forward pass returned no output for layers {missing}")
            results.append((batch, out))
        return self._assemble(results, names, ids)

    def _assemble(
        self, results: list[tuple[list[int], dict[str, LayerBatch]]], names: list[str], ids: list[str],
    ) -> Activations:
        n = len(ids)
        s = self.n_special
        layers: dict[str, np.ndarray] = {}
        frames: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name in names:
            parts = [(batch, out[name]) for batch, out in results]
            n_frames = max(p.values.shape[1] for _, p in parts)
            dim = parts[0][1].values.shape[2]
            arr = np.zeros((n, n_frames, dim), dtype=np.float32)
            valid = np.zeros(n, dtype=np.int64)
            times = max((p.times for _, p in parts), key=len)
            for batch, p in parts:
                if p.values.shape[2] != dim:
                    raise ExtractionError(f"{self.name}: layer {name!r} changed width between batches")
                v = np.asarray(p.valid, dtype=np.int64)
                for row, i in enumerate(batch):
                    k = s + int(v[row])
                    arr[i, :k] = p.values[row, :k]
                    valid[i] = v[row]
            layers[name] = arr
            frames[name] = (times, valid)
        shared_t, shared_v = frames[names[0]]
        overrides = {
            k: f for k, f in frames.items()
            if f[0].shape != shared_t.shape or not np.array_equal(f[0], shared_t, equal_nan=True)
            or not np.array_equal(f[1], shared_v)
        }
        return Activations(layers, shared_t, shared_v, ids, s, self.info(), overrides)
