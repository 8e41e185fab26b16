"""What every corpus source produces: :class:`Piece`, and the :class:`PieceSource` protocol.

A source is an indexed, deterministic recipe: ``source.make(i)`` returns piece ``i`` (audio plus
JSON-ready labels) and depends on nothing but the source's settings and ``i``.  That is what
lets :func:`~musiclens.corpora.shards.build_corpus` build shards in any order, in parallel, and
resume after a crash with identical content.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from musiclens.errors import StimulusError

__all__ = ["Piece", "PieceSource"]


@dataclass
class Piece:
    """One corpus item.

    Attributes
    ----------
    id
        Unique, stable identifier.
    audio
        ``[shape=(n_samples,)]`` mono float32.
    sample_rate
        Hz.
    labels
        JSON-ready labels: :meth:`MusicLabels.to_dict() <musiclens.corpora.labels.MusicLabels.to_dict>`
        for music (``"kind": "music"``), speech labels (``"kind": "speech"``).
    meta
        JSON-ready descriptive fields (source file, key, instruments, voice...).
    """

    id: str
    audio: np.ndarray
    sample_rate: int
    labels: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        a = np.asarray(self.audio, dtype=np.float32)
        if a.ndim != 1 or a.size == 0:
            raise StimulusError(f"piece {self.id}: audio must be a non-empty mono array, got shape {a.shape}")
        if not np.isfinite(a).all():
            raise StimulusError(f"piece {self.id}: audio contains NaN or inf")
        self.audio = a


@runtime_checkable
class PieceSource(Protocol):
    """An indexed, deterministic recipe for corpus pieces.

    Attributes
    ----------
    kind
        ``"music"`` or ``"speech"``.
    sample_rate
        Rate of the audio ``make`` returns, Hz.
    """

    kind: str
    sample_rate: int

    def __len__(self) -> int:
        """Number of pieces."""
        ...

    def fingerprint(self) -> dict[str, Any]:
        """JSON-ready description of everything that determines the pieces (for resume checks)."""
        ...

    def describe(self, index: int) -> str:
        """Where piece ``index`` comes from (a file path, or ``"seed 0 piece 12"``), for error records."""
        ...

    def make(self, index: int) -> Piece:
        """Piece ``index``; raises a :class:`~musiclens.errors.MusicLensError` naming the input when it is bad."""
        ...
