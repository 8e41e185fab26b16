"""`StimulusSet`: ordered audio clips plus one metadata table.

A stimulus set is what musiclens plays to a network.  It holds

- ``audio``: a list of mono float32 arrays ``[shape=(n_samples,)]`` (clips may differ in length),
- ``metadata``: a :class:`pandas.DataFrame`, one row per clip, in the same order, with at least
  the columns in :data:`REQUIRED_COLUMNS`,
- ``sample_rate``: one rate in Hz for every clip (the rate travels with the samples),
- ``info``: free-form provenance (generator, parameters, seed, skipped notes, ...).

On disk a set is a folder::

    <folder>/
        audio/<stimulus_id>.wav    float32 WAV, mono (bit-exact round trip)
        metadata.parquet           the table (metadata.csv when pyarrow is absent)
        manifest.json              versions, seed, info, content hash, per-clip hashes

:meth:`StimulusSet.save` writes the folder atomically (temporary folder, then rename);
:meth:`StimulusSet.load` validates it and names any missing or corrupt file.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musiclens.errors import DatasetError, StimulusError
from musiclens.fsutil import atomic_dir
from musiclens.provenance import environment, hash_array

__all__ = ["StimulusSet", "REQUIRED_COLUMNS", "NOTE_NAMES", "note_name", "midi_to_hz", "hz_to_midi"]

logger = logging.getLogger(__name__)

#: Columns every stimulus set's metadata has (values may be missing, e.g. ``midi`` for speech).
REQUIRED_COLUMNS: tuple[str, ...] = (
    "stimulus_id", "midi", "pitch_class", "octave", "note_name", "instrument", "family",
    "velocity", "duration_s", "sample_rate", "source",
)

NOTE_NAMES: tuple[str, ...] = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")

FORMAT_VERSION = 1
_INT_COLUMNS = ("midi", "pitch_class", "octave", "velocity")


def note_name(midi: int) -> str:
    """Scientific pitch name of a MIDI number, with C4 = 60 (``note_name(69) == "A4"``)."""
    return f"{NOTE_NAMES[int(midi) % 12]}{int(midi) // 12 - 1}"


def midi_to_hz(midi: float | np.ndarray) -> float | np.ndarray:
    """Equal-tempered frequency in Hz with A4 (MIDI 69) = 440 Hz."""
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=float) - 69.0) / 12.0)


def hz_to_midi(hz: float | np.ndarray) -> float | np.ndarray:
    """Inverse of :func:`midi_to_hz`."""
    return 69.0 + 12.0 * np.log2(np.asarray(hz, dtype=float) / 440.0)


def _clip_hash(clip: np.ndarray) -> str:
    return hash_array(np.asarray(clip, dtype=np.float32))


class StimulusSet:
    """Ordered mono audio clips at one sample rate, with one metadata row per clip.

    Parameters
    ----------
    audio
        Clips ``[shape=(n_samples,)]``, float, finite, non-empty.  Stored as float32.
    metadata
        One row per clip, same order; must contain ``stimulus_id`` (unique strings usable as
        file names).  Missing :data:`REQUIRED_COLUMNS` are added as empty (``NA``) columns.
    sample_rate
        Sample rate of every clip, in Hz.
    info
        Provenance (generator name, parameters, seed, skipped items...), JSON-serialisable.
    """

    def __init__(
        self,
        audio: Sequence[np.ndarray],
        metadata: pd.DataFrame,
        *,
        sample_rate: int,
        info: Mapping[str, Any] | None = None,
    ) -> None:
        if int(sample_rate) <= 0:
            raise StimulusError(f"sample_rate must be a positive number of Hz, got {sample_rate!r}")
        if len(audio) != len(metadata):
            raise StimulusError(
                f"{len(audio)} clips but {len(metadata)} metadata rows; give exactly one row per clip"
            )
        if "stimulus_id" not in metadata.columns:
            raise StimulusError("metadata needs a 'stimulus_id' column with one unique id per clip")
        meta = metadata.reset_index(drop=True).copy()
        meta["stimulus_id"] = meta["stimulus_id"].astype(str)
        dup = meta["stimulus_id"][meta["stimulus_id"].duplicated()].tolist()
        if dup:
            raise StimulusError(f"stimulus_id values must be unique; duplicated: {dup[:5]}")
        bad_ids = [s for s in meta["stimulus_id"] if not s or "/" in s or "\\" in s or s.startswith(".")]
        if bad_ids:
            raise StimulusError(
                f"stimulus ids must be usable as file names (no '/', '\\', leading '.'): {bad_ids[:5]}"
            )
        if "midi" in meta.columns:  # derive pitch labels the caller did not give
            midi = pd.to_numeric(meta["midi"], errors="coerce").astype("Int64")
            if "pitch_class" not in meta.columns:
                meta["pitch_class"] = midi % 12
            if "octave" not in meta.columns:
                meta["octave"] = midi // 12 - 1
            if "note_name" not in meta.columns:
                meta["note_name"] = ["" if pd.isna(m) else note_name(int(m)) for m in midi]
        for col in REQUIRED_COLUMNS:
            if col not in meta.columns:
                # integer labels missing -> nullable Int64 NA; text labels missing -> ""
                meta[col] = pd.array([pd.NA] * len(meta), dtype="Int64") if col in _INT_COLUMNS else ""
        clips: list[np.ndarray] = []
        for i, clip in enumerate(audio):
            a = np.asarray(clip)
            sid = meta["stimulus_id"].iloc[i]
            if a.ndim != 1:
                raise StimulusError(
                    f"clip {sid!r} has shape {a.shape}; stimulus sets hold mono 1-D clips "
                    "(downmix with musiclens.audio.to_mono first)"
                )
            if a.size == 0:
                raise StimulusError(f"clip {sid!r} is empty; remove it or render it again")
            a = a.astype(np.float32, copy=False)
            if not np.all(np.isfinite(a)):
                raise StimulusError(f"clip {sid!r} contains NaN or inf samples; fix the source audio")
            clips.append(a)
        meta["sample_rate"] = int(sample_rate)
        meta["n_samples"] = [c.size for c in clips]
        meta["duration_s"] = meta["n_samples"] / float(sample_rate)
        self._audio = clips
        self.metadata = meta
        self.sample_rate = int(sample_rate)
        self.info: dict[str, Any] = dict(info or {})

    # ------------------------------------------------------------------ basic container
    @property
    def audio(self) -> list[np.ndarray]:
        """The clips, in metadata order (do not modify in place)."""
        return self._audio

    @property
    def ids(self) -> list[str]:
        """Stimulus ids in order."""
        return self.metadata["stimulus_id"].tolist()

    def __len__(self) -> int:
        return len(self._audio)

    def __getitem__(self, key: int | str) -> tuple[np.ndarray, pd.Series]:
        """``(clip, metadata_row)`` by position or by stimulus id."""
        if isinstance(key, str):
            idx = np.flatnonzero(self.metadata["stimulus_id"].to_numpy() == key)
            if idx.size == 0:
                raise StimulusError(f"no stimulus with id {key!r}")
            key = int(idx[0])
        return self._audio[key], self.metadata.iloc[key]

    def __repr__(self) -> str:
        return (
            f"StimulusSet(n={len(self)}, sample_rate={self.sample_rate}, "
            f"source={sorted(set(map(str, self.metadata['source'].dropna())))})"
        )

    def as_array(self) -> np.ndarray:
        """All clips stacked ``[shape=(n_stimuli, n_samples)]``; they must share one length."""
        lengths = {c.size for c in self._audio}
        if len(lengths) != 1:
            raise StimulusError(
                f"clips have {len(lengths)} different lengths; as_array needs equal lengths "
                "(pad or crop them first, or iterate over .audio)"
            )
        return np.stack(self._audio)

    # ------------------------------------------------------------------ hashing
    def content_hash(self) -> str:
        """SHA-256 over the sample rate, the metadata table and every clip's samples.

        Changes when any sample, any metadata value, the order, or the rate changes.
        """
        h = hashlib.sha256()
        h.update(f"musiclens-stimulus-set-v{FORMAT_VERSION}:{self.sample_rate}".encode())
        h.update(self._metadata_csv().encode())
        for clip in self._audio:
            h.update(_clip_hash(clip).encode())
        return h.hexdigest()

    def _metadata_csv(self) -> str:
        meta = self.metadata.reindex(columns=sorted(self.metadata.columns))
        buf = io.StringIO()
        meta.to_csv(buf, index=False, float_format="%.10g", lineterminator="\n")
        return buf.getvalue()

    # ------------------------------------------------------------------ selection
    def take(self, indices: Sequence[int] | np.ndarray) -> StimulusSet:
        """A new set with the clips at ``indices``, in that order."""
        idx = [int(i) for i in np.asarray(indices, dtype=int).ravel()]
        if any(i < 0 or i >= len(self) for i in idx):
            raise StimulusError(f"indices must lie in [0, {len(self)}); got {idx[:5]}...")
        info = dict(self.info)
        info["parent_hash"] = self.info.get("parent_hash", None) or self.content_hash()
        return StimulusSet(
            [self._audio[i] for i in idx],
            self.metadata.iloc[idx].reset_index(drop=True).drop(columns=["n_samples"]),
            sample_rate=self.sample_rate,
            info=info,
        )

    def subset(
        self,
        where: Callable[[pd.DataFrame], Any] | None = None,
        /,
        **equals: Any,
    ) -> StimulusSet:
        """Rows matching every criterion, in their original order.

        Parameters
        ----------
        where
            Optional function of the metadata returning a boolean mask.
        **equals
            ``column=value`` (equality) or ``column=[v1, v2, ...]`` (membership).

        Examples
        --------
        >>> s.subset(family="guitar", midi=range(60, 72))        # doctest: +SKIP
        >>> s.subset(lambda m: m.velocity >= 75)                  # doctest: +SKIP
        """
        mask = np.ones(len(self), dtype=bool)
        if where is not None:
            mask &= np.asarray(where(self.metadata), dtype=bool)
        for col, value in equals.items():
            if col not in self.metadata.columns:
                raise StimulusError(
                    f"unknown metadata column {col!r}; columns are {list(self.metadata.columns)}"
                )
            values = self.metadata[col]
            if isinstance(value, (list, tuple, set, range, np.ndarray, pd.Series)):
                mask &= values.isin(list(value)).to_numpy()
            else:
                mask &= (values == value).fillna(False).to_numpy(dtype=bool)
        if not mask.any():
            raise StimulusError(f"no stimulus matches {equals or 'the given condition'}")
        return self.take(np.flatnonzero(mask))

    def split(
        self,
        *,
        by: str | None = None,
        fractions: Mapping[str, float] | None = None,
        seed: int = 0,
    ) -> dict[str, StimulusSet]:
        """Split into named parts, grouped by a metadata column so no group spans two parts.

        Parameters
        ----------
        by
            Column whose values are kept together (e.g. ``"instrument"``); ``None`` splits clips.
        fractions
            ``{part: fraction}``, summing to 1; default ``{"train": 0.8, "test": 0.2}``.
        seed
            Seed of the random assignment of groups to parts.

        Returns
        -------
        dict
            ``{part: StimulusSet}``; every part has at least one group.
        """
        fractions = dict(fractions or {"train": 0.8, "test": 0.2})
        total = sum(fractions.values())
        if any(f <= 0 for f in fractions.values()) or not math.isclose(total, 1.0, abs_tol=1e-6):
            raise StimulusError(f"split fractions must be positive and sum to 1; got {fractions}")
        if by is None:
            groups = np.arange(len(self)).astype(str)
        else:
            if by not in self.metadata.columns:
                raise StimulusError(f"cannot split by unknown column {by!r}; columns are {list(self.metadata.columns)}")
            groups = self.metadata[by].astype(str).to_numpy()
        unique = np.array(sorted(set(groups)))
        if unique.size < len(fractions):
            raise StimulusError(
                f"{unique.size} distinct {by or 'clip'} values cannot fill {len(fractions)} parts; "
                "use fewer parts or group by another column"
            )
        rng = np.random.default_rng(seed)
        order = unique[rng.permutation(unique.size)]
        # Largest-remainder allocation with at least one group per part.
        names = list(fractions)
        raw = np.array([fractions[n] * unique.size for n in names])
        counts = np.maximum(1, np.floor(raw).astype(int))
        while counts.sum() > unique.size:
            counts[np.argmax(counts)] -= 1
        while counts.sum() < unique.size:
            counts[np.argmax(raw - counts)] += 1
        out: dict[str, StimulusSet] = {}
        start = 0
        for name, n in zip(names, counts):
            chosen = set(order[start:start + n])
            start += n
            out[name] = self.take(np.flatnonzero(np.isin(groups, list(chosen))))
        return out

    # ------------------------------------------------------------------ persistence
    def save(self, folder: str | Path, *, overwrite: bool = False) -> Path:
        """Write the set to ``folder`` atomically (see the module docstring for the layout).

        ``overwrite`` replaces an earlier stimulus set there; a folder musiclens did not make, or
        another kind of musiclens output, is never replaced (:func:`~musiclens.fsutil.check_out`).
        """
        import soundfile as sf

        folder = Path(folder)
        with atomic_dir(folder, overwrite=overwrite, kind="stimuli") as tmp:
            (tmp / "audio").mkdir()
            clip_hashes: dict[str, str] = {}
            for sid, clip in zip(self.ids, self._audio):
                sf.write(tmp / "audio" / f"{sid}.wav", clip, self.sample_rate, subtype="FLOAT")
                clip_hashes[sid] = _clip_hash(clip)
            table = _write_table(self.metadata, tmp)
            manifest = {
                "format": "musiclens.StimulusSet",
                "format_version": FORMAT_VERSION,
                "n_stimuli": len(self),
                "sample_rate": self.sample_rate,
                "content_hash": self.content_hash(),
                "metadata_file": table,
                "seed": self.info.get("seed"),
                "info": self.info,
                "environment": environment(),
                "clip_hashes": clip_hashes,
            }
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
        logger.info("saved %d stimuli to %s", len(self), folder)
        return folder

    @staticmethod
    def read_metadata(folder: str | Path) -> pd.DataFrame:
        """The metadata table of a saved set, without reading any audio."""
        folder = Path(folder)
        mpath = folder / "manifest.json"
        if not mpath.is_file():
            raise DatasetError(f"{mpath} is missing: {folder} is not a complete stimulus set; save it again")
        return _read_table(folder / _read_manifest(mpath).get("metadata_file", "metadata.parquet"))

    @classmethod
    def load(cls, folder: str | Path, *, verify: bool = True) -> StimulusSet:
        """Read a folder written by :meth:`save`, validating every file.

        Parameters
        ----------
        folder
            The stimulus-set folder.
        verify
            Check each clip's hash and the set's content hash against the manifest.

        Raises
        ------
        DatasetError
            The folder, its manifest, its metadata, or any audio file is missing or corrupt; the
            message names the file.
        """
        import soundfile as sf

        folder = Path(folder)
        if not folder.is_dir():
            raise DatasetError(f"stimulus-set folder {folder} does not exist; create it with `musiclens stimuli notes`")
        mpath = folder / "manifest.json"
        if not mpath.is_file():
            raise DatasetError(f"{mpath} is missing: {folder} is not a complete stimulus set; save it again")
        manifest = _read_manifest(mpath)
        if manifest.get("format") != "musiclens.StimulusSet":
            raise DatasetError(f"{mpath} does not describe a musiclens StimulusSet")
        meta = _read_table(folder / manifest.get("metadata_file", "metadata.parquet"))
        try:
            sr = int(manifest["sample_rate"])
        except (KeyError, TypeError, ValueError):
            sr = 0
        if sr <= 0:
            raise DatasetError(f"{mpath} has no valid 'sample_rate' (got {manifest.get('sample_rate')!r}); "
                               "the set is corrupt or was edited by hand: save it again")
        clips: list[np.ndarray] = []
        problems: list[str] = []
        hashes = manifest.get("clip_hashes", {})
        for sid in meta["stimulus_id"].astype(str):
            path = folder / "audio" / f"{sid}.wav"
            if not path.is_file():
                problems.append(f"missing audio file {path}")
                continue
            try:
                data, file_sr = sf.read(path, dtype="float32", always_2d=False)
            except Exception as err:  # soundfile raises several types for corrupt files
                problems.append(f"corrupt audio file {path} ({err})")
                continue
            if file_sr != sr or data.ndim != 1:
                problems.append(f"audio file {path} is {file_sr} Hz with shape {data.shape}; expected mono at {sr} Hz")
                continue
            if verify and sid in hashes and _clip_hash(data) != hashes[sid]:
                problems.append(f"audio file {path} does not match its hash in the manifest (modified or corrupt)")
                continue
            clips.append(data)
        if problems:
            shown = "\n  ".join(problems[:10])
            more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
            raise DatasetError(
                f"stimulus set {folder} is damaged ({len(problems)} problem(s)):\n  {shown}{more}\n"
                "Render or copy the set again."
            )
        base = meta.drop(columns=[c for c in ("n_samples",) if c in meta.columns])
        out = cls(clips, base, sample_rate=sr, info=manifest.get("info", {}))
        if verify and manifest.get("content_hash") and out.content_hash() != manifest["content_hash"]:
            raise DatasetError(
                f"{folder}: metadata does not match the manifest's content hash (edited by hand?); "
                "save the set again"
            )
        return out


def _write_table(meta: pd.DataFrame, folder: Path) -> str:
    try:
        meta.to_parquet(folder / "metadata.parquet", index=False)
        return "metadata.parquet"
    except ImportError:  # pyarrow absent
        meta.to_csv(folder / "metadata.csv", index=False)
        return "metadata.csv"


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DatasetError(f"{path} is not valid JSON ({err}); the set is corrupt, save it again") from err
    if not isinstance(manifest, dict):
        raise DatasetError(f"{path} is not a JSON object; the set is corrupt, save it again")
    return manifest


def _read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DatasetError(f"metadata file {path} is missing; the stimulus set is incomplete, save it again")
    try:
        table = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception as err:
        raise DatasetError(f"metadata file {path} is corrupt ({err}); save the set again") from err
    if "stimulus_id" not in table.columns:
        raise DatasetError(f"metadata file {path} has no 'stimulus_id' column (columns: {', '.join(map(str, table.columns))}); "
                           "every stimulus set names its stimuli there: save the set again with StimulusSet.save")
    if table["stimulus_id"].isna().any() or table["stimulus_id"].astype(str).duplicated().any():
        raise DatasetError(f"metadata file {path} has missing or repeated stimulus ids; each stimulus needs one "
                           "unique id: save the set again")
    return table
