"""Shared helpers of the training tests: synthetic tones and chords, one-thread torch."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch


def chords(batch: int, n_samples: int, sample_rate: int, *, seed: int, notes: int = 3) -> torch.Tensor:
    """``[batch, n_samples]`` sums of ``notes`` sinusoids at random MIDI pitches 48-72, amplitude 0.2 each."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / sample_rate
    out = np.zeros((batch, n_samples))
    for i in range(batch):
        for m in rng.integers(48, 72, size=notes):
            out[i] += 0.2 * np.sin(2 * np.pi * 440.0 * 2 ** ((m - 69) / 12) * t + rng.uniform(0, 2 * np.pi))
    return torch.tensor(out, dtype=torch.float32)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Run torch on one thread (the test machine is shared); restore afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
