"""Which stimulus patterns have no distance, decided in one place for the distances and the study step."""

from __future__ import annotations

import numpy as np
import pytest

from musiclens.errors import AnalysisError
from musiclens.rsa.rdm import DISTANCES, undefined_patterns


def test_undefined_patterns_per_distance() -> None:
    x = np.array([[1.0, 2.0, 3.0], [2.0, 2.0, 2.0], [0.0, 0.0, 0.0], [3.0, 1.0, 0.5]])
    assert undefined_patterns(x, distance="correlation").tolist() == [1, 2]  # constant rows
    assert undefined_patterns(x, distance="cosine").tolist() == [2]          # only the zero row
    assert undefined_patterns(x, distance="euclidean").size == 0
    assert undefined_patterns(np.ones((4, 1)), distance="correlation").tolist() == [0, 1, 2, 3]  # 1 unit
    # the distances refuse exactly those rows, and accept the rest
    with pytest.raises(AnalysisError, match=r"rows \[1, 2\]"):
        DISTANCES.get("correlation")(x)
    with pytest.raises(AnalysisError, match=r"rows \[2\]"):
        DISTANCES.get("cosine")(x)
    assert np.isfinite(DISTANCES.get("cosine")(x[[0, 1, 3]])).all()
