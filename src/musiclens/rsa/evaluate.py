"""Which layer of which network best explains measured RDMs: rsatoolbox's model evaluation, batched.

The candidates ("models" in rsatoolbox's words) are fixed RDMs over the target's stimuli — every
layer of every network, and model RDMs computed from metadata if wanted.  The data are a
:class:`~musiclens.rsa.targets.TargetRDMs` (one RDM per subject).  :func:`evaluate_targets`
computes the numbers rsatoolbox's inference API computes, on the same resamples:

``value``
    ``rsatoolbox.inference.eval_fixed``: the mean over subjects of the comparison (``method``) of
    the candidate with each subject's RDM.
noise ceiling
    ``boot_noise_ceiling``: each subject's RDM against the pooled RDM of the other subjects
    (lower bound) and of all subjects (upper bound), averaged over subjects.  Needs ≥ 3 subjects.
bootstrap (``bootstrap=``)
    ``"subjects"`` — ``eval_bootstrap_rdm``; ``"stimuli"`` — ``eval_bootstrap_pattern``;
    ``"both"`` — ``eval_bootstrap``; ``"dual"`` (default) — ``eval_dual_bootstrap`` with
    ``k_pattern = k_rdm = 1`` (no cross-validation inside the bootstrap: every candidate is a
    fixed RDM): each resample is evaluated resampling both factors, subjects only and stimuli
    only, and the three covariance matrices are combined by rsatoolbox's dual-bootstrap formula.
    A stimulus resample repeats stimuli: pairs between copies of one stimulus are left out and
    every other pair appears as often as it is drawn, exactly as ``RDMs.subsample_pattern``
    builds it.  Resamples with fewer than 3 distinct stimuli count as missing, as in rsatoolbox.
tests (rsatoolbox's ``t-test`` type, ``Result.test_zero/test_pairwise/test_noise``)
    ``p_zero``: one-sided t-test of the bootstrap mean against 0; ``p_noise``: two-sided t-test
    against the lower noise-ceiling bound; pairwise: two-sided t-tests of every difference between
    candidates, with the variance of the difference from the bootstrap covariance, and
    ``dof = min(n_subjects, n_stimuli) - 1`` (``n_subjects - 1`` / ``n_stimuli - 1`` for one-factor
    bootstraps).  Pairwise p-values are corrected over all pairs (``correction``).
``boot_mean``
    rsatoolbox's ``Result.get_means()`` (the mean over resamples — and, for the dual bootstrap,
    over the three resampling schemes), which the t-tests use; ``value`` is the estimate on the
    data as they are.

Missing pairs: only pairs measured in every subject are used (rsatoolbox's ``compare`` requires
equal NaN positions in all RDMs); how many were dropped is reported.

Everything runs as matrix products over all candidates and subjects at once (no per-model
loop); ``benchmarks/bench_targets.py`` measures the speed against rsatoolbox in one run.
Flexible (fitted) models with cross-validation inside the bootstrap are not implemented: every
candidate here is a fixed RDM.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from musiclens.errors import AnalysisError, ConfigError, InsufficientDataError
from musiclens.rsa.compare import COMPARISONS, compare, rank
from musiclens.rsa.inference import correct
from musiclens.rsa.rdm import n_conditions
from musiclens.rsa.targets import TargetRDMs

__all__ = ["Resamples", "draw_resamples", "evaluate_targets", "TargetEvaluation", "BOOTSTRAPS", "sample_pairs"]

logger = logging.getLogger(__name__)

BOOTSTRAPS = ("dual", "both", "subjects", "stimuli", "none")
_EPS = np.finfo(float).eps


@dataclass
class Resamples:
    """Bootstrap draws: ``subjects`` ``[shape=(N, n_subjects)]`` and ``stimuli`` ``[shape=(N, n_stimuli)]``
    index arrays (with repeats); ``None`` for a factor that is not resampled."""

    subjects: np.ndarray | None
    stimuli: np.ndarray | None

    @property
    def n(self) -> int:
        arr = self.subjects if self.subjects is not None else self.stimuli
        return 0 if arr is None else int(arr.shape[0])


def draw_resamples(n_subjects: int, n_stimuli: int, n: int, *, bootstrap: str, seed: int) -> Resamples:
    """Seeded resamples for ``bootstrap`` (one of :data:`BOOTSTRAPS`)."""
    rng = np.random.default_rng(seed)
    subj = rng.integers(0, n_subjects, size=(n, n_subjects)) if bootstrap in ("dual", "both", "subjects") else None
    stim = rng.integers(0, n_stimuli, size=(n, n_stimuli)) if bootstrap in ("dual", "both", "stimuli") else None
    return Resamples(subj, stim)


def sample_pairs(stimuli: np.ndarray, n: int) -> np.ndarray:
    """Indices into the full pair vector of the RDM over resampled stimuli ``stimuli``.

    Pairs ``a < b`` of positions in the resample, in rsatoolbox's order, skipping pairs of two
    copies of one stimulus (NaN in rsatoolbox, hence left out of every comparison).
    """
    q = np.asarray(stimuli)
    a, b = np.triu_indices(q.size, 1)
    i, j = q[a], q[b]
    keep = i != j
    lo, hi = np.minimum(i, j)[keep], np.maximum(i, j)[keep]
    return lo * n - lo * (lo + 1) // 2 + (hi - lo - 1)


def _pool_rows(rows: np.ndarray, method: str) -> np.ndarray:
    """Per-row transform rsatoolbox's ``pool_rdm`` applies before averaging."""
    if method == "cosine":
        return rows / np.sqrt(np.mean(rows**2, axis=1, keepdims=True))
    if method == "corr":
        z = rows - rows.mean(axis=1, keepdims=True)
        return z / z.std(axis=1, keepdims=True)
    return rank(rows)   # spearman, rho-a, tau-a: average ranks


def _similarities(cands: np.ndarray, data: np.ndarray, method: str) -> np.ndarray:
    """``[shape=(n_cands, n_data)]`` comparisons; a zero-norm vector gives 0 (rsatoolbox's convention)."""
    meth = COMPARISONS.get(method)
    if meth.transform is None:
        return compare(cands, data, method=method)
    return meth.transform(cands, strict=False) @ meth.transform(data, strict=False).T


def _noise_ceiling(rows: np.ndarray, counts: np.ndarray, method: str) -> tuple[float, float]:
    """rsatoolbox ``boot_noise_ceiling`` on a sample holding ``counts[u]`` copies of subject row ``u``.

    Lower bound: each distinct subject against the pooled RDM of all other copies; upper: against
    the pool of all copies; both averaged over distinct subjects (not weighted by copies).
    """
    pooled = _pool_rows(rows, method)
    total = counts @ pooled
    n = counts.sum()
    upper = float(_similarities((total / n)[None], rows, method)[0].mean())
    if rows.shape[0] < 2:
        return float("nan"), upper
    loo = (total[None] - counts[:, None] * pooled) / (n - counts)[:, None]
    meth = COMPARISONS.get(method)
    if meth.transform is None:
        lower = np.array([compare(loo[u], rows[u], method=method)[0, 0] for u in range(rows.shape[0])])
    else:
        lower = np.einsum("up,up->u", meth.transform(loo, strict=False), meth.transform(rows, strict=False))
    return float(lower.mean()), upper


def _one_sample(cands: np.ndarray, data: np.ndarray, method: str, subjects: np.ndarray | None
                ) -> tuple[np.ndarray, float, float]:
    """Evaluations ``[shape=(n_cands,)]`` and noise-ceiling bounds on one resample.

    ``cands``/``data`` hold the resample's pair columns already; ``subjects`` the drawn subject
    indices (copies weight the mean over subjects, as repeated RDMs do in rsatoolbox).
    """
    if subjects is not None:
        uniq, counts = np.unique(subjects, return_counts=True)
        data = data[uniq]
    else:
        counts = np.ones(data.shape[0], dtype=int)
    sims = _similarities(cands, data, method)
    evals = sims @ counts / counts.sum()
    low, high = _noise_ceiling(data, counts.astype(float), method)
    return evals, low, high


class _Moments:
    """Pearson (``corr``) and cosine comparisons on resampled stimuli from weighted pair moments.

    A stimulus resample repeats pairs: pair ``(i, j)`` appears ``w = count_i * count_j`` times.
    Every quantity ``corr``/``cosine`` needs is a weighted sum over the original pairs, so a
    resample costs one weighted product ``A diag(w) B^T`` instead of building the repeated vectors.
    The noise ceiling follows from the subjects' weighted correlation (or cosine) matrix ``R``:
    pooling z-scored (RMS-normalised) subject RDMs with copy counts ``c`` and comparing with
    subject ``u`` gives ``(R c)_u / sqrt(c' R c)`` (leave-one-out: ``c`` with ``c_u = 0``).
    Equal to the explicit construction to float precision (tested against rsatoolbox).
    """

    def __init__(self, cands: np.ndarray, data: np.ndarray, method: str) -> None:
        self.centre = method == "corr"
        # centring by the plain means first keeps the weighted moments free of cancellation
        self.a = cands - cands.mean(axis=1, keepdims=True) if self.centre else cands
        self.b = data - data.mean(axis=1, keepdims=True) if self.centre else data
        self.a2, self.b2 = self.a**2, self.b**2
        self.full = self.state(None)

    def state(self, w: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """``(S [n_cands, n_subjects], R [n_subjects, n_subjects])`` under pair weights ``w``."""
        a, b = self.a, self.b
        if w is None:
            w = np.ones(a.shape[1])
        bw = b * w
        sab, sbb = a @ bw.T, b @ bw.T
        if self.centre:
            big_w = w.sum()
            sa, sb = a @ w, b @ w
            sab = sab - np.outer(sa, sb) / big_w
            sbb = sbb - np.outer(sb, sb) / big_w
            va = self.a2 @ w - sa**2 / big_w
        else:
            va = self.a2 @ w
        vb = np.diag(sbb).copy()
        with np.errstate(divide="ignore", invalid="ignore"):
            na, nb = np.sqrt(np.maximum(va, 0)), np.sqrt(np.maximum(vb, 0))
            sims = np.where(np.outer(na, nb) > 0, sab / np.outer(na, nb), 0.0)
            r = np.where(np.outer(nb, nb) > 0, sbb / np.outer(nb, nb), 0.0)
        return sims, r

    @staticmethod
    def noise_ceiling(r: np.ndarray, counts: np.ndarray) -> tuple[float, float]:
        u = np.flatnonzero(counts > 0)
        rc = r @ counts
        crc = float(counts @ rc)
        upper = float(np.mean(rc[u] / np.sqrt(crc)))
        if u.size < 2:
            return float("nan"), upper
        cu, ruu = counts[u], np.diag(r)[u]
        num = rc[u] - ruu * cu
        den = crc - 2 * cu * rc[u] + cu**2 * ruu
        return float(np.mean(num / np.sqrt(den))), upper


def _pair_weights(stimuli: np.ndarray, n: int, keep: np.ndarray) -> np.ndarray:
    """Copies of each complete pair in the RDM over the resampled ``stimuli``."""
    counts = np.bincount(stimuli, minlength=n).astype(float)
    i, j = np.triu_indices(n, 1)
    return (counts[i] * counts[j])[keep]


def _correct_1d(var: np.ndarray, n_pattern: int | None, n_rdm: int | None) -> np.ndarray:
    ns = [x for x in (n_pattern, n_rdm) if x is not None]
    if not ns:
        return var
    n = min(ns)
    return (n / (n - 1)) * var


def _contrast(n: int) -> np.ndarray:
    a, b = np.triu_indices(n, 1)
    c = np.zeros((a.size, n))
    c[np.arange(a.size), a] = 1.0
    c[np.arange(a.size), b] = -1.0
    return c


def _dual(v: np.ndarray, n_rdm: int, n_pattern: int) -> np.ndarray:
    """rsatoolbox's dual-bootstrap variance from (both, subjects, stimuli) variances ``v[0..2]``."""
    fr, fp = n_rdm / (n_rdm - 1), n_pattern / (n_pattern - 1)
    out = fr * v[1] + fp * v[2] - (n_pattern * n_rdm / (n_pattern - 1) / (n_rdm - 1)) * (v[0] - v[1] - v[2])
    out = np.maximum(np.maximum(out, fr * v[1]), fp * v[2])
    return np.minimum(out, v[0])


def _variances(cov: np.ndarray, *, nc_included: bool, n_rdm: int | None, n_pattern: int | None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """rsatoolbox ``extract_variances``: (model, pairwise-difference, noise-ceiling-difference) variances."""
    if cov.ndim == 2:
        k = cov.shape[0] - 2 if nc_included else cov.shape[0]
        c = _contrast(k)
        model = np.diag(cov)[:k]
        if nc_included:
            nc = model[:, None] - 2 * cov[:k, k:] + np.diag(cov[k:, k:])[None]
        else:
            nc = np.stack([model, model], axis=1)
        diff = np.einsum("ij,jl,il->i", c, cov[:k, :k], c)
        return (_correct_1d(model, n_pattern, n_rdm), _correct_1d(diff, n_pattern, n_rdm),
                _correct_1d(nc, n_pattern, n_rdm))
    k = cov.shape[1] - 2
    c = _contrast(k)
    model = np.einsum("ijj->ij", cov)[:, :k]
    nc = model[..., None] - 2 * cov[:, :k, k:] + np.einsum("ijj->ij", cov[:, k:, k:])[:, None]
    diff = np.einsum("ij,kjl,il->ki", c, cov[:, :k, :k], c)
    assert n_rdm is not None and n_pattern is not None
    return _dual(model, n_rdm, n_pattern), _dual(diff, n_rdm, n_pattern), _dual(nc, n_rdm, n_pattern)


@dataclass
class TargetEvaluation:
    """Results of :func:`evaluate_targets` for one target.

    ``table``: one row per candidate (``value, boot_mean, se, ci_low, ci_high, p_zero, p_noise,
    reaches_lower_bound`` …); ``pairwise``: one row per candidate pair; ``evaluations``: the
    bootstrap evaluations ``[shape=(N, n_cands)]`` or ``(N, n_cands, 3)`` (dual); ``noise_ceiling``
    ``[shape=(2, N)]`` / ``(2, N, 3)``; ``per_subject`` ``[shape=(n_cands, n_subjects)]``.
    """

    target: str
    table: pd.DataFrame
    pairwise: pd.DataFrame
    noise_ceiling_fixed: tuple[float, float]
    evaluations: np.ndarray
    noise_ceiling: np.ndarray
    per_subject: np.ndarray
    variances: np.ndarray | None
    dof: int
    info: dict[str, Any] = field(default_factory=dict)


def evaluate_targets(
    candidates: np.ndarray,
    names: Sequence[str],
    target: TargetRDMs,
    *,
    method: str = "corr",
    bootstrap: str = "dual",
    n_bootstraps: int = 1000,
    seed: int = 0,
    resamples: Resamples | None = None,
    correction: str = "fdr_bh",
    alpha: float = 0.05,
    noise_ceiling: bool = True,
    groups: Sequence[str] | None = None,
) -> TargetEvaluation:
    """Evaluate fixed candidate RDMs against measured subject RDMs (see the module docstring).

    Parameters
    ----------
    candidates
        ``[shape=(n_cands, n_pairs)]`` RDM vectors over ``target.stimulus_ids`` in that order.
    names
        One label per candidate (e.g. ``"wav2vec2/layer_05"``).
    target
        The measured RDMs (NaN = missing pair).
    bootstrap
        One of :data:`BOOTSTRAPS`.
    resamples
        Explicit draws (to reproduce another tool's resamples); default: drawn from ``seed``.
    noise_ceiling
        Compute the noise ceiling (needs ≥ 3 subjects).
    groups
        Optional group label per candidate (e.g. the network), copied into the table.
    """
    meth = COMPARISONS.get(method)
    if bootstrap not in BOOTSTRAPS:
        raise ConfigError(f"bootstrap={bootstrap!r}; use one of {', '.join(BOOTSTRAPS)}")
    cands = np.atleast_2d(np.asarray(candidates, dtype=float))
    names = [str(n) for n in names]
    if cands.shape[0] != len(names):
        raise AnalysisError(f"{cands.shape[0]} candidate RDMs but {len(names)} names")
    if len(set(names)) != len(names):
        raise AnalysisError("candidate names repeat; name every layer/network uniquely")
    n_stim = n_conditions(target.vectors.shape[1])
    if cands.shape[1] != target.vectors.shape[1]:
        raise AnalysisError(f"candidate RDMs have {cands.shape[1]} pairs but target {target.name!r} has "
                            f"{target.vectors.shape[1]} ({n_stim} stimuli); build them over the target's stimuli")
    if not np.all(np.isfinite(cands)):
        raise AnalysisError("candidate RDMs contain NaN/inf; check the activations")
    n_subj = target.n_subjects
    if noise_ceiling and n_subj < 3:
        raise InsufficientDataError(
            f"target {target.name!r} ({target.source}) has {n_subj} subject RDM(s); a noise ceiling needs at least 3 "
            "subjects (pass noise_ceiling=False / --no-noise-ceiling to evaluate without one)")
    if bootstrap in ("dual", "both", "subjects") and n_subj < 2:
        raise InsufficientDataError(f"target {target.name!r} has one subject; bootstrap over subjects needs several "
                                    "(use bootstrap='stimuli' or 'none')")
    keep = target.complete_pairs()
    n_dropped = int((~keep).sum())
    data = target.vectors
    if n_dropped:
        if keep.sum() < 3:
            raise InsufficientDataError(f"target {target.name!r}: only {int(keep.sum())} pairs are measured in every "
                                        "subject; comparisons need at least 3")
        logger.warning("target %s: %d of %d pairs are missing in at least one subject and are left out of every "
                       "comparison (rsatoolbox's rule)", target.name, n_dropped, keep.size)
    col_of = np.full(keep.size, -1)   # full pair index -> column among the complete pairs
    col_of[keep] = np.arange(int(keep.sum()))
    cands_k, data_k = cands[:, keep], data[:, keep]

    # ---- fixed evaluation (eval_fixed) and noise ceiling on the data as they are
    per_subject = _similarities(cands_k, data_k, method)
    value = per_subject.mean(axis=1)
    nc_fixed = _noise_ceiling(data_k, np.ones(n_subj), method) if noise_ceiling else (np.nan, np.nan)

    # ---- bootstrap
    if bootstrap == "none" or n_bootstraps == 0 and resamples is None:
        res = Resamples(None, None)
    else:
        res = resamples if resamples is not None else draw_resamples(n_subj, n_stim, n_bootstraps, bootstrap=bootstrap,
                                                                      seed=seed)
    n_boot = res.n

    fast = _Moments(cands_k, data_k, method) if method in ("corr", "cosine") else None
    pattern_state: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def run(subj: np.ndarray | None, stim: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        ev = np.full((n_boot, cands.shape[0]), np.nan)
        nc = np.full((2, n_boot), np.nan)
        for b in range(n_boot):
            if stim is not None and np.unique(stim[b]).size < 3:
                continue              # too few distinct stimuli: a missing resample, as in rsatoolbox
            if fast is not None:
                if stim is None:
                    sims, r = fast.full
                else:
                    if b not in pattern_state:   # shared by the dual bootstrap's both- and stimuli-runs
                        pattern_state[b] = fast.state(_pair_weights(stim[b], n_stim, keep))
                    sims, r = pattern_state[b]
                counts = np.ones(n_subj) if subj is None else np.bincount(subj[b], minlength=n_subj).astype(float)
                ev[b] = sims @ counts / counts.sum()
                if noise_ceiling:
                    nc[0, b], nc[1, b] = _Moments.noise_ceiling(r, counts)
                continue
            if stim is not None:
                cols = col_of[sample_pairs(stim[b], n_stim)]
                cols = cols[cols >= 0]
                c_b, d_b = cands_k[:, cols], data_k[:, cols]
            else:
                c_b, d_b = cands_k, data_k
            ev[b], nc[0, b], nc[1, b] = _one_sample(c_b, d_b, method, None if subj is None else subj[b])
        return ev, nc

    variances: np.ndarray | None = None
    if n_boot:
        if bootstrap == "dual":
            parts = [run(res.subjects, res.stimuli), run(res.subjects, None), run(None, res.stimuli)]
            evals = np.stack([p[0] for p in parts], axis=-1)
            ncs = np.stack([p[1] for p in parts], axis=-1)
            ok = ~np.isnan(evals[:, 0, 0])
            mat = np.concatenate([evals[ok], ncs[:, ok].transpose(1, 0, 2)], axis=1)
            mat = mat - mat.mean(axis=0, keepdims=True)
            variances = np.einsum("ijk,ilk->kjl", mat, mat) / (mat.shape[0] - 1)
            dof = min(n_subj, n_stim) - 1
            model_var, diff_var, nc_var = _variances(variances, nc_included=True, n_rdm=n_subj, n_pattern=n_stim)
        else:
            evals, ncs = run(res.subjects, res.stimuli)
            ok = np.isfinite(evals[:, 0])
            if bootstrap == "subjects":
                variances = np.atleast_2d(np.cov(evals.T))
                dof, n_rdm, n_pat, nc_inc = n_subj - 1, n_subj, None, False
            else:
                variances = np.atleast_2d(np.cov(np.concatenate([evals[ok].T, ncs[:, ok]])))
                nc_inc = True
                if bootstrap == "stimuli":
                    dof, n_rdm, n_pat = n_stim - 1, None, n_stim
                else:
                    dof, n_rdm, n_pat = min(n_subj, n_stim) - 1, n_subj, n_stim
            model_var, diff_var, nc_var = _variances(variances, nc_included=nc_inc, n_rdm=n_rdm, n_pattern=n_pat)
        means = np.nanmean(evals, axis=0)
        while means.ndim > 1:
            means = np.nanmean(means, axis=-1)
        nc_low_mean = float(np.nanmean(ncs[0])) if noise_ceiling else np.nan
        se = np.sqrt(np.maximum(model_var, _EPS))
        p_zero = 1 - stats.t.cdf(means / se, dof)
        p_noise = 2 * (1 - stats.t.cdf(np.abs(means - nc_low_mean) / np.sqrt(np.maximum(nc_var[:, 0], _EPS)), dof)) \
            if noise_ceiling else np.full(len(names), np.nan)
        both = evals[..., 0] if evals.ndim == 3 else evals
        lo_ci, hi_ci = np.nanpercentile(both, [2.5, 97.5], axis=0)
        n_ok = int(ok.sum())
    else:
        evals, ncs = np.empty((0, len(names))), np.empty((2, 0))
        means = value.copy()
        dof = n_subj - 1
        se = per_subject.std(axis=1, ddof=1) / np.sqrt(n_subj) if n_subj > 1 else np.full(len(names), np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            p_zero = 1 - stats.t.cdf(means / se, dof) if n_subj > 1 else np.full(len(names), np.nan)
        p_noise = np.full(len(names), np.nan)
        lo_ci = hi_ci = np.full(len(names), np.nan)
        diff_var = None
        n_ok = 0
        nc_low_mean = nc_fixed[0]

    lower = nc_fixed[0]
    table = pd.DataFrame({
        "target": target.name, "candidate": names, "group": list(groups) if groups is not None else "",
        "method": method, "value": value, "boot_mean": means, "se": se,
        "ci_low": lo_ci, "ci_high": hi_ci, "p_zero": p_zero, "p_noise_lower": p_noise,
        "noise_lower": lower, "noise_upper": nc_fixed[1],
        "n_subjects": n_subj, "n_stimuli": n_stim, "n_pairs": int(keep.sum()), "n_pairs_dropped": n_dropped,
        "bootstrap": bootstrap, "n_bootstraps": n_boot, "n_bootstraps_used": n_ok, "dof": dof,
    })
    # "reaches the lower bound": not significantly below it (rsatoolbox's reading of its plots) or above it
    table["reaches_lower_bound"] = (table["value"] >= lower) | (table["p_noise_lower"] >= alpha) \
        if noise_ceiling else False
    table["best"] = False
    table.loc[int(np.argmax(value)), "best"] = True

    a, b = np.triu_indices(len(names), 1)
    if diff_var is not None and a.size:
        diffs = means[a] - means[b]
        t = diffs / np.sqrt(np.maximum(diff_var, _EPS))
        p = 2 * (1 - stats.t.cdf(np.abs(t), dof))
        p_corr = correct(p, method=correction)
    else:
        diffs = value[a] - value[b]
        t = p = p_corr = np.full(a.size, np.nan)
    pairwise = pd.DataFrame({
        "target": target.name, "candidate_a": [names[i] for i in a], "candidate_b": [names[j] for j in b],
        "difference": diffs, "t": t, "p": p, "p_corrected": p_corr, "correction": correction,
        "significant": np.asarray(p_corr) < alpha, "dof": dof,
    })
    info = {"method": method, "bootstrap": bootstrap, "n_bootstraps": n_boot, "seed": seed, "correction": correction,
            "alpha": alpha, "n_pairs_dropped": n_dropped, "rank_based": meth.rank_based}
    return TargetEvaluation(target.name, table, pairwise, (float(nc_fixed[0]), float(nc_fixed[1])), evals, ncs,
                            per_subject, variances, dof, info)
