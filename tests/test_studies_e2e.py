"""The three embedded studies end to end at their ``tiny`` scale (the quick and full scales share
the same files and code paths, only sizes differ), plus interruption and resumption."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

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
    assert {"cqt", "mfcc", "madmom-onsets"} | {f"{n}-s{s}" for n in ("random", "ssl", "transcription", "asr")
                                               for s in (0, 1)} <= set(rsa["network"])
    assert set(rsa[rsa.condition == "transcription"]["seed"]) == {0, 1} and rsa[rsa.network == "cqt"]["seed"].isna().all()
    # trained networks come from the run's own training conditions (one per seed), with every layer
    for cond in ("ssl", "transcription", "asr"):
        for s in (0, 1):
            assert (run / "train" / f"{cond}-s{s}" / "backbone" / "model.safetensors").is_file()
            assert set(rsa[rsa.network == f"{cond}-s{s}"]["layer"]) == {f"layer_{i:02d}" for i in range(5)}
    # seed-1 fine-tuning starts from the seed-1 SSL backbone
    cfg = json.loads((run / "train" / "transcription-s1" / "manifest.json").read_text())
    assert cfg["finished"] and cfg["seeds"]["seed"] == 1 and cfg["bar"]["metric"] == "val/frame_f1"
    saved = yaml.safe_load((run / "train" / "transcription-s1" / "config.yaml").read_text())
    assert saved["model"]["init_from"].endswith("train/ssl-s1/backbone")
    curve = pd.read_csv(run / "train" / "transcription-s0" / "rsa_curve.csv")
    assert sorted(curve["step"].unique()) == [0, 3]
    # every run's learning bar in one table (3 steps learn nothing: all flagged)
    conds = pd.read_csv(run / "train" / "conditions.csv")
    assert len(conds) == 6 and set(conds["condition"]) == {"ssl", "transcription", "asr"} and not conds["passed"].any()
    # paired contrasts: per layer and at the best layer, 2 seeds x 4 instruments
    contrasts = pd.read_csv(run / "contrasts" / "contrasts.csv")
    best = contrasts[contrasts.layer == "best-layer-cv"]
    assert set(best["contrast"]) == {"transcription - ssl", "transcription - asr", "ssl - random", "asr - ssl"}
    assert (best["n_seeds"] == 2).all() and (best["n_units"] == 4).all()
    md = (run / "report.md").read_text()
    assert "Contrasts of partial chroma τ-b" in md and "transcription − ssl = " in md
    assert "| partial_tau_a |" in md          # the textbook partial τ_a beside the headline partial τ_b
    assert "During transcription-s0 training" in md and "missed the learning bar" in md
    # real pretrained networks grouped by training domain and task (madmom onsets: music; silero-vad: speech)
    assert "of 1 music-trained (onsets " in md and "of 1 speech-trained (speech activity " in md
    assert "| network | domain | trained for | best learned layer |" in md
    html = (run / "report.html").read_text()
    assert html.index("The answer: partial chroma") < html.index("<h2>Findings</h2>") < html.index("<h2>Stimuli</h2>")
    # madmom's 1-unit output layer has no correlation RDM: left out, and recorded
    steps = json.loads((run / "steps.json").read_text())
    assert steps["rsa"]["skipped_layers"] == {"madmom-onsets": ["dense2"], "silero-vad": ["logit", "speech_prob"]}


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
    contrasts = pd.read_csv(run / "contrasts" / "contrasts.csv")
    assert {"rsa", "probe"} <= set(contrasts["analysis"]) and "both - acoustic" in set(contrasts["contrast"])
    assert "both − acoustic = " in answer and "at the best layer" in answer
    assert "with a CQT teacher best" not in answer     # the paired tests replace best-vs-best


def test_study_scales_and_errors() -> None:
    quick, full = load_study("chroma-emergence"), load_study("chroma-emergence", scale="full")
    assert quick["stimuli"]["grid"] == "quick" and full["stimuli"]["grid"] == "paper"
    assert full["training"]["ssl-s0"]["model"]["config"]["hidden_size"] == 768
    assert full["training"]["ssl-s2"]["trainer"]["precision"] == "bf16-mixed"
    # the full scale is the paper's raw-waveform wav2vec2; the quick scale a log-mel front end
    assert full["training"]["ssl-s0"]["model"]["config"]["frontend"] == "conv"
    assert quick["training"]["ssl-s0"]["model"]["config"]["frontend"] == "mel"
    assert [n for n in quick["training"] if n.startswith("asr")] == ["asr-s0", "asr-s1", "asr-s2"]
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
