"""Resemblyzer's speaker encoder (resemblyzer 0.1.4, ``pretrained.pt`` in its wheel), layer by layer.

Resemblyzer's ``VoiceEncoder`` is a GE2E speaker-verification network (the encoder of
Real-Time-Voice-Cloning): a 3-layer LSTM (256 units) over a 40-band mel spectrogram (power, not
log; 25 ms Hann window, 10 ms hop, 16 kHz), whose last hidden state goes through a linear layer,
ReLU and L2 normalisation to a 256-d speaker embedding.  musiclens uses it as a speech-trained
(speaker identity) control network.  The package is not imported (its import needs the
``webrtcvad`` C extension): the network is rebuilt here with the same parameter names and the
checkpoint is loaded with ``torch.load(weights_only=True)`` and ``strict=True`` (after dropping the
two GE2E loss parameters ``similarity_weight`` / ``similarity_bias``, which only scale training
logits).

Frames are resemblyzer's *partial utterances*: windows of 160 mel frames (1.6 s) every
``round(100 / rate)`` mel frames (77 frames = 0.77 s at the default ``rate=1.3`` partials per
second, so 1.2987 frames/s), cut exactly as ``VoiceEncoder.embed_utterance`` /
``compute_partial_slices`` cut them (the clip is zero-padded to the end of the last window; a last
window less than ``min_coverage`` full is dropped unless it is the only one).  Each window runs
through the LSTM from a zero state.  Frame ``i`` starts at mel frame ``s_i = i * step`` and is
reported at the centre of its mel frames, ``(s_i + 79.5) * 0.01`` s.

Pre-processing as ``resemblyzer.preprocess_wav`` minus its silence trimming (which needs
webrtcvad and would change the time axis): the clip's level is raised (never lowered) to
-30 dBFS RMS (``normalize_volume=True``; silent clips are left as they are), then the mel
spectrogram is librosa's ``melspectrogram(n_fft=400, hop_length=160, n_mels=40)`` as in
``resemblyzer.audio.wav_to_mel_spectrogram``.

Layers, input to output (one vector per window):

``mel``         the window's mel spectrogram averaged over its 160 frames (40)
``lstm1``       final hidden state of LSTM layer 1 at the window's end (256)
``lstm2``       final hidden state of LSTM layer 2 (256)
``lstm3``       final hidden state of LSTM layer 3 (256)
``projection``  ``ReLU(Linear(lstm3))``, before normalisation (256)
``embedding``   the L2-normalised partial embedding resemblyzer returns (256; an all-zero
                projection stays zero instead of resemblyzer's NaN); resemblyzer's utterance
                embedding is the L2-normalised mean of a clip's valid frames
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from musiclens.errors import ConfigError, ExtractionError
from musiclens.extract.pretrained._common import (
    PretrainedExtractor,
    info_head,
    randomize_module,
    run_units,
    state_dict_hash,
)
from musiclens.extract.pretrained._imports import PIP_COMMANDS, import_torch, package_data_path

__all__ = ["ResemblyzerExtractor", "build_resemblyzer_net", "partial_windows", "RESEMBLYZER_SAMPLE_RATE"]

logger = logging.getLogger(__name__)

RESEMBLYZER_SAMPLE_RATE = 16000
MEL_HOP = 160            # 10 ms
MEL_WINDOW = 400         # 25 ms
N_MELS = 40
PARTIAL_FRAMES = 160     # 1.6 s
TARGET_DBFS = -30.0
_INT16_MAX = 2 ** 15 - 1
_TRAINING_ONLY = ("similarity_weight", "similarity_bias")
RESEMBLYZER_LAYERS = ["mel", "lstm1", "lstm2", "lstm3", "projection", "embedding"]


def build_resemblyzer_net() -> Any:
    """``lstm`` (3 layers, 40 → 256) + ``linear`` (256 → 256), resemblyzer's parameter names."""
    torch = import_torch()
    nn = torch.nn

    class ResemblyzerNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(N_MELS, 256, 3, batch_first=True)
            self.linear = nn.Linear(256, 256)

        def forward(self, mels: Any) -> dict[str, Any]:
            """``mels [shape=(B, 160, 40)]`` → every layer ``(B, dim)``."""
            _, (hidden, _) = self.lstm(mels)
            proj = torch.relu(self.linear(hidden[-1]))
            return {"mel": mels.mean(1), "lstm1": hidden[0], "lstm2": hidden[1], "lstm3": hidden[2],
                    "projection": proj,
                    "embedding": proj / torch.norm(proj, dim=1, keepdim=True).clamp_min(1e-12)}

    return ResemblyzerNet()


def partial_windows(n_samples: int, *, rate: float = 1.3, min_coverage: float = 0.75) -> list[int]:
    """Start mel frames of resemblyzer's partial utterances for a clip of ``n_samples`` at 16 kHz.

    The same arithmetic as ``VoiceEncoder.compute_partial_slices`` (windows of 160 mel frames every
    ``round(16000 / rate / 160)`` frames; a last window covering less than ``min_coverage`` of the
    remaining samples is dropped unless it is the only one).
    """
    n_frames = int(np.ceil((n_samples + 1) / MEL_HOP))
    step = int(np.round((RESEMBLYZER_SAMPLE_RATE / rate) / MEL_HOP))
    starts = list(range(0, max(1, n_frames - PARTIAL_FRAMES + step + 1), step))
    last = starts[-1] * MEL_HOP
    coverage = (n_samples - last) / (PARTIAL_FRAMES * MEL_HOP)
    if coverage < min_coverage and len(starts) > 1:
        starts = starts[:-1]
    return starts


class ResemblyzerExtractor(PretrainedExtractor):
    """Resemblyzer's ``VoiceEncoder`` as an :class:`~musiclens.extract.base.Extractor`.

    Parameters
    ----------
    rate
        Partial utterances per second (resemblyzer's default 1.3; at least 0.625, so that windows
        cover the clip, and at most 100).
    min_coverage
        Keep a last window only if the clip fills at least this fraction of it (default 0.75).
    normalize_volume
        Raise the clip's level to -30 dBFS RMS first, as resemblyzer's ``preprocess_wav`` does.
    randomize
        Same architecture with re-initialised LSTM and linear layers (seeded): the control.
    seed
        Seed of the re-initialisation.
    batch_size
        Windows per forward pass.
    device
        Torch device.
    progress
        Progress bar over batches.
    """

    sample_rate: int = RESEMBLYZER_SAMPLE_RATE

    def __init__(
        self,
        *,
        rate: float = 1.3,
        min_coverage: float = 0.75,
        normalize_volume: bool = True,
        randomize: bool = False,
        seed: int = 0,
        batch_size: int = 64,
        device: str = "cpu",
        progress: bool = False,
    ) -> None:
        if not 0.625 <= float(rate) <= 100.0:
            raise ConfigError(f"rate must be between 0.625 and 100 partial windows per second, got {rate}")
        if not 0.0 < float(min_coverage) <= 1.0:
            raise ConfigError(f"min_coverage must be in (0, 1], got {min_coverage}")
        if int(batch_size) < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        torch = import_torch()
        path = package_data_path("resemblyzer", "pretrained.pt")
        try:
            checkpoint = torch.load(str(path), map_location="cpu", weights_only=True)
        except (RuntimeError, ValueError, OSError) as err:
            raise ExtractionError(f"could not load resemblyzer's weights {path} ({err}); "
                                  f"reinstall with: {PIP_COMMANDS['resemblyzer']}") from err
        if not isinstance(checkpoint, dict) or "model_state" not in checkpoint:
            raise ExtractionError(f"resemblyzer's weights {path} hold no 'model_state'; "
                                  f"reinstall with: {PIP_COMMANDS['resemblyzer']}")
        state = {k: v for k, v in checkpoint["model_state"].items() if k not in _TRAINING_ONLY}
        model = build_resemblyzer_net()
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise ExtractionError(f"resemblyzer's weights {path} do not fit its network ({err}); "
                                  f"reinstall with: {PIP_COMMANDS['resemblyzer']}") from err
        self.step = int(np.round((RESEMBLYZER_SAMPLE_RATE / float(rate)) / MEL_HOP))
        self.rate = float(rate)
        self.min_coverage = float(min_coverage)
        self.normalize_volume = bool(normalize_volume)
        self.randomize = bool(randomize)
        self.seed = int(seed)
        if self.randomize:
            randomize_module(model, seed=self.seed)
        self.model = model.to(device).eval()
        self.device = device
        self.batch_size = int(batch_size)
        self.progress = progress
        self.training_step = int(checkpoint.get("step", -1))
        self.weights_file = str(path)
        self.layer_names = list(RESEMBLYZER_LAYERS)
        self.frame_rate_hz = 1.0 / (self.step * MEL_HOP / RESEMBLYZER_SAMPLE_RATE)
        self.name = "resemblyzer" + ("-random" if self.randomize else "")
        self.weights_hash = state_dict_hash(self.model)

    def n_frames(self, n_samples: int) -> int:
        """Partial windows of a clip of ``n_samples``."""
        return len(partial_windows(n_samples, rate=self.rate, min_coverage=self.min_coverage))

    def frame_times(self, n_frames: int) -> np.ndarray:
        """``[shape=(n_frames,)]`` seconds: centre of window ``i``, ``(i * step + 79.5) * 0.01``."""
        return (np.arange(n_frames, dtype=np.float64) * self.step + (PARTIAL_FRAMES - 1) / 2) * MEL_HOP \
            / RESEMBLYZER_SAMPLE_RATE

    def mel_windows(self, clip: np.ndarray) -> np.ndarray:
        """``[shape=(n_windows, 160, 40)]`` mel windows of one 16 kHz clip (resemblyzer's pre-processing)."""
        import librosa

        wav = np.asarray(clip, dtype=np.float32)
        if self.normalize_volume:
            rms = float(np.sqrt(np.mean((wav.astype(np.float64) * _INT16_MAX) ** 2)))
            if rms > 0:
                change = TARGET_DBFS - 20.0 * math.log10(rms / _INT16_MAX)
                if change > 0:
                    wav = (wav * 10.0 ** (change / 20.0)).astype(np.float32)
        starts = partial_windows(wav.shape[0], rate=self.rate, min_coverage=self.min_coverage)
        stop = (starts[-1] + PARTIAL_FRAMES) * MEL_HOP
        if stop >= wav.shape[0]:
            wav = np.pad(wav, (0, stop - wav.shape[0]))
        mel = librosa.feature.melspectrogram(y=wav, sr=RESEMBLYZER_SAMPLE_RATE, n_fft=MEL_WINDOW,
                                             hop_length=MEL_HOP, n_mels=N_MELS).astype(np.float32).T
        return np.stack([mel[s:s + PARTIAL_FRAMES] for s in starts])

    def _forward(self, mels: Any, names: Sequence[str]) -> dict[str, np.ndarray]:
        torch = import_torch()
        with torch.inference_mode():
            out = self.model(torch.from_numpy(np.ascontiguousarray(mels)).to(self.device))
        return {n: out[n].float().cpu().numpy() for n in names}

    def _per_clip(
        self, clips: list[np.ndarray], ids: list[str], names: list[str]
    ) -> tuple[list[dict[str, np.ndarray]], list[int]]:
        """Windows of all clips in batches of ``batch_size`` (each window is independent)."""
        return run_units([self.mel_windows(c) for c in clips], names, self._forward, batch_size=self.batch_size,
                         desc=self.name, progress=self.progress)

    def info(self) -> dict[str, Any]:
        """Architecture, weights hash, training task and data, options."""
        head = info_head(self.name, "resemblyzer", "resemblyzer")
        return {
            **head,
            "task": "speaker identity (GE2E speaker verification)",
            "training_data": "LibriSpeech train-other-500, VoxCeleb1 and VoxCeleb2 (Real-Time-Voice-Cloning encoder)",
            "weights_source": f"pip package resemblyzer {head['package_version']}, file resemblyzer/pretrained.pt "
                              f"(training step {self.training_step})",
            "weights_file": self.weights_file,
            "weights_hash": self.weights_hash,
            "randomized": self.randomize,
            "seed": self.seed if self.randomize else None,
            "sample_rate": RESEMBLYZER_SAMPLE_RATE,
            "mel": {"n_fft": MEL_WINDOW, "hop_length": MEL_HOP, "n_mels": N_MELS, "power": 2.0, "log": False},
            "partial_frames": PARTIAL_FRAMES,
            "partial_step_frames": self.step,
            "rate": self.rate,
            "min_coverage": self.min_coverage,
            "normalize_volume_dbfs": TARGET_DBFS if self.normalize_volume else None,
            "frame_rate_hz": self.frame_rate_hz,
            "layers": list(self.layer_names),
            "frame_convention": "frame i = partial window of 160 mel frames (1.6 s) starting at mel frame "
                                "i*step (10 ms frames), reported at its centre (i*step + 79.5) * 0.01 s",
            "licence": "resemblyzer Apache-2.0 (code and weights)",
        }
