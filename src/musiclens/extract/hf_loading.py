"""Building Hugging Face extractors: strict loading from a local folder, random weights from a config.

:func:`load_hf_directory` reads a local directory (``config.json``'s ``model_type`` picks the
family; nothing is downloaded and no code from the directory runs unless ``trust_remote_code``),
loads the weights strictly (:func:`from_pretrained_checked`) and the directory's own feature
extractor, and returns an :class:`~musiclens.extract.hf.HFExtractor` (or the MERT extractor).
:func:`build_hf` is the registry entry (``hf``, ``wav2vec2``, ``whisper``...): a directory, or a
config for random weights (tests, untrained controls).  The extractor itself — inputs, frame
times, layers — is :mod:`musiclens.extract.hf`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from musiclens.errors import CheckpointError, ConfigError
from musiclens.extract.hf import (_FE_NEEDS, _UNKNOWN, _WRAPPERS, FAMILIES, MODEL_TYPES, SAMPLE_RATES, HFExtractor,
                                  _do_normalize, _read_json)

__all__ = ["build_hf", "load_hf_directory", "from_pretrained_checked"]

logger = logging.getLogger(__name__)


def _classes(family: str) -> tuple[type, type]:
    import transformers

    cfg_name, model_name, _ = FAMILIES[family]
    return getattr(transformers, cfg_name), getattr(transformers, model_name)


def _random_model(model_cls: type, config: Any, seed: int) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return model_cls(config)


#: How to proceed past missing weights, in the words of the extractor's interfaces.
_ALLOW_HINT = ("pass allow_missing_weights=True (--allow-missing-weights on the command line) to proceed with them "
               "random (recorded in the extractor's info and the manifest)")


def from_pretrained_checked(model_cls: Any, path: str | Path, *, allow_missing_weights: bool = False,
                            expected_missing: Sequence[str] = (), allow_hint: str | None = _ALLOW_HINT,
                            **kwargs: Any) -> tuple[Any, dict[str, list[str]]]:
    """``model_cls.from_pretrained(path)`` from local files, safely and strictly.

    Safetensors are used whenever the directory has them; a directory whose weights exist only as
    a pickle (``pytorch_model.bin``) is loaded by transformers with ``torch.load(weights_only=True)``,
    and a file that is not plain tensors (a pickle that would run code) is a
    :class:`CheckpointError` instead of an ``UnpicklingError``.  Tensors the model needs but the
    files lack would be randomly initialised: that is a :class:`CheckpointError` naming them unless
    ``allow_missing_weights``; tensors in the files that the model does not use are an error too,
    unless they all belong to modules the model does not have (the head of a larger model, e.g.
    ``lm_head`` of a CTC checkpoint loaded as the encoder).  Returns the model and
    ``{"missing_keys": [...], "unexpected_keys": [...], "added_by_config": [...]}`` for the manifest.

    ``expected_missing`` names tensors that the caller's configuration adds and that a directory
    may lack without harm (e.g. the training-only ``masked_spec_embed``): they are drawn, logged
    and listed, never refused.  ``allow_hint`` is the error's advice on proceeding anyway, in the
    words of the caller's interface (``None``: the caller offers no way to proceed).
    """
    import pickle

    from safetensors import SafetensorError

    path = Path(path)
    has_safetensors = any(path.glob("*.safetensors"))
    try:
        model, info = model_cls.from_pretrained(str(path), local_files_only=True, output_loading_info=True,
                                                use_safetensors=True if has_safetensors else None, **kwargs)
    except (pickle.UnpicklingError, EOFError) as err:
        raise CheckpointError(
            f"{path} holds its weights only as a pickle file that is not plain tensors ({type(err).__name__}: "
            f"{str(err)[:200]}); musiclens never runs code from a weight file. Convert the weights to safetensors "
            "where you trust the file (model.save_pretrained(dir, safe_serialization=True)) and load that") from None
    except (OSError, ValueError, RuntimeError, SafetensorError) as err:
        raise CheckpointError(f"cannot load weights from {path} ({type(err).__name__}: {err}); the weight file is "
                              "damaged or incomplete: copy it again") from err
    missing = sorted(info.get("missing_keys") or [])
    tolerated = [k for k in missing if k in set(expected_missing)]
    missing = [k for k in missing if k not in set(expected_missing)]
    mismatched = sorted(str(k[0]) if isinstance(k, tuple) else str(k) for k in info.get("mismatched_keys") or [])
    modules = {name.split(".")[0] for name, _ in model.named_parameters()} | {
        name.split(".")[0] for name, _ in model.named_buffers()}
    unexpected = sorted(info.get("unexpected_keys") or [])
    foreign = [k for k in unexpected if k.split(".")[0] in modules]
    if (missing or mismatched or foreign) and not allow_missing_weights:
        def _some(keys: list[str]) -> str:
            return ", ".join(keys[:6]) + (f" (+{len(keys) - 6} more)" if len(keys) > 6 else "")
        parts = ([f"{len(missing)} tensor(s) the model needs are missing: {_some(missing)}"] if missing else []) + (
            [f"{len(mismatched)} have the wrong shape: {_some(mismatched)}"] if mismatched else []) + (
            [f"{len(foreign)} in the files are not used by the model: {_some(foreign)}"] if foreign else [])
        raise CheckpointError(
            f"{path}: the weight files do not match the model's architecture; " + "; ".join(parts) + ". Those layers "
            "would run with random weights. Use the directory the weights belong to"
            + (f", or {allow_hint}" if allow_hint else ""))
    if missing or mismatched:
        logger.warning("%s: %d tensor(s) missing and %d of the wrong shape are randomly initialised "
                       "(allow_missing_weights)", path, len(missing), len(mismatched))
    if tolerated:
        logger.info("%s lacks %s, which this configuration adds; drawn fresh", path, ", ".join(tolerated))
    return model, {"missing_keys": missing + mismatched, "unexpected_keys": unexpected,
                   "added_by_config": tolerated}


def _transformers_classes(model_type: str) -> tuple[type, type] | None:
    """transformers' own config and base-model classes of a model_type (None: transformers does not implement it)."""
    import transformers
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
    from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES

    cfg_name, model_name = CONFIG_MAPPING_NAMES.get(model_type), MODEL_MAPPING_NAMES.get(model_type)
    if not isinstance(cfg_name, str) or not isinstance(model_name, str):
        return None
    cfg_cls, model_cls = getattr(transformers, cfg_name, None), getattr(transformers, model_name, None)
    return (cfg_cls, model_cls) if cfg_cls is not None and model_cls is not None else None


def _resolve(path: Path, model_type: str) -> tuple[str, str, type, type] | None:
    """``(family, kind, config class, model class)`` of a directory's model_type, natively (no remote code).

    None when transformers does not implement the model_type (only remote code could load it).
    """
    import transformers

    if model_type in _WRAPPERS:
        cfg_name, model_name = _WRAPPERS[model_type]
        family = MODEL_TYPES[model_type]
        return family, FAMILIES[family][2], getattr(transformers, cfg_name), getattr(transformers, model_name)
    if model_type in MODEL_TYPES:
        family = MODEL_TYPES[model_type]
        return (family, FAMILIES[family][2], *_classes(family))
    found = _transformers_classes(model_type)
    if found is None:
        return None
    cfg_cls, model_cls = found
    defaults = cfg_cls()
    if (hasattr(defaults, "conv_kernel") and hasattr(defaults, "conv_stride") and hasattr(defaults, "num_hidden_layers")
            and not getattr(defaults, "is_encoder_decoder", False)
            and getattr(model_cls, "main_input_name", None) == "input_values"):
        return model_type, "waveform", cfg_cls, model_cls
    raise CheckpointError(
        f"{path}: model_type {model_type!r} is implemented by transformers ({model_cls.__name__}), but musiclens does "
        "not know how its outputs map to time. Natively supported: "
        f"{', '.join(sorted(t for t in MODEL_TYPES if t != 'mert_model'))}, MERT, and any transformers waveform "
        "model with a conv feature encoder (conv_kernel/conv_stride, input_values). Extract it with the 'torch' "
        "extractor (forward hooks and explicit frame rates) instead")


def _load_feature_extractor(path: Path, kind: str, family: str) -> Any:
    """The directory's own feature extractor (``AutoFeatureExtractor``), or None (logged) without one."""
    if not (path / "preprocessor_config.json").is_file():
        note = ("%s has no preprocessor_config.json: %s inputs are prepared with musiclens' defaults for the family "
                "(%s)")
        what = {"waveform": "zero-mean unit-variance waveform at 16 kHz", "encodec": "raw waveform at the config's "
                "sampling_rate"}.get(kind, "the transformers feature extractor's default settings")
        (logger.info if kind in ("waveform", "encodec") else logger.warning)(note, path, family, what)
        return None
    from transformers import AutoFeatureExtractor

    try:
        fe = AutoFeatureExtractor.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"cannot read the feature extractor in {path}/preprocessor_config.json ({err}); "
                              "fix or remove that file (without it musiclens uses the family's defaults)") from err
    needs = [a for a in _FE_NEEDS[kind] if not hasattr(fe, a)]
    if needs or not hasattr(fe, "sampling_rate"):
        raise CheckpointError(f"{path}: preprocessor_config.json describes a {type(fe).__name__}, which does not "
                              f"prepare {family} inputs (it lacks {needs or ['sampling_rate']})")
    return fe


#: Hints at a checkpoint's training task: (architectures suffix / model_type, description).
_ARCH_TASKS = (("ForCTC", "speech recognition (CTC head)"), ("ForPreTraining", "self-supervised pre-training"),
               ("ForAudioClassification", "audio classification"), ("ForSequenceClassification", "audio classification"),
               ("ForAudioFrameClassification", "audio frame classification"), ("ForXVector", "speaker verification"),
               ("ForConditionalGeneration", "sequence-to-sequence generation (speech recognition / translation)"),
               ("ClapModel", "contrastive audio-text pre-training"), ("EncodecModel", "neural audio codec (reconstruction)"))
_TYPE_TASKS = {"mert_model": "self-supervised music pre-training (MERT)", "clap": "contrastive audio-text pre-training",
               "encodec": "neural audio codec (reconstruction)", "whisper": "speech recognition / translation (Whisper)"}


def _provenance(cfg: Mapping[str, Any], path: Path, *, randomize: bool, seed: int) -> dict[str, Any]:
    """``task``, ``training_data`` and ``weights_source`` of a directory, from what its config.json says."""
    if randomize:
        return {"task": "none (random weights)", "training_data": "none (random weights)",
                "weights_source": f"random-init (seed {seed}); architecture from {path.resolve()}"}
    task = _UNKNOWN
    archs = [str(a) for a in cfg.get("architectures") or []]
    for suffix, what in _ARCH_TASKS:
        hit = next((a for a in archs if a.endswith(suffix)), None)
        if hit:
            task = f"{what} (config.json architectures: {hit})"
            break
    else:
        if cfg.get("model_type") in _TYPE_TASKS:
            task = f"{_TYPE_TASKS[cfg['model_type']]} (config.json model_type)"
    data = _UNKNOWN
    name = cfg.get("_name_or_path")
    if isinstance(name, str) and name and not name.startswith(("/", ".", "~")) and not Path(name).exists():
        data = f"{_UNKNOWN}; config.json names {name!r}: see its model card"
    return {"task": task, "training_data": data, "weights_source": str(path.resolve())}


def load_hf_directory(
    path: str | Path,
    *,
    randomize: bool = False,
    seed: int = 0,
    trust_remote_code: bool = False,
    device: str = "cpu",
    batch_size: int = 8,
    normalize: bool | None = None,
    dtype: str | None = None,
    allow_missing_weights: bool = False,
) -> HFExtractor:
    """An extractor from a local Hugging Face model directory (no network, no remote code).

    Any model_type transformers implements and musiclens can give frame times (see the module
    docstring) loads natively; others need ``trust_remote_code`` (and a conv waveform front end).

    Raises
    ------
    CheckpointError
        No ``config.json``, a model_type transformers does not implement (with
        ``trust_remote_code=False``) or whose outputs musiclens cannot map to time, a feature
        extractor that does not fit, or weights that do not load.
    """
    path = Path(path)
    cfg = _read_json(path / "config.json")
    model_type = str(cfg.get("model_type"))
    provenance = _provenance(cfg, path, randomize=randomize, seed=seed)
    if MODEL_TYPES.get(model_type) == "mert":
        from musiclens.extract.mert import load_mert

        ext = load_mert(path, randomize=randomize, seed=seed, device=device, batch_size=batch_size,
                        normalize=normalize, dtype=dtype, allow_missing_weights=allow_missing_weights)
        ext.extra_info.update(provenance)
        if (path / "preprocessor_config.json").is_file():
            ext.preprocessing = "preprocessor_config.json (sampling_rate, do_normalize)"
        return ext
    resolved = _resolve(path, model_type)
    loading: dict[str, list[str]] = {}
    if resolved is None:
        if not trust_remote_code:
            raise CheckpointError(
                f"{path}: model_type {model_type!r} is not implemented by transformers (and is not MERT), so loading "
                "it would run code from the directory (auto_map); pass trust_remote_code=True (--trust-remote-code) "
                "only if you trust its author")
        from transformers import AutoConfig, AutoModel

        config = AutoConfig.from_pretrained(path, local_files_only=True, trust_remote_code=True)
        if randomize:
            model = _random_model(AutoModel.from_config, config, seed)  # type: ignore[arg-type]
        else:
            model, loading = from_pretrained_checked(AutoModel, path, allow_missing_weights=allow_missing_weights,
                                                     trust_remote_code=True)
        if not hasattr(model.config, "conv_kernel"):
            raise CheckpointError(f"{path}: remote-code model {type(model).__name__} is not a waveform model musiclens understands")
        sr = int(_read_json(path / "preprocessor_config.json").get("sampling_rate", 16000)) if (
            path / "preprocessor_config.json").is_file() else 16000
        return HFExtractor(model, family="wav2vec2", sample_rate=sr, normalize=_do_normalize(path, True)
                           if normalize is None else normalize, batch_size=batch_size, device=device, dtype=dtype,
                           source=str(path), extra_info={"trust_remote_code": True, "randomized": randomize, "seed": seed,
                                                         "weights_missing_and_random": loading.get("missing_keys", []),
                                                         "weights_unused": loading.get("unexpected_keys", []),
                                                         **provenance})
    family, kind, config_cls, model_cls = resolved
    try:
        config = config_cls.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, TypeError) as err:
        raise CheckpointError(f"{path}/config.json is not a valid {config_cls.__name__}: {err}") from err
    fe = _load_feature_extractor(path, kind, family)
    if randomize:
        model = _random_model(model_cls, config, seed)
    else:
        model, loading = from_pretrained_checked(model_cls, path, allow_missing_weights=allow_missing_weights)
    if fe is not None:
        sr = int(fe.sampling_rate)
        if kind == "encodec" and sr != int(config.sampling_rate):
            raise CheckpointError(f"{path}: preprocessor_config.json says {sr} Hz but config.json {config.sampling_rate} "
                                  "Hz; the two files do not belong together")
    else:
        sr = int(config.sampling_rate) if kind == "encodec" else SAMPLE_RATES[kind]
    ext = HFExtractor(model, family=family, kind=kind, sample_rate=sr,
                      normalize=_do_normalize(path, True) if normalize is None else normalize,
                      feature_extractor=fe, batch_size=batch_size, device=device, dtype=dtype,
                      source=str(path.resolve()), extra_info={
                          "randomized": randomize, "seed": seed, "model_type": model_type,
                          "weights_missing_and_random": loading.get("missing_keys", []),
                          "weights_unused": loading.get("unexpected_keys", []), **provenance})
    if family not in FAMILIES:                       # transformers' other conv waveform models: try one clip first
        try:
            ext.extract([np.zeros(2 * ext.min_samples, dtype=np.float32)])
        except Exception as err:  # noqa: BLE001 - any failure means the generic mapping does not fit
            raise CheckpointError(
                f"{path}: model_type {model_type!r} looks like a conv waveform model but does not run as one "
                f"({type(err).__name__}: {str(err)[:300]}); extract it with the 'torch' extractor instead") from err
    return ext


def build_hf(
    family: str,
    *,
    path: str | Path | None = None,
    config: Mapping[str, Any] | None = None,
    randomize: bool = False,
    seed: int = 0,
    trust_remote_code: bool = False,
    device: str = "cpu",
    batch_size: int = 8,
    normalize: bool | None = None,
    dtype: str | None = None,
    allow_missing_weights: bool = False,
) -> HFExtractor:
    """A family's extractor from a directory (``path``) or from a config with random weights.

    Parameters
    ----------
    family
        A key of :data:`FAMILIES`, ``"mert"``, or ``"hf"`` (with ``path``: whatever the directory holds).
    path
        Local model directory; ``None`` builds the family's default config (overridden by
        ``config``) with random weights drawn with ``seed``.
    config
        Config overrides, e.g. ``{"hidden_size": 64, "num_hidden_layers": 2}``.
    """
    if path is not None:
        if config:
            raise ConfigError("give either path= (a model directory) or config= (random weights), not both")
        ext = load_hf_directory(path, randomize=randomize, seed=seed, trust_remote_code=trust_remote_code,
                                device=device, batch_size=batch_size, normalize=normalize, dtype=dtype,
                                allow_missing_weights=allow_missing_weights)
        if family != "hf" and ext.family != family:
            raise CheckpointError(f"{path} holds a {ext.family!r} model, not {family!r}")
        return ext
    if family == "mert":
        from musiclens.extract.mert import build_mert

        return build_mert(config=config, seed=seed, device=device, batch_size=batch_size,
                          normalize=True if normalize is None else normalize, dtype=dtype)
    if family not in FAMILIES:
        raise ConfigError(f"unknown Hugging Face family {family!r}; choose one of {sorted(FAMILIES)} or 'mert' "
                          "(other model types load from a directory: path=DIR)")
    config_cls, model_cls = _classes(family)
    try:
        cfg = config_cls(**dict(config or {}))
    except (TypeError, ValueError) as err:
        raise ConfigError(f"invalid {family} config: {err}") from err
    model = _random_model(model_cls, cfg, seed)
    kind = FAMILIES[family][2]
    return HFExtractor(model, family=family, sample_rate=int(cfg.sampling_rate) if kind == "encodec" else SAMPLE_RATES[kind],
                       normalize=True if normalize is None else normalize, batch_size=batch_size, device=device,
                       dtype=dtype, source="random-init", extra_info={
                           "randomized": True, "seed": seed, "weights_source": f"random-init (seed {seed})"})
