"""Shared builders for the probe tests: note-grid metadata, synthetic music pieces at 10 frames/s."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from musiclens.corpora.labels import MusicLabels, empty_notes
from musiclens.extract.base import Activations

FRAME_RATE = 10.0


def note_grid(n_instruments: int = 8, midi: range = range(48, 72)) -> pd.DataFrame:
    """One row per (instrument, pitch), instrument-major."""
    rows = [dict(stimulus_id=f"inst{k:02d}-{m:03d}", midi=m, pitch_class=m % 12, octave=m // 12 - 1,
                 instrument=f"inst{k:02d}", family=f"fam{k % 3}") for k in range(n_instruments) for m in midi]
    return pd.DataFrame(rows)


def make_piece(seed: int, *, duration_s: float = 6.0) -> MusicLabels:
    """A piece whose chord changes, onsets and notes fall on the 10 Hz frame grid.

    Chords change every 0.5 s (frame boundaries); notes start 10 ms after a frame boundary, so
    the frame labels read at centres are exact and every onset's nearest frame centre is unique.
    """
    rng = np.random.default_rng(seed)
    names = ["C", "D", "E", "F", "G", "A", "B"]
    chords = []
    for k, s in enumerate(np.arange(0, duration_s, 0.5)):
        q = "maj" if rng.random() < 0.5 else "min"
        lab = "N" if k % 5 == 4 else f"{names[rng.integers(0, 7)]}:{q}"
        chords.append((float(s), float(min(s + 0.5, duration_s)), lab))
    onsets = np.sort(rng.choice(np.arange(2, int(duration_s * FRAME_RATE) - 2, 3), size=min(12, len(range(2, int(duration_s * FRAME_RATE) - 2, 3))), replace=False))
    rows = []
    for f in onsets:
        on = f / FRAME_RATE + 0.01  # note active on frames f and f + 1
        rows.append(dict(onset=on, offset=on + 0.2, pitch=int(rng.integers(48, 72)), velocity=90, program=0,
                         is_drum=False, track=0, instrument="piano", chord_tone=False, continued=False))
    notes = pd.DataFrame(rows) if rows else empty_notes()
    beats = (np.arange(0, int(duration_s * 2)) * 0.5 + 0.05)  # frame centres
    return MusicLabels(notes=notes, duration_s=duration_s, beats=beats, chords=chords, key="C major")


def frame_activations(pieces: dict[str, MusicLabels], feature_fn, *, dim: int, n_layers: int = 2,
                      seed: int = 0, n_special: int = 0) -> Activations:
    """Activations at 10 Hz: layer_00 = ``feature_fn(labels, times)``, the others Gaussian noise."""
    rng = np.random.default_rng(seed)
    ids = list(pieces)
    n_frames = max(int(round(p.duration_s * FRAME_RATE)) for p in pieces.values())
    times = (np.arange(n_frames) + 0.5) / FRAME_RATE
    layers = {}
    first = np.zeros((len(ids), n_frames + n_special, dim), dtype=np.float32)
    for i, sid in enumerate(ids):
        f = feature_fn(pieces[sid], times)
        first[i, n_special:n_special + f.shape[0]] = f
    layers["layer_00"] = first + 0.01 * rng.normal(size=first.shape).astype(np.float32)
    for k in range(1, n_layers):
        layers[f"layer_{k:02d}"] = rng.normal(size=first.shape).astype(np.float32)
    ft = np.concatenate([np.full(n_special, np.nan), times])
    valid = np.array([int(round(pieces[s].duration_s * FRAME_RATE)) for s in ids])
    return Activations(layers, ft, valid, ids, n_special)


@pytest.fixture(scope="session")
def pieces() -> dict[str, MusicLabels]:
    return {f"piece{i:02d}": make_piece(i) for i in range(10)}
