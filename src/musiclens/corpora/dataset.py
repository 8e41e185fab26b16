"""Random access to built corpora, and training crops with consistently cropped labels.

:class:`Corpus` opens a folder written by :func:`~musiclens.corpora.shards.build_corpus`: the
audio of every shard is memory-mapped (nothing is read until used) and shard indexes are parsed
on demand and cached, so ``corpus.audio(i)`` is cheap for any ``i``.

:class:`CropDataset` turns a corpus into training examples: a crop of ``crop_s`` seconds at a
requested sample rate, with the piece's labels cropped to the same window (notes clipped,
onsets and beats inside, chord segments intersected) and frame targets (piano roll, onset roll,
beat and downbeat activations) at a requested frame rate.  Crop positions are drawn from
``numpy.random.default_rng([seed, epoch, index])``: reproducible, independent of access order
and of the number of data-loader workers.  This module needs no torch; see
:mod:`musiclens.corpora.torch_dataset` for the ``torch.utils.data.Dataset`` wrapper.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musiclens.audio import resample
from musiclens.corpora.labels import MusicLabels
from musiclens.corpora.shards import FORMAT, read_shard_index, shard_paths
from musiclens.errors import ConfigError, StoreError

__all__ = ["Corpus", "CropDataset"]


class Corpus:
    """A finished corpus folder, indexed ``0 .. len - 1`` over its pieces (skipped items excluded).

    Parameters
    ----------
    root
        Corpus folder (with ``corpus.json``).
    cache_shards
        How many parsed shard indexes to keep in memory.
    """

    def __init__(self, root: str | Path, *, cache_shards: int = 64) -> None:
        self.root = Path(root)
        mpath = self.root / "corpus.json"
        if not mpath.is_file():
            hint = "resume the build" if (self.root / "build.json").is_file() else "build one with `musiclens corpus ...`"
            raise StoreError(f"{self.root} is not a finished corpus (no corpus.json); {hint}")
        try:
            self.manifest: dict[str, Any] = json.loads(mpath.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise StoreError(f"{mpath} is not valid JSON ({err}); the corpus is damaged — build it again with "
                             "`musiclens corpus ...`") from err
        if not isinstance(self.manifest, dict) or self.manifest.get("format") != FORMAT:
            raise StoreError(f"{mpath} has format {self.manifest.get('format')!r}, expected {FORMAT!r}")
        self.sample_rate = int(self.manifest["sample_rate"])
        self.kind = str(self.manifest["kind"])
        counts = [int(s["n_pieces"]) for s in self.manifest["shards"]]
        self._shard_of = np.repeat(np.arange(len(counts)), counts)
        self._pos = np.concatenate([np.arange(c) for c in counts]) if counts else np.zeros(0, dtype=int)
        self._cache: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._cache_size = max(1, int(cache_shards))
        self._audio: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return int(self._shard_of.size)

    @property
    def content_hash(self) -> str:
        return str(self.manifest["content_hash"])

    def _shard(self, k: int) -> dict[str, Any]:
        if k in self._cache:
            self._cache.move_to_end(k)
            return self._cache[k]
        idx = read_shard_index(self.root, k)
        self._cache[k] = idx
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return idx

    def _entry(self, i: int) -> tuple[int, dict[str, Any]]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"piece {i} out of range for a corpus of {len(self)} pieces")
        i = i % len(self)
        k = int(self._shard_of[i])
        return k, self._shard(k)["pieces"][int(self._pos[i])]

    def record(self, i: int) -> dict[str, Any]:
        """The raw index entry of piece ``i`` (id, index, offset, n_samples, labels, meta)."""
        return self._entry(i)[1]

    def audio(self, i: int, *, start: int = 0, stop: int | None = None) -> np.ndarray:
        """``[shape=(n,)]`` float32 samples ``start:stop`` of piece ``i`` (a copy, at :attr:`sample_rate`)."""
        k, e = self._entry(i)
        if k not in self._audio:
            npy = shard_paths(self.root, k)[0]
            try:
                arr = np.load(npy, mmap_mode="r", allow_pickle=False)
            except Exception as err:   # truncated, not an .npy, pickled: several types
                raise StoreError(f"shard audio {npy} cannot be read ({type(err).__name__}: {err}); the corpus is "
                                 "damaged — build it again with `musiclens corpus ...`") from err
            if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.floating):
                raise StoreError(f"shard audio {npy} holds {arr.dtype} {arr.shape}, not 1-D float samples; the corpus "
                                 "is damaged — build it again")
            self._audio[k] = arr
        n = int(e["n_samples"])
        if e["offset"] + n > self._audio[k].shape[0]:
            raise StoreError(f"shard audio {shard_paths(self.root, k)[0]} is shorter than its index says (piece "
                             f"{e.get('id', i)} ends at sample {e['offset'] + n} of {self._audio[k].shape[0]}); "
                             "the corpus is damaged — build it again")
        stop = n if stop is None else min(int(stop), n)
        start = max(0, int(start))
        return np.array(self._audio[k][e["offset"] + start:e["offset"] + max(stop, start)], dtype=np.float32)

    def labels(self, i: int) -> MusicLabels | dict[str, Any]:
        """Labels of piece ``i``: :class:`MusicLabels` for music, the speech label dict for speech."""
        lab = self.record(i)["labels"]
        return MusicLabels.from_dict(lab) if lab.get("kind") == "music" else lab

    def metadata(self) -> pd.DataFrame:
        """One row per piece: ``id``, ``shard``, ``duration_s`` and the piece's ``meta`` fields."""
        rows = []
        for i in range(len(self)):
            k, e = self._entry(i)
            rows.append({"id": e["id"], "shard": k, "duration_s": e["n_samples"] / self.sample_rate,
                         **{m: v for m, v in e["meta"].items() if not isinstance(v, (dict, list))}})
        return pd.DataFrame(rows)


class CropDataset:
    """Training examples: fixed-length crops with labels cropped to the same window.

    Parameters
    ----------
    corpus
        A :class:`Corpus` or its folder.
    crop_s
        Crop length, seconds; ``None`` returns whole pieces.  Pieces shorter than a crop are
        zero-padded at the end (labels need no change: nothing sounds there).
    sample_rate
        Output rate (Hz); default the corpus's.  Crops are cut at the corpus rate, then resampled.
    frame_rate
        Frame rate of the frame targets, Hz.
    seed
        Seed of the crop positions.
    random_crop
        Draw the crop start at random; otherwise start at 0.

    Notes
    -----
    Speech corpora carry phoneme sequences without times, so speech examples are whole
    utterances: ``crop_s`` must be ``None`` or at least the longest utterance (padding).
    """

    def __init__(self, corpus: Corpus | str | Path, *, crop_s: float | None = 4.0, sample_rate: int | None = None,
                 frame_rate: float = 100.0, seed: int = 0, random_crop: bool = True) -> None:
        self.corpus = corpus if isinstance(corpus, Corpus) else Corpus(corpus)
        if crop_s is not None and crop_s <= 0:
            raise ConfigError(f"crop_s must be positive or None, got {crop_s}")
        if frame_rate <= 0:
            raise ConfigError(f"frame_rate must be positive, got {frame_rate}")
        self.crop_s = crop_s
        self.sample_rate = int(sample_rate or self.corpus.sample_rate)
        self.frame_rate = float(frame_rate)
        self.seed = int(seed)
        self.random_crop = random_crop
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.corpus)

    def set_epoch(self, epoch: int) -> None:
        """New crop positions for a new epoch (same epoch, same crops)."""
        self.epoch = int(epoch)

    def crop_start(self, index: int) -> int:
        """Start sample (at the corpus rate) of the crop of piece ``index`` this epoch."""
        n = int(self.corpus.record(index)["n_samples"])
        if self.crop_s is None or not self.random_crop:
            return 0
        crop_n = int(round(self.crop_s * self.corpus.sample_rate))
        if n <= crop_n:
            return 0
        rng = np.random.default_rng([self.seed, self.epoch, int(index) % len(self)])
        return int(rng.integers(0, n - crop_n + 1))

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Example ``index``.

        Returns
        -------
        dict
            ``audio`` ``[shape=(round(crop_s * sample_rate),)]`` float32; ``sample_rate``;
            ``id``; ``start_s`` (crop start in the piece); ``duration_s``.  Music adds
            ``labels`` (cropped :class:`MusicLabels`), ``piano_roll`` and ``onset_roll``
            ``[shape=(n_frames, 88)]`` bool, ``beat_frames`` and ``downbeat_frames``
            ``[shape=(n_frames,)]`` bool, ``onsets``/``beats``/``downbeats`` (s), ``chords``
            (``[(start_s, end_s, label)]``), ``key``.  Speech adds ``text`` and ``phonemes``.
        """
        sr = self.corpus.sample_rate
        rec = self.corpus.record(index)
        n = int(rec["n_samples"])
        start = self.crop_start(index)
        if self.crop_s is None:
            crop_n, duration = n, n / sr
        else:
            crop_n, duration = int(round(self.crop_s * sr)), float(self.crop_s)
        audio = self.corpus.audio(index, start=start, stop=start + crop_n)
        if audio.size < crop_n:
            audio = np.pad(audio, (0, crop_n - audio.size))
        if self.sample_rate != sr:
            audio = resample(audio, orig_sr=sr, target_sr=self.sample_rate)
            want = int(round(crop_n * self.sample_rate / sr))
            audio = np.pad(audio, (0, max(0, want - audio.size)))[:want]
        start_s = start / sr
        out: dict[str, Any] = {"id": rec["id"], "audio": audio, "sample_rate": self.sample_rate,
                               "start_s": start_s, "duration_s": duration}
        labels = self.corpus.labels(index)
        if isinstance(labels, MusicLabels):
            lab = labels.crop(start_s=start_s, end_s=start_s + duration)
            out.update(self._frame_targets(lab))
            out.update(labels=lab, onsets=lab.onsets(), beats=lab.beats, downbeats=lab.downbeats,
                       chords=lab.chords, key=lab.key)
        else:
            if self.crop_s is not None and n > crop_n:
                raise ConfigError(
                    f"speech piece {rec['id']} lasts {n / sr:.2f} s > crop_s={self.crop_s}: phoneme labels have no "
                    "times, so speech cannot be cropped; use crop_s=None or a crop at least as long as the utterances"
                )
            out.update(text=labels.get("text"), phonemes=list(labels.get("phonemes", [])), labels=labels)
        return out

    def _frame_targets(self, lab: MusicLabels) -> dict[str, np.ndarray]:
        fr = self.frame_rate
        roll = lab.piano_roll(frame_rate=fr)
        n_frames = roll.shape[0]
        onset_roll = np.zeros_like(roll)
        notes = lab.notes[~lab.notes["continued"] & ~lab.notes["is_drum"]]
        keys = notes["pitch"].to_numpy() - 21
        frames = (notes["onset"].to_numpy() * fr).astype(int)
        ok = (keys >= 0) & (keys < 88) & (frames < n_frames)
        onset_roll[frames[ok], keys[ok]] = True

        def activ(times: np.ndarray) -> np.ndarray:
            a = np.zeros(n_frames, dtype=bool)
            f = (np.asarray(times) * fr).astype(int)
            a[f[f < n_frames]] = True
            return a

        return {"piano_roll": roll, "onset_roll": onset_roll, "beat_frames": activ(lab.beats),
                "downbeat_frames": activ(lab.downbeats)}
