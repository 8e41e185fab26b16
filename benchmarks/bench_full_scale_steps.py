"""Benchmark: a few hundred steps of each chroma-emergence full-scale training condition.

The full scale (``musiclens run chroma-emergence --scale full``) trains wav2vec2-base-sized
networks on raw audio for 100k (SSL) + 20k (fine-tuning) steps on one GPU.  This script takes
seed 0 of each condition (``ssl-s0``, ``transcription-s0``, ``asr-s0``) exactly as the study file
configures it -- model, batch size, precision, accelerator -- but on small generated corpora and
``--steps`` steps, and reports per condition: samples/s and seconds per step after ``--warmup``
steps (a timing callback measures each optimizer step, CUDA-synchronised), the projected wall time of the full schedule, and the loss
at the first and last logged step.  The reference in the same run is the same network's bare
forward + backward + AdamW step on the same batch (the engine / bare ratio is the overhead).

Run:  python benchmarks/bench_full_scale_steps.py                       (on a CUDA machine)
      python benchmarks/bench_full_scale_steps.py --cpu --steps 3 --batch 2 --tiny   (smoke test)

``--tiny`` shrinks the networks to the quick scale's sizes (a CPU check of the script itself).
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch


class StepTimer(pl.Callback):
    """Wall time of every optimizer step (CUDA-synchronised)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._t = 0.0

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, i: int) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self._t = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, out: Any, batch: Any,
                           i: int) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.times.append(time.perf_counter() - self._t)


def _corpora(root: Path, n_music: int, n_speech: int) -> dict[str, Path]:
    from musiclens.corpora.shards import build_corpus
    from musiclens.corpora.speech import SpeechSource
    from musiclens.corpora.synthetic import GeneratedMusicSource

    out = {"music": root / "music", "speech": root / "speech"}
    build_corpus(out["music"], source=GeneratedMusicSource(n_pieces=n_music, seed=0), pieces_per_shard=64, workers=4)
    build_corpus(out["speech"], source=SpeechSource(n_utterances=n_speech, seed=0), pieces_per_shard=64, workers=4)
    return out


def _bare_step_seconds(run_dir: Path, cfg: dict[str, Any], repeats: int) -> float:
    """Seconds per bare forward + backward + AdamW step of the run's objective on one batch."""
    from musiclens.train.config import check_against_objective, load_train_config
    from musiclens.train.data import TrainDataModule
    from musiclens.train.engine import build_objective

    c = load_train_config(cfg)
    obj = build_objective(c)
    checked = check_against_objective(c, obj)
    dm = TrainDataModule(train=c["data"]["train"], val=None, spec=checked["spec"], crop_s=checked["crop_s"],
                         batch_size=c["data"]["batch_size"], seed=0, max_steps=4)
    device = torch.device("cuda" if torch.cuda.is_available() and c["trainer"]["accelerator"] != "cpu" else "cpu")
    obj.to(device)
    obj.prepare(lambda: ({k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in dm.batch(b).items()}
                         for b in range(2)))   # teachers fitted before training (none for these objectives)
    batch = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in dm.batch(0).items()}
    opt = torch.optim.AdamW(obj.trainable_parameters(), lr=1e-5)
    bf16 = "bf16" in str(c["trainer"]["precision"]) and device.type == "cuda"
    times = []
    for _ in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = obj.training_loss(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return sum(times[1:]) / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=200, help="optimizer steps per condition")
    ap.add_argument("--warmup", type=int, default=20, help="steps left out of the timing")
    ap.add_argument("--batch", type=int, default=None, help="override the study's batch size")
    ap.add_argument("--cpu", action="store_true", help="run on CPU (smoke test of this script)")
    ap.add_argument("--tiny", action="store_true", help="quick-scale network sizes (smoke test)")
    ap.add_argument("--pieces", type=int, default=256, help="generated music pieces / utterances")
    ap.add_argument("--out", default=None, help="keep the runs here (default: a temporary folder)")
    args = ap.parse_args()

    from musiclens.study import load_study
    from musiclens.study_steps.training import condition_config
    from musiclens.train.engine import train

    study = load_study("chroma-emergence", scale="quick" if args.tiny else "full")
    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="ml-full-steps-"))
    try:
        corpora = _corpora(root / "corpora", args.pieces, args.pieces)
        study = copy.deepcopy(study)
        study["corpora"] = {k: {**v} for k, v in study["corpora"].items()}
        rows = []
        for name in ("ssl-s0", "transcription-s0", "asr-s0"):
            cfg = condition_config(study, root, name)
            cfg["data"] = {**cfg.get("data", {}), "train": [str(corpora["music" if name != "asr-s0" else "speech"])]}
            if name == "ssl-s0":
                cfg["data"]["train"] = [str(corpora["music"]), str(corpora["speech"])]
            cfg["data"].update(val=None, num_workers=0 if args.cpu else 8)
            if args.batch:
                cfg["data"]["batch_size"] = args.batch
            cfg["optim"] = {**cfg.get("optim", {}), "max_steps": args.steps,
                            "warmup_steps": min(int(cfg.get("optim", {}).get("warmup_steps", 0)), args.steps // 2)}
            trainer = {**cfg.get("trainer", {}), "val_every_n_steps": 0, "checkpoint_every_n_steps": args.steps,
                       "log_every_n_steps": max(1, args.steps // 10), "progress_bar": False}
            if args.cpu:
                trainer.update(accelerator="cpu", precision="32", devices=1)
            cfg["trainer"] = trainer
            cfg.pop("rsa_callback", None)
            timer = StepTimer()
            result = train(cfg, out=root / "train" / name, callbacks=[timer])
            timed = timer.times[args.warmup:] or timer.times
            step_s = sum(timed) / len(timed)
            bare_s = _bare_step_seconds(root, cfg, repeats=5)
            batch = int(cfg["data"]["batch_size"])
            full_steps = int(load_study("chroma-emergence", scale="full")["training"][name]["optim"]["max_steps"])
            log = (root / "train" / name / "logs" / "metrics.csv")
            import pandas as pd

            losses = pd.read_csv(log).dropna(subset=["train/loss"])["train/loss"] if log.is_file() else pd.Series([])
            rows.append({"condition": name, "steps": result.global_step, "batch": batch,
                         "s_per_step": round(step_s, 4), "samples_per_s": round(batch / step_s, 1),
                         "bare_s_per_step": round(bare_s, 4), "engine_over_bare": round(step_s / bare_s, 3),
                         "projected_full_h": round(full_steps * step_s / 3600, 2),
                         "loss_first": float(losses.iloc[0]) if len(losses) else None,
                         "loss_last": float(losses.iloc[-1]) if len(losses) else None})
        device = torch.cuda.get_device_name(0) if torch.cuda.is_available() and not args.cpu else "cpu"
        print(f"device: {device}")
        for r in rows:
            print(json.dumps(r))
    finally:
        if not args.out:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
