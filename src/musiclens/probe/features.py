"""One view of the activations a probe reads: pooled per stimulus, or every frame.

:func:`as_feature_source` accepts

- an :class:`~musiclens.extract.base.Activations` (frames in memory),
- a feature-store folder (:class:`~musiclens.extract.store.FeatureStore`; a *pooled* store
  serves global tasks with its own pooling, a *full* store (``--pooling none``) serves any
  pooling and the frame tasks),
- an ``.npz`` file: one key per layer, ``[n, dim]`` (pooled) or ``[n, n_frames, dim]``
  (frames), optional keys ``stimulus_id``, ``frame_times`` ``[n_frames]`` (s, NaN for special
  tokens), ``valid_frames`` ``[n]``, ``n_special`` (scalar),
- a mapping ``{layer: [n, dim]}`` of pooled features.

Frames without frame times get centres ``(i + 0.5) / frame_rate_hz`` (``frame_rate_hz`` must
then be given).  This module imports without torch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from musiclens.errors import AnalysisError, ConfigError, DatasetError
from musiclens.extract.base import Activations

__all__ = ["FeatureSource", "as_feature_source"]


class FeatureSource:
    """Activations of ``n`` stimuli, per layer, pooled or framed.

    Parameters
    ----------
    layer_names
        Layers in network order.
    stimulus_ids
        One id per stimulus.
    pooled
        ``{layer: [shape=(n, dim)]}`` when only pooled features exist (``pooling`` names how).
    frames
        ``{layer: [shape=(n, n_frames, dim)]}`` (may be memory-mapped), including ``n_special``
        leading special tokens.
    frame_times
        ``{layer: [shape=(n_frames,)]}`` frame centres, s (NaN for special tokens).
    valid_frames
        ``{layer: [shape=(n,)]}`` valid sequence frames.
    n_special
        Leading special tokens.
    pooling
        The pooling of ``pooled`` (``None``: unknown, any request is served as stored).
    """

    def __init__(self, *, layer_names: Sequence[str], stimulus_ids: Sequence[str],
                 pooled: Mapping[str, np.ndarray] | None = None, frames: Mapping[str, np.ndarray] | None = None,
                 frame_times: Mapping[str, np.ndarray] | None = None,
                 valid_frames: Mapping[str, np.ndarray] | None = None, n_special: int = 0,
                 pooling: str | None = None, origin: str = "") -> None:
        self.layer_names = list(layer_names)
        self.stimulus_ids = [str(s) for s in stimulus_ids]
        self._pooled = dict(pooled or {})
        self._frames = dict(frames or {})
        self._times = dict(frame_times or {})
        self._valid = dict(valid_frames or {})
        self.n_special = int(n_special)
        self.stored_pooling = pooling
        self.origin = origin
        self._pool_cache: dict[tuple[str, str], np.ndarray] = {}

    @property
    def has_frames(self) -> bool:
        return bool(self._frames)

    def __len__(self) -> int:
        return len(self.stimulus_ids)

    def pooled(self, pooling: str, layer: str) -> np.ndarray:
        """``[shape=(n, dim)]`` float32 features of ``layer`` pooled by ``pooling``."""
        self._check_layer(layer)
        if not self._frames:
            if self.stored_pooling is not None and pooling != self.stored_pooling:
                raise ConfigError(
                    f"the activations {self.origin} hold features pooled by {self.stored_pooling!r}; "
                    f"pooling={pooling!r} needs frame-level activations (extract with --pooling none)"
                )
            return np.asarray(self._pooled[layer], dtype=np.float32)
        key = (pooling, layer)
        if key not in self._pool_cache:
            times, valid = self._times[layer], self._valid[layer]
            arr = self._frames[layer]
            parts = []
            for lo in range(0, len(self), 256):
                hi = min(lo + 256, len(self))
                act = Activations({layer: np.asarray(arr[lo:hi])}, times, valid[lo:hi], self.stimulus_ids[lo:hi],
                                  self.n_special)
                parts.append(act.pool(pooling)[layer])
            self._pool_cache[key] = np.concatenate(parts, axis=0)
        return self._pool_cache[key]

    def frames(self, layer: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(array [n, n_frames, dim], frame_times [n_frames], valid_frames [n])`` of ``layer``."""
        self._check_layer(layer)
        if not self._frames:
            raise ConfigError(
                f"frame-level tasks need every frame, but the activations {self.origin} are pooled; "
                "extract them with --pooling none (a full feature store)"
            )
        return self._frames[layer], self._times[layer], self._valid[layer]

    def _check_layer(self, layer: str) -> None:
        if layer not in self.layer_names:
            raise ConfigError(f"unknown layer {layer!r}; the activations have {', '.join(self.layer_names)}")


def _from_activations(act: Activations) -> FeatureSource:
    times = {n: act.frames_of(n)[0] for n in act.layer_names}
    valid = {n: act.frames_of(n)[1] for n in act.layer_names}
    return FeatureSource(layer_names=act.layer_names, stimulus_ids=act.stimulus_ids, frames=act.layers,
                         frame_times=times, valid_frames=valid, n_special=act.n_special, origin="(in memory)")


def _from_store(path: Path) -> FeatureSource:
    from musiclens.extract.store import FeatureStore

    store = FeatureStore(path)
    names = store.layer_names
    if store.mode == "pooled":
        return FeatureSource(layer_names=names, stimulus_ids=store.stimulus_ids,
                             pooled={n: store.layer(n) for n in names}, pooling=store.pooling,
                             n_special=store.n_special, origin=str(path))
    return FeatureSource(layer_names=names, stimulus_ids=store.stimulus_ids, frames={n: store.layer(n) for n in names},
                         frame_times={n: store.frame_times(n) for n in names},
                         valid_frames={n: store.valid_frames(n) for n in names}, n_special=store.n_special,
                         origin=str(path))


def _from_npz(path: Path, frame_rate_hz: float | None) -> FeatureSource:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (ValueError, OSError) as err:
        raise DatasetError(f"cannot read {path} as an .npz of numeric arrays ({err}); save ids with dtype=str") from err
    ids = arrays.pop("stimulus_id", None)
    times = arrays.pop("frame_times", None)
    valid = arrays.pop("valid_frames", None)
    n_special = int(arrays.pop("n_special", 0))
    if not arrays:
        raise AnalysisError(f"{path} holds no layer arrays")
    ndims = {a.ndim for a in arrays.values()}
    if len(ndims) != 1 or ndims.pop() not in (2, 3):
        raise AnalysisError(f"{path}: layers must all be [n, dim] (pooled) or all [n, frames, dim]")
    names = list(arrays)
    n = len(next(iter(arrays.values())))
    id_list = [str(s) for s in ids.tolist()] if ids is not None else [str(i) for i in range(n)]
    if next(iter(arrays.values())).ndim == 2:
        return FeatureSource(layer_names=names, stimulus_ids=id_list, pooled=arrays, origin=str(path))
    n_frames = next(iter(arrays.values())).shape[1]
    if times is None:
        if frame_rate_hz is None:
            raise ConfigError(f"{path} holds frames but no 'frame_times'; pass frame_rate_hz (--frame-rate)")
        seq = (np.arange(n_frames - n_special) + 0.5) / float(frame_rate_hz)
        times = np.concatenate([np.full(n_special, np.nan), seq])
    if valid is None:
        valid = np.full(n, n_frames - n_special, dtype=np.int64)
    return FeatureSource(layer_names=names, stimulus_ids=id_list, frames=arrays,
                         frame_times={k: np.asarray(times, float) for k in names},
                         valid_frames={k: np.asarray(valid, np.int64) for k in names}, n_special=n_special,
                         origin=str(path))


def as_feature_source(obj: Any, *, stimulus_ids: Sequence[str] | None = None,
                      frame_rate_hz: float | None = None) -> FeatureSource:
    """Wrap activations of any supported form (see the module docstring)."""
    if isinstance(obj, FeatureSource):
        return obj
    if isinstance(obj, Activations):
        return _from_activations(obj)
    if isinstance(obj, (str, os.PathLike)):
        path = Path(obj)
        if path.is_dir():
            return _from_store(path)
        if path.is_file():
            return _from_npz(path, frame_rate_hz)
        raise DatasetError(f"activations {path} do not exist; give a feature-store folder or an .npz file")
    if isinstance(obj, Mapping):
        arrays = {str(k): np.asarray(v) for k, v in obj.items()}
        if any(a.ndim != 2 for a in arrays.values()):
            raise AnalysisError("a mapping of activations must hold pooled [n, dim] arrays; wrap frames in Activations")
        n = len(next(iter(arrays.values())))
        ids = [str(s) for s in stimulus_ids] if stimulus_ids is not None else [str(i) for i in range(n)]
        return FeatureSource(layer_names=list(arrays), stimulus_ids=ids, pooled=arrays, origin="(mapping)")
    raise ConfigError(f"cannot read activations from {type(obj).__name__}; give Activations, a store, an .npz or a mapping")
