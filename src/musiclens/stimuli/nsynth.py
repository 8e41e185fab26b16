"""Reader for the NSynth dataset in its official layout.

Layout (as distributed)::

    nsynth-{train,valid,test}/
        examples.json          {note_str: {"note", "note_str", "instrument", "instrument_str",
                                "pitch", "velocity", "sample_rate", "qualities",
                                "qualities_str", "instrument_family", "instrument_family_str",
                                "instrument_source", "instrument_source_str"}}
        audio/<note_str>.wav   4 s, 16 kHz, mono, 16-bit

mirdata has no NSynth loader, so musiclens reads this layout itself; it never downloads.

Instrument selection is deterministic and recorded in the set's info (and so in its manifest):
within each family, instruments are sorted by ``instrument_str``; those that have *every*
requested pitch (at every requested velocity) are kept, and the first ``n_per_family`` are
taken (PAPERS.md §1.4: "sort by instrument_str, take the first 10 with full coverage").
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from musiclens.audio import resample
from musiclens.errors import DatasetError, StimulusError
from musiclens.stimuli.stimulus_set import StimulusSet, note_name

__all__ = ["read_nsynth", "find_nsynth_split", "NSYNTH_FIELDS"]

logger = logging.getLogger(__name__)

#: Fields every record of examples.json carries.
NSYNTH_FIELDS: tuple[str, ...] = (
    "note", "note_str", "instrument", "instrument_str", "pitch", "velocity", "sample_rate",
    "qualities", "qualities_str", "instrument_family", "instrument_family_str",
    "instrument_source", "instrument_source_str",
)

SELECTION_RULE = (
    "per family: sort instruments by instrument_str; keep those with every requested pitch at every "
    "requested velocity (any velocity when none is requested); take the first n_per_family"
)


def find_nsynth_split(root: str | os.PathLike[str], split: str | None = None) -> Path:
    """The folder holding ``examples.json``: ``root`` itself or ``root/nsynth-<split>``."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"NSynth folder {root} does not exist; point to the folder that holds examples.json")
    candidates = [root] if split is None else [root / f"nsynth-{split}", root]
    for c in candidates:
        if (c / "examples.json").is_file():
            return c
    found = sorted(p.parent.name for p in root.glob("nsynth-*/examples.json"))
    extra = f" Splits found under it: {', '.join(found)} (pass --split)." if found else ""
    raise DatasetError(
        f"no examples.json in {root}" + (f" or {root / f'nsynth-{split}'}" if split else "")
        + f"; NSynth's layout is nsynth-<split>/examples.json + audio/<note_str>.wav.{extra}"
    )


def _as_set(values: Iterable[Any] | Any | None) -> set[Any] | None:
    if values is None:
        return None
    if isinstance(values, (str, int, np.integer)):
        return {values}
    return set(values)


def read_nsynth(
    root: str | os.PathLike[str],
    *,
    split: str | None = None,
    families: Sequence[str] | str | None = ("flute", "guitar", "keyboard"),
    midi: Sequence[int] | None = tuple(range(60, 96)),
    velocities: Sequence[int] | int | None = 100,
    sources: Sequence[str] | str | None = None,
    n_per_family: int | None = 10,
    require_full_coverage: bool = True,
    sample_rate: int | None = None,
    progress: bool = True,
) -> StimulusSet:
    """Select notes from an NSynth split and load them as a :class:`StimulusSet`.

    Parameters
    ----------
    root
        The split folder (with ``examples.json``) or its parent (then give ``split``).
    split
        ``"train"``, ``"valid"`` or ``"test"`` when ``root`` is the parent.
    families
        ``instrument_family_str`` values to keep (``None``: all).
    midi
        Pitches to keep (``None``: all).
    velocities
        Velocities to keep (``None``: all).
    sources
        ``instrument_source_str`` values (``"acoustic"``, ``"electronic"``, ``"synthetic"``).
    n_per_family
        Instruments per family after the coverage rule (``None``: all that qualify).
    require_full_coverage
        Keep only instruments that have every requested pitch (see the module docstring).
    sample_rate
        Resample to this rate (recorded); default: keep NSynth's 16 kHz.

    Raises
    ------
    DatasetError
        Missing ``examples.json``, malformed records, missing or corrupt audio (named).
    StimulusError
        Nothing matches the selection, or a family has fewer qualifying instruments than asked.
    """
    import soundfile as sf

    if n_per_family is not None and (isinstance(n_per_family, bool) or not isinstance(n_per_family, int)
                                     or n_per_family < 1):
        raise StimulusError(f"n_per_family must be a whole number >= 1 (or None for all), got {n_per_family!r}; "
                            "on the command line --n-per-family 0 keeps every instrument that qualifies")
    folder = find_nsynth_split(root, split)
    try:
        examples = json.loads((folder / "examples.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DatasetError(f"{folder / 'examples.json'} is not valid JSON ({err})") from err
    if not isinstance(examples, dict) or not examples:
        raise DatasetError(f"{folder / 'examples.json'} holds no examples (expected a mapping note_str -> record)")
    table = pd.DataFrame.from_dict(examples, orient="index")
    missing = [f for f in ("note_str", "instrument_str", "pitch", "velocity", "instrument_family_str",
                           "instrument_source_str") if f not in table.columns]
    if missing:
        raise DatasetError(f"{folder / 'examples.json'} records lack the fields {missing}; is this NSynth?")
    fam, vel, src = _as_set(families), _as_set(velocities), _as_set(sources)
    pitches = None if midi is None else {int(m) for m in midi}
    keep = np.ones(len(table), dtype=bool)
    if fam is not None:
        keep &= table["instrument_family_str"].isin(fam).to_numpy()
    if pitches is not None:
        keep &= table["pitch"].isin(pitches).to_numpy()
    if vel is not None:
        keep &= table["velocity"].isin(vel).to_numpy()
    if src is not None:
        keep &= table["instrument_source_str"].isin(src).to_numpy()
    sel = table[keep]
    if sel.empty:
        raise StimulusError(
            f"no NSynth note matches families={families}, pitches={'all' if midi is None else f'{min(pitches)}-{max(pitches)}'}, "
            f"velocities={velocities}, sources={sources}; loosen the selection"
        )
    chosen: list[str] = []
    excluded: dict[str, int] = {}
    for family, group in sorted(sel.groupby("instrument_family_str"), key=lambda kv: kv[0]):
        qualified = []
        for inst in sorted(group["instrument_str"].unique()):
            notes = group[group["instrument_str"] == inst]
            if require_full_coverage and pitches is not None:
                have = set(zip(notes["pitch"], notes["velocity"]))
                needed_v = vel if vel is not None else None
                if needed_v is not None:
                    full = all((p, v) in have for p in pitches for v in needed_v)
                else:
                    full = pitches <= set(notes["pitch"])
                if not full:
                    continue
            qualified.append(inst)
        excluded[str(family)] = int(group["instrument_str"].nunique() - len(qualified))
        if n_per_family is not None:
            if len(qualified) < n_per_family:
                raise StimulusError(
                    f"family {family!r} has only {len(qualified)} instrument(s) with full coverage of the "
                    f"requested pitches (needed {n_per_family}); lower n_per_family, narrow the pitch range, "
                    "or pass require_full_coverage=False"
                )
            qualified = qualified[:n_per_family]
        chosen.extend(qualified)
    sel = sel[sel["instrument_str"].isin(chosen)].sort_values(["instrument_family_str", "instrument_str", "pitch", "velocity"])
    clips: list[np.ndarray] = []
    problems: list[str] = []
    conversions: list[str] = []
    file_sr: int | None = None
    for note in tqdm(sel["note_str"], desc="read NSynth", unit="note", disable=not progress):
        path = folder / "audio" / f"{note}.wav"
        if not path.is_file():
            problems.append(f"missing {path}")
            continue
        try:
            data, sr = sf.read(path, dtype="float32", always_2d=False)
        except Exception as err:
            problems.append(f"corrupt {path} ({err})")
            continue
        if data.ndim != 1 or data.size == 0 or not np.all(np.isfinite(data)):
            problems.append(f"unusable {path} (shape {data.shape}, must be mono, non-empty and finite)")
            continue
        if file_sr is not None and sr != file_sr:
            problems.append(f"{path} is {sr} Hz while earlier files are {file_sr} Hz")
            continue
        file_sr = sr
        clips.append(data)
    if problems:
        shown = "\n  ".join(problems[:10])
        raise DatasetError(f"NSynth folder {folder} has {len(problems)} bad audio file(s):\n  {shown}\n"
                           "Restore the files from the original archive.")
    assert file_sr is not None
    out_sr = file_sr
    if sample_rate is not None and sample_rate != file_sr:
        clips = [resample(c, orig_sr=file_sr, target_sr=sample_rate) for c in clips]
        conversions.append(f"resampled {file_sr} Hz -> {sample_rate} Hz (soxr VHQ)")
        out_sr = sample_rate
    pitch = sel["pitch"].astype(int).to_numpy()
    meta = pd.DataFrame({
        "stimulus_id": sel["note_str"].astype(str).to_numpy(),
        "midi": pitch,
        "pitch_class": pitch % 12,
        "octave": pitch // 12 - 1,
        "note_name": [note_name(p) for p in pitch],
        "instrument": sel["instrument_str"].astype(str).to_numpy(),
        "family": sel["instrument_family_str"].astype(str).to_numpy(),
        "velocity": sel["velocity"].astype(int).to_numpy(),
        "source": "nsynth",
        "instrument_source": sel["instrument_source_str"].astype(str).to_numpy(),
        "qualities": [",".join(q) if isinstance(q, list) else "" for q in sel.get("qualities_str", [[]] * len(sel))],
        "nsynth_split": folder.name,
    })
    info = {
        "generator": "nsynth",
        "folder": str(folder),
        "selection": {
            "families": None if fam is None else sorted(fam),
            "midi": None if pitches is None else sorted(pitches),
            "velocities": None if vel is None else sorted(vel),
            "sources": None if src is None else sorted(src),
            "n_per_family": n_per_family,
            "require_full_coverage": require_full_coverage,
            "rule": SELECTION_RULE,
            "instruments": sorted(chosen),
            "excluded_instruments_per_family": excluded,
        },
        "conversions": conversions,
        "seed": None,
    }
    return StimulusSet(clips, meta, sample_rate=out_sr, info=info)
