"""Inference for RSA: noise ceiling, tests, resampling, multiple-comparison correction, best layer.

Noise ceiling (:func:`noise_ceiling`), subjects = instruments, exactly rsatoolbox's
``boot_noise_ceiling(rdms, method)``:
    each subject RDM is compared with a pooled RDM of the others (lower bound, leave one out)
    and of all subjects (upper bound); the bounds are the means over subjects.  Pooling follows
    rsatoolbox ``util.inference_util.pool_rdm``: ``cosine`` averages RMS-normalised vectors,
    ``corr`` averages z-scored vectors, ``spearman``/``rho-a``/``tau-a`` average the ranks.

Tests, each one-sided (H1: similarity > 0):
    * :func:`t_test_greater`: one-sample t-test over subjects, ``t = mean / (sd / sqrt(n))``,
      ``n - 1`` degrees of freedom.
    * :func:`permutation_p`: stimulus-label permutation test, ``p = (1 + #{null >= obs}) / (1 + P)``
      (the observed labelling counts as one permutation, so ``p >= 1 / (P + 1)``); ``>=`` uses a
      tolerance of ``1e-12`` so floating-point noise never splits exact ties.
Correction over a family (layers × model RDMs by default): :func:`bonferroni` (``min(1, m p)``)
and :func:`benjamini_hochberg` (step-up adjusted p-values).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from musiclens.errors import ConfigError, InsufficientDataError
from musiclens.registry import Registry
from musiclens.rsa.compare import COMPARISONS, compare, rank

__all__ = [
    "noise_ceiling",
    "pool_rdms",
    "t_test_greater",
    "permutation_p",
    "percentile_ci",
    "bonferroni",
    "benjamini_hochberg",
    "CORRECTIONS",
    "condition_permutations",
    "bootstrap_indices",
    "best_layer_cv",
    "BestLayerResult",
    "P_TOLERANCE",
]

#: Absolute tolerance of the ``null >= observed`` comparison in permutation p-values.
P_TOLERANCE = 1e-12


def pool_rdms(vectors: np.ndarray, *, method: str) -> np.ndarray:
    """The pooled RDM that rsatoolbox's ``pool_rdm`` builds for ``method``.

    Parameters
    ----------
    vectors
        ``[shape=(n_subjects, n_pairs)]``.

    Returns
    -------
    np.ndarray
        ``[shape=(n_pairs,)]``.
    """
    v = np.asarray(vectors, dtype=float)
    meth = COMPARISONS.get(method)
    if meth.name == "cosine":
        return (v / np.sqrt(np.mean(v**2, axis=1, keepdims=True))).mean(axis=0)
    if meth.name == "corr":
        z = v - v.mean(axis=1, keepdims=True)
        z = z / z.std(axis=1, keepdims=True)
        pooled = z.mean(axis=0)
        return pooled - pooled.min()
    return rank(v).mean(axis=0)  # spearman, rho-a, tau-a: average ranks


def noise_ceiling(vectors: np.ndarray, *, method: str = "tau-a") -> tuple[float, float]:
    """Lower and upper noise-ceiling bounds with subjects as the RDM set.

    Parameters
    ----------
    vectors
        Subject RDMs ``[shape=(n_subjects, n_pairs)]``, ``n_subjects >= 2``.
    method
        Comparison method.

    Returns
    -------
    tuple
        ``(lower, upper)``, equal to ``rsatoolbox.inference.boot_noise_ceiling(RDMs(vectors), method)``.
    """
    v = np.asarray(vectors, dtype=float)
    if v.shape[0] < 2:
        raise InsufficientDataError(
            f"the noise ceiling needs at least 2 subjects (instruments); got {v.shape[0]}. "
            "Add instruments or disable the noise ceiling"
        )
    upper_pool = pool_rdms(v, method=method)
    upper = compare(v, upper_pool, method=method)[:, 0]
    lower = np.empty(v.shape[0])
    for s in range(v.shape[0]):
        others = np.delete(v, s, axis=0)
        lower[s] = compare(v[s], pool_rdms(others, method=method), method=method)[0, 0]
    return float(lower.mean()), float(upper.mean())


def t_test_greater(values: np.ndarray, *, axis: int = -1) -> np.ndarray:
    """One-sided one-sample t-test of ``mean > 0`` along ``axis``.

    Raises
    ------
    InsufficientDataError
        Fewer than 2 values, or zero variance (no test possible).
    """
    v = np.asarray(values, dtype=float)
    n = v.shape[axis]
    if n < 2:
        raise InsufficientDataError(
            f"a t-test across subjects needs at least 2 subjects (instruments); got {n}. "
            "Use test='permutation' or add instruments"
        )
    sd = v.std(axis=axis, ddof=1)
    if np.any(sd == 0):
        raise InsufficientDataError(
            "the per-subject values are identical, so the t-test is undefined; use test='permutation'"
        )
    t = v.mean(axis=axis) / (sd / np.sqrt(n))
    return stats.t.sf(t, n - 1)


def permutation_p(observed: np.ndarray, null: np.ndarray) -> np.ndarray:
    """One-sided permutation p-value ``(1 + #{null >= obs - tol}) / (1 + P)``.

    Parameters
    ----------
    observed
        ``[shape=(...)]``.
    null
        ``[shape=(..., P)]``.
    """
    observed = np.asarray(observed, dtype=float)
    null = np.asarray(null, dtype=float)
    count = (null >= observed[..., None] - P_TOLERANCE).sum(axis=-1)
    return (1.0 + count) / (1.0 + null.shape[-1])


def percentile_ci(samples: np.ndarray, *, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval along the last axis (linear interpolation, as ``np.percentile``)."""
    if not 0 < level < 1:
        raise ConfigError(f"confidence level must lie in (0, 1), got {level}")
    samples = np.asarray(samples, dtype=float)
    q = [50 * (1 - level), 50 * (1 + level)]
    if np.isnan(samples).any():   # resamples on which the statistic is undefined: left out (callers count them)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)   # an all-NaN row stays NaN and is refused later
            lo, hi = np.nanpercentile(samples, q, axis=-1)
        return lo, hi
    lo, hi = np.percentile(samples, q, axis=-1)
    return lo, hi


def bonferroni(p: np.ndarray) -> np.ndarray:
    """Bonferroni: ``min(1, m p)`` over the ``m`` p-values given."""
    p = np.asarray(p, dtype=float)
    return np.minimum(1.0, p * p.size)


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg step-up adjusted p-values (false discovery rate) over the family."""
    p = np.asarray(p, dtype=float)
    flat = p.ravel()
    m = flat.size
    order = np.argsort(flat, kind="mergesort")
    scaled = flat[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out.reshape(p.shape)


#: Multiple-comparison corrections by name.
CORRECTIONS: Registry = Registry("multiple-comparison correction")
CORRECTIONS.register("bonferroni", bonferroni)
CORRECTIONS.register("fdr_bh", benjamini_hochberg)


def condition_permutations(n: int, n_permutations: int, *, seed: int | np.random.Generator) -> np.ndarray:
    """``n_permutations`` random permutations of ``n`` condition labels ``[shape=(P, n)]``."""
    rng = np.random.default_rng(seed)
    if n_permutations < 0:
        raise ConfigError(f"n_permutations must be >= 0, got {n_permutations}")
    return np.argsort(rng.random((n_permutations, n)), axis=1).astype(np.int64)


def bootstrap_indices(n: int, n_bootstraps: int, *, seed: int | np.random.Generator) -> np.ndarray:
    """Resample counts ``[shape=(B, n)]``: how often each of ``n`` items is drawn with replacement."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(n_bootstraps, n))
    counts = np.zeros((n_bootstraps, n), dtype=np.int64)
    np.add.at(counts, (np.repeat(np.arange(n_bootstraps), n), draws.ravel()), 1)
    return counts


@dataclass(frozen=True)
class BestLayerResult:
    """Cross-validated best layer.

    Attributes
    ----------
    held_out
        Score of each held-out subject at the layer chosen without it ``[shape=(n_subjects,)]``.
    chosen
        Index of the layer chosen for each held-out subject ``[shape=(n_subjects,)]``.
    """

    held_out: np.ndarray
    chosen: np.ndarray

    @property
    def mode(self) -> int:
        """The layer chosen most often (ties: the lowest index)."""
        return int(np.bincount(self.chosen).argmax())


def best_layer_cv(values: np.ndarray) -> BestLayerResult:
    """Choose the best layer on held-out subjects (leave one subject out).

    For each subject ``s``, the layer with the highest mean score over the other subjects is
    chosen and ``s``'s own score at that layer is recorded, so the reported value is not
    inflated by choosing the maximum on the same data.

    Parameters
    ----------
    values
        Per-subject scores ``[shape=(n_layers, n_subjects)]``.
    """
    v = np.asarray(values, dtype=float)
    n_layers, n_subj = v.shape
    if n_subj < 2:
        raise InsufficientDataError("choosing the best layer on held-out subjects needs at least 2 subjects")
    total = v.sum(axis=1, keepdims=True)
    train_means = (total - v) / (n_subj - 1)            # [n_layers, n_subjects]
    chosen = np.argmax(train_means, axis=0)
    held_out = v[chosen, np.arange(n_subj)]
    return BestLayerResult(held_out=held_out, chosen=chosen)


def correct(p: np.ndarray, *, method: str) -> np.ndarray:
    """Apply the named correction (``"bonferroni"`` or ``"fdr_bh"``) over all of ``p``."""
    return CORRECTIONS.get(method)(p)


def family_sizes(groups: Sequence[str]) -> dict[str, int]:
    """Number of tests per family label."""
    out: dict[str, int] = {}
    for g in groups:
        out[g] = out.get(g, 0) + 1
    return out
