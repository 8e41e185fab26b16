"""A toy backbone + objectives and tiny corpora for the engine tests (no dependence on the real families)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from torch import nn

from musiclens.extract.checkpoint import MODELS
from musiclens.train.base import OBJECTIVES, Backbone, BackboneOutput, DataSpec, Objective, config_from_dict
from tests.train._util import one_torch_thread

HOP = 160  # 100 Hz frames at 16 kHz


@dataclass
class ToyConfig:
    dim: int = 8
    n_layers: int = 2
    dropout: float = 0.1
    sample_rate: int = 16000


class _Block(nn.Module):
    def __init__(self, dim: int, dropout: float) -> None:
        super().__init__()
        self.ff = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.ff(x)


class ToyBackbone(Backbone):
    """Frames of HOP samples -> linear embed -> n_layers residual blocks of (linear + GELU + dropout)."""

    family = "toy-train"

    def __init__(self, config: ToyConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Linear(HOP, config.dim)
        self.blocks = nn.ModuleList(_Block(config.dim, config.dropout) for _ in range(config.n_layers))
        self.mask_embedding = nn.Parameter(torch.zeros(config.dim))
        self.musiclens_layers = {"layer_00": "embed", **{f"layer_{i + 1:02d}": f"blocks.{i}"
                                                        for i in range(config.n_layers)}}

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def frame_rate_hz(self) -> float:
        return self.config.sample_rate / HOP

    @property
    def hidden_size(self) -> int:
        return self.config.dim

    @property
    def n_layers(self) -> int:
        return self.config.n_layers

    def n_frames(self, n_samples: int) -> int:
        return int(n_samples) // HOP

    def forward(self, waveforms: torch.Tensor, *, frame_mask: torch.Tensor | None = None,
                output_attentions: bool = False) -> BackboneOutput:
        b, n = waveforms.shape
        t = n // HOP
        x = self.embed(waveforms[:, : t * HOP].reshape(b, t, HOP) * 10.0)
        if frame_mask is not None:
            x = torch.where(frame_mask[..., None], self.mask_embedding.to(x.dtype), x)
        hs = [x]
        for blk in self.blocks:
            x = blk(x)
            hs.append(x)
        return BackboneOutput(hidden_states=hs, frame_mask=frame_mask)


def _build_toy(config: Mapping[str, Any]) -> ToyBackbone:
    return ToyBackbone(config_from_dict(ToyConfig, config, where="toy backbone config"))


MODELS.register("toy-train", _build_toy, overwrite=True, help="engine-test toy backbone")


@dataclass
class ToyOptions:
    views: int = 1
    crop_s: float | None = 0.5
    targets: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ("music", "speech")
    frame_rate: float | None = None
    mask_prob: float = 0.3
    data_rate: int | None = None  # ask for data at another rate than the backbone's (a config error)


class ToyObjective(Objective):
    """Masked-frame reconstruction of the embedding, plus an EMA teacher and a prepared centre.

    Records every ``after_optimizer_step`` step and counts ``prepare`` calls (class attribute).
    """

    name = "toy"
    prepare_calls = 0
    seen_steps: list[int] = []

    def __init__(self, backbone: ToyBackbone, options: ToyOptions) -> None:
        super().__init__(backbone)
        self.options = options
        d = backbone.hidden_size
        self.head = nn.Linear(d, d)
        self.register_buffer("center", torch.zeros(d))
        self.register_buffer("ema", torch.zeros(d))

    def data_spec(self) -> DataSpec:
        o = self.options
        return DataSpec(sample_rate=o.data_rate or self.backbone.sample_rate, crop_s=o.crop_s, views=o.views,
                        max_view_gap_s=0.3, frame_rate=o.frame_rate, targets=o.targets, kinds=o.kinds)

    def prepare(self, batches: Callable[[], Any]) -> None:
        type(self).prepare_calls += 1
        acc = []
        for i, b in enumerate(batches()):
            a = b["audio"]
            a = a.reshape(-1, a.shape[-1])
            with torch.no_grad():
                acc.append(self.backbone(a).hidden_states[0].mean(dim=(0, 1)))
            if i == 1:
                break
        self.center.copy_(torch.stack(acc).mean(0))

    def training_loss(self, batch: Mapping[str, Any], *, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        a = batch["audio"]
        a = a.reshape(-1, a.shape[-1])
        t = self.backbone.n_frames(a.shape[-1])
        mask = torch.rand(a.shape[0], t, generator=generator, device=a.device) < self.options.mask_prob
        with torch.no_grad():
            target = self.backbone(a).hidden_states[0] - self.center
        out = self.backbone(a, frame_mask=mask)
        pred = self.head(out.last)
        m = mask[..., None].float()
        loss = (((pred - target) ** 2) * m).sum() / m.sum().clamp(min=1.0) + 1e-3 * (pred ** 2).mean()
        return {"loss": loss, "masked_frac": mask.float().mean()}

    def validation_outputs(self, batch: Mapping[str, Any]) -> Any:
        return float(batch["audio"].abs().mean())

    def validation_metrics(self, outputs: Sequence[Any]) -> dict[str, float]:
        return {"mean_abs_audio": float(sum(outputs) / max(1, len(outputs)))}

    def after_optimizer_step(self, step: int) -> None:
        type(self).seen_steps.append(int(step))
        with torch.no_grad():
            self.ema.mul_(0.9).add_(0.1 * self.head.bias)


def build_toy(options: Mapping[str, Any], model: Mapping[str, Any]) -> ToyObjective:
    model = dict(model or {})
    backbone = _build_toy(model.get("config") or {})
    return ToyObjective(backbone, config_from_dict(ToyOptions, options, where="objective 'toy' options"))


OBJECTIVES.register("toy", build_toy, overwrite=True, help="engine-test toy objective")


# --------------------------------------------------------------------------------- corpora
def build_music(root: Path, n: int = 4, seed: int = 1) -> Path:
    from musiclens.corpora.generator import MusicConfig
    from musiclens.corpora.shards import build_corpus
    from musiclens.corpora.synthetic import GeneratedMusicSource

    build_corpus(root, source=GeneratedMusicSource(n_pieces=n, seed=seed, config=MusicConfig(duration_s=2.0, tail_s=0.3)),
                 pieces_per_shard=4)
    return root


def build_speech(root: Path, n: int = 3) -> Path:
    from musiclens.corpora.shards import build_corpus
    from musiclens.corpora.speech import SpeechSource

    build_corpus(root, source=SpeechSource(n_utterances=n, seed=1), pieces_per_shard=4)
    return root


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Any:
    """Tiny models: one intra-op thread (two threads on a shared 2-core machine are ~100x slower)."""
    with one_torch_thread():
        yield


# --------------------------------------------------------------------------------- interrupted runs
class Killed(RuntimeError):
    """What :class:`KillAt` raises: a run killed mid-training."""


class KillAt(pl.Callback):
    """Raise :class:`Killed` at the start of the first batch after step ``k`` (checkpoint ``k`` is on disk by then)."""

    def __init__(self, k: int) -> None:
        self.k = k

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if trainer.global_step >= self.k:
            raise Killed(f"killed at step {trainer.global_step}")


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import shutil

    root = tmp_path_factory.mktemp("corpora")
    out = {"music": build_music(root / "music")}
    if shutil.which("espeak-ng"):
        out["speech"] = build_speech(root / "speech")
    return out


def toy_config(corpora: Mapping[str, Path], **sections: Any) -> dict[str, Any]:
    """A tiny CPU config over the music corpus; ``sections`` update the defaults per section."""
    cfg: dict[str, Any] = {
        "objective": "toy",
        "options": {},
        "model": {"family": "toy-train", "config": {"dim": 8, "n_layers": 2}},
        "data": {"train": [str(corpora["music"])], "val": 0.25, "batch_size": 2, "num_workers": 0},
        "optim": {"lr": 1e-2, "max_steps": 6, "warmup_steps": 2, "schedule": "cosine", "grad_clip": 1.0},
        "trainer": {"accelerator": "cpu", "devices": 1, "deterministic": True, "log_every_n_steps": 1,
                    "val_every_n_steps": 3, "checkpoint_every_n_steps": 3, "progress_bar": False},
        "seed": 5,
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg
