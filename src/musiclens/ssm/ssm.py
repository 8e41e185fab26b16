"""Self-similarity matrices (SSMs) of layer activations and of reference features / labels.

Layer SSMs (PAPERS §2.10): per layer, the **cosine** similarity of the valid sequence tokens
(special tokens dropped; tokens sharing a frame time, AST's frequency patches, are averaged
into one frame first), ``[T, T]``.

Reference SSMs (:data:`REFERENCE_SSMS`), one per clip and frame axis, built at the layer's
frame times:

``chroma``          cosine SSM of ``librosa.feature.chroma_cqt`` (harmony);
``mfcc``            cosine SSM of ``librosa.feature.mfcc`` (20 coefficients, c0 dropped,
                    each coefficient z-scored over the clip: timbre without loudness);
``onset_strength``  ``1 - |o_i - o_j|`` of the min-max-normalised ``librosa.onset.onset_strength``;
``tempogram``       cosine SSM of ``librosa.feature.tempogram`` over a 2 s window (rhythm);
``same_chord``      1 where frames share a chord (mir_eval encoding), else 0; NaN where no chord
                    sounds (``"N"`` or outside the chord segments): same-chord is undefined
                    there, and silence would otherwise dominate the comparison with any
                    loudness-sensitive feature;
``same_beat_position``  1 where frames sit at the same position within the bar, else 0;
                    NaN before the first beat/downbeat.

Audio features are computed at ``feature_hop`` samples (librosa's centred frames: frame ``k`` is
centred at ``k * hop / sr``) and read at the token frame times by the resampling rule of
:mod:`musiclens.ssm.frames` (default ``"nearest"``: the feature frame whose centre is
nearest).  Label SSMs sample the labels at the token frame centres directly.

Comparison (:func:`ssm_correlation`): Pearson (``"pearson"``) or Spearman (``"spearman"``,
Pearson of average ranks, as ``scipy.stats.spearmanr``) over the **upper triangle** of both
matrices, main diagonal excluded, plus ``exclude_band`` further near-diagonal diagonals
(pairs ``|i - j| <= exclude_band`` are dropped), and any pair where either matrix is NaN.  A
constant vector has no correlation: NaN.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from musiclens.errors import AnalysisError, ConfigError
from musiclens.registry import Registry
from musiclens.ssm.frames import beat_positions, chord_frames, resample_frames

if TYPE_CHECKING:
    from musiclens.corpora.labels import MusicLabels

__all__ = ["cosine_ssm", "label_ssm", "REFERENCE_SSMS", "ReferenceContext", "reference_ssms", "ssm_correlation",
           "CORRELATIONS", "upper_triangle_mask"]

logger = logging.getLogger(__name__)


def cosine_ssm(features: np.ndarray) -> np.ndarray:
    """Cosine self-similarity ``[shape=(T, T)]`` of ``features`` ``[shape=(T, dim)]``.

    A zero row has similarity 0 with everything, itself included (as
    ``sklearn.metrics.pairwise.cosine_similarity``).
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise AnalysisError(f"features for an SSM must be [frames, dim], got shape {x.shape}")
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.where(norm > 0, norm, 1.0)
    return x @ x.T


def label_ssm(labels: np.ndarray) -> np.ndarray:
    """``[shape=(T, T)]`` 1 where frame labels are equal, 0 where not, NaN where either is NaN."""
    lab = np.asarray(labels, dtype=np.float64)
    out = (lab[:, None] == lab[None, :]).astype(np.float64)
    bad = ~np.isfinite(lab)
    out[bad, :] = np.nan
    out[:, bad] = np.nan
    return out


@dataclass
class ReferenceContext:
    """One clip, its labels and how to compute features; caches features across frame axes.

    Attributes
    ----------
    audio
        ``[shape=(n_samples,)]`` mono float32.
    sample_rate
        Hz.
    labels
        The clip's :class:`~musiclens.corpora.MusicLabels` (times relative to the clip start), or None.
    feature_hop
        Hop of the audio features, samples (a multiple of 64 suits ``chroma_cqt``'s 7 octaves).
    resample
        Rule reading feature frames at token times (:data:`~musiclens.ssm.frames.RESAMPLE_RULES`).
    """

    audio: np.ndarray
    sample_rate: int
    labels: MusicLabels | None = None
    feature_hop: int = 256
    resample: str = "nearest"
    _cache: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def feature(self, name: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """Feature frames ``[shape=(n_feature_frames, dim)]`` (computed once)."""
        if name not in self._cache:
            self._cache[name] = np.asarray(compute(), dtype=np.float64)
        return self._cache[name]

    def feature_times(self, n: int) -> np.ndarray:
        return np.arange(n, dtype=np.float64) * self.feature_hop / self.sample_rate

    def at(self, name: str, compute: Callable[[], np.ndarray], times: np.ndarray) -> np.ndarray:
        """Feature ``name`` read at ``times`` by :attr:`resample`."""
        f = self.feature(name, compute)
        return resample_frames(f, source_times=self.feature_times(f.shape[0]), target_times=times, rule=self.resample)

    def need_labels(self, what: str) -> MusicLabels:
        if self.labels is None:
            raise AnalysisError(f"the {what!r} reference SSM needs labels; this clip has none")
        return self.labels


def _chroma(ctx: ReferenceContext, times: np.ndarray) -> np.ndarray:
    import librosa

    return cosine_ssm(ctx.at("chroma", lambda: librosa.feature.chroma_cqt(
        y=ctx.audio, sr=ctx.sample_rate, hop_length=ctx.feature_hop).T, times))


def _mfcc(ctx: ReferenceContext, times: np.ndarray) -> np.ndarray:
    import librosa

    def compute() -> np.ndarray:
        m = librosa.feature.mfcc(y=ctx.audio, sr=ctx.sample_rate, n_mfcc=20, hop_length=ctx.feature_hop)[1:].T
        sd = m.std(axis=0)
        return (m - m.mean(axis=0)) / np.where(sd > 0, sd, 1.0)

    return cosine_ssm(ctx.at("mfcc", compute, times))


def _onset_envelope(ctx: ReferenceContext) -> np.ndarray:
    import librosa

    return librosa.onset.onset_strength(y=ctx.audio, sr=ctx.sample_rate, hop_length=ctx.feature_hop)


def _onset_strength(ctx: ReferenceContext, times: np.ndarray) -> np.ndarray:
    def compute() -> np.ndarray:
        o = _onset_envelope(ctx)
        span = o.max() - o.min()
        return ((o - o.min()) / span if span > 0 else np.zeros_like(o))[:, None]

    o = ctx.at("onset_strength", compute, times)[:, 0]
    return 1.0 - np.abs(o[:, None] - o[None, :])


def _tempogram(ctx: ReferenceContext, times: np.ndarray) -> np.ndarray:
    import librosa

    def compute() -> np.ndarray:
        win = max(8, int(round(2.0 * ctx.sample_rate / ctx.feature_hop)))
        return librosa.feature.tempogram(onset_envelope=_onset_envelope(ctx), sr=ctx.sample_rate,
                                         hop_length=ctx.feature_hop, win_length=win).T

    return cosine_ssm(ctx.at("tempogram", compute, times))


def _same_chord(ctx: ReferenceContext, times: np.ndarray) -> np.ndarray:
    ids = chord_frames(ctx.need_labels("same_chord"), times).astype(np.float64)
    ids[ids < 0] = np.nan
    return label_ssm(ids)


def _same_beat_position(ctx: ReferenceContext, times: np.ndarray) -> np.ndarray:
    return label_ssm(beat_positions(ctx.need_labels("same_beat_position"), times))


#: Reference SSM builders: ``builder(context, frame_times) -> [T, T]``.
REFERENCE_SSMS: Registry[Callable[[ReferenceContext, np.ndarray], np.ndarray]] = Registry("reference SSM")
REFERENCE_SSMS.register("chroma", _chroma, help="cosine SSM of chroma_cqt (harmony)")
REFERENCE_SSMS.register("mfcc", _mfcc, help="cosine SSM of z-scored MFCC 1-19 (timbre)")
REFERENCE_SSMS.register("onset_strength", _onset_strength, help="1 - |difference| of normalised onset strength")
REFERENCE_SSMS.register("tempogram", _tempogram, help="cosine SSM of a 2 s tempogram (rhythm)")
REFERENCE_SSMS.register("same_chord", _same_chord, help="1 where the chord is the same (labels)")
REFERENCE_SSMS.register("same_beat_position", _same_beat_position, help="1 where the position in the bar is the same")

#: References that need labels (skipped, with a log line, for clips without them).
LABEL_REFERENCES = frozenset({"same_chord", "same_beat_position"})


def reference_ssms(
    context: ReferenceContext, *, frame_times: np.ndarray, references: Sequence[str] = tuple(REFERENCE_SSMS.names()),
) -> dict[str, np.ndarray]:
    """Reference SSMs ``{name: [shape=(T, T)]}`` of one clip at ``frame_times`` (seconds).

    Label references are left out (logged) when the clip has no labels or no chords.
    """
    out: dict[str, np.ndarray] = {}
    for name in references:
        builder = REFERENCE_SSMS.get(name)
        try:
            out[name] = builder(context, np.asarray(frame_times, dtype=np.float64))
        except AnalysisError as err:
            if name in LABEL_REFERENCES and ("labels" in str(err) or "chord" in str(err)):
                logger.info("reference %s skipped: %s", name, err)
                continue
            raise
    return out


def upper_triangle_mask(n: int, *, exclude_band: int = 0) -> np.ndarray:
    """``[shape=(n, n)]`` bool, True for pairs ``j - i > exclude_band`` (upper triangle, no diagonal)."""
    if exclude_band < 0:
        raise ConfigError(f"exclude_band must be >= 0, got {exclude_band}")
    return np.triu(np.ones((n, n), dtype=bool), k=1 + int(exclude_band))


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else float("nan")


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import rankdata

    return _pearson(rankdata(a), rankdata(b))


#: Correlations of SSM upper triangles by name.
CORRELATIONS: Registry[Callable[[np.ndarray, np.ndarray], float]] = Registry("SSM correlation")
CORRELATIONS.register("pearson", _pearson, help="Pearson r of the upper triangles")
CORRELATIONS.register("spearman", _spearman, help="Spearman rho (Pearson of average ranks)")


def ssm_correlation(a: np.ndarray, b: np.ndarray, *, method: str = "pearson", exclude_band: int = 0) -> tuple[float, int]:
    """Correlation of two SSMs' upper triangles.

    Parameters
    ----------
    a, b
        ``[shape=(T, T)]``.
    method
        ``"pearson"`` or ``"spearman"`` (:data:`CORRELATIONS`).
    exclude_band
        Near-diagonal pairs ``|i - j| <= exclude_band`` dropped besides the main diagonal.

    Returns
    -------
    (value, n_pairs)
        The correlation (NaN when either side is constant or fewer than 3 pairs remain) and the
        number of pairs used.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise AnalysisError(f"SSMs to compare must be square and of equal shape, got {a.shape} and {b.shape}")
    fn = CORRELATIONS.get(method)
    m = upper_triangle_mask(a.shape[0], exclude_band=exclude_band) & np.isfinite(a) & np.isfinite(b)
    n = int(m.sum())
    if n < 3:
        return float("nan"), n
    return fn(a[m], b[m]), n


def layer_frames(features: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sequence tokens ``[shape=(n_tokens, dim)]`` at ``times`` -> one vector per frame time.

    Tokens sharing a time (AST's frequency patches) are averaged; returns ``(frames, frame_times)``.
    """
    from musiclens.ssm.frames import group_tokens_by_time, pool_rows

    t = np.asarray(times, dtype=np.float64)
    if features.shape[0] != t.size:
        raise AnalysisError(f"{features.shape[0]} tokens but {t.size} token times")
    uniq, groups = group_tokens_by_time(t)
    if uniq.size == t.size:
        return np.asarray(features, dtype=np.float64), t
    return pool_rows(np.asarray(features, dtype=np.float64), groups), uniq


def describe_references() -> dict[str, Any]:
    """``{name: help}`` of the registered reference SSMs."""
    return REFERENCE_SSMS.describe()
