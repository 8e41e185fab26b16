"""Bad training configs fail with a clear ConfigError before anything is written."""

from __future__ import annotations

import importlib.util

import pytest
import yaml

from musiclens.errors import ConfigError, StoreError
from musiclens.train import config as config_mod
from musiclens.train.config import apply_overrides, load_train_config
from musiclens.train.engine import train
from tests.train._engine_helpers import corpora, one_thread, toy_config  # noqa: F401


def _fails(cfg, out, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        train(cfg, out=out)
    assert not out.exists()  # nothing written: no config.yaml, no checkpoint


@pytest.mark.parametrize("section, change, match", [
    ("top", {"objectiv": "toy"}, r"unknown key 'objectiv'.*Did you mean 'objective'.*Valid keys"),
    ("optim", {"learning_rate": 1.0}, r"unknown key 'learning_rate' in section 'optim'.*Valid keys: lr"),
    ("trainer", {"precison": "32"}, r"Did you mean 'precision'"),
    ("optim", {"lr": 0}, r"optim.lr must be > 0"),
    ("optim", {"lr": -1e-3}, r"optim.lr must be > 0"),
    ("optim", {"max_steps": 0}, r"optim.max_steps must be > 0"),
    ("optim", {"schedule": "exponential"}, r"optim.schedule must be one of cosine, linear, constant"),
    ("trainer", {"precision": "8"}, r"trainer.precision must be one of"),
    ("data", {"weights": [1.0, 2.0]}, r"one weight per training corpus"),
    ("data", {"val": 1.5}, r"must lie in \(0, 1\)"),
])
def test_structural_errors(corpora, tmp_path, section, change, match) -> None:  # noqa: F811
    cfg = toy_config(corpora)
    if section == "top":
        cfg.update(change)
    else:
        cfg[section] = {**cfg[section], **change}
    _fails(cfg, tmp_path / "run", match)


def test_unknown_objective_lists_the_valid_ones(corpora, tmp_path) -> None:  # noqa: F811
    cfg = toy_config(corpora, objective="ntxnet")
    with pytest.raises(ConfigError) as err:
        train(cfg, out=tmp_path / "run")
    msg = str(err.value)
    assert "unknown objective 'ntxnet'" in msg and "Did you mean 'ntxent'" in msg
    for name in ("ntxent", "mert", "wav2vec2", "data2vec", "transcription", "ctc", "toy"):
        assert name in msg
    assert not (tmp_path / "run").exists()


def test_missing_corpus(corpora, tmp_path) -> None:  # noqa: F811
    cfg = toy_config(corpora, data={"train": [str(corpora["music"]), str(tmp_path / "nowhere")]})
    _fails(cfg, tmp_path / "run", r"corpus folder .*nowhere does not exist")


def test_corpus_kind_and_targets_checked_against_the_objective(corpora, tmp_path) -> None:  # noqa: F811
    # a CTC-like objective (speech only) on a music corpus
    _fails(toy_config(corpora, options={"kinds": ["speech"]}), tmp_path / "a",
           r"trains on speech corpora, but .* is a music corpus")
    # phoneme targets from a music corpus
    _fails(toy_config(corpora, options={"targets": ["phonemes"]}), tmp_path / "b",
           r"needs 'phonemes' targets, which the music corpus")
    if "speech" in corpora:  # piano rolls from speech
        cfg = toy_config(corpora, options={"targets": ["piano_roll"], "frame_rate": 100.0},
                         data={"train": [str(corpora["music"]), str(corpora["speech"])]})
        _fails(cfg, tmp_path / "c", r"needs 'piano_roll' targets, which the speech corpus")


def test_inconsistent_shapes(corpora, tmp_path) -> None:  # noqa: F811
    # 5 ms crop < one 10 ms backbone frame
    _fails(toy_config(corpora, data={"crop_s": 0.005}), tmp_path / "a", r"shorter than one backbone frame")
    # data asked at 24 kHz for a 16 kHz backbone
    _fails(toy_config(corpora, options={"data_rate": 24000}), tmp_path / "b",
           r"backbone reads 16000 Hz audio but objective 'toy' asks for 24000 Hz")
    # unknown option of the objective (the builder's dataclass check)
    _fails(toy_config(corpora, options={"mask_prb": 0.5}), tmp_path / "c", r"'mask_prb' \(did you mean 'mask_prob'\?\)")


def test_tensorboard_missing_says_how_to_install(corpora, tmp_path, monkeypatch) -> None:  # noqa: F811
    real = importlib.util.find_spec
    monkeypatch.setattr(config_mod.importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("tensorboard") else real(name, *a))
    _fails(toy_config(corpora, trainer={"logger": "tensorboard"}), tmp_path / "run", r"pip install tensorboard")


def test_overrides_and_cli_objective(corpora, tmp_path) -> None:  # noqa: F811
    cfg = load_train_config(toy_config(corpora), overrides=["optim.lr=0.5", "trainer.devices=1", "data.batch_size=3"],
                            max_steps=9)
    assert cfg["optim"]["lr"] == 0.5 and cfg["data"]["batch_size"] == 3 and cfg["optim"]["max_steps"] == 9
    assert cfg["optim"]["betas"] == [0.9, 0.98]  # defaults filled in
    with pytest.raises(ConfigError, match="key.sub=value"):
        apply_overrides({}, ["optim.lr"])
    with pytest.raises(ConfigError, match="command line names objective 'ntxent' but the config names 'toy'"):
        load_train_config(toy_config(corpora), objective="ntxent")
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(toy_config(corpora)))
    assert load_train_config(path) == load_train_config(toy_config(corpora))


def test_run_dir_of_another_config_is_refused(corpora, tmp_path) -> None:  # noqa: F811
    out = tmp_path / "run"
    cfg = toy_config(corpora, optim={"max_steps": 2}, trainer={"val_every_n_steps": 0})
    res = train(cfg, out=out)
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved == load_train_config(cfg) and saved["optim"]["max_steps"] == 2
    other = toy_config(corpora, optim={"max_steps": 2, "lr": 0.5}, trainer={"val_every_n_steps": 0})
    with pytest.raises(ConfigError, match="different configuration.*--overwrite"):
        train(other, out=out)
    assert yaml.safe_load((out / "config.yaml").read_text()) == saved  # untouched
    again = train(other, out=out, overwrite=True)
    assert again.finished and not again.already_finished and again.global_step == 2
    assert yaml.safe_load((out / "config.yaml").read_text())["optim"]["lr"] == 0.5
    assert res.backbone is not None
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    for overwrite in (False, True):   # a folder musiclens did not make is refused, --overwrite or not
        with pytest.raises(StoreError, match="musiclens did not write"):
            train(cfg, out=foreign, overwrite=overwrite)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"] and (foreign / "notes.txt").read_text() == "mine"


def test_rsa_callback_note_set_checked_before_training(corpora, tmp_path) -> None:  # noqa: F811
    # MIDI 60-65: no octave repeats, so the chroma model RDM is constant -> refused up front
    rsa = {"every_n_steps": 1, "stimuli": "additive", "midi": list(range(60, 66)), "duration_s": 0.3, "hold_s": 0.2}
    _fails(toy_config(corpora, rsa_callback=rsa), tmp_path / "a", r"rsa_callback: .*chroma.* is constant")
    _fails(toy_config(corpora, rsa_callback={"every_n_steps": 1, "stimuli": "no-such-grid"}), tmp_path / "b",
           r"neither a note grid")
