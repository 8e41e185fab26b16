"""Label conventions (chords, keys, nearest-frame events) and grouped splits."""

from __future__ import annotations

import numpy as np
import pytest

from musiclens.errors import ConfigError, InsufficientDataError
from musiclens.probe.splits import grouped_split, split_from_column
from musiclens.probe.tasks import CHORD_CLASSES, KEY_CLASSES, chord_class, event_frames, key_class


@pytest.mark.parametrize("label, expected", [
    ("C:maj", "C:maj"), ("A:min", "A:min"), ("G:7", "G:maj"), ("D:min7", "D:min"), ("B:dim", "B:min"),
    ("F:sus4", "F:maj"), ("Eb:maj/3", "D#:maj"), ("C#:aug", "C#:maj"), ("Bb:hdim7", "A#:min"), ("N", "N"), ("X", "N"),
])
def test_chord_reduction_to_25_classes(label: str, expected: str) -> None:
    assert CHORD_CLASSES[chord_class(label)] == expected


def test_key_classes_follow_mir_eval_names() -> None:
    assert KEY_CLASSES[key_class("Eb major")] == "D# major"
    assert KEY_CLASSES[key_class("a minor")] == "A minor"
    assert key_class("D dorian") == key_class("D minor") and key_class("G mixolydian") == key_class("G major")


def test_events_go_to_the_nearest_frame_centre() -> None:
    times = (np.arange(10) + 0.5) / 10  # centres 0.05, 0.15, ...
    y = event_frames(np.array([0.0, 0.14, 0.31, 0.99, 1.2]), times, frame_rate=10)
    assert np.flatnonzero(y).tolist() == [0, 1, 3, 9]  # 1.2 s lies beyond the last frame


def test_grouped_split_is_seeded_disjoint_and_covers_all_parts() -> None:
    groups = np.repeat([f"g{i}" for i in range(10)], 7)
    a = grouped_split(groups, seed=3)
    assert np.array_equal(a, grouped_split(groups, seed=3))
    assert not np.array_equal(a, grouped_split(groups, seed=4))
    for g in set(groups):
        assert len(set(a[groups == g])) == 1
    counts = {s: len(set(groups[a == s])) for s in ("train", "valid", "test")}
    assert counts == {"train": 7, "valid": 1, "test": 2}
    with pytest.raises(InsufficientDataError, match="at least 3 groups"):
        grouped_split(["a", "a", "b"], seed=0)
    with pytest.raises(ConfigError, match="sum to 1"):
        grouped_split(groups, fractions=(0.5, 0.1, 0.1))


def test_split_column_aliases() -> None:
    out = split_from_column(["nsynth-train", "validation", "TEST", "train", "val"])
    assert out.tolist() == ["train", "valid", "test", "train", "valid"]
    with pytest.raises(ConfigError, match="not train/valid/test"):
        split_from_column(["train", "holdout", "test"])
    with pytest.raises(InsufficientDataError, match="no valid"):
        split_from_column(["train", "test"])
