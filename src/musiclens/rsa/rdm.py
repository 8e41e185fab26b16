"""Representational dissimilarity matrices (RDMs) from pooled activations.

An RDM over ``n`` conditions is stored as its upper triangle without the diagonal, a vector of
``n_pairs = n (n - 1) / 2`` dissimilarities in row-major order (``np.triu_indices(n, 1)``), the
same order as :func:`scipy.spatial.distance.squareform` and rsatoolbox's ``RDMs.get_vectors()``.

Distances (``distance=``), for pattern vectors ``x_i`` ``[shape=(dim,)]``:

``correlation`` (default)
    ``1 - pearson(x_i, x_j)``; each pattern is centred over its ``dim`` units and scaled to unit
    norm (rsatoolbox ``calc_rdm(method='correlation')``).
``cosine``
    ``1 - x_i . x_j / (|x_i| |x_j|)``.
``euclidean``
    ``|x_i - x_j|``.
``sqeuclidean``
    ``|x_i - x_j|^2 / dim`` (rsatoolbox ``calc_rdm(method='euclidean')``).

Cross-validated distances (:func:`crossvalidated_rdm`) need repeated measurements of every
condition (several velocities, takes or time windows):
``d_ij = mean over folds a != b of (x_i^a - x_j^a) . (x_i^b - x_j^b) / dim``, an unbiased
estimate of the squared Euclidean distance per unit (rsatoolbox ``crossnobis`` with an identity
noise precision).  It can be negative when two conditions do not differ.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from musiclens.errors import AnalysisError, ConfigError, InsufficientDataError
from musiclens.registry import Registry

__all__ = [
    "DISTANCES",
    "RDMStack",
    "n_pairs",
    "n_conditions",
    "vector_to_matrix",
    "matrix_to_vector",
    "compute_rdm",
    "undefined_patterns",
    "crossvalidated_rdm",
    "subject_rdms",
]

logger = logging.getLogger(__name__)

#: Registry of distance functions ``f(patterns [n, dim]) -> rdm vector [n_pairs]``.
DISTANCES: Registry[Callable[[np.ndarray], np.ndarray]] = Registry("RDM distance")


def n_pairs(n: int) -> int:
    """Number of distinct pairs among ``n`` conditions, ``n (n - 1) / 2``."""
    return n * (n - 1) // 2


def n_conditions(n_pair: int) -> int:
    """Inverse of :func:`n_pairs`; raises when ``n_pair`` is not a triangular number."""
    n = int(round((1 + np.sqrt(1 + 8 * n_pair)) / 2))
    if n_pairs(n) != n_pair:
        raise AnalysisError(
            f"an RDM vector of length {n_pair} is not the upper triangle of any square matrix; "
            "pass vectors of length n (n - 1) / 2"
        )
    return n


def vector_to_matrix(vector: np.ndarray) -> np.ndarray:
    """Square symmetric RDM(s) with a zero diagonal from upper-triangle vector(s).

    Parameters
    ----------
    vector
        ``[shape=(..., n_pairs)]``.

    Returns
    -------
    np.ndarray
        ``[shape=(..., n, n)]``.
    """
    vector = np.asarray(vector, dtype=float)
    n = n_conditions(vector.shape[-1])
    out = np.zeros(vector.shape[:-1] + (n, n))
    iu, ju = np.triu_indices(n, 1)
    out[..., iu, ju] = vector
    out[..., ju, iu] = vector
    return out


def matrix_to_vector(matrix: np.ndarray) -> np.ndarray:
    """Upper triangle (without diagonal) of square RDM(s) ``[shape=(..., n, n)]`` as vectors."""
    matrix = np.asarray(matrix, dtype=float)
    if matrix.ndim < 2 or matrix.shape[-1] != matrix.shape[-2]:
        raise AnalysisError(f"an RDM matrix must be square, got shape {matrix.shape}")
    iu, ju = np.triu_indices(matrix.shape[-1], 1)
    return matrix[..., iu, ju]


def _check_patterns(x: np.ndarray, *, what: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise AnalysisError(f"{what}: activations must be 2-D [n_stimuli, dim], got shape {x.shape}")
    if x.shape[0] < 3:
        raise InsufficientDataError(
            f"{what}: {x.shape[0]} stimuli; an RDM comparison needs at least 3 conditions "
            "(at least 3 pairs); add stimuli"
        )
    if x.shape[1] < 1:
        raise AnalysisError(f"{what}: activations have no units (dim = 0)")
    if not np.issubdtype(x.dtype, np.number):
        raise AnalysisError(f"{what}: activations must be numeric, got dtype {x.dtype}")
    x = x.astype(np.float64, copy=False)
    bad = ~np.isfinite(x)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise AnalysisError(
            f"{what}: {int(bad.sum())} NaN/inf value(s) in {rows.size} stimulus row(s) "
            f"(first rows {rows[:5].tolist()}); fix or drop those stimuli before RSA"
        )
    return x


def undefined_patterns(x: np.ndarray, *, distance: str) -> np.ndarray:
    """Rows of ``x`` ``[shape=(n, dim)]`` whose ``distance`` to other patterns is undefined.

    ``correlation``: patterns constant across units (zero variance, up to 1e-12 of the largest
    value); ``cosine``: all-zero patterns; other distances: none.  Returns row indices.
    """
    x = np.asarray(x, dtype=np.float64)
    if distance == "correlation":
        centred = x - x.mean(axis=1, keepdims=True)
        norm = np.sqrt(np.einsum("ij,ij->i", centred, centred))
        return np.flatnonzero(norm <= 1e-12 * max(1.0, float(np.abs(x).max()) if x.size else 1.0))
    if distance == "cosine":
        return np.flatnonzero(np.einsum("ij,ij->i", x, x) == 0)
    return np.zeros(0, dtype=np.int64)


@DISTANCES.register("correlation")
def correlation_distance(x: np.ndarray) -> np.ndarray:
    """1 - Pearson correlation between stimulus patterns ``[shape=(n, dim)]`` -> ``[n_pairs]``."""
    centred = x - x.mean(axis=1, keepdims=True)
    norm = np.sqrt(np.einsum("ij,ij->i", centred, centred))
    flat = undefined_patterns(x, distance="correlation")
    if flat.size:
        raise AnalysisError(
            f"{flat.size} stimulus pattern(s) (rows {flat[:5].tolist()}) are constant across units, "
            "so their correlation distance is undefined; use distance='euclidean' or drop them"
        )
    unit = centred / norm[:, None]
    return matrix_to_vector(1.0 - unit @ unit.T)


@DISTANCES.register("cosine")
def cosine_distance(x: np.ndarray) -> np.ndarray:
    """1 - cosine similarity between stimulus patterns ``[shape=(n, dim)]`` -> ``[n_pairs]``."""
    norm = np.sqrt(np.einsum("ij,ij->i", x, x))
    zero = undefined_patterns(x, distance="cosine")
    if zero.size:
        raise AnalysisError(
            f"{zero.size} stimulus pattern(s) (rows {zero[:5].tolist()}) are all zero, so their "
            "cosine distance is undefined; use distance='euclidean' or drop them"
        )
    unit = x / norm[:, None]
    return matrix_to_vector(1.0 - unit @ unit.T)


@DISTANCES.register("sqeuclidean")
def sqeuclidean_distance(x: np.ndarray) -> np.ndarray:
    """Squared Euclidean distance per unit, ``|x_i - x_j|^2 / dim`` (rsatoolbox 'euclidean')."""
    sq = np.einsum("ij,ij->i", x, x)
    d = sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)
    return matrix_to_vector(d) / x.shape[1]


@DISTANCES.register("euclidean")
def euclidean_distance(x: np.ndarray) -> np.ndarray:
    """Euclidean distance ``|x_i - x_j|`` between stimulus patterns ``[shape=(n, dim)]``."""
    iu, ju = np.triu_indices(x.shape[0], 1)
    # exact differences (no |a|^2 + |b|^2 - 2ab cancellation)
    return np.sqrt(np.einsum("ij,ij->i", x[iu] - x[ju], x[iu] - x[ju]))


def compute_rdm(x: np.ndarray, *, distance: str = "correlation", what: str = "activations") -> np.ndarray:
    """RDM vector of one set of stimulus patterns.

    Parameters
    ----------
    x
        Pooled activations ``[shape=(n_stimuli, dim)]``, finite, ``n_stimuli >= 3``.
    distance
        A name in :data:`DISTANCES` (see the module docstring).
    what
        Label used in error messages (e.g. ``"layer_03 / piano"``).

    Returns
    -------
    np.ndarray
        ``[shape=(n_pairs,)]`` float64.

    Raises
    ------
    InsufficientDataError
        Fewer than 3 stimuli.
    AnalysisError
        NaN/inf values, undefined distances, or an RDM whose dissimilarities are all equal
        (constant activations), which no comparison can use.
    """
    x = _check_patterns(x, what=what)
    rdm = DISTANCES.get(distance)(x)
    _check_rdm_vector(rdm, what=what)
    return rdm


def _check_rdm_vector(rdm: np.ndarray, *, what: str) -> None:
    if not np.all(np.isfinite(rdm)):
        raise AnalysisError(f"{what}: the RDM contains NaN/inf dissimilarities; check the activations")
    spread = float(np.ptp(rdm))
    if spread <= 1e-12 * max(1.0, float(np.abs(rdm).max())):
        raise AnalysisError(
            f"{what}: every dissimilarity is equal ({float(rdm[0]):.3g}); the activations are constant "
            "across stimuli (a dead layer or a broken extraction), so no RDM comparison is defined; "
            "drop this layer or check the extraction"
        )


def crossvalidated_rdm(x: np.ndarray, *, what: str = "activations") -> np.ndarray:
    """Cross-validated squared Euclidean RDM from repeated measurements.

    ``d_ij = 1 / (F (F - 1)) sum_{a != b} (x_i^a - x_j^a) . (x_i^b - x_j^b) / dim``.

    Parameters
    ----------
    x
        ``[shape=(n_folds, n_stimuli, dim)]``: ``n_folds >= 2`` independent measurements of every
        stimulus (e.g. velocities or takes), in the same stimulus order.

    Returns
    -------
    np.ndarray
        ``[shape=(n_pairs,)]``, unbiased (may be negative).
    """
    x = np.asarray(x)
    if x.ndim != 3:
        raise AnalysisError(
            f"{what}: cross-validated distances need [n_folds, n_stimuli, dim] activations, got shape {x.shape}"
        )
    if x.shape[0] < 2:
        raise InsufficientDataError(
            f"{what}: {x.shape[0]} measurement(s) per stimulus; cross-validated distances need at least 2"
        )
    for f in range(x.shape[0]):
        _check_patterns(x[f], what=f"{what} (fold {f})")
    x = x.astype(np.float64, copy=False)
    n_fold, n, dim = x.shape
    iu, ju = np.triu_indices(n, 1)
    diffs = x[:, iu, :] - x[:, ju, :]                      # [F, n_pairs, dim]
    total = diffs.sum(axis=0)                              # [n_pairs, dim]
    # sum_{a != b} <d_a, d_b> = |sum_a d_a|^2 - sum_a |d_a|^2
    cross = np.einsum("pd,pd->p", total, total) - np.einsum("fpd,fpd->p", diffs, diffs)
    rdm = cross / (n_fold * (n_fold - 1) * dim)
    _check_rdm_vector(rdm, what=what)
    return rdm


@dataclass(frozen=True)
class RDMStack:
    """Per-subject RDMs of one (network, layer): the subjects are instruments by default.

    Attributes
    ----------
    vectors
        ``[shape=(n_subjects, n_pairs)]``; all subjects share one condition order.
    subjects
        Subject labels (instrument names), length ``n_subjects``.
    conditions
        One row per condition (e.g. per MIDI pitch), in RDM order, with the metadata columns that
        are constant within a condition across subjects (``midi``, ``pitch_class``, ``octave``...).
    distance
        Distance used.
    """

    vectors: np.ndarray
    subjects: list[str]
    conditions: pd.DataFrame
    distance: str = "correlation"
    info: dict[str, object] = field(default_factory=dict)

    @property
    def n_subjects(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def n_conditions(self) -> int:
        return len(self.conditions)

    def matrices(self) -> np.ndarray:
        """Square RDMs ``[shape=(n_subjects, n, n)]``."""
        return vector_to_matrix(self.vectors)

    def mean_matrix(self) -> np.ndarray:
        """Subject-average RDM ``[shape=(n, n)]``."""
        return vector_to_matrix(self.vectors.mean(axis=0))


def _subject_layout(
    metadata: pd.DataFrame, *, subject: str | None, condition: str
) -> tuple[list[str], np.ndarray, pd.DataFrame]:
    """Row indices ``[n_subjects, n_conditions]`` of each (subject, condition) cell.

    Conditions are sorted ascending (pitch order); every subject must cover every condition once.
    """
    if condition not in metadata.columns:
        raise ConfigError(
            f"condition column {condition!r} is not in the metadata (columns: {list(metadata.columns)})"
        )
    cond = metadata[condition]
    if cond.isna().any():
        raise AnalysisError(
            f"{int(cond.isna().sum())} stimuli have no {condition!r} value; RSA needs a condition for "
            "every stimulus; drop them from both the metadata and the activations"
        )
    if subject is None:
        subj = pd.Series(["all"] * len(metadata), index=metadata.index)
    else:
        if subject not in metadata.columns:
            raise ConfigError(
                f"subject column {subject!r} is not in the metadata (columns: {list(metadata.columns)}); "
                "pass subject=None to treat all stimuli as one subject"
            )
        subj = metadata[subject]
        if subj.isna().any():
            raise AnalysisError(f"{int(subj.isna().sum())} stimuli have no {subject!r} value; fill or drop them")
        subj = subj.astype(str)
    conditions = np.array(sorted(pd.unique(cond)))
    subjects = sorted(pd.unique(subj))
    index = np.full((len(subjects), conditions.size), -1, dtype=np.int64)
    pos_c = {c: k for k, c in enumerate(conditions)}
    pos_s = {s: k for k, s in enumerate(subjects)}
    for row, (s, c) in enumerate(zip(subj.to_numpy(), cond.to_numpy())):
        si, ci = pos_s[s], pos_c[c]
        if index[si, ci] >= 0:
            raise AnalysisError(
                f"subject {s!r} has more than one stimulus with {condition}={c!r}; pool or select one "
                "stimulus per (subject, condition) (e.g. a single velocity) before RSA"
            )
        index[si, ci] = row
    missing = [(subjects[si], conditions[ci]) for si, ci in zip(*np.nonzero(index < 0))]
    if missing:
        raise AnalysisError(
            f"{len(missing)} (subject, {condition}) cell(s) have no stimulus, e.g. {missing[:3]}; every "
            f"subject must cover the same {condition} values; subset the stimuli to the common ones"
        )
    if conditions.size < 3:
        raise InsufficientDataError(
            f"only {conditions.size} distinct {condition!r} value(s); RSA needs at least 3 conditions"
        )
    first = metadata.iloc[index[0]].reset_index(drop=True)
    keep = [condition] + [
        c for c in ("midi", "pitch_class", "octave", "note_name", "frequency_hz")
        if c in metadata.columns and c != condition
    ]
    cond_table = first[keep].copy()
    if subject is not None:
        for col in ("instrument", "family"):
            if col in metadata.columns and col not in cond_table.columns:
                cond_table[col] = first[col].to_numpy()
    return subjects, index, cond_table


def subject_rdms(
    activations: np.ndarray,
    metadata: pd.DataFrame,
    *,
    subject: str | None = "instrument",
    condition: str = "midi",
    distance: str = "correlation",
    what: str = "layer",
) -> RDMStack:
    """One RDM per subject (instrument) over the conditions (pitches) of one layer.

    Parameters
    ----------
    activations
        Pooled activations ``[shape=(n_stimuli, dim)]`` in metadata row order.
    metadata
        One row per stimulus with the ``subject`` and ``condition`` columns.
    subject
        Column whose values act as subjects (``None``: one subject holding every stimulus).
    condition
        Column defining the RDM's rows/columns; conditions are sorted ascending.
    distance
        A name in :data:`DISTANCES`.
    what
        Label for error messages.

    Returns
    -------
    RDMStack
        ``vectors [shape=(n_subjects, n_pairs)]``.
    """
    x = _check_patterns(activations, what=what)
    if x.shape[0] != len(metadata):
        raise AnalysisError(
            f"{what}: {x.shape[0]} activation rows but {len(metadata)} metadata rows; they must match "
            "one to one, in the same order"
        )
    subjects, index, cond_table = _subject_layout(metadata, subject=subject, condition=condition)
    vectors = np.stack(
        [compute_rdm(x[index[k]], distance=distance, what=f"{what} / {s}") for k, s in enumerate(subjects)]
    )
    return RDMStack(vectors=vectors, subjects=list(subjects), conditions=cond_table, distance=distance)


def stack_layers(stacks: Sequence[RDMStack]) -> np.ndarray:
    """Stack per-layer subject RDMs into ``[shape=(n_layers, n_subjects, n_pairs)]``."""
    return np.stack([s.vectors for s in stacks])
