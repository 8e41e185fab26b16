"""Model RDMs: values, the height-chroma confound, user registration, degenerate models."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from musiclens.errors import AnalysisError, RegistryError
from musiclens.rsa.models import MODEL_RDMS, model_rdm, model_vectors
from musiclens.rsa.rdm import vector_to_matrix


def test_height_and_chroma_values(note_grid) -> None:
    cond = note_grid(["x"])
    h = vector_to_matrix(model_rdm("pitch_height", cond))
    c = vector_to_matrix(model_rdm("chroma", cond))
    assert h[0, 35] == 35 and h[3, 5] == 2
    assert c[0, 12] == 0 and c[0, 24] == 0 and c[0, 13] == 1
    assert int((model_rdm("chroma", cond) == 0).sum()) == 36      # 3 same-chroma pairs x 12 classes
    circ = vector_to_matrix(model_rdm("chroma_circular", cond))
    assert circ[0, 11] == 1 and circ[0, 6] == 6 and circ[0, 18] == 6
    np.testing.assert_allclose(model_rdm("log_frequency", cond), model_rdm("pitch_height", cond) / 12, atol=1e-12)
    assert vector_to_matrix(model_rdm("octave", cond))[0, 35] == 2


def test_height_chroma_confound_matches_papers(note_grid) -> None:
    h, c = model_vectors(["pitch_height", "chroma"], note_grid(["x"]))
    assert stats.pearsonr(h, c)[0] == pytest.approx(-0.108, abs=5e-4)
    assert stats.spearmanr(h, c)[0] == pytest.approx(-0.134, abs=5e-4)


def test_users_register_their_own_model(note_grid) -> None:
    def fifths(conditions):  # noqa: ANN001, ANN202
        pc = (conditions["pitch_class"].to_numpy() * 7) % 12
        d = np.abs(pc[:, None] - pc[None, :])
        return np.minimum(d, 12 - d).astype(float)

    MODEL_RDMS.register("test_fifths", fifths)
    try:
        v = model_rdm("test_fifths", note_grid(["x"]))
        assert vector_to_matrix(v)[0, 7] == 1        # C-G: neighbours on the circle of fifths
    finally:
        MODEL_RDMS.unregister("test_fifths")


def test_constant_or_unknown_models_are_errors(note_grid) -> None:
    cond = note_grid(["x"])
    with pytest.raises(AnalysisError, match="constant"):
        model_rdm("instrument", cond)
    with pytest.raises(RegistryError, match="Did you mean"):
        model_rdm("pitch_heigth", cond)
    with pytest.raises(AnalysisError, match="'midi'"):
        model_rdm("pitch_height", cond.drop(columns=["midi"]))
