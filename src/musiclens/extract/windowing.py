"""Long audio: extract in windows and stitch the frames back together.

A clip of ``N`` samples is cut into windows of ``W = window_s * sr`` samples starting every
``H = hop_s * sr`` samples (``H <= W``): window ``k`` covers ``[k H, min(k H + W, N))``; the last
window may be shorter, and a clip no longer than ``W`` is a single window (no windowing).

**Stitching (overlap-trim).**  Every window is extracted with the same extractor (windows of
equal length share batches).  A frame's time is its window's start plus its time within the
window.  Window ``k`` *owns* the central part of its span, the times in
``[(k H + (W - H) / 2) / sr, (k H + (W + H) / 2) / sr)``; the first window also owns everything
before, the last everything after.  The owned parts tile the time line, so every output frame
comes from exactly one window: the one in which it sits furthest from an edge, i.e. with the
most context on both sides.  Use a hop that is a multiple of the network's frame period (e.g.
320 samples for wav2vec2 / MERT) so the stitched frames lie on the full-context grid.  Special
tokens (class tokens) are averaged over windows.

**Deviation from full context.**  Windowing is not exact: per-window normalisation (the
model's own zero-mean/unit-variance step runs on each window), time-normalising front ends
(``feat_extract_norm="group"``, MERT) and global self-attention all see only the window.
``tests/extract/test_windowing.py`` measures the relative RMS deviation of windowed from
full-context frames on a random tiny wav2vec2 (hidden 32, 2 layers; 3 s noisy tone; 1 s windows,
0.5 s hop): with ``feat_extract_norm="layer"`` and no input normalisation ``layer_00`` is exact
(0.0) and the transformer layers deviate by 5e-5 (layer 1) to 1e-4 (layer 2); per-window input
normalisation adds about 6e-4 at every layer; a ``"group"`` front end about 8e-3 at every
layer.  A random tiny model on a stationary tone uses little context, so these are lower bounds:
trained models on real music deviate more.  Measure your own model with this function against a
full-context run; musiclens records ``window_s`` / ``hop_s`` in the manifest so context length
can be treated as an experimental variable (PAPERS §3.5 #6).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from musiclens.errors import ConfigError, ExtractionError
from musiclens.extract.base import Activations, Extractor

__all__ = ["window_bounds", "extract_windowed"]

logger = logging.getLogger(__name__)


def window_bounds(n_samples: int, *, window: int, hop: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` sample ranges of the windows of a clip (see module docstring)."""
    if window < 1 or hop < 1 or hop > window:
        raise ConfigError(f"windowing needs 1 <= hop <= window (samples), got window={window}, hop={hop}")
    if n_samples <= window:
        return [(0, n_samples)]
    n_windows = 1 + -(-(n_samples - window) // hop)
    return [(k * hop, min(k * hop + window, n_samples)) for k in range(n_windows)]


def extract_windowed(
    extractor: Extractor,
    clips: Sequence[np.ndarray],
    *,
    window_s: float,
    hop_s: float | None = None,
    layers: str | int | Sequence[str | int] | None = None,
    stimulus_ids: Sequence[str] | None = None,
) -> Activations:
    """Activations of (long) clips extracted window by window and stitched by overlap-trim.

    Parameters
    ----------
    extractor
        Any extractor; clips must be mono at its ``sample_rate``.
    clips
        ``[shape=(n_samples,)]`` each.
    window_s
        Window length in seconds.
    hop_s
        Hop between window starts in seconds (default ``window_s / 2``).
    layers, stimulus_ids
        As in :meth:`Extractor.extract`.

    Returns
    -------
    Activations
        Frames on the stitched time axis; ``extractor["windowing"]`` records the parameters.
    """
    sr = int(extractor.sample_rate)
    hop_s = window_s / 2 if hop_s is None else hop_s
    window, hop = int(round(window_s * sr)), int(round(hop_s * sr))
    ids = [str(i) for i in (stimulus_ids if stimulus_ids is not None else range(len(clips)))]
    pieces: list[np.ndarray] = []
    owner: list[tuple[int, int, int]] = []        # (clip index, start sample, window position)
    spans: list[list[tuple[int, int]]] = []
    for i, clip in enumerate(clips):
        bounds = window_bounds(int(np.asarray(clip).shape[-1]), window=window, hop=hop)
        spans.append(bounds)
        for k, (lo, hi) in enumerate(bounds):
            pieces.append(np.asarray(clip)[lo:hi])
            owner.append((i, lo, k))
    piece_ids = [f"{ids[i]}@{lo}" for i, lo, _ in owner]
    acts = extractor.extract(pieces, layers=layers, stimulus_ids=piece_ids)
    s = acts.n_special
    layers_out: dict[str, np.ndarray] = {}
    frames_out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in acts.layer_names:
        times_w, valid_w = acts.frames_of(name)
        seq_t = times_w[s:]
        arr = acts.layers[name]
        per_clip: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        row = 0
        for i, bounds in enumerate(spans):
            vals, times, specials = [], [], []
            n_w = len(bounds)
            for k, (lo, _hi) in enumerate(bounds):
                v = int(valid_w[row])
                t = seq_t[:v] + lo / sr
                own_lo = -np.inf if k == 0 else (lo + (window - hop) / 2) / sr
                own_hi = np.inf if k == n_w - 1 else (lo + (window + hop) / 2) / sr
                keep = (t >= own_lo) & (t < own_hi)
                vals.append(arr[row, s:s + v][keep])
                times.append(t[keep])
                if s:
                    specials.append(arr[row, :s])
                row += 1
            spec = np.mean(specials, axis=0) if s else np.zeros((0, arr.shape[2]), np.float32)
            per_clip.append((np.concatenate(vals), np.concatenate(times), spec))
        n_frames = max(v.shape[0] for v, _, _ in per_clip)
        if n_frames == 0:
            raise ExtractionError(f"windowed extraction produced no frames for layer {name!r}; use longer windows")
        out = np.zeros((len(clips), s + n_frames, arr.shape[2]), dtype=np.float32)
        valid = np.zeros(len(clips), dtype=np.int64)
        for i, (v, _, spec) in enumerate(per_clip):
            out[i, :s] = spec
            out[i, s:s + v.shape[0]] = v
            valid[i] = v.shape[0]
        longest = max(per_clip, key=lambda p: p[1].shape[0])[1]
        times_all = np.concatenate([np.full(s, np.nan), longest]) if s else longest
        layers_out[name] = out
        frames_out[name] = (times_all, valid)
    first = acts.layer_names[0]
    info = dict(acts.extractor)
    info["windowing"] = {"window_s": window_s, "hop_s": hop_s, "stitching": "overlap-trim (central hop per window)"}
    shared_t, shared_v = frames_out[first]
    overrides = {k: f for k, f in frames_out.items() if k != first and (
        f[0].shape != shared_t.shape or not np.array_equal(f[0], shared_t, equal_nan=True)
        or not np.array_equal(f[1], shared_v))}
    return Activations(layers_out, shared_t, shared_v, ids, s, info, overrides)
