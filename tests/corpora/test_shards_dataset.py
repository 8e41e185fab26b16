"""Sharded corpus builds: determinism, resumption after a crash, parallel builds; training crops."""

from __future__ import annotations

import json

import numpy as np
import pytest

from musiclens.corpora.dataset import Corpus, CropDataset
from musiclens.corpora.labels import MusicLabels, validate_labels
from musiclens.corpora.shards import build_corpus, shard_paths
from musiclens.corpora.synthetic import GeneratedMusicSource
from musiclens.errors import ConfigError, StoreError


class Crash(RuntimeError):
    pass


@pytest.fixture(scope="module")
def reference(tmp_path_factory, short_config):
    """An uninterrupted serial build of 5 pieces in shards of 2."""
    out = tmp_path_factory.mktemp("ref") / "corpus"
    src = GeneratedMusicSource(n_pieces=5, seed=4, config=short_config)
    return out, build_corpus(out, source=src, pieces_per_shard=2)


def test_same_seed_same_content_hash(tmp_path, reference, short_config) -> None:
    _, ref = reference
    again = build_corpus(tmp_path / "b", source=GeneratedMusicSource(n_pieces=5, seed=4, config=short_config),
                         pieces_per_shard=2)
    assert again["content_hash"] == ref["content_hash"]
    other = build_corpus(tmp_path / "c", source=GeneratedMusicSource(n_pieces=5, seed=5, config=short_config),
                         pieces_per_shard=2)
    assert other["content_hash"] != ref["content_hash"]
    assert ref["n_pieces"] == 5 and ref["n_shards"] == 3 and ref["skipped"] == []


def test_interrupted_build_resumes_without_duplicates_or_gaps(tmp_path, reference, short_config) -> None:
    _, ref = reference
    out = tmp_path / "corpus"
    src = GeneratedMusicSource(n_pieces=5, seed=4, config=short_config)
    made: list[int] = []

    def crash_after_3(index: int) -> None:
        made.append(index)
        if len(made) == 3:
            raise Crash("simulated kill")

    with pytest.raises(Crash):
        build_corpus(out, source=src, pieces_per_shard=2, on_piece=crash_after_3)
    assert shard_paths(out, 0)[1].is_file() and not shard_paths(out, 1)[1].is_file()
    assert not (out / "corpus.json").exists()
    with pytest.raises(StoreError, match="not a finished corpus"):
        Corpus(out)
    made.clear()
    manifest = build_corpus(out, source=src, pieces_per_shard=2, on_piece=made.append)
    assert made == [2, 3, 4]  # shard 0 kept, shards 1 and 2 built
    assert manifest["content_hash"] == ref["content_hash"]
    corpus = Corpus(out)
    indices = [corpus.record(i)["index"] for i in range(len(corpus))]
    assert indices == [0, 1, 2, 3, 4]
    assert len({corpus.record(i)["id"] for i in range(len(corpus))}) == 5
    # resuming a finished build does nothing and keeps the hash
    made.clear()
    assert build_corpus(out, source=src, pieces_per_shard=2, on_piece=made.append)["content_hash"] == ref["content_hash"]
    assert made == []


def test_parallel_build_equals_serial(tmp_path, reference, short_config) -> None:
    _, ref = reference
    src = GeneratedMusicSource(n_pieces=5, seed=4, config=short_config)
    par = build_corpus(tmp_path / "p", source=src, pieces_per_shard=2, workers=2)
    assert par["content_hash"] == ref["content_hash"]


def test_other_settings_in_same_folder_is_an_error(reference, short_config) -> None:
    out, _ = reference
    with pytest.raises(StoreError, match="other settings"):
        build_corpus(out, source=GeneratedMusicSource(n_pieces=5, seed=99, config=short_config), pieces_per_shard=2)


def test_corpus_random_access_matches_render(reference, short_config) -> None:
    from musiclens.corpora.synthetic import render_generated

    out, _ = reference
    corpus = Corpus(out)
    assert len(corpus) == 5 and corpus.sample_rate == 16000
    piece = render_generated(seed=4, index=3, config=short_config)
    np.testing.assert_array_equal(corpus.audio(3), piece.audio)
    lab = corpus.labels(3)
    assert isinstance(lab, MusicLabels)
    assert lab.to_dict() == piece.labels
    validate_labels(lab)
    meta = corpus.metadata()
    assert list(meta["id"]) == [f"music-4-{i:07d}" for i in range(5)]
    assert json.loads((out / "corpus.json").read_text())["content_hash"] == corpus.content_hash


def test_crops_have_consistent_labels(reference) -> None:
    out, _ = reference
    corpus = Corpus(out)
    ds = CropDataset(corpus, crop_s=2.0, sample_rate=8000, frame_rate=50, seed=1)
    for i in range(len(ds)):
        ex = ds[i]
        assert ex["audio"].shape == (16000,) and ex["audio"].dtype == np.float32
        assert ex["piano_roll"].shape == (100, 88) and ex["onset_roll"].shape == (100, 88)
        full = corpus.labels(i)
        s = ex["start_s"]
        # the cropped roll is the full roll shifted by the crop start, when the start falls on a frame
        lab_shift = full.crop(start_s=s, end_s=s + 2.0)
        np.testing.assert_array_equal(ex["piano_roll"], lab_shift.piano_roll(frame_rate=50))
        np.testing.assert_allclose(ex["onsets"], [t - s for t in full.onsets() if s <= t < s + 2.0], atol=1e-9)
        np.testing.assert_allclose(ex["beats"], [t - s for t in full.beats if s <= t < s + 2.0], atol=1e-9)
        assert ex["key"] == full.key
        for a, b, chord in ex["chords"]:
            mid = s + (a + b) / 2
            assert full.chord_at(mid) == chord
        assert ex["onset_roll"].sum() <= ex["piano_roll"].sum()
        assert ex["beat_frames"].sum() == len(ex["beats"])
        validate_labels(ex["labels"])
    # the audio crop at the corpus rate is the corpus audio from the crop start
    ds16 = CropDataset(corpus, crop_s=2.0, seed=1)
    ex = ds16[2]
    start = ds16.crop_start(2)
    np.testing.assert_array_equal(ex["audio"], corpus.audio(2)[start:start + 32000])
    assert ex["start_s"] == start / 16000


def test_crop_positions_reproducible_and_epoch_dependent(reference) -> None:
    out, _ = reference
    a, b = CropDataset(out, crop_s=1.0, seed=3), CropDataset(out, crop_s=1.0, seed=3)
    starts = [a.crop_start(i) for i in range(5)]
    assert starts == [b.crop_start(i) for i in reversed(range(5))][::-1]
    a.set_epoch(1)
    assert [a.crop_start(i) for i in range(5)] != starts
    whole = CropDataset(out, crop_s=None)[0]
    assert whole["audio"].size == Corpus(out).record(0)["n_samples"]
    long = CropDataset(out, crop_s=60.0)[0]
    assert long["audio"].size == 60 * 16000 and not long["audio"][-16000:].any()
    with pytest.raises(ConfigError):
        CropDataset(out, crop_s=0)


def test_torch_wrapper_batches(reference) -> None:
    torch = pytest.importorskip("torch")
    from musiclens.corpora.torch_dataset import TorchCropDataset, collate

    out, _ = reference
    ds = TorchCropDataset(CropDataset(out, crop_s=1.0, frame_rate=25))
    loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=collate)
    batch = next(iter(loader))
    assert batch["audio"].shape == (2, 16000)
    assert batch["piano_roll"].shape == (2, 25, 88) and batch["piano_roll"].dtype == torch.float32
    assert len(batch["key"]) == 2


def test_damaged_corpus_files_are_named(reference, tmp_path) -> None:
    import shutil

    out, _ = reference
    bad = tmp_path / "corpus"
    shutil.copytree(out, bad)
    npy = shard_paths(bad, 1)[0]
    npy.write_bytes(npy.read_bytes()[:200])             # truncated shard audio
    corpus = Corpus(bad)
    corpus.audio(0)                                     # other shards still read
    with pytest.raises(StoreError, match="cannot be read|shorter than its index"):
        corpus.audio(2)
    (bad / "corpus.json").write_text("{not json")
    with pytest.raises(StoreError, match="not valid JSON"):
        Corpus(bad)
