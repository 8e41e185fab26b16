"""Partial correlations and regression of a data RDM on several model RDMs.

Partial correlation (any correlation-type comparison: τ_a, Spearman, ρ_a, Pearson)
    With ``c_k = r(d, m_k)`` the data–model correlations and ``R`` the model–model correlation
    matrix, both under the same comparison method, the partial correlation of the data with
    model ``k`` controlling for all other models is read off the inverse of the bordered matrix
    ``[[1, cᵀ], [c, R]]``: with ``A = R⁻¹`` and ``s = 1 - cᵀ A c``,

        ``partial_k = (A c)_k / sqrt(s A_kk + (A c)_k²)``.

    For two models (height ``h``, chroma ``c``) this is Kendall's (1942) partial τ formula,
    used with τ_a throughout (the "partial τ_a"):

        ``τ_{d c · h} = (τ_{dc} - τ_{dh} τ_{ch}) / sqrt((1 - τ_{dh}²)(1 - τ_{ch}²))``,

    and with Spearman's ρ it is the partial rank correlation.

Regression (:func:`regression_design`, :func:`regress`)
    Ordinary least squares of the standardised data dissimilarities (z-scored over pairs,
    population SD) on standardised model RDMs plus, optionally, the pairwise products of the
    standardised models (e.g. ``height × chroma``), each product standardised again; all columns
    have mean 0, so no intercept is needed.  The coefficients are standardised betas
    ``β = (XᵀX)⁻¹ Xᵀ y``.  Under a joint permutation of the model labels ``XᵀX`` does not
    change, so permuted betas are ``(XᵀX)⁻¹ X[σ]ᵀ y``, one matrix product per predictor.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from musiclens.errors import AnalysisError

__all__ = ["partial_correlations", "regression_design", "regress", "zscore"]


def partial_correlations(c: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Partial correlation of the data with each model, controlling for the other models.

    Parameters
    ----------
    c
        Data–model correlations ``[shape=(..., K)]``.
    r
        Model–model correlation matrix ``[shape=(K, K)]`` or ``[shape=(..., K, K)]``
        broadcastable against ``c`` (unit diagonal).

    Returns
    -------
    np.ndarray
        ``[shape=(..., K)]``.

    Raises
    ------
    AnalysisError
        The models are collinear (``R`` singular) or the correlations are inconsistent.
    """
    c = np.asarray(c, dtype=float)
    r = np.asarray(r, dtype=float)
    if c.shape[-1] < 2:
        raise AnalysisError("partial correlations need at least 2 model RDMs")
    try:
        a = np.linalg.inv(r)
    except np.linalg.LinAlgError as err:
        raise AnalysisError(
            "the model RDMs are collinear (their correlation matrix is singular), so partial "
            "correlations are undefined; drop one of the redundant models"
        ) from err
    ac = np.einsum("...kl,...l->...k", a, c)
    s = 1.0 - np.einsum("...k,...k->...", c, ac)
    diag = np.diagonal(a, axis1=-2, axis2=-1)
    denom = s[..., None] * diag + ac**2
    if np.any(denom <= 0) or not np.all(np.isfinite(denom)):
        raise AnalysisError(
            "partial correlation undefined: the data RDM is (almost) a linear combination of the "
            "model RDMs under this comparison; report the plain correlations instead"
        )
    return ac / np.sqrt(denom)


def zscore(v: np.ndarray) -> np.ndarray:
    """Standardise along the last axis (population SD); raises on constant vectors."""
    v = np.asarray(v, dtype=float)
    centred = v - v.mean(axis=-1, keepdims=True)
    sd = np.sqrt((centred**2).mean(axis=-1, keepdims=True))
    if np.any(sd == 0):
        raise AnalysisError("cannot standardise a constant RDM vector for the regression")
    return centred / sd


def regression_design(
    models: np.ndarray, names: Sequence[str], *, interactions: bool = True
) -> tuple[np.ndarray, list[str]]:
    """Standardised design matrix ``[shape=(N, n_predictors)]`` and predictor names.

    Parameters
    ----------
    models
        Model RDM vectors ``[shape=(K, N)]``.
    names
        Model names (length ``K``).
    interactions
        Add the product of every pair of standardised models (``"a_x_b"``).
    """
    z = zscore(models)
    cols = [z[k] for k in range(z.shape[0])]
    labels = list(names)
    if interactions:
        for a in range(len(names)):
            for b in range(a + 1, len(names)):
                cols.append(zscore(z[a] * z[b]))
                labels.append(f"{names[a]}_x_{names[b]}")
    x = np.stack(cols, axis=1)
    if np.linalg.matrix_rank(x) < x.shape[1]:
        raise AnalysisError(
            f"the regression predictors {labels} are collinear over these conditions; "
            "drop a model or set interactions=False"
        )
    return x, labels


def regress(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Standardised betas of each data RDM on the design.

    Parameters
    ----------
    y
        Data RDM vectors ``[shape=(n_data, N)]`` (standardised here).
    x
        Design ``[shape=(N, n_predictors)]`` from :func:`regression_design`.

    Returns
    -------
    np.ndarray
        ``[shape=(n_data, n_predictors)]``.
    """
    zy = zscore(y)
    return np.linalg.solve(x.T @ x, x.T @ zy.T).T


def regress_permuted(y: np.ndarray, x: np.ndarray, sigmas: np.ndarray, *, chunk: int = 1024) -> np.ndarray:
    """Betas with the design's rows permuted by each pair permutation.

    Returns
    -------
    np.ndarray
        ``[shape=(n_data, n_predictors, P)]``.
    """
    zy = zscore(y)
    inv = np.linalg.inv(x.T @ x)
    out = np.empty((zy.shape[0], x.shape[1], sigmas.shape[0]))
    for s in range(0, sigmas.shape[0], chunk):
        sl = slice(s, min(s + chunk, sigmas.shape[0]))
        xty = np.stack([zy @ x[:, k][sigmas[sl]].T for k in range(x.shape[1])], axis=1)  # [n, k, c]
        out[:, :, sl] = np.einsum("kl,nlc->nkc", inv, xty)
    return out


def regress_weighted(
    y: np.ndarray, models: np.ndarray, names: Sequence[str], weights: np.ndarray, *, interactions: bool = True
) -> np.ndarray:
    """Betas on bootstrap resamples of the conditions (pairs repeated ``weights`` times).

    Returns
    -------
    np.ndarray
        ``[shape=(n_data, n_predictors, B)]``; design and data are standardised on each resample.
    """
    results = []
    for w in np.atleast_2d(weights):
        idx = np.repeat(np.arange(y.shape[1]), w.astype(np.int64))
        x, _ = regression_design(models[:, idx], names, interactions=interactions)
        results.append(regress(y[:, idx], x))
    return np.stack(results, axis=-1)
