"""Import and export of rsatoolbox ``RDMs`` (rsatoolbox is an optional dependency).

musiclens RDM vectors use rsatoolbox's vector layout (upper triangle, row-major), so conversion
copies the numbers unchanged; subjects go to the ``rdm_descriptors`` and conditions to the
``pattern_descriptors``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from musiclens.errors import AnalysisError, MissingDependencyError
from musiclens.rsa.rdm import RDMStack, n_conditions

__all__ = ["to_rsatoolbox", "from_rsatoolbox"]


def _rsatoolbox() -> Any:
    try:
        import rsatoolbox
    except ImportError as err:
        raise MissingDependencyError(
            "rsatoolbox is not installed; install it with `pip install musiclens[analysis]` "
            "(or `pip install rsatoolbox`)"
        ) from err
    return rsatoolbox


def to_rsatoolbox(stack: RDMStack, *, subject_descriptor: str = "subject") -> Any:
    """An ``rsatoolbox.rdm.RDMs`` holding the stack's subject RDMs.

    Parameters
    ----------
    stack
        Subject RDMs ``vectors [shape=(n_subjects, n_pairs)]``.
    subject_descriptor
        Name of the rdm descriptor that receives the subject labels.

    Returns
    -------
    rsatoolbox.rdm.RDMs
        ``dissimilarity_measure`` is the stack's distance; every condition column becomes a
        pattern descriptor (plus ``index``).
    """
    rsa = _rsatoolbox()
    pattern = {c: stack.conditions[c].tolist() for c in stack.conditions.columns}
    pattern["index"] = list(range(stack.n_conditions))
    return rsa.rdm.RDMs(
        np.array(stack.vectors, dtype=float),
        dissimilarity_measure=stack.distance,
        rdm_descriptors={subject_descriptor: list(stack.subjects), "index": list(range(stack.n_subjects))},
        pattern_descriptors=pattern,
    )


def from_rsatoolbox(rdms: Any, *, subject_descriptor: str = "subject") -> RDMStack:
    """An :class:`RDMStack` from an ``rsatoolbox.rdm.RDMs``.

    Subjects come from ``rdm_descriptors[subject_descriptor]`` when present, else
    ``"rdm_<i>"``; conditions from the pattern descriptors (``index`` when there are none).
    """
    if not hasattr(rdms, "get_vectors"):
        raise AnalysisError(f"expected an rsatoolbox RDMs object, got {type(rdms).__name__}")
    vectors = np.asarray(rdms.get_vectors(), dtype=float)
    if np.isnan(vectors).any():
        raise AnalysisError(
            "the rsatoolbox RDMs contain NaN dissimilarities (e.g. from subsample_pattern); "
            "musiclens needs complete RDMs"
        )
    n = n_conditions(vectors.shape[1])
    desc = dict(rdms.rdm_descriptors)
    subjects = desc.get(subject_descriptor)
    subjects = [str(s) for s in subjects] if subjects is not None else [f"rdm_{i}" for i in range(vectors.shape[0])]
    pattern = {k: list(v) for k, v in dict(rdms.pattern_descriptors).items() if len(v) == n}
    conditions = pd.DataFrame(pattern) if pattern else pd.DataFrame({"index": np.arange(n)})
    return RDMStack(vectors=vectors, subjects=subjects, conditions=conditions,
                    distance=str(rdms.dissimilarity_measure or "unknown"))
