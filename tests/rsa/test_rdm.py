"""RDMs: agreement with rsatoolbox's calc_rdm, layout, cross-validated distances, bad inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

rsatoolbox = pytest.importorskip("rsatoolbox")

from musiclens.errors import AnalysisError, InsufficientDataError  # noqa: E402
from musiclens.rsa.rdm import compute_rdm, crossvalidated_rdm, matrix_to_vector, subject_rdms, vector_to_matrix  # noqa: E402



@pytest.mark.parametrize(("ours", "theirs"), [("correlation", "correlation"), ("sqeuclidean", "euclidean")])
def test_distances_match_rsatoolbox(ours: str, theirs: str) -> None:
    x = np.random.default_rng(0).normal(size=(20, 15))
    ref = rsatoolbox.rdm.calc_rdm(rsatoolbox.data.Dataset(x), method=theirs).get_vectors()[0]
    np.testing.assert_allclose(compute_rdm(x, distance=ours), ref, atol=1e-12)


def test_euclidean_and_cosine_known_values() -> None:
    x = np.array([[0.0, 0.0, 0.0], [3.0, 4.0, 0.0], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(compute_rdm(x, distance="euclidean"), [5.0, 1.0, np.sqrt(20.0)])
    cos = compute_rdm(np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]), distance="cosine")
    np.testing.assert_allclose(cos, [1.0, 1 - 1 / np.sqrt(2), 1 - 1 / np.sqrt(2)])


def test_vector_matrix_round_trip_uses_rsatoolbox_layout() -> None:
    v = np.arange(1.0, 11.0)
    m = vector_to_matrix(v)
    assert m.shape == (5, 5) and np.allclose(m, m.T) and np.all(np.diag(m) == 0)
    np.testing.assert_array_equal(rsatoolbox.rdm.RDMs(v[None]).get_matrices()[0], m)
    np.testing.assert_array_equal(matrix_to_vector(m), v)


def test_crossvalidated_rdm_matches_crossnobis_and_is_unbiased() -> None:
    rng = np.random.default_rng(1)
    true = rng.normal(size=(6, 40))
    folds = true[None] + rng.normal(size=(4, 6, 40))
    ours = crossvalidated_rdm(folds)
    ds = rsatoolbox.data.Dataset(folds.reshape(-1, 40), obs_descriptors={
        "cond": np.tile(np.arange(6), 4), "fold": np.repeat(np.arange(4), 6)})
    ref = rsatoolbox.rdm.calc_rdm(ds, method="crossnobis", descriptor="cond", cv_descriptor="fold").get_vectors()[0]
    np.testing.assert_allclose(ours, ref, atol=1e-10)
    # pure noise (identical conditions): mean over many draws ~ 0, where the plain distance is biased up
    same = np.zeros((6, 200))
    noisy = [crossvalidated_rdm(same[None] + rng.normal(size=(3, 6, 200))) for _ in range(30)]
    assert abs(float(np.mean(noisy))) < 0.05


def test_subject_rdms_sort_conditions_and_split_subjects(note_grid) -> None:
    meta = note_grid(["a", "b"], midi=np.arange(60, 66)).sample(frac=1, random_state=0).reset_index(drop=True)
    x = np.random.default_rng(0).normal(size=(len(meta), 8))
    stack = subject_rdms(x, meta)
    assert stack.subjects == ["a", "b"]
    assert stack.conditions["midi"].tolist() == list(range(60, 66))
    rows_b = [meta.index[(meta.instrument == "b") & (meta.midi == m)][0] for m in range(60, 66)]
    np.testing.assert_allclose(stack.vectors[1], compute_rdm(x[rows_b]))


def test_fewer_than_three_stimuli() -> None:
    with pytest.raises(InsufficientDataError, match="at least 3"):
        compute_rdm(np.ones((2, 4)))


def test_nan_activations_are_rejected() -> None:
    x = np.random.default_rng(0).normal(size=(5, 4))
    x[3, 1] = np.nan
    with pytest.raises(AnalysisError, match="NaN"):
        compute_rdm(x)


@pytest.mark.parametrize("distance", ["correlation", "euclidean", "cosine"])
def test_constant_activations_are_rejected(distance: str) -> None:
    with pytest.raises(AnalysisError, match="constant|zero|equal"):
        compute_rdm(np.full((5, 4), 0.0 if distance == "euclidean" else 2.0), distance=distance)
    with pytest.raises(AnalysisError, match="equal|constant"):
        compute_rdm(np.tile([1.0, 2.0, 4.0], (5, 1)), distance=distance)


def test_missing_cells_and_duplicates_are_errors(note_grid) -> None:
    meta = note_grid(["a", "b"], midi=np.arange(60, 66))
    x = np.random.default_rng(0).normal(size=(len(meta), 4))
    with pytest.raises(AnalysisError, match="cover the same"):
        subject_rdms(x[1:], meta.iloc[1:].reset_index(drop=True))
    dup = pd.concat([meta, meta.iloc[[0]]], ignore_index=True)
    with pytest.raises(AnalysisError, match="more than one stimulus"):
        subject_rdms(np.vstack([x, x[:1]]), dup)
