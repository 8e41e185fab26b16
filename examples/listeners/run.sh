#!/usr/bin/env bash
# Your own sounds and your own listeners: which representation explains the listeners' judgements?
#
#   bash examples/listeners/run.sh [WORK_DIR]      (about a minute on a laptop CPU)
#
# 1. make the inputs (Shepard and octave-spaced pure tones + simulated chroma-hearing listeners),
# 2. import the audio folder as a stimulus set,
# 3. extract two hand-crafted representations (CQT chroma and MFCC),
# 4. evaluate them and the metadata models against the listeners' RDMs (noise ceiling, dual bootstrap,
#    pairwise tests); the printed line names the best candidate.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
WORK="${1:-listener_example}"
ML="${MUSICLENS:-musiclens}"
PY="${PYTHON:-python}"
mkdir -p "$WORK"
"$PY" "$HERE/make_inputs.py" "$WORK/inputs"
"$ML" stimuli import "$WORK/inputs/audio" --metadata "$WORK/inputs/stimuli.csv" --out "$WORK/stimuli" --overwrite
for feature in chroma mfcc; do
  "$ML" extract --model "$feature" --stimuli "$WORK/stimuli" --out "$WORK/features_$feature" --overwrite
  "$ML" rsa --activations "$WORK/features_$feature" --stimuli "$WORK/stimuli" --network "$feature" \
    --models pitch_height,chroma,chroma_circular --subject none --targets "listeners=$WORK/inputs/listeners.csv" \
    --test permutation --permutations 200 --bootstraps 200 --target-bootstraps 1000 --out "$WORK/rsa_$feature"
done
