"""run_rsa: table layout, known answers, agreement with rsatoolbox, reproducibility, bad inputs."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from musiclens.errors import AnalysisError, ConfigError, InsufficientDataError
from musiclens.rsa import TABLE_COLUMNS, run_rsa

FAST = dict(n_permutations=60, n_bootstraps=40)


@pytest.fixture
def layers(grid6, mixed_code) -> dict[str, np.ndarray]:
    return {f"layer_{k:02d}": mixed_code(grid6, chroma=c, height=1.0, noise=1.0, dim=24, seed=k)
            for k, c in enumerate([0.0, 0.6, 1.5])}


def test_table_layout_and_contents(layers, grid6) -> None:
    res = run_rsa(layers, grid6, network="toy", **FAST)
    t = res.table
    assert tuple(t.columns) == TABLE_COLUMNS
    assert set(t["statistic"]) == {"tau-a", "partial-tau-a", "partial-tau-b", "beta_pitch_height", "beta_chroma",
                                   "beta_pitch_height_x_chroma", "tau-a-best-layer-cv",
                                   "partial-tau-a-best-layer-cv", "partial-tau-b-best-layer-cv"}
    assert (t["network"] == "toy").all()
    main = t[t["statistic"] == "tau-a"]
    assert len(main) == 3 * 2 and main["noise_ceiling_low"].notna().all()
    assert (main["noise_ceiling_low"] <= main["noise_ceiling_high"]).all()
    assert t[["value", "ci_low", "ci_high", "p", "p_corrected"]].notna().all().all()
    assert ((t["ci_low"] <= t["value"] + 1e-12) & (t["value"] <= t["ci_high"] + 1e-12)).all()
    # Bonferroni over layers x models within a statistic
    np.testing.assert_allclose(main["p_corrected"], np.minimum(1, main["p"] * 6))
    # partial chroma grows with the pitch-class weight; the best chroma layer is the last
    pc = t[(t.statistic == "partial-tau-b") & (t.model_rdm == "chroma")].set_index("layer")["value"]
    assert pc["layer_00"] < pc["layer_01"] < pc["layer_02"]
    best = t[(t.statistic == "partial-tau-b-best-layer-cv") & (t.model_rdm == "chroma")].iloc[0]
    assert best["layer"] == "layer_02"
    assert set(res.per_subject["subject"]) == {f"inst{k}" for k in range(6)}


def test_values_and_noise_ceiling_agree_with_rsatoolbox(layers, grid6) -> None:
    rsatoolbox = pytest.importorskip("rsatoolbox")
    from rsatoolbox.inference import boot_noise_ceiling

    res = run_rsa(layers, grid6, method="spearman", n_permutations=0, n_bootstraps=0)
    t = res.table.set_index(["statistic", "layer", "model_rdm"])
    for layer, stack in res.rdms.items():
        data = rsatoolbox.rdm.RDMs(stack.vectors)
        for name, vec in res.model_rdms.items():
            ref = rsatoolbox.rdm.compare(data, rsatoolbox.rdm.RDMs(vec[None]), method="spearman").mean()
            assert t.loc[("spearman", layer, name), "value"] == pytest.approx(ref, abs=1e-12)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lo, hi = boot_noise_ceiling(data, method="spearman")
        assert t.loc[("spearman", layer, "chroma"), "noise_ceiling_low"] == pytest.approx(lo, abs=1e-12)
        assert t.loc[("spearman", layer, "chroma"), "noise_ceiling_high"] == pytest.approx(hi, abs=1e-12)


def test_pure_pitch_class_code_reaches_the_chroma_ceiling(grid6) -> None:
    onehot = np.eye(12)[grid6["pitch_class"].to_numpy()]
    res = run_rsa({"pc": onehot}, grid6, test="permutation", n_permutations=99, n_bootstraps=20,
                  bootstrap_over="pitches", seed=0)
    row = res.table[(res.table.statistic == "tau-a") & (res.table.model_rdm == "chroma")].iloc[0]
    assert row["value"] == pytest.approx(row["noise_ceiling_high"], abs=1e-12)
    assert row["value"] == pytest.approx(row["noise_ceiling_low"], abs=1e-12)
    assert row["p"] == pytest.approx(1 / 100)


@pytest.mark.parametrize("test", ["t-test", "permutation"])
def test_same_seed_identical_table(layers, grid6, test: str) -> None:
    a = run_rsa(layers, grid6, seed=7, test=test, **FAST).table
    b = run_rsa(layers, grid6, seed=7, test=test, **FAST).table
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    c = run_rsa(layers, grid6, seed=8, test=test, **FAST).table
    assert not np.array_equal(a["ci_low"].to_numpy(), c["ci_low"].to_numpy())


@pytest.mark.parametrize("over", ["instruments", "pitches"])
def test_bootstrap_modes(layers, grid6, over: str) -> None:
    t = run_rsa(layers, grid6, bootstrap_over=over, correction="fdr_bh", **FAST).table
    assert t[["ci_low", "ci_high"]].notna().all().all() and (t["ci_high"] >= t["ci_low"]).all()


def test_stimulus_order_mismatch_raises(layers, grid6) -> None:
    ids = grid6["stimulus_id"].tolist()
    swapped = ids[1:2] + ids[:1] + ids[2:]
    with pytest.raises(AnalysisError, match="order differs"):
        run_rsa(layers, grid6, stimulus_ids=swapped, **FAST)
    with pytest.raises(AnalysisError, match="do not match"):
        run_rsa(layers, grid6, stimulus_ids=ids[:-1] + ["other"], **FAST)
    run_rsa(layers, grid6, stimulus_ids=ids, n_permutations=0, n_bootstraps=0)


def test_nan_constant_and_tiny_inputs_raise(layers, grid6, note_grid) -> None:
    bad = dict(layers)
    bad["layer_01"] = bad["layer_01"].copy()
    bad["layer_01"][5, 2] = np.nan
    with pytest.raises(AnalysisError, match="NaN"):
        run_rsa(bad, grid6, **FAST)
    with pytest.raises(AnalysisError, match="constant"):
        run_rsa({"dead": np.ones((len(grid6), 8))}, grid6, **FAST)
    tiny = note_grid(["a", "b"], midi=np.array([60, 61]))
    with pytest.raises(InsufficientDataError, match="at least 3"):
        run_rsa({"l": np.random.default_rng(0).normal(size=(4, 5))}, tiny, **FAST)
    with pytest.raises(AnalysisError, match="metadata rows"):
        run_rsa({"l": layers["layer_00"][:-1]}, grid6, **FAST)


def test_bad_configuration(layers, grid6) -> None:
    with pytest.raises(ConfigError, match="permutation"):
        run_rsa(layers, grid6, test="permutation", n_permutations=0)
    with pytest.raises(ConfigError):
        run_rsa(layers, grid6, bootstrap_over="everything")
    with pytest.raises(Exception, match="Did you mean"):
        run_rsa(layers, grid6, method="tau_a")


def test_resamples_with_a_constant_model_rdm_are_left_out_and_counted(note_grid, mixed_code, caplog) -> None:
    """Two octaves: a resample of the pitches may hold no two conditions of one pitch class, so the
    chroma RDM is constant there and nothing is defined (it used to abort the run as 'collinear
    models'); such resamples are left out of the intervals, counted and logged."""
    from itertools import combinations

    from musiclens.rsa import inference

    midi = np.array([60, 64, 67, 72, 76, 79])                 # C E G, twice
    meta = note_grid(["a", "b", "c"], midi=midi)
    acts = {"l0": mixed_code(meta, chroma=1.0, height=1.0, noise=0.5, dim=16, seed=0)}
    n_boot = 300
    with caplog.at_level("WARNING"):
        res = run_rsa(acts, meta, n_permutations=0, n_bootstraps=n_boot, bootstrap_over="both", seed=4,
                      best_layer=False, regression=False)
    # the same resamples, drawn as run_rsa draws them; a model is constant on the distinct conditions drawn
    boot_seed = np.random.SeedSequence(4).spawn(3)[1]
    rng = np.random.default_rng(boot_seed)
    inference.bootstrap_indices(3, n_boot, seed=rng)           # instruments first (bootstrap_over="both")
    counts = inference.bootstrap_indices(len(midi), n_boot, seed=rng)
    rdms = [lambda i, j: abs(midi[i] - midi[j]), lambda i, j: midi[i] % 12 != midi[j] % 12]  # height, chroma
    expected = sum(any(len({r(i, j) for i, j in combinations(np.flatnonzero(c), 2)}) <= 1 for r in rdms)
                   for c in counts)
    assert expected > 0
    t = res.table
    assert (t["n_boot_undefined"] == expected).all() and res.config["n_boot_undefined"] == expected
    assert t[["ci_low", "ci_high"]].notna().all().all()
    assert f"{expected} of {n_boot} bootstrap resamples" in caplog.text
    ok = run_rsa(acts, meta, n_permutations=0, n_bootstraps=n_boot, bootstrap_over="instruments", seed=4,
                 best_layer=False, regression=False).table
    assert (ok["n_boot_undefined"] == 0).all()


def test_resamples_with_a_collinear_regression_are_left_out_and_counted(note_grid, mixed_code) -> None:
    """One instrument, two octaves, bootstrap over pitches: many resamples make height × chroma
    collinear; the betas' intervals come from the others and the count is in the table."""
    meta = note_grid(["x"], midi=np.arange(60, 85))
    acts = {"l": mixed_code(meta, chroma=1.0, height=1.0, noise=0.5, dim=8, seed=0)}
    t = run_rsa(acts, meta, test="permutation", n_permutations=20, n_bootstraps=200, bootstrap_over="pitches",
                seed=0).table.set_index("statistic")
    betas = t.loc[t.index.str.startswith("beta_")]
    assert (betas["n_boot_undefined"] > 0).all() and (betas["n_boot_undefined"] < 200).all()
    assert betas[["ci_low", "ci_high"]].notna().all().all()
    assert (t.loc[["tau-a"], "n_boot_undefined"] == 0).all()
