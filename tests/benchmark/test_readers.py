"""Readers of the official layouts: splits, labels, clear errors, bad files named one by one."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from musiclens.benchmark import DATASETS, task_items
from musiclens.benchmark.readers import VOCALSET_TECH_TEST_SINGERS, normalise_key
from musiclens.errors import DatasetError, MusicLensError
from tests.benchmark import fixtures


def test_gtzan_uses_the_split_lists_and_drops_unlisted_tracks(data_root: Path) -> None:
    ds = DATASETS.get("gtzan")(data_root / "gtzan")
    assert ds.counts() == {"gtzan": {"train": 30, "valid": 10, "test": 20}}
    assert len(ds.items) == 60   # the 10 unlisted tracks are left out
    assert all(p.endswith(".wav") for p in ds.items["path"])   # list lines name .au, files are .wav
    assert set(ds.items["genre"]) == set(ds.tasks["gtzan"].classes)


def test_gtzan_without_split_lists_says_where_they_come_from(data_root: Path, tmp_path: Path) -> None:
    copy = tmp_path / "gtzan"
    shutil.copytree(data_root / "gtzan" / "genres_original", copy / "genres_original")
    with pytest.raises(DatasetError, match=r"coreyker/dnn-mgr.*split_dir"):
        DATASETS.get("gtzan")(copy)
    ds = DATASETS.get("gtzan")(copy, split_dir=data_root / "gtzan")
    assert len(ds.items) == 60


def test_wrong_paths_name_the_expected_layout(tmp_path: Path) -> None:
    for name in DATASETS.names():
        with pytest.raises(DatasetError, match="[Ee]xpected layout|layout is|must hold") as err:
            DATASETS.get(name)(tmp_path / "nowhere")
        assert isinstance(err.value, MusicLensError)
    (tmp_path / "mtt").mkdir()
    with pytest.raises(DatasetError, match="annotations_final.csv"):
        DATASETS.get("mtt")(tmp_path / "mtt")


def test_bad_files_are_named_one_by_one_or_skipped_and_recorded(data_root: Path, tmp_path: Path) -> None:
    copy = tmp_path / "gtzan"
    shutil.copytree(data_root / "gtzan", copy)
    corrupt = copy / "genres_original" / "jazz" / "jazz.00001.wav"
    corrupt.write_bytes(b"RIFF not really a wave file")
    missing = copy / "genres_original" / "rock" / "rock.00004.wav"
    missing.unlink()
    with pytest.raises(DatasetError) as err:
        DATASETS.get("gtzan")(copy)
    msg = str(err.value)
    assert "2 audio file(s) of 60" in msg and str(corrupt) in msg and str(missing) in msg and "--skip-bad" in msg
    ds = DATASETS.get("gtzan")(copy, skip_bad=True)
    assert len(ds.items) == 58
    assert {(s["path"], s["reason"].split(" ")[0]) for s in ds.skipped} == {(str(corrupt), "unreadable"),
                                                                              (str(missing), "missing")}


def test_nsynth_official_splits_and_classes(data_root: Path) -> None:
    ds = DATASETS.get("nsynth")(data_root / "nsynth")
    assert ds.counts()["nsynth-pitch"] == {"train": 36, "valid": 12, "test": 24}
    assert ds.tasks["nsynth-pitch"].n_outputs == 128 and ds.tasks["nsynth-instrument"].n_outputs == 11
    assert set(ds.items["pitch"]) == set(fixtures.NSYNTH_PITCHES)


def test_giantsteps_keys_confidence_and_artist_split(data_root: Path) -> None:
    assert normalise_key("eb minor") == "D# minor"          # KEY_CLASSES spelling; mir_eval treats them equal
    assert normalise_key("D# major") == normalise_key("Eb major") == "D# major"
    assert normalise_key("none") is None
    ds = DATASETS.get("giantsteps")(data_root / "giantsteps")
    items = ds.items
    assert (items["split"] == "test").sum() == 8 and len(items) == 8 + 39   # C=1 track left out
    assert "gsmtg-5039" not in set(items["item_id"])
    import csv

    meta = data_root / "giantsteps" / "giantsteps-mtg-key-dataset" / "annotations" / "beatport_metadata.txt"
    with open(meta) as fh:
        artists = {f"gsmtg-{r['ID']}": [a.strip() for a in r["ARTIST"].split(",")] for r in csv.DictReader(fh, delimiter="\t")}
    by_artist: dict[str, set[str]] = {}
    for iid, split in zip(items["item_id"], items["split"]):
        for a in artists.get(iid, []):
            by_artist.setdefault(a, set()).add(split)
    assert all(len(s) == 1 for s in by_artist.values())   # an artist (and collaborators) on one side


def test_mtt_split_by_folder_and_top_tags(data_root: Path) -> None:
    ds = DATASETS.get("mtt")(data_root / "mtt", n_tags=4)
    task = ds.tasks["mtt"]
    assert task.n_outputs == 4 and task.label_type == "multilabel"
    first = ds.items["path"].map(lambda p: Path(p).parent.name)
    assert set(first[ds.items["split"] == "valid"]) == {"c"}
    assert set(first[ds.items["split"] == "test"]) == set("def")
    counts = ds.items[list(task.targets)].sum().to_numpy()
    assert (np.diff(counts) <= 0).all()   # most frequent first


def test_emomusic_mediaeval_evaluation_is_test(data_root: Path) -> None:
    ds = DATASETS.get("emomusic")(data_root / "emomusic")
    assert ds.counts()["emomusic"]["test"] == 10 and ds.window_s == 5.0
    assert ds.tasks["emomusic"].label_type == "regression"


def test_vocalset_segments_and_task_splits(data_root: Path) -> None:
    ds = DATASETS.get("vocalset")(data_root / "vocalset")
    assert len(ds.items) == 6 * 4 * 5 * 2   # two 3 s segments per 6.5 s recording
    tech = task_items(ds, ds.tasks["vocalset-technique"])
    assert "forte" not in set(tech["technique"])
    test = tech[tech["split:vocalset-technique"] == "test"]
    assert set(test["singer"]) == set(VOCALSET_TECH_TEST_SINGERS) & set(fixtures.VS_SINGERS)
    sing = ds.items
    for col in ("split:vocalset-singer", "split:vocalset-technique"):
        sub = sing[sing[col] != ""]
        assert (sub.groupby("group")[col].nunique() == 1).all()   # a recording never on two sides
