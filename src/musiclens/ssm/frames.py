"""Frame-domain helpers shared by the SSM and attention analyses.

- :func:`resample_frames`: features or labels computed at one frame rate, read at another
  (a network's token frame times).  The rule is explicit and stated in every result's config:

  ``"nearest"`` (default)
      each target time takes the source frame whose **centre is nearest** (ties go to the
      earlier frame).  Nothing is averaged, so a categorical label stays a label.
  ``"mean"``
      each target frame averages the source frames whose centre lies in its span
      ``[t - h/2, t + h/2)`` (``h`` = target hop); spans that hold no source centre fall back to
      the nearest frame.  Use it when the source rate is much higher than the target rate.
  ``"linear"``
      linear interpolation between the two neighbouring source centres (numeric features only).

  A target time farther than ``max_gap_s`` (default: one source hop) from every source centre is
  an :class:`~musiclens.errors.AnalysisError`: the two frame axes do not describe the same audio.

- :func:`chord_frames`, :func:`beat_positions`: labels of :class:`~musiclens.corpora.MusicLabels`
  read at frame times (continuous-time labels are *sampled* at the frame centres, no resampling).
- :func:`chord_changes`: the times where the chord changes (Foote novelty's ground truth).
- :class:`PeakPicker`: ``librosa.util.peak_pick`` with its windows given in seconds, converted
  to frames exactly as ``librosa.onset.onset_detect`` does.
- :func:`group_tokens_by_time`: tokens that share a frame time (AST's frequency patches)
  collapsed into one frame.

Torch-free.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from musiclens.errors import AnalysisError, ConfigError
from musiclens.registry import Registry

if TYPE_CHECKING:
    from musiclens.corpora.labels import MusicLabels

__all__ = ["RESAMPLE_RULES", "resample_frames", "frame_hop", "chord_frames", "chord_changes", "beat_positions",
           "PeakPicker", "group_tokens_by_time"]


def frame_hop(times: np.ndarray) -> float:
    """Median spacing of increasing frame times, seconds (``nan`` for fewer than two frames)."""
    t = np.asarray(times, dtype=np.float64)
    return float(np.median(np.diff(t))) if t.size > 1 else math.nan


def _nearest_index(source_times: np.ndarray, target_times: np.ndarray) -> np.ndarray:
    right = np.clip(np.searchsorted(source_times, target_times, side="left"), 0, source_times.size - 1)
    left = np.clip(right - 1, 0, source_times.size - 1)
    # ties (equal distance) go to the earlier frame
    use_left = np.abs(target_times - source_times[left]) <= np.abs(source_times[right] - target_times)
    return np.where(use_left, left, right)


def _nearest(values: np.ndarray, source_times: np.ndarray, target_times: np.ndarray) -> np.ndarray:
    return values[_nearest_index(source_times, target_times)]


def _mean(values: np.ndarray, source_times: np.ndarray, target_times: np.ndarray) -> np.ndarray:
    hop = frame_hop(target_times)
    if not np.isfinite(hop):
        return _nearest(values, source_times, target_times)
    lo = np.searchsorted(source_times, target_times - hop / 2, side="left")
    hi = np.searchsorted(source_times, target_times + hop / 2, side="left")
    out = _nearest(values, source_times, target_times).astype(np.float64)
    csum = np.concatenate([np.zeros((1,) + values.shape[1:]), np.cumsum(values, axis=0, dtype=np.float64)])
    has = hi > lo
    counts = (hi - lo)[has].reshape((-1,) + (1,) * (values.ndim - 1))
    out[has] = (csum[hi[has]] - csum[lo[has]]) / counts
    return out


def _linear(values: np.ndarray, source_times: np.ndarray, target_times: np.ndarray) -> np.ndarray:
    flat = values.reshape(values.shape[0], -1).astype(np.float64)
    out = np.stack([np.interp(target_times, source_times, flat[:, k]) for k in range(flat.shape[1])], axis=1)
    return out.reshape((target_times.size,) + values.shape[1:])


#: Resampling rules by name: ``rule(values, source_times, target_times) -> values at target_times``.
RESAMPLE_RULES: Registry[Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = Registry("resampling rule")
RESAMPLE_RULES.register("nearest", _nearest, help="the source frame whose centre is nearest (ties: earlier)")
RESAMPLE_RULES.register("mean", _mean, help="mean of the source frames centred inside the target frame's span")
RESAMPLE_RULES.register("linear", _linear, help="linear interpolation between neighbouring source centres")


def resample_frames(
    values: np.ndarray,
    *,
    source_times: np.ndarray,
    target_times: np.ndarray,
    rule: str = "nearest",
    max_gap_s: float | None = None,
) -> np.ndarray:
    """Read frame-level values at other frame times.

    Parameters
    ----------
    values
        ``[shape=(n_source, ...)]`` one row per source frame.
    source_times
        ``[shape=(n_source,)]`` increasing centres of the source frames, seconds.
    target_times
        ``[shape=(n_target,)]`` centres to read at, seconds.
    rule
        A name in :data:`RESAMPLE_RULES` (see the module docstring).
    max_gap_s
        Largest allowed distance from a target time to the nearest source centre; default one
        source hop (half a hop of slack on top of the nearest-centre distance).

    Returns
    -------
    np.ndarray
        ``[shape=(n_target, ...)]``.

    Raises
    ------
    AnalysisError
        Lengths disagree, source times do not increase, or a target time lies outside the
        source frames (the two frame axes do not cover the same audio).
    """
    values = np.asarray(values)
    src = np.asarray(source_times, dtype=np.float64)
    dst = np.asarray(target_times, dtype=np.float64)
    fn = RESAMPLE_RULES.get(rule)
    if values.shape[0] != src.size:
        raise AnalysisError(f"{values.shape[0]} source frames but {src.size} source times; give one time per frame")
    if src.size == 0:
        raise AnalysisError("no source frames to resample from")
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise AnalysisError("frame times must be finite (drop special tokens, whose time is NaN, first)")
    if np.any(np.diff(src) <= 0):
        raise AnalysisError("source frame times must increase strictly")
    gap = frame_hop(src) if max_gap_s is None else float(max_gap_s)
    if not np.isfinite(gap):
        gap = math.inf
    if dst.size:
        dist = np.abs(src[_nearest_index(src, dst)] - dst)
        worst = int(np.argmax(dist))
        if dist[worst] > gap + 1e-9:
            src_rate = 1 / frame_hop(src) if src.size > 1 else float("nan")
            raise AnalysisError(
                f"frame-rate mismatch: target frame at {dst[worst]:.3f} s is {dist[worst]:.3f} s from the nearest "
                f"source frame (source covers {src[0]:.3f}-{src[-1]:.3f} s at {src_rate:.3g} Hz; "
                f"allowed gap {gap:.3f} s). Compute the features over the same audio as the activations, "
                "or pass a larger max_gap_s"
            )
    return fn(values, src, dst)


# ---------------------------------------------------------------------- labels at frames
def _chord_key(label: str) -> tuple[int, tuple[int, ...], int]:
    import mir_eval

    root, bitmap, bass = mir_eval.chord.encode(label)
    return int(root), tuple(int(b) for b in bitmap), int(bass)


def chord_frames(labels: MusicLabels, times: np.ndarray, *, no_chord_as_class: bool = False) -> np.ndarray:
    """Chord class of every frame: ``[shape=(n_frames,)]`` int, equal ids = the same chord.

    Chords are compared by their mir_eval encoding (root, pitch-class bitmap, bass), so
    spellings of one chord (``"C:maj"``, ``"C"``) are the same class.  A frame takes the chord
    segment containing its centre; frames outside every segment are -1, and so are ``"N"``
    (no chord) frames unless ``no_chord_as_class`` makes ``"N"`` a class of its own.

    Raises
    ------
    AnalysisError
        The labels carry no chords.
    """
    if labels.chords is None:
        raise AnalysisError("these labels have no chords; same-chord SSMs and chord-change novelty need chord labels")
    keys: dict[tuple[int, tuple[int, ...], int], int] = {}
    starts = np.array([s for s, _, _ in labels.chords], dtype=np.float64)
    ends = np.array([e for _, e, _ in labels.chords], dtype=np.float64)
    none = _chord_key("N")
    codes = [_chord_key(lab) for _, _, lab in labels.chords]
    ids = np.array([-1 if c == none and not no_chord_as_class else keys.setdefault(c, len(keys)) for c in codes],
                   dtype=np.int64)
    t = np.asarray(times, dtype=np.float64)
    k = np.searchsorted(starts, t, side="right") - 1
    inside = (k >= 0) & (t < ends[np.clip(k, 0, None)])
    return np.where(inside, ids[np.clip(k, 0, None)], -1)


def chord_changes(labels: MusicLabels) -> np.ndarray:
    """``[shape=(n,)]`` times (s) where one sounding chord gives way to another: starts of
    segments whose chord (mir_eval encoding) differs from the previous segment's, both chords
    other than ``"N"`` (entries into and exits from silence are not chord changes)."""
    if labels.chords is None:
        raise AnalysisError("these labels have no chords; chord-change scoring needs chord labels")
    none = _chord_key("N")
    out = []
    prev = None
    for s, _, lab in labels.chords:
        key = _chord_key(lab)
        if prev is not None and key != prev and key != none and prev != none and s > 0:
            out.append(float(s))
        prev = key
    return np.asarray(out, dtype=np.float64)


def beat_positions(labels: MusicLabels, times: np.ndarray) -> np.ndarray:
    """Position within the bar (0 = downbeat, 1 = second beat...) of the beat sounding at each frame.

    A frame belongs to the latest beat at or before its centre; the position counts the beats
    since the latest downbeat at or before that beat.  Frames before the first beat or the first
    downbeat have no position: NaN.

    Returns
    -------
    np.ndarray
        ``[shape=(n_frames,)]`` float (whole numbers or NaN).
    """
    beats = np.asarray(labels.beats, dtype=np.float64)
    downs = np.asarray(labels.downbeats, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64)
    out = np.full(t.shape, np.nan)
    if beats.size == 0 or downs.size == 0:
        return out
    b = np.searchsorted(beats, t + 1e-9, side="right") - 1           # latest beat <= t
    ok = b >= 0
    beat_t = beats[np.clip(b, 0, None)]
    d = np.searchsorted(downs, beat_t + 1e-9, side="right") - 1       # latest downbeat <= that beat
    ok &= d >= 0
    down_t = downs[np.clip(d, 0, None)]
    first_beat_of_bar = np.searchsorted(beats, down_t - 1e-9, side="left")
    out[ok] = (np.clip(b, 0, None) - first_beat_of_bar)[ok]
    return out


# ---------------------------------------------------------------------- peak picking
@dataclass(frozen=True)
class PeakPicker:
    """``librosa.util.peak_pick`` with windows in seconds.

    A frame ``n`` of a curve normalised to ``[0, 1]`` (min-max) is a peak when it is the maximum
    of ``x[n - pre_max : n + post_max]``, exceeds the mean of ``x[n - pre_avg : n + post_avg]``
    by ``delta``, and lies ``wait`` frames after the previous peak.  Seconds become frames as in
    ``librosa.onset.onset_detect``: ``pre = int(pre_s * rate)``, ``post = int(post_s * rate) + 1``,
    ``wait = int(wait_s * rate)``; the defaults are librosa's onset-detection defaults, so the
    picker on a spectral-flux envelope reproduces ``librosa.onset.onset_detect``.

    Attributes
    ----------
    pre_max_s, post_max_s, pre_avg_s, post_avg_s, wait_s
        Windows, seconds.
    delta
        Threshold above the local mean, in units of the normalised curve.
    normalize
        Min-max normalise the curve first (a constant curve has no peaks).
    """

    pre_max_s: float = 0.03
    post_max_s: float = 0.0
    pre_avg_s: float = 0.10
    post_avg_s: float = 0.10
    wait_s: float = 0.03
    delta: float = 0.07
    normalize: bool = True

    def __post_init__(self) -> None:
        for name in ("pre_max_s", "post_max_s", "pre_avg_s", "post_avg_s", "wait_s"):
            if getattr(self, name) < 0:
                raise ConfigError(f"PeakPicker.{name} must be >= 0 seconds, got {getattr(self, name)}")

    def frames(self, frame_rate: float) -> dict[str, int]:
        """The librosa arguments (frames) at ``frame_rate`` Hz."""
        r = float(frame_rate)
        return {"pre_max": int(self.pre_max_s * r), "post_max": int(self.post_max_s * r) + 1,
                "pre_avg": int(self.pre_avg_s * r), "post_avg": int(self.post_avg_s * r) + 1,
                "wait": int(self.wait_s * r)}

    def pick(self, curve: np.ndarray, *, frame_rate: float) -> np.ndarray:
        """Indices ``[shape=(n_peaks,)]`` of the peaks of ``curve`` ``[shape=(n_frames,)]``."""
        import librosa

        x = np.asarray(curve, dtype=np.float64)
        if x.size == 0 or not np.isfinite(x).all():
            return np.zeros(0, dtype=np.int64)
        if self.normalize:
            span = x.max() - x.min()
            if span <= 0:
                return np.zeros(0, dtype=np.int64)
            x = (x - x.min()) / span
        return np.asarray(librosa.util.peak_pick(x, **self.frames(frame_rate), delta=self.delta), dtype=np.int64)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------- tokens -> frames
def group_tokens_by_time(times: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Group sequence tokens that share a frame time (AST: ``f_dim`` frequency patches per time).

    Parameters
    ----------
    times
        ``[shape=(n_tokens,)]`` finite token times, non-decreasing.

    Returns
    -------
    (frame_times, groups)
        Unique times ``[shape=(n_frames,)]`` and, per frame, the token indices at that time.
    """
    t = np.asarray(times, dtype=np.float64)
    if t.size and np.any(np.diff(t) < 0):
        raise AnalysisError("token times must not decrease; reorder tokens time-major first")
    uniq, starts = np.unique(t, return_index=True)
    bounds = list(starts) + [t.size]
    return uniq, [np.arange(bounds[k], bounds[k + 1]) for k in range(uniq.size)]


def tokens_per_frame(times: np.ndarray) -> int:
    """1 when every token has its own time, else the (constant) number of tokens per time."""
    _, groups = group_tokens_by_time(times)
    sizes = {g.size for g in groups}
    if len(sizes) > 1:
        raise AnalysisError(f"tokens per frame time vary ({sorted(sizes)}); cannot group them into frames")
    return sizes.pop() if sizes else 1


def pool_rows(values: np.ndarray, groups: Sequence[np.ndarray]) -> np.ndarray:
    """Mean of ``values`` ``[shape=(n_tokens, ...)]`` over each token group -> ``[shape=(n_frames, ...)]``."""
    return np.stack([values[g].mean(axis=0) for g in groups]) if groups else values[:0]
