"""Shared fixtures for the RSA tests: the default note grid (MIDI 60-95) and synthetic codes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

MIDI = np.arange(60, 96)


def note_grid(instruments: list[str], *, midi: np.ndarray = MIDI) -> pd.DataFrame:
    """Metadata of a note grid: one row per (instrument, pitch), instrument-major."""
    rows = [
        dict(stimulus_id=f"{inst}_{m}", midi=int(m), pitch_class=int(m) % 12, octave=int(m) // 12 - 1,
             note_name=f"n{m}", instrument=inst, family="fam" + str(k % 2), velocity=100)
        for k, inst in enumerate(instruments) for m in midi
    ]
    return pd.DataFrame(rows)


def mixed_code(meta: pd.DataFrame, *, chroma: float, height: float, noise: float, dim: int, seed: int) -> np.ndarray:
    """Activations mixing a pitch-class code, a height ramp and Gaussian noise ``[n, dim]``."""
    rng = np.random.default_rng(seed)
    pc_basis = rng.normal(size=(12, dim))
    h_basis = rng.normal(size=(1, dim))
    z_h = (meta["midi"].to_numpy(float)[:, None] - 77.5) / 10.0
    return (chroma * pc_basis[meta["pitch_class"].to_numpy()] + height * z_h * h_basis
            + noise * rng.normal(size=(len(meta), dim)))


@pytest.fixture
def grid6() -> pd.DataFrame:
    return note_grid([f"inst{k}" for k in range(6)])


@pytest.fixture(name="note_grid")
def note_grid_fixture():  # noqa: ANN201 - returns the helper
    """The :func:`note_grid` helper."""
    return note_grid


@pytest.fixture(name="mixed_code")
def mixed_code_fixture():  # noqa: ANN201
    """The :func:`mixed_code` helper."""
    return mixed_code
