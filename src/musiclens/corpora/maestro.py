"""MAESTRO in its official layout (metadata CSV/JSON + WAV + MIDI) as a corpus source.

The official layout (v1-v3)::

    maestro-v3.0.0/
        maestro-v3.0.0.csv     columns canonical_composer, canonical_title, split, year,
                               midi_filename, audio_filename, duration
        maestro-v3.0.0.json    the same table: column-oriented {"column": {"row": value}} (v3)
                               or a list of records (v1, v2)
        2004/MIDI-Unprocessed_....midi
        2004/MIDI-Unprocessed_....wav
        ...

The CSV is preferred when both exist.  Nothing is downloaded.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from musiclens.corpora.pairs import AudioMidiSource
from musiclens.errors import DatasetError

__all__ = ["MAESTRO_COLUMNS", "MaestroTrack", "find_maestro_metadata", "read_maestro", "maestro_source"]

MAESTRO_COLUMNS: tuple[str, ...] = (
    "canonical_composer", "canonical_title", "split", "year", "midi_filename", "audio_filename", "duration",
)
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class MaestroTrack:
    """One MAESTRO performance (paths absolute, duration in seconds)."""

    id: str
    composer: str
    title: str
    split: str
    year: int
    midi_path: Path
    audio_path: Path
    duration_s: float


def find_maestro_metadata(root: str | os.PathLike[str]) -> Path:
    """The metadata file of a MAESTRO folder (``maestro-v*.csv``, else ``maestro-v*.json``)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"MAESTRO folder {root} does not exist")
    for pattern in ("maestro-v*.csv", "maestro-v*.json"):
        found = sorted(root.glob(pattern))
        if found:
            return found[-1]
    raise DatasetError(f"{root} has no maestro-v*.csv or maestro-v*.json metadata file; is it a MAESTRO folder?")


def _read_table(path: Path) -> pd.DataFrame:
    try:
        if path.suffix == ".csv":
            return pd.read_csv(path)
        raw = json.loads(path.read_text())
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise DatasetError(f"cannot read MAESTRO metadata {path} ({err})") from err
    return pd.DataFrame(raw) if isinstance(raw, list) else pd.DataFrame({k: pd.Series(v) for k, v in raw.items()})


def read_maestro(root: str | os.PathLike[str], *, splits: tuple[str, ...] | None = None,
                 check_files: bool = True) -> list[MaestroTrack]:
    """The performances listed in a MAESTRO folder's metadata.

    Parameters
    ----------
    root
        MAESTRO folder.
    splits
        Keep these splits (``train``, ``validation``, ``test``); default all.
    check_files
        Raise if a listed MIDI or WAV file is missing (naming the first).

    Raises
    ------
    DatasetError
        Missing folder or metadata, metadata without the official columns, unknown split, or
        (with ``check_files``) missing files.
    """
    root = Path(root)
    meta_path = find_maestro_metadata(root)
    df = _read_table(meta_path)
    missing_cols = [c for c in MAESTRO_COLUMNS if c not in df.columns]
    if missing_cols:
        raise DatasetError(f"{meta_path} lacks the MAESTRO columns {missing_cols}; is it official metadata?")
    if splits is not None:
        bad = set(splits) - set(SPLITS)
        if bad:
            raise DatasetError(f"unknown MAESTRO split(s) {sorted(bad)}; use {', '.join(SPLITS)}")
        df = df[df["split"].isin(splits)]
    tracks = []
    for row in df.sort_values("midi_filename").itertuples(index=False):
        midi = root / str(row.midi_filename)
        tracks.append(MaestroTrack(
            id=Path(str(row.midi_filename)).with_suffix("").as_posix().replace("/", "__"),
            composer=str(row.canonical_composer), title=str(row.canonical_title), split=str(row.split),
            year=int(row.year), midi_path=midi, audio_path=root / str(row.audio_filename),
            duration_s=float(row.duration)))
    if check_files:
        for t in tracks:
            for p in (t.midi_path, t.audio_path):
                if not p.is_file():
                    raise DatasetError(
                        f"MAESTRO file {p} listed in {meta_path.name} is missing; restore it, or pass "
                        "skip_bad=True (--skip-bad) to record and skip incomplete performances"
                    )
    return tracks


def maestro_source(root: str | os.PathLike[str], *, splits: tuple[str, ...] | None = None, sample_rate: int = 16000,
                   sustain: bool = True, skip_bad: bool = False, limit: int | None = None) -> AudioMidiSource:
    """A corpus source over a MAESTRO folder.

    Without ``skip_bad`` every listed file is checked up front and the first missing one is an
    error; with it, incomplete performances stay in the list and the build records them as
    skipped.  ``limit`` keeps the first ``limit`` performances (sorted by MIDI file name).
    """
    tracks = read_maestro(root, splits=splits, check_files=not skip_bad)[:limit]
    items: list[dict[str, Any]] = [
        {"id": t.id, "audio": str(t.audio_path), "midi": str(t.midi_path),
         "meta": {"composer": t.composer, "title": t.title, "split": t.split, "year": t.year,
                  "listed_duration_s": t.duration_s}}
        for t in tracks
    ]
    if not items:
        raise DatasetError(f"no MAESTRO performances selected in {root} (splits={splits})")
    return AudioMidiSource(items=items, sample_rate=sample_rate, sustain=sustain, name="maestro",
                           extra={"root": str(Path(root)), "splits": list(splits) if splits else None})
