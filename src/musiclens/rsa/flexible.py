"""Flexible (fitted) candidates against measured RDMs, cross-validated as rsatoolbox does.

A *flexible* candidate is a weighted sum of component RDMs — e.g. every layer of one network —
whose weights are fitted to the data: rsatoolbox's ``ModelWeighted`` with ``fit_regress`` (the
pooled training RDM regressed on the components by ordinary least squares after the
normalisation the comparison ``method`` implies: components centred for ``corr``; the weight
vector scaled to unit norm).  A fitted candidate evaluated on the data it was fitted to is
optimistic, so it is evaluated by cross-validation over subjects *and* stimuli
(:func:`kfold_sets`, rsatoolbox ``sets_k_fold``): each fold fits on the training subjects'
RDMs over the training stimuli and is scored on the held-out subjects' RDMs over the held-out
stimuli (the mean over those subjects of the comparison, rsatoolbox ``crossval``).  Fixed
candidates (single layers, model RDMs) are scored on the same folds, so the two kinds compare
fairly, and the cross-validated noise ceiling (rsatoolbox ``cv_noise_ceiling``: the training
subjects' pooled RDM, and all subjects' pooled RDM, over each fold's test stimuli) bounds them.

As in rsatoolbox, cross-validation alone gives no variance estimate, so no p-values: the table
reports the mean over folds and the per-fold values.  Tests hold every fold's value, the
fitted weights and the noise ceiling against rsatoolbox's ``crossval`` on the same folds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from musiclens.errors import AnalysisError, ConfigError, InsufficientDataError
from musiclens.rsa.compare import COMPARISONS
from musiclens.rsa.evaluate import _pool_rows, _similarities
from musiclens.rsa.rdm import n_conditions
from musiclens.rsa.targets import TargetRDMs

__all__ = ["Fold", "kfold_sets", "default_k", "fit_weights", "crossvalidate", "FLEXIBLE_METHODS"]

#: Comparisons with a closed-form fit (rsatoolbox ``fit_regress``).
FLEXIBLE_METHODS = ("corr", "cosine")


@dataclass(frozen=True)
class Fold:
    """One cross-validation fold: subject and stimulus indices for fitting and for testing."""

    train_subjects: np.ndarray
    test_subjects: np.ndarray
    train_stimuli: np.ndarray
    test_stimuli: np.ndarray


def _groups(n: int, k: int, order: np.ndarray) -> list[np.ndarray]:
    """rsatoolbox's fold layout: ``k`` groups of ``floor(n / k)``, the remainder taken from the end."""
    size, extra = n // k, n % k
    out = []
    for g in range(k):
        idx = list(range(g * size, (g + 1) * size))
        if g < extra:
            idx.append(n - (g + 1))
        out.append(np.sort(order[idx]))
    return out


def default_k(n_subjects: int, n_stimuli: int) -> tuple[int, int]:
    """rsatoolbox's default group counts (``default_k_rdm``, ``default_k_pattern``)."""
    k_s = 2 if n_subjects < 6 else 3 if n_subjects < 12 else 4 if n_subjects < 20 else 5
    k_p = 2 if n_stimuli < 12 else 3 if n_stimuli < 24 else 4 if n_stimuli < 40 else 5
    return k_s, k_p


def kfold_sets(n_subjects: int, n_stimuli: int, *, k_subjects: int = 2, k_stimuli: int = 2,
               seed: int = 0) -> list[Fold]:
    """``k_subjects × k_stimuli`` folds (rsatoolbox ``sets_k_fold`` layout, seeded shuffles)."""
    if k_subjects < 2 or k_subjects > n_subjects:
        raise ConfigError(f"k_subjects={k_subjects}: cross-validation needs 2..{n_subjects} subject groups "
                          "(held-out subjects must exist and every group needs a subject)")
    if k_stimuli < 2 or n_stimuli < 3 * k_stimuli:
        raise ConfigError(f"k_stimuli={k_stimuli}: needs 2 <= k and at least 3 stimuli per group ({n_stimuli} stimuli)")
    rng = np.random.default_rng(seed)
    subj_order, stim_order = rng.permutation(n_subjects), rng.permutation(n_stimuli)
    folds = []
    for test_s in _groups(n_subjects, k_subjects, subj_order):
        train_s = np.setdiff1d(np.arange(n_subjects), test_s)
        for test_p in _groups(n_stimuli, k_stimuli, stim_order):
            folds.append(Fold(train_s, test_s, np.setdiff1d(np.arange(n_stimuli), test_p), test_p))
    return folds


def _pair_columns(stimuli: np.ndarray, n: int) -> np.ndarray:
    """Columns of the full pair vector whose two stimuli are both in ``stimuli`` (rsatoolbox ``subset_pattern``)."""
    inside = np.zeros(n, dtype=bool)
    inside[stimuli] = True
    i, j = np.triu_indices(n, 1)
    return np.flatnonzero(inside[i] & inside[j])


def fit_weights(components: np.ndarray, data: np.ndarray, *, method: str) -> np.ndarray:
    """rsatoolbox ``fit_regress``: weights ``[shape=(k,)]`` of ``components`` ``[k, pairs]`` for the
    pooled ``data`` ``[subjects, pairs]``, unit norm."""
    if method not in FLEXIBLE_METHODS:
        raise ConfigError(f"flexible candidates are fitted for {', '.join(FLEXIBLE_METHODS)}, not {method!r}")
    y = _pool_rows(data, method).mean(axis=0)
    if method == "corr":
        y = y - y.min()   # rsatoolbox's pooled corr RDM (a shift; the fit centres the components only)
    v = components - components.mean(axis=1, keepdims=True) if method == "corr" else components
    theta = np.linalg.solve(v @ v.T, v @ y)
    norm = float(np.sum(theta**2))
    return theta if norm == 0 else theta / np.sqrt(norm)


def crossvalidate(
    fixed: Mapping[str, np.ndarray],
    flexible: Mapping[str, np.ndarray],
    target: TargetRDMs,
    *,
    folds: Sequence[Fold],
    method: str = "corr",
) -> pd.DataFrame:
    """Cross-validated evaluation of fixed and flexible candidates on ``folds``.

    Parameters
    ----------
    fixed
        ``{name: [shape=(n_pairs,)]}`` fixed candidate RDMs over ``target.stimulus_ids``.
    flexible
        ``{name: [shape=(k, n_pairs)]}`` component RDMs of each flexible candidate.
    target
        Measured RDMs without missing pairs (a pair missing in any subject: drop it first, or
        use stimuli all subjects judged).

    Returns
    -------
    pandas.DataFrame
        One row per candidate: ``kind`` (fixed/flexible), ``value`` (mean over folds), ``fold_values``
        (semicolon-separated), ``noise_lower``/``noise_upper`` (cross-validated noise ceiling, means
        over folds), ``weights`` (flexible: the mean fitted weights over folds).
    """
    if method not in FLEXIBLE_METHODS:
        raise ConfigError(f"cross-validated flexible candidates support {', '.join(FLEXIBLE_METHODS)}, not {method!r}")
    COMPARISONS.get(method)
    data = target.vectors
    if np.isnan(data).any():
        raise AnalysisError(f"target {target.name!r} has missing pairs; cross-validation over stimuli needs complete "
                            "RDMs (restrict the analysis to stimuli every subject judged)")
    n = n_conditions(data.shape[1])
    if not flexible and not fixed:
        raise ConfigError("give at least one fixed or flexible candidate")
    for name, comp in flexible.items():
        comp = np.atleast_2d(comp)
        if comp.shape[1] != data.shape[1]:
            raise AnalysisError(f"flexible candidate {name!r}: components have {comp.shape[1]} pairs, target "
                                f"{data.shape[1]}")
        if comp.shape[0] < 2:
            raise ConfigError(f"flexible candidate {name!r} has one component; it is a fixed candidate")
    if not folds:
        raise InsufficientDataError("no cross-validation folds")
    values: dict[str, list[float]] = {k: [] for k in [*fixed, *flexible]}
    weights: dict[str, list[np.ndarray]] = {k: [] for k in flexible}
    lows, highs = [], []
    all_pool = _pool_rows(data, method).mean(axis=0)
    for f in folds:
        train_cols, test_cols = _pair_columns(f.train_stimuli, n), _pair_columns(f.test_stimuli, n)
        test = data[f.test_subjects][:, test_cols]
        for name, vec in fixed.items():
            values[name].append(float(_similarities(np.asarray(vec)[None, test_cols], test, method).mean()))
        for name, comp in flexible.items():
            comp = np.atleast_2d(comp)
            theta = fit_weights(comp[:, train_cols], data[f.train_subjects][:, train_cols], method=method)
            weights[name].append(theta)
            pred = theta @ comp[:, test_cols]
            values[name].append(float(_similarities(pred[None], test, method).mean()))
        train_pool = _pool_rows(data[f.train_subjects][:, test_cols], method).mean(axis=0)
        lows.append(float(_similarities(train_pool[None], test, method).mean()))
        highs.append(float(_similarities(all_pool[None, test_cols], test, method).mean()))
    rows = []
    for name, vals in values.items():
        rows.append({"target": target.name, "candidate": name, "kind": "flexible" if name in flexible else "fixed",
                     "method": method, "value": float(np.mean(vals)), "fold_values": ";".join(f"{v:.6g}" for v in vals),
                     "noise_lower": float(np.mean(lows)), "noise_upper": float(np.mean(highs)),
                     "n_folds": len(folds), "n_components": int(np.atleast_2d(flexible[name]).shape[0])
                     if name in flexible else 1,
                     "weights": ";".join(f"{w:.4g}" for w in np.mean(weights[name], axis=0)) if name in flexible else ""})
    table = pd.DataFrame(rows).sort_values("value", ascending=False, kind="stable").reset_index(drop=True)
    return table
