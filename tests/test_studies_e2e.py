"""The three embedded studies end to end at their ``tiny`` scale (the quick and full scales share
the same files and code paths, only sizes differ), plus interruption and resumption."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import musiclens.study as study_mod
from musiclens.errors import ConfigError
from musiclens.study import load_study, run_study

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _timings(run_dir: Path) -> dict[str, float]:
    return json.loads((run_dir / "manifest.json").read_text())["timings_s"]


def test_chroma_emergence_tiny(tmp_path: Path) -> None:
    run = run_study("chroma-emergence", out=tmp_path / "run", scale="tiny")
    rsa = pd.read_csv(run / "rsa" / "rsa.csv")
    assert {"cqt", "mfcc", "random", "ssl", "transcription", "asr", "madmom-onsets"} <= set(rsa["network"])
    # trained networks come from the run's own training conditions, with every layer
    for cond in ("ssl", "transcription", "asr"):
        assert (run / "train" / cond / "backbone" / "model.safetensors").is_file()
        assert set(rsa[rsa.network == cond]["layer"]) == {f"layer_{i:02d}" for i in range(5)}
    # fine-tuning starts from the SSL backbone
    cfg = json.loads((run / "train" / "transcription" / "manifest.json").read_text())
    assert cfg["finished"]
    curve = pd.read_csv(run / "train" / "transcription" / "rsa_curve.csv")
    assert sorted(curve["step"].unique()) == [0, 3]
    md = (run / "report.md").read_text()
    assert "Partial chroma tau-a" in md and "During transcription training" in md
    # madmom's 1-unit output layer has no correlation RDM: left out, and recorded
    steps = json.loads((run / "steps.json").read_text())
    assert steps["rsa"]["skipped_layers"] == {"madmom-onsets": ["dense2"]}


def test_vit1d_emergence_tiny_resumes_without_redoing_steps(tmp_path: Path, monkeypatch) -> None:
    reference = run_study("vit1d-emergence", out=tmp_path / "ref", scale="tiny")
    probe_ref = pd.read_csv(reference / "probe" / "probe.csv")
    assert {"chords", "onsets", "pitch", "pitch_class", "instrument"} <= set(probe_ref["task"])
    assert {"cls", "mean", "cls+mean", "frames"} <= set(probe_ref["pooling"])
    att = pd.read_csv(reference / "attention" / "attention_summary.csv")
    assert {"vit", "vit-random"} <= set(att["network"]) and "spectral_flux" in set(att["recipe"])
    ssm = pd.read_csv(reference / "ssm" / "ssm_summary.csv")
    assert {"chroma", "mfcc", "same_chord"} <= set(ssm["reference"])
    page = (reference / "report.html").read_text()
    for figure in ("probe profile pitch", "attention maps", "ssm grid", "stimuli"):
        assert figure in page.lower(), figure
    answer = (reference / "report.md").read_text().split("## Findings")[0]
    assert "frame tokens carry" in answer and "Onsets in vit's attention" in answer and "layer SSMs match" in answer

    # interrupted run: the probe step dies; running again finishes, the finished steps are not redone
    original = study_mod.STEPS.get("probe")

    def killed(study, run_dir):
        raise KeyboardInterrupt("simulated kill")

    monkeypatch.setitem(study_mod.STEPS._entries, "probe", killed)
    with pytest.raises(KeyboardInterrupt):
        run_study("vit1d-emergence", out=tmp_path / "run", scale="tiny")
    done_before = set(json.loads((tmp_path / "run" / "steps.json").read_text()))
    assert {"stimuli", "corpora", "train", "extract", "rsa"} <= done_before and "probe" not in done_before
    calls: list[str] = []

    def counting(name):
        fn = original if name == "probe" else study_mod.STEPS.get(name)

        def wrapped(study, run_dir):
            calls.append(name)
            return fn(study, run_dir)
        return wrapped

    for name in ["stimuli", "summary", "corpora", "train", "extract", "rsa", "probe", "attention", "ssm", "report"]:
        monkeypatch.setitem(study_mod.STEPS._entries, name, counting(name))
    run = run_study("vit1d-emergence", out=tmp_path / "run", scale="tiny")
    assert calls == ["probe", "attention", "ssm", "report"]
    # same config, same numbers
    pd.testing.assert_frame_equal(pd.read_csv(run / "probe" / "probe.csv"), probe_ref)
    pd.testing.assert_frame_equal(pd.read_csv(run / "rsa" / "rsa.csv"), pd.read_csv(reference / "rsa" / "rsa.csv"))
    pd.testing.assert_frame_equal(pd.read_csv(run / "ssm" / "ssm.csv"), pd.read_csv(reference / "ssm" / "ssm.csv"))


def test_mert_teachers_tiny(tmp_path: Path) -> None:
    run = run_study("mert-teachers", out=tmp_path / "run", scale="tiny")
    probe = pd.read_csv(run / "probe" / "probe.csv")
    assert {"random", "acoustic", "cqt", "both"} == set(probe["network"])
    assert {"pitch", "pitch_class", "instrument", "chords", "onsets"} <= set(probe["task"])
    # the conditions really differ in their losses
    logs = {c: pd.read_csv(run / "train" / c / "logs" / "metrics.csv") for c in ("acoustic", "cqt", "both")}
    assert "train/acoustic" in logs["acoustic"] and "train/cqt" not in logs["acoustic"]
    assert "train/cqt" in logs["cqt"] and "train/acoustic" not in logs["cqt"]
    assert {"train/acoustic", "train/cqt"} <= set(logs["both"])
    answer = (run / "report.md").read_text().split("## Findings")[0]
    assert "with a CQT teacher best" in answer


def test_study_scales_and_errors() -> None:
    quick, full = load_study("chroma-emergence"), load_study("chroma-emergence", scale="full")
    assert quick["stimuli"]["grid"] == "quick" and full["stimuli"]["grid"] == "paper"
    assert full["training"]["ssl"]["model"]["config"]["hidden_size"] == 768
    assert full["training"]["ssl"]["trainer"]["precision"] == "bf16-mixed"
    assert "crepe-full" in full["networks"] and "crepe-full" not in quick["networks"]
    assert "pesto" not in load_study("chroma-emergence", scale="tiny")["networks"]  # null removes an entry
    with pytest.raises(ConfigError, match="no scale 'huge'"):
        load_study("chroma-emergence", scale="huge")
    raw = {"study": {"name": "x"}, "training": {"a": {"objective": "ntxent", "form": "b"}}}
    with pytest.raises(ConfigError, match=r"unknown key 'form' in section 'training.a'.*Did you mean 'from'"):
        load_study(raw)
    with pytest.raises(ConfigError, match="not a training condition"):
        load_study({"networks": {"n": {"trained": "nope"}}})
    with pytest.raises(ConfigError, match="neither an entry of 'corpora'"):
        load_study({"training": {"a": {"objective": "ntxent", "data": {"train": ["missing-corpus"]}}}})


def test_attention_defaults_to_transformer_networks() -> None:
    from musiclens.study_steps.analysis import _networks

    study = {"attention": {"networks": None}, "ssm": {"networks": ["a"]},
             "networks": {"a": {"model": "cqt"}, "b": {"model": "checkpoint", "trained": "x"}, "c": {"model": "wav2vec2"}}}
    assert _networks(study, "attention", transformers_only=True) == ["b", "c"]
    assert _networks(study, "ssm", transformers_only=False) == ["a"]
