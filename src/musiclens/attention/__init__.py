"""Attention maps of audio transformers and the onset evidence in them (PAPERS §2.9).

- :mod:`.maps`: ``[layers, heads, T, T]`` maps of a clip from a Hugging Face extractor, a
  musiclens :class:`~musiclens.train.base.Backbone` or checkpoint (:func:`attention_maps`);
- :mod:`.onset`: onset-evidence curves (attention received, class-token row, row change),
  peak picking, mir_eval scores, a spectral-flux baseline, and :func:`attention_onset_analysis`;
- :mod:`.clips`: clips with labels from a built corpus;
- :mod:`.plots`: figures.

Importing this package does not import torch (maps are computed lazily).
"""

from musiclens.attention.clips import Clip, corpus_clips
from musiclens.attention.maps import ATTENTION_SOURCES, AttentionMaps, attention_maps, attention_source
from musiclens.attention.onset import (ONSET_RECIPES, AttentionOnsetResult, attention_onset_analysis,
                                       attention_to_folder, onset_curve, score_onsets, spectral_flux)

__all__ = ["Clip", "corpus_clips", "ATTENTION_SOURCES", "AttentionMaps", "attention_maps", "attention_source",
           "ONSET_RECIPES", "AttentionOnsetResult", "attention_onset_analysis", "attention_to_folder", "onset_curve",
           "score_onsets", "spectral_flux"]
