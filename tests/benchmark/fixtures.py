"""Tiny datasets in MARBLE's official layouts, with generated audio whose features carry the labels.

Every dataset is written under ``<root>/<name>/`` exactly as distributed (file names, annotation
formats, split lists), with short clips: a class is a tone of its own frequency plus a little
noise, so mean MFCCs separate the classes and a probe beats chance.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import soundfile as sf

from musiclens.probe.datasets import GTZAN_GENRES


def tone(freq: float, *, seconds: float, sr: int, seed: int, noise: float = 0.02, harmonics: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = sum(np.sin(2 * np.pi * freq * h * t + rng.uniform(0, 2 * np.pi)) / h for h in range(1, harmonics + 1))
    return (0.3 * x / harmonics + noise * rng.standard_normal(t.size)).astype(np.float32)


def _write(path: Path, x: np.ndarray, sr: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = {".mp3": "MP3", ".wav": "WAV", ".au": "AU"}[path.suffix]
    sf.write(str(path), x, sr, format=fmt, **({} if fmt == "MP3" else {"subtype": "PCM_16"}))


def make_gtzan(root: Path, *, per_genre: tuple[int, int, int] = (3, 1, 2), sr: int = 22050,
               seconds: float = 1.0) -> Path:
    """``gtzan/genres_original/<genre>/<genre>.000NN.wav`` + the three fail-filtered lists."""
    base = root / "gtzan"
    lists: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
    for g, genre in enumerate(GTZAN_GENRES):
        k = 0
        for split, n in zip(lists, per_genre):
            for _ in range(n):
                name = f"{genre}.{k:05d}"
                _write(base / "genres_original" / genre / f"{name}.wav",
                       tone(110 * 2 ** (g / 3), seconds=seconds, sr=sr, seed=100 * g + k), sr)
                lists[split].append(f"{genre}/{name}.au")   # the published lists name the .au originals
                k += 1
        # one track in no list: left out, as MARBLE does
        _write(base / "genres_original" / genre / f"{genre}.{k:05d}.wav", tone(50, seconds=seconds, sr=sr, seed=1), sr)
    for split, fname in (("train", "train_filtered.txt"), ("valid", "valid_filtered.txt"),
                         ("test", "test_filtered.txt")):
        (base / fname).write_text("\n".join(lists[split]) + "\n")
    return base


NSYNTH_PITCHES = (48, 55, 60, 67)
NSYNTH_FAMS = (("keyboard", 4), ("string", 8), ("flute", 2))


def make_nsynth(root: Path, *, sr: int = 16000, seconds: float = 0.5) -> Path:
    """``nsynth/nsynth-{train,valid,test}/examples.json + audio/<note_str>.wav``."""
    base = root / "nsynth"
    for s, (split, n_inst) in enumerate((("train", 3), ("valid", 1), ("test", 2))):
        records = {}
        for fam, n_harm in NSYNTH_FAMS:
            for i in range(n_inst):
                inst = f"{fam}_acoustic_{s}{i:02d}"
                for p in NSYNTH_PITCHES:
                    note = f"{inst}-{p:03d}-100"
                    freq = 440 * 2 ** ((p - 69) / 12)
                    _write(base / f"nsynth-{split}" / "audio" / f"{note}.wav",
                           tone(freq, seconds=seconds, sr=sr, seed=p + 7 * i + 31 * s, harmonics=n_harm), sr)
                    records[note] = {"note": len(records), "note_str": note, "instrument": i, "instrument_str": inst,
                                     "pitch": p, "velocity": 100, "sample_rate": sr, "qualities": [0] * 10,
                                     "qualities_str": [], "instrument_family": 0, "instrument_family_str": fam,
                                     "instrument_source": 0, "instrument_source_str": "acoustic"}
        (base / f"nsynth-{split}" / "examples.json").write_text(json.dumps(records))
    return base


GS_KEYS = ("A minor", "C major", "Eb major", "F# minor")


def make_giantsteps(root: Path, *, sr: int = 22050, seconds: float = 1.0) -> Path:
    """GiantSteps key (test) and GiantSteps-MTG-keys (train/valid) folders, mp3 audio."""
    base = root / "giantsteps"
    test = base / "giantsteps-key-dataset"
    tonic_hz = {"A": 220.0, "C": 261.63, "Eb": 311.13, "F#": 369.99}
    for i in range(8):
        key = GS_KEYS[i % 4]
        did = 1000 + i
        (test / "annotations" / "key").mkdir(parents=True, exist_ok=True)
        (test / "annotations" / "key" / f"{did}.LOFI.key").write_text(key.lower() if i % 2 else key)
        _write(test / "audio" / f"{did}.LOFI.mp3", tone(tonic_hz[key.split()[0]], seconds=seconds, sr=sr, seed=i), sr)
    mtg = base / "giantsteps-mtg-key-dataset"
    (mtg / "annotations").mkdir(parents=True, exist_ok=True)
    ann, meta = [], []
    for i in range(40):
        key = GS_KEYS[i % 4]
        did = 5000 + i
        tonic = {"Eb": "D#"}.get(key.split()[0], key.split()[0])   # sharps in MANUAL KEY are mapped to flats
        ann.append({"ID": did, "MANUAL KEY": f"{tonic} {key.split()[1]}", "C": 2 if i != 39 else 1})
        meta.append({"ID": did, "ARTIST": f"Artist {i % 13}, Guest {i % 5}" if i % 7 == 0 else f"Artist {i % 13}"})
        _write(mtg / "audio" / f"{did}.LOFI.mp3", tone(tonic_hz[key.split()[0]], seconds=seconds, sr=sr, seed=50 + i), sr)
    for fname, rows in (("annotations.txt", ann), ("beatport_metadata.txt", meta)):
        with open(mtg / "annotations" / fname, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter="\t")
            w.writeheader()
            w.writerows(rows)
    return base


MTT_TAGS = ("guitar", "classical", "slow", "techno", "strings", "drums")


def make_mtt(root: Path, *, per_folder: int = 3, sr: int = 16000, seconds: float = 1.0) -> Path:
    """``mtt/annotations_final.csv`` (tab-separated) + ``mtt/<0-f>/*.mp3``; tags follow the tones."""
    base = root / "mtt"
    rows = []
    clip = 0
    for folder in "0123456789abcdef":
        for j in range(per_folder):
            rng = np.random.default_rng(clip)
            tags = rng.random(len(MTT_TAGS)) < np.linspace(0.6, 0.25, len(MTT_TAGS))
            if not tags.any():
                tags[clip % len(MTT_TAGS)] = True
            x = sum(tone(200 * 1.5 ** k, seconds=seconds, sr=sr, seed=clip * 10 + k) for k in np.flatnonzero(tags))
            rel = f"{folder}/artist_{clip}-album-{j:02d}-song-0-29.mp3"
            _write(base / rel, np.asarray(x, dtype=np.float32) / max(1, tags.sum()), sr)
            rows.append([str(clip), *[str(int(t)) for t in tags], rel])
            clip += 1
    with open(base / "annotations_final.csv", "w") as fh:
        fh.write("\t".join(["clip_id", *MTT_TAGS, "mp3_path"]) + "\n")
        for r in rows:
            fh.write("\t".join(r) + "\n")
    return base


def make_emomusic(root: Path, *, n: int = 40, sr: int = 16000, seconds: float = 6.5) -> Path:
    """``emomusic/clips_45seconds/<id>.mp3`` + ``annotations/{songs_info,static_annotations}.csv``.

    Clips are longer than the 5 s window (windowed extraction); arousal follows the tone's
    frequency, valence its loudness.
    """
    base = root / "emomusic"
    (base / "annotations").mkdir(parents=True, exist_ok=True)
    info, static = [], []
    rng = np.random.default_rng(0)
    for i in range(n):
        sid = i + 2
        a, v = rng.uniform(1, 9), rng.uniform(1, 9)
        x = tone(150 * 2 ** (a / 4), seconds=seconds, sr=sr, seed=i) * (0.2 + v / 9)
        _write(base / "clips_45seconds" / f"{sid}.mp3", x, sr)
        info.append({"song_id": sid, "file_name": f"{sid}.mp3", "Artist": f" Artist {chr(97 + i % 26)}{chr(97 + i // 26)} ", "Song title": f"song {i}",
                     "start of the segment (min.sec)": "0.0", "end of the segment (min.sec)": "0.45",
                     "Mediaeval 2013 set": "evaluation" if i % 4 == 0 else "development"})
        static.append({"song_id": sid, "mean_arousal": f"{a:.3f}", "std_arousal": "1.0", "mean_valence": f"{v:.3f}",
                       "std_valence": "1.0"})
    for fname, rows in (("songs_info.csv", info), ("static_annotations.csv", static)):
        with open(base / "annotations" / fname, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    return base


VS_SINGERS = ("f1", "f2", "f3", "m1", "m2", "m3")
VS_TECHS = ("belt", "breathy", "vibrato", "forte")


def make_vocalset(root: Path, *, sr: int = 16000, seconds: float = 6.5) -> Path:
    """``vocalset/FULL/<singer>/<context>/<technique>/<singer>_<context>_<technique>_<vowel>.wav``."""
    base = root / "vocalset"
    for s, singer in enumerate(VS_SINGERS):
        for t, tech in enumerate(VS_TECHS):
            for v, vowel in enumerate("aeiou"):
                f = 150 * 2 ** (s / 6) * (1 + 0.5 * t)
                _write(base / "FULL" / singer / "scales" / tech / f"{singer}_scales_{tech}_{vowel}.wav",
                       tone(f, seconds=seconds, sr=sr, seed=100 * s + 10 * t + v, harmonics=1 + t), sr)
    return base


ALL = {"gtzan": make_gtzan, "nsynth": make_nsynth, "giantsteps": make_giantsteps, "mtt": make_mtt,
       "emomusic": make_emomusic, "vocalset": make_vocalset}
