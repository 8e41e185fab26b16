"""Provenance: package versions, content hashes and timings for every manifest."""

from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import platform
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from contextlib import contextmanager
from typing import Any

import numpy as np

__all__ = ["package_versions", "environment", "hash_array", "hash_bytes", "hash_files", "hash_path", "Timer"]

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


def hash_files(files: Iterable[Path], *, root: Path | None = None, max_bytes: int | None = None) -> str:
    """SHA-256 over files' names (relative to ``root``, else the bare name) and bytes, in the order given.

    With ``max_bytes`` and more bytes than that in all, only names and sizes are hashed (a
    fingerprint of a very large folder that stays cheap).
    """
    files = list(files)
    names_only = max_bytes is not None and sum(f.stat().st_size for f in files) > max_bytes
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(root) if root is not None else f.name).encode())
        if names_only:
            h.update(str(f.stat().st_size).encode())
            continue
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def hash_path(path: Path, *, max_bytes: int | None = None) -> str:
    """:func:`hash_files` of a file, or of every file below a folder (sorted)."""
    path = Path(path)
    if path.is_dir():
        return hash_files(sorted(p for p in path.rglob("*") if p.is_file()), root=path, max_bytes=max_bytes)
    return hash_files([path], max_bytes=max_bytes)


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
