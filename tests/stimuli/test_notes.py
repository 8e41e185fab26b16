from __future__ import annotations

import numpy as np
import pretty_midi
import pytest

from musiclens.errors import ConfigError, InstrumentRangeError, RegistryError, SoundFontError, StimulusError
from musiclens.stimuli import GRIDS, PAPER_INSTRUMENTS, StimulusSet, render_notes
from musiclens.stimuli.checks import fundamental_check
from musiclens.stimuli.instruments import _PAPER, resolve_instrument
from musiclens.stimuli.soundfont import available_backends, find_soundfont


def test_paper_grid_design_and_gm_names() -> None:
    assert len(PAPER_INSTRUMENTS) == 30
    fams = [i.family for i in PAPER_INSTRUMENTS]
    assert {f: fams.count(f) for f in set(fams)} == {"keyboard": 10, "guitar": 10, "flute": 10}
    for program, _, label in _PAPER:  # the names written in code are the GM standard's
        assert pretty_midi.program_to_instrument_name(program) == label
    grid = GRIDS.get("paper")()
    assert grid.midi == list(range(60, 96)) and grid.velocities == [100] and len(grid) == 1080


def test_every_note_of_the_default_grid_sounds_at_its_pitch(paper_set: StimulusSet) -> None:
    meta = paper_set.metadata
    assert len(paper_set) == 1080 and paper_set.sample_rate == 16000
    assert (meta["duration_s"] == 4.0).all() and (meta["hold_s"] == 3.0).all()
    failures = []
    for audio, row in zip(paper_set.audio, meta.itertuples()):
        c = fundamental_check(audio, sample_rate=16000, midi=row.midi)
        if not c.ok(tolerance_cents=25.0):
            failures.append((row.instrument, row.midi, round(c.deviation_cents, 1), round(c.subharmonic_db)))
    assert failures == []
    # labels are consistent with MIDI numbers
    assert (meta["pitch_class"] == meta["midi"] % 12).all()
    assert (meta["octave"] == meta["midi"] // 12 - 1).all()
    assert set(meta.loc[meta.midi == 60, "note_name"]) == {"C4"}


def test_notes_are_released_after_the_hold(paper_set: StimulusSet) -> None:
    sr = paper_set.sample_rate
    for audio in paper_set.audio[::97]:
        held = np.sqrt(np.mean(audio[int(2.5 * sr): int(3.0 * sr)] ** 2))
        tail = np.sqrt(np.mean(audio[int(3.9 * sr):] ** 2))
        assert tail < held


def test_rendering_is_deterministic_and_order_independent(small_set: StimulusSet) -> None:
    again = render_notes(instruments=["acoustic_grand_piano", "flute", "acoustic_guitar_nylon"],
                         midi=[60, 67, 72], duration_s=1.0, hold_s=0.7, progress=False)
    assert again.content_hash() == small_set.content_hash()
    reordered = render_notes(instruments=["flute", "acoustic_grand_piano"], midi=[72, 60], duration_s=1.0,
                             hold_s=0.7, progress=False)
    for sid in reordered.ids:
        assert np.array_equal(reordered[sid][0], small_set[sid][0])


@pytest.mark.skipif("fluidsynth" not in available_backends(), reason="libfluidsynth not installed")
def test_fluidsynth_backend_matches_pitch_and_is_deterministic() -> None:
    kw = dict(instruments=[0, 73], midi=[60, 84], duration_s=1.0, hold_s=0.7, backend="fluidsynth", progress=False)
    a, b = render_notes(**kw), render_notes(**kw)
    assert a.content_hash() == b.content_hash()
    assert a.info["synth"]["backend"] == "fluidsynth"
    for audio, row in zip(a.audio, a.metadata.itertuples()):
        assert fundamental_check(audio, sample_rate=16000, midi=row.midi).ok()


def test_additive_pure_and_shepard_grids() -> None:
    s = render_notes(grid="additive", midi=[60, 72], duration_s=1.0, hold_s=0.7, seed=4, progress=False)
    assert set(s.metadata.family) == {"keyboard", "guitar", "flute"}
    assert s.content_hash() == render_notes(grid="additive", midi=[60, 72], duration_s=1.0, hold_s=0.7, seed=4,
                                            progress=False).content_hash()
    p = render_notes(synth="pure", instruments=["sine"], midi=[69], duration_s=0.5, hold_s=0.4, progress=False)
    assert p.metadata.loc[0, "stimulus_id"] == "sine-069-100"
    sh = render_notes(synth="shepard", instruments=["shepard"], midi=[60, 72], duration_s=0.5, hold_s=0.4,
                      progress=False)
    assert len(sh) == 2
    with pytest.raises(ConfigError, match="needs its own instruments"):
        render_notes(synth="pure", midi=[60])


def test_bad_inputs_raise_clear_errors(tmp_path) -> None:
    with pytest.raises(StimulusError, match="unknown instrument 'tuba_of_doom'"):
        render_notes(instruments=["tuba_of_doom"], midi=[60], progress=False)
    with pytest.raises(StimulusError, match="0-127"):
        resolve_instrument(200)
    with pytest.raises(InstrumentRangeError, match="outside the range") as err:
        render_notes(instruments=["acoustic_bass"], midi=[90], duration_s=0.5, hold_s=0.3, progress=False)
    assert "on_out_of_range='skip'" in str(err.value)
    s = render_notes(instruments=["acoustic_bass"], midi=[40, 90], duration_s=0.5, hold_s=0.3,
                     on_out_of_range="skip", progress=False)
    assert s.ids == ["acoustic_bass-040-100"]
    assert s.info["skipped"] == [{"instrument": "acoustic_bass", "midi": 90, "reason": "outside range 23-67"}]
    s.save(tmp_path / "skip")
    import json

    assert json.loads((tmp_path / "skip" / "manifest.json").read_text())["info"]["skipped"][0]["midi"] == 90
    with pytest.raises(SoundFontError, match="not found"):
        render_notes(instruments=[0], midi=[60], soundfont=tmp_path / "missing.sf2", progress=False)
    fake = tmp_path / "fake.sf2"
    fake.write_bytes(b"this is not a soundfont")
    with pytest.raises(SoundFontError, match="not a SoundFont 2 file"):
        find_soundfont(fake)
    with pytest.raises(RegistryError, match="unknown note synthesizer"):
        render_notes(synth="theremin", instruments=["x"], midi=[60])
    with pytest.raises(ConfigError, match="0-127"):
        render_notes(instruments=[0], midi=[130])
