"""Readers for MARBLE's datasets in their official, as-distributed layouts (nothing is downloaded).

========================  ===========================================================================
reader (tasks)            layout under ``<data-root>/<folder>``
========================  ===========================================================================
``gtzan`` (gtzan)         ``gtzan/`` = ``genres_original/<genre>/<genre>.000NN.wav`` (or ``genres/``,
                          ``.au``) + the fail-filtered split lists ``train_filtered.txt``,
                          ``valid_filtered.txt``, ``test_filtered.txt`` (Kereliuk, Sturm & Larsen
                          2015, as used by MARBLE; published with ``coreyker/dnn-mgr``, folder
                          ``gtzan/``).  musiclens cannot download them and no installed package ships
                          them: put them in ``gtzan/`` (or ``gtzan/splits/``) or pass ``split_dir``.
``nsynth`` (nsynth-pitch, ``nsynth/`` = ``nsynth-{train,valid,test}/examples.json + audio/<note>.wav``;
nsynth-instrument)        the official splits; 128 pitch classes, 11 families.
``giantsteps`` (giant-    ``giantsteps/`` = ``giantsteps-key-dataset/{audio/<id>.LOFI.mp3,
steps-key)                annotations/key/<id>.LOFI.key}`` (test) and ``giantsteps-mtg-key-dataset/
                          {audio/<id>.LOFI.mp3, annotations/{annotations.txt, beatport_metadata.txt}}``
                          (train/valid: confidence 2 and single keys only; artists hashed 100:16 into
                          train/valid with their collaborators, as MARBLE/jukemir).
``mtt`` (mtt)             ``mtt/`` = ``annotations_final.csv`` (tab-separated) + ``0/ ... f/*.mp3``;
                          the 50 most frequent tags; folders 0-b train, c valid, d-f test (12:1:3).
``emomusic`` (emomusic)   ``emomusic/`` = ``clips_45seconds/<song_id>.mp3`` + ``songs_info.csv`` and
                          ``static_annotations.csv`` (in ``emomusic/`` or ``emomusic/annotations/``);
                          MediaEval 2013 "evaluation" = test, the rest hashed by artist 8:2 into
                          train/valid (as MARBLE/jukemir); targets [arousal, valence].
``vocalset`` (vocalset-   ``vocalset/FULL/<singer>/<context>/<technique>/*.wav``; 3 s segments
singer, vocalset-tech.)   (remainders dropped).  Technique: 10 techniques, singers f2 f8 m3 m5 m10 are
                          the test set, the other recordings split 60:40 train/valid by recording.
                          Singer: 20 singers, recordings split 48:32:20 (seeded, by recording).
========================  ===========================================================================

Departures from MARBLE, stated: VocalSet segments are cut without MARBLE's VAD silence removal
and per-segment normalisation; GiantSteps tracks are one item each (MARBLE cuts 30 s clips; here
the 30 s windows are averaged into one feature per track); the VocalSet random splits use
musiclens's seeded grouped split, so their membership differs from MARBLE's files.

mirdata 1.0 is installed but its loaders need index files downloaded from Zenodo
(``musiclens.corpora.mirdata_local`` works around it for MAESTRO); these layouts are simple
enough to read directly, so mirdata is not used here.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from musiclens.benchmark.dataset import DATASETS, BenchmarkDataset, check_audio, finish_dataset
from musiclens.benchmark.tasks import BenchmarkTask
from musiclens.errors import DatasetError
from musiclens.probe.datasets import GTZAN_GENRES
from musiclens.probe.splits import grouped_split
from musiclens.probe.tasks import KEY_CLASSES

__all__ = ["read_gtzan_benchmark", "read_nsynth_benchmark", "read_giantsteps", "read_mtt", "read_emomusic",
           "read_vocalset", "NSYNTH_FAMILIES", "VOCALSET_TECHNIQUES", "VOCALSET_TECH_TEST_SINGERS", "normalise_key"]

logger = logging.getLogger(__name__)

NSYNTH_FAMILIES = ("bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ", "reed", "string", "synth_lead",
                   "vocal")
VOCALSET_TECHNIQUES = ("belt", "breathy", "inhaled", "lip_trill", "spoken", "straight", "trill", "trillo", "vibrato",
                       "vocal_fry")
VOCALSET_ALL_TECHNIQUES = VOCALSET_TECHNIQUES + ("fast_forte", "fast_piano", "forte", "messa", "pp", "slow_forte",
                                                 "slow_piano")
VOCALSET_TECH_TEST_SINGERS = ("f2", "f8", "m3", "m5", "m10")
VOCALSET_SINGERS = tuple(f"f{i}" for i in range(1, 10)) + tuple(f"m{i}" for i in range(1, 12))
_AUDIO_EXT = (".wav", ".au", ".flac", ".mp3", ".ogg")
_SPLIT_SEED = 0   # fixed: dataset splits never depend on the probe seed


def _need_dir(path: Path, dataset: str, layout: str) -> Path:
    if not path.is_dir():
        raise DatasetError(f"{dataset}: folder {path} does not exist. Expected layout: {layout}")
    return path


def _two_way_split(groups: np.ndarray, *, valid_fraction: float, seed: int) -> np.ndarray:
    """``train``/``valid`` per example, whole groups on one side (seeded shuffle of the sorted groups)."""
    g = np.asarray(groups).astype(str)
    unique = np.array(sorted(set(g.tolist())))
    order = unique[np.random.default_rng(seed).permutation(unique.size)]
    n_valid = min(max(1, int(round(valid_fraction * unique.size))), max(unique.size - 1, 1))
    return np.where(np.isin(g, order[:n_valid]), "valid", "train").astype(object)


def _hash_split(key: str, ratios: list[str]) -> str:
    return ratios[int(hashlib.sha1(key.encode("utf-8")).hexdigest(), 16) % len(ratios)]


# ------------------------------------------------------------------------------------------- GTZAN
GTZAN_LAYOUT = ("gtzan/genres_original/<genre>/<genre>.000NN.wav (or gtzan/genres/<genre>/*.au) and the fail-"
                "filtered lists train_filtered.txt, valid_filtered.txt, test_filtered.txt in gtzan/ or gtzan/splits/")
GTZAN_SPLIT_FILES = {"train": "train_filtered.txt", "valid": "valid_filtered.txt", "test": "test_filtered.txt"}


@DATASETS.register("gtzan", help="GTZAN genre, fail-filtered split (task gtzan)")
def read_gtzan_benchmark(root: str | os.PathLike[str], *, skip_bad: bool = False,
                         split_dir: str | os.PathLike[str] | None = None) -> BenchmarkDataset:
    """GTZAN genre with the fail-filtered split (930 tracks: 443 train, 197 valid, 290 test)."""
    root = _need_dir(Path(root), "gtzan", GTZAN_LAYOUT)
    base = next((root / d for d in ("genres_original", "genres", "Data/genres_original") if (root / d).is_dir()), root)
    audio = {f.stem: f for g in GTZAN_GENRES if (base / g).is_dir() for f in sorted((base / g).iterdir())
             if f.suffix.lower() in _AUDIO_EXT}
    if not audio:
        raise DatasetError(f"gtzan: no genre folders with audio under {base}. Expected layout: {GTZAN_LAYOUT}")
    ext = pd.Series([f.suffix for f in audio.values()]).mode()[0]   # the collection's own format (.wav / .au)
    dirs = [Path(split_dir)] if split_dir else [root, root / "splits", base]
    sdir = next((d for d in dirs if all((d / f).is_file() for f in GTZAN_SPLIT_FILES.values())), None)
    if sdir is None:
        raise DatasetError(
            f"gtzan: the fail-filtered split lists {', '.join(GTZAN_SPLIT_FILES.values())} are not in "
            f"{' or '.join(str(d) for d in dirs)}. MARBLE uses the fault-filtered split of Kereliuk, Sturm & Larsen "
            "(2015), published as text files in the repository coreyker/dnn-mgr (folder gtzan/); musiclens does not "
            "download them: copy them into the GTZAN folder or pass split_dir (--gtzan-splits)."
        )
    rows = []
    for split, fname in GTZAN_SPLIT_FILES.items():
        for line in (sdir / fname).read_text().splitlines():
            line = line.strip()
            if not line:
                continue
            stem = Path(line).stem
            genre = stem.split(".")[0]
            if genre not in GTZAN_GENRES:
                raise DatasetError(f"gtzan: {sdir / fname} lists {line!r}, not a GTZAN track (<genre>.000NN)")
            path = audio.get(stem, base / genre / f"{stem}{ext}")
            rows.append({"item_id": stem, "path": str(path), "genre": genre, "split": split})
    items = pd.DataFrame(rows)
    ok, skipped, _ = check_audio([Path(p) for p in items["path"]], dataset="gtzan", layout=GTZAN_LAYOUT,
                                 skip_bad=skip_bad)
    task = BenchmarkTask("gtzan", "gtzan", "multiclass", ("genre",), GTZAN_GENRES, ("accuracy",), "accuracy",
                         description="10 genres, fail-filtered split")
    return finish_dataset(BenchmarkDataset(
        "gtzan", root, items[ok], {"gtzan": task}, window_s=30.0, skipped=skipped,
        annotation_files=[sdir / f for f in GTZAN_SPLIT_FILES.values()],
        info={"layout": GTZAN_LAYOUT, "split_files": str(sdir), "split_source": "Kereliuk, Sturm & Larsen 2015 "
              "fault-filtered GTZAN split (coreyker/dnn-mgr), as used by MARBLE"}))


# ------------------------------------------------------------------------------------------ NSynth
NSYNTH_LAYOUT = "nsynth/nsynth-{train,valid,test}/examples.json + audio/<note_str>.wav"


@DATASETS.register("nsynth", help="NSynth official splits (tasks nsynth-pitch, nsynth-instrument)")
def read_nsynth_benchmark(root: str | os.PathLike[str], *, skip_bad: bool = False) -> BenchmarkDataset:
    """NSynth's official train/valid/test splits: pitch (128 classes) and instrument family (11)."""
    from musiclens.stimuli.nsynth import find_nsynth_split

    root = _need_dir(Path(root), "nsynth", NSYNTH_LAYOUT)
    rows, files = [], []
    for split in ("train", "valid", "test"):
        folder = find_nsynth_split(root, split)
        if folder == root:
            raise DatasetError(f"nsynth: {root} must hold nsynth-train/, nsynth-valid/, nsynth-test/ ({NSYNTH_LAYOUT})")
        files.append(folder / "examples.json")
        try:
            records = json.loads((folder / "examples.json").read_text())
        except json.JSONDecodeError as err:
            raise DatasetError(f"nsynth: {folder / 'examples.json'} is not valid JSON ({err})") from err
        for note, rec in sorted(records.items()):
            try:
                rows.append({"item_id": note, "path": str(folder / "audio" / f"{note}.wav"), "split": split,
                             "pitch": int(rec["pitch"]), "family": str(rec["instrument_family_str"]),
                             "group": str(rec.get("instrument_str", note))})
            except (KeyError, TypeError, ValueError) as err:
                raise DatasetError(f"nsynth: record {note!r} of {folder / 'examples.json'} lacks {err}") from err
    items = pd.DataFrame(rows)
    ok, skipped, _ = check_audio([Path(p) for p in items["path"]], dataset="nsynth", layout=NSYNTH_LAYOUT,
                                 skip_bad=skip_bad)
    tasks = {
        "nsynth-pitch": BenchmarkTask("nsynth-pitch", "nsynth", "multiclass", ("pitch",), tuple(range(128)),
                                      ("accuracy",), "accuracy", description="128 MIDI pitches"),
        "nsynth-instrument": BenchmarkTask("nsynth-instrument", "nsynth", "multiclass", ("family",), NSYNTH_FAMILIES,
                                           ("accuracy",), "accuracy", description="11 instrument families"),
    }
    return finish_dataset(BenchmarkDataset("nsynth", root, items[ok], tasks, window_s=None, skipped=skipped,
                                           annotation_files=files, info={"layout": NSYNTH_LAYOUT,
                                                                         "split_source": "official NSynth splits"}))


# -------------------------------------------------------------------------------------- GiantSteps
GS_LAYOUT = ("giantsteps/giantsteps-key-dataset/{audio/<id>.LOFI.mp3, annotations/key/<id>.LOFI.key} and "
             "giantsteps/giantsteps-mtg-key-dataset/{audio/<id>.LOFI.mp3, annotations/annotations.txt, "
             "annotations/beatport_metadata.txt}")
_FLATS = {"C#": "Db", "D#": "Eb", "F#": "Gb", "G#": "Ab", "A#": "Bb"}


def normalise_key(text: str) -> str | None:
    """``"eb minor"`` / ``"D# major"`` -> a :data:`~musiclens.probe.tasks.KEY_CLASSES` label, else None."""
    from musiclens.probe.tasks import key_class

    parts = text.strip().split()
    if len(parts) < 2 or parts[1].lower() not in ("major", "minor"):
        return None
    tonic = parts[0][:1].upper() + parts[0][1:].lower()
    tonic = _FLATS.get(tonic, tonic)
    try:
        return KEY_CLASSES[key_class(f"{tonic} {parts[1].lower()}")]
    except Exception:   # noqa: BLE001 - an unparsable key is reported by the caller
        return None


def _find(root: Path, prefix: str) -> Path | None:
    hits = sorted(d for d in root.glob(prefix + "*") if d.is_dir())
    return hits[0] if hits else None


@DATASETS.register("giantsteps", help="GiantSteps key (test) + GiantSteps-MTG-keys (train/valid) (task giantsteps-key)")
def read_giantsteps(root: str | os.PathLike[str], *, skip_bad: bool = False) -> BenchmarkDataset:
    """GiantSteps key: 604 test tracks; GiantSteps-MTG-keys confident single-key tracks for train/valid."""
    root = _need_dir(Path(root), "giantsteps", GS_LAYOUT)
    test_dir, mtg_dir = _find(root, "giantsteps-key-dataset"), _find(root, "giantsteps-mtg-key-dataset")
    if test_dir is None or mtg_dir is None:
        raise DatasetError(f"giantsteps: {root} lacks giantsteps-key-dataset*/ or giantsteps-mtg-key-dataset*/. "
                           f"Expected layout: {GS_LAYOUT}")
    rows, bad_labels = [], []
    for kfile in sorted((test_dir / "annotations" / "key").glob("*.key")):
        did = kfile.name.split(".")[0]
        key = normalise_key(kfile.read_text())
        if key is None:
            bad_labels.append({"path": str(kfile), "reason": f"unparsable key {kfile.read_text().strip()!r}"})
            continue
        rows.append({"item_id": f"gs-{did}", "path": str(test_dir / "audio" / f"{did}.LOFI.mp3"), "key": key,
                     "split": "test", "group": f"gs-{did}"})
    ann, meta = mtg_dir / "annotations" / "annotations.txt", mtg_dir / "annotations" / "beatport_metadata.txt"
    for f in (ann, meta):
        if not f.is_file():
            raise DatasetError(f"giantsteps: {f} is missing. Expected layout: {GS_LAYOUT}")
    with open(meta, newline="") as fh:
        artists = {r["ID"].strip(): [a.strip() for a in r["ARTIST"].strip().split(",")]
                   for r in csv.DictReader(fh, delimiter="\t")}
    ratios = ["train"] * 100 + ["valid"] * 16
    to_split = {a.lower(): _hash_split(a.lower(), ratios) for names in artists.values() for a in names}
    for _ in range(2):   # collaborators of valid artists are valid (two hops), as jukemir/MARBLE
        for names in artists.values():
            if any(to_split[a.lower()] == "valid" for a in names):
                for a in names:
                    to_split[a.lower()] = "valid"
    with open(ann, newline="") as fh:
        for r in csv.DictReader(fh, delimiter="\t"):
            did, manual = r["ID"].strip(), r["MANUAL KEY"].strip()
            if int(r["C"]) != 2 or "/" in manual:   # confident single keys only (Korzeniowski & Widmer 2018)
                continue
            key = normalise_key(manual)
            if key is None or did not in artists:
                bad_labels.append({"path": f"{ann}#{did}", "reason": f"unparsable key {manual!r} or no metadata"})
                continue
            rows.append({"item_id": f"gsmtg-{did}", "path": str(mtg_dir / "audio" / f"{did}.LOFI.mp3"), "key": key,
                         "split": to_split[artists[did][0].lower()], "group": f"gsmtg-{did}"})
    if bad_labels and not skip_bad:
        shown = "\n  ".join(f"{b['path']}: {b['reason']}" for b in bad_labels[:25])
        raise DatasetError(f"giantsteps: {len(bad_labels)} annotation(s) cannot be read:\n  {shown}\n"
                           "Fix them or pass skip_bad=True (--skip-bad).")
    items = pd.DataFrame(rows)
    ok, skipped, _ = check_audio([Path(p) for p in items["path"]], dataset="giantsteps", layout=GS_LAYOUT,
                                 skip_bad=skip_bad)
    task = BenchmarkTask("giantsteps-key", "giantsteps", "multiclass", ("key",), KEY_CLASSES,
                         ("key.weighted_score", "accuracy"), "key.weighted_score",
                         published=("key.weighted_score",), description="24 keys, MIREX weighted score")
    return finish_dataset(BenchmarkDataset(
        "giantsteps", root, items[ok], {"giantsteps-key": task}, window_s=30.0, skipped=bad_labels + skipped,
        annotation_files=[ann, meta, *sorted((test_dir / "annotations" / "key").glob("*.key"))],
        info={"layout": GS_LAYOUT, "split_source": "GiantSteps key = test; GiantSteps-MTG-keys artist-hashed "
              "100:16 train/valid (jukemir/MARBLE)"}))


# --------------------------------------------------------------------------------------------- MTT
MTT_LAYOUT = "mtt/annotations_final.csv (tab-separated: clip_id, 188 tags, mp3_path) + mtt/<0-f>/*.mp3"


@DATASETS.register("mtt", help="MagnaTagATune top-50 tags, folders 0-b/c/d-f (task mtt)")
def read_mtt(root: str | os.PathLike[str], *, skip_bad: bool = False, n_tags: int = 50) -> BenchmarkDataset:
    """MagnaTagATune: the ``n_tags`` most frequent tags; split by the first hex digit of the folder."""
    root = _need_dir(Path(root), "mtt", MTT_LAYOUT)
    ann = root / "annotations_final.csv"
    if not ann.is_file():
        raise DatasetError(f"mtt: {ann} is missing. Expected layout: {MTT_LAYOUT}")
    table = pd.read_csv(ann, sep="\t", dtype=str)
    if "mp3_path" not in table.columns or "clip_id" not in table.columns:
        raise DatasetError(f"mtt: {ann} has no clip_id/mp3_path columns (is it tab-separated?). Layout: {MTT_LAYOUT}")
    tag_cols = [c for c in table.columns if c not in ("clip_id", "mp3_path")]
    tags = table[tag_cols].astype(int)
    counts = tags.sum(axis=0).to_numpy()
    top = [tag_cols[i] for i in np.argsort(-counts, kind="stable")[:n_tags]]
    first = table["mp3_path"].str[0].map(lambda c: int(c, 16) if c in "0123456789abcdef" else -1)
    split = np.where(first < 0, "", np.where(first < 12, "train", np.where(first < 13, "valid", "test")))
    items = pd.DataFrame({"item_id": "mtt-" + table["clip_id"].str.strip(),
                          "path": [str(root / p) for p in table["mp3_path"]], "split": split})
    targets = {f"tag:{t}": tags[t].to_numpy(dtype=np.int64) for t in top}
    items = pd.concat([items, pd.DataFrame(targets)], axis=1)
    ok, skipped, _ = check_audio([Path(p) for p in items["path"]], dataset="mtt", layout=MTT_LAYOUT, skip_bad=skip_bad)
    task = BenchmarkTask("mtt", "mtt", "multilabel", tuple(f"tag:{t}" for t in top), tuple(top),
                         ("roc_auc", "mAP"), "roc_auc", description=f"top-{n_tags} tags")
    return finish_dataset(BenchmarkDataset("mtt", root, items[ok], {"mtt": task}, window_s=30.0, skipped=skipped,
                                           annotation_files=[ann], info={"layout": MTT_LAYOUT, "split_source":
                                           "folders 0-b train, c valid, d-f test (12:1:3)", "tags": top}))


# ---------------------------------------------------------------------------------------- Emomusic
EMO_LAYOUT = ("emomusic/clips_45seconds/<song_id>.mp3 + songs_info.csv and static_annotations.csv "
              "(in emomusic/ or emomusic/annotations/)")


def _read_csv_stripped(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        return [{k.strip(): (v or "").strip() for k, v in r.items() if k is not None} for r in csv.DictReader(fh)]


@DATASETS.register("emomusic", help="Emomusic static valence/arousal (task emomusic)")
def read_emomusic(root: str | os.PathLike[str], *, skip_bad: bool = False) -> BenchmarkDataset:
    """Emomusic: 744 clips of 45 s, static arousal and valence (regression, R²)."""
    root = _need_dir(Path(root), "emomusic", EMO_LAYOUT)
    adir = next((d for d in (root, root / "annotations") if (d / "static_annotations.csv").is_file()), None)
    if adir is None or not (adir / "songs_info.csv").is_file():
        raise DatasetError(f"emomusic: static_annotations.csv / songs_info.csv not found. Expected layout: {EMO_LAYOUT}")
    info_rows = {int(r["song_id"]): r for r in _read_csv_stripped(adir / "songs_info.csv")}
    rows = []
    ratios = ["train"] * 8 + ["valid"] * 2
    for r in _read_csv_stripped(adir / "static_annotations.csv"):
        sid = int(r["song_id"])
        meta = info_rows.get(sid)
        if meta is None:
            raise DatasetError(f"emomusic: song {sid} of static_annotations.csv is not in songs_info.csv")
        if meta.get("Mediaeval 2013 set", "") == "evaluation":
            split = "test"
        else:
            artist = "".join(c for c in meta.get("Artist", "").lower() if ord(c) < 128 and (c.isalpha() or c.isspace()))
            split = _hash_split(" ".join(artist.split()), ratios)
        rows.append({"item_id": f"emo-{sid}", "path": str(root / "clips_45seconds" / f"{sid}.mp3"), "split": split,
                     "arousal": float(r["mean_arousal"]), "valence": float(r["mean_valence"])})
    items = pd.DataFrame(rows)
    ok, skipped, _ = check_audio([Path(p) for p in items["path"]], dataset="emomusic", layout=EMO_LAYOUT,
                                 skip_bad=skip_bad)
    task = BenchmarkTask("emomusic", "emomusic", "regression", ("arousal", "valence"), ("arousal", "valence"),
                         ("r2_valence", "r2_arousal"), "r2_mean", description="static arousal and valence, R²")
    return finish_dataset(BenchmarkDataset(
        "emomusic", root, items[ok], {"emomusic": task}, window_s=5.0, skipped=skipped,
        annotation_files=[adir / "songs_info.csv", adir / "static_annotations.csv"],
        info={"layout": EMO_LAYOUT, "split_source": "MediaEval 2013 evaluation = test; development artist-hashed "
              "8:2 train/valid (jukemir/MARBLE)"}))


# ---------------------------------------------------------------------------------------- VocalSet
VOCALSET_LAYOUT = "vocalset/FULL/<singer>/<context>/<technique>/*.wav (singers f1-f9, m1-m11)"


@DATASETS.register("vocalset", help="VocalSet 3 s segments (tasks vocalset-singer, vocalset-technique)")
def read_vocalset(root: str | os.PathLike[str], *, skip_bad: bool = False, segment_s: float = 3.0) -> BenchmarkDataset:
    """VocalSet singer (20) and technique (10) identification on ``segment_s`` segments."""
    root = _need_dir(Path(root), "vocalset", VOCALSET_LAYOUT)
    full = root / "FULL" if (root / "FULL").is_dir() else root
    files = sorted(p for p in full.glob("*/*/*/*.wav") if p.parts[-4] in VOCALSET_SINGERS
                   and p.parts[-2] in VOCALSET_ALL_TECHNIQUES and not p.name.startswith("."))
    if not files:
        raise DatasetError(f"vocalset: no recordings under {full}. Expected layout: {VOCALSET_LAYOUT}")
    ok, skipped, dur = check_audio(files, dataset="vocalset", layout=VOCALSET_LAYOUT, skip_bad=skip_bad)
    rows = []
    for k, (f, good, d) in enumerate(zip(files, ok, dur)):
        if not good:
            continue
        n_seg = int(np.floor(d / segment_s + 1e-9))
        if n_seg == 0:
            skipped.append({"path": str(f), "reason": f"shorter than one {segment_s:g} s segment"})
            continue
        singer, tech = f.parts[-4], f.parts[-2]
        for j in range(n_seg):
            rows.append({"item_id": f"{singer}-{f.parts[-3]}-{f.stem}-{j:02d}", "path": str(f),
                         "offset_s": j * segment_s, "duration_s": segment_s, "singer": singer,
                         "technique": tech if tech in VOCALSET_TECHNIQUES else None, "group": f"rec{k:05d}"})
    items = pd.DataFrame(rows)
    groups = items["group"].to_numpy()
    items["split:vocalset-singer"] = grouped_split(groups, fractions=(0.48, 0.32, 0.2), seed=_SPLIT_SEED)
    tech_split = np.full(len(items), "", dtype=object)
    is_tech = items["technique"].notna().to_numpy()
    test = is_tech & items["singer"].isin(VOCALSET_TECH_TEST_SINGERS).to_numpy()
    trval = is_tech & ~test
    tech_split[test] = "test"
    if trval.any():
        tech_split[trval] = _two_way_split(groups[trval], valid_fraction=0.4, seed=_SPLIT_SEED)
    items["split:vocalset-technique"] = tech_split
    items["split"] = ""
    tasks = {
        "vocalset-singer": BenchmarkTask("vocalset-singer", "vocalset", "multiclass", ("singer",), VOCALSET_SINGERS,
                                         ("accuracy",), "accuracy", description="20 singers"),
        "vocalset-technique": BenchmarkTask("vocalset-technique", "vocalset", "multiclass", ("technique",),
                                            VOCALSET_TECHNIQUES, ("accuracy",), "accuracy",
                                            description="10 techniques, unseen singers in test"),
    }
    return finish_dataset(BenchmarkDataset(
        "vocalset", root, items, tasks, window_s=None, skipped=skipped, annotation_files=[],
        info={"layout": VOCALSET_LAYOUT, "segment_s": segment_s, "split_seed": _SPLIT_SEED,
              "split_source": "technique: test singers f2 f8 m3 m5 m10 (MARBLE), rest 60:40 by recording; singer: "
              "48:32:20 by recording (seeded grouped split, not MARBLE's files)"}))
