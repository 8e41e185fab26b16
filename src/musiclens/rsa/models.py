"""Model RDMs: named hypotheses about how stimuli should be dissimilar.

A model RDM is a function ``f(conditions: DataFrame) -> np.ndarray [shape=(n, n)]`` registered
in :data:`MODEL_RDMS`; ``conditions`` has one row per RDM condition (see
:class:`~musiclens.rsa.rdm.RDMStack`).  Users add their own::

    from musiclens.rsa import MODEL_RDMS

    @MODEL_RDMS.register("fifths")
    def fifths(conditions):
        '''Distance on the circle of fifths.'''
        pc = (conditions["pitch_class"].to_numpy() * 7) % 12
        d = np.abs(pc[:, None] - pc[None, :])
        return np.minimum(d, 12 - d).astype(float)

Built-in models (MIDI numbers ``m``, pitch classes ``pc = m mod 12``):

``pitch_height``     ``|m_i - m_j|`` semitones (equivalently |Δ log2 F0| x 12).
``log_frequency``    ``|log2 f_i - log2 f_j|`` octaves, ``f = 440 * 2**((m - 69) / 12)`` Hz.
``chroma``           binary: 0 if ``(m_i - m_j) mod 12 == 0`` else 1 (same pitch class).
``chroma_circular``  ``min(d, 12 - d)`` with ``d = |pc_i - pc_j|``.
``octave``           ``|octave_i - octave_j|`` with ``octave = m // 12 - 1`` (C4 = 60).
``instrument``       binary: 0 if same instrument else 1.
``family``           binary: 0 if same instrument family else 1.

Within-instrument RDMs make ``instrument`` and ``family`` constant; those two are meant for
RDMs over several instruments (``subject=None``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from musiclens.errors import AnalysisError, ConfigError
from musiclens.registry import Registry
from musiclens.rsa.rdm import matrix_to_vector

__all__ = ["MODEL_RDMS", "model_rdm", "model_vectors"]

ModelRDMFunction = Callable[[pd.DataFrame], np.ndarray]

#: Registry of model RDMs, ``f(conditions) -> [n, n]`` matrices.
MODEL_RDMS: Registry[ModelRDMFunction] = Registry("model RDM")


def _column(conditions: pd.DataFrame, name: str, *, model: str) -> np.ndarray:
    if name in conditions.columns and not conditions[name].isna().any():
        return conditions[name].to_numpy()
    if name in ("pitch_class", "octave") and "midi" in conditions.columns and not conditions["midi"].isna().any():
        midi = conditions["midi"].to_numpy(dtype=float).round().astype(int)
        return midi % 12 if name == "pitch_class" else midi // 12 - 1
    raise AnalysisError(
        f"model RDM {model!r} needs a complete {name!r} column in the stimulus metadata "
        f"(available: {list(conditions.columns)})"
    )


def _midi(conditions: pd.DataFrame, model: str) -> np.ndarray:
    return _column(conditions, "midi", model=model).astype(float)


@MODEL_RDMS.register("pitch_height")
def pitch_height(conditions: pd.DataFrame) -> np.ndarray:
    """Pitch height: |Δ MIDI| in semitones."""
    m = _midi(conditions, "pitch_height")
    return np.abs(m[:, None] - m[None, :])


@MODEL_RDMS.register("log_frequency")
def log_frequency(conditions: pd.DataFrame) -> np.ndarray:
    """Pitch height as |Δ log2 F0| in octaves (F0 from MIDI, A4 = 440 Hz)."""
    f = 440.0 * 2.0 ** ((_midi(conditions, "log_frequency") - 69.0) / 12.0)
    lf = np.log2(f)
    return np.abs(lf[:, None] - lf[None, :])


@MODEL_RDMS.register("chroma")
def chroma(conditions: pd.DataFrame) -> np.ndarray:
    """Chroma equivalence, binary: 0 for the same pitch class, else 1."""
    pc = _column(conditions, "pitch_class", model="chroma").astype(int)
    return (pc[:, None] != pc[None, :]).astype(float)


@MODEL_RDMS.register("chroma_circular")
def chroma_circular(conditions: pd.DataFrame) -> np.ndarray:
    """Circular pitch-class distance min(d, 12 - d), d = |Δ pitch class|."""
    pc = _column(conditions, "pitch_class", model="chroma_circular").astype(int)
    d = np.abs(pc[:, None] - pc[None, :])
    return np.minimum(d, 12 - d).astype(float)


@MODEL_RDMS.register("octave")
def octave(conditions: pd.DataFrame) -> np.ndarray:
    """Octave distance |Δ octave| (C4 = MIDI 60 starts octave 4)."""
    o = _column(conditions, "octave", model="octave").astype(float)
    return np.abs(o[:, None] - o[None, :])


@MODEL_RDMS.register("instrument")
def instrument(conditions: pd.DataFrame) -> np.ndarray:
    """Instrument identity, binary: 0 for the same instrument, else 1."""
    v = _column(conditions, "instrument", model="instrument").astype(str)
    return (v[:, None] != v[None, :]).astype(float)


@MODEL_RDMS.register("family")
def family(conditions: pd.DataFrame) -> np.ndarray:
    """Instrument family, binary: 0 for the same family, else 1."""
    v = _column(conditions, "family", model="family").astype(str)
    return (v[:, None] != v[None, :]).astype(float)


def model_rdm(name: str, conditions: pd.DataFrame) -> np.ndarray:
    """The model RDM ``name`` as an upper-triangle vector ``[shape=(n_pairs,)]``, validated.

    Raises
    ------
    AnalysisError
        The function returned a non-square, non-symmetric or non-finite matrix, or one whose
        dissimilarities are all equal (e.g. ``instrument`` within one instrument).
    """
    mat = np.asarray(MODEL_RDMS.get(name)(conditions), dtype=float)
    n = len(conditions)
    if mat.shape != (n, n):
        raise AnalysisError(f"model RDM {name!r} returned shape {mat.shape}; expected ({n}, {n})")
    if not np.all(np.isfinite(mat)):
        raise AnalysisError(f"model RDM {name!r} contains NaN/inf values; fix the function or the metadata")
    if not np.allclose(mat, mat.T):
        raise AnalysisError(f"model RDM {name!r} is not symmetric; a dissimilarity must not depend on order")
    vec = matrix_to_vector(mat)
    if np.ptp(vec) == 0:
        raise AnalysisError(
            f"model RDM {name!r} is constant over these {n} conditions (all dissimilarities "
            f"{vec[0]:g}), so it predicts nothing; e.g. 'instrument' within one instrument. "
            "Choose another model or analyse RDMs across instruments (subject=None)"
        )
    return vec


def model_vectors(names: Sequence[str], conditions: pd.DataFrame) -> np.ndarray:
    """Stack of model RDM vectors ``[shape=(n_models, n_pairs)]`` in the order of ``names``."""
    names = list(names)
    if not names:
        raise ConfigError("give at least one model RDM name, e.g. models=['pitch_height', 'chroma']")
    if len(set(names)) != len(names):
        raise ConfigError(f"model RDM names repeat: {names}")
    return np.stack([model_rdm(n, conditions) for n in names])
