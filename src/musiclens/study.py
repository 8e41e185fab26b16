"""Study files and ``musiclens run``: a resumable sequence of steps in one run directory.

A study is a YAML mapping (read with ``yaml.safe_load``) validated against :data:`SCHEMA`: an
unknown or misspelt key is an error that names the key and the valid options.  ``musiclens run``
executes the study's steps in order inside ``RUN_DIR``; each step writes its outputs atomically
and is skipped when it already finished (its record in ``steps.json`` exists and its outputs are
present), so an interrupted run, started again, finishes without redoing work and gives the
same numbers.

Every run directory holds ``config.yaml`` (the resolved study), ``manifest.json`` (versions,
seeds, content hashes, timings) and the steps' outputs.

Steps so far:

``stimuli``
    Render the note grid (:func:`musiclens.stimuli.render_notes`) into ``RUN_DIR/stimuli``.
``summary``
    Tables and a figure describing the stimulus set: ``summary.csv`` (one row per instrument),
    ``summary.json`` and ``stimuli.png`` (log-spectra of one note per family and the levels of
    every note).
``extract``
    Pooled activations of every network in ``networks`` into ``RUN_DIR/features/<name>``
    (resumable feature stores).
``rsa``
    RSA of every network against the model RDMs: ``RUN_DIR/rsa/<name>/`` (table, figures) and
    the combined ``RUN_DIR/rsa/rsa.csv`` / ``rsa.parquet``.
``report``
    ``report.html`` (self-contained) and ``report.md``, rebuilt from the saved results.
"""

from __future__ import annotations

import copy
import difflib
import json
import logging
import time
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from musiclens.errors import ConfigError
from musiclens.fsutil import atomic_write_json, atomic_write_text, check_out, mark_output
from musiclens.provenance import environment
from musiclens.registry import Registry

__all__ = ["load_study", "validate_study", "run_study", "apply_scale", "network_model", "network_groups", "seeded_name",
           "STEPS", "STEP_CHECKS", "SCHEMA",
           "NETWORK_KEYS", "CORPUS_KEYS", "TRAINING_KEYS", "DEFAULT_STUDY"]

logger = logging.getLogger(__name__)

#: The study ``musiclens run`` runs when none is named (``"default"`` is an alias of it).
DEFAULT_STUDY = "chroma-emergence"

#: Valid keys and their defaults, per section.  ``None`` means "no default; optional".
SCHEMA: dict[str, dict[str, Any]] = {
    "study": {"name": "notes", "question": "", "seed": 0, "seeds": None, "scale": "quick", "description": "",
              "answer": "auto"},
    "stimuli": {
        "grid": "paper", "instruments": None, "midi": None, "velocities": None, "synth": None,
        "backend": "auto", "soundfont": None, "sample_rate": None, "duration_s": None, "hold_s": None,
        "normalize": "none", "on_out_of_range": "error",
        # your own sounds instead of a rendered grid: a folder of audio + a table keyed by file name
        # (musiclens.stimuli.folder.import_folder); sample_rate above resamples them
        "folder": None, "metadata": None, "file_column": "file", "skip_bad": False,
    },
    "networks": {},
    "rsa": {
        "models": ["pitch_height", "chroma"], "method": "tau-a", "distance": "correlation",
        "subject": "instrument", "condition": "midi", "test": "t-test", "n_permutations": 1000,
        "n_bootstraps": 1000, "bootstrap_over": "both", "correction": "bonferroni", "alpha": 0.05,
        "pooling": "mean",
    },
    # Training corpora built into RUN_DIR/corpora/<name> (free names; entries: CORPUS_KEYS).
    "corpora": {},
    # Training conditions run into RUN_DIR/train/<name> (free names; entries: TRAINING_KEYS).
    "training": {},
    "probes": {
        "networks": None, "note_tasks": ["pitch", "pitch_class", "octave", "instrument", "family"],
        "corpus": None, "corpus_tasks": [], "corpus_clips": 48, "crop_s": 4.0, "probe": "linear",
        "poolings": ["mean"], "layers": None, "lrs": None, "max_epochs": None, "seed": None,
    },
    "attention": {"networks": None, "corpus": None, "clips": 4, "crop_s": 4.0, "layers": None},
    "ssm": {"networks": None, "corpus": None, "clips": 4, "crop_s": 4.0, "layers": None},
    # Paired tests between named conditions (musiclens.study_steps.contrasts): pairs of network
    # groups, RSA statistics "STATISTIC:MODEL_RDM", probe tasks; the headline one leads the report.
    "contrasts": {"pairs": [], "rsa": [], "probe_tasks": None, "headline": None, "n_permutations": 10000,
                  "n_bootstraps": 5000},
    # Measured RDMs (MEG, fMRI, behaviour) every network is evaluated against (musiclens.study_steps.targets).
    "targets": {"files": [], "networks": None, "models": [], "method": "corr", "bootstrap": "dual",
                "n_bootstraps": 1000, "correction": "fdr_bh", "alpha": 0.05, "noise_ceiling": True,
                "flexible": False},
    # Named overlays merged onto the study by `musiclens run --scale NAME` (e.g. quick/full).
    "scales": {},
    "steps": {"run": ["stimuli", "summary"]},
}

#: Keys of one entry of ``corpora``.
CORPUS_KEYS: dict[str, Any] = {
    "kind": "music", "n": 64, "seed": 0, "preset": "default", "duration_s": None, "sample_rate": 16000,
    "soundfont": None, "backend": "auto", "text": "mixed", "voices": None, "pieces_per_shard": 64,
    "description": "",
}

#: Keys of one entry of ``training`` (the rest is a musiclens training config, see musiclens.train.config).
TRAINING_KEYS: dict[str, Any] = {
    "objective": None, "from": None, "model": {}, "options": {}, "data": {}, "optim": {}, "trainer": {},
    "rsa_callback": None, "export": None, "seed": None, "seeds": None, "bar": None, "description": "",
    "group": None,
}

#: Keys of one entry of ``networks`` (a mapping name -> entry).
NETWORK_KEYS: dict[str, Any] = {
    "model": None, "options": {}, "layers": None, "randomize": False, "seed": 0, "batch_size": 8,
    "description": "", "trained": None, "group": None, "devices": 1,
}

_FREE_SECTIONS = {"networks": NETWORK_KEYS, "corpora": CORPUS_KEYS, "training": TRAINING_KEYS}


def _deep_merge(base: dict[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if value is None and isinstance(out.get(key), Mapping):
            del out[key]  # `name: null` in an overlay removes a mapping entry (e.g. a network)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(dict(out[key]), value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_scale(raw: Mapping[str, Any], scale: str | None) -> dict[str, Any]:
    """``raw`` with its ``scales[scale]`` overlay merged in (nested mappings merge key by key;
    ``null`` in place of a mapping removes it, e.g. a network the smaller scale leaves out).

    ``scale=None`` or ``"quick"`` without a ``quick`` overlay returns the study as written.
    """
    raw = dict(raw or {})
    scales = raw.get("scales") or {}
    if not isinstance(scales, Mapping):
        raise ConfigError("section 'scales' of the study file must map scale names to overlays")
    if scale is None or (scale == "quick" and "quick" not in scales):
        return raw
    if scale not in scales:
        raise ConfigError(f"study has no scale {scale!r}; its scales: {', '.join(['quick', *scales]) or '(none)'}")
    merged = _deep_merge(raw, scales[scale] or {})
    merged.setdefault("study", {})
    merged["study"] = {**merged["study"], "scale": scale}
    return merged


def _check_keys(section: str, given: Mapping[str, Any], valid: Mapping[str, Any]) -> None:
    for key in given:
        if key not in valid:
            close = difflib.get_close_matches(str(key), list(valid), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            where = f"section {section!r}" if section else "the top level"
            raise ConfigError(
                f"unknown key {key!r} in {where} of the study file.{hint} Valid keys: {', '.join(valid)}."
            )


#: Keys whose value may be null although their default is not (null means "none" there).
_NULLABLE = {("rsa", "subject")}


def _type_name(default: Any) -> str:
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, int):
        return "an integer"
    if isinstance(default, float):
        return "a number"
    if isinstance(default, str):
        return "a string"
    return "a list" if isinstance(default, list) else "a mapping"


#: Types a key with a null default takes when it is given (others take anything).
_NULL_DEFAULT_TYPES: dict[tuple[str, str], tuple[type, ...]] = {
    ("stimuli", "duration_s"): (int, float), ("stimuli", "hold_s"): (int, float), ("stimuli", "sample_rate"): (int,),
    ("stimuli", "instruments"): (list,), ("stimuli", "midi"): (list, str), ("stimuli", "velocities"): (list, int),
    ("stimuli", "synth"): (str,), ("stimuli", "soundfont"): (str,), ("stimuli", "folder"): (str,),
    ("stimuli", "metadata"): (str,), ("targets", "networks"): (list,),
    ("probes", "networks"): (list,), ("attention", "networks"): (list,), ("ssm", "networks"): (list,),
    ("probes", "corpus"): (str,), ("attention", "corpus"): (str,), ("ssm", "corpus"): (str,),
}
_TYPE_WORDS = {int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a mapping"}


def _check_types(section: str, values: Mapping[str, Any], defaults: Mapping[str, Any]) -> None:
    """Each value has the type of its default; a key whose default is null takes the types in
    :data:`_NULL_DEFAULT_TYPES` (or anything, when it is not listed)."""
    for key, default in defaults.items():
        value = values.get(key)
        if default is None:
            types = _NULL_DEFAULT_TYPES.get((section.split(".")[0], key))
            if value is not None and types is not None and (
                    isinstance(value, bool) or not isinstance(value, types)):
                words = " or ".join(dict.fromkeys(_TYPE_WORDS[float if t is int and float in types else t]
                                                  for t in types))
                raise ConfigError(f"{section}.{key} must be {words} (or null), got {value!r} in the study file")
            continue
        if value is None and (section.split(".")[0], key) in _NULLABLE:
            continue
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, float):
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        else:
            ok = isinstance(value, type(default))
        if not ok:
            raise ConfigError(f"{section}.{key} must be {_type_name(default)} (default {default!r}), got {value!r} "
                              "in the study file")


def check_count(where: str, value: Any, *, minimum: int = 0) -> int:
    """``value`` as an int >= ``minimum``, or a :class:`ConfigError` naming ``where``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where} must be an integer >= {minimum}, got {value!r} in the study file")
    return int(value)


def validate_study(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check a study mapping against :data:`SCHEMA` and fill in defaults.

    Raises
    ------
    ConfigError
        A misspelt or unknown key (named, with the valid options), or a section that is not a
        mapping, or an unknown step.
    """
    raw = dict(raw or {})
    _check_keys("", raw, SCHEMA)
    out: dict[str, Any] = {}
    for section, defaults in SCHEMA.items():
        given = raw.get(section) or {}
        if not isinstance(given, Mapping):
            raise ConfigError(f"section {section!r} of the study file must be a mapping, got {type(given).__name__}")
        if section not in _FREE_SECTIONS and section != "scales":  # free names; entries checked below
            _check_keys(section, given, defaults)
        merged = copy.deepcopy(defaults)
        merged.update(given)
        if section not in _FREE_SECTIONS and section != "scales":
            _check_types(section, merged, defaults)
        out[section] = merged
    for section, keys in _FREE_SECTIONS.items():
        entries = out[section]
        for name, entry in list(entries.items()):
            if not isinstance(entry, Mapping):
                raise ConfigError(f"{section}.{name} must be a mapping with keys {', '.join(keys)}")
            _check_keys(f"{section}.{name}", entry, keys)
            merged = copy.deepcopy(keys)
            merged.update(entry)
            _check_types(f"{section}.{name}", merged, keys)
            entries[name] = merged
    _expand_seeds(out)
    for name, net in out["networks"].items():
        if net["trained"] is not None:
            if net["trained"] not in out["training"]:
                raise ConfigError(f"networks.{name}.trained = {net['trained']!r} is not a training condition; "
                                  f"conditions: {', '.join(out['training']) or '(none)'}")
            net["model"] = net["model"] or "checkpoint"
        if not net["model"]:
            raise ConfigError(f"networks.{name} needs a 'model' (an extractor name, directory or checkpoint)")
    for name, cond in out["training"].items():
        if not cond["objective"]:
            raise ConfigError(f"training.{name} needs an 'objective' (e.g. ntxent, mert, wav2vec2, data2vec, "
                              "transcription, ctc)")
        if cond["from"] is not None and cond["from"] not in out["training"]:
            raise ConfigError(f"training.{name}.from = {cond['from']!r} is not a training condition; "
                              f"conditions: {', '.join(out['training'])}")
        for corpus in _condition_corpora(cond):
            if corpus not in out["corpora"] and not Path(str(corpus)).expanduser().exists():
                raise ConfigError(f"training.{name}.data names corpus {corpus!r}, which is neither an entry of "
                                  f"'corpora' ({', '.join(out['corpora']) or 'none'}) nor an existing folder")
    for section in ("probes", "attention", "ssm"):
        corpus = out[section].get("corpus")
        if corpus is not None and corpus not in out["corpora"] and not Path(str(corpus)).expanduser().exists():
            raise ConfigError(f"{section}.corpus = {corpus!r} is neither an entry of 'corpora' nor an existing folder")
        for net in out[section].get("networks") or []:
            if net not in out["networks"]:
                raise ConfigError(f"{section}.networks names {net!r}, which is not in 'networks' "
                                  f"({', '.join(out['networks'])})")
    for step in out["steps"]["run"]:
        if step not in STEPS:
            raise ConfigError(f"unknown study step {step!r} in steps.run; valid steps: {', '.join(STEPS.names())}")
    return out


def _seed_list(value: Any, where: str) -> list[int] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple) or not value or any(
            isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in value) or len(set(value)) != len(value):
        raise ConfigError(f"{where} must be a non-empty list of distinct non-negative integer seeds, e.g. [0, 1, 2]; "
                          f"got {value!r}")
    return [int(v) for v in value]


def seeded_name(name: str, seed: int) -> str:
    """Name of one seed's copy of a training condition or network: ``NAME-s<seed>``."""
    return f"{name}-s{seed}"


def _expand_seeds(out: dict[str, Any]) -> None:
    """Replace every training condition trained with several seeds (``seeds:`` of the condition,
    else ``study.seeds``) by one condition per seed, ``NAME-s<seed>`` (``group: NAME``, ``seed``),
    and every network / analysis entry that names it by one entry per seed.

    ``from: PARENT`` of a seeded condition points at the parent's copy with the same seed (a
    fine-tuned seed-1 network starts from the seed-1 pretrained one).  Idempotent: entries that
    already carry a ``group`` are left as they are.
    """
    study_seeds = _seed_list(out["study"].get("seeds"), "study.seeds")
    training = out["training"]
    seeds: dict[str, list[int]] = {}
    for name, cond in training.items():
        if cond.get("group") is not None:
            continue
        own = _seed_list(cond.get("seeds"), f"training.{name}.seeds")
        chosen = own if own is not None else study_seeds
        if chosen is not None:
            if cond.get("seed") is not None:
                raise ConfigError(f"training.{name} sets both 'seed' and seeds ({chosen}); keep one")
            seeds[name] = chosen
    if not seeds:
        return
    expanded: dict[str, Any] = {}
    for name, cond in training.items():
        if name not in seeds:
            parent = cond.get("from")
            if parent in seeds:
                raise ConfigError(f"training.{name} fine-tunes {parent!r}, which is trained with seeds {seeds[parent]}; "
                                  f"give {name!r} seeds too (a subset of {seeds[parent]})")
            expanded[name] = cond
            continue
        for s in seeds[name]:
            copy_ = copy.deepcopy(cond)
            parent = cond.get("from")
            if parent in seeds:
                if s not in seeds[parent]:
                    raise ConfigError(f"training.{name} has seed {s}, but its parent {parent!r} is trained with seeds "
                                      f"{seeds[parent]} only")
                copy_["from"] = seeded_name(parent, s)
            copy_.update(seed=s, seeds=None, group=name)
            expanded[seeded_name(name, s)] = copy_
    out["training"] = expanded
    networks: dict[str, Any] = {}
    renamed: dict[str, list[str]] = {}
    for name, net in out["networks"].items():
        cond = net.get("trained")
        if net.get("group") is None and cond in seeds:
            renamed[name] = []
            for s in seeds[cond]:
                copy_ = copy.deepcopy(net)
                copy_.update(trained=seeded_name(cond, s), seed=s, group=name)
                networks[seeded_name(name, s)] = copy_
                renamed[name].append(seeded_name(name, s))
        else:
            networks[name] = net
    out["networks"] = networks
    for section in ("probes", "attention", "ssm"):
        names = out[section].get("networks")
        if names:
            out[section]["networks"] = [n for name in names for n in renamed.get(name, [name])]


def network_groups(study: Mapping[str, Any]) -> dict[str, tuple[str, int | None]]:
    """``{network name: (condition, seed)}``: a seeded network's group and training seed, or
    ``(name, None)`` for a network trained once (or not trained by the study)."""
    out: dict[str, tuple[str, int | None]] = {}
    for name, net in study["networks"].items():
        if net.get("group") is not None:
            out[name] = (str(net["group"]), int(net["seed"]))
        else:
            out[name] = (name, None)
    return out


def _condition_corpora(cond: Mapping[str, Any]) -> list[str]:
    data = cond.get("data") or {}
    names: list[str] = []
    for key in ("train", "val"):
        value = data.get(key)
        if isinstance(value, str):
            names.append(value)
        elif isinstance(value, list | tuple):
            names.extend(str(v) for v in value)
        elif isinstance(value, Mapping):
            names.extend(str(v) for v in value)
    return names


def load_study(spec: str | Path | Mapping[str, Any] | None = None, *, scale: str | None = None) -> dict[str, Any]:
    """A validated study from a YAML path, an embedded study name, or a mapping.

    ``scale`` merges the study's ``scales[scale]`` overlay first (see :func:`apply_scale`).
    """
    if spec is None or spec == "default":
        spec = DEFAULT_STUDY
    if isinstance(spec, Mapping):
        return validate_study(apply_scale(spec, scale))
    path = Path(spec)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError(f"study file {path} does not exist")
        text = path.read_text()
    else:
        embedded = resources.files("musiclens.studies") / f"{spec}.yaml"
        if not embedded.is_file():
            names = sorted(p.name.removesuffix(".yaml") for p in resources.files("musiclens.studies").iterdir()
                           if p.name.endswith(".yaml"))
            raise ConfigError(f"no study file {spec!r} and no embedded study of that name; embedded: {', '.join(names)}")
        text = embedded.read_text()
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"study {spec} is not valid YAML: {err}") from err
    if raw is None or raw == {}:
        raise ConfigError(f"study {spec} is empty; a study file names at least its networks and steps (see the "
                          "embedded studies: `musiclens run --list-steps`, src/musiclens/studies/*.yaml)")
    if not isinstance(raw, Mapping):
        raise ConfigError(f"study {spec} must be a YAML mapping at the top level")
    return validate_study(apply_scale(raw, scale))


# ------------------------------------------------------------------------------------ steps
StepFn = Callable[[dict[str, Any], Path], dict[str, Any]]
#: Steps by name: ``fn(study, run_dir) -> record`` (the record goes into steps.json).
STEPS: Registry[StepFn] = Registry("study step")
#: Checks a step runs on the whole study before the first step starts (``fn(study)``, raising
#: :class:`ConfigError`; its return value is ignored), so a bad entry fails before any work.
STEP_CHECKS: Registry[Callable[[dict[str, Any]], Any]] = Registry("study step check")


def _stimuli_step(study: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    from musiclens.stimuli.notes import render_notes
    from musiclens.stimuli.stimulus_set import StimulusSet

    cfg = study["stimuli"]
    folder = run_dir / "stimuli"
    if folder.is_dir():  # finished earlier by an interrupted run: validate instead of redoing
        s = StimulusSet.load(folder)
    elif cfg["folder"] is not None:
        from musiclens.stimuli.folder import import_folder

        s = import_folder(cfg["folder"], cfg["metadata"], sample_rate=cfg["sample_rate"],
                          file_column=str(cfg["file_column"]), skip_bad=bool(cfg["skip_bad"]))
        s.save(folder)
    else:
        s = render_notes(
            grid=cfg["grid"], instruments=cfg["instruments"], midi=cfg["midi"], velocities=cfg["velocities"],
            synth=cfg["synth"], backend=cfg["backend"], soundfont=cfg["soundfont"],
            sample_rate=cfg["sample_rate"], duration_s=cfg["duration_s"], hold_s=cfg["hold_s"],
            seed=int(study["study"]["seed"]), on_out_of_range=cfg["on_out_of_range"], normalize=cfg["normalize"],
        )
        s.save(folder)
    return {"outputs": ["stimuli"], "n_stimuli": len(s), "content_hash": s.content_hash()}


def _summary_step(study: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    from musiclens.report.stimuli import summarize_stimuli
    from musiclens.stimuli.stimulus_set import StimulusSet

    s = StimulusSet.load(run_dir / "stimuli")
    summary = summarize_stimuli(s, out_dir=run_dir)
    return {"outputs": ["summary.csv", "summary.json", "stimuli.png"], **summary}


def network_model(net: Mapping[str, Any], run_dir: Path) -> tuple[str, dict[str, Any] | None]:
    """``(model, options)`` to build a network entry's extractor; ``trained`` networks point at
    the backbone their training condition exported (``RUN_DIR/train/<condition>/backbone``)."""
    options = dict(net.get("options") or {})
    if net.get("trained"):
        backbone = run_dir / "train" / str(net["trained"]) / "backbone"
        if not backbone.is_dir():
            raise ConfigError(f"training condition {net['trained']!r} has no exported backbone at {backbone}; "
                              "put the 'train' step before 'extract' in steps.run")
        options["path"] = str(backbone)
        return "checkpoint", options
    return str(net["model"]), options or None


def _extract_step(study: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    from musiclens.extract.runner import extract_to_store

    if not study["networks"]:
        raise ConfigError("step 'extract' needs at least one entry under 'networks'")
    outputs, stores = [], {}
    for name, net in study["networks"].items():
        store = run_dir / "features" / name
        model, options = network_model(net, run_dir)
        extract_to_store(
            model, run_dir / "stimuli", store, layers=net["layers"], pooling=study["rsa"]["pooling"],
            batch_size=int(net["batch_size"]), randomize=bool(net["randomize"]), seed=int(net["seed"]),
            options=options, devices=int(net.get("devices", 1)),
        )  # resumable; a finished store costs nothing; devices: local processes that split the stimuli
        outputs.append(f"features/{name}")
        stores[name] = str(store)
    return {"outputs": outputs, "stores": stores}


def _rsa_step(study: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    import pandas as pd

    from musiclens.extract.store import load_pooled
    from musiclens.fsutil import atomic_write_bytes
    from musiclens.rsa.pipeline import run_rsa
    from musiclens.rsa.plots import save_figures
    from musiclens.rsa.rdm import undefined_patterns
    from musiclens.stimuli.stimulus_set import StimulusSet

    cfg = study["rsa"]
    metadata = StimulusSet.read_metadata(run_dir / "stimuli")
    tables, skipped = [], {}
    for name in study["networks"]:
        layers, ids = load_pooled(run_dir / "features" / name)
        # a layer with patterns whose distance is undefined (e.g. a 1-unit output under the
        # correlation distance) has no RDM: leave it out, say so in the log and in steps.json
        bad = [k for k, v in layers.items() if undefined_patterns(v, distance=cfg["distance"]).size]
        for k in bad:
            logger.warning("rsa: %s/%s has stimulus patterns whose %s distance is undefined (constant or zero); "
                           "the layer is left out", name, k, cfg["distance"])
            layers.pop(k)
        if bad:
            skipped[name] = bad
        if not layers:
            continue
        result = run_rsa(
            layers, metadata, network=name, models=cfg["models"], method=cfg["method"], distance=cfg["distance"],
            subject=cfg["subject"], condition=cfg["condition"], stimulus_ids=ids, test=cfg["test"],
            n_permutations=int(cfg["n_permutations"]), n_bootstraps=int(cfg["n_bootstraps"]),
            bootstrap_over=cfg["bootstrap_over"], correction=cfg["correction"], alpha=float(cfg["alpha"]),
            seed=int(study["study"]["seed"]),
        )
        result.save(run_dir / "rsa" / name)
        save_figures(result, run_dir / "rsa" / name, seed=int(study["study"]["seed"]))
        tables.append(result.table)
    table = pd.concat(tables, ignore_index=True)
    groups = network_groups(study)   # a network trained with several seeds: its condition and seed
    table.insert(1, "condition", [groups[n][0] for n in table["network"]])
    table.insert(2, "seed", pd.array([groups[n][1] for n in table["network"]], dtype="Int64"))
    atomic_write_bytes(run_dir / "rsa" / "rsa.csv", table.to_csv(index=False).encode())
    import io

    buf = io.BytesIO()
    table.to_parquet(buf, index=False)
    atomic_write_bytes(run_dir / "rsa" / "rsa.parquet", buf.getvalue())
    return {"outputs": ["rsa/rsa.csv", "rsa/rsa.parquet"], "n_rows": len(table), "skipped_layers": skipped}


def _report_step(study: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    from musiclens.report.html import build_report

    build_report(run_dir)
    return {"outputs": ["report.html", "report.md"]}


# ------------------------------------------------------------------ checks before the first step
def _check_stimuli(study: dict[str, Any]) -> None:
    from musiclens.stimuli.notes import note_grid, plan_grid

    cfg = study["stimuli"]
    if cfg["folder"] is not None:   # own sounds: the folder and table must be there (audio is read by the step)
        from musiclens.stimuli.folder import read_table

        if not Path(str(cfg["folder"])).is_dir():
            raise ConfigError(f"stimuli.folder {cfg['folder']!r} is not a folder; give the folder of your audio files")
        if cfg["metadata"] is None:
            raise ConfigError("stimuli.folder needs stimuli.metadata: a CSV/TSV/Parquet table keyed by file name")
        table = read_table(str(cfg["metadata"]))
        if str(cfg["file_column"]) not in table.columns:
            raise ConfigError(f"stimuli.metadata {cfg['metadata']} has no column {cfg['file_column']!r} "
                              f"(columns: {list(table.columns)}); set stimuli.file_column")
        return
    grid = note_grid(grid=cfg["grid"], instruments=cfg["instruments"], midi=cfg["midi"], velocities=cfg["velocities"],
                     synth=cfg["synth"], sample_rate=cfg["sample_rate"], duration_s=cfg["duration_s"],
                     hold_s=cfg["hold_s"])
    plan_grid(grid, backend=cfg["backend"], soundfont=cfg["soundfont"], on_out_of_range=cfg["on_out_of_range"],
              normalize=cfg["normalize"])


def check_network(where: str, net: Mapping[str, Any], *, pooling: str | None = None) -> None:
    """A network entry names a registered extractor, an existing folder or a training condition."""
    import musiclens.extract  # noqa: F401  (registers the built-in extractors)
    from musiclens.extract.base import EXTRACTORS, POOLINGS

    check_count(f"{where}.batch_size", net["batch_size"], minimum=1)
    check_count(f"{where}.seed", net["seed"])
    check_count(f"{where}.devices", net.get("devices", 1), minimum=1)
    if pooling is not None and pooling != "none" and pooling not in POOLINGS:
        raise ConfigError(f"rsa.pooling {pooling!r} is unknown; choose 'none' or one of {', '.join(POOLINGS)}")
    if net.get("trained"):
        return
    model = str(net["model"])
    if model not in EXTRACTORS and not Path(model).expanduser().exists():
        close = difflib.get_close_matches(model, EXTRACTORS.names(), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{where}.model {model!r} is neither a registered extractor nor an existing folder or "
                          f"checkpoint.{hint} Registered: {', '.join(EXTRACTORS.names())} (`musiclens models`)")


def _check_extract(study: dict[str, Any]) -> None:
    if not study["networks"]:
        raise ConfigError("step 'extract' needs at least one entry under 'networks'")
    for name, net in study["networks"].items():
        check_network(f"networks.{name}", net, pooling=study["rsa"]["pooling"])


def _check_rsa(study: dict[str, Any]) -> None:
    from musiclens.rsa.models import MODEL_RDMS
    from musiclens.rsa.pipeline import _validate_config
    from musiclens.rsa.rdm import DISTANCES

    cfg = study["rsa"]
    if not cfg["models"]:
        raise ConfigError("rsa.models needs at least one model RDM (e.g. [pitch_height, chroma])")
    for model in cfg["models"]:
        MODEL_RDMS.get(str(model))   # an unknown name: RegistryError listing the valid ones
    DISTANCES.get(str(cfg["distance"]))
    _validate_config(method=cfg["method"], test=cfg["test"], bootstrap_over=cfg["bootstrap_over"],
                     correction=cfg["correction"], n_permutations=check_count("rsa.n_permutations", cfg["n_permutations"]),
                     n_bootstraps=check_count("rsa.n_bootstraps", cfg["n_bootstraps"]), alpha=float(cfg["alpha"]),
                     ci_level=0.95)


STEP_CHECKS.register("stimuli", _check_stimuli)
STEP_CHECKS.register("extract", _check_extract)
STEP_CHECKS.register("rsa", _check_rsa)
STEPS.register("stimuli", _stimuli_step, help="render the note grid into RUN_DIR/stimuli")
STEPS.register("extract", _extract_step, help="pooled activations of every network into RUN_DIR/features/<name>")
STEPS.register("rsa", _rsa_step, help="RSA of every network against the model RDMs into RUN_DIR/rsa")
STEPS.register("report", _report_step, help="report.html and report.md from the saved results")
STEPS.register("summary", _summary_step, help="summary tables and figure of the stimulus set")


# ------------------------------------------------------------------------------------ runner
def run_study(study: str | Path | Mapping[str, Any] | None = None, *, out: str | Path,
              scale: str | None = None) -> Path:
    """Run a study in ``out`` (created if needed); finished steps are skipped.

    Returns the run directory.  ``manifest.json`` is rewritten after each step with versions,
    the seed, per-step records (content hashes, counts) and timings.  ``scale`` picks one of
    the study's ``scales`` overlays (e.g. ``"full"``).
    """
    cfg = load_study(study, scale=scale)
    for name in cfg["steps"]["run"]:
        if name in STEP_CHECKS:
            STEP_CHECKS.get(name)(cfg)
    run_dir = check_out(out, "run")   # never into a folder musiclens did not make
    run_dir.mkdir(parents=True, exist_ok=True)
    config_text = yaml.safe_dump(cfg, sort_keys=False)
    cfg_path = run_dir / "config.yaml"
    def _effective(text: str) -> dict[str, Any]:  # overlays that were not applied do not change the numbers
        d = dict(yaml.safe_load(text) or {})
        d.pop("scales", None)
        return d

    if cfg_path.is_file() and _effective(cfg_path.read_text()) != _effective(config_text):
        raise ConfigError(
            f"{run_dir} holds a run of a different study configuration; use a new --out folder "
            "(or delete the old run) so results of two configurations never mix"
        )
    mark_output(run_dir, "run")
    atomic_write_text(cfg_path, config_text)
    steps_path = run_dir / "steps.json"
    records: dict[str, Any] = json.loads(steps_path.read_text()) if steps_path.is_file() else {}
    upstream_ran = False   # a step that runs makes every later step's saved output stale
    for name in cfg["steps"]["run"]:
        rec = records.get(name)
        if not upstream_ran and rec and all((run_dir / o).exists() for o in rec.get("outputs", [])):
            logger.info("step %s already finished; skipping", name)
            continue
        upstream_ran = True
        logger.info("running step %s", name)
        start = time.perf_counter()
        rec = STEPS.get(name)(cfg, run_dir)
        rec["seconds"] = round(time.perf_counter() - start, 3)
        records[name] = rec
        atomic_write_json(steps_path, records)
        _write_manifest(run_dir, cfg, records)
    _write_manifest(run_dir, cfg, records)
    return run_dir


def _write_manifest(run_dir: Path, cfg: dict[str, Any], records: dict[str, Any]) -> None:
    atomic_write_json(run_dir / "manifest.json", {
        "study": cfg["study"]["name"],
        "seed": cfg["study"]["seed"],
        "steps": records,
        "timings_s": {k: v.get("seconds") for k, v in records.items()},
        "environment": environment(),
    })


# The corpora / train / probe / attention / ssm steps live in musiclens.study_steps and register
# themselves in STEPS; imported last because they import this module.
import musiclens.study_steps  # noqa: E402,F401  (registers steps)
