"""Representational similarity analysis (RSA) of network layers against model RDMs.

Imports without torch; the optional torch backend (``backend="torch"``) is loaded on demand.

Main entry point: :func:`run_rsa` (pooled activations + stimulus metadata -> :class:`RSAResult`
with a tidy table).  Building blocks: :func:`subject_rdms` / :func:`compute_rdm` (RDMs),
:data:`MODEL_RDMS` (model RDM registry), :func:`compare` (rsatoolbox-identical comparisons),
:func:`partial_correlations`, :func:`noise_ceiling` and the tests in :mod:`musiclens.rsa.inference`,
figures in :mod:`musiclens.rsa.plots`, rsatoolbox conversion in :mod:`musiclens.rsa.interop`.
"""

from __future__ import annotations

from musiclens.rsa.compare import COMPARISONS, compare
from musiclens.rsa.inference import noise_ceiling
from musiclens.rsa.models import MODEL_RDMS, model_rdm, model_vectors
from musiclens.rsa.partial import partial_correlations
from musiclens.rsa.pipeline import TABLE_COLUMNS, RSAResult, run_rsa
from musiclens.rsa.rdm import DISTANCES, RDMStack, compute_rdm, crossvalidated_rdm, subject_rdms

__all__ = [
    "COMPARISONS",
    "DISTANCES",
    "MODEL_RDMS",
    "RDMStack",
    "RSAResult",
    "TABLE_COLUMNS",
    "compare",
    "compute_rdm",
    "crossvalidated_rdm",
    "model_rdm",
    "model_vectors",
    "noise_ceiling",
    "partial_correlations",
    "run_rsa",
    "subject_rdms",
]
