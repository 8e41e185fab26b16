"""MERT checkpoints without running their code: mapped into transformers' ``HubertModel``.

MERT's Hugging Face port (``m-a-p/MERT-v1-95M`` ...) ships ``configuration_MERT.py`` and
``modeling_MERT.py`` and asks for ``trust_remote_code=True``; with transformers >= 4.48 that code
fails anyway (PAPERS §3.4).  Its model is HuBERT with three optional extras, handled here:

- ``feature_extractor_cqt``: an nnAudio CQT (``hop = sample_rate // 50``, ``fmin`` 32.7 Hz,
  ``feature_extractor_cqt_bins`` bins, 7 octaves) whose magnitude frames are concatenated to the
  conv features (cut to the conv frame count) before the feature projection.  musiclens
  rebuilds the CQT with nnAudio (its kernels are deterministic; checkpoint copies are ignored),
  widens the projection, and concatenates through a forward hook on the conv encoder.
- ``attention_relax``: subtracting the row maximum (scaled) before the softmax, which leaves the
  attention weights mathematically unchanged; ignored.
- ``deepnorm``: scaled residuals; not supported (a clear :class:`CheckpointError`).

The checkpoint's keys are MERTModel's: HubertModel's names, optionally prefixed ``mert_model.``,
with the legacy weight-norm names ``encoder.pos_conv_embed.conv.weight_g/weight_v``.  Weights
load with safetensors, or ``torch.load(weights_only=True)`` for ``pytorch_model.bin``; nothing in
the directory is executed.  Frames: 75 Hz at 24 kHz (stride 320).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from musiclens.errors import CheckpointError, MissingDependencyError
from musiclens.extract.hf import HFExtractor, _do_normalize, _read_json

__all__ = ["load_mert", "build_mert", "mert_hubert_config", "read_state_dict", "MERT_EXTRAS"]

logger = logging.getLogger(__name__)

#: MERTConfig keys that are not HubertConfig keys.
MERT_EXTRAS = ("feature_extractor_cqt", "feature_extractor_cqt_bins", "deepnorm", "attention_relax",
               "sample_rate", "auto_map", "architectures", "model_type", "transformers_version", "torch_dtype")

_RENAMES = {
    "encoder.pos_conv_embed.conv.weight_g": "encoder.pos_conv_embed.conv.parametrizations.weight.original0",
    "encoder.pos_conv_embed.conv.weight_v": "encoder.pos_conv_embed.conv.parametrizations.weight.original1",
}


def mert_hubert_config(mert_config: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """``(HubertConfig, extras)`` from a MERT ``config.json`` dict."""
    from transformers import HubertConfig

    cfg = dict(mert_config)
    extras = {k: cfg.pop(k) for k in MERT_EXTRAS if k in cfg}
    if extras.get("deepnorm"):
        raise CheckpointError(
            "this MERT checkpoint uses deepnorm (scaled residuals), which musiclens does not implement natively; "
            "no released MERT-v1 checkpoint does — check config.json"
        )
    try:
        return HubertConfig(**cfg), extras
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"MERT config does not map onto HubertConfig: {err}") from err


def _add_cqt(model: torch.nn.Module, hub_cfg: Any, *, sample_rate: int, n_bins: int) -> None:
    try:
        from nnAudio.features.cqt import CQT
    except ImportError as err:
        raise MissingDependencyError(
            "this MERT checkpoint has feature_extractor_cqt=true, which needs nnAudio: pip install nnAudio"
        ) from err
    from transformers.models.hubert.modeling_hubert import HubertFeatureProjection

    cqt = CQT(sr=sample_rate, hop_length=sample_rate // 50, fmin=32.7, fmax=None, n_bins=n_bins,
              bins_per_octave=n_bins // 7, filter_scale=1, norm=1, window="hann", center=True,
              pad_mode="constant", trainable=False, output_format="Magnitude", verbose=False)
    model.add_module("feature_extractor_cqt", cqt)
    wide = hub_cfg.__class__(**hub_cfg.to_dict())
    wide.conv_dim = list(hub_cfg.conv_dim[:-1]) + [hub_cfg.conv_dim[-1] + n_bins]
    model.feature_projection = HubertFeatureProjection(wide)

    def concat_cqt(_mod: torch.nn.Module, inputs: tuple[torch.Tensor, ...], conv: torch.Tensor) -> torch.Tensor:
        spec = cqt(inputs[0])                                   # [B, n_bins, T_cqt]
        if spec.shape[-1] < conv.shape[-1]:
            raise CheckpointError(
                f"MERT CQT gives {spec.shape[-1]} frames but the conv encoder {conv.shape[-1]}: the checkpoint's "
                "sample_rate and conv strides are inconsistent (MERT's own code fails on it too)"
            )
        return torch.cat([conv, spec[..., :conv.shape[-1]].to(conv.dtype)], dim=1)

    model.feature_extractor.register_forward_hook(concat_cqt)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Weights of a Hugging Face directory, loaded safely (safetensors or weights-only pickle)."""
    from safetensors.torch import load_file

    for index_name, loader in (("model.safetensors.index.json", "st"), ("pytorch_model.bin.index.json", "pt")):
        if (path / index_name).is_file():
            files = sorted(set(json.loads((path / index_name).read_text())["weight_map"].values()))
            out: dict[str, torch.Tensor] = {}
            for f in files:
                out.update(load_file(path / f) if loader == "st" else _torch_load(path / f))
            return out
    if (path / "model.safetensors").is_file():
        return load_file(path / "model.safetensors")
    if (path / "pytorch_model.bin").is_file():
        return _torch_load(path / "pytorch_model.bin")
    raise CheckpointError(f"{path} has no model.safetensors or pytorch_model.bin; copy the weights into it")


def _torch_load(file: Path) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle.UnpicklingError and friends
        raise CheckpointError(
            f"{file} cannot be loaded as plain tensors (weights_only=True refused it: {err}); "
            "convert it to safetensors"
        ) from err
    return dict(obj)


def _map_keys(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    out: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    for key, value in state.items():
        k = key[len("mert_model."):] if key.startswith("mert_model.") else key
        if k.startswith("feature_extractor_cqt."):
            dropped.append(k)
            continue
        out[_RENAMES.get(k, k)] = value
    return out, dropped


def _assemble(config: Mapping[str, Any], *, seed: int) -> tuple[torch.nn.Module, dict[str, Any], int]:
    from transformers import HubertModel

    hub_cfg, extras = mert_hubert_config(config)
    sample_rate = int(extras.get("sample_rate", 24000))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = HubertModel(hub_cfg)
        if extras.get("feature_extractor_cqt"):
            _add_cqt(model, hub_cfg, sample_rate=sample_rate, n_bins=int(extras.get("feature_extractor_cqt_bins", 336)))
    return model, extras, sample_rate


def load_mert(
    path: str | Path,
    *,
    randomize: bool = False,
    seed: int = 0,
    device: str = "cpu",
    batch_size: int = 8,
    normalize: bool | None = None,
    dtype: str | None = None,
    allow_missing_weights: bool = False,
) -> HFExtractor:
    """A MERT directory (``config.json`` with ``model_type: "mert_model"`` + weights) as an extractor.

    With ``allow_missing_weights`` tensors the weight files lack keep their random initialisation
    (named in ``info()["weights_missing_and_random"]``) instead of being an error; tensors of the
    wrong shape or that the architecture does not have are always an error.

    Raises
    ------
    CheckpointError
        The weights do not match the architecture (the message lists missing / unexpected
        keys), cannot be loaded safely, or the config uses an unsupported extra.
    """
    path = Path(path)
    config = _read_json(path / "config.json")
    model, extras, sample_rate = _assemble(config, seed=seed)
    if (path / "preprocessor_config.json").is_file():
        sample_rate = int(_read_json(path / "preprocessor_config.json").get("sampling_rate", sample_rate))
    dropped: list[str] = []
    missing: list[str] = []
    if not randomize:
        state, dropped = _map_keys(read_state_dict(path))
        if extras.get("feature_extractor_cqt"):
            for k in list(state):
                if k.startswith("feature_extractor_cqt."):
                    state.pop(k)
            model_keys = {k for k in model.state_dict() if not k.startswith("feature_extractor_cqt.")}
        else:
            model_keys = set(model.state_dict())
        missing = sorted(model_keys - set(state))
        unexpected = sorted(set(state) - model_keys)
        if unexpected or (missing and not allow_missing_weights):
            proceed = "" if unexpected else (
                ", or pass allow_missing_weights=True (--allow-missing-weights on the command line) to run the "
                "missing tensors with random weights (recorded in the extractor's info and the manifest)")
            raise CheckpointError(
                f"{path}: weights do not match the MERT/HuBERT architecture in config.json; "
                f"missing keys {missing[:10]}{' ...' if len(missing) > 10 else ''}, "
                f"unexpected keys {unexpected[:10]}{' ...' if len(unexpected) > 10 else ''}. "
                f"Use the directory the weights belong to{proceed}"
            )
        if missing:
            logger.warning("%s: %d tensor(s) missing are randomly initialised (allow_missing_weights)",
                           path, len(missing))
        try:
            model.load_state_dict(state, strict=False)
        except RuntimeError as err:
            raise CheckpointError(f"{path}: weight shapes do not match config.json: {err}") from err
    ignored = {k: v for k, v in extras.items() if k in ("attention_relax", "auto_map")}
    return HFExtractor(
        model, family="mert", sample_rate=sample_rate,
        normalize=_do_normalize(path, True) if normalize is None else normalize,
        batch_size=batch_size, device=device, dtype=dtype, source=str(path.resolve()),
        extra_info={"randomized": randomize, "seed": seed, "mert_extras": extras, "ignored": ignored,
                    "cqt_kernels_recomputed": bool(dropped), "loaded_without_remote_code": True,
                    "weights_missing_and_random": missing},
    )


def build_mert(
    *,
    config: Mapping[str, Any] | None = None,
    seed: int = 0,
    device: str = "cpu",
    batch_size: int = 8,
    normalize: bool = True,
    dtype: str | None = None,
) -> HFExtractor:
    """A MERT-architecture model with random weights (MERT-v1-95M shape unless ``config`` says)."""
    base: dict[str, Any] = {"sample_rate": 24000, "feature_extractor_cqt": False}
    base.update(dict(config or {}))
    model, extras, sample_rate = _assemble(base, seed=seed)
    return HFExtractor(model, family="mert", sample_rate=sample_rate, normalize=normalize, batch_size=batch_size,
                       device=device, dtype=dtype, source="random-init",
                       extra_info={"randomized": True, "seed": seed, "mert_extras": extras})
