"""Physics check: CQT activations of harmonic notes on the default grid show partial chroma."""

from __future__ import annotations

import numpy as np
import pytest

from musiclens.rsa import run_rsa

librosa = pytest.importorskip("librosa")

SR = 16000


def harmonic_note(midi: int, amplitudes: np.ndarray, *, duration: float = 0.5) -> np.ndarray:
    """Additive synthesis: harmonics k*f0 (below Nyquist) with the given amplitudes, decaying envelope."""
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    t = np.arange(int(duration * SR)) / SR
    note = sum(a * np.sin(2 * np.pi * (k + 1) * f0 * t) for k, a in enumerate(amplitudes) if (k + 1) * f0 < SR / 2)
    return (note * np.exp(-3 * t)).astype(np.float32)


def test_cqt_of_default_grid_shows_significant_partial_chroma(note_grid) -> None:
    meta = note_grid(["timbre0", "timbre1", "timbre2"])
    rng = np.random.default_rng(0)
    spectra = {inst: rng.uniform(0.1, 1.0, size=10) / np.arange(1, 11) ** rng.uniform(0.5, 1.5)
               for inst in meta["instrument"].unique()}
    audio = np.stack([harmonic_note(int(m), spectra[i]) for m, i in zip(meta["midi"], meta["instrument"])])
    cqt = np.abs(librosa.cqt(audio, sr=SR, hop_length=512, fmin=librosa.midi_to_hz(36), n_bins=72))
    pooled = librosa.amplitude_to_db(cqt.mean(axis=-1), ref=np.max)              # log-CQT [n_stimuli, 72]
    res = run_rsa({"cqt": pooled}, meta, test="permutation", n_permutations=199, n_bootstraps=100,
                  bootstrap_over="pitches", seed=0)
    t = res.table.set_index(["statistic", "model_rdm"])
    partial = t.loc[("partial-tau-b", "chroma")]
    assert partial["value"] > 0.05 and partial["significant"] and partial["ci_low"] > 0
    assert t.loc[("tau-a", "pitch_height"), "significant"]
