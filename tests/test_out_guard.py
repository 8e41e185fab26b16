"""Every command refuses an output path it must not write to, before any work, and touches nothing.

The class of failure: a command that writes into, replaces or deletes a folder musiclens did not
make (``--overwrite`` or not), or that dies with a traceback on an ``--out`` that is a file or
lies in a folder it cannot write.  The walk below covers every command that takes ``--out``; a
new command with ``--out`` must be added to ``COMMANDS`` (a test checks the list is complete).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

from musiclens.cli import app, main
from musiclens.errors import StoreError
from musiclens.fsutil import MARKER_FILE, atomic_dir, check_out, mark_output, output_kind

# (argv before --out, whether the command has --overwrite).  Inputs may be bogus: the output
# check comes before any input is read.
COMMANDS: dict[str, tuple[list[str], bool]] = {
    "run": (["run", "chroma-baselines"], False),
    "rsa": (["rsa", "-a", "acts.npz", "-s", "stim"], False),
    "extract": (["extract", "-m", "mfcc", "-s", "stim"], True),
    "attention": (["attention", "--model", "vit1d", "--corpus", "corpus"], False),
    "ssm": (["ssm", "--model", "mfcc", "--corpus", "corpus"], False),
    "train": (["train", "ntxent", "--config", "config.yaml"], True),
    "probe": (["probe", "-a", "acts", "-s", "stim", "-t", "pitch"], False),
    "benchmark": (["benchmark", "--model", "mfcc", "--data-root", "data"], False),
    "stimuli notes": (["stimuli", "notes", "--midi", "60"], True),
    "stimuli nsynth": (["stimuli", "nsynth", "nsynth-root"], True),
    "stimuli import": (["stimuli", "import", "audio-dir", "--metadata", "table.csv"], True),
    "corpus music": (["corpus", "music"], False),
    "corpus midi": (["corpus", "midi"], False),
    "corpus speech": (["corpus", "speech"], False),
    "corpus maestro": (["corpus", "maestro", "maestro-root"], False),
}


def _commands_with_out() -> set[str]:
    found: set[str] = set()

    def walk(cmd, prefix: str) -> None:  # noqa: ANN001 - a click/typer command or group
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                walk(sub, f"{prefix} {name}".strip())
        elif any("--out" in getattr(p, "opts", []) for p in cmd.params):
            found.add(prefix)

    import typer.main

    walk(typer.main.get_command(app), "")
    return found


def _snapshot(path: Path) -> dict[str, str]:
    if path.is_file():
        return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()}
    return {str(p.relative_to(path)) + ("/" if p.is_dir() else ""): (
        hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "") for p in sorted(path.rglob("*"))}


def _run_cli(argv: list[str], monkeypatch, capsys) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["musiclens", *argv])
    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err
    return int(exc.value.code or 0), err


def _read_only_target(tmp_path: Path) -> Path:
    """An output path inside a folder this process cannot write to."""
    if os.geteuid() != 0:
        ro = tmp_path / "read-only"
        ro.mkdir()
        ro.chmod(0o555)
        return ro / "out"
    # root writes through permission bits; sysfs refuses new folders even to root
    if not Path("/sys/kernel").is_dir():
        pytest.skip("running as root without /sys: no folder is read-only to this process")
    return Path("/sys/kernel/musiclens-out")


def test_the_walk_covers_every_command_with_out() -> None:
    assert _commands_with_out() == set(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_foreign_folder_file_and_read_only_are_refused_untouched(command, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    argv, has_overwrite = COMMANDS[command]
    foreign = tmp_path / "my-results"
    (foreign / "sub").mkdir(parents=True)
    (foreign / "rsa.csv").write_text("my own numbers\n")
    (foreign / "sub" / "notes.txt").write_text("keep me\n")
    a_file = tmp_path / "results.txt"
    a_file.write_text("not a folder\n")
    cases = [(foreign, [], "musiclens did not write"), (a_file, [], "is a file")]
    if has_overwrite:
        cases.append((foreign, ["--overwrite"], "musiclens did not write"))
    for target, extra, expected in cases:
        before = _snapshot(target)
        code, err = _run_cli([*argv, "--out", str(target), *extra], monkeypatch, capsys)
        assert code == 2, (command, target, err)
        assert err.startswith("error: ") and expected in err and str(target) in err, err
        assert "Traceback" not in err
        assert _snapshot(target) == before, f"{command} changed {target}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my-results", "results.txt"]

    ro_out = _read_only_target(tmp_path)
    code, err = _run_cli([*argv, "--out", str(ro_out)], monkeypatch, capsys)
    assert code == 2 and err.startswith("error: ") and "not writable" in err and "Traceback" not in err, err
    assert not ro_out.exists()


# ------------------------------------------------------------------ the guard itself
def test_output_kind_reads_markers_and_older_manifests(tmp_path) -> None:
    marked = tmp_path / "marked"
    marked.mkdir()
    mark_output(marked, "probe")
    assert output_kind(marked) == "probe"
    legacy = {"stimuli": ("manifest.json", {"format": "musiclens.StimulusSet"}),
              "features": ("manifest.json", {"format": "musiclens.FeatureStore"}),
              "rsa": ("manifest.json", {"command": "rsa"}),
              "run": ("manifest.json", {"study": "x", "steps": {}}),
              "corpus": ("corpus.json", {"content_hash": "abc"})}
    for kind, (name, content) in legacy.items():
        d = tmp_path / f"legacy-{kind}"
        d.mkdir()
        (d / name).write_text(json.dumps(content))
        assert output_kind(d) == kind
    partial = tmp_path / "store.partial"
    partial.mkdir()
    (partial / "progress.json").write_text(json.dumps({"key": "k", "chunks": []}))
    assert output_kind(partial) == "features"
    train = tmp_path / "train"
    train.mkdir()
    (train / "config.yaml").write_text("objective: ntxent\n")
    assert output_kind(train) == "train"
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "manifest.json").write_text(json.dumps({"whatever": 1}))
    assert output_kind(plain) is None
    (plain / MARKER_FILE).write_text("not json")
    assert output_kind(plain) is None


def test_check_out_rules(tmp_path) -> None:
    assert check_out(tmp_path / "new" / "deeper", "rsa") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()            # the check creates nothing
    empty = tmp_path / "empty"
    empty.mkdir()
    check_out(empty, "rsa", overwrite=False)           # an empty folder is free
    ours = tmp_path / "ours"
    ours.mkdir()
    mark_output(ours, "rsa")
    check_out(ours, "rsa")                             # same kind: the caller resumes or replaces
    with pytest.raises(StoreError, match="already exists and holds a musiclens rsa output.*--overwrite"):
        check_out(ours, "rsa", overwrite=False)
    with pytest.raises(StoreError, match="holds a musiclens rsa output, not a stimuli output"):
        check_out(ours, "stimuli", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "ours"]   # no probe folder left behind


def test_atomic_dir_with_a_kind_marks_and_replaces_only_its_own(tmp_path) -> None:
    out = tmp_path / "analysis"
    with atomic_dir(out, kind="ssm") as tmp:
        (tmp / "ssm.csv").write_text("a\n")
    assert output_kind(out) == "ssm" and (out / "ssm.csv").read_text() == "a\n"
    with atomic_dir(out, overwrite=True, kind="ssm") as tmp:
        (tmp / "ssm.csv").write_text("b\n")
    assert (out / "ssm.csv").read_text() == "b\n"
    with pytest.raises(StoreError, match="holds a musiclens ssm output, not a attention output"):
        with atomic_dir(out, overwrite=True, kind="attention"):
            pass
    assert (out / "ssm.csv").read_text() == "b\n"


def test_report_writes_only_into_a_study_run_directory(tmp_path, monkeypatch, capsys) -> None:
    train_run = tmp_path / "train-run"
    train_run.mkdir()
    (train_run / "config.yaml").write_text("objective: ntxent\n")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.yaml").write_text("whatever: 1\n")
    for folder in (train_run, mine):
        before = _snapshot(folder)
        code, err = _run_cli(["report", str(folder)], monkeypatch, capsys)
        assert code == 2 and "is not a musiclens run directory" in err and "Traceback" not in err
        assert _snapshot(folder) == before
