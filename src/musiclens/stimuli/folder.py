"""A folder of the user's own audio files plus a metadata table → :class:`StimulusSet`.

``musiclens stimuli import AUDIO_DIR --metadata TABLE --out SET`` calls :func:`import_folder`.

The table (CSV, TSV or Parquet) has one row per stimulus, keyed by the file's path relative to
``AUDIO_DIR`` (column ``file`` by default; a bare file name is enough when it is unique in the
folder).  ``stimulus_id`` is taken from the table when it has that column, else from the file
name without its extension.  Optional label columns are checked (``midi``: integers 0–127;
``velocity``: integers 0–127; ``pitch_hz``: positive numbers, from which ``midi`` is derived when
absent, rounded, and recorded); every other column is kept as it is.

Every file goes through the one audio policy (:mod:`musiclens.audio`): read with soundfile (WAV,
FLAC, OGG, MP3 where libsndfile supports it), downmixed to mono by averaging and resampled with
soxr VHQ to ``sample_rate`` (default: the files' common rate), each conversion recorded per
stimulus in ``info["conversions"]``.

Problems are gathered over the whole folder before anything is written and reported in one
error, one line each: files without a row, rows without a file, duplicated rows or ids,
unreadable files, silent files (peak below ``silence_db`` dBFS, default −100), non-finite
samples, bad label values.  With ``skip_bad=True`` the bad *files and rows* are left out and
listed in ``info["skipped"]`` (saved in the set's ``manifest.json``); problems of the table as a
whole (no key column, bad label values) are always errors.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musiclens.errors import ConfigError, DatasetError, StimulusError
from musiclens.stimuli.stimulus_set import StimulusSet, hz_to_midi

__all__ = ["import_folder", "read_table", "AUDIO_SUFFIXES"]

logger = logging.getLogger(__name__)

#: File suffixes taken as audio (case-insensitive).
AUDIO_SUFFIXES: tuple[str, ...] = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff")

_MAX_LISTED = 20


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV (``.csv``), TSV (``.tsv``/``.tab``) or Parquet (``.parquet``/``.pq``) table."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"metadata table {path} does not exist; pass --metadata with a CSV, TSV or Parquet file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            table = pd.read_csv(path, keep_default_na=True)
        elif suffix in (".tsv", ".tab"):
            table = pd.read_csv(path, sep="\t", keep_default_na=True)
        elif suffix in (".parquet", ".pq"):
            table = pd.read_parquet(path)
        else:
            raise ConfigError(f"metadata table {path}: unknown format {suffix!r}; use .csv, .tsv or .parquet")
    except (ConfigError, DatasetError):
        raise
    except Exception as err:  # pandas/pyarrow parse errors have many types
        raise DatasetError(f"cannot read metadata table {path} ({type(err).__name__}: {err}); "
                           "is it a valid CSV/TSV/Parquet file?") from err
    if table.empty:
        raise DatasetError(f"metadata table {path} has no rows; give one row per audio file")
    table.columns = [str(c).strip() for c in table.columns]
    return table


def _listing(problems: Sequence[str]) -> str:
    shown = "\n  ".join(problems[:_MAX_LISTED])
    more = f"\n  … and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED else ""
    return f"\n  {shown}{more}"


def _check_labels(table: pd.DataFrame, source: Path) -> pd.DataFrame:
    """Validate the optional label columns; return the table with them typed."""
    table = table.copy()
    problems: list[str] = []
    for col, lo, hi in (("midi", 0, 127), ("velocity", 0, 127)):
        if col not in table.columns:
            continue
        values = pd.to_numeric(table[col], errors="coerce")
        bad = table[col].notna() & (values.isna() | (values % 1 != 0) | (values < lo) | (values > hi))
        for i in np.flatnonzero(bad.to_numpy()):
            problems.append(f"row {i + 2}: {col} = {table[col].iloc[i]} is not an integer in {lo}..{hi}")
        table[col] = values.where(~bad).astype("Int64")
    if "pitch_hz" in table.columns:
        hz = pd.to_numeric(table["pitch_hz"], errors="coerce")
        bad = table["pitch_hz"].notna() & (hz.isna() | ~(hz > 0))
        for i in np.flatnonzero(bad.to_numpy()):
            problems.append(f"row {i + 2}: pitch_hz = {table['pitch_hz'].iloc[i]} is not a positive number")
        table["pitch_hz"] = hz
        if "midi" not in table.columns and not problems:
            midi = np.round(hz_to_midi(hz.to_numpy(dtype=float)))
            table["midi"] = pd.array([pd.NA if np.isnan(m) else int(m) for m in midi], dtype="Int64")
    if problems:
        raise StimulusError(f"metadata table {source}: bad label values (fix them, or drop the column):"
                            + _listing(problems))
    return table


def _key_column(table: pd.DataFrame, file_column: str, source: Path) -> str:
    if file_column in table.columns:
        return file_column
    for alt in ("file", "filename", "file_name", "path"):
        if alt in table.columns:
            return alt
    raise StimulusError(f"metadata table {source} has no {file_column!r} column (columns: {list(table.columns)}); "
                        "add a column with each audio file's name or path relative to the audio folder, "
                        "or name it with --file-column")


def import_folder(
    audio_dir: str | Path,
    metadata: str | Path | pd.DataFrame,
    *,
    sample_rate: int | None = None,
    file_column: str = "file",
    skip_bad: bool = False,
    silence_db: float = -100.0,
    source_name: str = "folder",
) -> StimulusSet:
    """Read every audio file of ``audio_dir`` named in ``metadata`` into a :class:`StimulusSet`.

    Parameters
    ----------
    audio_dir
        Folder with the audio files (searched recursively for :data:`AUDIO_SUFFIXES`).
    metadata
        Path of a CSV/TSV/Parquet table, or a DataFrame; one row per file (see the module docstring).
    sample_rate
        Rate of the set in Hz; files at other rates are resampled (recorded).  Default: the files'
        common rate (an error when they differ).
    file_column
        The table's column holding file names or relative paths.
    skip_bad
        Leave out bad files and rows (listed in ``info["skipped"]``) instead of failing.
    silence_db
        A file whose peak is below this many dBFS counts as silent.
    """
    import soundfile as sf

    from musiclens import audio as audio_policy

    root = Path(audio_dir)
    if not root.is_dir():
        raise DatasetError(f"audio folder {root} does not exist or is not a folder")
    source = Path(metadata) if not isinstance(metadata, pd.DataFrame) else Path("<table>")
    table = read_table(metadata) if not isinstance(metadata, pd.DataFrame) else metadata.copy()
    if table.empty:
        raise DatasetError("the metadata table has no rows; give one row per audio file")
    if sample_rate is not None and int(sample_rate) <= 0:
        raise ConfigError(f"sample_rate must be a positive number of Hz, got {sample_rate!r}")
    key = _key_column(table, file_column, source)
    table = _check_labels(table, source)

    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    by_rel = {p.relative_to(root).as_posix(): p for p in files}
    by_name: dict[str, list[Path]] = {}
    for p in files:
        by_name.setdefault(p.name, []).append(p)

    problems: list[str] = []   # (message) — all gathered before failing
    skipped: list[dict[str, str]] = []

    def bad(item: str, why: str) -> None:
        problems.append(f"{item}: {why}")
        skipped.append({"item": item, "reason": why})

    # ---- rows -> files
    keys = table[key].astype("string")
    row_file: dict[int, Path] = {}
    seen: dict[Path, int] = {}
    for i, k in enumerate(keys):
        if pd.isna(k) or not str(k).strip():
            bad(f"row {i + 2}", f"empty {key!r}")
            continue
        k = str(k).strip().replace("\\", "/")
        k = k[2:] if k.startswith("./") else k
        path = by_rel.get(k)
        if path is None and "/" not in k:
            hits = by_name.get(k, [])
            if len(hits) > 1:
                bad(f"row {i + 2} ({k})", f"{len(hits)} files have this name ({', '.join(h.relative_to(root).as_posix() for h in hits[:3])}); "
                    "give the path relative to the audio folder")
                continue
            path = hits[0] if hits else None
        if path is None:
            bad(f"row {i + 2} ({k})", f"no such audio file under {root}")
            continue
        if path in seen:
            bad(f"row {i + 2} ({k})", f"duplicates row {seen[path] + 2} (one row per file)")
            continue
        seen[path] = i
        row_file[i] = path
    for p in files:
        if p not in seen:
            bad(p.relative_to(root).as_posix(), "audio file has no row in the metadata table")

    # ---- ids
    if "stimulus_id" in table.columns:
        ids = table["stimulus_id"].astype("string")
    else:
        ids = pd.Series([row_file[i].stem if i in row_file else pd.NA for i in range(len(table))], dtype="string")
    first: dict[str, int] = {}
    for i in sorted(row_file):
        sid = ids.iloc[i]
        if pd.isna(sid) or not str(sid).strip():
            bad(f"row {i + 2}", "empty stimulus_id")
            row_file.pop(i)
            continue
        sid = str(sid)
        if "/" in sid or "\\" in sid or sid.startswith("."):
            bad(f"row {i + 2} ({sid})", "stimulus_id must be usable as a file name (no '/', '\\', leading '.')")
            row_file.pop(i)
        elif sid in first:
            bad(f"row {i + 2} ({sid})", f"stimulus_id repeats row {first[sid] + 2}; ids must be unique")
            row_file.pop(i)
        else:
            first[sid] = i

    # ---- read audio (rate decided after every header is known)
    rates: dict[int, int] = {}
    for i in sorted(row_file):
        try:
            rates[i] = int(sf.info(str(row_file[i])).samplerate)
        except Exception as err:  # soundfile raises several types for unreadable files
            bad(row_file[i].relative_to(root).as_posix(), f"unreadable ({type(err).__name__}: {err})")
            row_file.pop(i)
    if sample_rate is None and len(set(rates.values())) > 1:
        counts = pd.Series(list(rates.values())).value_counts().to_dict()
        also = (f"; also {len(problems)} other problem(s):" + _listing(problems)) if problems else ""
        raise StimulusError(f"the audio files have different sample rates ({counts}); pass --sample-rate to resample "
                            "them all to one rate (recorded per stimulus)" + also)
    target = int(sample_rate) if sample_rate is not None else (next(iter(rates.values())) if rates else 16000)
    threshold = 10.0 ** (silence_db / 20.0)
    clips: dict[int, np.ndarray] = {}
    conversions: dict[str, list[str]] = {}
    for i in sorted(row_file):
        rel = row_file[i].relative_to(root).as_posix()
        try:
            loaded = audio_policy.load_audio(row_file[i], sample_rate=target, mono=True)
        except Exception as err:
            bad(rel, str(err))
            continue
        peak = float(np.max(np.abs(loaded.samples))) if loaded.samples.size else 0.0
        if peak < threshold:
            bad(rel, f"silent (peak {20 * np.log10(peak) if peak > 0 else float('-inf'):.1f} dBFS < {silence_db:g} dBFS)")
            continue
        clips[i] = loaded.samples
        if loaded.conversions:
            conversions[str(ids.iloc[i])] = loaded.conversions

    if problems and not skip_bad:
        raise StimulusError(f"importing {root} with {source}: {len(problems)} problem(s); fix them or pass "
                            "--skip-bad to leave these out (recorded in the manifest):" + _listing(problems))
    if not clips:
        raise StimulusError(f"no usable audio in {root}: every file or row was bad" + _listing(problems))
    for p in problems:
        logger.warning("skipped %s", p)

    keep = sorted(clips)
    meta = table.iloc[keep].reset_index(drop=True).copy()
    meta["stimulus_id"] = [str(ids.iloc[i]) for i in keep]
    meta["file"] = [row_file[i].relative_to(root).as_posix() for i in keep]
    if key != "file" and key in meta.columns:
        meta = meta.drop(columns=[key])
    if "source" not in meta.columns:
        meta["source"] = source_name
    for col in ("instrument", "family"):
        if col in meta.columns:
            meta[col] = meta[col].astype("string").fillna("").astype(str)
    info: dict[str, Any] = {
        "generator": "import_folder",
        "audio_dir": str(root.resolve()),
        "metadata": str(source if isinstance(metadata, pd.DataFrame) else Path(metadata).resolve()),
        "file_column": key,
        "sample_rate": target,
        "silence_db": silence_db,
        "conversions": conversions,
        "skipped": skipped if skip_bad else [],
        "n_files": len(files),
        "n_rows": int(len(table)),
    }
    return StimulusSet([clips[i] for i in keep], meta, sample_rate=target, info=info)
