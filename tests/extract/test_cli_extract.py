"""`musiclens extract` / `musiclens models` (through the command module's register)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import typer
from typer.testing import CliRunner

from musiclens.commands.extract import register
from musiclens.extract import load_pooled
from musiclens.stimuli.stimulus_set import StimulusSet
from tests.extract._helpers import SR, tiny_w2v_config, tones


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_cli_extract_and_models(tmp_path: Path) -> None:
    stim = StimulusSet(tones(3, seconds=0.2), pd.DataFrame({"stimulus_id": ["a", "b", "c"]}), sample_rate=SR)
    stim.save(tmp_path / "stim")
    runner = CliRunner()
    res = runner.invoke(_app(), ["extract", "--model", "wav2vec2", "--stimuli", str(tmp_path / "stim"),
                                 "--out", str(tmp_path / "out"), "--layers", "0,2", "--batch-size", "2",
                                 "--randomize", "--seed", "3", "--option", f"config={json.dumps(tiny_w2v_config())}"])
    assert res.exit_code == 0, res.output
    layers, ids = load_pooled(tmp_path / "out")
    assert sorted(layers) == ["layer_00", "layer_02"] and ids == ["a", "b", "c"]
    assert layers["layer_02"].shape == (3, 32)
    res = runner.invoke(_app(), ["models"])
    assert res.exit_code == 0 and "wav2vec2" in res.output and "cqt" in res.output
    res = runner.invoke(_app(), ["models", "--model", "mfcc"])
    assert res.exit_code == 0 and res.output.strip().endswith("mfcc")
