"""Data-parallel training on CPU (gloo): two processes x batch b equal one process x batch 2b.

For every objective a tiny model trains 3 steps in one process with batch 4 and in two processes
(one ``spawn`` of two ranks for all of them) with batch 2 each; the parameters agree to float
rounding, both ranks hold the same state (teachers, EMA, schedules included), only rank 0 wrote the
run directory, and a two-process run killed after a checkpoint resumes to the uninterrupted result.
``train()`` starting its own processes (``devices: 2``) is checked on one objective.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pandas as pd
import pytest
import torch

from musiclens.errors import ConfigError, TrainingError
from musiclens.extract.distributed import launcher_env, process_group, spawn
from musiclens.train.engine import train
from musiclens.train.models.mert import MERT_PRESETS
from tests.train._engine_helpers import KillAt, Killed, build_music, build_speech

pytestmark = pytest.mark.slow   # about a minute on 2 cores; runs in the default suite

B = 2          # per-process batch; the one-process reference uses 2 * B
STEPS = 3
#: Largest |first-step gradient difference| / largest |gradient| accepted between 2 x B and 1 x 2B.
GRAD_TOL = 1e-4
#: Largest |parameter difference| accepted after STEPS steps.  The optimiser runs with eps 1 (Adam's
#: normalisation then barely acts, steps are ~ lr x gradient): with the default eps 1e-8 Adam turns the
#: float rounding of near-zero gradient elements into step-sized differences (up to 1e-4 measured after
#: 3 steps of lr 2e-3), which would hide a real disagreement as well as it hides the rounding.
TOL = 1e-6

_MERT_TINY = {k: [list(x) for x in v] if k == "conv_layers" else v for k, v in MERT_PRESETS["tiny"].items()}
_CQT = {"cqt_fmin": 65.4, "cqt_n_bins": 72, "cqt_bins_per_octave": 12}
OBJECTIVES: dict[str, dict[str, Any]] = {
    "ntxent": {"objective": "ntxent", "model": {"family": "vit1d", "config": "test"},
               "options": {"crop_s": 0.5, "max_view_gap_s": 0.3, "max_shift_s": 0.01}},
    "mert-kmeans": {"objective": "mert", "model": {"family": "mert", "config": {**_MERT_TINY, "sample_rate": 16000}},
                    "options": {"crop_s": 1.0, "n_clusters": 8, "prepare_batches": 2, "mixture_prob": 0.7, **_CQT}},
    "mert-rvq": {"objective": "mert", "model": {"family": "mert", "config": {**_MERT_TINY, "sample_rate": 16000}},
                 "options": {"teacher": "rvq", "crop_s": 1.0, "rvq_steps": 5, "rvq_codebook_size": 16,
                             "rvq_num_quantizers": 2, "rvq_n_mels": 16, "rvq_dim": 8, "prepare_batches": 2,
                             "cqt_weight": 0.0}},
    "wav2vec2": {"objective": "wav2vec2", "options": {"crop_s": 0.5, "num_negatives": 8, "mask_length": 4,
                                                      "gumbel_temperature_decay": 0.9}},
    "data2vec": {"objective": "data2vec", "options": {"crop_s": 0.5, "mask_length": 4, "ema_decay": 0.9,
                                                      "ema_end_decay": 0.99, "ema_anneal_end_steps": 2}},
    "transcription": {"objective": "transcription", "options": {"crop_s": 0.5, "onset_head": True}},
    "ctc": {"objective": "ctc", "options": {}},
}
KILLED = "data2vec"   # the objective also killed after checkpoint 2 and resumed (EMA teacher in the state)


class SaveState(pl.Callback):
    """Save the objective's state dict as ``<prefix>.rank<r>.pt`` when training ends (``.init.pt`` as it starts)."""

    def __init__(self, prefix: Path) -> None:
        self.prefix = str(prefix)

    def _save(self, trainer: pl.Trainer, pl_module: pl.LightningModule, suffix: str) -> None:
        state = {k: v.detach().clone() for k, v in pl_module.objective.state_dict().items()}
        torch.save(state, f"{self.prefix}.rank{trainer.global_rank}{suffix}.pt")

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_step == 0:
            self._save(trainer, pl_module, ".init")

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._save(trainer, pl_module, "")

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        if trainer.global_step == 0:   # the first step's gradients (averaged over the ranks by DDP)
            grads = {k: p.grad.detach().clone() for k, p in pl_module.objective.named_parameters()
                     if p.grad is not None}
            torch.save(grads, f"{self.prefix}.rank{trainer.global_rank}.grad.pt")


def _config(name: str, corpora: dict[str, Path], *, processes: int) -> dict[str, Any]:
    spec = OBJECTIVES[name]
    corpus = corpora["speech" if spec["objective"] == "ctc" else "music"]
    validate = name == "ntxent"
    return {
        **spec,
        "data": {"train": [str(corpus)], "val": 0.25 if validate else None, "batch_size": B * 2 // processes},
        "optim": {"lr": 2e-2, "eps": 1.0, "max_steps": STEPS, "warmup_steps": 1, "grad_clip": 1.0},
        "trainer": {"accelerator": "cpu", "devices": processes, "strategy": "ddp" if processes > 1 else "auto",
                    "deterministic": True, "log_every_n_steps": 1, "val_every_n_steps": 2 if validate else 0,
                    "checkpoint_every_n_steps": 2, "progress_bar": False},
        "seed": 7,
    }


def _ddp_worker(configs: dict[str, dict[str, Any]], root: str) -> None:
    """Both ranks: train every config in one process group, then kill and resume one objective."""
    env = launcher_env()
    assert env is not None and env.world_size == 2
    with process_group(env):
        for name, cfg in configs.items():
            out = Path(root) / f"ddp-{name}"
            train(cfg, out=out, callbacks=[SaveState(out)])
        cfg, out = configs[KILLED], Path(root) / f"killed-{KILLED}"
        try:
            train(cfg, out=out, callbacks=[KillAt(2)])
        except Killed:
            pass
        else:  # pragma: no cover
            raise AssertionError("the run was not killed")
        res = train(cfg, out=out, callbacks=[SaveState(out)])
        assert res.resumed_from == 2 and res.finished


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ddp-corpora")
    out = {"music": build_music(root / "music", n=8)}
    if shutil.which("espeak-ng"):
        out["speech"] = build_speech(root / "speech", n=4)
    return out


def _names(corpora: dict[str, Path]) -> list[str]:
    return [n for n in OBJECTIVES if OBJECTIVES[n]["objective"] != "ctc" or "speech" in corpora]


@pytest.fixture(scope="module")
def runs(corpora: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ddp-runs")
    names = _names(corpora)
    for name in names:   # the one-process references, batch 2B
        out = root / f"one-{name}"
        train(_config(name, corpora, processes=1), out=out, callbacks=[SaveState(out)])
    spawn(_ddp_worker, ({n: _config(n, corpora, processes=2) for n in names}, str(root)), nprocs=2, what="test",
          error=TrainingError, threads=1)
    return root


def _state(root: Path, prefix: str, rank: int = 0, suffix: str = "") -> dict[str, torch.Tensor]:
    return torch.load(root / f"{prefix}.rank{rank}{suffix}.pt", weights_only=True)


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_two_processes_of_batch_b_equal_one_of_batch_2b(runs: Path, corpora: dict[str, Path], name: str) -> None:
    if name not in _names(corpora):
        pytest.skip("espeak-ng is not installed: no speech corpus for ctc")
    one, two = _state(runs, f"one-{name}"), _state(runs, f"ddp-{name}")
    assert one.keys() == two.keys()
    diff = max(float((one[k].double() - two[k].double()).abs().max()) if one[k].numel() else 0.0 for k in one
               if one[k].is_floating_point())
    init = _state(runs, f"one-{name}", suffix=".init")
    moved = max(float((one[k].double() - init[k].double()).abs().max()) for k in one if one[k].is_floating_point())
    g1, g2 = _state(runs, f"one-{name}", suffix=".grad"), _state(runs, f"ddp-{name}", suffix=".grad")
    assert g1.keys() == g2.keys()
    dg = max(float((g1[k] - g2[k]).abs().max()) for k in g1) / max(float(g.abs().max()) for g in g1.values())
    print(f"{name}: first-step gradients differ by {dg:.3g} of the largest; parameters after {STEPS} steps by "
          f"{diff:.3g} (they moved by up to {moved:.3g})")
    assert dg < GRAD_TOL, f"{name}: {dg}"
    assert diff < TOL, f"{name}: {diff}"
    assert moved > 100 * TOL   # training moved the parameters far more than the two runs differ
    # both ranks hold the same state: parameters, teachers (k-means, RVQ, EMA), schedules, buffers
    other = _state(runs, f"ddp-{name}", rank=1)
    assert all(torch.equal(two[k], other[k]) for k in two), [k for k in two if not torch.equal(two[k], other[k])]


@pytest.mark.parametrize("name", ["ntxent", "wav2vec2"])
def test_only_rank_zero_writes_the_run_directory(runs: Path, name: str) -> None:
    one, two = runs / f"one-{name}", runs / f"ddp-{name}"
    files = sorted(str(p.relative_to(two)) for p in two.rglob("*") if p.is_file())
    assert files == sorted(str(p.relative_to(one)) for p in one.rglob("*") if p.is_file())
    a, b = pd.read_csv(one / "logs" / "metrics.csv"), pd.read_csv(two / "logs" / "metrics.csv")
    assert list(a.columns) == list(b.columns) and len(a) == len(b)   # every row once: not once per rank
    assert a["step"].tolist() == b["step"].tolist()
    # the logged loss is the global batch's (mean over ranks); validation runs whole on every rank
    cols = [c for c in a.columns if c.startswith(("train/loss", "train/top1", "train/pos_sim", "val/"))]
    close = [(((a[c] - b[c]).abs() < 1e-5) | (a[c].isna() & b[c].isna())).all() for c in cols]
    assert cols and all(close), [c for c, ok in zip(cols, close) if not ok]
    import json

    manifest = json.loads((two / "manifest.json").read_text())
    assert manifest["finished"] and manifest["runs"][-1]["processes"] == 2


def test_a_killed_two_process_run_resumes_to_the_uninterrupted_one(runs: Path) -> None:
    straight, resumed = _state(runs, f"ddp-{KILLED}"), _state(runs, f"killed-{KILLED}")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    a = (runs / f"ddp-{KILLED}" / "logs" / "metrics.csv").read_bytes()
    assert (runs / f"killed-{KILLED}" / "logs" / "metrics.csv").read_bytes() == a


def test_train_starts_its_own_processes(corpora: dict[str, Path], runs: Path, tmp_path: Path) -> None:
    """``devices: 2`` with no launcher: train() spawns the two ranks and returns rank 0's result."""
    cfg = _config("transcription", corpora, processes=2)
    res = train(cfg, out=tmp_path / "run", callbacks=[SaveState(tmp_path / "run")])
    assert res.finished and res.global_step == STEPS and res.backbone == tmp_path / "run" / "backbone"
    mine, before = _state(tmp_path, "run"), _state(runs, "ddp-transcription")
    assert all(torch.equal(mine[k], before[k]) for k in mine)   # the same run as two ranks in one process group


def test_process_strategies_of_lightning_are_refused(corpora: dict[str, Path], tmp_path: Path) -> None:
    cfg = _config("transcription", corpora, processes=2)
    cfg["trainer"]["strategy"] = "ddp_spawn"
    with pytest.raises(ConfigError, match="musiclens starts them"):
        train(cfg, out=tmp_path / "run")


def test_gumbel_quantizer_is_transformers_computation() -> None:
    """The wav2vec2 quantiser that draws its noise from the step: with the same noise, transformers' numbers."""
    from transformers.models.wav2vec2.modeling_wav2vec2 import Wav2Vec2GumbelVectorQuantizer

    from musiclens.train.base import OBJECTIVES as REGISTRY
    from musiclens.train.objectives import register_all

    register_all()
    obj = REGISTRY.get("wav2vec2")({"crop_s": 0.5}, {})
    ours = obj.quantizer
    theirs = Wav2Vec2GumbelVectorQuantizer(obj._pretraining.config)
    theirs.load_state_dict(ours.state_dict())
    ours.temperature = theirs.temperature = 1.7
    x = torch.randn(2, 30, obj._pretraining.config.conv_dim[-1])
    mask = torch.rand(2, 30) < 0.5
    for training in (True, False):
        ours.train(training)
        theirs.train(training)
        torch.manual_seed(4)
        a = ours(x, mask)   # no generator: torch's global RNG, drawn as transformers draws it
        torch.manual_seed(4)
        b = theirs(x, mask)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
