"""Study steps beyond stimuli/extract/RSA: corpora, training, probes, attention, SSM, measured-RDM targets.

Each module registers its step(s) in :data:`musiclens.study.STEPS`; :mod:`musiclens.study`
imports this package, so ``steps.run`` in a study file can name them.
"""

from __future__ import annotations

from musiclens.study_steps import analysis as _analysis  # noqa: F401
from musiclens.study_steps import contrasts as _contrasts  # noqa: F401
from musiclens.study_steps import corpora as _corpora  # noqa: F401
from musiclens.study_steps import targets as _targets  # noqa: F401
from musiclens.study_steps import training as _training  # noqa: F401
