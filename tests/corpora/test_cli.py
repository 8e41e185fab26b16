"""``musiclens corpus ...`` commands call the library and report what they built or skipped."""

from __future__ import annotations

import json

import pretty_midi
from typer.testing import CliRunner

from musiclens.commands.corpus import corpus_app


def test_corpus_music_and_resume(tmp_path) -> None:
    runner = CliRunner()
    args = ["music", "--out", str(tmp_path / "m"), "-n", "3", "--duration", "3", "--pieces-per-shard", "2"]
    res = runner.invoke(corpus_app, args)
    assert res.exit_code == 0, res.output
    assert "wrote 3 pieces" in res.output
    first = json.loads((tmp_path / "m" / "corpus.json").read_text())["content_hash"]
    res = runner.invoke(corpus_app, args)  # re-running resumes: nothing to build, same content
    assert res.exit_code == 0 and first[:16] in res.output


def test_corpus_midi_skip_bad(tmp_path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(program=0)
    inst.notes.append(pretty_midi.Note(velocity=90, pitch=60, start=0.0, end=0.5))
    pm.instruments.append(inst)
    pm.write(str(folder / "ok.mid"))
    (folder / "broken.mid").write_bytes(b"not a midi file")
    runner = CliRunner()
    res = runner.invoke(corpus_app, ["midi", str(folder), "--out", str(tmp_path / "strict")])
    assert res.exit_code != 0 and "broken.mid" in str(res.exception)
    res = runner.invoke(corpus_app, ["midi", str(folder), "--out", str(tmp_path / "c"), "--skip-bad"])
    assert res.exit_code == 0, res.output
    assert "wrote 1 pieces" in res.output and "broken.mid" in res.output
