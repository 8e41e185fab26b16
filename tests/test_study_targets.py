"""A study on the user's own sounds with measured RDMs: import, extract, targets, report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from musiclens.errors import ConfigError, MusicLensError
from musiclens.study import run_study

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "listeners" / "make_inputs.py"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("listeners")
    subprocess.run([sys.executable, str(EXAMPLE), str(root / "inputs"), "--subjects", "6"], check=True,
                   capture_output=True)
    return root / "inputs"


def _study(inputs: Path, **targets) -> dict:
    return {
        "study": {"name": "listeners", "seed": 0},
        "stimuli": {"folder": str(inputs / "audio"), "metadata": str(inputs / "stimuli.csv")},
        "networks": {"chroma": {"model": "chroma"}, "mfcc": {"model": "mfcc"}},
        "targets": {"files": [f"listeners={inputs / 'listeners.csv'}"], "models": ["chroma_circular", "pitch_height"],
                    "n_bootstraps": 200, **targets},
        "steps": {"run": ["stimuli", "extract", "targets", "report"]},
    }


TINY_W2V = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
            "conv_dim": [32, 32, 32, 32, 32, 32, 32], "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 2}


def test_study_recovers_the_listeners_structure(inputs, tmp_path):
    study = _study(inputs, flexible=True)
    study["networks"]["w2v"] = {"model": "wav2vec2", "randomize": True, "options": {"config": TINY_W2V}}
    run = run_study(study, out=tmp_path / "run")
    t = pd.read_csv(run / "targets" / "targets.csv")
    assert set(t["group"]) == {"chroma", "mfcc", "w2v", "model"}
    by = t.set_index("candidate")["value"]
    # the simulated listeners hear circular chroma (+ a little octave): the model that is their truth
    # explains them best, and the chroma features beat the MFCCs
    assert t.loc[t["best"], "candidate"].item() == "model/chroma_circular"
    assert by["chroma/chroma"] > by["mfcc/mfcc"]
    assert t["noise_lower"].iloc[0] > 0.5
    steps = json.loads((run / "steps.json").read_text()) if (run / "steps.json").exists() else None
    html = (run / "report.html").read_text()
    assert "Measured RDMs" in html and "the best of 7 candidates is model/chroma_circular" in html
    flex = pd.read_csv(run / "targets" / "targets_flexible.csv")
    assert set(flex[flex.kind == "flexible"]["candidate"]) == {"w2v/weighted"}      # one network with several layers
    assert len(flex) == 8 and flex["n_folds"].iloc[0] == 3 * 4     # rsatoolbox defaults for 6 subjects, 36 stimuli
    assert "fitted weighted layer sums score w2v/weighted (3 layers)" in html
    md = (run / "report.md").read_text()
    assert "model/chroma_circular" in md
    manifest = json.loads((run / "stimuli" / "manifest.json").read_text())
    assert manifest["info"]["generator"] == "import_folder"
    assert steps is None or "targets" in json.dumps(steps)


def test_study_checks_targets_before_any_work(inputs, tmp_path):
    with pytest.raises(ConfigError, match="bootstrap"):
        run_study(_study(inputs, bootstrap="twice"), out=tmp_path / "a")
    bad = _study(inputs)
    bad["targets"]["files"] = [str(inputs / "nope.csv")]
    with pytest.raises(MusicLensError, match="does not exist"):
        run_study(bad, out=tmp_path / "b")
    bad = _study(inputs)
    bad["targets"]["networks"] = ["wav2vec2"]
    with pytest.raises(ConfigError, match="not networks of this study"):
        run_study(bad, out=tmp_path / "c")
    bad = _study(inputs)
    bad["stimuli"]["metadata"] = None
    with pytest.raises(ConfigError, match="stimuli.metadata"):
        run_study(bad, out=tmp_path / "d")
    for name in "abcd":
        assert not (tmp_path / name / "stimuli").exists()
