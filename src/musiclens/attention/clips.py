"""Clips with aligned labels for the attention and SSM analyses, read from a built corpus.

A :class:`Clip` is mono audio plus its :class:`~musiclens.corpora.MusicLabels`, times relative to
the clip start.  :func:`corpus_clips` takes the first ``n_clips`` music pieces of a corpus folder
(:func:`~musiclens.corpora.build_corpus`), optionally cut to ``[start_s, start_s + crop_s)`` with
the labels cropped to the same window (:meth:`MusicLabels.crop`).  Deterministic: no random
crops, so two analyses of the same corpus see the same audio.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from musiclens.corpora.labels import MusicLabels
from musiclens.errors import ConfigError, InsufficientDataError

__all__ = ["Clip", "corpus_clips"]


@dataclass
class Clip:
    """One analysed excerpt.

    Attributes
    ----------
    id
        Piece id (plus ``@<start>s`` when cropped later than 0).
    audio
        ``[shape=(n_samples,)]`` float32 mono.
    sample_rate
        Hz.
    labels
        Aligned labels (times from the clip start), or None.
    """

    id: str
    audio: np.ndarray
    sample_rate: int
    labels: MusicLabels | None = None

    @property
    def duration_s(self) -> float:
        return self.audio.size / self.sample_rate


def corpus_clips(
    corpus: str | os.PathLike[str],
    *,
    n_clips: int | None = None,
    crop_s: float | None = None,
    start_s: float = 0.0,
) -> list[Clip]:
    """The first ``n_clips`` music pieces of a corpus as clips.

    Parameters
    ----------
    corpus
        Corpus folder.
    n_clips
        Pieces to take, in corpus order (None: all).
    crop_s
        Clip length, seconds (None: the whole piece from ``start_s``).
    start_s
        Where each clip starts in its piece, seconds.

    Raises
    ------
    InsufficientDataError
        The corpus holds no music pieces, or a piece is shorter than ``start_s``.
    """
    from musiclens.corpora.dataset import Corpus

    c = Corpus(corpus)
    if c.kind != "music":
        raise InsufficientDataError(f"{corpus} is a {c.kind!r} corpus; attention/SSM analyses need music with labels")
    if n_clips is not None and n_clips < 1:
        raise ConfigError(f"n_clips must be >= 1, got {n_clips}")
    if crop_s is not None and crop_s <= 0:
        raise ConfigError(f"crop_s must be positive, got {crop_s}")
    n = len(c) if n_clips is None else min(int(n_clips), len(c))
    if n == 0:
        raise InsufficientDataError(f"{corpus} holds no pieces")
    sr = c.sample_rate
    out: list[Clip] = []
    for i in range(n):
        rec = c.record(i)
        duration = int(rec["n_samples"]) / sr
        if start_s >= duration:
            raise InsufficientDataError(f"piece {rec['id']} lasts {duration:.2f} s, shorter than start_s={start_s}")
        end = duration if crop_s is None else min(duration, start_s + crop_s)
        audio = c.audio(i, start=int(round(start_s * sr)), stop=int(round(end * sr)))
        labels = c.labels(i)
        lab = labels.crop(start_s=start_s, end_s=end) if isinstance(labels, MusicLabels) else None
        if lab is not None and (start_s > 0 or end < duration):
            lab.duration_s = audio.size / sr
        cid = str(rec["id"]) if start_s == 0 else f"{rec['id']}@{start_s:g}s"
        out.append(Clip(id=cid, audio=audio, sample_rate=sr, labels=lab))
    return out
