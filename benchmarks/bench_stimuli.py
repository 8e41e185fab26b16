"""Benchmark: rendering the default note grid, against a reference renderer in the same run.

Reference: pretty_midi's own SoundFont path (``PrettyMIDI.fluidsynth``, one new FluidSynth per
note), the way most code renders single notes.  musiclens: ``render_notes`` with the
tinysoundfont backend (and FluidSynth when libfluidsynth is installed).  The reference is timed
on a subset and extrapolated linearly to the full grid (said so in the output).

    .venv/bin/python benchmarks/bench_stimuli.py [--n-reference 120]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-reference", type=int, default=120, help="notes rendered by the reference")
    args = parser.parse_args()

    import pretty_midi

    from musiclens.stimuli import GRIDS, PAPER_INSTRUMENTS, render_notes
    from musiclens.stimuli.soundfont import available_backends, find_soundfont

    grid = GRIDS.get("paper")()
    print(f"cores: {os.cpu_count()}  grid: {len(grid)} notes (4 s at 16 kHz)")
    results = {}
    for backend in available_backends():
        start = time.perf_counter()
        s = render_notes(grid="paper", backend=backend, progress=False)
        results[backend] = time.perf_counter() - start
        print(f"musiclens render_notes [{backend}]: {results[backend]:.2f} s for {len(s)} notes "
              f"({len(s) / results[backend]:.0f} notes/s)")

    if "fluidsynth" not in available_backends():
        print("reference skipped: pretty_midi.fluidsynth needs libfluidsynth")
        return
    sf2 = str(find_soundfont())
    jobs = [(i.program, m) for i in PAPER_INSTRUMENTS for m in grid.midi][: args.n_reference]
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for program, midi in jobs:
            pm = pretty_midi.PrettyMIDI()
            inst = pretty_midi.Instrument(program=program)
            inst.notes.append(pretty_midi.Note(velocity=100, pitch=midi, start=0.0, end=3.0))
            pm.instruments.append(inst)
            audio = pm.fluidsynth(fs=16000, sf2_path=sf2)
            assert np.isfinite(audio).all()
    ref = (time.perf_counter() - start) / len(jobs) * len(grid)
    print(f"reference pretty_midi.fluidsynth: {ref:.2f} s for {len(grid)} notes "
          f"(timed on {len(jobs)} notes, extrapolated linearly)")
    for backend, secs in results.items():
        print(f"speed ratio musiclens[{backend}] / reference: {ref / secs:.2f}x")


if __name__ == "__main__":
    main()
