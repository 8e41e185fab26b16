"""Generated music as a corpus source: :func:`generate_piece` rendered through a SoundFont."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from musiclens.corpora.base import Piece
from musiclens.corpora.generator import MusicConfig, generate_piece
from musiclens.corpora.render import render_midi, resolve_backend
from musiclens.errors import ConfigError
from musiclens.stimuli.soundfont import find_soundfont, soundfont_hash

__all__ = ["GeneratedMusicSource", "render_generated"]


def render_generated(*, seed: int, index: int, config: MusicConfig | None = None, sample_rate: int = 16000,
                     soundfont: str | os.PathLike[str] | None = None, backend: str = "auto") -> Piece:
    """Generate and render one piece: audio of exactly ``labels.duration_s`` seconds.

    Parameters
    ----------
    seed, index
        Corpus seed and piece index (see :func:`~musiclens.corpora.generator.generate_piece`).
    config
        Generation settings.
    sample_rate
        Hz.
    soundfont, backend
        SoundFont (name or path) and backend (see :func:`~musiclens.corpora.render.render_midi`).
    """
    gp = generate_piece(seed=seed, index=index, config=config)
    audio = render_midi(gp.midi, sample_rate=sample_rate, soundfont=soundfont, backend=backend,
                        duration_s=gp.labels.duration_s)
    return Piece(id=gp.id, audio=audio, sample_rate=sample_rate, labels=gp.labels.to_dict(), meta=gp.info)


@dataclass
class GeneratedMusicSource:
    """``n_pieces`` generated tonal pieces of corpus ``seed`` (a :class:`~musiclens.corpora.base.PieceSource`).

    Attributes
    ----------
    n_pieces
        Number of pieces.
    seed
        Corpus seed; piece ``i`` uses ``numpy.random.default_rng([seed, i])``.
    config
        Generation settings.
    sample_rate
        Hz.
    soundfont, backend
        SoundFont name or path (default ``timgm6mb``) and backend (``auto`` is resolved once).
    """

    n_pieces: int
    seed: int = 0
    config: MusicConfig = field(default_factory=MusicConfig)
    sample_rate: int = 16000
    soundfont: str | None = None
    backend: str = "auto"
    kind: str = "music"

    def __post_init__(self) -> None:
        if self.n_pieces < 0:
            raise ConfigError(f"n_pieces must be >= 0, got {self.n_pieces}")
        self.backend = resolve_backend(self.backend)
        self._sf_path = find_soundfont(self.soundfont)

    def __len__(self) -> int:
        return self.n_pieces

    def fingerprint(self) -> dict[str, Any]:
        return {"type": "generated_music", "seed": self.seed, "n_pieces": self.n_pieces,
                "config": self.config.to_dict(), "backend": self.backend,
                "soundfont": self._sf_path.name, "soundfont_sha256": soundfont_hash(self._sf_path)}

    def describe(self, index: int) -> str:
        return f"generated piece {index} of seed {self.seed}"

    def make(self, index: int) -> Piece:
        return render_generated(seed=self.seed, index=index, config=self.config, sample_rate=self.sample_rate,
                                soundfont=str(self._sf_path), backend=self.backend)
