"""Inputs for the listener example: your own sounds and a simulated listener-RDM file.

Writes, into the folder given as the first argument (default ``./listener_inputs``):

- ``audio/``: 12 Shepard tones (one per pitch class, C4–B4; chroma without height) and 24 pure
  tones (the 12 pitch classes in octaves 3 and 5; height and chroma together), 1 s at 16 kHz,
  rendered with musiclens's synthesis;
- ``stimuli.csv``: one row per file (``file, stimulus_id, midi, pitch_class, kind``);
- ``listeners.csv``: simulated dissimilarity judgements of ``--subjects`` listeners in the long
  format ``subject, stim_i, stim_j, dissimilarity``, each pair judged by every listener.

The simulated listeners hear **chroma**: a listener's dissimilarity is the circular pitch-class
distance (0–6 semitones, octave equivalence) plus 0.15 × the octave difference, plus independent
Gaussian noise (sd ``--noise``) per listener and pair.  A correct analysis recovers that the
chroma model RDM explains the listeners better than pitch height, and that the noise ceiling is
well above zero.  Seeded: same arguments, same files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from musiclens.stimuli.synth import pure_tone, shepard_tone


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", default="listener_inputs", type=Path)
    ap.add_argument("--subjects", type=int, default=12)
    ap.add_argument("--noise", type=float, default=1.0, help="sd of each listener's judgement noise (semitone units)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    sr = 16000
    (args.out / "audio").mkdir(parents=True, exist_ok=True)
    rows = []
    for pc in range(12):
        midi = 60 + pc
        sf.write(args.out / "audio" / f"shepard_{pc:02d}.wav",
                 shepard_tone(midi=midi, duration_s=1.0, hold_s=0.8, sample_rate=sr), sr, subtype="FLOAT")
        rows.append({"file": f"shepard_{pc:02d}.wav", "stimulus_id": f"shepard_{pc:02d}", "midi": midi,
                     "pitch_class": pc, "kind": "shepard"})
        for octave_midi in (48, 72):
            m = octave_midi + pc
            name = f"pure_{m}"
            sf.write(args.out / "audio" / f"{name}.wav",
                     pure_tone(midi=m, duration_s=1.0, hold_s=0.8, sample_rate=sr), sr, subtype="FLOAT")
            rows.append({"file": f"{name}.wav", "stimulus_id": name, "midi": m, "pitch_class": pc, "kind": "pure"})
    table = pd.DataFrame(rows)
    table.to_csv(args.out / "stimuli.csv", index=False)

    pc = table["pitch_class"].to_numpy()
    octave = table["midi"].to_numpy() // 12
    d_pc = np.abs(pc[:, None] - pc[None])
    chroma = np.minimum(d_pc, 12 - d_pc).astype(float)
    truth = chroma + 0.15 * np.abs(octave[:, None] - octave[None])
    ids = table["stimulus_id"].tolist()
    iu, ju = np.triu_indices(len(ids), 1)
    long = []
    for s in range(args.subjects):
        judged = truth[iu, ju] + rng.normal(0, args.noise, iu.size)
        long.append(pd.DataFrame({"subject": f"listener{s:02d}", "stim_i": [ids[i] for i in iu],
                                  "stim_j": [ids[j] for j in ju], "dissimilarity": judged}))
    pd.concat(long).to_csv(args.out / "listeners.csv", index=False, float_format="%.6g")
    print(f"wrote {len(table)} stimuli and {args.subjects} listeners' RDMs to {args.out}")


if __name__ == "__main__":
    main()
