"""Distributed extraction: two processes split the stimuli, rank 0 merges, the store equals one process's
byte for byte; two "nodes" meet through the launcher environment; a rank that dies fails the whole run,
and running it again resumes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from musiclens.errors import ConfigError, ExtractionError
from musiclens.extract import build_extractor, extract_to_store
from musiclens.extract.distributed import free_port, launcher_env, resolve_devices, shard_ranges, slurm_root_node
from musiclens.extract.store import FeatureStore
from musiclens.stimuli.stimulus_set import StimulusSet
from tests.extract._helpers import SR, tiny_w2v_config, tones

pytestmark = pytest.mark.slow   # about 40 s on 2 cores (process start-ups); runs in the default suite

N_STIM = 36          # 5 chunks of 8 (the last one short): ranks take chunks 0-1 and 2-4
CHUNK, BATCH = 8, 4
MODEL = dict(model="wav2vec2", randomize=True, seed=3, options={"config": tiny_w2v_config()})


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _rank_threads() -> int:
    """Threads each of two spawned ranks uses (spawn's default): the reference runs with as many."""
    return max(1, (os.cpu_count() or 1) // 2)


def _files(store: Path) -> dict[str, str]:
    """Hashes of every file of a store except its manifest (timings and environment differ by nature)."""
    return {str(p.relative_to(store)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(store.rglob("*")) if p.is_file() and p.name != "manifest.json"}


@pytest.fixture(scope="module")
def stimuli(tmp_path_factory: pytest.TempPathFactory) -> Path:
    clips = tones(N_STIM, seconds=0.2, vary=True)
    ids = [f"s{i:02d}" for i in range(N_STIM)]
    path = tmp_path_factory.mktemp("dist") / "stim"
    StimulusSet(clips, pd.DataFrame({"stimulus_id": ids}), sample_rate=SR).save(path)
    return path


@pytest.fixture(scope="module")
def reference(stimuli: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "one"
    with _threads(_rank_threads()):
        extract_to_store(MODEL["model"], stimuli, out, pooling="none", chunk_size=CHUNK, batch_size=BATCH,
                         randomize=True, seed=3, options=MODEL["options"], progress=False)
    return out


def test_shard_ranges_are_whole_chunks_covering_every_row() -> None:
    assert shard_ranges(36, 8, 2) == [(0, 16), (16, 36)]
    assert shard_ranges(36, 8, 3) == [(0, 8), (8, 24), (24, 36)]
    assert shard_ranges(5, 8, 2) == [(0, 0), (0, 5)]          # fewer chunks than ranks: rank 0 idles
    for n, c, w in [(100, 7, 4), (64, 64, 3), (1, 1, 2)]:
        ranges = shard_ranges(n, c, w)
        assert ranges[0][0] == 0 and ranges[-1][1] == n
        assert all(a == b_prev for (_, b_prev), (a, _) in zip(ranges[:-1], ranges[1:]))
        assert all(a % c == 0 for a, b in ranges if a < b)


def test_launcher_environment_is_read_from_torchrun_and_slurm_variables(monkeypatch) -> None:  # noqa: ANN001
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_PROCID", "SLURM_NTASKS",
                "SLURM_LOCALID", "SLURM_JOB_NODELIST", "SLURM_JOB_ID"):
        monkeypatch.delenv(key, raising=False)
    assert launcher_env() is None and resolve_devices("auto") == 1 and resolve_devices("3") == 3
    with pytest.raises(ConfigError, match="launcher"):
        resolve_devices("env")
    monkeypatch.setenv("SLURM_PROCID", "3")
    monkeypatch.setenv("SLURM_NTASKS", "4")
    monkeypatch.setenv("SLURM_LOCALID", "1")
    monkeypatch.setenv("SLURM_JOB_NODELIST", "gpu[07-08],cpu1")
    monkeypatch.setenv("SLURM_JOB_ID", "4821234")
    env = launcher_env()
    assert env is not None and (env.rank, env.world_size, env.local_rank) == (3, 4, 1)
    assert (env.master_addr, env.master_port, env.source) == ("gpu07", 16234, "slurm")
    assert slurm_root_node("node[3,5-7]") == "node3" and slurm_root_node("a1,b2") == "a1"
    assert resolve_devices("auto") == "env"
    with pytest.raises(ConfigError, match="rank 3 of 4"):
        resolve_devices(2)                                    # more processes per launched rank: refused
    monkeypatch.setenv("RANK", "1")                            # torchrun's variables come first
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("MASTER_ADDR", "10.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    env = launcher_env()
    assert env is not None and (env.rank, env.world_size, env.master_addr, env.master_port, env.source) == \
        (1, 2, "10.0.0.1", 29500, "env")


def test_two_processes_give_the_one_process_store_byte_for_byte(stimuli: Path, reference: Path,
                                                                tmp_path: Path) -> None:
    out = tmp_path / "two"
    extract_to_store(MODEL["model"], stimuli, out, pooling="none", chunk_size=CHUNK, batch_size=BATCH,
                     randomize=True, seed=3, options=MODEL["options"], progress=False, devices=2)
    assert _files(out) == _files(reference)
    merged, one = FeatureStore(out).manifest, FeatureStore(reference).manifest
    assert merged["key"] == one["key"] and merged["request"] == one["request"]
    assert merged["distributed"]["shards"] == [[0, 16], [16, 36]]
    assert not out.with_name("two.shards").exists()
    # the merged store is the one-process request's store: a one-process run finds it finished
    before = (out / "manifest.json").read_bytes()
    extract_to_store(MODEL["model"], stimuli, out, pooling="none", chunk_size=CHUNK, batch_size=BATCH,
                     randomize=True, seed=3, options=MODEL["options"], progress=False)
    assert (out / "manifest.json").read_bytes() == before


def test_two_nodes_meet_through_the_launcher_environment(stimuli: Path, reference: Path, tmp_path: Path) -> None:
    """Two separate commands, RANK 0 and 1 of WORLD_SIZE 2 on 127.0.0.1 (what torchrun or two nodes set)."""
    out = tmp_path / "nodes"
    port = free_port()
    procs = []
    for rank in (0, 1):
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
        env.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                   OMP_NUM_THREADS=str(_rank_threads()), PYTHONWARNINGS="ignore")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "musiclens", "extract", "-m", "wav2vec2", "-s", str(stimuli), "-o", str(out),
             "--pooling", "none", "--chunk-size", str(CHUNK), "--batch-size", str(BATCH), "--randomize", "--seed", "3",
             "--option", f"config={json.dumps(tiny_w2v_config())}"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]
    assert _files(out) == _files(reference)
    assert FeatureStore(out).manifest["distributed"] == {"world_size": 2, "launcher": "env",
                                                         "shards": [[0, 16], [16, 36]]}


class DyingExtractor:
    """The tiny model, built in each process (an HF model does not pickle), that logs each call as
    ``RANK first_id n``; rank 1 dies (``os._exit``) at its second chunk while the flag file exists
    (removing it first, so the run after that goes through)."""

    def __init__(self, *, log: Path, flag: Path) -> None:
        self.log, self.flag = str(log), str(flag)
        self._inner: Any = None
        self.calls = 0
        inner = self.inner
        self.name, self.sample_rate = inner.name, inner.sample_rate
        self.layer_names, self.frame_rate_hz = inner.layer_names, inner.frame_rate_hz
        self.min_samples = getattr(inner, "min_samples", 1)

    @property
    def inner(self) -> Any:
        if self._inner is None:
            self._inner = build_extractor(MODEL["model"], randomize=True, seed=3, batch_size=BATCH,
                                          **MODEL["options"])
        return self._inner

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_inner": None}

    def extract(self, audio: Any, *, layers: Any = None, stimulus_ids: Any = None) -> Any:
        rank = os.environ.get("RANK", "-")
        if rank == "1" and self.calls == 1 and os.path.exists(self.flag):
            os.unlink(self.flag)
            os._exit(3)
        self.calls += 1
        with open(self.log, "a") as fh:
            fh.write(f"{rank} {stimulus_ids[0]} {len(stimulus_ids)}\n")
        return self.inner.extract(audio, layers=layers, stimulus_ids=stimulus_ids)

    def info(self) -> dict[str, Any]:
        return self.inner.info()


def test_a_dead_rank_fails_the_run_and_running_it_again_resumes(stimuli: Path, reference: Path,
                                                                tmp_path: Path) -> None:
    log, flag = tmp_path / "calls.log", tmp_path / "die"
    flag.touch()
    model = DyingExtractor(log=log, flag=flag)
    out = tmp_path / "dies"
    kw = dict(pooling="none", chunk_size=CHUNK, batch_size=BATCH, progress=False, devices=2)
    with pytest.raises(ExtractionError, match=r"rank 1 died \(exit code 3\)"):
        extract_to_store(model, stimuli, out, **kw)
    assert not out.exists() and not flag.exists()              # never a finished-looking output
    shards = out.with_name("dies.shards")
    first = log.read_text().splitlines()
    assert [line.split()[:2] for line in first if line.startswith("1 ")] == [["1", "s16"]]   # chunk 2 only
    log.unlink()
    extract_to_store(model, stimuli, out, **kw)
    assert _files(out) == _files(reference)
    again = [line.split()[:2] for line in log.read_text().splitlines()]
    # rank 1 resumed after its committed chunk 2; rank 0 redid at most the chunks it had not committed
    assert [s for r, s in again if r == "1"] == ["s24", "s32"]
    assert {s for r, s in again if r == "0"} <= {"s00", "s08"}
    assert not shards.exists()
