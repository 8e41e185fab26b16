"""Benchmark: training throughput of the Lightning engine, against a bare torch loop doing the same work.

CPU mode (default): for every objective, a tiny model trains on a tiny generated corpus (music;
speech for CTC) through :func:`musiclens.train.engine.train`; a timing callback measures the
steps after ``--warmup`` steps.  The reference is a bare loop in the same script: the same
objective, AdamW, ``training_loss`` + ``backward`` + ``step`` on the *same* batches, already in
memory.  The table reports samples/s for both and the engine/bare time ratio (data loading,
logging, checkpointing and Lightning's bookkeeping are the difference).

GPU mode (``--gpu``): a MERT-95M-sized network (family ``mert``, 12 layers x 768, the
``mert_v1_95m`` preset) under the MERT objective, bf16 autocast, 5 s crops at 24 kHz.  FLOPs of
one training step (forward + backward of the objective) are counted with
``torch.utils.flop_counter.FlopCounterMode``; model FLOP utilisation = FLOPs/step / step time /
peak (``--peak-tflops``, H100 SXM dense bf16: 989).  Both the engine (data from a generated
24 kHz corpus, ``--workers`` loader processes) and the bare loop (random audio on the GPU) are
reported.

Run:  python benchmarks/bench_train.py                 (CPU table)
      python benchmarks/bench_train.py --gpu           (on a CUDA machine)

On a machine shared with other jobs, pin threads (``--threads 1``) for stable CPU numbers.
"""

from __future__ import annotations

import argparse
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

    def _sync(self) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        self._sync()
        self._t = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self._sync()
        self.times.append(time.perf_counter() - self._t)


def _corpora(root: Path, *, sample_rate: int = 16000, n_music: int = 8) -> dict[str, Path]:
    from musiclens.corpora.generator import MusicConfig
    from musiclens.corpora.shards import build_corpus
    from musiclens.corpora.synthetic import GeneratedMusicSource

    out = {"music": root / f"music{sample_rate}"}
    build_corpus(out["music"], source=GeneratedMusicSource(n_pieces=n_music, seed=1, sample_rate=sample_rate,
                                                           config=MusicConfig(duration_s=6.0)), pieces_per_shard=8)
    if shutil.which("espeak-ng"):
        from musiclens.corpora.speech import SpeechSource

        out["speech"] = root / "speech"
        build_corpus(out["speech"], source=SpeechSource(n_utterances=8, seed=1), pieces_per_shard=8)
    return out


def cpu_configs(c: dict[str, Path], batch: int) -> dict[str, dict[str, Any]]:
    from musiclens.train.models.mert import MERT_PRESETS

    music = [str(c["music"])]
    cases = {
        "ntxent": ({"crop_s": 1.0, "max_view_gap_s": 0.5},
                   {"family": "vit1d", "config": {"dim": 64, "depth": 2, "heads": 2}}, music),
        "mert": ({"crop_s": 1.0, "n_clusters": 16}, {"family": "mert", "config": dict(MERT_PRESETS["tiny"])}, music),
        "wav2vec2": ({}, {}, music),
        "data2vec": ({}, {}, music),
        "transcription": ({}, {}, music),
    }
    if "speech" in c:
        cases["ctc"] = ({}, {}, [str(c["speech"])])
    return {name: {"objective": name, "options": opts, "model": model,
                   "data": {"train": data, "val": None, "batch_size": batch},
                   "optim": {"lr": 1e-4, "max_steps": 0, "warmup_steps": 0},
                   "trainer": {"accelerator": "cpu", "progress_bar": False, "val_every_n_steps": 0,
                               "checkpoint_every_n_steps": 0, "logger": "none"}}
            for name, (opts, model, data) in cases.items()}


def bare_loop(cfg: dict[str, Any], batches: list[dict[str, Any]], *, device: str, autocast: bool,
              count_flops: bool = False) -> tuple[list[float], int]:
    """The same objective (prepared on the same batches) and optimizer in a plain loop.

    Returns seconds per step and, with ``count_flops``, the FLOPs of one step.
    """
    from lightning.fabric.utilities.apply_func import move_data_to_device

    from musiclens.train.base import step_generator
    from musiclens.train.config import load_train_config
    from musiclens.train.engine import build_objective

    full = load_train_config(cfg)
    obj = build_objective(full).to(device)
    obj.prepare(lambda: (move_data_to_device(b, device) for b in batches))
    obj.train()
    opt = torch.optim.AdamW(obj.trainable_parameters(), lr=1e-4)
    flops = step_flops(obj, move_data_to_device(batches[0], device)) if count_flops else 0
    times = []
    for k, b in enumerate(batches):
        b = move_data_to_device(b, device)
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=autocast):
            loss = obj.training_loss(b, generator=step_generator(0, k, device=device))["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(obj.trainable_parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        obj.after_optimizer_step(k + 1)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return times, flops


def _load_objective_if_needed(cfg: dict[str, Any], dm_batches: int) -> list[dict[str, Any]]:
    from musiclens.train.config import check_against_objective, load_train_config
    from musiclens.train.data import TrainDataModule
    from musiclens.train.engine import build_objective

    full = load_train_config(cfg)
    obj = build_objective(full)
    checked = check_against_objective(full, obj)
    d = full["data"]
    dm = TrainDataModule(train=d["train"], val=None, spec=checked["spec"], crop_s=checked["crop_s"],
                         batch_size=d["batch_size"], seed=0, max_steps=dm_batches)
    return [dm.batch(k) for k in range(dm_batches)]


def run_cpu(args: argparse.Namespace) -> None:
    from musiclens.train.engine import train

    root = Path(tempfile.mkdtemp(prefix="bench_train_"))
    try:
        c = _corpora(root)
        rows = []
        for name, cfg in cpu_configs(c, args.batch).items():
            if args.only and name not in args.only:
                continue
            n = args.warmup + args.steps
            cfg["optim"]["max_steps"] = n
            timer = StepTimer()
            train(cfg, out=root / f"run_{name}", callbacks=[timer])
            eng = sum(timer.times[args.warmup:]) / args.steps
            batches = _load_objective_if_needed(cfg, n)
            bare_t, _ = bare_loop(cfg, batches, device="cpu", autocast=False)
            bare = sum(bare_t[args.warmup:]) / args.steps
            rows.append((name, args.batch / eng, args.batch / bare, eng / bare))
        print(f"{'objective':<14} {'engine samples/s':>17} {'bare samples/s':>15} {'engine/bare time':>17}")
        for name, e, b, r in rows:
            print(f"{name:<14} {e:>17.2f} {b:>15.2f} {r:>17.2f}")
        print(f"(CPU, {torch.get_num_threads()} threads, batch {args.batch}, mean of {args.steps} steps after "
              f"{args.warmup} warm-up steps)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def step_flops(obj: Any, batch: dict[str, Any]) -> int:
    """FLOPs of one forward + backward of ``training_loss`` (FlopCounterMode)."""
    from torch.utils.flop_counter import FlopCounterMode

    from musiclens.train.base import step_generator

    with FlopCounterMode(display=False) as fc:
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=torch.cuda.is_available()):
            loss = obj.training_loss(batch, generator=step_generator(0, 0, device=batch["audio"].device))["loss"]
        loss.backward()
    obj.zero_grad(set_to_none=True)
    return int(fc.get_total_flops())


def run_gpu(args: argparse.Namespace) -> None:
    from musiclens.train.config import load_train_config
    from musiclens.train.engine import build_objective, train
    from musiclens.train.models.mert import MERT_PRESETS

    if not torch.cuda.is_available():
        raise SystemExit("--gpu needs CUDA")
    torch.backends.cuda.matmul.allow_tf32 = True
    root = Path(tempfile.mkdtemp(prefix="bench_train_gpu_"))
    try:
        c = _corpora(root, sample_rate=24000, n_music=args.pieces)
        n = args.warmup + args.steps
        cfg = {"objective": "mert", "options": {"crop_s": 5.0, "prepare_batches": 4},
               "model": {"family": "mert", "config": dict(MERT_PRESETS["mert_v1_95m"])},
               "data": {"train": [str(c["music"])], "val": None, "batch_size": args.batch,
                        "num_workers": args.workers},
               "optim": {"lr": 1e-4, "max_steps": n, "warmup_steps": 0},
               "trainer": {"accelerator": "gpu", "devices": 1, "precision": "bf16-mixed", "progress_bar": False,
                           "val_every_n_steps": 0, "checkpoint_every_n_steps": 0, "logger": "none"},
               "export": {"at_end": False}}
        timer = StepTimer()
        train(cfg, out=root / "run", callbacks=[timer])
        eng = sum(timer.times[args.warmup:]) / args.steps
        # the bare loop on the same batches (teacher prepared on them), with the FLOPs of one step
        batches = _load_objective_if_needed(cfg, n)
        bare_t, flops = bare_loop(cfg, batches, device="cuda", autocast=True, count_flops=True)
        bare = sum(bare_t[args.warmup:]) / args.steps
        full = load_train_config(cfg)
        n_params = sum(p.numel() for p in build_objective(full).backbone.parameters())
        peak = args.peak_tflops * 1e12
        print(f"MERT-95M-sized backbone ({n_params / 1e6:.1f} M parameters), batch {args.batch} x 5 s @ 24 kHz, bf16")
        print(f"FLOPs per training step (forward + backward): {flops / 1e12:.2f} TFLOP")
        print(f"{'loop':<8} {'s/step':>8} {'samples/s':>10} {'TFLOP/s':>9} {'MFU':>7}")
        for name, s in (("engine", eng), ("bare", bare)):
            print(f"{name:<8} {s:>8.3f} {args.batch / s:>10.1f} {flops / s / 1e12:>9.1f} {flops / s / peak:>7.1%}")
        print(f"engine/bare time ratio: {eng / bare:.2f}  (peak {args.peak_tflops} TFLOP/s dense bf16; "
              f"{args.steps} steps after {args.warmup} warm-up)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gpu", action="store_true", help="MERT-95M-sized bf16 run on CUDA with MFU")
    ap.add_argument("--batch", type=int, default=None, help="batch size (CPU 4, GPU 16)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (CPU 5, GPU 20)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--workers", type=int, default=6, help="data-loader workers (GPU mode)")
    ap.add_argument("--pieces", type=int, default=32, help="pieces in the GPU-mode corpus")
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="device peak dense bf16 TFLOP/s")
    ap.add_argument("--only", nargs="*", help="objectives to run (CPU mode)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.batch = args.batch or (16 if args.gpu else 4)
    args.steps = args.steps or (20 if args.gpu else 5)
    run_gpu(args) if args.gpu else run_cpu(args)


if __name__ == "__main__":
    main()
