"""espeak-ng speech corpus: audio, phoneme labels, determinism, and the missing-program error."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from musiclens.corpora import speech
from musiclens.corpora.dataset import Corpus, CropDataset
from musiclens.corpora.shards import build_corpus
from musiclens.errors import ConfigError, MissingDependencyError

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")


def test_missing_espeak_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setattr(speech.shutil, "which", lambda name: None)
    with pytest.raises(MissingDependencyError, match="apt-get install espeak-ng"):
        speech.synthesize("hello")
    with pytest.raises(MissingDependencyError):
        speech.SpeechSource(n_utterances=2)


@needs_espeak
def test_synthesize_returns_audio_and_phonemes() -> None:
    audio, ph = speech.synthesize("hello world", voice="en-us", sample_rate=16000)
    assert audio.dtype == np.float32 and 0.5 < audio.size / 16000 < 3 and np.abs(audio).max() > 0.05
    assert ph == ["h", "@", "l", "oU", "|", "w", "3:", "l", "d"]
    _, ipa = speech.synthesize("hello world", ipa=True)
    assert "|" in ipa and "oʊ" in ipa
    with pytest.raises(ConfigError):
        speech.synthesize("  ")


@needs_espeak
def test_speech_corpus_is_deterministic_and_varied(tmp_path) -> None:
    src = speech.SpeechSource(n_utterances=6, seed=1)
    a = build_corpus(tmp_path / "a", source=src, pieces_per_shard=4)
    b = build_corpus(tmp_path / "b", source=speech.SpeechSource(n_utterances=6, seed=1), pieces_per_shard=3)
    assert a["n_pieces"] == b["n_pieces"] == 6 and a["kind"] == "speech"
    ca, cb = Corpus(tmp_path / "a"), Corpus(tmp_path / "b")
    for i in range(6):
        np.testing.assert_array_equal(ca.audio(i), cb.audio(i))
        assert ca.labels(i) == cb.labels(i)
    meta = ca.metadata()
    assert meta["voice"].nunique() >= 3 and meta["rate_wpm"].nunique() >= 3
    lab = ca.labels(0)
    assert lab["phonemes"] and lab["text"]
    ex = CropDataset(ca, crop_s=None)[0]
    assert ex["phonemes"] == lab["phonemes"] and ex["audio"].size == ca.record(0)["n_samples"]
    with pytest.raises(ConfigError, match="cannot be cropped"):
        CropDataset(ca, crop_s=0.5)[0]


@needs_espeak
def test_unknown_voices_and_counts_are_refused() -> None:
    """espeak-ng speaks an unknown voice with its default one (exit 0): musiclens refuses it first."""
    from musiclens.corpora.speech import SpeechSource
    from musiclens.errors import ConfigError

    SpeechSource(n_utterances=1, voices=("en-us", "en-gb+f3", "piqd"))      # piqd: espeak-ng's Klingon
    with pytest.raises(ConfigError, match="no voice 'no-such-voice'.*espeak-ng --voices"):
        SpeechSource(n_utterances=1, voices=("en-us", "no-such-voice"))
    with pytest.raises(ConfigError, match="no voice 'en-us\\+nope'"):
        SpeechSource(n_utterances=1, voices=("en-us+nope",))
    for n in (0, -1):
        with pytest.raises(ConfigError, match="n >= 1"):
            SpeechSource(n_utterances=n)
