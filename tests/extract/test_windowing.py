"""Windowed extraction: stitching and its measured deviation from full context."""

from __future__ import annotations

import numpy as np

from musiclens.extract import build_extractor, extract_windowed, window_bounds
from tests.extract._helpers import tiny_w2v_config, tones


def test_window_bounds() -> None:
    assert window_bounds(100, window=200, hop=100) == [(0, 100)]
    assert window_bounds(500, window=200, hop=100) == [(0, 200), (100, 300), (200, 400), (300, 500)]
    assert window_bounds(450, window=200, hop=100)[-1] == (300, 450)


def _deviation(norm: str, normalize: bool) -> dict[str, float]:
    ext = build_extractor("wav2vec2", config=tiny_w2v_config(feat_extract_norm=norm), normalize=normalize)
    clip = tones(1, seconds=3.0)[0]
    full = ext.extract([clip])
    win = extract_windowed(ext, [clip], window_s=1.0, hop_s=0.5)     # hop = 400 frames of 20 samples
    assert win.valid_frames[0] == full.valid_frames[0]
    np.testing.assert_allclose(win.frame_times, full.frame_times, atol=1e-9)
    assert win.extractor["windowing"]["window_s"] == 1.0
    out = {}
    for name in full.layer_names:
        a, b = full.sequence(name, 0), win.sequence(name, 0)
        out[name] = float(np.sqrt(np.mean((a - b) ** 2)) / np.sqrt(np.mean(a ** 2)))
    return out


def test_windowed_deviation_from_full_context() -> None:
    """The numbers quoted in musiclens.extract.windowing's docstring."""
    local = _deviation("layer", normalize=False)
    print("relative RMS deviation, 1 s windows / 0.5 s hop vs full context (layer norm):", local)
    assert local["layer_00"] < 1e-6                       # conv front end is local: exact
    assert 0 < local["layer_01"] <= local["layer_02"] < 1e-3
    normalised = _deviation("layer", normalize=True)
    assert 1e-4 < normalised["layer_00"] < 1e-2           # per-window normalisation
    group = _deviation("group", normalize=False)
    print("same with feat_extract_norm='group':", group)
    assert group["layer_00"] > 1e-3                       # time-normalising front end sees the window only


def test_short_clip_is_not_windowed() -> None:
    ext = build_extractor("cqt")
    clip = tones(1, seconds=0.5, sr=22050)[0]
    a = ext.extract([clip])
    b = extract_windowed(ext, [clip], window_s=2.0)
    np.testing.assert_array_equal(a.layers["cqt"], b.layers["cqt"])
