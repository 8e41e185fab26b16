"""Training objectives, one per file; each registers itself in :data:`musiclens.train.base.OBJECTIVES`.

==================  ======================================================================
``ntxent``          NT-Xent over the class token of temporally close crops (:mod:`.ntxent`)
``mert``            MERT masked prediction: acoustic-code teacher + CQT reconstruction (:mod:`.mert`)
``wav2vec2``        wav2vec 2.0 contrastive + diversity loss (:mod:`.wav2vec2`)
``data2vec``        data2vec: masked regression onto an EMA teacher's top-K layers (:mod:`.data2vec`)
``transcription``   frame-level 88-key BCE (+ optional onset head), mir_eval F1 (:mod:`.transcription`)
``ctc``             CTC over phonemes of the speech corpus, the control (:mod:`.ctc`)
==================  ======================================================================
"""

from __future__ import annotations

import importlib

__all__ = ["OBJECTIVE_MODULES", "register_all"]

OBJECTIVE_MODULES: dict[str, str] = {
    "ntxent": "musiclens.train.objectives.ntxent",
    "mert": "musiclens.train.objectives.mert",
    "wav2vec2": "musiclens.train.objectives.wav2vec2",
    "data2vec": "musiclens.train.objectives.data2vec",
    "transcription": "musiclens.train.objectives.transcription",
    "ctc": "musiclens.train.objectives.ctc",
}


def register_all() -> None:
    """Import every objective module (each registers itself in ``OBJECTIVES``)."""
    for mod in OBJECTIVE_MODULES.values():
        importlib.import_module(mod)
