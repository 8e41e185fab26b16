"""Attention maps and onset evidence: synthetic known answers, HF and Backbone sources, baselines, errors."""

from __future__ import annotations

import mir_eval
import numpy as np
import pandas as pd
import pytest
import torch

from musiclens.attention.clips import Clip
from musiclens.attention.maps import AttentionMaps, attention_maps, attention_source, collapse_tokens
from musiclens.attention.onset import attention_onset_analysis, onset_curve, spectral_flux
from musiclens.corpora.labels import MusicLabels
from musiclens.errors import AnalysisError, ConfigError
from musiclens.extract import build_extractor
from musiclens.train.base import Backbone, BackboneOutput

SR = 16000
RATE = 50.0
# wav2vec2's own conv strides (320 samples: 50 Hz tokens), narrow layers
TINY_W2V = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=[16] * 7,
                num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, layerdrop=0.0)


def _clip(onsets: np.ndarray, duration: float = 4.0, cid: str = "c0") -> Clip:
    """Decaying noise bursts at ``onsets`` with matching labels."""
    rng = np.random.default_rng(0)
    audio = 0.001 * rng.standard_normal(int(duration * SR))
    burst = rng.standard_normal(800) * np.exp(-np.arange(800) / 150)
    for t in onsets:
        i = int(round(t * SR))
        audio[i:i + 800] += burst[:audio.size - i]
    notes = pd.DataFrame({"onset": onsets, "offset": onsets + 0.1, "pitch": 60, "velocity": 100})
    return Clip(cid, audio.astype(np.float32), SR, MusicLabels(notes=notes, duration_s=duration))


def _peaked_maps(onsets: np.ndarray, duration: float, *, n_layers: int = 2, n_heads: int = 2) -> AttentionMaps:
    """Rows attend 10x more to tokens at onset frames; the class token too."""
    times = (np.arange(int(duration * RATE)) + 0.5) / RATE
    weight = np.ones(times.size)
    weight[np.round(onsets * RATE - 0.5).astype(int)] = 10.0
    n = times.size + 1
    row = np.concatenate([[1.0], weight])
    a = np.tile(row / row.sum(), (n, 1))
    maps = np.broadcast_to(a, (n_layers, n_heads, n, n)).copy()
    return AttentionMaps(maps, [f"layer_{i + 1:02d}" for i in range(n_layers)], 1, times, "c0", "synthetic")


def test_attention_peaked_at_onsets_gives_f_one() -> None:
    onsets = np.array([0.5, 1.1, 1.8, 2.4, 3.3])
    clip = _clip(onsets)
    res = attention_onset_analysis(clips=[clip], maps=[_peaked_maps(onsets, clip.duration_s)],
                                   recipes=["received", "cls"], per_head=True)
    t = res.table[res.table["layer"] != "audio"]
    assert set(t["recipe"]) == {"received", "cls"} and set(t["head"]) == {"mean", "0", "1"}
    assert (t["f_measure"] == 1.0).all() and (t["n_estimated"] == onsets.size).all()
    # the flux baseline is scored exactly like librosa.onset.onset_detect
    env, _, hop = spectral_flux(clip.audio, sample_rate=SR, frame_rate=RATE)
    ref = mir_eval.onset.f_measure(onsets, __import__("librosa").onset.onset_detect(
        onset_envelope=env, sr=SR, hop_length=hop, units="time"), window=0.05)
    base = res.table[res.table["recipe"] == "spectral_flux"].iloc[0]
    assert (base["f_measure"], base["precision"], base["recall"]) == pytest.approx(ref)
    # shuffled evidence does not score 1
    shuffled = _peaked_maps(onsets + 0.21, clip.duration_s)
    bad = attention_onset_analysis(clips=[clip], maps=[shuffled], recipes=["received"])
    assert bad.table.query("layer != 'audio'")["f_measure"].max() == 0.0
    for window in (-1.0, 0.0):   # mir_eval accepted a negative tolerance and scored nothing, silently
        with pytest.raises(ConfigError, match="positive number of seconds"):
            attention_onset_analysis(clips=[clip], maps=[shuffled], recipes=["received"], window_s=window)


def test_row_change_and_cls_recipes_known_answers() -> None:
    a = np.zeros((7, 7))
    a[0, 1:] = [0, 0, 1, 0, 0, 0]                                  # class token looks at frame 2
    a[1:4, 1] = 1.0                                                # frames 0-2 attend to frame 0
    a[4:, 4] = 1.0                                                 # frames 3-5 attend to frame 3
    np.testing.assert_array_equal(onset_curve(a, recipe="row_change", n_special=1, frame_rate=RATE),
                                  [0, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(onset_curve(a, recipe="cls", n_special=1, frame_rate=RATE), [0, 0, 1, 0, 0, 0])
    np.testing.assert_allclose(onset_curve(a, recipe="received", n_special=1, frame_rate=RATE), [1, 0, 0, 1, 0, 0])
    assert onset_curve(a[1:, 1:], recipe="cls", n_special=0, frame_rate=RATE) is None


def test_collapse_tokens_keeps_rows_stochastic() -> None:
    rng = np.random.default_rng(0)
    att = rng.random((2, 8, 8))
    att /= att.sum(-1, keepdims=True)
    times = np.repeat([0.1, 0.2, 0.3], 2)                          # 2 special + 3 frames x 2 patches
    out, ft = collapse_tokens(att, n_special=2, token_times=times)
    assert out.shape == (2, 5, 5)
    np.testing.assert_allclose(out.sum(-1), 1.0)
    np.testing.assert_allclose(ft, [0.1, 0.2, 0.3])
    np.testing.assert_allclose(out[:, 2, 3], att[:, 2:4, 4:6].sum(-1).mean(-1))


def test_hf_extractor_maps_match_extract_frames() -> None:
    ext = build_extractor("wav2vec2", config=TINY_W2V, seed=0)
    clip = _clip(np.array([0.1, 0.3]), duration=1.0)
    am = attention_maps(ext, clip.audio, sample_rate=SR, clip_id="c0")
    acts = ext.extract([clip.audio])
    assert am.maps.shape == (2, 2, acts.valid_frames[0], acts.valid_frames[0]) and am.n_special == 0
    np.testing.assert_allclose(am.maps.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(am.frame_times, acts.frame_times[:acts.valid_frames[0]])
    assert am.layer_names == ["layer_01", "layer_02"]
    one = attention_maps(attention_source("wav2vec2", config=TINY_W2V, seed=0), clip.audio, sample_rate=SR,
                         layers="layer_02")
    np.testing.assert_allclose(one.maps[0], am.maps[1], atol=1e-6)


class _TinyViT(Backbone):
    """A stand-in for the ViT-1D: one class token, frames every 320 samples, fixed attention."""

    family = "tiny-test"

    def __init__(self, *, with_attention: bool = True) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(320, 8)
        self.with_attention = with_attention

    sample_rate = property(lambda self: SR)              # type: ignore[assignment]
    frame_rate_hz = property(lambda self: RATE)          # type: ignore[assignment]
    hidden_size = property(lambda self: 8)               # type: ignore[assignment]
    n_layers = property(lambda self: 3)                  # type: ignore[assignment]

    def n_frames(self, n_samples: int) -> int:
        return n_samples // 320

    def forward(self, waveforms, *, frame_mask=None, output_attentions=False):  # noqa: ANN001, ANN201
        b, n = waveforms.shape
        t = n // 320
        h = self.proj(waveforms[:, :t * 320].reshape(b, t, 320))
        h = torch.cat([h.mean(1, keepdim=True), h], dim=1)
        att = None
        if output_attentions:
            att = [torch.softmax(torch.randn(b, 2, t + 1, t + 1, generator=torch.Generator().manual_seed(i)), -1)
                   for i in range(3)] if self.with_attention else None
        return BackboneOutput([h] * 4, n_special=1, attentions=att)


def test_backbone_contract_source_and_missing_attention_error() -> None:
    clip = _clip(np.array([0.2, 0.6]), duration=1.0)
    am = attention_maps(_TinyViT(), clip.audio, sample_rate=SR)
    assert am.maps.shape == (3, 2, 51, 51) and am.n_special == 1
    np.testing.assert_allclose(am.frame_times, (np.arange(50) + 0.5) / RATE)
    res = attention_onset_analysis(clips=[clip], model=_TinyViT(), recipes=["received", "cls", "row_change"])
    assert set(res.table["recipe"]) == {"received", "cls", "row_change", "spectral_flux"}
    assert res.table["f_measure"].between(0, 1).all() and res.table["corr_flux"].abs().le(1 + 1e-12).all()
    with pytest.raises(AnalysisError, match="no attention maps"):
        attention_maps(_TinyViT(with_attention=False), clip.audio, sample_rate=SR)


def test_model_without_attention_is_a_clear_error() -> None:
    with pytest.raises(AnalysisError, match="exposes no attention maps.*transformer"):
        attention_source("cqt")


def test_attention_cli_and_saved_outputs(tmp_path) -> None:
    import json

    from typer.testing import CliRunner

    from musiclens.cli import app
    from musiclens.corpora import build_corpus, music_preset
    from musiclens.corpora.synthetic import GeneratedMusicSource

    corpus = tmp_path / "corpus"
    build_corpus(corpus, source=GeneratedMusicSource(n_pieces=1, seed=2, config=music_preset("sparse", duration_s=3.0,
                                                                                              tail_s=0.3)))
    out = tmp_path / "att"
    res = CliRunner().invoke(app, ["attention", "--model", "wav2vec2", "--corpus", str(corpus), "--out", str(out),
                                   "--clips", "1", "--option", f"config={json.dumps(TINY_W2V)}"])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out / "attention_onsets.csv")
    assert set(table["recipe"]) == {"received", "row_change", "spectral_flux"}   # no class token: no cls
    assert set(table["layer"]) == {"audio", "layer_01", "layer_02"}
    saved = np.load(out / "attention_maps.npz")
    assert saved[f"{table['clip'][0]}/maps_mean_heads"].shape[0] == 2
    assert (out / "attention_profiles.png").is_file() and json.loads((out / "manifest.json").read_text())["command"] == "attention"
    res = CliRunner().invoke(app, ["attention", "--model", "cqt", "--corpus", str(corpus), "--out", str(tmp_path / "x")])
    assert res.exit_code != 0 and "no attention" in str(res.exception)
