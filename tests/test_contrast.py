"""Paired contrasts between conditions (musiclens.contrast, the study's contrasts step): checked
against scipy and hand loops, with a known difference detected and a null case held near alpha."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from musiclens.contrast import (best_layer_values, holm, pair_seeds, paired_contrast, sign_flip_p,
                                two_way_bootstrap)
from musiclens.errors import ConfigError, InsufficientDataError
from musiclens.study_steps.contrasts import BEST_LAYER, parse_statistic, rsa_contrasts


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_sign_flip_p_equals_scipy(seed):
    u = np.random.default_rng(seed).normal(0.3, 1.0, size=9)
    ours, exact = sign_flip_p(u)
    ref = stats.permutation_test((u,), np.mean, permutation_type="samples", n_resamples=np.inf,
                                 alternative="two-sided").pvalue
    assert exact and ours == pytest.approx(ref, abs=1e-12)


def test_monte_carlo_sign_flip_p_approaches_the_exact_one():
    u = np.random.default_rng(3).normal(0.4, 1.0, size=14)
    exact, is_exact = sign_flip_p(u)
    mc, mc_exact = sign_flip_p(u, n_permutations=20000, seed=0, exact_max_units=10)
    by_hand = np.mean([abs(np.dot(s, u)) >= abs(u.sum()) - 1e-12 for s in itertools.product((1.0, -1.0), repeat=14)])
    assert is_exact and not mc_exact and exact == pytest.approx(by_hand) and mc == pytest.approx(exact, abs=0.01)


def test_two_way_bootstrap_equals_a_hand_loop():
    d = np.random.default_rng(0).normal(size=(6, 3))
    lo, hi = two_way_bootstrap(d, n_bootstraps=500, seed=7)
    rng = np.random.default_rng(7)
    rows = rng.integers(0, 6, size=(500, 6))
    cols = rng.integers(0, 3, size=(500, 3))
    means = np.array([d[np.ix_(r, c)].mean() for r, c in zip(rows, cols)])
    assert (lo, hi) == pytest.approx((np.quantile(means, 0.025), np.quantile(means, 0.975)), abs=1e-12)


def test_paired_contrast_fields_by_hand():
    d = np.array([[0.1, 0.3], [0.2, 0.2], [0.5, 0.1], [0.0, 0.2]])
    res = paired_contrast(d, n_bootstraps=200, seed=0)
    u = d.mean(axis=1)
    assert res.difference == pytest.approx(d.mean())
    assert res.effect_size_dz == pytest.approx(u.mean() / u.std(ddof=1))
    assert res.per_seed == pytest.approx(list(d.mean(axis=0)))
    assert (res.n_units, res.n_seeds, res.exact) == (4, 2, True)
    assert res.p_sign_flip == pytest.approx(2 / 16)   # all positive: only the identity and its mirror reach |T|
    assert res.ci_low <= res.difference <= res.ci_high and res.boot_ci_low <= res.difference <= res.boot_ci_high
    one_seed = paired_contrast(d[:, :1], n_bootstraps=50)
    ref = stats.ttest_1samp(d[:, 0], 0.0)
    assert one_seed.p == pytest.approx(ref.pvalue) and one_seed.df == 3
    lo, hi = ref.confidence_interval(0.95)
    assert (one_seed.ci_low, one_seed.ci_high) == pytest.approx((lo, hi))


def test_crossed_t_test_mean_squares_match_a_least_squares_anova():
    from musiclens.contrast import crossed_t_test

    g = np.random.default_rng(4)
    d = g.normal(size=(7, 3)) + np.array([[0.0, 1.5, -1.2]]) + 2.0 * g.normal(size=(7, 1))
    n_u, n_s = d.shape
    y = d.ravel()
    units = np.repeat(np.arange(n_u), n_s)
    seeds = np.tile(np.arange(n_s), n_u)

    def rss(*factors):     # residual sum of squares of an additive dummy-coded model, by least squares
        x = np.column_stack([np.ones_like(y)] + [(f[:, None] == np.arange(1, f.max() + 1)).astype(float)
                                                 for f in factors])
        return float(((y - x @ np.linalg.lstsq(x, y, rcond=None)[0]) ** 2).sum())

    full = rss(units, seeds)
    ms_e = full / ((n_u - 1) * (n_s - 1))
    ms_u = (rss(seeds) - full) / (n_u - 1)
    ms_s = (rss(units) - full) / (n_s - 1)
    var = (ms_u + ms_s - ms_e) / (n_u * n_s)
    df = (ms_u + ms_s - ms_e) ** 2 / (ms_u ** 2 / (n_u - 1) + ms_s ** 2 / (n_s - 1) + ms_e ** 2 / ((n_u - 1) * (n_s - 1)))
    t, got_df, p, lo, hi = crossed_t_test(d)
    assert t == pytest.approx(d.mean() / np.sqrt(var)) and got_df == pytest.approx(df)
    assert p == pytest.approx(2 * stats.t.sf(abs(t), df))
    assert (lo + hi) / 2 == pytest.approx(d.mean())
    # no seed component (seeds agree): the t-test across units of the seed-averaged differences
    flat = 0.3 + g.normal(size=(7, 1)) + 1e-3 * np.array([[1.0, -1.0, 0.0]])
    assert crossed_t_test(flat)[2] == pytest.approx(stats.ttest_1samp(flat.mean(axis=1), 0.0).pvalue)


def test_a_known_difference_is_detected_and_the_null_holds_alpha():
    rng = np.random.default_rng(0)
    unit = rng.normal(0, 1, size=(12, 1))                     # instrument effects shared by both conditions
    shifted = paired_contrast((unit + rng.normal(1.0, 0.5, size=(12, 3))) - unit, n_bootstraps=500)
    assert shifted.p < 0.01 and shifted.ci_low > 0 and shifted.p_sign_flip < 0.01
    rejections = {"no seed effect": [], "seed effects": []}
    for r in range(400):
        g = np.random.default_rng(100 + r)
        noise = g.normal(0, 1, size=(12, 3)) + g.normal(0, 1, size=(12, 1))
        rejections["no seed effect"].append(paired_contrast(noise, n_bootstraps=10).p < 0.05)
        # training runs differ too: a test over instruments alone would reject far too often
        rejections["seed effects"].append(paired_contrast(noise + g.normal(0, 0.5, size=(1, 3)), n_bootstraps=10).p < 0.05)
    for name, rej in rejections.items():
        assert 0.01 <= np.mean(rej) <= 0.08, (name, np.mean(rej))


def test_best_layer_values_leave_the_unit_out():
    v = np.random.default_rng(1).normal(size=(4, 5, 2))
    held, chosen = best_layer_values(v)
    m = v.mean(axis=2)
    for i in range(5):
        others = np.delete(m, i, axis=1).mean(axis=1)
        assert chosen[i] == int(np.argmax(others))
        np.testing.assert_array_equal(held[i], v[chosen[i], i])


def test_holm_by_hand_and_seed_pairing():
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, np.nan]), [0.03, 0.06, 0.06, np.nan])
    assert pair_seeds([0, 1, 2], [1, 2, 3]) == [(1, 0), (2, 1)]
    assert pair_seeds([0, 1, 2], [None]) == [(0, 0), (1, 0), (2, 0)]
    with pytest.raises(InsufficientDataError, match="share no seed"):
        pair_seeds([0, 1], [2, 3])
    with pytest.raises(InsufficientDataError, match="n_units >= 2"):
        paired_contrast(np.ones((1, 3)))


def _per_subject(effect_layer: int, effect: float, seeds=(0, 1, 2), n_inst: int = 10) -> tuple[pd.DataFrame, dict]:
    rng = np.random.default_rng(0)
    inst = rng.normal(0, 0.05, size=n_inst)
    rows, groups = [], {"a": [], "b": []}
    for group in ("a", "b"):
        for s in seeds:
            name = f"{group}-s{s}"
            groups[group].append((name, s))
            for li in range(3):
                for i in range(n_inst):
                    value = 0.2 + inst[i] + rng.normal(0, 0.02)
                    if group == "a" and li == effect_layer:
                        value += effect
                    rows.append(dict(network=name, layer=f"layer_{li:02d}", subject=f"i{i}", model_rdm="chroma",
                                     statistic="partial-tau-b", value=value))
    return pd.DataFrame(rows), groups


def test_rsa_contrasts_find_the_layer_with_the_difference():
    ps, groups = _per_subject(effect_layer=2, effect=0.1)
    t = rsa_contrasts(ps, groups, [("a", "b")], ["partial-tau-b:chroma"], n_bootstraps=300)
    by_layer = t.set_index("layer")
    assert by_layer.loc["layer_02", "significant"] and by_layer.loc["layer_02", "difference"] == pytest.approx(0.1, abs=0.02)
    assert not by_layer.loc["layer_00", "significant"] and not by_layer.loc["layer_01", "significant"]
    best = by_layer.loc[BEST_LAYER]
    assert best["layer_a"] == "layer_02" and best["significant"] and best["n_seeds"] == 3 and best["n_units"] == 10
    # the per-layer row equals paired_contrast on the same matrix
    a = ps[(ps.layer == "layer_02") & ps.network.str.startswith("a")].pivot(index="subject", columns="network", values="value")
    b = ps[(ps.layer == "layer_02") & ps.network.str.startswith("b")].pivot(index="subject", columns="network", values="value")
    direct = paired_contrast(a.to_numpy() - b.to_numpy(), n_bootstraps=300)
    assert by_layer.loc["layer_02", "p"] == pytest.approx(direct.p)
    assert by_layer.loc["layer_02", "ci_low"] == pytest.approx(direct.ci_low)


def test_rsa_contrasts_name_what_is_missing():
    ps, groups = _per_subject(effect_layer=0, effect=0.0)
    with pytest.raises(InsufficientDataError, match="no per-instrument tau-a"):
        rsa_contrasts(ps, groups, [("a", "b")], ["tau-a:chroma"])
    with pytest.raises(ConfigError, match="STATISTIC:MODEL_RDM"):
        parse_statistic("partial-tau-b")


def test_probe_contrasts_per_task_with_pieces_as_units():
    from musiclens.study_steps.contrasts import probe_contrasts

    rng = np.random.default_rng(0)
    rows, groups = [], {"vit": [], "random": []}
    for group in groups:
        for s in (0, 1, 2):
            name = f"{group}-s{s}"
            groups[group].append((name, s))
            for task, effect in (("chords", 0.2), ("onsets", 0.0)):
                for layer in ("layer_00", "layer_01"):
                    for u in range(12):
                        v = 0.4 + rng.normal(0, 0.05) + (effect if group == "vit" else 0.0)
                        rows.append(dict(network=name, task=task, layer=layer, pooling="frames", probe="linear",
                                         metric="m", unit=f"piece{u}", value=v, seed=0))
    t = probe_contrasts(pd.DataFrame(rows), groups, [("vit", "random")], n_bootstraps=300)
    best = t[t.layer == BEST_LAYER].set_index("task")
    assert best.loc["chords", "significant"] and best.loc["chords", "difference"] == pytest.approx(0.2, abs=0.03)
    assert not best.loc["onsets", "significant"]
    assert set(t["analysis"]) == {"probe"} and (t["n_units"] == 12).all() and (t["n_seeds"] == 3).all()


def test_unit_scores_are_the_metric_per_group():
    from musiclens.probe.metrics import METRICS, Predictions, score, unit_scores

    rng = np.random.default_rng(0)
    n = 30
    pred = Predictions(targets=rng.integers(0, 3, n), scores=rng.dirichlet(np.ones(3), n), classes=[0, 1, 2],
                       groups=np.repeat(["a", "b", "c"], 10))
    per = unit_scores("accuracy", pred)
    for g in ("a", "b", "c"):
        assert per[g] == pytest.approx(score("accuracy", pred.take(np.flatnonzero(pred.groups == g))))
    set_metrics = [name for name in METRICS.names() if METRICS.get(name).kind not in ("example", "group")]
    assert set_metrics and unit_scores(set_metrics[0], pred) is None
