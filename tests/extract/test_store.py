"""FeatureStore: chunks, resume after a kill (byte-identical), no-op re-runs, shards, load_pooled."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from musiclens.errors import StoreError
from musiclens.extract import FeatureStore, extract_to_store, load_pooled, merge_stores
from musiclens.extract.baselines import SpectralExtractor
from musiclens.extract.store import partial_path
from musiclens.stimuli.stimulus_set import StimulusSet
from tests.extract._helpers import SR, CountingExtractor, tones


def _set(n: int = 10, vary: bool = True) -> StimulusSet:
    clips = tones(n, seconds=0.2, vary=vary)
    return StimulusSet(clips, pd.DataFrame({"stimulus_id": [f"s{i:02d}" for i in range(n)]}), sample_rate=SR)


def _ext() -> SpectralExtractor:
    return SpectralExtractor("logmel", sample_rate=SR, hop_length=256, n_mels=16, n_fft=512)


def _files(path: Path) -> dict[str, bytes]:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file() and p.name != "manifest.json"}


def test_pooled_store_matches_in_memory(tmp_path: Path) -> None:
    stim = _set()
    out = extract_to_store(_ext(), stim, tmp_path / "store", chunk_size=3, progress=False)
    layers, ids = load_pooled(out)
    assert ids == stim.ids
    direct = _ext().extract(stim.audio, stimulus_ids=stim.ids).pool("mean")
    np.testing.assert_allclose(layers["logmel"], direct["logmel"], rtol=1e-6, atol=1e-6)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stimulus_set_hash"] == stim.content_hash()
    assert manifest["pooling"] == "mean" and manifest["complete"] and "packages" in manifest["environment"]
    assert "extract" in manifest["timings"]
    assert not partial_path(out).exists()
    arr = np.load(out / "layers" / "logmel.npy", mmap_mode="r")
    assert arr.shape == (10, 16)


def test_full_store_frames_and_pooling_on_read(tmp_path: Path) -> None:
    stim = _set()
    out = extract_to_store(_ext(), stim, tmp_path / "full", pooling="none", chunk_size=4, progress=False)
    store = FeatureStore(out)
    acts = _ext().extract(stim.audio, stimulus_ids=stim.ids)
    full = store.layer("logmel")
    assert full.shape == acts.layers["logmel"].shape
    np.testing.assert_array_equal(store.valid_frames("logmel"), acts.valid_frames)
    np.testing.assert_allclose(store.frame_times("logmel"), acts.frame_times)
    for pooling in ("mean", "max", "last"):
        pooled, _ = load_pooled(out, pooling=pooling)
        np.testing.assert_allclose(pooled["logmel"], acts.pool(pooling)["logmel"], rtol=1e-6, atol=1e-6)
    with pytest.raises(StoreError, match="pooling"):
        load_pooled(extract_to_store(_ext(), stim, tmp_path / "pooled", progress=False), pooling="max")


def test_resume_after_kill_is_byte_identical(tmp_path: Path) -> None:
    stim = _set(n=11)
    reference = extract_to_store(_ext(), stim, tmp_path / "ref", chunk_size=3, progress=False)
    flaky = CountingExtractor(_ext(), fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        extract_to_store(flaky, stim, tmp_path / "run", chunk_size=3, progress=False)
    assert not (tmp_path / "run").exists()
    progress = json.loads((partial_path(tmp_path / "run") / "progress.json").read_text())
    assert progress["chunks"] == [0, 1]
    # a process killed inside the atomic write of progress.json leaves its temporary (dead pid)
    dead = partial_path(tmp_path / "run") / ".progress.json.999999999.abc123.tmp"
    dead.write_text("{half")
    resumed = CountingExtractor(_ext())
    out = extract_to_store(resumed, stim, tmp_path / "run", chunk_size=3, progress=False)
    assert resumed.calls == 2                       # only chunks 2 and 3 were extracted again
    assert not any(p.name.endswith(".tmp") for p in out.rglob("*"))   # never carried into the store
    assert _files(out) == _files(reference)
    again = CountingExtractor(_ext())
    extract_to_store(again, stim, tmp_path / "run", chunk_size=3, progress=False)
    assert again.calls == 0                         # a finished store costs nothing


def test_finished_store_is_not_rebuilt_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stim = _set(n=4)
    out = extract_to_store("logmel", stim, tmp_path / "s", progress=False,
                           options={"sample_rate": SR, "hop_length": 256, "n_mels": 8})
    import musiclens.extract.runner as runner

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("extractor was built again")

    monkeypatch.setattr(runner, "build_extractor", boom)
    assert extract_to_store("logmel", stim, out, progress=False,
                            options={"sample_rate": SR, "hop_length": 256, "n_mels": 8}) == out
    with pytest.raises(AssertionError):
        extract_to_store("logmel", stim, out, progress=False, pooling="max",
                         options={"sample_rate": SR, "hop_length": 256, "n_mels": 8})


def test_other_request_refuses_existing_store(tmp_path: Path) -> None:
    stim = _set(n=4)
    out = extract_to_store(_ext(), stim, tmp_path / "s", progress=False)
    with pytest.raises(StoreError, match="--overwrite"):
        extract_to_store(_ext(), stim, out, pooling="max", progress=False)
    extract_to_store(_ext(), stim, out, pooling="max", overwrite=True, progress=False)
    assert FeatureStore(out).pooling == "max"


def test_unfinished_store_error_says_resume(tmp_path: Path) -> None:
    stim = _set(n=6)
    with pytest.raises(KeyboardInterrupt):
        extract_to_store(CountingExtractor(_ext(), fail_after=1), stim, tmp_path / "s", chunk_size=2, progress=False)
    with pytest.raises(StoreError, match="resume"):
        FeatureStore(tmp_path / "s")


def test_shards_in_separate_processes_merge_to_single_run(tmp_path: Path) -> None:
    stim = _set(n=9)
    stim.save(tmp_path / "stim")
    single = extract_to_store(_ext(), stim, tmp_path / "single", chunk_size=3, progress=False)
    code = (
        "import sys; from musiclens.extract import extract_to_store; "
        "from musiclens.extract.baselines import SpectralExtractor; "
        "e = SpectralExtractor('logmel', sample_rate=16000, hop_length=256, n_mels=16, n_fft=512); "
        "extract_to_store(e, sys.argv[1], sys.argv[2], start=int(sys.argv[3]), stop=int(sys.argv[4]), "
        "chunk_size=3, progress=False)"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "stim"), str(tmp_path / f"shard{k}"),
                               str(lo), str(hi)]) for k, (lo, hi) in enumerate([(0, 3), (3, 9)])]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    merged = merge_stores([tmp_path / "shard1", tmp_path / "shard0"], tmp_path / "merged")
    assert _files(merged) == _files(single)
    with pytest.raises(StoreError, match="tile"):
        merge_stores([tmp_path / "shard1"], tmp_path / "bad")


def test_store_and_base_import_without_torch() -> None:
    code = ("import sys; import musiclens.extract.store, musiclens.extract.base, musiclens.extract; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_merge_refuses_shards_of_different_extractors(tmp_path: Path) -> None:
    """Same layer names, stimuli and pooling, different feature settings: not one request."""
    stim = _set(n=6)
    stim.save(tmp_path / "stim")
    other = SpectralExtractor("logmel", sample_rate=SR, hop_length=256, n_mels=16, n_fft=1024)
    extract_to_store(_ext(), tmp_path / "stim", tmp_path / "shard0", start=0, stop=3, chunk_size=3, progress=False)
    extract_to_store(other, tmp_path / "stim", tmp_path / "shard1", start=3, stop=6, chunk_size=3, progress=False)
    assert FeatureStore(tmp_path / "shard0").layer_names == FeatureStore(tmp_path / "shard1").layer_names
    with pytest.raises(StoreError, match="differs from .* in request"):
        merge_stores([tmp_path / "shard0", tmp_path / "shard1"], tmp_path / "merged")
    assert not (tmp_path / "merged").exists()


def test_merge_error_names_the_differing_request_field_and_both_values(tmp_path: Path) -> None:
    stim = _set(n=6)
    stim.save(tmp_path / "stim")
    extract_to_store(_ext(), tmp_path / "stim", tmp_path / "shard0", start=0, stop=3, chunk_size=3, progress=False)
    extract_to_store(_ext(), tmp_path / "stim", tmp_path / "shard1", start=3, stop=6, chunk_size=2, progress=False)
    with pytest.raises(StoreError, match=r"shard1 differs from shard .*shard0 in request\.chunk_size: 3 vs 2 "
                                         r"\(the first value is shard0's, the second shard1's\)") as exc:
        merge_stores([tmp_path / "shard0", tmp_path / "shard1"], tmp_path / "merged")
    assert "request.model" not in str(exc.value)          # only what differs is named
