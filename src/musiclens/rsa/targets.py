"""Measured RDMs as targets: per-subject dissimilarities from MEG, fMRI or behaviour.

:func:`load_targets` reads one file into a :class:`TargetRDMs` — subject RDM vectors over named
stimuli, with missing pairs as NaN — from any of:

``.hdf5`` / ``.h5``
    An ``rsatoolbox.rdm.RDMs`` saved with ``rdms.save(path, file_type="hdf5")``.  Stimulus ids are
    the pattern descriptor ``stimulus_id`` (``id_descriptor``); subjects the rdm descriptor
    ``subject`` when present, else the RDMs' order.  rsatoolbox's pickle format is refused (a pickle
    can run code): re-save as HDF5.
``.npz``
    ``rdms`` ``[shape=(n_subjects, n, n)]`` (or ``(n, n)`` for one subject, or vectors
    ``(n_subjects, n (n - 1) / 2)`` in rsatoolbox's upper-triangle order), ``stimulus_id``
    ``[shape=(n,)]`` (strings), optional ``subject``.
``.npy``
    A bare stack as above.  It names no stimuli, so it is read only with ``stimulus_ids`` given
    (the command line's ``--assume-order`` passes the stimulus set's order, and that is recorded).
``.csv`` / ``.tsv`` / ``.parquet``
    Long format, one row per measured pair: ``subject, stim_i, stim_j, dissimilarity``.  A pair may
    be given as (i, j) or (j, i) but once per subject; pairs not listed are missing.

Checks (each a :class:`~musiclens.errors.AnalysisError` naming the file and the fix): square
matrices, symmetric (to 1e-8 relative), zero diagonal, no ±inf, unique ids and subjects, at
least 3 stimuli.  NaN marks a missing pair.

Missing pairs follow rsatoolbox's rule for comparisons — a pair that is NaN in any RDM is left
out of every comparison (``rsatoolbox.rdm.compare`` refuses RDM sets whose NaN positions differ):
:meth:`TargetRDMs.complete_pairs` is the mask of pairs measured in every subject, and
:mod:`musiclens.rsa.evaluate` uses only those, reporting how many were dropped.

Stimuli are reconciled by id, never by position: :meth:`TargetRDMs.reorder` puts the rows in any
order of the same ids, and :func:`align_to` checks the ids against a stimulus set.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musiclens.errors import AnalysisError, DatasetError, InsufficientDataError
from musiclens.rsa.rdm import matrix_to_vector, n_conditions, vector_to_matrix

__all__ = ["TargetRDMs", "load_targets", "align_to", "TARGET_SUFFIXES"]

logger = logging.getLogger(__name__)

TARGET_SUFFIXES = (".hdf5", ".h5", ".npz", ".npy", ".csv", ".tsv", ".parquet")
_SYM_TOL = 1e-8


@dataclass
class TargetRDMs:
    """Per-subject measured RDMs over named stimuli.

    Attributes
    ----------
    name
        Label of the target in tables and figures (default: the file's stem).
    stimulus_ids
        The RDMs' row order.
    subjects
        One label per RDM.
    vectors
        ``[shape=(n_subjects, n_pairs)]`` upper triangles (rsatoolbox's order); NaN = missing pair.
    source
        Where the RDMs came from (path), and ``sha256`` its content hash.
    """

    name: str
    stimulus_ids: list[str]
    subjects: list[str]
    vectors: np.ndarray
    source: str = ""
    sha256: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def n_subjects(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def n_stimuli(self) -> int:
        return len(self.stimulus_ids)

    def complete_pairs(self) -> np.ndarray:
        """Boolean mask ``[shape=(n_pairs,)]`` of pairs measured (not NaN) in every subject."""
        return ~np.isnan(self.vectors).any(axis=0)

    def reorder(self, ids: Sequence[str]) -> TargetRDMs:
        """The same RDMs with rows and columns in the order of ``ids`` (a permutation of the ids)."""
        ids = [str(s) for s in ids]
        if sorted(ids) != sorted(self.stimulus_ids):
            raise AnalysisError(f"target {self.name!r}: reorder needs the same stimulus ids")
        pos = {s: i for i, s in enumerate(self.stimulus_ids)}
        perm = np.array([pos[s] for s in ids])
        mats = vector_to_matrix(np.nan_to_num(self.vectors, nan=np.inf))[:, perm][:, :, perm]
        vec = matrix_to_vector(mats)
        vec[np.isinf(vec)] = np.nan
        return TargetRDMs(self.name, ids, list(self.subjects), vec, self.source, self.sha256, list(self.notes))


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _stack_to_vectors(arr: np.ndarray, *, path: Path) -> np.ndarray:
    """``(n_subj, n, n)``, ``(n, n)`` or ``(n_subj, n_pairs)`` → checked vectors."""
    arr = np.asarray(arr)
    if not np.issubdtype(arr.dtype, np.number):
        raise AnalysisError(f"{path}: the RDMs are not numbers (dtype {arr.dtype}); save them as float arrays")
    arr = arr.astype(float)
    if np.isinf(arr).any():
        raise AnalysisError(f"{path}: the RDMs contain ±inf; mark a missing pair with NaN instead")
    if arr.ndim == 2 and arr.shape[0] == arr.shape[1] and arr.shape[0] >= 3:
        arr = arr[None]          # one subject's square matrix
    if arr.ndim == 3:
        if arr.shape[1] != arr.shape[2]:
            raise AnalysisError(f"{path}: RDMs of shape {arr.shape[1:]} are not square; give (subjects, n, n) matrices")
        n = arr.shape[1]
        diag = arr[:, np.arange(n), np.arange(n)]
        if np.any(np.abs(np.nan_to_num(diag)) > 1e-10):
            s, i = np.argwhere(np.abs(np.nan_to_num(diag)) > 1e-10)[0]
            raise AnalysisError(f"{path}: subject {s} has a non-zero diagonal (entry [{i}, {i}] = {diag[s, i]:.4g}); "
                                "an RDM's diagonal (a stimulus against itself) must be 0")
        a, b = arr, np.swapaxes(arr, 1, 2)
        both = ~np.isnan(a) & ~np.isnan(b)
        scale = max(1.0, float(np.nanmax(np.abs(arr))) if np.isfinite(arr).any() else 1.0)
        asym = both & (np.abs(np.where(both, a - b, 0.0)) > _SYM_TOL * scale)
        if asym.any() or np.any(np.isnan(a) != np.isnan(b)):
            s, i, j = np.argwhere(asym | (np.isnan(a) != np.isnan(b)))[0]
            raise AnalysisError(f"{path}: subject {s}'s RDM is not symmetric ([{i}, {j}] = {a[s, i, j]:.6g} but "
                                f"[{j}, {i}] = {a[s, j, i]:.6g}); average it with its transpose if the asymmetry is noise")
        return matrix_to_vector(arr)
    if arr.ndim == 2:
        n_conditions(arr.shape[1])   # raises when not a triangle length
        return arr
    raise AnalysisError(f"{path}: RDMs of shape {arr.shape}; give (subjects, n, n) matrices or (subjects, n_pairs) vectors")


def _from_npz(path: Path) -> tuple[np.ndarray, list[str] | None, list[str] | None]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            files = set(npz.files)
            if "rdms" not in files:
                raise AnalysisError(f"{path} has no 'rdms' array (it has {sorted(files)}); save the stack as "
                                    "np.savez(path, rdms=..., stimulus_id=np.array(ids, dtype=str))")
            rdms = npz["rdms"]
            ids = [str(s) for s in npz["stimulus_id"].tolist()] if "stimulus_id" in files else None
            subj = [str(s) for s in npz["subject"].tolist()] if "subject" in files else None
    except AnalysisError:
        raise
    except Exception as err:   # zipfile / pickle refusals have several types
        raise DatasetError(f"cannot read {path} as an .npz of arrays ({type(err).__name__}: {err}); save numbers and "
                           "string ids only (np.array(ids, dtype=str)), never Python objects") from err
    return rdms, ids, subj


def _from_hdf5(path: Path, id_descriptor: str) -> tuple[np.ndarray, list[str] | None, list[str] | None]:
    try:
        from rsatoolbox.rdm import load_rdm
    except ImportError as err:
        from musiclens.errors import MissingDependencyError

        raise MissingDependencyError("reading rsatoolbox HDF5 files needs rsatoolbox: pip install rsatoolbox") from err
    try:
        rdms = load_rdm(str(path), file_type="hdf5")
    except Exception as err:
        raise DatasetError(f"cannot read {path} as an rsatoolbox RDMs HDF5 file ({type(err).__name__}: {err}); "
                           "write it with rdms.save(path, file_type='hdf5')") from err
    pd_ = rdms.pattern_descriptors
    if id_descriptor not in pd_:
        raise AnalysisError(f"{path}: the RDMs have no pattern descriptor {id_descriptor!r} (they have {sorted(pd_)}); "
                            "add the stimulus ids as a pattern descriptor (RDMs(..., pattern_descriptors="
                            f"{{'{id_descriptor}': ids}})) or name the descriptor with id_descriptor")
    ids = [str(s) for s in pd_[id_descriptor]]
    subj = [str(s) for s in rdms.rdm_descriptors["subject"]] if "subject" in rdms.rdm_descriptors else None
    return rdms.get_vectors(), ids, subj


def _from_long(path: Path) -> tuple[np.ndarray, list[str], list[str]]:
    from musiclens.stimuli.folder import read_table

    table = read_table(path)
    need = ["subject", "stim_i", "stim_j", "dissimilarity"]
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise AnalysisError(f"{path}: long-format RDMs need columns {need}; missing {missing} (columns: {list(table.columns)})")
    t = table[need].copy()
    for c in ("subject", "stim_i", "stim_j"):
        t[c] = t[c].astype(str)
    t["dissimilarity"] = pd.to_numeric(t["dissimilarity"], errors="coerce")
    if t["dissimilarity"].isna().any() and table["dissimilarity"].notna().all():
        bad = int(np.flatnonzero(t["dissimilarity"].isna().to_numpy())[0])
        raise AnalysisError(f"{path}: row {bad + 2}: dissimilarity {table['dissimilarity'].iloc[bad]!r} is not a number")
    if np.isinf(t["dissimilarity"]).any():
        raise AnalysisError(f"{path}: dissimilarities contain ±inf; leave a missing pair out instead")
    ids = sorted(set(t["stim_i"]) | set(t["stim_j"]))
    subjects = list(dict.fromkeys(t["subject"]))
    pos = {s: i for i, s in enumerate(ids)}
    n = len(ids)
    if n < 3:
        raise InsufficientDataError(f"{path}: {n} stimuli; an RDM needs at least 3")
    i = t["stim_i"].map(pos).to_numpy()
    j = t["stim_j"].map(pos).to_numpy()
    self_pairs = i == j
    if self_pairs.any():
        vals = t["dissimilarity"].to_numpy()[self_pairs]
        if np.any(np.abs(np.nan_to_num(vals)) > 1e-10):
            r = int(np.flatnonzero(self_pairs)[np.flatnonzero(np.abs(np.nan_to_num(vals)) > 1e-10)[0]])
            raise AnalysisError(f"{path}: row {r + 2} gives a stimulus a non-zero dissimilarity with itself; "
                                "an RDM's diagonal must be 0 (or leave those rows out)")
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    keep = ~self_pairs
    t = t.assign(lo=lo, hi=hi)[keep]
    dup = t.duplicated(["subject", "lo", "hi"], keep="first")
    if dup.any():
        r = t[dup].iloc[0]
        raise AnalysisError(f"{path}: subject {r['subject']!r} gives the pair ({r['stim_i']}, {r['stim_j']}) more than "
                            "once (as (i, j) and (j, i), or repeated); give each pair once per subject (average repeats first)")
    s_pos = {s: k for k, s in enumerate(subjects)}
    mats = np.full((len(subjects), n, n), np.nan)
    mats[:, np.arange(n), np.arange(n)] = 0.0
    sk = t["subject"].map(s_pos).to_numpy()
    mats[sk, t["lo"].to_numpy(), t["hi"].to_numpy()] = t["dissimilarity"].to_numpy()
    mats[sk, t["hi"].to_numpy(), t["lo"].to_numpy()] = t["dissimilarity"].to_numpy()
    return matrix_to_vector(mats), ids, subjects


def load_targets(
    path: str | Path,
    *,
    name: str | None = None,
    stimulus_ids: Sequence[str] | None = None,
    id_descriptor: str = "stimulus_id",
) -> TargetRDMs:
    """Read measured RDMs from ``path`` (formats in the module docstring).

    Parameters
    ----------
    path
        The file.  ``NAME=PATH`` is accepted too (sets ``name``).
    name
        Label of the target (default: the file's stem).
    stimulus_ids
        Row order for a bare ``.npy`` (required for it; ignored for formats that name their stimuli,
        which must not disagree with it).
    id_descriptor
        The rsatoolbox pattern descriptor holding stimulus ids (HDF5 files).
    """
    text = str(path)
    if name is None and "=" in text and not Path(text).exists():
        name, text = text.split("=", 1)
    path = Path(text)
    if not path.is_file():
        raise DatasetError(f"target RDM file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".pkl", ".pickle"):
        raise AnalysisError(f"{path}: pickle files can run code when read and are refused; re-save the RDMs with "
                            "rdms.save(path, file_type='hdf5') (rsatoolbox) or as .npz")
    if suffix not in TARGET_SUFFIXES:
        raise AnalysisError(f"{path}: unknown target format {suffix!r}; use one of {', '.join(TARGET_SUFFIXES)}")
    subjects: list[str] | None
    if suffix in (".hdf5", ".h5"):
        vectors, ids, subjects = _from_hdf5(path, id_descriptor)
    elif suffix == ".npz":
        raw, ids, subjects = _from_npz(path)
        vectors = _stack_to_vectors(raw, path=path)
    elif suffix == ".npy":
        try:
            raw = np.load(path, allow_pickle=False)
        except Exception as err:
            raise DatasetError(f"cannot read {path} as a numeric .npy ({type(err).__name__}: {err})") from err
        vectors = _stack_to_vectors(raw, path=path)
        if stimulus_ids is None:
            raise AnalysisError(f"{path}: a bare .npy names no stimuli, so rows cannot be matched to stimuli by id; save "
                                "an .npz with a 'stimulus_id' array, or, if its rows are in the stimulus set's order, "
                                "pass assume_order=True (--assume-order on the command line)")
        ids = [str(s) for s in stimulus_ids]
        subjects = None
    else:
        vectors, ids, subjects = _from_long(path)
    vectors = np.atleast_2d(np.asarray(vectors, dtype=float))
    n = n_conditions(vectors.shape[1])
    if ids is None:
        raise AnalysisError(f"{path}: the file has no stimulus ids; add a 'stimulus_id' array (npz) or descriptor (hdf5)")
    if len(ids) != n:
        raise AnalysisError(f"{path}: {len(ids)} stimulus ids for RDMs over {n} stimuli; give one id per row")
    if len(set(ids)) != len(ids):
        dup = sorted({s for s in ids if ids.count(s) > 1})
        raise AnalysisError(f"{path}: stimulus ids repeat ({dup[:5]}); each row must be a different stimulus")
    if n < 3:
        raise InsufficientDataError(f"{path}: RDMs over {n} stimuli; comparisons need at least 3")
    if subjects is None:
        subjects = [f"s{k:02d}" for k in range(vectors.shape[0])]
    if len(subjects) != vectors.shape[0]:
        raise AnalysisError(f"{path}: {len(subjects)} subject labels for {vectors.shape[0]} RDMs")
    if len(set(subjects)) != len(subjects):
        raise AnalysisError(f"{path}: subject labels repeat; give each subject's RDM once (average sessions first)")
    all_nan = np.isnan(vectors).all(axis=1)
    if all_nan.any():
        raise AnalysisError(f"{path}: subject {subjects[int(np.flatnonzero(all_nan)[0])]!r} has no measured pair")
    target = TargetRDMs(name or path.stem, list(ids), list(subjects), vectors, str(path), _hash_file(path))
    if suffix == ".npy":
        target.notes.append("rows assumed to be in the stimulus set's order (assume_order)")
    return target


def align_to(target: TargetRDMs, stimulus_ids: Sequence[str]) -> tuple[TargetRDMs, np.ndarray]:
    """Match a target's stimuli to an ordered id list (a stimulus set or activation rows).

    Every target id must be among ``stimulus_ids``; stimuli the target lacks are left out of its
    analysis (recorded in ``notes``).  Returns the target reordered to follow ``stimulus_ids`` and
    the positions ``[shape=(n_target_stimuli,)]`` of its stimuli in ``stimulus_ids``.
    """
    ids = [str(s) for s in stimulus_ids]
    pos = {s: i for i, s in enumerate(ids)}
    missing = [s for s in target.stimulus_ids if s not in pos]
    if missing:
        raise AnalysisError(f"target {target.name!r} ({target.source}): {len(missing)} stimulus id(s) are not in the "
                            f"stimulus set, e.g. {missing[:5]}; the ids must be the set's stimulus_id values "
                            "(import the stimuli with those ids, or fix the ids in the RDM file)")
    order = sorted(target.stimulus_ids, key=pos.__getitem__)
    out = target.reorder(order)
    extra = len(ids) - len(order)
    if extra:
        out.notes.append(f"{extra} stimuli of the set are not in this target and are left out of its analysis")
        logger.info("target %s covers %d of %d stimuli", target.name, len(order), len(ids))
    return out, np.array([pos[s] for s in order])


def describe(target: TargetRDMs) -> dict[str, Any]:
    """A manifest entry for one target."""
    return {"name": target.name, "source": target.source, "sha256": target.sha256, "n_subjects": target.n_subjects,
            "n_stimuli": target.n_stimuli, "n_pairs_complete": int(target.complete_pairs().sum()),
            "n_pairs": int(target.vectors.shape[1]), "notes": list(target.notes)}
