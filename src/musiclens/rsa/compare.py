"""RDM comparison methods, defined exactly as rsatoolbox defines them.

All methods compare RDM vectors ``a``, ``b`` ``[shape=(n_pairs,)]`` (``N = n_pairs``):

``tau-a`` (default)
    Kendall's τ_a: ``τ_a = sum_{p<q} sign(a_p - a_q) sign(b_p - b_q) / (N (N - 1) / 2)``.  Tied
    pairs count 0 in the numerator and stay in the denominator, so a model with ties (the binary
    chroma RDM) is not rewarded for them (rsatoolbox ``'tau-a'``, Nili et al. 2014).
``spearman``
    Pearson correlation of average ranks (ties get the mean of their ranks; rsatoolbox
    ``'spearman'``).
``rho-a``
    ``12 / (N^3 - N) * sum_p (r_p - (N+1)/2) (s_p - (N+1)/2)`` with average ranks ``r``, ``s``:
    Spearman's ρ without a tie correction in the denominator (rsatoolbox ``'rho-a'``).
``corr``
    Pearson correlation: both vectors centred, then cosine (rsatoolbox ``'corr'``).
``cosine``
    ``a . b / (|a| |b|)`` without centring (rsatoolbox ``'cosine'``).

Every method except τ_a is an inner product of transformed vectors, ``t(a) . t(b)``, where
``t`` is permutation-equivariant (it commutes with reordering the pairs); the batched engine in
:mod:`musiclens.rsa.batched` relies on that.  τ_a is computed from exact integer counts
``C = sum_{p<q} sign(a_p - a_q) sign(b_p - b_q)``: for a model with two levels (binary) through
the Mann–Whitney identity ``C = 2 sum_{p: b_p = max} r_p - n_1 (N + 1)`` (``r`` the average ranks
of ``a``, ``n_1`` the number of pairs at the upper level); otherwise as an inner product of sign
vectors of length ``N (N - 1) / 2`` (float32 sums of ±1 below 2**24 are exact).

The one difference from rsatoolbox: a zero-norm vector makes rsatoolbox return 0; musiclens
raises, because it only arises from constant RDMs, which :mod:`musiclens.rsa.rdm` rejects.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

from musiclens.errors import AnalysisError
from musiclens.registry import Registry

__all__ = [
    "COMPARISONS",
    "ComparisonMethod",
    "compare",
    "rank",
    "tau_a_counts",
    "sign_vectors",
    "pair_indices",
]


def rank(v: np.ndarray) -> np.ndarray:
    """Average ranks (1-based, ties share their mean rank) along the last axis."""
    return rankdata(np.asarray(v, dtype=float), method="average", axis=-1)


def _unit(v: np.ndarray, *, what: str, strict: bool = True) -> np.ndarray:
    norm = np.sqrt(np.einsum("...i,...i->...", v, v))
    if not strict:  # rsatoolbox's convention: a zero-norm vector has similarity 0 with everything
        return np.divide(v, norm[..., None], out=np.zeros_like(v), where=norm[..., None] > 0)
    if np.any(norm == 0):
        raise AnalysisError(
            f"{what}: an RDM vector has zero norm after the comparison's transform (a constant RDM); "
            "constant RDMs cannot be compared, drop them"
        )
    return v / norm[..., None]


def _t_cosine(v: np.ndarray, strict: bool = True) -> np.ndarray:
    return _unit(v, what="cosine", strict=strict)


def _t_corr(v: np.ndarray, strict: bool = True) -> np.ndarray:
    return _unit(v - v.mean(axis=-1, keepdims=True), what="corr", strict=strict)


def _t_spearman(v: np.ndarray, strict: bool = True) -> np.ndarray:
    r = rank(v)
    return _unit(r - r.mean(axis=-1, keepdims=True), what="spearman", strict=strict)


def _t_rho_a(v: np.ndarray, strict: bool = True) -> np.ndarray:
    r = rank(v)
    n = v.shape[-1]
    return (r - r.mean(axis=-1, keepdims=True)) * np.sqrt(12.0 / (n**3 - n))


@dataclass(frozen=True)
class ComparisonMethod:
    """One comparison method.

    Attributes
    ----------
    name
        rsatoolbox's name for it.
    transform
        For inner-product methods, ``t(v, strict=True) [shape=(..., n_pairs)] -> same shape``, so
        that the comparison is ``t(a) . t(b)``; ``None`` for τ_a.  ``strict=False`` maps
        zero-norm vectors to 0 (rsatoolbox's convention, used inside bootstrap resamples where a
        resampled model can become constant) instead of raising.
    rank_based
        Whether the method only depends on the ranks of the dissimilarities.
    correlation
        Whether it is a correlation (partial correlations are defined for it).
    """

    name: str
    transform: Callable[..., np.ndarray] | None
    rank_based: bool
    correlation: bool

    @property
    def is_tau(self) -> bool:
        return self.transform is None


#: Registry of comparison methods under rsatoolbox's names.
COMPARISONS: Registry[ComparisonMethod] = Registry("RDM comparison method")
COMPARISONS.register("tau-a", ComparisonMethod("tau-a", None, True, True), help="Kendall tau-a")
COMPARISONS.register("spearman", ComparisonMethod("spearman", _t_spearman, True, True),
                     help="Spearman rank correlation (average ranks for ties)")
COMPARISONS.register("rho-a", ComparisonMethod("rho-a", _t_rho_a, True, True),
                     help="Spearman rho-a (no tie correction)")
COMPARISONS.register("corr", ComparisonMethod("corr", _t_corr, False, True), help="Pearson correlation")
COMPARISONS.register("cosine", ComparisonMethod("cosine", _t_cosine, False, False),
                     help="cosine similarity (no centring)")


@functools.lru_cache(maxsize=8)
def pair_indices(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.triu_indices(n, 1)`` as int32 arrays (cached): the pairs ``p < q`` of ``n`` items."""
    i, j = np.triu_indices(n, 1)
    return i.astype(np.int32), j.astype(np.int32)


def sign_vectors(v: np.ndarray) -> np.ndarray:
    """``sign(v_p - v_q)`` for all ``p < q`` as float32 ``[shape=(k, N (N - 1) / 2)]``.

    Parameters
    ----------
    v
        ``[shape=(k, N)]`` (ranks or raw values; only the order matters).
    """
    v = np.atleast_2d(np.asarray(v))
    i, j = pair_indices(v.shape[-1])
    # float32 keeps order exactly for ranks (multiples of 1/2 below 2**23); raw values stay float64
    exact32 = v.dtype == np.float32 or bool(np.all(v * 2 == np.round(v * 2)) and np.abs(v).max() < 2**22)
    work = v.astype(np.float32 if exact32 else np.float64, copy=False)
    out = np.empty((v.shape[0], i.size), dtype=np.float32)
    for s in range(0, v.shape[0], 16):          # row blocks keep temporaries in cache-sized pieces
        blk = work[s:s + 16]
        np.sign(np.take(blk, i, axis=1) - np.take(blk, j, axis=1), out=out[s:s + 16], casting="unsafe")
    return out


def binary_levels(model: np.ndarray) -> np.ndarray | None:
    """Indicator of the upper level if ``model`` ``[shape=(N,)]`` takes exactly two values."""
    u = np.unique(model)
    if u.size != 2:
        return None
    return (model == u[1]).astype(np.float64)


def tau_a_counts(data: np.ndarray, models: np.ndarray, *, data_ranks: np.ndarray | None = None) -> np.ndarray:
    """Exact ``C = sum_{p<q} sign(a_p - a_q) sign(b_p - b_q)`` for all (data, model) pairs.

    Parameters
    ----------
    data
        ``[shape=(n_data, N)]`` RDM vectors.
    models
        ``[shape=(n_models, N)]`` RDM vectors.
    data_ranks
        Precomputed :func:`rank` of ``data`` (rank once, reuse).

    Returns
    -------
    np.ndarray
        ``[shape=(n_data, n_models)]`` float64 holding integers; ``τ_a = C / (N (N - 1) / 2)``.
    """
    data = np.atleast_2d(np.asarray(data, dtype=float))
    models = np.atleast_2d(np.asarray(models, dtype=float))
    n = data.shape[1]
    ranks = rank(data) if data_ranks is None else data_ranks
    out = np.empty((data.shape[0], models.shape[0]))
    signs: np.ndarray | None = None
    for k, m in enumerate(models):
        upper = binary_levels(m)
        if upper is not None:
            out[:, k] = 2.0 * (ranks @ upper) - upper.sum() * (n + 1)
        else:
            if signs is None:
                signs = sign_vectors(ranks)
            out[:, k] = (signs @ sign_vectors(m)[0]).astype(np.float64)
    return out


def compare(a: np.ndarray, b: np.ndarray, *, method: str = "tau-a") -> np.ndarray:
    """Similarity of every RDM in ``a`` with every RDM in ``b``.

    Parameters
    ----------
    a
        ``[shape=(n_a, n_pairs)]`` or ``[shape=(n_pairs,)]`` RDM vectors.
    b
        ``[shape=(n_b, n_pairs)]`` or ``[shape=(n_pairs,)]``.
    method
        A name in :data:`COMPARISONS` (see the module docstring for the exact definitions).

    Returns
    -------
    np.ndarray
        ``[shape=(n_a, n_b)]``, as ``rsatoolbox.rdm.compare(a, b, method)`` returns.
    """
    meth = COMPARISONS.get(method)
    a = np.atleast_2d(np.asarray(a, dtype=float))
    b = np.atleast_2d(np.asarray(b, dtype=float))
    if a.shape[1] != b.shape[1]:
        raise AnalysisError(
            f"RDM vectors of different lengths ({a.shape[1]} vs {b.shape[1]}) cannot be compared; "
            "both must cover the same conditions"
        )
    if a.shape[1] < 3:
        raise AnalysisError(f"RDM vectors of length {a.shape[1]}: comparisons need at least 3 pairs (3 conditions)")
    for name, v in (("first", a), ("second", b)):
        if not np.all(np.isfinite(v)):
            raise AnalysisError(f"the {name} RDM set contains NaN/inf; remove them before comparing")
    if meth.transform is None:
        n = a.shape[1]
        return np.clip(tau_a_counts(a, b) / (n * (n - 1) / 2), -1.0, 1.0)
    return meth.transform(a) @ meth.transform(b).T
