"""Probes: what a layer's activations linearly (or with a small MLP) encode about music.

Global tasks (pitch, pitch class, octave, instrument, family, genre, key...) probe pooled
features (``mean``, ``cls``, ``cls+mean``...); local tasks (chords, onsets, beats, notes) probe
every frame, with splits by piece.  Probes are trained per layer and on a softmax-weighted
layer sum, scored with the metrics of scikit-learn, mir_eval and hear-eval-kit under their
names, with bootstrap intervals and permutation chance, into a tidy table.

Entry points: :func:`run_probes` (-> :class:`ProbeResult`), :func:`probe_to_folder`, the
registries :data:`TASKS` and :data:`METRICS`, readers in :mod:`musiclens.probe.datasets`.
Training (:mod:`musiclens.probe.models`) needs torch and is imported on first use.
"""

from __future__ import annotations

from musiclens.probe.datasets import (corpus_stimulus_set, load_probe_stimuli, read_audio_csv, read_gtzan,
                                      read_nsynth_splits)
from musiclens.probe.features import FeatureSource, as_feature_source
from musiclens.probe.io import probe_to_folder
from musiclens.probe.metrics import METRICS, Predictions, bootstrap_interval, permutation_chance, score
from musiclens.probe.runner import TABLE_COLUMNS, WEIGHTED_SUM, ProbeResult, prepare_task, run_probes
from musiclens.probe.splits import grouped_split, split_from_column
from musiclens.probe.tasks import CHORD_CLASSES, KEY_CLASSES, TASKS, TaskSpec, chord_class, key_class

__all__ = [
    "CHORD_CLASSES", "KEY_CLASSES", "METRICS", "TABLE_COLUMNS", "TASKS", "WEIGHTED_SUM", "FeatureSource",
    "Predictions", "ProbeResult", "TaskSpec", "as_feature_source", "bootstrap_interval", "chord_class",
    "corpus_stimulus_set", "grouped_split", "key_class", "load_probe_stimuli", "permutation_chance",
    "prepare_task", "probe_to_folder", "read_audio_csv", "read_gtzan", "read_nsynth_splits", "run_probes",
    "score", "split_from_column",
]
