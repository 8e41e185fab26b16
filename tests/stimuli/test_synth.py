from __future__ import annotations

import numpy as np
import pytest

from musiclens.errors import ConfigError
from musiclens.stimuli.checks import fundamental_check
from musiclens.stimuli.synth import TIMBRES, additive_note, pure_tone, random_timbres, shepard_tone

SR = 16000


@pytest.mark.parametrize("midi", [60, 69, 81, 95])
def test_pure_tone_at_pitch(midi: int) -> None:
    a = pure_tone(midi=midi, duration_s=1.0, hold_s=0.8, sample_rate=SR)
    assert a.shape == (SR,) and a.dtype == np.float32
    c = fundamental_check(a, sample_rate=SR, midi=midi, stop_s=0.8)
    assert abs(c.deviation_cents) < 1.0 and c.fundamental_db == pytest.approx(0.0, abs=0.01)


@pytest.mark.parametrize("name", TIMBRES.names())
def test_every_additive_timbre_has_its_fundamental_at_pitch(name: str) -> None:
    for midi in (60, 66, 73, 80, 87, 95):
        a = additive_note(TIMBRES.get(name), midi=midi, duration_s=1.5, hold_s=1.0, sample_rate=SR)
        c = fundamental_check(a, sample_rate=SR, midi=midi)
        assert c.ok(), (name, midi, c)


def test_inharmonic_partials_are_stretched() -> None:
    from musiclens.stimuli.synth import AdditiveTimbre

    t = AdditiveTimbre(n_partials=10, inharmonicity=1e-3, slope_db_per_octave=0.0)
    a = additive_note(t, midi=48, duration_s=1.0, hold_s=1.0, sample_rate=SR)
    f0 = 440 * 2 ** ((48 - 69) / 12)
    c = fundamental_check(a, sample_rate=SR, midi=48 + 12 * np.log2(10 * np.sqrt(1 + 1e-3 * 100)), stop_s=0.9)
    assert abs(c.deviation_cents) < 3  # the 10th partial sits at 10 f0 sqrt(1 + 100 B)
    assert f0 > 0


def test_shepard_tones_an_octave_apart_are_nearly_identical() -> None:
    def spec(m: int) -> np.ndarray:
        a = shepard_tone(midi=m, duration_s=1.0, hold_s=0.9, sample_rate=SR)[1600:12800]
        return np.abs(np.fft.rfft(a * np.hanning(a.size)))

    octave = np.corrcoef(spec(60), spec(72))[0, 1]
    tritone = np.corrcoef(spec(60), spec(66))[0, 1]
    assert octave > 0.99 and tritone < 0.2


def test_additive_is_deterministic_per_seed_and_validates() -> None:
    t = TIMBRES.get("additive_guitar")
    a = additive_note(t, midi=64, seed=1, duration_s=0.5, hold_s=0.3)
    assert np.array_equal(a, additive_note(t, midi=64, seed=1, duration_s=0.5, hold_s=0.3))
    assert not np.array_equal(a, additive_note(t, midi=64, seed=2, duration_s=0.5, hold_s=0.3))
    with pytest.raises(ConfigError, match="velocity"):
        additive_note(t, midi=64, velocity=0)
    with pytest.raises(ConfigError, match="hold_s"):
        pure_tone(midi=60, duration_s=1.0, hold_s=2.0)
    assert len(random_timbres(4, seed=0)) == 4
    assert random_timbres(3, seed=5) == random_timbres(3, seed=5)
