"""The ``corpora`` study step: build every entry of the study's ``corpora`` section.

Each entry becomes ``RUN_DIR/corpora/<name>`` (a sharded :class:`musiclens.corpora.dataset.Corpus`);
builds are resumable (finished shards are kept) and content-hashed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from musiclens.errors import ConfigError
from musiclens.study import STEP_CHECKS, STEPS, check_count

__all__ = ["corpus_dir", "build_study_corpus"]


def corpus_dir(study: dict[str, Any], run_dir: Path, name: str) -> Path:
    """Folder of corpus ``name``: an entry of ``corpora`` (built in the run) or an existing folder."""
    if name in study["corpora"]:
        return run_dir / "corpora" / name
    path = Path(str(name)).expanduser()
    if path.is_dir():
        return path
    raise ConfigError(f"corpus {name!r} is neither an entry of the study's 'corpora' nor an existing folder")


def build_study_corpus(entry: dict[str, Any], out: Path) -> dict[str, Any]:
    """Build one ``corpora`` entry into ``out``; returns the corpus manifest."""
    from musiclens.corpora.shards import build_corpus

    kind = entry["kind"]
    n = int(entry["n"])
    if n < 1:
        raise ConfigError(f"corpus size n must be >= 1, got {n}")
    if kind == "music":
        from musiclens.corpora.generator import music_preset
        from musiclens.corpora.synthetic import GeneratedMusicSource

        cfg = music_preset(entry["preset"], **({"duration_s": entry["duration_s"]} if entry["duration_s"] else {}))
        source: Any = GeneratedMusicSource(n_pieces=n, seed=int(entry["seed"]), config=cfg,
                                           sample_rate=int(entry["sample_rate"]), soundfont=entry["soundfont"],
                                           backend=entry["backend"])
    elif kind == "speech":
        from musiclens.corpora.speech import DEFAULT_VOICES, SpeechSource

        voices = tuple(entry["voices"]) if entry["voices"] else DEFAULT_VOICES
        source = SpeechSource(n_utterances=n, seed=int(entry["seed"]), voices=voices, text=entry["text"],
                              sample_rate=int(entry["sample_rate"]))
    else:
        raise ConfigError(f"corpus kind must be 'music' or 'speech', got {kind!r} (build other corpora with "
                          "`musiclens corpus ...` and name their folder instead)")
    return build_corpus(out, source=source, pieces_per_shard=int(entry["pieces_per_shard"]), progress=True)


def _corpora_step(study: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    if not study["corpora"]:
        raise ConfigError("step 'corpora' needs at least one entry under 'corpora'")
    record: dict[str, Any] = {"outputs": [], "corpora": {}}
    for name, entry in study["corpora"].items():
        manifest = build_study_corpus(entry, run_dir / "corpora" / name)
        record["outputs"].append(f"corpora/{name}/corpus.json")
        record["corpora"][name] = {"content_hash": manifest["content_hash"], "n_pieces": manifest["n_pieces"],
                                   "audio_hours": manifest["audio_hours"]}
    return record


def _check_corpora(study: dict[str, Any]) -> None:
    if not study["corpora"]:
        raise ConfigError("step 'corpora' needs at least one entry under 'corpora'")
    for name, entry in study["corpora"].items():
        if entry["kind"] not in ("music", "speech"):
            raise ConfigError(f"corpora.{name}.kind must be 'music' or 'speech', got {entry['kind']!r} (build other "
                              "corpora with `musiclens corpus ...` and name their folder instead)")
        check_count(f"corpora.{name}.n", entry["n"], minimum=1)
        check_count(f"corpora.{name}.seed", entry["seed"])
        check_count(f"corpora.{name}.pieces_per_shard", entry["pieces_per_shard"], minimum=1)
        check_count(f"corpora.{name}.sample_rate", entry["sample_rate"], minimum=1)
        if entry["kind"] == "music":
            from musiclens.corpora.generator import music_preset

            music_preset(entry["preset"], **({"duration_s": entry["duration_s"]} if entry["duration_s"] else {}))


STEP_CHECKS.register("corpora", _check_corpora)
STEPS.register("corpora", _corpora_step, help="build the training/analysis corpora into RUN_DIR/corpora/<name>")
