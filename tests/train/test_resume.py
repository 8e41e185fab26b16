"""Kill-and-resume equals an uninterrupted run; a finished run is not redone; prepare runs once."""

from __future__ import annotations

import json

import pytest
import torch

from musiclens.train.engine import train
from tests.train._engine_helpers import KillAt, Killed, ToyObjective, corpora, one_thread, toy_config  # noqa: F401

N, K = 6, 3


def _state(ckpt) -> dict[str, torch.Tensor]:
    return torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def straight(corpora, tmp_path_factory):  # noqa: F811
    ToyObjective.prepare_calls = 0
    ToyObjective.seen_steps = []
    res = train(toy_config(corpora), out=tmp_path_factory.mktemp("straight") / "run")
    assert ToyObjective.prepare_calls == 1 and ToyObjective.seen_steps == list(range(1, N + 1))
    return res


def test_kill_and_resume_equals_straight_run(corpora, straight, tmp_path) -> None:  # noqa: F811
    cfg = toy_config(corpora)
    ToyObjective.prepare_calls = 0
    ToyObjective.seen_steps = []
    with pytest.raises(Killed):
        train(cfg, out=tmp_path / "run", callbacks=[KillAt(K)])
    assert torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=True)["global_step"] == K
    assert not (tmp_path / "run/backbone").exists()
    assert json.loads((tmp_path / "run/manifest.json").read_text())["finished"] is False
    res = train(cfg, out=tmp_path / "run")
    assert res.resumed_from == K and res.global_step == N and res.finished
    # prepare ran once (before step 1), not again after the resume; the hook saw every step once
    assert ToyObjective.prepare_calls == 1
    assert ToyObjective.seen_steps == list(range(1, N + 1))
    a, b = _state(straight.last_checkpoint), _state(res.last_checkpoint)
    assert a.keys() == b.keys() and any(k.endswith("center") for k in a) and any(k.endswith("ema") for k in a)
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=0, msg=key)
    # the prepared centre is not zero (prepare did run) and the EMA buffer moved
    assert float(a["objective.center"].abs().sum()) > 0 and float(a["objective.ema"].abs().sum()) > 0
    # the run's history in the manifest: one killed run from 0, one resumed from K
    runs = json.loads((tmp_path / "run/manifest.json").read_text())["runs"]
    assert [r["started_at_step"] for r in runs] == [0, K] and runs[-1]["ended_at_step"] == N


def test_a_different_seed_gives_different_weights(corpora, straight, tmp_path) -> None:  # noqa: F811
    res = train(toy_config(corpora, seed=6), out=tmp_path / "run")
    a, b = _state(straight.last_checkpoint), _state(res.last_checkpoint)
    assert not torch.equal(a["objective.head.weight"], b["objective.head.weight"])


def test_finished_run_is_not_redone(corpora, straight) -> None:  # noqa: F811
    before = straight.last_checkpoint.stat().st_mtime_ns
    ToyObjective.prepare_calls = 0
    again = train(toy_config(corpora), out=straight.run_dir)
    assert again.already_finished and again.finished and again.global_step == N
    assert again.backbone == straight.run_dir / "backbone"
    assert straight.last_checkpoint.stat().st_mtime_ns == before and ToyObjective.prepare_calls == 0


def test_resume_refuses_an_unsafe_checkpoint(corpora, tmp_path) -> None:  # noqa: F811
    from musiclens.errors import CheckpointError

    cfg = toy_config(corpora)
    with pytest.raises(Killed):
        train(cfg, out=tmp_path / "run", callbacks=[KillAt(K)])
    ckpt = tmp_path / "run/checkpoints/last.ckpt"
    obj = torch.load(ckpt, weights_only=True)
    obj["hyper_parameters"] = {"evil": Killed("x")}  # an object that needs a full unpickle
    torch.save(obj, ckpt)
    with pytest.raises(CheckpointError, match="weights_only"):
        train(cfg, out=tmp_path / "run")
