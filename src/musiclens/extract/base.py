"""The extraction contract: the `Extractor` protocol and the `Activations` container.

Any network — a Hugging Face checkpoint, a pretrained pitch tracker, a hand-crafted CQT, a
user's ``torch.nn.Module`` — becomes an :class:`Extractor`: it takes mono audio at its own
``sample_rate`` and returns :class:`Activations`, every requested layer as
``[n_stimuli, n_frames, dim]`` with frame times and valid lengths.

Layer names follow Hugging Face ``hidden_states``: ``layer_00`` is the input / front-end output
(``hidden_states[0]``), ``layer_01`` … ``layer_L`` the blocks upward.  Extractors with a different
structure (hooks, pretrained CNNs) use descriptive names but keep one order, input to output.

Special tokens (a class token, AST's two distillation tokens) are stored as the first
``n_special`` frames of every layer; ``frame_times`` is NaN for them and ``valid_frames`` counts
only the sequence frames that follow.  This module imports without torch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from musiclens.errors import ConfigError, ExtractionError
from musiclens.registry import Registry

__all__ = ["Extractor", "Activations", "resolve_layers", "POOLINGS", "EXTRACTORS", "layer_name"]

#: Builders of extractors by name: ``EXTRACTORS.get("cqt")(**options) -> Extractor``.
EXTRACTORS: Registry[Any] = Registry("extractor")

POOLINGS = ("mean", "max", "cls", "cls+mean", "first", "last", "frames")


def layer_name(index: int) -> str:
    """Conventional name of layer ``index``: ``layer_00``, ``layer_01``, ..."""
    return f"layer_{index:02d}"


@runtime_checkable
class Extractor(Protocol):
    """What musiclens needs from a network.

    Attributes
    ----------
    name
        Identifier recorded in manifests (e.g. ``"hf:wav2vec2"``, ``"cqt"``).
    sample_rate
        Rate in Hz the network expects; callers resample to it.
    layer_names
        All layers the extractor can return, input to output.
    frame_rate_hz
        Sequence frames per second of the (top) layers.
    """

    name: str
    sample_rate: int
    layer_names: list[str]
    frame_rate_hz: float

    def extract(
        self,
        audio: Sequence[np.ndarray],
        *,
        layers: Sequence[str] | None = None,
        stimulus_ids: Sequence[str] | None = None,
    ) -> Activations:
        """Activations of ``audio`` (mono float32 clips at :attr:`sample_rate`)."""
        ...

    def info(self) -> dict[str, Any]:
        """JSON-serialisable description for manifests (architecture, weights hash, options)."""
        ...


def resolve_layers(available: Sequence[str], spec: str | int | Sequence[str | int] | None) -> list[str]:
    """Turn a layer selection into names, in network order.

    Parameters
    ----------
    available
        The extractor's layer names, input to output.
    spec
        ``None`` or ``"all"`` (every layer); a name; an index (negative counts from the top); a
        range string ``"3:7"`` (Python slice semantics, indices) or ``"3-7"`` (inclusive); a
        comma-separated string of any of these; or a sequence of names and indices.

    Raises
    ------
    ConfigError
        An unknown name or an index out of range; the message lists the valid names.
    """
    names = list(available)
    if spec is None or spec == "all":
        return names
    items: list[str | int]
    if isinstance(spec, (int, np.integer)):
        items = [int(spec)]
    elif isinstance(spec, str):
        items = [s.strip() for s in spec.split(",") if s.strip()]
    else:
        items = list(spec)
    chosen: list[str] = []

    def fail(item: object) -> ConfigError:
        return ConfigError(
            f"unknown layer {item!r}; valid layers are {', '.join(names)} "
            f"(or indices 0..{len(names) - 1}, ranges like '2:5' or '2-5', or 'all')"
        )

    for item in items:
        if isinstance(item, (int, np.integer)) or (isinstance(item, str) and re.fullmatch(r"-?\d+", item)):
            i = int(item)
            if not -len(names) <= i < len(names):
                raise fail(item)
            chosen.append(names[i])
        elif isinstance(item, str) and item in names:
            chosen.append(item)
        elif isinstance(item, str) and (m := re.fullmatch(r"(-?\d*):(-?\d*)", item)):
            start = int(m.group(1)) if m.group(1) else None
            stop = int(m.group(2)) if m.group(2) else None
            part = names[slice(start, stop)]
            if not part:
                raise fail(item)
            chosen.extend(part)
        elif isinstance(item, str) and (m := re.fullmatch(r"(\d+)-(\d+)", item)):
            lo, hi = int(m.group(1)), int(m.group(2))
            if not (0 <= lo <= hi < len(names)):
                raise fail(item)
            chosen.extend(names[lo:hi + 1])
        else:
            raise fail(item)
    order = {n: i for i, n in enumerate(names)}
    return sorted(dict.fromkeys(chosen), key=order.__getitem__)


@dataclass
class Activations:
    """Per-layer activations of a batch of stimuli.

    Attributes
    ----------
    layers
        ``{layer_name: array [shape=(n_stimuli, n_frames, dim)]}``, float32, in network order.
        Frames past a stimulus' valid length are padding (zeros) and never enter pooling.
    frame_times
        ``[shape=(n_frames,)]`` seconds from the clip start to each frame's centre; NaN for the
        ``n_special`` leading special tokens.
    valid_frames
        ``[shape=(n_stimuli,)]`` number of valid *sequence* frames per stimulus.
    stimulus_ids
        One id per stimulus.
    n_special
        Leading special tokens (class token...) in every layer.
    extractor
        The extractor's :meth:`Extractor.info`, plus any input conversions.
    layer_frames
        Per-layer override ``{layer: (frame_times [shape=(n_frames_l,)], valid_frames
        [shape=(n_stimuli,)])}`` for layers whose frame axis differs from the shared one (e.g. a
        CNN's pooled stages); layers not listed use :attr:`frame_times` / :attr:`valid_frames`.
    """

    layers: dict[str, np.ndarray]
    frame_times: np.ndarray
    valid_frames: np.ndarray
    stimulus_ids: list[str]
    n_special: int = 0
    extractor: dict[str, Any] = field(default_factory=dict)
    layer_frames: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.layers:
            raise ExtractionError("Activations need at least one layer")
        n = len(self.stimulus_ids)
        self.valid_frames = np.asarray(self.valid_frames, dtype=np.int64)
        self.frame_times = np.asarray(self.frame_times, dtype=np.float64)
        self.layer_frames = {
            k: (np.asarray(t, dtype=np.float64), np.asarray(v, dtype=np.int64))
            for k, (t, v) in self.layer_frames.items() if k in self.layers
        }
        for name, arr in self.layers.items():
            if arr.ndim != 3 or arr.shape[0] != n:
                raise ExtractionError(
                    f"layer {name!r} has shape {arr.shape}; expected (n_stimuli={n}, n_frames, dim)"
                )
            times, valid = self.frames_of(name)
            if arr.shape[1] != times.shape[0]:
                raise ExtractionError(
                    f"layer {name!r} has {arr.shape[1]} frames but its frame_times has {times.shape[0]}"
                )
            if valid.shape != (n,):
                raise ExtractionError(f"valid_frames of {name!r} must have shape ({n},), got {valid.shape}")
            if (valid > arr.shape[1] - self.n_special).any():
                raise ExtractionError(f"valid_frames of {name!r} exceed its {arr.shape[1]} frames")

    def frames_of(self, layer: str) -> tuple[np.ndarray, np.ndarray]:
        """``(frame_times [shape=(n_frames,)], valid_frames [shape=(n_stimuli,)])`` of one layer."""
        return self.layer_frames.get(layer, (self.frame_times, self.valid_frames))

    @property
    def layer_names(self) -> list[str]:
        return list(self.layers)

    @property
    def n_stimuli(self) -> int:
        return len(self.stimulus_ids)

    def select(self, layers: str | int | Sequence[str | int] | None) -> Activations:
        """Keep only some layers (names, indices or ranges; see :func:`resolve_layers`)."""
        names = resolve_layers(self.layer_names, layers)
        return Activations(
            {n: self.layers[n] for n in names}, self.frame_times, self.valid_frames,
            list(self.stimulus_ids), self.n_special, dict(self.extractor),
            {n: f for n, f in self.layer_frames.items() if n in names},
        )

    def pool(
        self,
        method: str = "mean",
        *,
        frames: Sequence[int] | slice | None = None,
        time_range_s: tuple[float, float] | None = None,
    ) -> dict[str, np.ndarray]:
        """Pool every layer over time to ``[shape=(n_stimuli, dim)]``.

        Parameters
        ----------
        method
            ``"mean"`` over valid sequence frames (default), ``"max"`` over them, ``"cls"`` (the
            first special token), ``"cls+mean"`` (average of the class token and the mean of
            sequence tokens: the ViT-1D global feature), ``"first"`` / ``"last"`` valid sequence
            frame, or ``"frames"`` (mean over the sequence frames chosen by ``frames`` or
            ``time_range_s``, clipped to each stimulus' valid frames).
        frames
            Sequence-frame indices (0 = first sequence frame) for ``"frames"``.
        time_range_s
            ``(start, stop)`` seconds for ``"frames"``: frames whose centre lies in the interval.
        """
        if method not in POOLINGS:
            raise ConfigError(f"unknown pooling {method!r}; choose one of {', '.join(POOLINGS)}")
        if method in ("cls", "cls+mean") and self.n_special == 0:
            raise ConfigError(
                f"pooling {method!r} needs a class token, but extractor "
                f"{self.extractor.get('name', '?')!r} has none; use 'mean'"
            )
        out: dict[str, np.ndarray] = {}
        for name, arr in self.layers.items():
            times, valid_frames = self.frames_of(name)
            out[name] = self._pool_one(arr, times, valid_frames, method, frames, time_range_s)
        return out

    def _pool_one(
        self,
        arr: np.ndarray,
        times: np.ndarray,
        valid_frames: np.ndarray,
        method: str,
        frames: Sequence[int] | slice | None,
        time_range_s: tuple[float, float] | None,
    ) -> np.ndarray:
        s = self.n_special
        n_seq = times.shape[0] - s
        positions = np.arange(n_seq)
        valid = positions[None, :] < valid_frames[:, None]          # (n_stimuli, n_seq)
        if method == "frames":
            sel = np.zeros(n_seq, dtype=bool)
            if frames is not None:
                sel[np.arange(n_seq)[frames] if isinstance(frames, slice) else np.asarray(frames, int)] = True
            elif time_range_s is not None:
                t = times[s:]
                sel = (t >= time_range_s[0]) & (t < time_range_s[1])
            else:
                raise ConfigError("pooling 'frames' needs frames=... or time_range_s=(start, stop)")
            valid = valid & sel[None, :]
        if method in ("mean", "max", "cls+mean", "frames") and (valid.sum(1) == 0).any():
            bad = [self.stimulus_ids[i] for i in np.flatnonzero(valid.sum(1) == 0)[:5]]
            raise ExtractionError(f"no valid frames to pool for stimuli {bad}; choose other frames or longer clips")
        idx = np.arange(arr.shape[0])
        seq = arr[:, s:, :].astype(np.float64)
        if method in ("mean", "frames", "cls+mean"):
            w = valid.astype(np.float64)
            pooled = np.einsum("nt,ntd->nd", w, seq) / w.sum(1, keepdims=True)
            if method == "cls+mean":
                pooled = 0.5 * (pooled + arr[:, 0, :].astype(np.float64))
        elif method == "max":
            pooled = np.where(valid[:, :, None], seq, -np.inf).max(axis=1)
        elif method == "cls":
            pooled = arr[:, 0, :].astype(np.float64)
        elif method == "first":
            pooled = seq[:, 0, :]
        else:  # last
            pooled = seq[idx, np.maximum(valid_frames - 1, 0), :]
        return pooled.astype(np.float32)

    def sequence(self, layer: str, index: int) -> np.ndarray:
        """Valid sequence frames of one stimulus in one layer ``[shape=(n_valid, dim)]``."""
        s = self.n_special
        valid = self.frames_of(layer)[1]
        return self.layers[layer][index, s:s + int(valid[index]), :]

    @classmethod
    def concatenate(cls, parts: Sequence[Activations]) -> Activations:
        """Stack activations of disjoint stimulus batches (frames padded to the longest)."""
        if not parts:
            raise ExtractionError("nothing to concatenate")
        first = parts[0]
        names = first.layer_names
        for p in parts:
            if p.layer_names != names or p.n_special != first.n_special:
                raise ExtractionError("cannot concatenate activations with different layers or special tokens")
        layers: dict[str, np.ndarray] = {}
        frames: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name in names:
            per = [p.frames_of(name) for p in parts]
            n_frames = max(t.shape[0] for t, _ in per)
            longest = max(per, key=lambda f: f[0].shape[0])[0]
            arrays = []
            for p in parts:
                a = p.layers[name]
                pad = n_frames - a.shape[1]
                arrays.append(np.pad(a, ((0, 0), (0, pad), (0, 0))) if pad else a)
            layers[name] = np.concatenate(arrays, axis=0)
            frames[name] = (longest, np.concatenate([v for _, v in per]))
        shared_t, shared_v = frames[names[0]]
        overrides = {
            n: f for n, f in frames.items()
            if f[0].shape != shared_t.shape or not np.array_equal(f[0], shared_t, equal_nan=True)
            or not np.array_equal(f[1], shared_v)
        }
        return cls(
            layers, shared_t, shared_v, [i for p in parts for i in p.stimulus_ids], first.n_special,
            dict(first.extractor), overrides,
        )

    def to_mapping(self) -> Mapping[str, np.ndarray]:
        """The layer arrays, read-only view of :attr:`layers`."""
        return dict(self.layers)
