"""Probe datasets: real task datasets in their official layouts, and corpora as stimulus sets.

Readers return a :class:`~musiclens.stimuli.stimulus_set.StimulusSet` whose metadata carries
the task labels, a ``split`` column where the dataset defines one, and a ``group`` column
where examples must stay together; extract it with ``musiclens extract`` and probe it with
``musiclens probe``.  Nothing is ever downloaded.

- :func:`read_nsynth_splits`: NSynth ``nsynth-{train,valid,test}/examples.json + audio/``
  through :func:`musiclens.stimuli.nsynth.read_nsynth`, one set with the official split in
  ``split`` (tasks ``pitch``, ``instrument``, ``family``...).
- :func:`read_gtzan`: GTZAN genre folders ``<root>[/genres_original|/genres]/<genre>/<genre>.NNNNN.{wav,au}``
  (task ``genre``); optional split lists (e.g. the "fail-filtered" ``train_filtered.txt``,
  ``valid_filtered.txt``, ``test_filtered.txt``, one ``<genre>/<file>`` per line); tracks not
  listed are left out.
- :func:`read_audio_csv`: a CSV of ``(audio path, label)`` rows, optional group and split
  columns (task ``label``).
- :func:`corpus_stimulus_set`: pieces of a built corpus as a stimulus set whose metadata keeps
  each piece's (cropped) :class:`~musiclens.corpora.labels.MusicLabels` as JSON, so music tasks
  (key, chords, onsets, beats, notes) need only the set.
- :func:`load_probe_stimuli`: metadata and music labels from a stimulus-set or corpus folder.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musiclens.audio import load_audio
from musiclens.corpora.labels import MusicLabels
from musiclens.errors import AudioError, ConfigError, DatasetError
from musiclens.stimuli.stimulus_set import StimulusSet

__all__ = ["read_nsynth_splits", "read_gtzan", "read_audio_csv", "corpus_stimulus_set", "load_probe_stimuli",
           "GTZAN_GENRES"]

logger = logging.getLogger(__name__)

GTZAN_GENRES: tuple[str, ...] = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop",
                                 "reggae", "rock")
_AUDIO_EXT = (".wav", ".au", ".flac", ".ogg", ".mp3")


def _join(sets: Sequence[StimulusSet], info: Mapping[str, Any]) -> StimulusSet:
    rates = {s.sample_rate for s in sets}
    if len(rates) != 1:
        raise DatasetError(f"the parts have different sample rates {sorted(rates)}; pass sample_rate=... to resample")
    meta = pd.concat([s.metadata.drop(columns=["n_samples"]) for s in sets], ignore_index=True)
    return StimulusSet([c for s in sets for c in s.audio], meta, sample_rate=rates.pop(), info=dict(info))


def read_nsynth_splits(root: str | os.PathLike[str], *, splits: Sequence[str] = ("train", "valid", "test"),
                       **kwargs: Any) -> StimulusSet:
    """NSynth's official splits as one stimulus set with a ``split`` column.

    Parameters
    ----------
    root
        The folder holding ``nsynth-train/``, ``nsynth-valid/``, ``nsynth-test/``.
    splits
        Which of them to read.
    **kwargs
        Selection passed to :func:`~musiclens.stimuli.nsynth.read_nsynth` (``families``,
        ``midi``, ``velocities``, ``n_per_family``...; the same for every split).
    """
    from musiclens.stimuli.nsynth import read_nsynth

    parts = []
    for split in splits:
        s = read_nsynth(root, split=split, **kwargs)
        s.metadata["split"] = split
        parts.append(s)
    return _join(parts, {"generator": "nsynth", "splits": list(splits), "parts": [p.info for p in parts]})


def _read_clips(paths: Sequence[Path], sample_rate: int | None, max_duration_s: float | None) -> tuple[list[np.ndarray], int]:
    clips: list[np.ndarray] = []
    problems: list[str] = []
    sr_out = sample_rate
    for p in paths:
        try:
            a = load_audio(p, sample_rate=sr_out)
        except AudioError as err:
            problems.append(str(err))
            continue
        sr_out = sr_out or a.sample_rate
        x = a.samples
        if max_duration_s is not None:
            x = x[: int(round(max_duration_s * a.sample_rate))]
        clips.append(np.asarray(x, dtype=np.float32))
    if problems:
        shown = "\n  ".join(problems[:10])
        raise DatasetError(f"{len(problems)} audio file(s) cannot be read:\n  {shown}\nRestore or remove them.")
    if sr_out is None:
        raise DatasetError("no audio file was read")
    return clips, int(sr_out)


def read_gtzan(root: str | os.PathLike[str], *, split_files: Mapping[str, str | os.PathLike[str]] | None = None,
               sample_rate: int | None = None, max_duration_s: float | None = None) -> StimulusSet:
    """GTZAN genre collection in its distributed folder layout.

    Parameters
    ----------
    root
        The folder with one sub-folder per genre, or its parent holding ``genres_original/`` or
        ``genres/``.
    split_files
        ``{"train": path, "valid": path, "test": path}``: text files listing ``<genre>/<file>``
        (or bare file names) per line; the listed tracks get that ``split``, the others are
        dropped.  Without it every track is kept and the probe splits them (each track is its
        own group).
    sample_rate
        Resample every clip to this rate (default: the first file's; GTZAN is 22050 Hz).
    max_duration_s
        Keep only the first seconds of every track.

    Raises
    ------
    DatasetError
        No genre folders, unreadable audio, a split list naming missing tracks.
    """
    root = Path(root)
    base = next((root / d for d in ("genres_original", "genres", "Data/genres_original") if (root / d).is_dir()), root)
    if not base.is_dir():
        raise DatasetError(f"GTZAN folder {root} does not exist or is not a folder")
    genre_dirs = sorted(d for d in base.iterdir() if d.is_dir() and any(f.suffix.lower() in _AUDIO_EXT for f in d.iterdir()))
    if not genre_dirs:
        raise DatasetError(
            f"no genre folders with audio under {base}; GTZAN's layout is <root>/genres_original/<genre>/<genre>.00000.wav"
        )
    rows = []
    for d in genre_dirs:
        for f in sorted(d.iterdir()):
            if f.suffix.lower() in _AUDIO_EXT:
                rows.append({"stimulus_id": f.stem, "genre": d.name, "path": str(f), "relpath": f"{d.name}/{f.name}"})
    meta = pd.DataFrame(rows)
    if meta["stimulus_id"].duplicated().any():
        meta["stimulus_id"] = [f"{g}-{s}" for g, s in zip(meta["genre"], meta["stimulus_id"])]
    if split_files:
        assign: dict[str, str] = {}
        for split, fpath in split_files.items():
            for line in Path(fpath).read_text().splitlines():
                line = line.strip()
                if not line:
                    continue
                assign[line] = split
                assign.setdefault(Path(line).name, split)
        meta["split"] = [assign.get(r, assign.get(Path(r).name)) for r in meta["relpath"]]
        listed = set(assign)
        known = set(meta["relpath"]) | {Path(r).name for r in meta["relpath"]}
        missing = sorted(k for k in listed if k not in known and "/" in k)
        if missing:
            raise DatasetError(f"the split lists name {len(missing)} tracks that are not on disk (e.g. {missing[:3]})")
        dropped = int(meta["split"].isna().sum())
        if dropped:
            logger.info("GTZAN: %d tracks are in no split list and are left out", dropped)
        meta = meta[meta["split"].notna()].reset_index(drop=True)
    clips, sr = _read_clips([Path(p) for p in meta["path"]], sample_rate, max_duration_s)
    meta["source"] = "gtzan"
    meta["group"] = meta["stimulus_id"]
    return StimulusSet(clips, meta, sample_rate=sr, info={"generator": "gtzan", "root": str(root),
                                                         "split_files": {k: str(v) for k, v in (split_files or {}).items()}})


def read_audio_csv(csv_path: str | os.PathLike[str], *, audio_column: str = "audio_path", label_column: str = "label",
                   group_column: str | None = None, split_column: str | None = None, sample_rate: int | None = None,
                   max_duration_s: float | None = None) -> StimulusSet:
    """A labelled audio list: a CSV with one row per clip.

    Parameters
    ----------
    csv_path
        The CSV; relative audio paths are resolved against its folder.
    audio_column, label_column
        Columns with the audio path and the label (becomes ``label``).
    group_column
        Column whose values must stay on one side of a split (becomes ``group``).
    split_column
        Column with ``train``/``valid``/``test`` (becomes ``split``).
    sample_rate, max_duration_s
        Resampling and truncation of every clip.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DatasetError(f"CSV file {csv_path} does not exist")
    table = pd.read_csv(csv_path)
    need = [c for c in (audio_column, label_column, group_column, split_column) if c and c not in table.columns]
    if need:
        raise DatasetError(f"{csv_path} lacks the columns {need} (columns: {list(table.columns)})")
    if table.empty:
        raise DatasetError(f"{csv_path} has no rows")
    paths = [Path(p) if Path(p).is_absolute() else csv_path.parent / p for p in table[audio_column].astype(str)]
    stems = [re.sub(r"[^\w.\-+]", "_", p.stem) for p in paths]
    ids = stems if len(set(stems)) == len(stems) else [f"{i:06d}-{s}" for i, s in enumerate(stems)]
    meta = pd.DataFrame({"stimulus_id": ids, "label": table[label_column].astype(str).to_numpy(),
                         "path": [str(p) for p in paths], "source": "csv"})
    if group_column:
        meta["group"] = table[group_column].astype(str).to_numpy()
    if split_column:
        meta["split"] = table[split_column].astype(str).to_numpy()
    clips, sr = _read_clips(paths, sample_rate, max_duration_s)
    return StimulusSet(clips, meta, sample_rate=sr, info={"generator": "csv", "csv": str(csv_path)})


def corpus_stimulus_set(corpus: Any, *, indices: Sequence[int] | None = None, crop_s: float | None = None,
                        sample_rate: int | None = None) -> StimulusSet:
    """Pieces of a corpus as a stimulus set whose metadata carries their labels.

    Parameters
    ----------
    corpus
        A :class:`~musiclens.corpora.dataset.Corpus` or its folder (music corpora only).
    indices
        Pieces to take (default all).
    crop_s
        Keep the first ``crop_s`` seconds of each piece (labels cropped the same way).
    sample_rate
        Resample (default the corpus rate).

    Returns
    -------
    StimulusSet
        ``stimulus_id`` and ``piece_id`` = the piece id, ``start_s``, ``key``, ``music_labels``
        (JSON of the cropped :class:`MusicLabels`).
    """
    from musiclens.audio import resample
    from musiclens.corpora.dataset import Corpus

    c = corpus if isinstance(corpus, Corpus) else Corpus(corpus)
    if c.kind != "music":
        raise ConfigError(f"corpus {c.root} holds {c.kind!r} pieces; probe music tasks on a music corpus")
    clips, rows = [], []
    sr = int(sample_rate or c.sample_rate)
    for i in (range(len(c)) if indices is None else indices):
        rec = c.record(int(i))
        lab = c.labels(int(i))
        assert isinstance(lab, MusicLabels)
        n = int(rec["n_samples"])
        stop = n if crop_s is None else min(n, int(round(crop_s * c.sample_rate)))
        audio = c.audio(int(i), stop=stop)
        if stop < n:
            lab = lab.crop(start_s=0.0, end_s=stop / c.sample_rate)
        if sr != c.sample_rate:
            audio = resample(audio, orig_sr=c.sample_rate, target_sr=sr)
        clips.append(audio)
        rows.append({"stimulus_id": str(rec["id"]), "piece_id": str(rec["id"]), "start_s": 0.0, "key": lab.key or "",
                     "source": "corpus", "music_labels": json.dumps(lab.to_dict())})
    return StimulusSet(clips, pd.DataFrame(rows), sample_rate=sr,
                       info={"generator": "corpus", "corpus": str(c.root), "content_hash": c.content_hash,
                             "crop_s": crop_s})


def load_probe_stimuli(path: str | os.PathLike[str]) -> tuple[pd.DataFrame, dict[str, MusicLabels] | None]:
    """Metadata (and music labels, when there are any) of a stimulus-set or corpus folder.

    A stimulus-set folder gives its metadata table (no audio is read) and, if it has a
    ``music_labels`` column, the labels it holds; a corpus folder gives one row per piece
    (``stimulus_id`` = piece id) and every piece's labels.
    """
    path = Path(path)
    if (path / "corpus.json").is_file():
        from musiclens.corpora.dataset import Corpus

        c = Corpus(path)
        meta = c.metadata().rename(columns={"id": "stimulus_id"})
        meta["piece_id"] = meta["stimulus_id"]
        labels = {str(c.record(i)["id"]): c.labels(i) for i in range(len(c))}
        return meta, {k: v for k, v in labels.items() if isinstance(v, MusicLabels)} or None
    meta = StimulusSet.read_metadata(path)
    if "music_labels" in meta.columns:
        return meta, {str(s): MusicLabels.from_dict(json.loads(j)) for s, j in zip(meta["stimulus_id"], meta["music_labels"])}
    return meta, None
