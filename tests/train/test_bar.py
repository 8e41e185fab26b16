"""Learning bars: the rules, the validation of the untrained network, and the verdict in the manifest."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from musiclens.errors import ConfigError
from musiclens.train.bar import Bar, evaluate_bar, resolve_bar
from musiclens.train.engine import train
from tests.train._engine_helpers import corpora, one_thread, toy_config  # noqa: F401


def test_bar_rules_by_hand() -> None:
    absolute = Bar("val/frame_f1", 0.5)
    assert evaluate_bar(absolute, {"val/frame_f1": 0.51}, None)["passed"]
    assert not evaluate_bar(absolute, {"val/frame_f1": 0.49}, None)["passed"]
    lower = Bar("val/per", 0.5, "lower")
    assert evaluate_bar(lower, {"val/per": 0.3}, None)["passed"] and not evaluate_bar(lower, {"val/per": 0.7}, None)["passed"]
    gain = Bar("val/top1", 0.2, "higher", "init")
    v = evaluate_bar(gain, {"val/top1": 0.45}, {"val/top1": 0.2})
    assert v["passed"] and v["gain"] == pytest.approx(0.25) and v["rule"] == "(val/top1 - init) >= 0.2"
    assert not evaluate_bar(gain, {"val/top1": 0.35}, {"val/top1": 0.2})["passed"]
    rel = Bar("val/cqt", 0.1, "lower", "init", relative=True)
    assert evaluate_bar(rel, {"val/cqt": 0.8}, {"val/cqt": 1.0})["gain"] == pytest.approx(0.2)
    assert not evaluate_bar(rel, {"val/cqt": 0.95}, {"val/cqt": 1.0})["passed"]
    missing = evaluate_bar(gain, {}, None)
    assert not missing["passed"] and "no finite validation val/top1" in missing["reason"]
    no_init = evaluate_bar(gain, {"val/top1": 0.9}, None)
    assert not no_init["passed"] and "initialisation" in no_init["reason"]


def test_resolve_bar_overrides_the_default_and_rejects_bad_keys() -> None:
    default = {"metric": "val/frame_f1", "threshold": 0.5, "direction": "higher"}
    assert resolve_bar(None, default) == Bar("val/frame_f1", 0.5)
    assert resolve_bar({"threshold": 0.7}, default) == Bar("val/frame_f1", 0.7)
    assert resolve_bar(None, None) is None
    with pytest.raises(ConfigError, match="unknown key 'treshold'"):
        resolve_bar({"treshold": 0.7}, default)
    with pytest.raises(ConfigError, match="direction"):
        resolve_bar({"direction": "up"}, default)
    with pytest.raises(ConfigError, match="relative_to"):
        resolve_bar({"relative_to": "random"}, default)


def test_a_bad_bar_fails_before_the_run_folder_exists(corpora, tmp_path) -> None:  # noqa: F811
    with pytest.raises(ConfigError, match="direction"):
        train(toy_config(corpora, bar={"metric": "val/loss", "threshold": 1.0, "direction": "up"}), out=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_validation_at_init_equals_the_loop_and_the_verdict_lands_in_the_manifest(corpora, tmp_path) -> None:  # noqa: F811
    # lr ~ 0: the weights at step 3 are the initial ones, so the validation loop at step 3 must
    # give what the engine measured before the first step
    cfg = toy_config(corpora, optim={"lr": 1e-12, "schedule": "constant", "warmup_steps": 0, "max_steps": 3},
                     bar={"metric": "val/loss", "threshold": -1.0, "direction": "lower", "relative_to": "init"})
    run = train(cfg, out=tmp_path / "run")
    init = json.loads((tmp_path / "run" / "val_at_init.json").read_text())["metrics"]
    logged = pd.read_csv(tmp_path / "run" / "logs" / "metrics.csv").dropna(subset=["val/loss"]).iloc[-1]
    assert init["val/loss"] == pytest.approx(float(logged["val/loss"]), rel=1e-6)
    assert init["val/mean_abs_audio"] == pytest.approx(float(logged["val/mean_abs_audio"]), rel=1e-6)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["metrics_at_init"] == init
    bar = manifest["bar"]
    assert bar["passed"] and bar["at_init"] == pytest.approx(init["val/loss"]) and bar["value"] == run.metrics["val/loss"]
    # an impossible bar is recorded as missed, with the numbers
    strict = train({**cfg, "bar": {**cfg["bar"], "threshold": 1e9}}, out=tmp_path / "strict")
    missed = json.loads((strict.run_dir / "manifest.json").read_text())["bar"]
    assert missed["passed"] is False and missed["value"] == pytest.approx(bar["value"])


def test_measuring_the_untrained_network_does_not_change_training(corpora, tmp_path) -> None:  # noqa: F811
    val_folder = corpora["music"]
    with_val = train(toy_config(corpora, data={"val": [str(val_folder)]}), out=tmp_path / "a")
    without = train(toy_config(corpora, data={"val": None}, trainer={"val_every_n_steps": 0}), out=tmp_path / "b")
    assert (tmp_path / "a" / "val_at_init.json").is_file() and not (tmp_path / "b" / "val_at_init.json").exists()
    sa = torch.load(with_val.last_checkpoint, weights_only=True)["state_dict"]
    sb = torch.load(without.last_checkpoint, weights_only=True)["state_dict"]
    for key in sa:
        np.testing.assert_array_equal(sa[key].numpy(), sb[key].numpy(), err_msg=key)


def test_progress_is_plain_lines_when_stderr_is_not_a_terminal(corpora, tmp_path, capsys) -> None:  # noqa: F811
    train(toy_config(corpora, trainer={"progress_bar": True}), out=tmp_path / "plain")
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("train plain: step ")]
    assert lines and lines[-1].startswith("train plain: step 6/6 (100%) loss ") and "s left" in lines[-1]
    assert "Epoch" not in err            # no redrawn bar in a log
