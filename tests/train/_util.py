"""Shared helpers of the training tests: synthetic tones and chords, one-thread torch, checkpoint round trips."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from musiclens.extract.checkpoint import checkpoint_extractor
from musiclens.extract.hooks import to_frames
from musiclens.train.base import Backbone


def chords(batch: int, n_samples: int, sample_rate: int, *, seed: int, notes: int = 3) -> torch.Tensor:
    """``[batch, n_samples]`` sums of ``notes`` sinusoids at random MIDI pitches 48-72, amplitude 0.2 each."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / sample_rate
    out = np.zeros((batch, n_samples))
    for i in range(batch):
        for m in rng.integers(48, 72, size=notes):
            out[i] += 0.2 * np.sin(2 * np.pi * 440.0 * 2 ** ((m - 69) / 12) * t + rng.uniform(0, 2 * np.pi))
    return torch.tensor(out, dtype=torch.float32)


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch on one intra-op thread for the block (the test machine is shared); restore afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Run torch on one thread (the test machine is shared); restore afterwards."""
    with one_torch_thread():
        yield


@pytest.fixture(autouse=True, scope="module")
def objectives_on_one_thread() -> Iterator[None]:
    """Every objective registered and torch on one thread for the module (autouse where imported)."""
    from musiclens.train.objectives import register_all

    register_all()
    with one_torch_thread():
        yield


def assert_checkpoint_round_trip(model: Backbone, x: torch.Tensor, path: Path) -> tuple[Any, Any]:
    """Save ``model`` to ``path`` and load it back as an extractor: every layer, captured by hooks and
    through the public ``extract``, equals the model's own hidden states of ``x`` ``[2, n_samples]``.

    Returns the extractor and its activations of the two clips for family-specific checks.
    """
    model.save(path)
    ext = checkpoint_extractor(path)
    assert ext.layer_names == [f"layer_{i:02d}" for i in range(model.n_layers + 1)]
    with torch.no_grad():
        ref = model(x).hidden_states
    raw = ext.capture(x, ext.layer_names)
    for i, layer in enumerate(ext.layer_names):
        torch.testing.assert_close(to_frames(raw[layer], "btd", layer=layer), ref[i], atol=1e-5, rtol=0)
    acts = ext.extract([x[0].numpy(), x[1].numpy()])  # the public path
    assert list(acts.layers) == ext.layer_names
    for i, layer in enumerate(ext.layer_names):
        np.testing.assert_allclose(acts.layers[layer], ref[i].numpy(), atol=1e-5, rtol=0)
    return ext, acts
