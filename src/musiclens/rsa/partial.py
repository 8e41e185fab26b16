"""Partial correlations and regression of a data RDM on several model RDMs.

Partial correlation (any correlation-type comparison: τ_a, Spearman, ρ_a, Pearson)
    With ``c_k = r(d, m_k)`` the data–model correlations and ``R`` the model–model correlation
    matrix, both under the same comparison method, the partial correlation of the data with
    model ``k`` controlling for all other models is read off the inverse of the bordered matrix
    ``[[1, cᵀ], [c, R]]``: with ``A = R⁻¹`` and ``s = 1 - cᵀ A c``,

        ``partial_k = (A c)_k / sqrt(s A_kk + (A c)_k²)``.

    For two models (height ``h``, chroma ``c``) this is Kendall's (1942) partial τ formula

        ``τ_{d c · h} = (τ_{dc} - τ_{dh} τ_{ch}) / sqrt((1 - τ_{dh}²)(1 - τ_{ch}²))``,

    and with Spearman's ρ it is the partial rank correlation.

    With ``data_var`` (the data's self-comparison) and a matrix ``R`` whose diagonal holds each
    model's self-comparison, the same expression with ``s = data_var - cᵀ A c`` is the partial
    correlation read off the covariance-like matrix ``[[data_var, cᵀ], [c, R]]``.  Partial
    correlation is invariant to rescaling each variable, so this equals the unit-diagonal formula
    applied to the self-normalised coefficients ``c_k / sqrt(data_var R_kk)`` and
    ``R_kl / sqrt(R_kk R_ll)``.  For Kendall's τ_a, whose self-comparison of an RDM with tied
    dissimilarities is the fraction of untied pairs, the self-normalised coefficient is exactly
    Kendall's τ_b, so this gives Kendall's partial τ computed from τ_b coefficients ("partial τ_b",
    as R's ``ppcor::pcor(method = "kendall")`` computes it); with a unit diagonal and τ_a
    coefficients it gives the textbook partial τ_a.  The two differ when the model RDMs have many
    ties (a chroma RDM has two values), partial τ_b being the larger.  In τ_a terms, with
    self-concordances ``s_d, s_c, s_h`` (two models)::

        partial τ_a = (τ_dc − τ_dh τ_ch) / sqrt((1 − τ_dh²)(1 − τ_ch²))
        partial τ_b = (τ_dc − τ_dh τ_ch / s_h) / sqrt((s_d − τ_dh² / s_h)(s_c − τ_ch² / s_h))

Permutation p-values of the two partial τ statistics
    The stimulus-label permutation relabels the conditions of every model RDM jointly, so it
    leaves the model–model τ_a and every self-concordance unchanged and moves only the data–model
    τ_a.  Write ``S`` for the Schur complement of the other models ``Z`` in the τ_a matrix of
    (data, target model ``k``, ``Z``): partial = ``S_dk / sqrt(S_dd S_kk)``.  Putting the
    self-concordances ``s`` on the diagonal (τ_b) lowers ``S_dd`` by ``1 − s_d`` and ``S_kk`` by
    ``1 − s_k`` and, when a model in ``Z`` has ties, changes every entry of ``S`` through ``R_ZZ``.
    Hence, **if the data RDM and every partialled-out model RDM have no ties** (``s_d = 1``,
    ``s_Z = 1``; the target may be tied), ``partial τ_b = κ · partial τ_a`` with
    ``κ = sqrt(S_kk / (S_kk − (1 − s_k))) ≥ 1`` (two models: ``κ = sqrt((1 − τ_ch²) / (s_c − τ_ch²))``),
    which depends on the model RDMs only: the same for every permutation and every subject, so
    the two statistics give identical permutation p-values with the same permutations.
    Otherwise the factor depends on the data–``Z`` τ_a, which the permutation moves, so no fixed
    monotone map relates the two nulls and the p-values differ, slightly in practice (an
    equal-tempered grid ties ``pitch_height``, and partial pitch height partials out the tied
    chroma RDM).  While the partialled-out models are untied the two statistics share the
    numerator ``S_dk`` and so have the same sign.  Each statistic is tested against its own null
    from the same permutations, so each p is exact for its own statistic.

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


def partial_correlations(c: np.ndarray, r: np.ndarray, *, data_var: np.ndarray | float = 1.0) -> np.ndarray:
    """Partial correlation of the data with each model, controlling for the other models.

    Parameters
    ----------
    c
        Data–model correlations ``[shape=(..., K)]``.
    r
        Model–model correlation matrix ``[shape=(K, K)]`` or ``[shape=(..., K, K)]``
        broadcastable against ``c``: a unit diagonal for the textbook formula, or each model's
        self-comparison (see the module docstring).
    data_var
        The data's self-comparison, broadcastable against ``c[..., 0]`` (1 for the textbook
        formula).

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
    s = np.asarray(data_var, dtype=float) - np.einsum("...k,...k->...", c, ac)
    s = np.where(np.abs(s) <= 1e-12, 0.0, s)   # an exact fit (e.g. a layer that copies a model RDM)
    diag = np.diagonal(a, axis1=-2, axis2=-1)
    denom = s[..., None] * diag + ac**2
    if np.any(denom < 0) or not np.all(np.isfinite(denom)) or np.any((denom == 0) & (s[..., None] != 0)):
        raise AnalysisError(
            "partial correlation undefined: the data-model and model-model correlations are "
            "inconsistent under this comparison; report the plain correlations instead"
        )
    # an exact fit gives ±1 for each model with a nonzero weight and 0 for the others
    return np.divide(ac, np.sqrt(denom), out=np.zeros_like(ac), where=denom > 0)


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
        A resample on which the design is collinear (e.g. the height × chroma interaction when
        the drawn pitches span too little) has no betas: NaN there, counted by the caller.
    """
    results: list[np.ndarray | None] = []
    n_pred = None
    for w in np.atleast_2d(weights):
        idx = np.repeat(np.arange(y.shape[1]), w.astype(np.int64))
        try:
            x, _ = regression_design(models[:, idx], names, interactions=interactions)
            results.append(regress(y[:, idx], x))
            n_pred = results[-1].shape[1]
        except (AnalysisError, np.linalg.LinAlgError):
            results.append(None)
    if n_pred is None:
        raise AnalysisError("the regression is undefined on every bootstrap resample (collinear predictors); "
                            "use bootstrap_over='instruments' (--bootstrap-over instruments) or interactions=False")
    return np.stack([np.full((y.shape[0], n_pred), np.nan) if b is None else b for b in results], axis=-1)
