#!/usr/bin/env bash
# One GPU: train MERT on a generated corpus, then extract every layer of the trained backbone.
# Usage: bash examples/launch/one_gpu.sh [RUN_ROOT]     (re-running resumes every step)
set -euo pipefail
ROOT=${1:-runs}
ML=${ML:-musiclens}                       # e.g. ML=.venv/bin/musiclens
CONFIG=$(dirname "$0")/mert.yaml

$ML corpus music --out "$ROOT/corpora/music" --n 2000 --duration 30 --workers 8
$ML stimuli notes --out "$ROOT/notes" --grid paper

# one process on GPU 0 (pick another with CUDA_VISIBLE_DEVICES)
$ML train mert --config "$CONFIG" --out "$ROOT/train/mert" \
    --set data.train="[$ROOT/corpora/music]" --set trainer.devices=1

$ML extract --model "$ROOT/train/mert/backbone" --stimuli "$ROOT/notes" --out "$ROOT/features/mert" \
    --device cuda --batch-size 32 --pooling mean
