"""Batched comparisons: many data RDMs against many permuted or re-weighted model RDMs.

The null distributions and bootstraps of :mod:`musiclens.rsa.inference` reduce to two kernels:

:func:`permuted_scores`
    ``score(d, m_π)`` for every data RDM ``d`` and every stimulus-label permutation ``π`` of one
    model RDM ``m``.  A permutation of the conditions acts on RDM vectors as a permutation ``σ_π``
    of the pairs (``m_π = m[σ_π]``), and every transform of :mod:`musiclens.rsa.compare` commutes
    with it, so the data are ranked/transformed once and each permutation is an index operation
    followed by one matrix product: ``t(D) @ t(m)[σ_π]ᵀ`` (inner-product methods),
    ``R @ 1[m_σ = upper]ᵀ`` (τ_a, binary model) or ``sign(R) @ sign(m[σ_π])ᵀ`` (τ_a, any model;
    float32 products of ±1 with sums below 2**24 are exact).
:func:`weighted_scores`
    ``score`` on a bootstrap resample of the conditions.  Resampling conditions with counts
    ``c_i`` keeps pair ``(i, j)`` with multiplicity ``w = c_i c_j`` and drops the pairs between
    copies of one condition (rsatoolbox ``subsample_pattern`` marks them NaN).  For τ_a,
    ``C_b = sum_{p<q} w_p w_q sign(d_p - d_q) sign(m_p - m_q)`` is one matrix product and the
    denominator is ``N_b (N_b - 1) / 2`` with ``N_b = sum_p w_p``; the other methods expand the
    resampled vectors explicitly.

Matrix products run through a :class:`Backend`: NumPy (default) or torch (``backend="torch"``,
on CUDA when available).  torch is imported only when that backend is requested.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from musiclens.errors import ConfigError, MissingDependencyError
from musiclens.rsa.compare import COMPARISONS, ComparisonMethod, binary_levels, pair_indices, rank, sign_vectors

__all__ = ["Backend", "get_backend", "PreparedData", "prepare", "permuted_scores", "weighted_scores", "pair_permutations"]

logger = logging.getLogger(__name__)


class Backend:
    """Matrix products on NumPy (CPU)."""

    name = "numpy"

    def matmul_t(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``a @ b.T`` as a NumPy float64 array."""
        return np.asarray(a @ b.T, dtype=np.float64)


class TorchBackend(Backend):
    """Matrix products through torch, on CUDA when available (results identical: exact sums)."""

    name = "torch"

    def __init__(self, device: str | None = None) -> None:
        try:
            import torch
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise MissingDependencyError(
                "backend='torch' needs PyTorch; install it (pip install torch) or use backend='numpy'"
            ) from err
        self._torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        logger.info("RSA matrix products on torch device %s", self.device)

    def matmul_t(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        t = self._torch
        ta = t.from_numpy(np.ascontiguousarray(a)).to(self.device)
        tb = t.from_numpy(np.ascontiguousarray(b)).to(self.device)
        return (ta @ tb.T).cpu().numpy().astype(np.float64)


def get_backend(name: str | Backend = "numpy") -> Backend:
    """``"numpy"`` (default, CPU), ``"torch"`` (GPU when present) or ``"auto"`` (torch+CUDA if available)."""
    if isinstance(name, Backend):
        return name
    if name == "numpy":
        return Backend()
    if name == "torch":
        return TorchBackend()
    if name == "auto":
        try:
            import torch
        except ImportError:
            return Backend()
        return TorchBackend() if torch.cuda.is_available() else Backend()
    raise ConfigError(f"unknown backend {name!r}; use 'numpy', 'torch' or 'auto'")


def pair_permutations(perms: np.ndarray) -> np.ndarray:
    """Pair permutations ``σ [shape=(P, n_pairs)]`` induced by condition permutations ``[shape=(P, n)]``.

    ``m[σ[k]]`` is the RDM vector of the matrix ``M[π_k][:, π_k]``.
    """
    perms = np.atleast_2d(perms)
    n = perms.shape[1]
    lookup = np.zeros((n, n), dtype=np.int32)
    i, j = np.triu_indices(n, 1)
    lookup[i, j] = np.arange(i.size)
    lookup[j, i] = np.arange(i.size)
    return lookup[perms[:, i], perms[:, j]]


@dataclass
class PreparedData:
    """Data RDM vectors ranked/transformed once for one comparison method.

    Attributes
    ----------
    method
        The comparison method.
    values
        ``[shape=(n_data, N)]`` raw dissimilarities.
    ranks
        Average ranks (τ_a only).
    transformed
        ``t(values)`` (inner-product methods only).
    """

    method: ComparisonMethod
    values: np.ndarray
    ranks: np.ndarray | None = None
    transformed: np.ndarray | None = None
    _signs: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int(self.values.shape[1])

    def signs(self) -> np.ndarray:
        """``sign(r_p - r_q)``, float32 ``[shape=(n_data, N (N - 1) / 2)]`` (computed on first use)."""
        if self._signs is None:
            assert self.ranks is not None
            self._signs = sign_vectors(self.ranks)
        return self._signs


def prepare(data: np.ndarray, *, method: str) -> PreparedData:
    """Rank or transform data RDM vectors ``[shape=(n_data, N)]`` once for ``method``."""
    meth = COMPARISONS.get(method)
    values = np.atleast_2d(np.asarray(data, dtype=np.float64))
    if meth.is_tau:
        return PreparedData(meth, values, ranks=rank(values))
    assert meth.transform is not None
    return PreparedData(meth, values, transformed=meth.transform(values))


def _chunks(total: int, size: int) -> list[slice]:
    return [slice(s, min(s + size, total)) for s in range(0, total, size)]


def permuted_scores(
    prep: PreparedData,
    model: np.ndarray,
    sigmas: np.ndarray,
    *,
    backend: str | Backend = "numpy",
    chunk: int = 256,
    progress: bool = False,
    desc: str = "permutations",
) -> np.ndarray:
    """``score(d, m[σ_k])`` for all data RDMs and pair permutations.

    Parameters
    ----------
    prep
        Prepared data, ``n_data`` RDM vectors of length ``N``.
    model
        One model RDM vector ``[shape=(N,)]``.
    sigmas
        Pair permutations ``[shape=(P, N)]`` from :func:`pair_permutations`.
    backend
        Where the matrix products run.
    chunk
        Permutations per matrix product (memory: ``chunk x N (N - 1) / 2`` float32 for τ_a).

    Returns
    -------
    np.ndarray
        ``[shape=(n_data, P)]`` similarities.
    """
    be = get_backend(backend)
    model = np.asarray(model, dtype=np.float64)
    n = prep.n
    out = np.empty((prep.values.shape[0], sigmas.shape[0]))
    slices = _chunks(sigmas.shape[0], chunk)
    bar = tqdm(slices, desc=desc, disable=not progress, leave=False)
    if prep.method.is_tau:
        assert prep.ranks is not None
        total = n * (n - 1) / 2
        upper = binary_levels(model)
        if upper is not None:
            n1 = upper.sum()
            for sl in bar:
                counts = 2.0 * be.matmul_t(prep.ranks, upper[sigmas[sl]]) - n1 * (n + 1)
                out[:, sl] = counts / total
            return out
        signs = prep.signs()
        i, j = pair_indices(n)
        m32 = model.astype(np.float32)
        for sl in bar:
            mp = m32[sigmas[sl]]                                   # [c, N]
            msign = np.sign(np.take(mp, i, axis=1) - np.take(mp, j, axis=1))
            out[:, sl] = be.matmul_t(signs, msign) / total
        return out
    assert prep.method.transform is not None and prep.transformed is not None
    tm = prep.method.transform(model[None, :])[0]
    for sl in bar:
        out[:, sl] = be.matmul_t(prep.transformed, tm[sigmas[sl]])
    return out


def condition_weights(counts: np.ndarray) -> np.ndarray:
    """Pair multiplicities ``w_p = c_i c_j`` ``[shape=(B, n_pairs)]`` from condition counts ``[shape=(B, n)]``."""
    counts = np.atleast_2d(counts)
    i, j = np.triu_indices(counts.shape[1], 1)
    return counts[:, i] * counts[:, j]


def weighted_scores(
    prep: PreparedData,
    model: np.ndarray,
    weights: np.ndarray,
    *,
    backend: str | Backend = "numpy",
    chunk: int = 128,
    progress: bool = False,
    desc: str = "bootstrap",
) -> np.ndarray:
    """``score(d, m)`` on resampled pairs with integer multiplicities ``weights [shape=(B, N)]``.

    Equal to rsatoolbox's ``compare`` on ``subsample_pattern`` of both RDMs (see module docstring),
    including its convention that a resample in which an RDM is constant scores 0.

    Returns
    -------
    np.ndarray
        ``[shape=(n_data, B)]``.
    """
    be = get_backend(backend)
    model = np.asarray(model, dtype=np.float64)
    weights = np.atleast_2d(np.asarray(weights))
    n_total = weights.sum(axis=1).astype(np.float64)
    if np.any(n_total < 3):
        raise ConfigError("a bootstrap resample kept fewer than 3 distinct pairs; use more conditions")
    out = np.empty((prep.values.shape[0], weights.shape[0]))
    bar = tqdm(_chunks(weights.shape[0], chunk), desc=desc, disable=not progress, leave=False)
    if prep.method.is_tau:
        i, j = pair_indices(prep.n)
        z = prep.signs() * sign_vectors(model)[0]            # [n_data, N (N-1)/2]
        w32 = weights.astype(np.float32)
        for sl in bar:
            ww = np.take(w32[sl], i, axis=1) * np.take(w32[sl], j, axis=1)
            tot = n_total[sl] * (n_total[sl] - 1) / 2
            out[:, sl] = np.clip(be.matmul_t(z, ww) / tot[None, :], -1.0, 1.0)
        return out
    transform = prep.method.transform
    assert transform is not None
    for sl in bar:
        for b in range(sl.start, sl.stop):
            idx = np.repeat(np.arange(prep.n), weights[b].astype(np.int64))
            out[:, b] = transform(prep.values[:, idx], strict=False) @ transform(model[idx][None, :], strict=False)[0]
    return out
