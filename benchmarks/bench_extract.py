"""Throughput of musiclens extraction vs a bare batched transformers loop (not a test).

Same random wav2vec2-base-sized model, same one-second clips, same process:

1. a float32 matrix product, to measure the machine's attainable FLOP rate;
2. the bare loop: ``model(x, output_hidden_states=True)`` on batches, mean-pooled per layer;
3. musiclens: ``extract_to_store`` (validation, normalisation, batching, pooling, chunked
   store writes, manifest) into a temporary folder.

The FLOP-bound limit is ``matmul GFLOP/s / 13.8 GFLOP per clip`` (wav2vec2-base, 1 s at 16 kHz).

Run::

    python benchmarks/bench_extract.py --n-clips 1080            # the full benchmark
    python benchmarks/bench_extract.py --n-clips 64 --repeats 1  # quick
    python benchmarks/bench_extract.py --device cuda --dtype bfloat16
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from musiclens.extract import build_extractor, extract_to_store

GFLOP_PER_CLIP = 13.8
SR = 16000


def matmul_gflops(device: torch.device, dtype: torch.dtype, n: int = 2048, seconds: float = 3.0) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
    return 2 * n**3 * count / (time.perf_counter() - start) / 1e9


def bare_loop(model: torch.nn.Module, clips: np.ndarray, batch_size: int, device: torch.device,
              dtype: torch.dtype | None) -> list[np.ndarray]:
    pooled = []
    with torch.inference_mode():
        for lo in range(0, len(clips), batch_size):
            x = torch.from_numpy(clips[lo:lo + batch_size]).to(device)
            if dtype is not None:
                with torch.autocast(device.type, dtype=dtype):
                    out = model(x, output_hidden_states=True)
            else:
                out = model(x, output_hidden_states=True)
            pooled.append(torch.stack([h.float().mean(1) for h in out.hidden_states], 1).cpu().numpy())
    if device.type == "cuda":
        torch.cuda.synchronize()
    return pooled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-clips", type=int, default=1080)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--chunk-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of each; the best is reported")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None, help="e.g. bfloat16 (autocast; GPU)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype) if args.dtype else None

    rng = np.random.default_rng(0)
    clips = (0.1 * rng.standard_normal((args.n_clips, SR))).astype(np.float32)
    clips = (clips - clips.mean(1, keepdims=True)) / np.sqrt(clips.var(1, keepdims=True) + 1e-7)
    ext = build_extractor("wav2vec2", seed=0, device=args.device, batch_size=args.batch_size, dtype=args.dtype)
    model = ext.model
    n_params = sum(p.numel() for p in model.parameters()) / 1e6

    gflops = matmul_gflops(device, dtype or torch.float32)
    limit = gflops / GFLOP_PER_CLIP
    bare_loop(model, clips[: args.batch_size], args.batch_size, device, dtype)        # warm-up

    bare_times, ml_times = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            t0 = time.perf_counter()
            ref = bare_loop(model, clips, args.batch_size, device, dtype)
            bare_times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            out = extract_to_store(ext, list(clips), Path(tmp) / f"store{r}", sample_rate=SR,
                                   batch_size=args.batch_size, chunk_size=args.chunk_size, progress=False)
            ml_times.append(time.perf_counter() - t0)
        from musiclens.extract import load_pooled

        layers, _ = load_pooled(out)
        ref_all = np.concatenate(ref)
        max_diff = max(float(np.abs(layers[f"layer_{i:02d}"] - ref_all[:, i]).max()) for i in range(ref_all.shape[1]))
    bare_cps = args.n_clips / min(bare_times)
    ml_cps = args.n_clips / min(ml_times)
    print(f"device {device}, dtype {args.dtype or 'float32'}, torch threads {torch.get_num_threads()}, "
          f"model {n_params:.1f}M params, {args.n_clips} clips of 1 s, batch {args.batch_size}")
    print(f"matmul: {gflops:.1f} GFLOP/s -> FLOP-bound limit {limit:.2f} clips/s ({GFLOP_PER_CLIP} GFLOP/clip)")
    print(f"bare batched loop : {bare_cps:7.2f} clips/s  ({bare_cps / limit:.0%} of FLOP limit)  runs {bare_times}")
    print(f"musiclens (+store): {ml_cps:7.2f} clips/s  ({ml_cps / limit:.0%} of FLOP limit)  runs {ml_times}")
    print(f"musiclens / bare  : {ml_cps / bare_cps:.3f}   (max |pooled difference| {max_diff:.2e})")


if __name__ == "__main__":
    main()
