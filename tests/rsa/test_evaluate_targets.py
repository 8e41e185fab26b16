"""Model evaluation against measured RDMs equals rsatoolbox's inference API on the same resamples.

rsatoolbox draws its own resamples (``np.random``); the tests record the indices each of its
``bootstrap_sample*`` calls returns and hand exactly those to :func:`evaluate_targets`.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

rsatoolbox = pytest.importorskip("rsatoolbox")
from rsatoolbox.inference import evaluate as rsa_eval  # noqa: E402

from musiclens.errors import AnalysisError, InsufficientDataError  # noqa: E402
from musiclens.rsa.evaluate import Resamples, evaluate_targets, sample_pairs  # noqa: E402
from musiclens.rsa.targets import TargetRDMs  # noqa: E402

N_STIM, N_SUBJ, N_CAND = 9, 6, 4


def _problem(seed: int = 0, nan_pairs: int = 0):
    rng = np.random.default_rng(seed)
    npair = N_STIM * (N_STIM - 1) // 2
    base = rng.random(npair)
    data = np.stack([base + 0.5 * rng.random(npair) for _ in range(N_SUBJ)])
    cands = np.stack([base + 0.3 * rng.random(npair), rng.random(npair), base + rng.random(npair),
                      base + 0.1 * rng.random(npair)])
    if nan_pairs:
        data[:, rng.choice(npair, nan_pairs, replace=False)] = np.nan
    return data, cands


def _rsatoolbox_models(cands: np.ndarray, nan_mask: np.ndarray | None = None):
    out = []
    for k, c in enumerate(cands):
        c = c.copy()
        if nan_mask is not None:
            c[nan_mask] = np.nan    # rsatoolbox needs equal NaN positions in model and data
        out.append(rsatoolbox.model.ModelFixed(f"m{k}", rsatoolbox.rdm.RDMs(c[None])))
    return out


def _target(data: np.ndarray) -> TargetRDMs:
    return TargetRDMs("t", [f"x{i}" for i in range(N_STIM)], [f"s{i}" for i in range(N_SUBJ)], data)


def _recording(monkeypatch, name: str, record: list):
    orig = getattr(rsa_eval, name)

    def wrapper(*args, **kwargs):
        out = orig(*args, **kwargs)
        record.append(out[1:])
        return out

    monkeypatch.setattr(rsa_eval, name, wrapper)


def _check(ref, mine, *, evals_ref, nc_ref, pairwise: bool = True) -> None:
    np.testing.assert_allclose(mine.evaluations, evals_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(mine.noise_ceiling, nc_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(mine.table["boot_mean"], ref.get_means(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(mine.table["p_zero"], ref.test_zero(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(mine.table["p_noise_lower"], ref.test_noise(), rtol=0, atol=1e-10)
    if pairwise:
        a, b = np.triu_indices(N_CAND, 1)
        np.testing.assert_allclose(mine.pairwise["p"], ref.test_pairwise()[a, b], rtol=0, atol=1e-10)


@pytest.mark.parametrize("method", ["corr", "cosine", "spearman", "rho-a", "tau-a"])
@pytest.mark.parametrize("nan_pairs", [0, 5])
def test_dual_bootstrap_equals_rsatoolbox(monkeypatch, method, nan_pairs):
    data, cands = _problem(1, nan_pairs)
    rec: list = []
    _recording(monkeypatch, "bootstrap_sample", rec)
    np.random.seed(3)
    mask = np.isnan(data[0]) if nan_pairs else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = rsa_eval.eval_dual_bootstrap(_rsatoolbox_models(cands, mask), rsatoolbox.rdm.RDMs(data), method=method,
                                           N=25, k_pattern=1, k_rdm=1)
    res = Resamples(np.stack([r[0] for r in rec]), np.stack([r[1] for r in rec]))
    mine = evaluate_targets(cands, [f"m{k}" for k in range(N_CAND)], _target(data), method=method, bootstrap="dual",
                            resamples=res)
    _check(ref, mine, evals_ref=ref.evaluations[:, :, 0, 0, :], nc_ref=ref.noise_ceiling[:, :, 0, :])
    np.testing.assert_allclose(mine.variances, ref.variances, rtol=0, atol=1e-14)
    assert mine.table["n_pairs_dropped"].iloc[0] == nan_pairs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fixed = rsa_eval.eval_fixed(_rsatoolbox_models(cands, mask), rsatoolbox.rdm.RDMs(data), method=method)
    np.testing.assert_allclose(mine.table["value"], fixed.evaluations[0].mean(-1), rtol=0, atol=1e-12)
    np.testing.assert_allclose(mine.per_subject, fixed.evaluations[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(mine.noise_ceiling_fixed, fixed.noise_ceiling, rtol=0, atol=1e-12)


@pytest.mark.parametrize("bootstrap, ref_fn, sampler", [
    ("both", "eval_bootstrap", "bootstrap_sample"),
    ("stimuli", "eval_bootstrap_pattern", "bootstrap_sample_pattern"),
    ("subjects", "eval_bootstrap_rdm", "bootstrap_sample_rdm"),
])
@pytest.mark.parametrize("method", ["corr", "spearman"])
def test_one_scheme_bootstraps_equal_rsatoolbox(monkeypatch, bootstrap, ref_fn, sampler, method):
    data, cands = _problem(2)
    rec: list = []
    _recording(monkeypatch, sampler, rec)
    np.random.seed(5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = getattr(rsa_eval, ref_fn)(_rsatoolbox_models(cands), rsatoolbox.rdm.RDMs(data), method=method, N=30)
    if bootstrap == "both":
        res = Resamples(np.stack([r[0] for r in rec]), np.stack([r[1] for r in rec]))
    elif bootstrap == "stimuli":
        res = Resamples(None, np.stack([r[0] for r in rec]))
    else:
        res = Resamples(np.stack([r[0] for r in rec]), None)
    mine = evaluate_targets(cands, [f"m{k}" for k in range(N_CAND)], _target(data), method=method,
                            bootstrap=bootstrap, resamples=res)
    _check(ref, mine, evals_ref=ref.evaluations, nc_ref=ref.noise_ceiling)


def test_sample_pairs_is_subsample_pattern():
    """The pair columns of a resample are those rsatoolbox's subsample_pattern builds (copies → NaN).

    As a multiset: rsatoolbox groups the copies of a pattern, musiclens keeps the draw order; no
    comparison depends on the order of the pairs.
    """
    rng = np.random.default_rng(0)
    vec = rng.random(N_STIM * (N_STIM - 1) // 2)
    q = np.array([3, 3, 0, 7, 1, 7, 8, 2, 3])
    ref = rsatoolbox.rdm.RDMs(vec[None]).subsample_pattern("index", q).get_vectors()[0]
    np.testing.assert_array_equal(np.sort(vec[sample_pairs(q, N_STIM)]), np.sort(ref[~np.isnan(ref)]))


def test_refusals():
    data, cands = _problem(0)
    names = [f"m{k}" for k in range(N_CAND)]
    two = TargetRDMs("two", [f"x{i}" for i in range(N_STIM)], ["a", "b"], data[:2])
    with pytest.raises(InsufficientDataError, match="at least 3"):
        evaluate_targets(cands, names, two)
    out = evaluate_targets(cands, names, two, noise_ceiling=False, bootstrap="stimuli", n_bootstraps=10)
    assert out.table["p_noise_lower"].isna().all()
    with pytest.raises(AnalysisError, match="pairs"):
        evaluate_targets(cands[:, :-1], names, _target(data))
    with pytest.raises(AnalysisError, match="repeat"):
        evaluate_targets(cands, ["a"] * N_CAND, _target(data))


def test_recovers_the_true_candidate_and_is_seeded():
    rng = np.random.default_rng(4)
    n, n_subj = 30, 8
    npair = n * (n - 1) // 2
    truth = rng.random(npair)
    data = np.stack([truth + 0.8 * rng.random(npair) for _ in range(n_subj)])
    cands = np.stack([truth + 0.3 * rng.random(npair), rng.random(npair), truth + 2.0 * rng.random(npair)])
    target = TargetRDMs("t", [f"x{i}" for i in range(n)], [f"s{i}" for i in range(n_subj)], data)
    names = ["near", "noise", "far"]
    a = evaluate_targets(cands, names, target, n_bootstraps=200, seed=1)
    b = evaluate_targets(cands, names, target, n_bootstraps=200, seed=1)
    assert a.table.equals(b.table) and a.pairwise.equals(b.pairwise)
    assert a.table.loc[a.table["best"], "candidate"].item() == "near"
    sig = a.pairwise.set_index(["candidate_a", "candidate_b"])["significant"]
    assert sig[("near", "noise")] and sig[("noise", "far")]
    assert a.table.set_index("candidate").loc["noise", "p_zero"] > 0.05
    assert a.table.set_index("candidate").loc["near", "p_zero"] < 0.001
