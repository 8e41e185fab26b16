"""Benchmark: distributed extraction, one process against ``--devices 2``, in the same run.

Workload (default): 200 notes (2 s harmonic tones at 16 kHz, MIDI 40-99 with varied timbre) through a
small random wav2vec2-style network (conv front end 3 x 256 channels down to 100 Hz frames, 6
transformer layers of width 384, 6 heads, feed-forward 1536; about 11 M parameters), every layer
mean-pooled, chunks of 16 notes, batches of 8.  A warm-up extraction of 2 notes runs first, so
that no timed run pays the imports of the parent process.

Timed, wall clock, each writing its own store:

1. one process, torch on every core (what ``musiclens extract`` does by default);
2. one process, ``cores // 2`` torch threads (what each of two spawned ranks gets);
3. ``devices=2``: two spawned processes, ``cores // 2`` threads each, including their start-up
   (interpreter, torch and model imports, process group) and rank 0's merge;
4. ``devices=2`` on 2 notes: the start-up cost alone, near enough.

Printed: the times, the speed-ups ``t1 / t3`` and ``t2 / t3``, and whether the two-process store
equals the one-process stores byte for byte (every file but the manifest).  On a shared 2-core
machine the numbers are noisy: run it when the machine is otherwise idle, e.g.

    OMP_NUM_THREADS=1 python benchmarks/bench_distributed.py            # 200 notes
    python benchmarks/bench_distributed.py --notes 400 --devices 4      # a bigger machine
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd


def small_config() -> dict:
    return dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=6, intermediate_size=1536,
                conv_dim=(256, 256, 256), conv_stride=(5, 4, 8), conv_kernel=(10, 4, 8), num_conv_pos_embeddings=32,
                num_conv_pos_embedding_groups=4, layerdrop=0.0)


def notes(n: int, *, sr: int = 16000, seconds: float = 1.0, seed: int = 0) -> tuple[list[np.ndarray], pd.DataFrame]:
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    clips, rows = [], []
    for i in range(n):
        midi = 40 + i % 60
        f0 = 440.0 * 2 ** ((midi - 69) / 12)
        amps = rng.uniform(0.1, 1.0, size=8) / np.arange(1, 9)
        x = sum(a * np.sin(2 * np.pi * f0 * (k + 1) * t) for k, a in enumerate(amps) if f0 * (k + 1) < sr / 2)
        env = np.minimum(1.0, t / 0.02) * np.exp(-t * rng.uniform(1.0, 4.0))
        clips.append((0.3 * x * env).astype(np.float32))
        rows.append({"stimulus_id": f"n{i:04d}", "midi": midi})
    return clips, pd.DataFrame(rows)


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def files(store: Path) -> dict[str, str]:
    return {str(p.relative_to(store)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(store.rglob("*")) if p.is_file() and p.name != "manifest.json"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--notes", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=2.0, help="length of each note")
    ap.add_argument("--devices", type=int, default=2)
    ap.add_argument("--chunk-size", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=1, help="time each way this many times, keep the fastest")
    args = ap.parse_args()

    import torch

    from musiclens.extract import extract_to_store
    from musiclens.stimuli.stimulus_set import StimulusSet

    cores = os.cpu_count() or 1
    per_rank = max(1, cores // args.devices)
    root = Path(tempfile.mkdtemp(prefix="bench-distributed-"))
    try:
        clips, meta = notes(args.notes, seconds=args.seconds)
        StimulusSet(clips, meta, sample_rate=16000).save(root / "stim")
        StimulusSet(clips[:2], meta[:2].reset_index(drop=True), sample_rate=16000).save(root / "two")
        kw = dict(pooling="mean", chunk_size=args.chunk_size, batch_size=args.batch_size, randomize=True, seed=0,
                  options={"config": small_config()}, progress=False)
        print(f"workload: {args.notes} notes of {args.seconds:g} s through a random wav2vec2-style network "
              f"(6 layers x 384, 100 Hz frames), all 7 layers mean-pooled; {cores} cores, torch {torch.__version__}")
        extract_to_store("wav2vec2", root / "two", root / "warm-up", **kw)
        print(f"load average before timing (other processes on this machine): {os.getloadavg()[0]:.2f}")
        times: dict[str, float] = {}

        def timed(name: str, out: str, stim: str = "stim", **extra: object) -> None:
            best = float("inf")
            for _ in range(max(1, args.repeat)):
                shutil.rmtree(root / out, ignore_errors=True)
                t0 = time.perf_counter()
                extract_to_store("wav2vec2", root / stim, root / out, **kw, **extra)
                best = min(best, time.perf_counter() - t0)
            times[name] = best

        timed("one process, all cores", "one-all")
        with threads(per_rank):
            timed(f"one process, {per_rank} thread(s)", "one-part")
        timed(f"{args.devices} processes, {per_rank} thread(s) each (start-up included)", "many", devices=args.devices)
        timed("start-up", "start-up", stim="two", devices=args.devices)
        startup = times.pop("start-up")
        for name, sec in times.items():
            print(f"  {name:<72} {sec:7.1f} s")
        print(f"  {f'{args.devices} processes on 2 notes (their start-up, near enough)':<72} {startup:7.1f} s")
        t1, t2, t3 = times.values()
        print(f"speed-up of {args.devices} processes: {t1 / t3:.2f}x over one process on all cores, "
              f"{t2 / t3:.2f}x over one process with {per_rank} thread(s)")
        many = files(root / "many")
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        print(f"{args.devices}-process store byte-identical to the one-process store with {per_rank} thread(s): "
              f"{many == files(root / 'one-part')}; to the one on all cores: {many == files(root / 'one-all')}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
