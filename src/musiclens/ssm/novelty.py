"""Foote checkerboard novelty on self-similarity matrices, peak picking and boundary scores.

Kernel (Foote 2000, Gaussian-tapered as in Müller's FMP notebooks, C4S4): for a half-width of
``L`` frames the kernel is ``2L x 2L`` over the offsets ``o = -L + 0.5, ..., L - 0.5`` frames,

    K[i, j] = sign(o_i) * sign(o_j) * exp(-(o_i^2 + o_j^2) / (2 (taper * L)^2))

so the past-past and future-future quadrants weigh +1, the cross quadrants -1.  The novelty at
index ``n`` compares frames ``n - L .. n - 1`` (past) with ``n .. n + L - 1`` (future): it
measures the boundary *between frames n - 1 and n*, at the time midway between their centres.
An even kernel (no centre row) makes a block boundary a unique maximum.

Edges: ``edge="normalize"`` (default) drops kernel cells outside the matrix and normalises the
positive and negative parts separately over the cells that remain,

    novelty[n] = sum(K+ * S) / sum(K+)  -  sum(K- * S) / sum(K-)     (valid cells only),

so a homogeneous stretch scores 0 right up to the matrix edges (zero padding, ``edge="zero"``
as in FMP, makes the edges look novel); where one part has no valid cell the novelty is 0.
Kernel quadrants then carry equal weight, and a perfect boundary of an SSM in ``[0, 1]`` scores 1.

Boundaries are scored with ``mir_eval.onset.f_measure`` at a tolerance ``window_s`` (default
0.5 s, the tolerance of mir_eval's / MIREX's structural boundary detection,
``mir_eval.segment.detection``): a one-to-one matching of estimated and reference times within
``window_s``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from musiclens.errors import AnalysisError, ConfigError
from musiclens.ssm.frames import PeakPicker

__all__ = ["checkerboard_kernel", "foote_novelty", "NoveltyConfig", "boundary_times", "score_boundaries",
           "BOUNDARY_PICKER"]

#: Default peak picker for novelty curves: one boundary per 0.5 s at most, a 2 s local mean.
BOUNDARY_PICKER = PeakPicker(pre_max_s=0.5, post_max_s=0.5, pre_avg_s=1.0, post_avg_s=1.0, wait_s=0.5, delta=0.05)


def checkerboard_kernel(half_width: int, *, taper: float = 0.5) -> np.ndarray:
    """Gaussian-tapered checkerboard kernel ``[shape=(2 * half_width, 2 * half_width)]``.

    Parameters
    ----------
    half_width
        ``L``, frames on each side of the boundary (>= 1).
    taper
        Standard deviation of the Gaussian taper in units of ``L`` (``inf``: no taper).
    """
    if half_width < 1:
        raise ConfigError(f"checkerboard half_width must be >= 1 frame, got {half_width}")
    if taper <= 0:
        raise ConfigError(f"taper must be positive, got {taper}")
    o = np.arange(-half_width, half_width) + 0.5
    g = np.exp(-(o ** 2) / (2 * (taper * half_width) ** 2)) if math.isfinite(taper) else np.ones_like(o)
    return np.outer(np.sign(o), np.sign(o)) * np.outer(g, g)


def foote_novelty(ssm: np.ndarray, *, half_width: int, taper: float = 0.5, edge: str = "normalize") -> np.ndarray:
    """Foote novelty of a self-similarity matrix.

    Parameters
    ----------
    ssm
        ``[shape=(T, T)]`` similarities; NaN cells count as missing (like cells off the edge).
    half_width, taper
        Kernel (see :func:`checkerboard_kernel`), frames.
    edge
        ``"normalize"`` (valid-cell normalisation, see the module docstring) or ``"zero"``
        (zero padding, the kernel normalised by its total absolute weight).

    Returns
    -------
    np.ndarray
        ``[shape=(T,)]``; entry ``n`` is the novelty of the boundary between frames ``n - 1``
        and ``n`` (entry 0: the start of the matrix, always 0 with ``"normalize"``).
    """
    s = np.asarray(ssm, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] != s.shape[1]:
        raise AnalysisError(f"an SSM must be square, got shape {s.shape}")
    if edge not in ("normalize", "zero"):
        raise ConfigError(f"edge must be 'normalize' or 'zero', got {edge!r}")
    k = checkerboard_kernel(half_width, taper=taper)
    n_frames, width = s.shape[0], 2 * half_width
    valid = np.isfinite(s)
    padded = np.zeros((n_frames + width, n_frames + width))
    padded[half_width:half_width + n_frames, half_width:half_width + n_frames] = np.where(valid, s, 0.0)
    mask = np.zeros_like(padded)
    mask[half_width:half_width + n_frames, half_width:half_width + n_frames] = valid
    kpos, kneg = np.clip(k, 0, None), np.clip(-k, 0, None)
    total = np.abs(k).sum()
    out = np.zeros(n_frames)
    for n in range(n_frames):
        win = padded[n:n + width, n:n + width]           # frames n - L .. n + L - 1
        if edge == "zero":
            out[n] = float((k * win).sum() / total * 2)
            continue
        m = mask[n:n + width, n:n + width]
        wp, wn = (kpos * m).sum(), (kneg * m).sum()
        if wp <= 0 or wn <= 0:
            continue
        out[n] = float((kpos * win).sum() / wp - (kneg * win).sum() / wn)
    return out


@dataclass(frozen=True)
class NoveltyConfig:
    """Foote novelty settings.

    Attributes
    ----------
    half_width_s
        Kernel half-width in seconds (frames = ``max(1, round(half_width_s * frame_rate))``).
    taper
        Gaussian standard deviation in units of the half-width.
    edge
        ``"normalize"`` or ``"zero"`` (see :func:`foote_novelty`).
    picker
        Peak picker of the novelty curve.
    window_s
        Scoring tolerance of ``mir_eval.onset.f_measure``, seconds.
    """

    half_width_s: float = 1.0
    taper: float = 0.5
    edge: str = "normalize"
    picker: PeakPicker = field(default_factory=lambda: BOUNDARY_PICKER)
    window_s: float = 0.5

    def __post_init__(self) -> None:
        if self.half_width_s <= 0 or self.window_s <= 0:
            raise ConfigError("NoveltyConfig.half_width_s and window_s must be positive seconds")

    def half_width(self, frame_rate: float) -> int:
        return max(1, int(round(self.half_width_s * frame_rate)))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["picker"] = self.picker.to_dict()
        return d


def boundary_times(indices: np.ndarray, frame_times: np.ndarray) -> np.ndarray:
    """Times of novelty indices: midway between the centres of frames ``n - 1`` and ``n``
    (index 0: half a hop before the first centre)."""
    t = np.asarray(frame_times, dtype=np.float64)
    idx = np.asarray(indices, dtype=np.int64)
    hop = float(np.median(np.diff(t))) if t.size > 1 else 0.0
    prev = np.where(idx > 0, t[np.clip(idx - 1, 0, None)], t[0] - hop)
    return 0.5 * (prev + t[idx])


def score_boundaries(reference: np.ndarray, estimated: np.ndarray, *, window_s: float = 0.5) -> dict[str, float]:
    """``{"f_measure", "precision", "recall"}`` of ``mir_eval.onset.f_measure`` at ``window_s``.

    An empty reference or estimate scores 0 (mir_eval's convention; its warning is silenced).
    """
    import warnings

    import mir_eval

    ref = np.sort(np.asarray(reference, dtype=np.float64))
    est = np.sort(np.asarray(estimated, dtype=np.float64))
    if ref.size == 0 or est.size == 0:
        return {"f_measure": 0.0, "precision": 0.0, "recall": 0.0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f, p, r = mir_eval.onset.f_measure(ref, est, window=window_s)
    return {"f_measure": float(f), "precision": float(p), "recall": float(r)}
