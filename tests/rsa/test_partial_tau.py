"""The two partial Kendall statistics, each against an independent implementation.

``partial-tau-a``: the textbook formula on τ_a coefficients (unit diagonal).
``partial-tau-b``: Kendall's partial τ on τ_b coefficients (scipy's ``kendalltau``, variant b),
as R's ``ppcor::pcor(method = "kendall")`` computes it.  Both come from the same permutations;
each permutation p is checked by recomputing the statistic on brute-force permuted RDMs.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from musiclens.rsa import inference
from musiclens.rsa.models import model_vectors
from musiclens.rsa.pipeline import partial_statistic, partial_statistics, run_rsa, self_concordance
from musiclens.rsa.rdm import compute_rdm


def _tau_a(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's τ_a by the definition: (concordant - discordant) pairs / all pairs."""
    n = len(x)
    s = sum(np.sign(x[i] - x[j]) * np.sign(y[i] - y[j]) for i, j in itertools.combinations(range(n), 2))
    return float(s) / (n * (n - 1) / 2)


def _kendall_partial(t_dc: float, t_dh: float, t_ch: float) -> float:
    """Kendall (1942): τ_{dc·h} = (τ_dc − τ_dh τ_ch) / sqrt((1 − τ_dh²)(1 − τ_ch²))."""
    return (t_dc - t_dh * t_ch) / np.sqrt((1 - t_dh**2) * (1 - t_ch**2))


@pytest.fixture
def one_instrument(note_grid, mixed_code):  # noqa: ANN001, ANN201
    meta = note_grid(["x"], midi=np.arange(60, 84))        # 24 notes: 276 dissimilarities
    acts = {"layer": mixed_code(meta, chroma=1.2, height=1.0, noise=0.8, dim=10, seed=3)}
    return meta, acts


def test_names() -> None:
    assert partial_statistics("tau-a") == ["partial-tau-b", "partial-tau-a"]
    assert partial_statistic("tau-a") == "partial-tau-b"
    assert partial_statistics("spearman") == ["partial-spearman"] == [partial_statistic("spearman")]


def test_self_concordance_is_tau_a_of_a_vector_with_itself() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 4, size=(3, 15)).astype(float)     # many ties
    x[2] = rng.normal(size=15)                            # none
    got = self_concordance(x)
    for row, value in zip(x, got):
        assert value == pytest.approx(_tau_a(row, row), abs=1e-14)
    assert got[2] == 1.0
    counts = rng.integers(0, 3, size=(4, 15))             # bootstrap multiplicities of the entries
    weighted = self_concordance(x, counts)
    for b, w in enumerate(counts):
        for r, row in enumerate(x):
            rep = np.repeat(row, w)
            assert weighted[r, b] == pytest.approx(_tau_a(rep, rep), abs=1e-14)


def test_both_partials_match_independent_formulas(one_instrument) -> None:
    meta, acts = one_instrument
    res = run_rsa(acts, meta, subject=None, test="permutation", n_permutations=1, n_bootstraps=5, bootstrap_over="pitches",
                  regression=False, best_layer=False)
    t = res.table.set_index(["statistic", "model_rdm"])["value"]
    d = np.ravel(compute_rdm(acts["layer"], distance="correlation"))
    h, c = model_vectors(["pitch_height", "chroma"], meta)
    # textbook partial τ_a: τ_a by the pair definition, unit diagonal
    expect_a = _kendall_partial(_tau_a(d, c), _tau_a(d, h), _tau_a(c, h))
    assert t[("partial-tau-a", "chroma")] == pytest.approx(expect_a, abs=1e-10)
    # partial τ_b: scipy's τ_b in the same formula
    tb = {k: stats.kendalltau(a, b, variant="b").statistic for k, (a, b) in
          {"dc": (d, c), "dh": (d, h), "ch": (c, h)}.items()}
    expect_b = _kendall_partial(tb["dc"], tb["dh"], tb["ch"])
    assert t[("partial-tau-b", "chroma")] == pytest.approx(expect_b, abs=1e-10)
    expect_bh = _kendall_partial(tb["dh"], tb["dc"], tb["ch"])
    assert t[("partial-tau-b", "pitch_height")] == pytest.approx(expect_bh, abs=1e-10)
    # the chroma model has two values: many ties, so partial τ_b is the larger one
    assert abs(expect_b) > abs(expect_a)


def test_a_tied_network_rdm_is_normalised_too(note_grid) -> None:
    """A layer with tied dissimilarities (a quantised code): τ_b corrects the data's ties as well."""
    meta = note_grid(["x"], midi=np.arange(60, 84))
    rng = np.random.default_rng(1)
    code = np.round(np.eye(12)[meta["pitch_class"].to_numpy()] + 0.3 * rng.normal(size=(24, 12)))
    res = run_rsa({"q": code}, meta, subject=None, distance="euclidean", test="permutation", n_permutations=1,
                  n_bootstraps=5, bootstrap_over="pitches", regression=False, best_layer=False)
    d = np.ravel(compute_rdm(code, distance="euclidean"))
    assert self_concordance(d[None])[0] < 1                  # the data RDM itself has ties
    h, c = model_vectors(["pitch_height", "chroma"], meta)
    tb = [stats.kendalltau(a, b, variant="b").statistic for a, b in ((d, c), (d, h), (c, h))]
    t = res.table.set_index(["statistic", "model_rdm"])["value"]
    assert t[("partial-tau-b", "chroma")] == pytest.approx(_kendall_partial(*tb), abs=1e-10)


def test_permutation_p_of_each_statistic_from_brute_force_permutations(one_instrument) -> None:
    meta, acts = one_instrument
    n_perm, seed = 60, 11
    res = run_rsa(acts, meta, subject=None, test="permutation", n_permutations=n_perm, n_bootstraps=5, bootstrap_over="pitches",
                  regression=False, best_layer=False, seed=seed)
    t = res.table.set_index(["statistic", "model_rdm"])
    d = np.ravel(compute_rdm(acts["layer"], distance="correlation"))
    h, c = model_vectors(["pitch_height", "chroma"], meta)
    perm_seed = np.random.SeedSequence(seed).spawn(3)[0]
    perms = inference.condition_permutations(len(meta), n_perm, seed=perm_seed)
    iu = np.triu_indices(len(meta), 1)
    from scipy.spatial.distance import squareform

    h_sq, c_sq = squareform(h), squareform(c)
    null_a, null_b = [], []
    for p in perms:                      # the same relabelling of both model RDMs: M[p][:, p]
        hp, cp = h_sq[np.ix_(p, p)][iu], c_sq[np.ix_(p, p)][iu]
        null_a.append(_kendall_partial(_tau_a(d, cp), _tau_a(d, hp), _tau_a(cp, hp)))
        tb = [stats.kendalltau(a, b, variant="b").statistic for a, b in ((d, cp), (d, hp), (cp, hp))]
        null_b.append(_kendall_partial(*tb))
    for stat, null in (("partial-tau-a", null_a), ("partial-tau-b", null_b)):
        obs = t.loc[(stat, "chroma"), "value"]
        expected_p = (1 + np.sum(np.asarray(null) >= obs - inference.P_TOLERANCE)) / (1 + n_perm)
        assert t.loc[(stat, "chroma"), "p"] == pytest.approx(expected_p, abs=1e-12), stat
