#!/usr/bin/env bash
# The prepared GPU check (about 12 minutes on one H100/H200-class GPU), for a session that is lent one:
#   1. the GPU tests (bf16 training, resume, CPU-vs-GPU extraction of the exported backbone);
#   2. MFU of MERT-95M in bf16 (benchmarks/bench_train.py --gpu);
#   3. 200 steps of each chroma-emergence full-scale condition (wav2vec2-base on raw audio, batch 32, bf16)
#      with samples/s and the projected wall time of the full schedule.
# Usage: bash benchmarks/gpu_session.sh [OUT_DIR]   (results as text under OUT_DIR, default gpu-results/)
set -u
out=${1:-gpu-results}
mkdir -p "$out"
py=${PYTHON:-.venv/bin/python}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/device.txt" 2>&1
timeout 240 "$py" -m pytest -q -p no:cacheprovider -m gpu tests/train/test_gpu.py > "$out/pytest_gpu.txt" 2>&1
echo "pytest -m gpu: exit $?" | tee -a "$out/summary.txt"
timeout 180 "$py" benchmarks/bench_train.py --gpu > "$out/bench_train_gpu.txt" 2>&1
echo "bench_train --gpu: exit $?" | tee -a "$out/summary.txt"
timeout 330 "$py" benchmarks/bench_full_scale_steps.py --steps 200 --warmup 20 > "$out/full_scale_steps.txt" 2>&1
echo "bench_full_scale_steps: exit $?" | tee -a "$out/summary.txt"
tail -n 5 "$out"/*.txt
