from __future__ import annotations

import json
import re

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


def _seeded_study(**study):
    return {
        "study": {"seed": 0, **study},
        "corpora": {"music": {"kind": "music", "n": 4}},
        "training": {
            "ssl": {"objective": "wav2vec2", "data": {"train": ["music"]}},
            "ft": {"objective": "transcription", "from": "ssl", "data": {"train": ["music"]}},
        },
        "networks": {"cqt": {"model": "cqt"}, "ssl": {"trained": "ssl"},
                     "random": {"trained": "ssl", "randomize": True}, "ft": {"trained": "ft"}},
        "probes": {"networks": ["ft", "cqt"]},
        "steps": {"run": ["stimuli"]},
    }


def test_seeds_expand_conditions_networks_and_analysis_lists() -> None:
    from musiclens.study import network_groups

    s = validate_study(_seeded_study(seeds=[0, 2]))
    assert list(s["training"]) == ["ssl-s0", "ssl-s2", "ft-s0", "ft-s2"]
    assert s["training"]["ft-s2"]["from"] == "ssl-s2" and s["training"]["ft-s2"]["seed"] == 2
    assert s["training"]["ft-s2"]["group"] == "ft"
    assert list(s["networks"]) == ["cqt", "ssl-s0", "ssl-s2", "random-s0", "random-s2", "ft-s0", "ft-s2"]
    assert s["networks"]["random-s2"] == {**s["networks"]["random-s2"], "trained": "ssl-s2", "randomize": True, "seed": 2}
    assert s["probes"]["networks"] == ["ft-s0", "ft-s2", "cqt"]
    groups = network_groups(s)
    assert groups["cqt"] == ("cqt", None) and groups["ft-s2"] == ("ft", 2) and groups["random-s0"] == ("random", 0)
    # validating the expanded study again changes nothing (config.yaml of a run reloads as it is)
    assert validate_study(s) == s
    # without seeds nothing is renamed
    plain = validate_study(_seeded_study())
    assert list(plain["training"]) == ["ssl", "ft"] and "ssl" in plain["networks"]


def test_seed_errors_name_the_problem() -> None:
    with pytest.raises(ConfigError, match="distinct non-negative integer seeds"):
        validate_study(_seeded_study(seeds=[0, 0]))
    with pytest.raises(ConfigError, match="distinct non-negative integer seeds"):
        validate_study(_seeded_study(seeds="three"))
    raw = _seeded_study()
    raw["training"]["ssl"]["seeds"] = [0, 1]
    with pytest.raises(ConfigError, match="give 'ft' seeds too"):
        validate_study(raw)
    raw["training"]["ft"]["seeds"] = [1, 2]
    with pytest.raises(ConfigError, match="parent 'ssl' is trained with seeds \\[0, 1\\] only"):
        validate_study(raw)
    raw = _seeded_study(seeds=[0, 1])
    raw["training"]["ssl"]["seed"] = 3
    with pytest.raises(ConfigError, match="both 'seed' and seeds"):
        validate_study(raw)


def test_contrasts_are_checked_before_the_first_step(tmp_path) -> None:
    raw = _seeded_study(seeds=[0, 1])
    raw["steps"]["run"] = ["stimuli", "contrasts"]
    raw["contrasts"] = {"pairs": [["ft", "ssl"]], "rsa": ["partial-tau-b:chrome"]}
    with pytest.raises(ConfigError, match="model RDM 'chrome'"):
        run_study(raw, out=tmp_path / "run")
    raw["contrasts"] = {"pairs": [["ft", "sssl"]], "rsa": ["partial-tau-b:chroma"]}
    with pytest.raises(ConfigError, match="'sssl', which is not a network"):
        run_study(raw, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- the whole study is checked first
def _full_study() -> dict:
    return {
        "study": {"name": "check", "seed": 0},
        "stimuli": {"grid": "quick", "instruments": ["flute"], "midi": [60, 61]},
        "networks": {"mfcc": {"model": "mfcc"}},
        "corpora": {"music": {"kind": "music", "n": 4}},
        "training": {"ssl": {"objective": "ntxent", "data": {"train": "music"}, "optim": {"max_steps": 2}}},
        "probes": {"note_tasks": ["pitch"]},
        "rsa": {"n_permutations": 10, "n_bootstraps": 10},
        "steps": {"run": ["stimuli", "corpora", "train", "extract", "rsa", "probe", "report"]},
    }


@pytest.mark.parametrize(("section", "key", "value", "message"), [
    ("rsa", "n_permutations", "many", "rsa.n_permutations must be an integer"),
    ("rsa", "n_bootstraps", -5, "rsa.n_bootstraps must be an integer >= 0"),
    ("rsa", "models", ["pitch_height", "chromaa"], "chromaa"),
    ("rsa", "distance", "manhattan", "manhattan"),
    ("networks", "mfcc", {"model": "no-such-net"}, "networks.mfcc.model 'no-such-net'"),
    ("networks", "mfcc", {"model": "mfcc", "batch_size": 0}, "networks.mfcc.batch_size must be an integer >= 1"),
    ("corpora", "music", {"kind": "music", "n": -1}, "corpora.music.n must be an integer >= 1"),
    ("corpora", "music", {"kind": "music", "n": 4, "preset": "nope"}, "nope"),
    ("training", "ssl", {"objective": "ntxent", "data": {"train": "music"}, "optim": {"max_stepz": 2}},
     "training.ssl"),
    ("probes", "note_tasks", ["pitch", "timbre_of_the_gods"], "timbre_of_the_gods"),
    ("probes", "max_epochs", -3, "probes.max_epochs must be an integer >= 1"),
    ("stimuli", "instruments", ["kazoo_supreme"], "kazoo_supreme"),
    ("stimuli", "duration_s", "long", "stimuli.duration_s must be a number (or null)"),
    ("stimuli", "instruments", "piano", "stimuli.instruments must be a list (or null)"),
    ("probes", "networks", "mfcc", "probes.networks must be a list (or null)"),
])
def test_a_bad_entry_anywhere_fails_before_the_first_step(tmp_path, section, key, value, message) -> None:
    from musiclens.errors import MusicLensError

    study = _full_study()
    study.setdefault(section, {})[key] = value
    out = tmp_path / "run"
    with pytest.raises(MusicLensError, match=re.escape(message)):
        run_study(study, out=out)
    assert not out.exists()   # nothing was rendered, built, trained or extracted


def test_the_full_study_used_above_passes_its_checks(tmp_path) -> None:
    from musiclens.study import STEP_CHECKS

    cfg = load_study(_full_study())
    for step in cfg["steps"]["run"]:
        if step in STEP_CHECKS:
            STEP_CHECKS.get(step)(cfg)


def test_every_study_step_has_a_check() -> None:
    from musiclens.study import STEP_CHECKS, STEPS

    assert set(STEPS.names()) - set(STEP_CHECKS.names()) <= {"report", "summary"}


def test_an_empty_study_file_is_refused(tmp_path) -> None:
    """An empty file used to run the default two steps silently."""
    for text in ("", "# only a comment\n", "{}\n"):
        path = tmp_path / "empty.yaml"
        path.write_text(text)
        with pytest.raises(ConfigError, match="is empty"):
            load_study(path)
