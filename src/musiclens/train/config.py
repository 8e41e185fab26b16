"""Training configs: one YAML mapping (or dict), validated in full before any training starts.

Sections and their keys (defaults in :data:`SCHEMA`)::

    objective: ntxent              # a name in OBJECTIVE_MODULES / OBJECTIVES
    options: {...}                 # the objective's options, passed through to its builder
    model: {family, config, init_from}   # passed through to the objective's builder
    data:
      train: [corpus folders]      # musiclens corpus folders (``musiclens corpus ...``)
      val: [corpus folders] | 0.1  # validation corpora, or a fraction of the training pieces
      weights: [1.0, ...]          # mixing weights of the training corpora (e.g. music + speech)
      crop_s: null                 # override the objective's crop length, s
      batch_size: 8
      num_workers: 0
      val_max_items: 64            # size of the fixed validation set
      seed: null                   # data seed (default: the top-level seed)
    optim: {lr, weight_decay, betas, eps, warmup_steps, schedule, min_lr, max_steps, grad_clip, accumulate}
    trainer: {accelerator, devices, num_nodes, strategy, precision, deterministic,
              log_every_n_steps, val_every_n_steps, checkpoint_every_n_steps, logger, progress_bar}
    rsa_callback: {every_n_steps, stimuli, instruments, midi, duration_s, hold_s, layers, pooling,
                   method, models, at_start, batch_size}
    export: {at_end, every_checkpoint}
    bar: {metric, threshold, direction, relative_to, relative}   # learning bar; null: the objective's
    seed: 0

:func:`load_train_config` checks structure (unknown or misspelt keys name the valid ones, with a
close-match hint; types and ranges).  :func:`check_against_objective` checks the config against
the built objective and the corpora on disk (corpus kinds, targets, shapes, sample rates): both
run before the run directory is touched.
"""

from __future__ import annotations

import copy
import difflib
import importlib
import importlib.util
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from musiclens.errors import ConfigError, MissingDependencyError

__all__ = ["SCHEMA", "load_train_config", "apply_overrides", "objective_names", "objective_builder",
           "check_against_objective", "config_text"]

#: Valid keys and defaults per section; ``objective``, ``seed`` are scalars at the top level.
SCHEMA: dict[str, Any] = {
    "objective": None,
    "options": {},
    "model": {},
    "data": {"train": [], "val": None, "weights": None, "crop_s": None, "batch_size": 8, "num_workers": 0,
             "val_max_items": 64, "seed": None},
    "optim": {"lr": 1e-4, "weight_decay": 0.01, "betas": [0.9, 0.98], "eps": 1e-8, "warmup_steps": 0,
              "schedule": "cosine", "min_lr": 0.0, "max_steps": 1000, "grad_clip": 1.0, "accumulate": 1},
    "trainer": {"accelerator": "auto", "devices": "auto", "num_nodes": 1, "strategy": "auto", "precision": "32",
                "deterministic": False, "log_every_n_steps": 50, "val_every_n_steps": 500,
                "checkpoint_every_n_steps": 500, "logger": "csv", "progress_bar": True},
    "rsa_callback": {"every_n_steps": 0, "stimuli": "quick", "instruments": None, "midi": None,
                     "duration_s": 1.0, "hold_s": 0.75, "layers": None, "pooling": "mean", "method": "tau-a",
                     "models": ["pitch_height", "chroma"], "at_start": True, "batch_size": 16},
    "export": {"at_end": True, "every_checkpoint": False},
    # the learning bar (musiclens.train.bar): null keys take the objective's default
    "bar": {"metric": None, "threshold": None, "direction": None, "relative_to": None, "relative": None},
    "seed": 0,
}
_FREE_SECTIONS = ("options", "model")
_SCHEDULES = ("cosine", "linear", "constant")
_PRECISIONS = ("32", "bf16-mixed", "16-mixed", "64", "bf16-true")
_LOGGERS = ("csv", "tensorboard", "none")
_ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
_POOLINGS = ("mean", "max", "first", "last", "cls")


def _check_keys(where: str, given: Mapping[str, Any], valid: Sequence[str]) -> None:
    for key in given:
        if key not in valid:
            close = difflib.get_close_matches(str(key), list(valid), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown key {key!r} in {where} of the training config.{hint} "
                              f"Valid keys: {', '.join(valid)}.")


def objective_names() -> list[str]:
    """Objectives a config may name: the built-in modules plus anything registered."""
    from musiclens.train.base import OBJECTIVES
    from musiclens.train.objectives import OBJECTIVE_MODULES

    return sorted(set(OBJECTIVE_MODULES) | set(OBJECTIVES.names()))


def objective_builder(name: str) -> Callable[[Mapping[str, Any], Mapping[str, Any]], Any]:
    """The builder ``(options, model) -> Objective`` of objective ``name``.

    Only the module of that objective is imported (not every objective), so one broken or
    missing optional dependency does not block the others.
    """
    from musiclens.train.base import OBJECTIVES
    from musiclens.train.objectives import OBJECTIVE_MODULES

    if name not in OBJECTIVES and name in OBJECTIVE_MODULES:
        try:
            importlib.import_module(OBJECTIVE_MODULES[name])
        except ImportError as err:
            raise MissingDependencyError(
                f"objective {name!r} cannot be imported ({err}); install what it needs or choose another objective"
            ) from err
    if name not in OBJECTIVES:
        close = difflib.get_close_matches(str(name), objective_names(), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown objective {name!r}.{hint} Valid objectives: {', '.join(objective_names())}.")
    return OBJECTIVES.get(name)


def _as_number(where: str, value: Any, *, kind: type = float, positive: bool = False,
               non_negative: bool = False) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where} must be a number, got {value!r}")
    if kind is int and int(value) != value:
        raise ConfigError(f"{where} must be an integer, got {value!r}")
    value = kind(value)
    if positive and value <= 0:
        raise ConfigError(f"{where} must be > 0, got {value}")
    if non_negative and value < 0:
        raise ConfigError(f"{where} must be >= 0, got {value}")
    return value


def _check_choice(where: str, value: Any, choices: Sequence[str]) -> str:
    if str(value) not in choices:
        raise ConfigError(f"{where} must be one of {', '.join(choices)}, got {value!r}")
    return str(value)


def load_train_config(spec: str | Path | Mapping[str, Any], *, overrides: Sequence[str] = (),
                      objective: str | None = None, max_steps: int | None = None,
                      check_paths: bool = True) -> dict[str, Any]:
    """A validated training config with defaults filled in.

    Parameters
    ----------
    spec
        A YAML file or a mapping.
    overrides
        ``"section.key=value"`` strings (values parsed as YAML), applied before validation.
    objective
        Objective name given on the command line; must agree with the config's when both are set.
    max_steps
        Override of ``optim.max_steps``.
    check_paths
        Check that the corpus and stimulus folders exist.  A study validates its conditions
        before its first step with ``False``, since its own steps make those folders.

    Raises
    ------
    ConfigError
        Unknown section or key (with the valid keys and a close match), a value of the wrong type
        or out of range, an unknown objective, a missing corpus folder.
    """
    if isinstance(spec, Mapping):
        raw: Any = copy.deepcopy(dict(spec))
    else:
        path = Path(spec)
        if not path.is_file():
            raise ConfigError(f"training config {path} does not exist")
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise ConfigError(f"training config {path} is not valid YAML: {err}") from err
        raw = raw or {}
        if not isinstance(raw, Mapping):
            raise ConfigError(f"training config {path} must be a YAML mapping at the top level")
        raw = dict(raw)
    raw = apply_overrides(raw, overrides)
    if objective is not None:
        if raw.get("objective") not in (None, objective):
            raise ConfigError(f"the command line names objective {objective!r} but the config names "
                              f"{raw['objective']!r}; make them agree (or drop 'objective' from the config)")
        raw["objective"] = objective
    if max_steps is not None:
        raw.setdefault("optim", {})
        if not isinstance(raw["optim"], Mapping):
            raise ConfigError("section 'optim' must be a mapping")
        raw["optim"] = {**raw["optim"], "max_steps": max_steps}
    return _validate(raw, check_paths=check_paths)


def apply_overrides(raw: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``"a.b.c=value"`` overrides (YAML-parsed values) to a copy of ``raw``."""
    out = copy.deepcopy(dict(raw))
    for item in overrides:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key.sub=value, got {item!r}")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML ({err})") from err
        parts = key.strip().split(".")
        node: dict[str, Any] = out
        for p in parts[:-1]:
            nxt = node.get(p)
            if nxt is None:
                nxt = node[p] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"--set {item!r}: {p!r} is not a section")
            node = nxt
        node[parts[-1]] = parsed
    return out


def _validate(raw: Mapping[str, Any], *, check_paths: bool = True) -> dict[str, Any]:
    _check_keys("the top level", raw, list(SCHEMA))
    cfg: dict[str, Any] = {}
    for section, default in SCHEMA.items():
        given = raw.get(section)
        if isinstance(default, dict):
            given = given or {}
            if not isinstance(given, Mapping):
                raise ConfigError(f"section {section!r} of the training config must be a mapping, "
                                  f"got {type(given).__name__}")
            if section not in _FREE_SECTIONS:
                _check_keys(f"section {section!r}", given, list(default))
            merged = copy.deepcopy(default)
            merged.update(copy.deepcopy(dict(given)))
            cfg[section] = merged
        else:
            cfg[section] = default if given is None else given
    # ---- objective and model
    if not cfg["objective"] or not isinstance(cfg["objective"], str):
        raise ConfigError(f"the training config needs 'objective: NAME'; valid objectives: {', '.join(objective_names())}")
    objective_builder(cfg["objective"])  # unknown names raise here, listing the valid ones
    cfg["seed"] = _as_number("seed", cfg["seed"], kind=int)
    # ---- data
    d = cfg["data"]
    train = d["train"]
    if isinstance(train, str | Path):
        train = [train]
    if not train:
        raise ConfigError("data.train must list at least one corpus folder (build one with `musiclens corpus ...`)")
    d["train"] = [str(p) for p in train]
    val = d["val"]
    if isinstance(val, str | Path):
        val = [val]
    if isinstance(val, list | tuple):
        d["val"] = [str(p) for p in val]
    elif val is not None:
        v = _as_number("data.val (a fraction)", val)
        if not 0 < v < 1:
            raise ConfigError(f"data.val as a fraction of the training pieces must lie in (0, 1), got {v}")
        d["val"] = v
    for p in (d["train"] + (d["val"] if isinstance(d["val"], list) else [])) if check_paths else []:
        if not (Path(p) / "corpus.json").is_file():
            what = "does not exist" if not Path(p).exists() else "is not a finished musiclens corpus (no corpus.json)"
            raise ConfigError(f"corpus folder {p} {what}; build it with `musiclens corpus ...` or fix data.train/data.val")
    if d["weights"] is not None:
        w = list(d["weights"]) if isinstance(d["weights"], list | tuple) else None
        if w is None or len(w) != len(d["train"]):
            raise ConfigError(f"data.weights must list one weight per training corpus ({len(d['train'])}), got {d['weights']!r}")
        d["weights"] = [_as_number("data.weights[i]", x, positive=True) for x in w]
    if d["crop_s"] is not None:
        d["crop_s"] = _as_number("data.crop_s", d["crop_s"], positive=True)
    d["batch_size"] = _as_number("data.batch_size", d["batch_size"], kind=int, positive=True)
    d["num_workers"] = _as_number("data.num_workers", d["num_workers"], kind=int, non_negative=True)
    d["val_max_items"] = _as_number("data.val_max_items", d["val_max_items"], kind=int, non_negative=True)
    if d["seed"] is not None:
        d["seed"] = _as_number("data.seed", d["seed"], kind=int)
    # ---- optim
    o = cfg["optim"]
    o["lr"] = _as_number("optim.lr", o["lr"], positive=True)
    o["min_lr"] = _as_number("optim.min_lr", o["min_lr"], non_negative=True)
    if o["min_lr"] > o["lr"]:
        raise ConfigError(f"optim.min_lr ({o['min_lr']}) must not exceed optim.lr ({o['lr']})")
    o["weight_decay"] = _as_number("optim.weight_decay", o["weight_decay"], non_negative=True)
    o["eps"] = _as_number("optim.eps", o["eps"], positive=True)
    betas = o["betas"]
    if not isinstance(betas, list | tuple) or len(betas) != 2 or not all(
            isinstance(b, int | float) and 0 <= b < 1 for b in betas):
        raise ConfigError(f"optim.betas must be two numbers in [0, 1), got {betas!r}")
    o["betas"] = [float(b) for b in betas]
    o["max_steps"] = _as_number("optim.max_steps", o["max_steps"], kind=int, positive=True)
    o["warmup_steps"] = _as_number("optim.warmup_steps", o["warmup_steps"], kind=int, non_negative=True)
    o["schedule"] = _check_choice("optim.schedule", o["schedule"], _SCHEDULES)
    if o["grad_clip"] is not None:
        o["grad_clip"] = _as_number("optim.grad_clip", o["grad_clip"], non_negative=True)
    o["accumulate"] = _as_number("optim.accumulate", o["accumulate"], kind=int, positive=True)
    # ---- trainer
    t = cfg["trainer"]
    t["accelerator"] = _check_choice("trainer.accelerator", t["accelerator"], _ACCELERATORS)
    t["precision"] = _check_choice("trainer.precision", str(t["precision"]), _PRECISIONS)
    t["logger"] = _check_choice("trainer.logger", str(t["logger"]).lower(), _LOGGERS)
    if not isinstance(t["strategy"], str):
        raise ConfigError(f"trainer.strategy must be a string (auto, ddp, ...), got {t['strategy']!r}")
    if t["devices"] != "auto" and not isinstance(t["devices"], int | list):
        raise ConfigError(f"trainer.devices must be 'auto', a count or a list of device ids, got {t['devices']!r}")
    t["num_nodes"] = _as_number("trainer.num_nodes", t["num_nodes"], kind=int, positive=True)
    for key in ("log_every_n_steps",):
        t[key] = _as_number(f"trainer.{key}", t[key], kind=int, positive=True)
    for key in ("val_every_n_steps", "checkpoint_every_n_steps"):
        t[key] = _as_number(f"trainer.{key}", t[key], kind=int, non_negative=True)
    if t["logger"] == "tensorboard" and importlib.util.find_spec("tensorboard") is None \
            and importlib.util.find_spec("tensorboardX") is None:
        raise ConfigError("trainer.logger is 'tensorboard' but tensorboard is not installed: "
                          "`pip install tensorboard`, or use logger: csv")
    # ---- rsa callback
    r = cfg["rsa_callback"]
    r["every_n_steps"] = _as_number("rsa_callback.every_n_steps", r["every_n_steps"], kind=int, non_negative=True)
    r["pooling"] = _check_choice("rsa_callback.pooling", r["pooling"], _POOLINGS)
    r["batch_size"] = _as_number("rsa_callback.batch_size", r["batch_size"], kind=int, positive=True)
    if r["every_n_steps"]:
        _check_stimuli(r, check_paths=check_paths)
    if not isinstance(cfg["export"]["at_end"], bool) or not isinstance(cfg["export"]["every_checkpoint"], bool):
        raise ConfigError("export.at_end and export.every_checkpoint must be true or false")
    if any(v is not None for v in cfg["bar"].values()):
        from musiclens.train.bar import resolve_bar

        resolve_bar(cfg["bar"], {"metric": "val/loss", "threshold": 0.0})   # types and choices, before any work
    return cfg


def _check_stimuli(r: dict[str, Any], *, check_paths: bool = True) -> None:
    from musiclens.rsa.compare import COMPARISONS
    from musiclens.rsa.models import MODEL_RDMS
    from musiclens.stimuli.notes import GRIDS

    stim = str(r["stimuli"])
    if check_paths and stim not in GRIDS and not (Path(stim) / "metadata.csv").exists() and not Path(stim).is_dir():
        raise ConfigError(f"rsa_callback.stimuli {stim!r} is neither a note grid ({', '.join(GRIDS.names())}) "
                          "nor a StimulusSet folder")
    COMPARISONS.get(r["method"])
    for m in r["models"]:
        MODEL_RDMS.get(m)
    if len(r["models"]) < 1:
        raise ConfigError("rsa_callback.models needs at least one model RDM (e.g. [pitch_height, chroma])")


def config_text(cfg: Mapping[str, Any]) -> str:
    """The YAML written as ``config.yaml`` in a run directory."""
    return yaml.safe_dump(dict(cfg), sort_keys=False)


def check_against_objective(cfg: Mapping[str, Any], objective: Any) -> dict[str, Any]:
    """Check the data section against a built objective and the corpora on disk.

    Returns ``{"spec": DataSpec, "corpora": {folder: (kind, sample_rate, n_pieces, content_hash)}}``.

    Raises
    ------
    ConfigError
        A corpus whose kind the objective does not accept (e.g. CTC on music), targets the
        corpora lack (phonemes from music, piano rolls from speech), a crop shorter than one
        backbone frame, a backbone whose sample rate differs from the objective's data rate.
    """
    from musiclens.corpora.dataset import Corpus

    spec = objective.data_spec()
    d = cfg["data"]
    name = cfg["objective"]
    folders = list(d["train"]) + (list(d["val"]) if isinstance(d["val"], list) else [])
    info: dict[str, tuple[str, int, int, str]] = {}
    for folder in folders:
        c = Corpus(folder)
        info[folder] = (c.kind, c.sample_rate, len(c), c.content_hash)
        if c.kind not in spec.kinds:
            raise ConfigError(f"objective {name!r} trains on {' or '.join(spec.kinds)} corpora, but {folder} is a "
                              f"{c.kind} corpus; choose corpora of kind {', '.join(spec.kinds)}")
        if len(c) == 0:
            raise ConfigError(f"corpus {folder} holds no pieces")
        needs = {"piano_roll": "music", "onset_roll": "music", "beat_frames": "music", "downbeat_frames": "music",
                 "phonemes": "speech", "text": "speech"}
        for target in spec.targets:
            want = needs.get(target)
            if want is None:
                raise ConfigError(f"objective {name!r} asks for batch key {target!r}, which no corpus provides "
                                  f"(known: {', '.join(needs)})")
            if c.kind != want:
                raise ConfigError(f"objective {name!r} needs {target!r} targets, which the {c.kind} corpus {folder} "
                                  f"does not have (only {want} corpora do)")
    backbone = objective.backbone
    if int(backbone.sample_rate) != int(spec.sample_rate):
        raise ConfigError(f"the backbone reads {backbone.sample_rate} Hz audio but objective {name!r} asks for "
                          f"{spec.sample_rate} Hz data; set the model config's sample rate to match")
    crop_s = d["crop_s"] if d["crop_s"] is not None else spec.crop_s
    if crop_s is not None:
        n = int(round(crop_s * spec.sample_rate))
        frames = backbone.n_frames(n)
        if frames < 1:
            one = 1.0 / float(backbone.frame_rate_hz)
            raise ConfigError(f"crop_s={crop_s} s ({n} samples) is shorter than one backbone frame "
                              f"(about {one:.3f} s); use a longer data.crop_s")
    if spec.views > 1 and crop_s is None:
        raise ConfigError(f"objective {name!r} draws {spec.views} views per item, which needs a crop length; set data.crop_s")
    if spec.frame_rate is not None and spec.frame_rate <= 0:
        raise ConfigError(f"objective {name!r} asks for frame rate {spec.frame_rate}; must be > 0")
    return {"spec": spec, "corpora": info, "crop_s": crop_s}
