"""silero-vad, resemblyzer and musicnn (MTT / MSD) extractors: layers, frames, batching, random
controls, agreement with the original implementations, and known answers."""

from __future__ import annotations

import importlib.util
import shutil
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from musiclens.errors import AudioError, ConfigError, ExtractionError, MissingDependencyError  # noqa: E402
from musiclens.extract import EXTRACTORS  # noqa: E402

SR = 16000
FIXTURE = Path(__file__).parent / "fixtures" / "musicnn_reference.npz"
needs_silero = pytest.mark.skipif(importlib.util.find_spec("silero_vad") is None, reason="silero-vad not installed")
needs_resemblyzer = pytest.mark.skipif(importlib.util.find_spec("resemblyzer") is None,
                                       reason="resemblyzer not installed")
needs_musicnn = pytest.mark.skipif(importlib.util.find_spec("musicnn") is None, reason="musicnn not installed")
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")


def tone(f0: float, seconds: float, *, amp: float = 0.3, harmonics: int = 1) -> np.ndarray:
    t = np.arange(int(round(seconds * SR))) / SR
    x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, harmonics + 1))
    return (amp * x / np.abs(x).max()).astype(np.float32)


def noise(seconds: float, *, seed: int = 0, amp: float = 0.1) -> np.ndarray:
    return (amp * np.random.default_rng(seed).standard_normal(int(round(seconds * SR)))).astype(np.float32)


def assert_batched_equals_alone(ex, clips, layers, *, rtol=1e-4, atol=1e-5) -> None:
    together = ex.extract(clips, layers=layers)
    for i, clip in enumerate(clips):
        alone = ex.extract([clip], layers=layers)
        n = int(alone.valid_frames[0])
        assert together.valid_frames[i] == n
        for name in layers:
            np.testing.assert_allclose(together.layers[name][i, :n], alone.layers[name][0], rtol=rtol, atol=atol,
                                       err_msg=name)


@pytest.fixture(scope="module")
def speech():
    """Two ~6 s utterances (different sentences) for each of three espeak-ng voices."""
    from musiclens.corpora.speech import SENTENCES, synthesize

    texts = (" ".join(SENTENCES[0:2]), " ".join(SENTENCES[2:4]))
    voices = ("en-us+m3", "en-gb+f3", "en-gb-scotland+m7")
    return {(v, j): synthesize(t, voice=v, sample_rate=SR)[0] for v in voices for j, t in enumerate(texts)}


# -- silero-vad ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def silero():
    return EXTRACTORS.get("silero-vad")()


@needs_silero
def test_silero_layers_frames_and_batching(silero) -> None:
    clips = [tone(300.0, 1.0), noise(7000 / SR), tone(500.0, 3 * 512 / SR) + noise(3 * 512 / SR, seed=1)]
    acts = silero.extract(clips)
    dims = {"stft": 129 * 4, "conv1": 128 * 4, "conv2": 64 * 2, "conv3": 64, "conv4": 128, "lstm_h": 128,
            "lstm_c": 128, "logit": 1, "speech_prob": 1}
    assert acts.layer_names == list(dims) and len(acts.layer_names) == 9
    n = [32, 14, 3]                                   # ceil(n_samples / 512)
    assert [silero.n_frames(c.shape[0]) for c in clips] == n and acts.valid_frames.tolist() == n
    for name, arr in acts.layers.items():
        assert arr.shape == (3, 32, dims[name]), name
    assert silero.frame_rate_hz == 31.25
    np.testing.assert_allclose(acts.frame_times, (512 * np.arange(32) + 256) / SR)
    info = acts.extractor
    assert info["task"].startswith("speech activity") and "silero_vad_16k_op15.onnx" in info["weights_source"]
    assert info["weights_hash"] and info["training_data"]
    assert_batched_equals_alone(silero, clips, ["conv2", "lstm_c", "speech_prob"])


@needs_silero
def test_silero_matches_its_torchscript_forward(silero) -> None:
    import torch

    from musiclens.extract.pretrained._imports import package_data_path

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)       # torch.jit.load is deprecated in torch 2.13
        jit = torch.jit.load(str(package_data_path("silero_vad", "data", "silero_vad.jit")), map_location="cpu")
    clip = np.concatenate([tone(220.0, 0.5, harmonics=8), noise(0.4, seed=3, amp=0.3), tone(180.0, 0.3)])
    ref = jit.audio_forward(torch.from_numpy(clip)[None], SR).numpy()[0]
    mine = silero.extract([clip], layers=["speech_prob"]).layers["speech_prob"][0, :, 0]
    np.testing.assert_allclose(mine, ref, atol=1e-4)


@needs_silero
def test_silero_random_control_and_weight_files(silero) -> None:
    clip = [tone(220.0, 0.5, harmonics=5)]
    r1 = EXTRACTORS.get("silero-vad")(randomize=True, seed=1)
    r2 = EXTRACTORS.get("silero-vad")(randomize=True, seed=1)
    assert r1.weights_hash == r2.weights_hash != silero.weights_hash and r1.info()["randomized"]
    a = r1.extract(clip, layers=["stft", "lstm_h"])
    p = silero.extract(clip, layers=["stft", "lstm_h"])
    np.testing.assert_array_equal(a.layers["stft"], p.layers["stft"])      # the STFT basis is fixed
    assert not np.allclose(a.layers["lstm_h"], p.layers["lstm_h"])
    np.testing.assert_array_equal(a.layers["lstm_h"], r2.extract(clip, layers=["lstm_h"]).layers["lstm_h"])
    older = EXTRACTORS.get("silero-vad")(weights="safetensors")
    assert older.weights_hash != silero.weights_hash
    with pytest.raises(ConfigError, match="onnx"):
        EXTRACTORS.get("silero-vad")(weights="v9")


@needs_silero
@needs_espeak
def test_silero_known_answer_speech_high_silence_and_tone_low(silero, speech) -> None:
    clips = [speech[("en-us+m3", 0)], speech[("en-gb+f3", 1)], np.zeros(SR, np.float32), tone(440.0, 2.0)]
    acts = silero.extract(clips, layers=["speech_prob"])
    p = [acts.layers["speech_prob"][i, : acts.valid_frames[i], 0] for i in range(4)]
    assert np.median(p[0]) > 0.9 and np.median(p[1]) > 0.9        # measured 0.998 / 0.999
    assert p[2].max() < 0.1 and p[3].max() < 0.1                   # measured 0.009 / 0.003


# -- resemblyzer -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def resemblyzer():
    return EXTRACTORS.get("resemblyzer")()


@needs_resemblyzer
def test_resemblyzer_layers_frames_and_batching(resemblyzer) -> None:
    from musiclens.extract.pretrained.resemblyzer import partial_windows

    clips = [tone(150.0, 1.0, harmonics=6), noise(2.5, seed=2), tone(220.0, 4.0, harmonics=3) + noise(4.0, seed=4)]
    acts = resemblyzer.extract(clips)
    assert acts.layer_names == ["mel", "lstm1", "lstm2", "lstm3", "projection", "embedding"]
    n = [len(partial_windows(c.shape[0])) for c in clips]
    assert n == [1, 2, 4] and acts.valid_frames.tolist() == n
    dims = {"mel": 40}
    for name, arr in acts.layers.items():
        assert arr.shape == (3, 4, dims.get(name, 256)), name
    assert resemblyzer.step == 77 and resemblyzer.frame_rate_hz == pytest.approx(100 / 77)
    np.testing.assert_allclose(acts.frame_times, (77 * np.arange(4) + 79.5) * 0.01)
    emb = acts.layers["embedding"][2]
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    assert acts.extractor["task"].startswith("speaker identity")
    assert_batched_equals_alone(resemblyzer, clips, ["lstm1", "embedding"])


@needs_resemblyzer
def test_resemblyzer_matches_voice_encoder(resemblyzer, monkeypatch) -> None:
    """resemblyzer's own VoiceEncoder.embed_utterance (its import needs webrtcvad only for the
    silence trimming musiclens leaves out, so a stub module stands in)."""
    monkeypatch.setitem(sys.modules, "webrtcvad", sys.modules.get("webrtcvad", types.ModuleType("webrtcvad")))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)       # its scipy.ndimage.morphology import
        from resemblyzer import VoiceEncoder, normalize_volume

    clip = tone(140.0, 3.3, harmonics=10, amp=0.05) + noise(3.3, seed=5, amp=0.01)
    ref = VoiceEncoder(device="cpu", verbose=False).embed_utterance(normalize_volume(clip, -30, increase_only=True))
    acts = resemblyzer.extract([clip], layers=["embedding"])
    e = acts.layers["embedding"][0, : acts.valid_frames[0]].mean(0)
    np.testing.assert_allclose(e / np.linalg.norm(e), ref, atol=1e-5)


@needs_resemblyzer
def test_resemblyzer_random_control_and_options(resemblyzer) -> None:
    clip = [tone(200.0, 1.7, harmonics=4)]
    r = EXTRACTORS.get("resemblyzer")(randomize=True, seed=3)
    assert r.weights_hash != resemblyzer.weights_hash
    assert not np.allclose(r.extract(clip, layers=["lstm3"]).layers["lstm3"],
                           resemblyzer.extract(clip, layers=["lstm3"]).layers["lstm3"])
    fast = EXTRACTORS.get("resemblyzer")(rate=2.0)
    assert fast.step == 50 and fast.frame_rate_hz == 2.0
    silent = resemblyzer.extract([np.zeros(SR, np.float32)], layers=["mel"])   # no volume change on silence
    assert np.isfinite(silent.layers["mel"]).all()
    with pytest.raises(ConfigError, match="rate"):
        EXTRACTORS.get("resemblyzer")(rate=0.1)


@needs_resemblyzer
@needs_espeak
def test_resemblyzer_known_answer_same_voice_closer(resemblyzer, speech) -> None:
    keys = list(speech)
    acts = resemblyzer.extract([speech[k] for k in keys], layers=["embedding"])
    emb = {}
    for i, k in enumerate(keys):
        e = acts.layers["embedding"][i, : acts.valid_frames[i]].mean(0)
        emb[k] = e / np.linalg.norm(e)
    voices = sorted({v for v, _ in keys})
    for v in voices:
        same = float(emb[(v, 0)] @ emb[(v, 1)])
        other = max(float(emb[(v, j)] @ emb[(w, 1 - j)]) for w in voices if w != v for j in (0, 1))
        assert same > other + 0.02, (v, same, other)     # measured margins 0.054 .. 0.104


# -- musicnn ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mtt():
    return EXTRACTORS.get("musicnn-mtt")()


def _fixture_clips() -> tuple[list[str], list[np.ndarray], dict]:
    data = dict(np.load(FIXTURE))
    names = ["harmonic_notes", "noise_beats", "loud_chord"]
    return names, [data[f"audio/{n}"].astype(np.float32) / 32768.0 for n in names], data


@needs_musicnn
@pytest.mark.parametrize("model,folder", [("mtt", "MTT_musicnn"), ("msd", "MSD_musicnn")])
def test_musicnn_port_matches_original_tensorflow(mtt, model, folder) -> None:
    """The PyTorch port against musicnn 0.1.0 run with TensorFlow (fixtures/make_musicnn_fixture.py);
    measured: taggram within 1.5e-6, pooled features within 7e-6 of their largest value."""
    ex = mtt if model == "mtt" else EXTRACTORS.get("musicnn-msd")()
    names, clips, ref = _fixture_clips()
    acts = ex.extract(clips, layers=["mean_pool", "max_pool", "penultimate", "taggram"])
    assert acts.valid_frames.tolist() == [2, 1, 1]
    for i, name in enumerate(names):
        n = acts.valid_frames[i]
        np.testing.assert_allclose(acts.layers["taggram"][i, :n], ref[f"{folder}/{name}/taggram"], atol=1e-4)
        for layer in ("mean_pool", "max_pool"):
            r = ref[f"{folder}/{name}/{layer}"]
            np.testing.assert_allclose(acts.layers[layer][i, :n], r, atol=1e-4 * np.abs(r).max())
        r = ref[f"{folder}/{name}/penultimate"]                 # first patch only (see the fixture script)
        np.testing.assert_allclose(acts.layers["penultimate"][i, :1], r, atol=1e-4 * np.abs(r).max())


@needs_musicnn
def test_musicnn_layers_frames_batching_and_options(mtt) -> None:
    clips = [tone(330.0, 6.5, harmonics=4), noise(3.0, seed=6), tone(110.0, 9.3, harmonics=2)]
    acts = mtt.extract(clips)
    dims = {"mel": 96, "timbral": 408, "temporal": 153, "cnn1": 64, "cnn2": 64, "cnn3": 64, "mean_pool": 753,
            "max_pool": 753, "penultimate": 200, "taggram": 50}
    assert acts.layer_names == list(dims) and len(acts.layer_names) == 10
    n = [2, 1, 3]
    assert acts.valid_frames.tolist() == n == [mtt.n_frames(c.shape[0]) for c in clips]
    for name, arr in acts.layers.items():
        assert arr.shape == (3, 3, dims[name]), name
    assert mtt.patch_frames == 187 and mtt.frame_rate_hz == pytest.approx(16000 / (256 * 187))
    np.testing.assert_allclose(acts.frame_times, (187 * np.arange(3) + 93) * 256 / SR)
    # mean over a patch of the front end is the first 561 entries of the back end's mean pool
    np.testing.assert_allclose(acts.layers["timbral"][2], acts.layers["mean_pool"][2, :, :408], rtol=1e-4, atol=1e-5)
    assert acts.extractor["task"].startswith("music tagging") and acts.extractor["training_data"].startswith("Magna")
    assert len(acts.extractor["tags"]) == 50
    assert_batched_equals_alone(mtt, clips, ["temporal", "cnn3", "taggram"], rtol=1e-4, atol=1e-4)
    over = EXTRACTORS.get("musicnn-mtt")(hop_s=1.0, block_pooling="max")
    assert over.hop_frames == 61 and over.n_frames(clips[0].shape[0]) == 1 + (407 - 187) // 61
    with pytest.raises(AudioError, match="shorter than the required"):
        mtt.extract([tone(440.0, 2.9)])
    with pytest.raises(ConfigError):
        EXTRACTORS.get("musicnn-mtt")(block_pooling="flatten")


@needs_musicnn
def test_musicnn_random_control_and_checkpoint_reader(mtt, tmp_path) -> None:
    from musiclens.extract.pretrained._imports import package_data_path
    from musiclens.extract.pretrained.tf_checkpoint import read_tf_checkpoint

    clip = [tone(262.0, 3.0, harmonics=5)]
    r = EXTRACTORS.get("musicnn-mtt")(randomize=True, seed=7)
    assert r.weights_hash != mtt.weights_hash and r.name == "musicnn-mtt-random"
    assert not np.allclose(r.extract(clip, layers=["taggram"]).layers["taggram"],
                           mtt.extract(clip, layers=["taggram"]).layers["taggram"])
    ckpt = read_tf_checkpoint(str(package_data_path("musicnn", "MTT_musicnn")) + "/")
    assert len(ckpt) == 64 and ckpt["conv2d/kernel"].shape == (7, 38, 1, 204)     # 150 with Adam slots
    assert len(read_tf_checkpoint(str(package_data_path("musicnn", "MTT_musicnn")) + "/", skip_optimizer=False)) == 150
    (tmp_path / "bad.index").write_bytes(b"\0" * 64)
    with pytest.raises(ExtractionError, match="not a TensorFlow checkpoint"):
        read_tf_checkpoint(tmp_path / "bad")


@needs_musicnn
def test_musicnn_known_answer_piano_piece_tagged_piano_not_drums(mtt) -> None:
    pytest.importorskip("tinysoundfont")
    from musiclens.corpora.generator import generate_piece, music_preset
    from musiclens.corpora.render import render_midi

    cfg = music_preset("default", duration_s=9.0, melody_programs=(0,), accompaniment_programs=(0,),
                       bass_programs=(0,), drums_prob=0.0)
    piano = render_midi(generate_piece(seed=0, index=1, config=cfg).midi, sample_rate=SR, backend="tinysoundfont")
    _, clips, _ = _fixture_clips()
    acts = mtt.extract([piano, clips[1]], layers=["taggram"])
    tags = acts.extractor["tags"]
    pia, dru = tags.index("piano"), tags.index("drums")
    on_piano = acts.layers["taggram"][0, : acts.valid_frames[0]].mean(0)
    on_beats = acts.layers["taggram"][1, : acts.valid_frames[1]].mean(0)
    assert on_piano[pia] > 0.5 > 0.05 > on_piano[dru]            # measured 0.97 vs 0.002
    assert tags[int(on_piano.argmax())] == "piano"
    assert on_beats[dru] > on_beats[pia]                          # the noise-burst clip reads as drums


def test_missing_package_names_the_pip_command(monkeypatch) -> None:
    from musiclens.extract.pretrained import _imports

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "musicnn" else real(name, *a))
    with pytest.raises(MissingDependencyError, match=r"pip install --no-deps musicnn==0\.1\.0"):
        _imports.package_data_path("musicnn", "MTT_musicnn")
    assert "silero-vad==6.2.3" in _imports.PIP_COMMANDS["silero_vad"]
    assert "resemblyzer==0.1.4" in _imports.PIP_COMMANDS["resemblyzer"]
