from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from musiclens.cli import app
from musiclens.stimuli import StimulusSet

runner = CliRunner()


def test_help_lists_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for cmd in ("stimuli", "run"):
        assert cmd in result.output
    assert "--out" in runner.invoke(app, ["stimuli", "notes", "--help"]).output


def test_stimuli_notes_writes_a_set(tmp_path) -> None:
    out = tmp_path / "notes"
    result = runner.invoke(app, ["stimuli", "notes", "--out", str(out), "--instruments", "0,flute",
                                 "--midi", "60-62", "--duration", "0.5", "--hold", "0.3"])
    assert result.exit_code == 0, result.output
    s = StimulusSet.load(out)
    assert len(s) == 6 and "wrote 6 stimuli" in result.output
    assert sorted(s.metadata.instrument.unique()) == ["acoustic_grand_piano", "flute"]


def test_stimuli_nsynth_command(tmp_path) -> None:
    from tests.stimuli.test_nsynth import write_nsynth_fixture

    write_nsynth_fixture(tmp_path)
    out = tmp_path / "ns"
    result = runner.invoke(app, ["stimuli", "nsynth", str(tmp_path), "--split", "valid", "--out", str(out),
                                 "--midi", "60-62", "--n-per-family", "2"])
    assert result.exit_code == 0, result.output
    assert len(StimulusSet.load(out)) == 18


def test_errors_exit_2_with_a_message(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "musiclens", "stimuli", "notes", "--out", str(tmp_path / "x"), "--instruments",
         "kazoo_supreme", "--midi", "60"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "error: unknown instrument 'kazoo_supreme'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "x").exists()


def test_instruments_listing() -> None:
    result = runner.invoke(app, ["stimuli", "instruments"])
    assert result.exit_code == 0 and "acoustic_grand_piano" in result.output and "paper" in result.output


@pytest.mark.parametrize(("flag", "value"), [("--midi", "60-abc"), ("--midi", "72-60"), ("--velocities", "loud")])
def test_bad_integer_lists_are_a_clean_error(tmp_path, flag, value) -> None:
    proc = subprocess.run([sys.executable, "-m", "musiclens", "stimuli", "notes", "--out", str(tmp_path / "s"), flag,
                           value], capture_output=True, text=True)
    assert proc.returncode == 2 and f"error: {flag} '{value}'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("args", [["stimuli", "notes", "--midi", "60", "--sample-rate", "0"],
                                  ["stimuli", "notes", "--midi", "60", "--duration", "1", "--hold", "2"],
                                  ["corpus", "music", "--n", "0"]])
def test_impossible_sizes_are_a_clean_error(tmp_path, args) -> None:
    proc = subprocess.run([sys.executable, "-m", "musiclens", *args, "--out", str(tmp_path / "o")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


def test_allow_missing_weights_is_only_for_model_directories(tmp_path) -> None:
    proc = subprocess.run([sys.executable, "-m", "musiclens", "extract", "-m", "cqt", "-s", str(tmp_path / "s"),
                           "--allow-missing-weights", "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert proc.returncode == 2 and "applies to a Hugging Face model directory" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "o").exists()
