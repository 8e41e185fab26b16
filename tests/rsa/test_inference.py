"""Noise ceiling, permutation and bootstrap kernels, tests and corrections against references."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

rsatoolbox = pytest.importorskip("rsatoolbox")

from musiclens.rsa import inference  # noqa: E402
from musiclens.rsa.batched import (  # noqa: E402
    condition_weights, get_backend, pair_permutations, permuted_scores, prepare, weighted_scores,
)
from musiclens.rsa.compare import compare  # noqa: E402
from musiclens.rsa.models import model_vectors  # noqa: E402
from musiclens.rsa.rdm import compute_rdm  # noqa: E402

METHODS = ["tau-a", "spearman", "rho-a", "corr", "cosine"]


def _subject_rdms(note_grid, mixed_code, n_subj: int = 5, midi=None) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    meta = note_grid(["x"]) if midi is None else note_grid(["x"], midi=midi)
    data = np.stack([compute_rdm(mixed_code(meta, chroma=1.0, height=1.0, noise=1.0, dim=20, seed=s))
                     for s in range(n_subj)])
    return data, model_vectors(["pitch_height", "chroma"], meta)


@pytest.mark.parametrize("method", METHODS)
def test_noise_ceiling_matches_boot_noise_ceiling(method: str, note_grid, mixed_code) -> None:
    from rsatoolbox.inference import boot_noise_ceiling

    data, _ = _subject_rdms(note_grid, mixed_code, midi=np.arange(60, 76))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = boot_noise_ceiling(rsatoolbox.rdm.RDMs(data), method=method)
    ours = inference.noise_ceiling(data, method=method)
    np.testing.assert_allclose(ours, ref, atol=1e-12, rtol=0)
    assert ours[0] <= ours[1]


@pytest.mark.parametrize("method", METHODS)
def test_permuted_and_bootstrap_scores_match_rsatoolbox(method: str, note_grid, mixed_code) -> None:
    from rsatoolbox.rdm import RDMs, compare as rs_compare

    data, models = _subject_rdms(note_grid, mixed_code, n_subj=3, midi=np.arange(60, 74))
    n = 14
    rng = np.random.default_rng(0)
    perms = inference.condition_permutations(n, 6, seed=1)
    counts = inference.bootstrap_indices(n, 4, seed=2)
    prep = prepare(data, method=method)
    for model in models:
        mat = RDMs(model[None]).get_matrices()[0]
        ours = permuted_scores(prep, model, pair_permutations(perms), chunk=4)
        ref = np.stack([rs_compare(RDMs(data), RDMs(mat[np.ix_(p, p)][None]), method=method)[:, 0] for p in perms], 1)
        np.testing.assert_allclose(ours, ref, atol=1e-12, rtol=0)
        ours_b = weighted_scores(prep, model, condition_weights(counts), chunk=3)
        ref_b = []
        for c in counts:
            idx = np.repeat(np.arange(n), c)
            ref_b.append(rs_compare(RDMs(data).subsample_pattern("index", idx),
                                    RDMs(model[None]).subsample_pattern("index", idx), method=method)[:, 0])
        np.testing.assert_allclose(ours_b, np.stack(ref_b, 1), atol=1e-12, rtol=0)
    del rng


def test_torch_backend_gives_identical_scores(note_grid, mixed_code) -> None:
    pytest.importorskip("torch")
    data, models = _subject_rdms(note_grid, mixed_code, n_subj=2)
    sig = pair_permutations(inference.condition_permutations(36, 8, seed=0))
    prep = prepare(data, method="tau-a")
    for model in models:
        np.testing.assert_array_equal(permuted_scores(prep, model, sig, backend=get_backend("torch")),
                                      permuted_scores(prep, model, sig))


def test_permutation_null_is_centred_with_the_right_spread(note_grid) -> None:
    """Under H0 the permutation null matches the spread of fresh independent data."""
    meta = note_grid(["x"], midi=np.arange(60, 84))
    height = model_vectors(["pitch_height"], meta)[0]
    rng = np.random.default_rng(0)
    data = compute_rdm(rng.normal(size=(24, 10)))
    null = permuted_scores(prepare(data[None], method="tau-a"), height,
                           pair_permutations(inference.condition_permutations(24, 2000, seed=1)))[0]
    fresh = compare(np.stack([compute_rdm(rng.normal(size=(24, 10))) for _ in range(400)]), height)[:, 0]
    assert abs(null.mean()) < 4 * null.std() / np.sqrt(null.size)
    assert 0.8 < null.std() / fresh.std() < 1.25
    p = inference.permutation_p(np.array(compare(data, height)[0, 0]), null)
    assert 1 / 2001 <= p <= 1.0


def test_permutation_p_counts_ties_and_observed() -> None:
    null = np.array([0.1, 0.2, 0.3, 0.3 + 1e-15])
    assert inference.permutation_p(np.array(0.3), null) == pytest.approx(3 / 5)
    assert inference.permutation_p(np.array(9.0), null) == pytest.approx(1 / 5)


def test_t_test_matches_scipy() -> None:
    v = np.random.default_rng(0).normal(0.2, 1, size=(3, 12))
    ref = stats.ttest_1samp(v, 0, axis=1, alternative="greater").pvalue
    np.testing.assert_allclose(inference.t_test_greater(v, axis=1), ref, rtol=1e-12)


def test_corrections_match_references() -> None:
    p = np.random.default_rng(0).random(40) ** 3
    np.testing.assert_allclose(inference.benjamini_hochberg(p), stats.false_discovery_control(p), rtol=1e-12)
    np.testing.assert_allclose(inference.bonferroni(p), np.minimum(1, p * 40))
    # hand-computed: sorted p * 4 / rank = 0.04, 0.06, 0.0533, 0.2, then step-up minima
    assert inference.benjamini_hochberg(np.array([0.01, 0.04, 0.03, 0.2])).tolist() == pytest.approx(
        [0.04, 0.16 / 3, 0.16 / 3, 0.2])


def test_bootstrap_counts_and_permutations_are_seeded() -> None:
    a = inference.bootstrap_indices(10, 5, seed=3)
    assert a.shape == (5, 10) and np.all(a.sum(axis=1) == 10)
    np.testing.assert_array_equal(a, inference.bootstrap_indices(10, 5, seed=3))
    perms = inference.condition_permutations(10, 5, seed=3)
    assert np.all(np.sort(perms, axis=1) == np.arange(10))
    np.testing.assert_array_equal(perms, inference.condition_permutations(10, 5, seed=3))


def test_best_layer_is_chosen_on_held_out_subjects() -> None:
    rng = np.random.default_rng(0)
    v = rng.normal(0, 0.05, size=(5, 8))
    v[3] += 0.5
    res = inference.best_layer_cv(v)
    assert res.mode == 3 and np.all(res.chosen == 3)
    np.testing.assert_allclose(res.held_out, v[3])
    # pure noise: the held-out mean is not inflated like the in-sample maximum
    held, in_sample = [], []
    for _ in range(100):
        noise = rng.normal(size=(13, 30))
        held.append(inference.best_layer_cv(noise).held_out.mean())
        in_sample.append(noise.mean(axis=1).max())
    assert abs(np.mean(held)) < 0.06 < 0.25 < np.mean(in_sample)
