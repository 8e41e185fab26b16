"""Real recordings with MIDI annotations: a folder of audio/MIDI pairs, and the shared source type.

:class:`AudioMidiSource` turns ``(audio file, MIDI file)`` items into corpus pieces: the audio is
read and resampled, the labels come from the MIDI (notes with sustain-pedal extension by
default, beats, key).  The MAESTRO reader and the mirdata bridge produce the same items.

A pairs folder holds ``<name>.wav`` (or ``.flac``, ``.ogg``) next to ``<name>.mid`` (or
``.midi``), in any sub-folder layout.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from musiclens.audio import load_audio
from musiclens.corpora.base import Piece
from musiclens.corpora.midi import labels_from_midi, load_midi
from musiclens.errors import AudioError, ConfigError, DatasetError

__all__ = ["AUDIO_EXTENSIONS", "MIDI_EXTENSIONS", "find_pairs", "apply_sustain", "AudioMidiSource"]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
MIDI_EXTENSIONS = (".mid", ".midi")


def find_pairs(folder: str | os.PathLike[str], *, skip_bad: bool = False) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Audio/MIDI pairs under ``folder``, matched by relative path without extension.

    Returns
    -------
    items
        ``[{"id", "audio", "midi", "meta"}]`` sorted by id.
    unpaired
        ``[{"source", "error"}]`` for files without a partner (only with ``skip_bad``).

    Raises
    ------
    DatasetError
        The folder is missing or has no pairs; or, without ``skip_bad``, a file has no partner.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DatasetError(f"pairs folder {root} does not exist")
    audio: dict[str, Path] = {}
    midi: dict[str, Path] = {}
    for p in sorted(root.rglob("*")):
        key = str(p.relative_to(root).with_suffix(""))
        if p.suffix.lower() in AUDIO_EXTENSIONS:
            audio[key] = p
        elif p.suffix.lower() in MIDI_EXTENSIONS:
            midi[key] = p
    unpaired = [{"source": str(p), "error": f"{p} has no matching {'MIDI' if k in audio else 'audio'} file"}
                for k, p in sorted({**{k: audio[k] for k in audio.keys() - midi.keys()},
                                    **{k: midi[k] for k in midi.keys() - audio.keys()}}.items())]
    if unpaired and not skip_bad:
        raise DatasetError(f"{unpaired[0]['error']} (and {len(unpaired) - 1} more unpaired files); "
                           "add the partner files, or pass skip_bad=True (--skip-bad) to record and skip them")
    items = [{"id": k.replace(os.sep, "__"), "audio": str(audio[k]), "midi": str(midi[k]), "meta": {}}
             for k in sorted(audio.keys() & midi.keys())]
    if not items:
        raise DatasetError(f"no audio/MIDI pairs (same name, {'/'.join(AUDIO_EXTENSIONS)} + .mid) under {root}")
    return items, unpaired


def apply_sustain(pm: Any, *, threshold: int = 64) -> Any:
    """Extend note offsets while the sustain pedal (CC 64 >= ``threshold``) is down, in place.

    A note released under the pedal sounds until the pedal lifts, or until the same pitch is
    struck again on that instrument, whichever comes first (the convention of MAESTRO
    transcription labels).
    """
    for inst in pm.instruments:
        cc = sorted((c.time, c.value >= threshold) for c in inst.control_changes if c.number == 64)
        if not cc:
            continue
        downs: list[tuple[float, float]] = []
        start = None
        for t, down in cc:
            if down and start is None:
                start = t
            elif not down and start is not None:
                downs.append((start, t))
                start = None
        if start is not None:
            downs.append((start, max(pm.get_end_time(), start)))
        notes = sorted(inst.notes, key=lambda n: (n.pitch, n.start))
        for i, n in enumerate(notes):
            for a, b in downs:
                if a <= n.end < b:
                    n.end = b
                    break
            if i + 1 < len(notes) and notes[i + 1].pitch == n.pitch and notes[i + 1].start < n.end:
                n.end = max(notes[i + 1].start, n.start + 1e-3)
    return pm


@dataclass
class AudioMidiSource:
    """Recordings with aligned MIDI (a corpus source).

    Attributes
    ----------
    items
        ``[{"id", "audio", "midi", "meta"}]``.
    sample_rate
        Output rate, Hz (audio is resampled with soxr).
    sustain
        Extend note offsets under the sustain pedal (:func:`apply_sustain`).
    name
        Source type recorded in the fingerprint (``"pairs"``, ``"maestro"``, ``"mirdata:<name>"``).
    extra
        Descriptive fields recorded in the fingerprint (dataset root, splits...).
    """

    items: list[dict[str, Any]]
    sample_rate: int = 16000
    sustain: bool = True
    name: str = "pairs"
    extra: dict[str, Any] = field(default_factory=dict)
    kind: str = "music"

    def __post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise ConfigError(f"sample_rate must be positive, got {self.sample_rate}")

    def __len__(self) -> int:
        return len(self.items)

    def fingerprint(self) -> dict[str, Any]:
        return {"type": self.name, "items": [[i["id"], i["audio"], i["midi"]] for i in self.items],
                "sustain": self.sustain, **self.extra}

    def describe(self, index: int) -> str:
        it = self.items[index]
        return f"{it['audio']} + {it['midi']}"

    def make(self, index: int) -> Piece:
        it = self.items[index]
        for kind in ("audio", "midi"):
            if not Path(it[kind]).is_file():
                raise DatasetError(f"{kind} file {it[kind]} of item {it['id']!r} is missing")
        pm = load_midi(it["midi"])
        if self.sustain:
            apply_sustain(pm)
        try:
            audio = load_audio(it["audio"], sample_rate=self.sample_rate)
        except AudioError as err:
            raise DatasetError(f"cannot use audio file {it['audio']}: {err}") from err
        duration = audio.samples.size / self.sample_rate
        labels = labels_from_midi(pm, duration_s=duration, estimate_key_if_missing=False)
        labels.notes = labels.notes[labels.notes["onset"] < duration].reset_index(drop=True)
        labels.notes["offset"] = labels.notes["offset"].clip(upper=duration)
        labels.sources["notes"] = "midi (sustain-extended)" if self.sustain else "midi"
        return Piece(id=it["id"], audio=audio.samples, sample_rate=self.sample_rate, labels=labels.to_dict(),
                     meta={**it.get("meta", {}), "audio_file": it["audio"], "midi_file": it["midi"],
                           "conversions": audio.conversions})
