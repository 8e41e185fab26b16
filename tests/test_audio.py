from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from musiclens.audio import load_audio, prepare, resample, to_mono, validate
from musiclens.errors import AudioError


def test_validate_rejects_nan_inf_empty_short() -> None:
    with pytest.raises(AudioError, match="NaN or inf"):
        validate(np.array([0.0, np.nan, 0.1]), name="clip-1")
    with pytest.raises(AudioError, match="NaN or inf"):
        validate(np.array([0.0, np.inf]))
    with pytest.raises(AudioError, match="empty"):
        validate(np.zeros(0))
    with pytest.raises(AudioError, match="shorter than the required 400"):
        validate(np.zeros(100), min_samples=400)
    with pytest.raises(AudioError, match="shape"):
        validate(np.zeros((2, 2, 2)))


def test_downmix_and_resample_are_recorded() -> None:
    conv: list[str] = []
    stereo = np.stack([np.ones(100), -np.ones(100) * 0.5]).astype(np.float32)
    mono = to_mono(stereo, conversions=conv)
    np.testing.assert_allclose(mono, 0.25)
    assert conv == ["downmixed 2 channels to mono by averaging"]
    sr = 22050
    t = np.arange(sr) / sr
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    out = resample(tone, orig_sr=sr, target_sr=16000, conversions=conv)
    assert out.shape == (16000,) and "22050 Hz -> 16000 Hz" in conv[-1]
    spec = np.abs(np.fft.rfft(out[2000:14000] * np.hanning(12000)))
    peak_hz = np.argmax(spec) * 16000 / 12000
    assert abs(peak_hz - 440) < 2


def test_prepare_and_load(tmp_path) -> None:
    sr = 8000
    data = np.stack([np.linspace(-0.5, 0.5, sr), np.zeros(sr)], axis=1)
    sf.write(tmp_path / "a.wav", data, sr, subtype="FLOAT")
    a = load_audio(tmp_path / "a.wav", sample_rate=16000)
    assert a.sample_rate == 16000 and a.samples.ndim == 1 and len(a.conversions) == 2
    conv: list[str] = []
    out = prepare(data.T, sample_rate=sr, target_sr=sr, conversions=conv)
    assert out.shape == (sr,) and conv == ["downmixed 2 channels to mono by averaging"]
    (tmp_path / "bad.wav").write_bytes(b"RIFF0000WAVEjunk")
    with pytest.raises(AudioError, match="cannot read"):
        load_audio(tmp_path / "bad.wav")
    with pytest.raises(AudioError, match="does not exist"):
        load_audio(tmp_path / "missing.wav")
