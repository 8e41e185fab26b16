"""Corpus build throughput: pieces per hour and hours of audio per hour of build time (not a test).

Builds generated-music corpora (default preset, 8 s of music + lead-in and tail per piece,
16 kHz, TimGM6mb through TinySoundFont) with 1 and 2 worker processes, and a speech corpus
(espeak-ng), each into a temporary folder through the full path: generation, rendering, label
serialisation, atomic shard writes and the manifest.  Numbers on a shared machine are noisy:
run it when the cores are idle for stable figures.

Run::

    python benchmarks/bench_corpus.py                 # 120 pieces, workers 1 and 2
    python benchmarks/bench_corpus.py --n 600 --workers 1 2 4
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from musiclens.corpora.generator import MusicConfig
from musiclens.corpora.shards import build_corpus
from musiclens.corpora.synthetic import GeneratedMusicSource


def _rate(name: str, manifest: dict, seconds: float) -> None:
    n = manifest["n_pieces"]
    hours = manifest["audio_hours"]
    print(f"{name:<28} {n:>5} pieces  {seconds:7.2f} s  {n / seconds * 3600:>10,.0f} pieces/h  "
          f"{hours / (seconds / 3600):>8,.1f} h audio / h build")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=120, help="pieces per run")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--duration", type=float, default=8.0, help="seconds of music per piece")
    ap.add_argument("--speech", type=int, default=40, help="utterances in the speech run (0 to skip)")
    args = ap.parse_args()
    print(f"cores visible: {os.cpu_count()}  (shared machines give noisy numbers)")
    tmp = Path(tempfile.mkdtemp(prefix="bench_corpus_"))
    try:
        for w in args.workers:
            src = GeneratedMusicSource(n_pieces=args.n, seed=0, config=MusicConfig(duration_s=args.duration))
            t = time.perf_counter()
            m = build_corpus(tmp / f"music_w{w}", source=src, pieces_per_shard=max(1, args.n // (4 * w)), workers=w)
            _rate(f"music, {w} worker(s)", m, time.perf_counter() - t)
        if args.speech and shutil.which("espeak-ng"):
            from musiclens.corpora.speech import SpeechSource

            t = time.perf_counter()
            m = build_corpus(tmp / "speech", source=SpeechSource(n_utterances=args.speech), pieces_per_shard=16)
            _rate("speech (espeak-ng), 1 worker", m, time.perf_counter() - t)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
