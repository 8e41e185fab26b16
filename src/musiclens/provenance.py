"""Provenance: package versions, content hashes and timings for every manifest."""

from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import platform
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

__all__ = ["package_versions", "environment", "hash_array", "hash_bytes", "Timer"]

#: Distributions whose versions go into every manifest (when installed).
TRACKED_PACKAGES = (
    "musiclens", "numpy", "scipy", "pandas", "pyarrow", "soundfile", "librosa", "torch",
    "transformers", "nnAudio", "lightning", "rsatoolbox", "mir_eval", "pretty_midi",
    "tinysoundfont", "pyfluidsynth", "scikit-learn", "music21",
)


def package_versions(names: Iterable[str] = TRACKED_PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution (``None`` when not installed)."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def environment() -> dict[str, Any]:
    """Python, platform and package versions, for a manifest."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "packages": package_versions(),
    }


def hash_bytes(*chunks: bytes) -> str:
    """SHA-256 hex digest of the concatenated chunks."""
    h = hashlib.sha256()
    for c in chunks:
        h.update(c)
    return h.hexdigest()


def hash_array(array: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and little-endian C-order bytes."""
    a = np.ascontiguousarray(array)
    a = a.astype(a.dtype.newbyteorder("<"), copy=False)
    return hash_bytes(str(a.dtype).encode(), str(a.shape).encode(), a.tobytes())


class Timer:
    """Named wall-clock timings for a manifest: ``with timer("render"): ...``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
