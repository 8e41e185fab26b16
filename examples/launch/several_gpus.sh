#!/usr/bin/env bash
# Several GPUs of one machine: data-parallel training (DDP, NCCL) and extraction split across GPUs.
# Usage: bash examples/launch/several_gpus.sh [RUN_ROOT] [N_GPUS]     (re-running resumes)
#
# data.batch_size in the config is per process: N GPUs train with a global batch N times larger
# (equal, up to float rounding, to one process with that global batch; see musiclens.train.distributed).
set -euo pipefail
ROOT=${1:-runs}
N=${2:-$(nvidia-smi -L | wc -l)}
ML=${ML:-musiclens}
PY=${PY:-python}                          # the interpreter musiclens is installed in (for torchrun)
CONFIG=$(dirname "$0")/mert.yaml

$ML corpus music --out "$ROOT/corpora/music" --n 2000 --duration 30 --workers 8
$ML stimuli notes --out "$ROOT/notes" --grid paper

# A. musiclens starts the N processes itself (one per GPU):
$ML train mert --config "$CONFIG" --out "$ROOT/train/mert" \
    --set data.train="[$ROOT/corpora/music]" --set trainer.devices="$N"

# B. the same run started by torchrun instead (each launched process is one rank; use A or B):
# $PY -m torch.distributed.run --standalone --nproc-per-node "$N" -m musiclens train mert \
#     --config "$CONFIG" --out "$ROOT/train/mert" --set data.train="[$ROOT/corpora/music]" --set trainer.devices="$N"

# Extraction split across the N GPUs: rank r extracts its share of the stimuli on GPU r, rank 0
# merges the shards; the store is byte-identical to a one-process store.
$ML extract --model "$ROOT/train/mert/backbone" --stimuli "$ROOT/notes" --out "$ROOT/features/mert" \
    --device cuda --devices "$N" --batch-size 32 --pooling mean
# or under torchrun (each rank one process; --devices auto, the default, joins the launcher's group):
# $PY -m torch.distributed.run --standalone --nproc-per-node "$N" -m musiclens extract \
#     --model "$ROOT/train/mert/backbone" --stimuli "$ROOT/notes" --out "$ROOT/features/mert" --device cuda
