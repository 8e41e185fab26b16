"""Probe metrics under their libraries' names, with bootstrap intervals and permutation chance.

Every metric scores a :class:`Predictions` (targets, class scores, one evaluation group per
example, frame times for frame-level tasks) and is registered in :data:`METRICS`:

=====================================  =========  ===================================================
name                                   kind       definition
=====================================  =========  ===================================================
``accuracy``                           example    ``sklearn.metrics.accuracy_score`` of the argmax
``chroma_acc``                         example    hear-eval-kit's ``chroma_acc``: argmax class and
                                                  target agree modulo 12 (octave errors forgiven)
``key.weighted_score``                 example    ``mir_eval.key.weighted_score`` of the argmax key
``mAP``                                set        ``sklearn.metrics.average_precision_score``, macro
``roc_auc``                            set        ``sklearn.metrics.roc_auc_score``, macro
``chord.majmin``                       group      ``mir_eval.chord.evaluate(...)['majmin']``, frames
                                                  turned into intervals; pieces weighted by duration
``onset.f_measure``                    group      ``mir_eval.onset.f_measure`` (±50 ms) of peak-picked
                                                  frame activations; mean over pieces
``beat.f_measure``                     group      ``mir_eval.beat.f_measure`` (±70 ms), same picking
``multipitch.f_measure``               group      F of ``mir_eval.multipitch.metrics`` precision and
                                                  recall on the thresholded 88-key roll; frame-weighted
``transcription.f_measure_no_offset``  group      ``mir_eval.transcription.precision_recall_f1_overlap``
                                                  with ``offset_ratio=None`` (onsets ±50 ms)
=====================================  =========  ===================================================

Kinds decide how intervals and chance are computed: *example* metrics average one value per
example; *group* metrics average one value per evaluation group (piece) with a weight; *set*
metrics are recomputed on each resample.  For ``mAP``/``roc_auc`` the columns without both a
positive and a negative test example are left out of the macro average (scikit-learn would
raise or warn); with none left the score is NaN.

Conventions of the frame-level metrics (stated, not from a paper): a frame's interval is its
centre ± half a hop; onset/beat events are local maxima of the activation that reach
``threshold`` (default 0.5), placed at the frame centre; a note is a run of consecutive active
frames of one key.  mir_eval's beat evaluation trims beats before 5 s in ``evaluate``; here
``f_measure`` is applied untrimmed because probe clips are short.

This module imports without torch.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from musiclens.errors import AnalysisError, ConfigError
from musiclens.registry import Registry

__all__ = [
    "Predictions", "Metric", "METRICS", "score", "bootstrap_interval", "permutation_chance",
    "chroma_accuracy", "peak_pick", "frames_to_intervals", "chord_majmin", "roll_to_notes",
    "ONSET_WINDOW_S", "BEAT_WINDOW_S", "PEAK_THRESHOLD", "metric_reference",
]

ONSET_WINDOW_S = 0.05
BEAT_WINDOW_S = 0.07
PEAK_THRESHOLD = 0.5
PIANO_LOW = 21


@dataclass
class Predictions:
    """A probe's outputs on one split.

    Attributes
    ----------
    targets
        Multiclass: ``[shape=(n,)]`` class indices.  Multilabel: ``[shape=(n, n_outputs)]`` 0/1.
    scores
        ``[shape=(n, n_outputs)]`` probabilities (softmax for multiclass, sigmoid for multilabel).
    classes
        The label value of every output column (MIDI numbers, chord labels, key labels...).
    groups
        ``[shape=(n,)]`` evaluation group of each example (a stimulus for frame tasks: one piece
        or crop; the split group for global tasks); bootstraps resample them.
    times
        ``[shape=(n,)]`` frame-centre times in s (frame tasks), else ``None``.
    frame_rate
        Frames per second of the frame tasks.
    references
        Per evaluation group, the exact reference events: ``{"events": times}`` (onsets, beats),
        ``{"chords": (intervals, labels)}``, ``{"notes": (intervals, hz)}``.
    threshold
        Activation threshold of the peak picking and note decoding.
    """

    targets: np.ndarray
    scores: np.ndarray
    classes: list[Any]
    groups: np.ndarray
    times: np.ndarray | None = None
    frame_rate: float | None = None
    references: dict[str, dict[str, Any]] = field(default_factory=dict)
    threshold: float = PEAK_THRESHOLD

    def __post_init__(self) -> None:
        self.targets = np.asarray(self.targets)
        self.scores = np.asarray(self.scores, dtype=np.float64)
        self.groups = np.asarray(self.groups).astype(str)
        if self.scores.ndim != 2 or self.scores.shape[0] != self.targets.shape[0] or self.groups.shape != (len(self.scores),):
            raise AnalysisError(
                f"predictions are inconsistent: scores {self.scores.shape}, targets {self.targets.shape}, "
                f"groups {self.groups.shape}; expected (n, n_outputs), (n,) or (n, n_outputs), (n,)"
            )

    @property
    def multilabel(self) -> bool:
        return self.targets.ndim == 2

    def take(self, index: np.ndarray) -> Predictions:
        """The examples at ``index`` (repeats allowed)."""
        index = np.asarray(index, dtype=np.int64)
        return replace(self, targets=self.targets[index], scores=self.scores[index], groups=self.groups[index],
                       times=None if self.times is None else self.times[index])

    def group_index(self) -> dict[str, np.ndarray]:
        """``{group: example indices}``, each sorted by time when times exist."""
        out: dict[str, np.ndarray] = {}
        for g in dict.fromkeys(self.groups.tolist()):
            idx = np.flatnonzero(self.groups == g)
            if self.times is not None:
                idx = idx[np.argsort(self.times[idx], kind="stable")]
            out[g] = idx
        return out


@dataclass(frozen=True)
class Metric:
    """One registered metric.

    Attributes
    ----------
    kind
        ``"example"`` (``fn(pred) -> values [n]``), ``"group"`` (``fn(pred) -> (groups, values,
        weights)``) or ``"set"`` (``fn(pred) -> float``).
    fn
        The computation (see ``kind``).
    reference
        The library function it reproduces.
    """

    name: str
    kind: str
    fn: Callable[[Predictions], Any]
    reference: str


#: Metrics by name (see the module docstring).
METRICS: Registry[Metric] = Registry("probe metric")


def _register(name: str, kind: str, reference: str) -> Callable[[Callable[[Predictions], Any]], Callable[[Predictions], Any]]:
    def deco(fn: Callable[[Predictions], Any]) -> Callable[[Predictions], Any]:
        METRICS.register(name, Metric(name, kind, fn, reference), help=reference)
        return fn
    return deco


# ---------------------------------------------------------------------------------------- helpers
def chroma_accuracy(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray) -> float:
    """Fraction of predictions with the right pitch class (hear-eval-kit ``chroma_acc``).

    Parameters
    ----------
    y_true, y_pred
        ``[shape=(n,)]`` MIDI numbers.
    """
    t, p = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    return float(np.mean(t % 12 == p % 12))


def peak_pick(activation: np.ndarray, *, threshold: float = PEAK_THRESHOLD) -> np.ndarray:
    """Indices of local maxima of ``activation`` that reach ``threshold``.

    A frame is a peak when it is ``>`` its left neighbour, reaches ``threshold``, and the run of
    equal values it starts (a plateau, often one frame) is followed by a lower value or the end:
    the first frame of a plateau wins.

    Parameters
    ----------
    activation
        ``[shape=(n_frames,)]`` frame activations (probabilities).
    """
    a = np.asarray(activation, dtype=np.float64)
    if a.size == 0:
        return np.zeros(0, dtype=np.int64)
    left = np.concatenate([[-np.inf], a[:-1]])
    # a rise into a frame starts a candidate; it is a peak if the plateau it starts then falls
    idx = np.flatnonzero((a >= threshold) & (a > left))
    keep = []
    for i in idx:
        j = i
        while j + 1 < a.size and a[j + 1] == a[i]:
            j += 1
        if j + 1 >= a.size or a[j + 1] < a[i]:
            keep.append(i)
    return np.asarray(keep, dtype=np.int64)


def frames_to_intervals(times: np.ndarray, labels: Sequence[Any], *, frame_rate: float) -> tuple[np.ndarray, list[Any]]:
    """Merge per-frame labels into labelled intervals.

    Frame ``i`` covers ``[times[i] - 0.5 / frame_rate, times[i] + 0.5 / frame_rate]`` (clipped at
    0); consecutive frames with the same label form one interval.

    Returns
    -------
    intervals, labels
        ``[shape=(m, 2)]`` seconds and ``m`` labels.
    """
    t = np.asarray(times, dtype=np.float64)
    if t.size == 0:
        return np.zeros((0, 2)), []
    half = 0.5 / float(frame_rate)
    starts = np.maximum(t - half, 0.0)
    ends = t + half
    out_iv: list[list[float]] = []
    out_lab: list[Any] = []
    for s, e, lab in zip(starts, ends, labels):
        if out_lab and out_lab[-1] == lab:
            out_iv[-1][1] = float(e)
        else:
            if out_iv:
                s = out_iv[-1][1]  # contiguous
            out_iv.append([float(s), float(e)])
            out_lab.append(lab)
    return np.asarray(out_iv, dtype=np.float64), out_lab


def chord_majmin(ref_intervals: np.ndarray, ref_labels: Sequence[str], est_intervals: np.ndarray,
                 est_labels: Sequence[str]) -> tuple[float, float]:
    """``mir_eval.chord.evaluate(...)['majmin']`` and the duration it is computed over.

    Returns
    -------
    score, weight
        The weighted accuracy and the total duration (s) of reference segments that the
        ``majmin`` comparison does not exclude (the weight that pools pieces).
    """
    import mir_eval

    est_intervals, est_labels = mir_eval.util.adjust_intervals(
        np.asarray(est_intervals, dtype=float), list(est_labels), np.min(ref_intervals), np.max(ref_intervals),
        mir_eval.chord.NO_CHORD, mir_eval.chord.NO_CHORD)
    intervals, r, e = mir_eval.util.merge_labeled_intervals(np.asarray(ref_intervals, dtype=float), list(ref_labels),
                                                            est_intervals, est_labels)
    durations = mir_eval.util.intervals_to_durations(intervals)
    comparisons = mir_eval.chord.majmin(r, e)
    weight = float(durations[comparisons >= 0].sum())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = float(mir_eval.chord.weighted_accuracy(comparisons, durations)) if weight > 0 else 0.0
    return value, weight


def roll_to_notes(times: np.ndarray, roll: np.ndarray, *, frame_rate: float,
                  low_midi: int = PIANO_LOW) -> tuple[np.ndarray, np.ndarray]:
    """Notes of a binary roll: runs of consecutive active frames of one key.

    Parameters
    ----------
    times
        ``[shape=(n_frames,)]`` frame centres, s.
    roll
        ``[shape=(n_frames, n_keys)]`` bool; column ``k`` is MIDI ``low_midi + k``.

    Returns
    -------
    intervals, pitches_hz
        ``[shape=(m, 2)]`` s (first frame start to last frame end) and ``[shape=(m,)]`` Hz, the
        input of ``mir_eval.transcription``.
    """
    half = 0.5 / float(frame_rate)
    t = np.asarray(times, dtype=np.float64)
    ivs: list[tuple[float, float]] = []
    hz: list[float] = []
    r = np.asarray(roll, dtype=bool)
    for k in range(r.shape[1]):
        col = np.concatenate([[False], r[:, k], [False]]).astype(np.int8)
        d = np.diff(col)
        for on, off in zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)):
            ivs.append((max(t[on] - half, 0.0), t[off - 1] + half))
            hz.append(440.0 * 2.0 ** ((low_midi + k - 69) / 12.0))
    return np.asarray(ivs, dtype=np.float64).reshape(-1, 2), np.asarray(hz, dtype=np.float64)


def _argmax_values(pred: Predictions) -> tuple[np.ndarray, np.ndarray]:
    if pred.multilabel:
        raise ConfigError("this metric needs a multiclass task (one class per example)")
    classes = np.asarray(pred.classes, dtype=object)
    return classes[pred.targets.astype(np.int64)], classes[np.argmax(pred.scores, axis=1)]


def _one_hot(pred: Predictions) -> np.ndarray:
    if pred.multilabel:
        return pred.targets.astype(np.int64)
    y = np.zeros(pred.scores.shape, dtype=np.int64)
    y[np.arange(len(y)), pred.targets.astype(np.int64)] = 1
    return y


def _macro(pred: Predictions, fn: Callable[..., float]) -> float:
    y = _one_hot(pred)
    pos = y.sum(0)
    ok = (pos > 0) & (pos < len(y))
    if not ok.any():
        return float("nan")
    return float(fn(y[:, ok], pred.scores[:, ok], average="macro"))


# ---------------------------------------------------------------------------------------- metrics
@_register("accuracy", "example", "sklearn.metrics.accuracy_score of the argmax class")
def _accuracy(pred: Predictions) -> np.ndarray:
    if pred.multilabel:
        raise ConfigError("accuracy needs a multiclass task")
    return (np.argmax(pred.scores, axis=1) == pred.targets.astype(np.int64)).astype(np.float64)


@_register("chroma_acc", "example", "hear-eval-kit chroma_acc: argmax MIDI class correct modulo 12")
def _chroma(pred: Predictions) -> np.ndarray:
    t, p = _argmax_values(pred)
    try:
        return (t.astype(np.int64) % 12 == p.astype(np.int64) % 12).astype(np.float64)
    except (TypeError, ValueError) as err:
        raise ConfigError("chroma_acc needs integer MIDI classes (the pitch task)") from err


@_register("key.weighted_score", "example", "mir_eval.key.weighted_score of the argmax key")
def _key_weighted(pred: Predictions) -> np.ndarray:
    import mir_eval

    t, p = _argmax_values(pred)
    cache: dict[tuple[str, str], float] = {}
    out = np.empty(len(t))
    for i, (a, b) in enumerate(zip(t, p)):
        k = (str(a), str(b))
        if k not in cache:
            cache[k] = float(mir_eval.key.weighted_score(*k))
        out[i] = cache[k]
    return out


@_register("mAP", "set", "sklearn.metrics.average_precision_score(average='macro')")
def _map(pred: Predictions) -> float:
    from sklearn.metrics import average_precision_score

    return _macro(pred, average_precision_score)


@_register("roc_auc", "set", "sklearn.metrics.roc_auc_score(average='macro')")
def _roc_auc(pred: Predictions) -> float:
    from sklearn.metrics import roc_auc_score

    return _macro(pred, roc_auc_score)


def _need_frames(pred: Predictions, name: str) -> float:
    if pred.times is None or pred.frame_rate is None:
        raise ConfigError(f"{name} needs frame-level predictions with frame times")
    return float(pred.frame_rate)


@_register("chord.majmin", "group", "mir_eval.chord.evaluate(...)['majmin'], duration-weighted over pieces")
def _chord(pred: Predictions) -> tuple[list[str], np.ndarray, np.ndarray]:
    fr = _need_frames(pred, "chord.majmin")
    groups, values, weights = [], [], []
    classes = np.asarray(pred.classes, dtype=object)
    for g, idx in pred.group_index().items():
        ref_iv, ref_lab = pred.references[g]["chords"]
        est_iv, est_lab = frames_to_intervals(pred.times[idx], list(classes[np.argmax(pred.scores[idx], axis=1)]),
                                              frame_rate=fr)
        v, w = chord_majmin(ref_iv, ref_lab, est_iv, est_lab)
        groups.append(g)
        values.append(v)
        weights.append(w)
    return groups, np.asarray(values), np.asarray(weights)


def _event_f(pred: Predictions, window: float, fn_name: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    import mir_eval

    _need_frames(pred, fn_name)
    fn = mir_eval.onset.f_measure if fn_name == "onset" else mir_eval.beat.f_measure
    groups, values = [], []
    for g, idx in pred.group_index().items():
        act = pred.scores[idx, 0]
        est = pred.times[idx][peak_pick(act, threshold=pred.threshold)]
        ref = np.asarray(pred.references[g]["events"], dtype=np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # mir_eval warns on empty event lists and returns 0
            if fn_name == "onset":
                v = fn(ref, est, window=window)[0]
            else:
                v = fn(ref, est, f_measure_threshold=window)
        groups.append(g)
        values.append(float(v))
    return groups, np.asarray(values), np.ones(len(values))


@_register("onset.f_measure", "group", "mir_eval.onset.f_measure(window=0.05) of peak-picked activations, mean over pieces")
def _onset_f(pred: Predictions) -> tuple[list[str], np.ndarray, np.ndarray]:
    return _event_f(pred, ONSET_WINDOW_S, "onset")


@_register("beat.f_measure", "group", "mir_eval.beat.f_measure(f_measure_threshold=0.07) of peak-picked activations, mean over pieces")
def _beat_f(pred: Predictions) -> tuple[list[str], np.ndarray, np.ndarray]:
    return _event_f(pred, BEAT_WINDOW_S, "beat")


def _freqs(roll: np.ndarray) -> list[np.ndarray]:
    return [440.0 * 2.0 ** ((PIANO_LOW + np.flatnonzero(row) - 69) / 12.0) for row in roll]


@_register("multipitch.f_measure", "group", "F-measure of mir_eval.multipitch.metrics Precision/Recall, frame-weighted")
def _multipitch(pred: Predictions) -> tuple[list[str], np.ndarray, np.ndarray]:
    import mir_eval

    _need_frames(pred, "multipitch.f_measure")
    groups, values, weights = [], [], []
    for g, idx in pred.group_index().items():
        t = pred.times[idx]
        ref = pred.targets[idx].astype(bool)
        est = pred.scores[idx] >= pred.threshold
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = mir_eval.multipitch.metrics(t, _freqs(ref), t, _freqs(est))
        p, r = float(m[0]), float(m[1])
        groups.append(g)
        values.append(0.0 if p + r == 0 else 2 * p * r / (p + r))
        weights.append(float(len(idx)))
    return groups, np.asarray(values), np.asarray(weights)


@_register("transcription.f_measure_no_offset", "group",
           "mir_eval.transcription.precision_recall_f1_overlap(offset_ratio=None), mean over pieces")
def _note_f(pred: Predictions) -> tuple[list[str], np.ndarray, np.ndarray]:
    import mir_eval

    fr = _need_frames(pred, "transcription.f_measure_no_offset")
    groups, values = [], []
    for g, idx in pred.group_index().items():
        ref_iv, ref_hz = pred.references[g]["notes"]
        est_iv, est_hz = roll_to_notes(pred.times[idx], pred.scores[idx] >= pred.threshold, frame_rate=fr)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if len(ref_iv) == 0 and len(est_iv) == 0:
                v = 1.0
            elif len(ref_iv) == 0 or len(est_iv) == 0:
                v = 0.0
            else:
                v = mir_eval.transcription.precision_recall_f1_overlap(
                    ref_iv, ref_hz, est_iv, est_hz, onset_tolerance=ONSET_WINDOW_S, offset_ratio=None)[2]
        groups.append(g)
        values.append(float(v))
    return groups, np.asarray(values), np.ones(len(values))


# ---------------------------------------------------------------------------------------- scoring
def score(metric: str | Metric, pred: Predictions) -> float:
    """The value of ``metric`` on ``pred``."""
    m = METRICS.get(metric) if isinstance(metric, str) else metric
    if m.kind == "example":
        return float(np.mean(m.fn(pred)))
    if m.kind == "group":
        _, v, w = m.fn(pred)
        return float(np.sum(v * w) / np.sum(w)) if np.sum(w) > 0 else float("nan")
    return float(m.fn(pred))


def unit_scores(metric: str | Metric, pred: Predictions) -> pd.Series | None:
    """``metric`` per evaluation group (piece, stimulus), the units of a paired contrast between
    two networks probed on the same test split: the group's own value for per-piece metrics
    (``kind="group"``), the mean over the group's examples for per-example metrics; ``None`` for
    metrics defined only on a whole set (mAP, ROC-AUC)."""
    m = METRICS.get(metric) if isinstance(metric, str) else metric
    if m.kind == "group":
        groups, v, _ = m.fn(pred)
        return pd.Series(np.asarray(v, dtype=np.float64), index=pd.Index([str(g) for g in groups], name="unit"))
    if m.kind == "example":
        vals = np.asarray(m.fn(pred), dtype=np.float64)
        return pd.Series(vals).groupby(pred.groups).mean().rename_axis("unit")
    return None


def _group_codes(pred: Predictions) -> tuple[np.ndarray, int]:
    _, codes = np.unique(pred.groups, return_inverse=True)
    return codes, int(codes.max()) + 1 if codes.size else 0


def bootstrap_interval(
    metric: str | Metric,
    pred: Predictions,
    *,
    over: str = "examples",
    n_bootstraps: int = 200,
    ci_level: float = 0.95,
    seed: int = 0,
    count_undefined: bool = False,
) -> tuple[float, float] | tuple[float, float, int]:
    """Percentile bootstrap interval of ``metric``.

    Resamples on which the metric is undefined (e.g. an F-measure of a resample without any
    positive target) are left out of the interval; with ``count_undefined`` their number is
    returned third, so callers can report it.

    Parameters
    ----------
    over
        ``"examples"`` (resample test examples) or ``"groups"`` (resample evaluation groups:
        pieces, instruments).  Group metrics always resample groups.
    n_bootstraps
        Resamples; ``0`` gives ``(nan, nan)``.
    """
    if over not in ("examples", "groups"):
        raise ConfigError(f"bootstrap over must be 'examples' or 'groups', got {over!r}")
    if n_bootstraps <= 0:
        return (float("nan"), float("nan"), 0) if count_undefined else (float("nan"), float("nan"))
    m = METRICS.get(metric) if isinstance(metric, str) else metric
    rng = np.random.default_rng(seed)
    alpha = (1.0 - ci_level) / 2.0
    if m.kind == "group":
        _, v, w = m.fn(pred)
        counts = rng.multinomial(len(v), np.full(len(v), 1.0 / len(v)), size=n_bootstraps).astype(float)
        den = counts @ w
        stats = np.where(den > 0, counts @ (v * w) / np.where(den > 0, den, 1.0), np.nan)
    elif m.kind == "example":
        vals = np.asarray(m.fn(pred), dtype=np.float64)
        if over == "examples":
            counts = rng.multinomial(len(vals), np.full(len(vals), 1.0 / len(vals)), size=n_bootstraps).astype(float)
            stats = counts @ vals / len(vals)
        else:
            codes, k = _group_codes(pred)
            sums, ns = np.bincount(codes, vals, k), np.bincount(codes, minlength=k).astype(float)
            counts = rng.multinomial(k, np.full(k, 1.0 / k), size=n_bootstraps).astype(float)
            stats = (counts @ sums) / (counts @ ns)
    else:
        stats = np.empty(n_bootstraps)
        if over == "examples":
            for b in range(n_bootstraps):
                stats[b] = m.fn(pred.take(rng.integers(0, len(pred.targets), len(pred.targets))))
        else:
            members = list(pred.group_index().values())
            for b in range(n_bootstraps):
                pick = rng.integers(0, len(members), len(members))
                stats[b] = m.fn(pred.take(np.concatenate([members[i] for i in pick])))
    finite = np.isfinite(stats)
    n_undefined = int((~finite).sum())
    stats = stats[finite]
    lo, hi = ((float("nan"), float("nan")) if stats.size == 0
              else (float(np.quantile(stats, alpha)), float(np.quantile(stats, 1.0 - alpha))))
    return (lo, hi, n_undefined) if count_undefined else (lo, hi)


def permutation_chance(metric: str | Metric, pred: Predictions, *, n_permutations: int | None = None,
                       seed: int = 0) -> float:
    """Expected score of predictions unrelated to the targets.

    The predictions are permuted against the targets (example and set metrics: across test
    examples; group metrics: across frames within each piece, keeping every piece's prediction
    statistics) and the metric averaged over ``n_permutations`` permutations (default 100, 20
    and 3 for example, set and group metrics).  A probe on features that carry no information
    about the labels scores this on average.
    """
    m = METRICS.get(metric) if isinstance(metric, str) else metric
    n_perm = n_permutations or {"example": 100, "set": 20, "group": 3}[m.kind]
    rng = np.random.default_rng(seed)
    vals = []
    n = len(pred.targets)
    groups = list(pred.group_index().values()) if m.kind == "group" else None
    for _ in range(n_perm):
        if groups is None:
            perm = rng.permutation(n)
        else:
            perm = np.arange(n)
            for idx in groups:
                perm[idx] = idx[rng.permutation(idx.size)]
        vals.append(score(m, replace(pred, scores=pred.scores[perm])))
    return float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")


def metric_reference(names: Sequence[str]) -> Mapping[str, str]:
    """``{metric: library function it reproduces}`` for manifests."""
    return {n: METRICS.get(n).reference for n in names}
