"""Comparison methods agree with rsatoolbox on random, tied and structured RDMs."""

from __future__ import annotations

import numpy as np
import pytest

rsatoolbox = pytest.importorskip("rsatoolbox")

from musiclens.errors import AnalysisError  # noqa: E402
from musiclens.rsa.compare import COMPARISONS, compare, sign_vectors, tau_a_counts  # noqa: E402
from musiclens.rsa.models import model_vectors  # noqa: E402


METHODS = ["tau-a", "spearman", "rho-a", "corr", "cosine"]


def _rsatoolbox(a: np.ndarray, b: np.ndarray, method: str) -> np.ndarray:
    from rsatoolbox.rdm import RDMs, compare as rs_compare

    return rs_compare(RDMs(np.atleast_2d(a)), RDMs(np.atleast_2d(b)), method=method)


@pytest.mark.parametrize("method", METHODS)
def test_random_and_tied_vectors_match_rsatoolbox(method: str) -> None:
    rng = np.random.default_rng(3)
    a = rng.random((6, 45))
    a[1] = np.round(a[1] * 4)            # heavy ties in the data
    b = np.vstack([rng.random(45), np.round(rng.random(45) * 3), (rng.random(45) > 0.7).astype(float)])
    np.testing.assert_allclose(compare(a, b, method=method), _rsatoolbox(a, b, method), atol=1e-12, rtol=0)


@pytest.mark.parametrize("method", METHODS)
def test_structured_note_grid_matches_rsatoolbox(method: str, note_grid, mixed_code) -> None:
    meta = note_grid(["x"])
    models = model_vectors(["pitch_height", "chroma", "chroma_circular", "octave"], meta)
    from musiclens.rsa.rdm import compute_rdm

    data = np.stack([compute_rdm(mixed_code(meta, chroma=c, height=1.0, noise=0.5, dim=24, seed=s))
                     for s, c in enumerate([0.0, 0.5, 2.0])])
    np.testing.assert_allclose(compare(data, models, method=method), _rsatoolbox(data, models, method),
                               atol=1e-12, rtol=0)


@pytest.mark.parametrize("method", METHODS)
def test_rdm_against_itself_gives_one(method: str) -> None:
    v = np.random.default_rng(0).random(55)
    assert compare(v, v, method=method)[0, 0] == pytest.approx(1.0, abs=1e-12)


def test_tau_a_binary_shortcut_equals_sign_products() -> None:
    rng = np.random.default_rng(5)
    data = np.round(rng.random((4, 66)) * 6)
    model = (rng.random(66) > 0.8).astype(float)
    fast = tau_a_counts(data, model[None])[:, 0]
    slow = sign_vectors(data).astype(float) @ sign_vectors(model)[0].astype(float)
    np.testing.assert_array_equal(fast, slow)


def test_tau_a_of_tied_model_with_itself_is_below_one(note_grid) -> None:
    # tau-a does not reward ties: the binary chroma RDM against itself
    meta = note_grid(["x"])
    chroma = model_vectors(["chroma"], meta)[0]
    n, n1 = chroma.size, int(chroma.sum())
    expected = 2 * n1 * (n - n1) / (n * (n - 1))
    assert compare(chroma, chroma, method="tau-a")[0, 0] == pytest.approx(expected, abs=1e-15)


def test_registry_names_are_rsatoolbox_names() -> None:
    assert set(COMPARISONS.names()) == set(METHODS)


def test_bad_comparison_inputs() -> None:
    with pytest.raises(AnalysisError, match="different lengths"):
        compare(np.ones(6), np.ones(10))
    with pytest.raises(AnalysisError, match="NaN"):
        compare(np.array([1.0, np.nan, 2.0]), np.array([1.0, 2.0, 3.0]))
    with pytest.raises(AnalysisError, match="zero norm"):
        compare(np.ones(6), np.arange(6.0), method="corr")
