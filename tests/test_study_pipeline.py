"""The study runner end to end at a tiny scale: stimuli -> extract -> RSA -> report."""

from __future__ import annotations

import json

import pandas as pd
from typer.testing import CliRunner

from musiclens.cli import app
from musiclens.study import load_study, run_study

TINY = {
    "study": {"name": "tiny-chroma", "question": "Chroma?", "seed": 0},
    "stimuli": {"grid": "quick", "instruments": ["acoustic_grand_piano", "flute", "acoustic_guitar_nylon"],
                "midi": list(range(60, 84)), "duration_s": 0.6, "hold_s": 0.4},
    "networks": {
        "cqt": {"model": "cqt"},
        "w2v": {"model": "wav2vec2", "randomize": True, "options": {"config": {
            "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
            "conv_dim": [16] * 7, "num_conv_pos_embeddings": 8, "num_conv_pos_embedding_groups": 2}}},
    },
    "rsa": {"n_permutations": 50, "n_bootstraps": 50},
    "steps": {"run": ["stimuli", "summary", "extract", "rsa", "report"]},
}


def test_default_study_runs_the_chroma_question() -> None:
    cfg = load_study()
    assert cfg["steps"]["run"] == ["stimuli", "summary", "corpora", "train", "extract", "rsa", "contrasts", "report"]
    assert {"cqt", "mfcc", "crepe-tiny", "pesto", "fcpe", "basic-pitch", "madmom-onsets"} | {
        f"{n}-s{s}" for n in ("random", "ssl", "transcription", "asr") for s in (0, 1, 2)} <= set(cfg["networks"])
    assert cfg["contrasts"]["pairs"][:2] == [["transcription", "ssl"], ["transcription", "asr"]]
    base = load_study("chroma-baselines")
    assert base["steps"]["run"] == ["stimuli", "summary", "extract", "rsa", "report"]
    assert {"cqt", "mfcc", "wav2vec2-random"} <= set(base["networks"])


def test_tiny_study_end_to_end_and_report_rebuild(tmp_path) -> None:
    run_dir = run_study(TINY, out=tmp_path / "run")
    table = pd.read_csv(run_dir / "rsa" / "rsa.csv")
    assert set(table.network) == {"cqt", "w2v"}
    assert {"layer_00", "layer_01"} <= set(table[table.network == "w2v"].layer)
    assert not table[["value", "p", "p_corrected"]].isna().any().any()
    html = (run_dir / "report.html").read_text()
    assert "Answer (computed from the results)" in html and "data:image/png;base64," in html
    md = (run_dir / "report.md").read_text()
    assert "chroma" in md and "w2v" in md
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert set(manifest["timings_s"]) == {"stimuli", "summary", "extract", "rsa", "report"}

    # the report is rebuilt from saved results only, and follows them
    edited = table.copy()
    mask = (edited.statistic == "partial-tau-b") & (edited.model_rdm == "chroma")
    edited.loc[mask, "significant"] = False
    edited.to_csv(run_dir / "rsa" / "rsa.csv", index=False)
    result = CliRunner().invoke(app, ["report", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert "significant in no layer of cqt, w2v" in (run_dir / "report.md").read_text()


def test_interrupted_run_resumes_with_same_numbers(tmp_path) -> None:
    first = run_study(TINY, out=tmp_path / "a")
    reference = pd.read_csv(first / "rsa" / "rsa.csv")
    # simulate an interruption after extraction: the RSA and report outputs are gone
    import shutil

    shutil.rmtree(first / "rsa")
    (first / "report.html").unlink()
    import yaml

    study_file = tmp_path / "tiny.yaml"
    study_file.write_text(yaml.safe_dump(TINY))
    result = CliRunner().invoke(app, ["run", str(study_file), "--out", str(first)])  # the CLI resumes it
    assert result.exit_code == 0, result.output
    assert f"report.html: {(first / 'report.html').resolve()}" in result.output
    assert "Answer (computed from the results). Partial chroma tau-b" in result.output
    pd.testing.assert_frame_equal(pd.read_csv(first / "rsa" / "rsa.csv"), reference)
