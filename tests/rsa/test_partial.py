"""Partial correlations and regression: formulas and known answers."""

from __future__ import annotations

import numpy as np
import pytest

from musiclens.errors import AnalysisError
from musiclens.rsa import run_rsa
from musiclens.rsa.compare import compare
from musiclens.rsa.models import model_vectors
from musiclens.rsa.partial import partial_correlations, regress, regression_design
from musiclens.rsa.rdm import compute_rdm


def test_two_model_partial_is_kendalls_formula() -> None:
    c = np.array([[0.4, -0.2], [0.1, 0.3]])
    r = 0.25
    got = partial_correlations(c, np.array([[1.0, r], [r, 1.0]]))
    dy, dz = c[:, 0], c[:, 1]
    np.testing.assert_allclose(got[:, 0], (dy - dz * r) / np.sqrt((1 - dz**2) * (1 - r**2)), rtol=1e-13)
    np.testing.assert_allclose(got[:, 1], (dz - dy * r) / np.sqrt((1 - dy**2) * (1 - r**2)), rtol=1e-13)


def test_three_model_partial_equals_residual_correlation() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 4))
    x[:, 1] += 0.5 * x[:, 2]
    x[:, 0] += x[:, 1] + 0.3 * x[:, 3]
    corr = np.corrcoef(x.T)
    got = partial_correlations(corr[0, 1:], corr[1:, 1:])
    # residual definition for model 1 controlling 2 and 3
    design = np.column_stack([np.ones(500), x[:, 2], x[:, 3]])
    res = [v - design @ np.linalg.lstsq(design, v, rcond=None)[0] for v in (x[:, 0], x[:, 1])]
    assert got[0] == pytest.approx(np.corrcoef(res)[0, 1], abs=1e-12)


def test_collinear_models_raise() -> None:
    with pytest.raises(AnalysisError, match="collinear"):
        partial_correlations(np.array([0.3, 0.3]), np.ones((2, 2)))


def test_pure_log_frequency_code_gives_analytic_height_and_no_chroma(note_grid) -> None:
    meta = note_grid(["x"])
    f0 = 440.0 * 2 ** ((meta["midi"].to_numpy(float) - 69) / 12)
    acts = {"logf": np.log2(f0)[:, None]}
    data = compute_rdm(acts["logf"], distance="euclidean")
    height, chroma = model_vectors(["pitch_height", "chroma"], meta)
    # analytic tau-a of |Δmidi| with itself: only ties at equal intervals are lost
    n = height.size
    tied = sum((36 - k) * (35 - k) // 2 for k in range(1, 36))
    assert compare(data, height)[0, 0] == pytest.approx((n * (n - 1) / 2 - tied) / (n * (n - 1) / 2), abs=1e-14)
    res = run_rsa(acts, meta, subject=None, distance="euclidean", test="permutation", n_permutations=199,
                  n_bootstraps=50, bootstrap_over="pitches", best_layer=False, seed=0)
    t = res.table.set_index(["statistic", "model_rdm"])
    assert t.loc[("tau-a", "chroma"), "value"] < 0                       # the confound, plainly
    for stat in ("partial-tau-a", "partial-tau-b"):
        assert abs(t.loc[(stat, "chroma"), "value"]) < 0.03
        assert not t.loc[(stat, "chroma"), "significant"]
    assert t.loc[("beta_pitch_height", "pitch_height"), "value"] == pytest.approx(1.0, abs=1e-12)
    assert t.loc[("beta_chroma", "chroma"), "value"] == pytest.approx(0.0, abs=1e-12)
    assert t.loc[("partial-tau-b", "pitch_height"), "significant"]


def test_regression_recovers_known_betas(note_grid) -> None:
    h, c = model_vectors(["pitch_height", "chroma"], note_grid(["x"]))
    x, names = regression_design(np.stack([h, c]), ["h", "c"])
    assert names == ["h", "c", "h_x_c"]
    y = 2.0 * x[:, 0] - 1.0 * x[:, 1] + 0.5 * x[:, 2]
    beta = regress(y[None], x)[0]
    np.testing.assert_allclose(beta / beta[0], [1.0, -0.5, 0.25], atol=1e-12)
