"""The two partial Kendall statistics, each against an independent implementation.

``partial-tau-a``: the textbook formula on τ_a coefficients (unit diagonal).
``partial-tau-b``: Kendall's partial τ on τ_b coefficients (scipy's ``kendalltau``, variant b),
as R's ``ppcor::pcor(method = "kendall")`` computes it.  Both come from the same permutations;
each permutation p is checked by recomputing the statistic on brute-force permuted RDMs.  The
two p-values are equal when the network RDM and the partialled-out model RDM are untied (partial
τ_b is then a fixed multiple of partial τ_a) and not in general otherwise (both tested).
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


def test_known_answer_by_hand() -> None:
    """Five values, counted by hand: τ_a(d,h) = 8/10, τ_a(d,c) = 4/10, τ_a(c,h) = 2/10; c has two
    values (4 of 10 pairs tied: self-concordance 0.6), d and h none.  Textbook partial τ_a of c:
    0.24 / sqrt(0.36 · 0.96) = 1/√6; partial τ_b: 0.24 / sqrt(0.36 · 0.56) = √(2/7); of h:
    0.72 / sqrt(0.84 · 0.96) = 3/√14 (τ_a) and (2/3) / sqrt((11/15)(14/15)) = 10/√154 (τ_b)."""
    from musiclens.rsa.compare import compare
    from musiclens.rsa.partial import partial_correlations

    d, c, h = np.array([1.0, 2, 3, 4, 5]), np.array([0.0, 1, 0, 1, 1]), np.array([1.0, 2, 4, 3, 5])
    tau = {k: float(np.ravel(compare(a, b, method="tau-a"))[0]) for k, (a, b) in
           {"dh": (d, h), "dc": (d, c), "ch": (c, h)}.items()}
    assert tau == pytest.approx({"dh": 0.8, "dc": 0.4, "ch": 0.2}, abs=1e-15)
    s_d, s_h, s_c = self_concordance(np.stack([d, h, c]))
    assert (s_d, s_h, s_c) == pytest.approx((1.0, 1.0, 0.6), abs=1e-15)
    obs = np.array([tau["dh"], tau["dc"]])                        # models (h, c)
    unit = np.array([[1.0, tau["ch"]], [tau["ch"], 1.0]])
    selfd = np.array([[s_h, tau["ch"]], [tau["ch"], s_c]])
    np.testing.assert_allclose(partial_correlations(obs, unit), [3 / np.sqrt(14), 1 / np.sqrt(6)], atol=1e-14)
    np.testing.assert_allclose(partial_correlations(obs, selfd, data_var=s_d), [10 / np.sqrt(154), np.sqrt(2 / 7)],
                               atol=1e-14)
    # the two-model τ_b formula in τ_a terms (musiclens.rsa.partial), and the scipy τ_b route
    expect = (tau["dc"] - tau["dh"] * tau["ch"] / s_h) / np.sqrt((s_d - tau["dh"] ** 2 / s_h) * (s_c - tau["ch"] ** 2 / s_h))
    assert expect == pytest.approx(np.sqrt(2 / 7), abs=1e-14)
    tb = [stats.kendalltau(a, b, variant="b").statistic for a, b in ((d, c), (d, h), (c, h))]
    assert _kendall_partial(*tb) == pytest.approx(np.sqrt(2 / 7), abs=1e-14)


def test_partial_tau_a_from_rsatoolbox_tau_a(note_grid, mixed_code) -> None:
    """partial-tau-a from rsatoolbox's τ_a (an independent implementation) in Kendall's formula;
    three instruments, so the subject mean of the per-subject partials."""
    rsatoolbox = pytest.importorskip("rsatoolbox")
    meta = note_grid(["a", "b", "c"], midi=np.arange(60, 84))
    acts = {"layer": mixed_code(meta, chroma=1.0, height=1.0, noise=1.0, dim=12, seed=5)}
    res = run_rsa(acts, meta, n_permutations=0, n_bootstraps=0, regression=False, best_layer=False)
    t = res.table.set_index(["statistic", "model_rdm"])["value"]
    h, c = res.model_rdms["pitch_height"], res.model_rdms["chroma"]
    vecs = res.rdms["layer"].vectors

    def ta(x: np.ndarray, y: np.ndarray) -> float:
        return float(rsatoolbox.rdm.compare(rsatoolbox.rdm.RDMs(x[None]), rsatoolbox.rdm.RDMs(y[None]),
                                            method="tau-a")[0, 0])

    t_ch = ta(c, h)
    want_a = np.mean([_kendall_partial(ta(v, c), ta(v, h), t_ch) for v in vecs])
    want_ah = np.mean([_kendall_partial(ta(v, h), ta(v, c), t_ch) for v in vecs])
    assert t[("partial-tau-a", "chroma")] == pytest.approx(want_a, abs=1e-10)
    assert t[("partial-tau-a", "pitch_height")] == pytest.approx(want_ah, abs=1e-10)
    tb = lambda x, y: stats.kendalltau(x, y, variant="b").statistic  # noqa: E731
    want_b = np.mean([_kendall_partial(tb(v, c), tb(v, h), tb(c, h)) for v in vecs])
    assert t[("partial-tau-b", "chroma")] == pytest.approx(want_b, abs=1e-10)


def _irregular_grid(note_grid, instruments: list[str]):  # noqa: ANN001, ANN202
    """24 notes whose pitches are not equally spaced: no two |Δ pitch| are equal (untied height)."""
    meta = note_grid(instruments, midi=np.arange(60, 84))
    pitches = np.sort(60 + np.random.default_rng(2).uniform(0, 24, size=24))
    meta["midi"] = np.tile(pitches, len(instruments))
    return meta


def test_permutation_p_identical_when_data_and_partialled_model_are_untied(note_grid, mixed_code) -> None:
    """Network RDMs and the partialled-out model (pitch height on an irregular grid) without ties:
    partial chroma τ_b = κ · partial chroma τ_a with κ = sqrt((1 − τ_ch²) / (s_c − τ_ch²)) in every
    layer (the same κ for every permutation and subject), so the permutation p-values are equal."""
    meta = _irregular_grid(note_grid, ["a", "b", "c"])
    acts = {f"l{k}": mixed_code(meta, chroma=ch, height=1.0, noise=nz, dim=10, seed=k)
            for k, (ch, nz) in enumerate([(1.2, 0.8), (0.3, 1.0), (0.1, 1.5), (0.0, 1.0)])}
    res = run_rsa(acts, meta, test="permutation", n_permutations=300, n_bootstraps=0, regression=False,
                  best_layer=False, seed=4)
    h, c = res.model_rdms["pitch_height"], res.model_rdms["chroma"]
    s_h, s_c = self_concordance(np.stack([h, c]))
    assert s_h == 1.0 and s_c < 0.2
    assert all((self_concordance(res.rdms[k].vectors) == 1.0).all() for k in acts)
    t_ch = _tau_a(c, h)
    kappa = np.sqrt((1 - t_ch**2) / (s_c - t_ch**2))
    t = res.table.set_index(["statistic", "model_rdm", "layer"]).sort_index()
    a, b = t.loc[("partial-tau-a", "chroma")], t.loc[("partial-tau-b", "chroma")]
    np.testing.assert_allclose(b["value"], kappa * a["value"], rtol=1e-10)
    np.testing.assert_array_equal(b["p"].to_numpy(), a["p"].to_numpy())
    assert len(set(a["p"])) > 1                                    # not all at the floor
    # partial pitch height partials out the tied chroma RDM: its τ_b/τ_a factor moves with the data
    ratio = t.loc[("partial-tau-b", "pitch_height"), "value"] / t.loc[("partial-tau-a", "pitch_height"), "value"]
    assert np.ptp(ratio.to_numpy()) > 0.01


def test_no_fixed_monotone_map_when_the_partialled_model_is_tied(one_instrument) -> None:
    """Equal-tempered grid: pitch height has tied distances, so the factor between partial τ_b and
    partial τ_a depends on τ_a(d, h_π), which the permutation moves; the two nulls then order the
    permutations differently (no monotone map), and the p-values need not agree."""
    meta, acts = one_instrument
    d = np.ravel(compute_rdm(acts["layer"], distance="correlation"))
    h, c = model_vectors(["pitch_height", "chroma"], meta)
    assert self_concordance(h[None])[0] < 1
    perms = inference.condition_permutations(len(meta), 40, seed=np.random.SeedSequence(7))
    iu = np.triu_indices(len(meta), 1)
    from scipy.spatial.distance import squareform

    h_sq, c_sq = squareform(h), squareform(c)
    null_a, null_b = [], []
    for p in perms:
        hp, cp = h_sq[np.ix_(p, p)][iu], c_sq[np.ix_(p, p)][iu]
        null_a.append(_kendall_partial(_tau_a(d, cp), _tau_a(d, hp), _tau_a(cp, hp)))
        tb = [stats.kendalltau(x, y, variant="b").statistic for x, y in ((d, cp), (d, hp), (cp, hp))]
        null_b.append(_kendall_partial(*tb))
    null_a, null_b = np.asarray(null_a), np.asarray(null_b)
    order_a, order_b = np.argsort(null_a), np.argsort(null_b)
    assert not np.array_equal(order_a, order_b)                   # some pair of permutations swaps rank
    assert np.ptp(null_b / null_a) > 0.01
