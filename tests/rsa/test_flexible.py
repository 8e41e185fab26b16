"""Cross-validated flexible candidates equal rsatoolbox's crossval (ModelWeighted + fit_regress) on the same folds."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

rsatoolbox = pytest.importorskip("rsatoolbox")
from rsatoolbox.inference.evaluate import crossval  # noqa: E402
from rsatoolbox.model.fitter import fit_mock, fit_regress  # noqa: E402

from musiclens.errors import AnalysisError, ConfigError  # noqa: E402
from musiclens.rsa.flexible import crossvalidate, fit_weights, kfold_sets  # noqa: E402
from musiclens.rsa.targets import TargetRDMs  # noqa: E402

N, S = 14, 6


def _problem(seed: int = 0):
    rng = np.random.default_rng(seed)
    npair = N * (N - 1) // 2
    comps = rng.random((3, npair))
    truth = comps.T @ np.array([0.7, 0.0, 0.4])
    data = np.stack([truth + 0.3 * rng.random(npair) for _ in range(S)])
    fixed = {"c0": comps[0], "noise": rng.random(npair)}
    return comps, data, fixed


@pytest.mark.parametrize("method", ["corr", "cosine"])
def test_equals_rsatoolbox_crossval_on_the_same_folds(method):
    comps, data, fixed = _problem(1)
    folds = kfold_sets(S, N, k_subjects=2, k_stimuli=2, seed=3)
    target = TargetRDMs("t", [f"x{i}" for i in range(N)], [f"s{i}" for i in range(S)], data)
    mine = crossvalidate(fixed, {"weighted": comps}, target, folds=folds, method=method).set_index("candidate")

    rd = rsatoolbox.rdm.RDMs(data, pattern_descriptors={"index": list(range(N))},
                             rdm_descriptors={"index": list(range(S))})
    train_set, test_set, ceil_set = [], [], []
    for f in folds:
        train_set.append([rd.subset("index", list(f.train_subjects)).subset_pattern("index", list(f.train_stimuli)),
                          list(f.train_stimuli)])
        test_set.append([rd.subset("index", list(f.test_subjects)).subset_pattern("index", list(f.test_stimuli)),
                         list(f.test_stimuli)])
        ceil_set.append([rd.subset("index", list(f.train_subjects)).subset_pattern("index", list(f.test_stimuli)),
                         list(f.test_stimuli)])
    models = [rsatoolbox.model.ModelFixed(k, rsatoolbox.rdm.RDMs(v[None])) for k, v in fixed.items()]
    models.append(rsatoolbox.model.ModelWeighted("weighted", rsatoolbox.rdm.RDMs(comps)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = crossval(models, rd, train_set, test_set, ceil_set, method=method,
                       fitter=[fit_mock, fit_mock, fit_regress])
    for k, name in enumerate(["c0", "noise", "weighted"]):
        got = np.array([float(v) for v in mine.loc[name, "fold_values"].split(";")])
        np.testing.assert_allclose(got, ref.evaluations[0, k], rtol=0, atol=5e-6)   # 6 significant digits stored
        assert mine.loc[name, "value"] == pytest.approx(np.mean(ref.evaluations[0, k]), abs=1e-12)
    np.testing.assert_allclose([mine["noise_lower"].iloc[0], mine["noise_upper"].iloc[0]],
                               np.asarray(ref.noise_ceiling, dtype=float), atol=1e-12)
    # the fitted weights of the first fold, against fit_regress itself
    from musiclens.rsa.flexible import _pair_columns

    f0, tr = folds[0], train_set[0]
    theta_ref = fit_regress(models[2], tr[0], method=method, pattern_idx=tr[1], pattern_descriptor="index")
    c = _pair_columns(f0.train_stimuli, N)
    np.testing.assert_allclose(fit_weights(comps[:, c], data[f0.train_subjects][:, c], method=method), theta_ref,
                               atol=1e-10)


def test_flexible_beats_its_components_and_recovers_weights():
    comps, data, fixed = _problem(2)
    target = TargetRDMs("t", [f"x{i}" for i in range(N)], [f"s{i}" for i in range(S)], data)
    table = crossvalidate({"c0": comps[0], "c2": comps[2]}, {"weighted": comps}, target,
                          folds=kfold_sets(S, N, k_subjects=3, k_stimuli=2, seed=0)).set_index("candidate")
    assert table.loc["weighted", "value"] > max(table.loc["c0", "value"], table.loc["c2", "value"])
    w = np.array([float(x) for x in table.loc["weighted", "weights"].split(";")])
    assert w[0] > w[2] > abs(w[1])   # the data were made from 0.7 c0 + 0.4 c2


def test_refusals():
    comps, data, fixed = _problem(0)
    target = TargetRDMs("t", [f"x{i}" for i in range(N)], [f"s{i}" for i in range(S)], data)
    folds = kfold_sets(S, N, seed=0)
    with pytest.raises(ConfigError, match="corr, cosine"):
        crossvalidate(fixed, {"w": comps}, target, folds=folds, method="spearman")
    with pytest.raises(ConfigError, match="k_subjects"):
        kfold_sets(S, N, k_subjects=1)
    with pytest.raises(ConfigError, match="k_stimuli"):
        kfold_sets(S, 5, k_stimuli=2)
    with pytest.raises(ConfigError, match="one component"):
        crossvalidate({}, {"w": comps[:1]}, target, folds=folds)
    gappy = data.copy()
    gappy[:, 3] = np.nan
    with pytest.raises(AnalysisError, match="missing pairs"):
        crossvalidate(fixed, {}, TargetRDMs("g", target.stimulus_ids, target.subjects, gappy), folds=folds)
