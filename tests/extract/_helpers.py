"""Tiny models and stimuli shared by the extraction tests."""

from __future__ import annotations

from typing import Any

import numpy as np

from musiclens.extract.base import Activations

SR = 16000


def tiny_w2v_config(**over: Any) -> dict[str, Any]:
    """A wav2vec2/HuBERT-style config: hidden 32, 2 layers, stride 20 (800 Hz frames at 16 kHz)."""
    cfg: dict[str, Any] = dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(32, 32), conv_stride=(5, 4), conv_kernel=(10, 4), num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4, layerdrop=0.0,
    )
    cfg.update(over)
    return cfg


def tones(n: int, *, seconds: float = 0.25, sr: int = SR, seed: int = 0, vary: bool = False) -> list[np.ndarray]:
    """``n`` noisy sine clips; lengths differ when ``vary``."""
    rng = np.random.default_rng(seed)
    clips = []
    for i in range(n):
        length = int(seconds * sr) + (int(rng.integers(0, sr // 10)) if vary else 0)
        t = np.arange(length) / sr
        clips.append((0.5 * np.sin(2 * np.pi * (220 + 30 * i) * t) + 0.05 * rng.standard_normal(length)).astype(np.float32))
    return clips


class CountingExtractor:
    """Wraps an extractor: counts extract() calls; raises after ``fail_after`` calls when set."""

    def __init__(self, inner: Any, *, fail_after: int | None = None) -> None:
        self.inner = inner
        self.calls = 0
        self.fail_after = fail_after
        self.name = inner.name
        self.sample_rate = inner.sample_rate
        self.layer_names = inner.layer_names
        self.frame_rate_hz = inner.frame_rate_hz
        self.min_samples = getattr(inner, "min_samples", 1)

    def extract(self, audio: Any, *, layers: Any = None, stimulus_ids: Any = None) -> Activations:
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("simulated kill")
        self.calls += 1
        return self.inner.extract(audio, layers=layers, stimulus_ids=stimulus_ids)

    def info(self) -> dict[str, Any]:
        return self.inner.info()
