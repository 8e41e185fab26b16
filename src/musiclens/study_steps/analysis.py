"""The ``probe``, ``attention`` and ``ssm`` study steps: frame-level analyses of the study's networks.

Each reads its section of the study (``probes``, ``attention``, ``ssm``): which networks (default:
every network that can do it), which corpus (an entry of ``corpora`` or a folder), how many
clips.  Results go to ``RUN_DIR/<step>/<network>/`` (tables, figures, manifest) plus one combined
table ``RUN_DIR/<step>/<step>.csv`` that the report reads.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from musiclens.errors import AnalysisError, ConfigError
from musiclens.study import STEP_CHECKS, STEPS, check_count, check_network, network_model
from musiclens.study_steps.corpora import corpus_dir

__all__ = ["write_combined"]

logger = logging.getLogger(__name__)

#: Extractor names whose networks are transformers with attention maps (musiclens-trained
#: backbones, ``trained:`` networks, are transformers too).
_ATTENTION_MODELS = ("wav2vec2", "data2vec-audio", "hubert", "ast", "whisper", "mert", "hf")


def write_combined(folder: Path, name: str, tables: list[pd.DataFrame]) -> list[str]:
    """Concatenate per-network tables into ``folder/name.csv`` and ``.parquet`` (atomic)."""
    from musiclens.analysis_io import write_table

    kept = [t for t in tables if t is not None and not t.empty]
    table = pd.concat(kept, ignore_index=True) if kept else pd.DataFrame()
    return [f"{folder.name}/{p.name}" for p in write_table(folder, name, table)]


def _networks(study: dict[str, Any], section: str, *, transformers_only: bool) -> list[str]:
    """The section's ``networks``, or by default every network (every transformer for attention)."""
    chosen = study[section].get("networks")
    if chosen:
        return list(chosen)
    return [name for name, net in study["networks"].items()
            if not transformers_only or net.get("trained") or str(net["model"]) in _ATTENTION_MODELS]


def _build(study: dict[str, Any], run_dir: Path, name: str) -> Any:
    from musiclens.extract.runner import build_extractor

    net = study["networks"][name]
    model, options = network_model(net, run_dir)
    return build_extractor(model, randomize=bool(net["randomize"]), seed=int(net["seed"]),
                           batch_size=int(net["batch_size"]), **(options or {}))


def _clips(study: dict[str, Any], run_dir: Path, section: str) -> list[Any]:
    from musiclens.attention.clips import corpus_clips

    cfg = study[section]
    if not cfg.get("corpus"):
        raise ConfigError(f"step {section!r} needs '{section}.corpus' (an entry of 'corpora' or a corpus folder)")
    return corpus_clips(corpus_dir(study, run_dir, cfg["corpus"]), n_clips=int(cfg["clips"]), crop_s=cfg["crop_s"])


def _attention_step(study: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    from musiclens.attention.onset import attention_onset_analysis
    from musiclens.attention.plots import save_figures

    clips = _clips(study, run_dir, "attention")
    names = _networks(study, "attention", transformers_only=True)
    if not names:
        raise ConfigError("step 'attention' found no transformer network; name them in attention.networks")
    tables, summaries = [], []
    for name in names:
        out = run_dir / "attention" / name
        result = attention_onset_analysis(clips=clips, model=_build(study, run_dir, name),
                                          layers=study["attention"]["layers"], network=name, keep=1)
        result.save(out)
        save_figures(result, out)
        tables.append(result.table)
        summaries.append(result.summary)
    outputs = write_combined(run_dir / "attention", "attention", tables)
    outputs += write_combined(run_dir / "attention", "attention_summary", summaries)
    return {"outputs": outputs, "networks": names, "n_clips": len(clips)}


def _ssm_step(study: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    from musiclens.ssm.pipeline import ssm_analysis
    from musiclens.ssm.plots import save_figures

    clips = _clips(study, run_dir, "ssm")
    names = _networks(study, "ssm", transformers_only=False)
    tables, summaries, novelty = [], [], []
    done, skipped = [], {}
    for name in names:
        out = run_dir / "ssm" / name
        try:
            result = ssm_analysis(clips=clips, model=_build(study, run_dir, name), layers=study["ssm"]["layers"],
                                  network=name, keep=1)
        except AnalysisError as err:  # e.g. a network with one frame per clip
            logger.warning("ssm: skipping network %s: %s", name, err)
            skipped[name] = str(err)
            continue
        done.append(name)
        result.save(out)
        save_figures(result, out)
        tables.append(result.table)
        summaries.append(result.summary)
        novelty.append(result.novelty_summary)
    outputs = write_combined(run_dir / "ssm", "ssm", tables)
    outputs += write_combined(run_dir / "ssm", "ssm_summary", summaries)
    outputs += write_combined(run_dir / "ssm", "ssm_novelty_summary", novelty)
    # only the networks analysed count as done; the skipped ones and why go to the report
    return {"outputs": outputs, "networks": done, "skipped_networks": skipped, "n_clips": len(clips)}


def _probe_step(study: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    import json

    from musiclens.corpora.labels import MusicLabels
    from musiclens.extract.runner import extract_activations
    from musiclens.probe.datasets import corpus_stimulus_set
    from musiclens.probe.plots import save_figures
    from musiclens.probe.runner import ProbeResult, run_probes
    from musiclens.stimuli.stimulus_set import StimulusSet

    cfg = study["probes"]
    names = _networks(study, "probes", transformers_only=False)
    note_tasks = list(cfg["note_tasks"] or [])
    corpus_tasks = list(cfg["corpus_tasks"] or [])
    if not note_tasks and not corpus_tasks:
        raise ConfigError("step 'probe' has no tasks: set probes.note_tasks and/or probes.corpus_tasks")
    seed = int(cfg["seed"] if cfg["seed"] is not None else study["study"]["seed"])
    common: dict[str, Any] = {"probe": cfg["probe"], "seed": seed, "layers": cfg["layers"]}
    if cfg["lrs"]:
        common["lrs"] = [float(v) for v in cfg["lrs"]]
    if cfg["max_epochs"]:
        common["max_epochs"] = int(cfg["max_epochs"])
    notes = StimulusSet.load(run_dir / "stimuli") if note_tasks else None
    pieces = None
    if corpus_tasks:
        if not cfg["corpus"]:
            raise ConfigError("probes.corpus_tasks need probes.corpus (an entry of 'corpora' or a corpus folder)")
        from musiclens.corpora.dataset import Corpus

        corpus = Corpus(corpus_dir(study, run_dir, cfg["corpus"]))
        n = min(int(cfg["corpus_clips"]), len(corpus))
        pieces = corpus_stimulus_set(corpus, indices=range(n), crop_s=cfg["crop_s"])
        labels = {str(sid): MusicLabels.from_dict(json.loads(j))
                  for sid, j in zip(pieces.metadata["stimulus_id"], pieces.metadata["music_labels"])}
    tables, weights, units = [], [], []
    for name in names:
        extractor = _build(study, run_dir, name)
        results: dict[str, ProbeResult] = {}  # part name (folder under probe/<network>/) -> result
        if notes is not None:
            act = extract_activations(extractor, notes.audio, sample_rate=notes.sample_rate,
                                      stimulus_ids=list(notes.metadata["stimulus_id"]))
            has_special = bool(getattr(act, "n_special", 0))
            for pooling in cfg["poolings"]:
                if pooling in ("cls", "cls+mean") and not has_special:
                    logger.info("probe: %s has no class token; skipping pooling %s", name, pooling)
                    continue
                results[f"notes-{pooling.replace('+', '-')}"] = run_probes(
                    act, tasks=note_tasks, metadata=notes.metadata, network=name, pooling=pooling, **common)
        if pieces is not None:
            act = extract_activations(extractor, pieces.audio, sample_rate=pieces.sample_rate,
                                      stimulus_ids=list(pieces.metadata["stimulus_id"]))
            results["corpus"] = run_probes(act, tasks=corpus_tasks, metadata=pieces.metadata, music_labels=labels,
                                           network=name, **common)
        for part, result in results.items():
            out = run_dir / "probe" / name / part
            result.save(out)
            save_figures(result, out)
            tables.append(result.table)
            weights.append(result.layer_weights)
            units.append(result.units.assign(part=part))
    outputs = write_combined(run_dir / "probe", "probe", tables)
    outputs += write_combined(run_dir / "probe", "probe_layer_weights", weights)
    outputs += write_combined(run_dir / "probe", "probe_units", units)
    return {"outputs": outputs, "networks": names, "note_tasks": note_tasks, "corpus_tasks": corpus_tasks}


def _check_networks(study: dict[str, Any], section: str, *, transformers_only: bool) -> None:
    names = _networks(study, section, transformers_only=transformers_only)
    for name in names:
        check_network(f"networks.{name}", study["networks"][name])


def _check_clip_section(study: dict[str, Any], section: str) -> None:
    cfg = study[section]
    if not cfg.get("corpus"):
        raise ConfigError(f"step {section!r} needs '{section}.corpus' (an entry of 'corpora' or a corpus folder)")
    check_count(f"{section}.clips", cfg["clips"], minimum=1)
    if cfg["crop_s"] is not None and not float(cfg["crop_s"]) > 0:
        raise ConfigError(f"{section}.crop_s must be > 0 seconds (or null for whole clips), got {cfg['crop_s']!r}")


def _check_attention(study: dict[str, Any]) -> None:
    _check_clip_section(study, "attention")
    if not _networks(study, "attention", transformers_only=True):
        raise ConfigError("step 'attention' found no transformer network; name them in attention.networks")
    _check_networks(study, "attention", transformers_only=True)


def _check_ssm(study: dict[str, Any]) -> None:
    _check_clip_section(study, "ssm")
    _check_networks(study, "ssm", transformers_only=False)


def _check_probe(study: dict[str, Any]) -> None:
    from musiclens.extract.base import POOLINGS
    from musiclens.probe.models import PROBES
    from musiclens.probe.tasks import TASKS

    cfg = study["probes"]
    note_tasks, corpus_tasks = list(cfg["note_tasks"] or []), list(cfg["corpus_tasks"] or [])
    if not note_tasks and not corpus_tasks:
        raise ConfigError("step 'probe' has no tasks: set probes.note_tasks and/or probes.corpus_tasks")
    for task in note_tasks + corpus_tasks:
        TASKS.get(str(task))   # an unknown task: RegistryError listing the valid ones
    if corpus_tasks and not cfg["corpus"]:
        raise ConfigError("probes.corpus_tasks need probes.corpus (an entry of 'corpora' or a corpus folder)")
    PROBES.get(str(cfg["probe"]))
    for pooling in cfg["poolings"]:
        if pooling not in POOLINGS:
            raise ConfigError(f"probes.poolings names {pooling!r}; choose from {', '.join(POOLINGS)}")
    check_count("probes.corpus_clips", cfg["corpus_clips"], minimum=1)
    if cfg["max_epochs"] is not None:
        check_count("probes.max_epochs", cfg["max_epochs"], minimum=1)
    if cfg["seed"] is not None:
        check_count("probes.seed", cfg["seed"])
    for lr in cfg["lrs"] or []:
        if isinstance(lr, bool) or not isinstance(lr, int | float) or not lr > 0:
            raise ConfigError(f"probes.lrs must be positive numbers, got {lr!r}")
    _check_networks(study, "probes", transformers_only=False)


STEP_CHECKS.register("probe", _check_probe)
STEP_CHECKS.register("attention", _check_attention)
STEP_CHECKS.register("ssm", _check_ssm)
STEPS.register("probe", _probe_step,
               help="linear/MLP probes per layer (+ weighted sum) on the note set and corpus clips -> RUN_DIR/probe")
STEPS.register("attention", _attention_step,
               help="onset evidence in attention maps of the transformer networks on corpus clips -> RUN_DIR/attention")
STEPS.register("ssm", _ssm_step,
               help="layer self-similarity matrices vs chroma/MFCC/onset/label references -> RUN_DIR/ssm")
