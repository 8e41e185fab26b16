from __future__ import annotations

import json

import pytest
import yaml

from musiclens.errors import ConfigError
from musiclens.study import STEPS, load_study, run_study, validate_study

TINY = {
    "study": {"name": "tiny", "seed": 1},
    "stimuli": {"grid": "quick", "instruments": ["acoustic_grand_piano", "flute"], "midi": [60, 72],
                "duration_s": 0.5, "hold_s": 0.3},
}


def test_default_study_is_embedded_and_valid() -> None:
    cfg = load_study()
    assert cfg["study"]["name"] == "chroma-emergence" and load_study("default") == cfg
    assert cfg["stimuli"]["grid"] == "quick" and cfg["steps"]["run"][:2] == ["stimuli", "summary"]
    assert load_study("chroma-emergence", scale="full")["stimuli"]["grid"] == "paper"


def test_misspelt_key_is_named_with_valid_options(tmp_path) -> None:
    with pytest.raises(ConfigError) as err:
        validate_study({"stimuli": {"gird": "paper"}})
    msg = str(err.value)
    assert "unknown key 'gird'" in msg and "Did you mean 'grid'" in msg and "instruments" in msg
    with pytest.raises(ConfigError, match="unknown key 'stimulus'"):
        validate_study({"stimulus": {}})
    bad = tmp_path / "bad.yaml"
    bad.write_text("stimuli: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_study(bad)
    with pytest.raises(ConfigError, match="unknown study step|Valid names"):
        validate_study({"steps": {"run": ["stimuli", "fly"]}})
    with pytest.raises(ConfigError, match="embedded"):
        load_study("no_such_study")


def test_run_writes_outputs_and_resumes_without_redoing(tmp_path, monkeypatch) -> None:
    out = run_study(TINY, out=tmp_path / "run")
    for name in ("config.yaml", "manifest.json", "steps.json", "summary.csv", "summary.json", "stimuli.png"):
        assert (out / name).is_file(), name
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 1 and set(manifest["timings_s"]) == {"stimuli", "summary"}
    assert manifest["environment"]["packages"]["numpy"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_stimuli"] == 4 and summary["instruments_per_family"] == {"flute": 1, "keyboard": 1}
    assert yaml.safe_load((out / "config.yaml").read_text())["stimuli"]["midi"] == [60, 72]

    calls: list[str] = []
    real = STEPS.get("summary")
    monkeypatch.setitem(STEPS._entries, "summary", lambda c, d: calls.append("summary") or real(c, d))
    run_study(TINY, out=out)
    assert calls == []                                   # finished: skipped
    (out / "summary.json").unlink()                      # an interrupted step: redone, same numbers
    run_study(TINY, out=out)
    assert calls == ["summary"]
    assert json.loads((out / "summary.json").read_text()) == summary


def test_run_refuses_a_different_config_in_the_same_folder(tmp_path) -> None:
    run_study(TINY, out=tmp_path / "run")
    other = {**TINY, "study": {"name": "tiny", "seed": 2}}
    with pytest.raises(ConfigError, match="different study configuration"):
        run_study(other, out=tmp_path / "run")
