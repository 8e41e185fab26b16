"""Silero VAD (silero-vad 6.2.3, the 16 kHz weights shipped in the package), layer by layer.

Silero VAD is a voice-activity detector trained on speech (and non-speech) audio; musiclens uses it
as a speech-trained control network.  The package ships its network as TorchScript and ONNX
(plus a safetensors file with other weights, see below).  This module runs ``SileroVadNet``, a
plain ``torch.nn.Module`` written after the package's reference re-implementation
(``silero_vad/tinygrad_model.py``) and the TorchScript model's code, so that every inner block is
reachable.

Weights.  The tensors are read (with the ``onnx`` package, as plain arrays; nothing in the file is
run) from ``data/silero_vad_16k_op15.onnx``, whose 15 named initializers are the 16 kHz network's
parameters under the TorchScript model's names: the network ``load_silero_vad()`` runs (its
TorchScript model ``data/silero_vad.jit`` and every 16 kHz ONNX file in the wheel hold the same
tensors).  The wheel's ``silero_vad_16k.safetensors`` has the same architecture but *different*
weights (presumably another release; e.g. conv4's kernel differs by up to 18), so it is only an option
(``weights="safetensors"``).  The tests check ``SileroVadNet`` against the TorchScript model's own
forward (``audio_forward``).

Streaming.  The network consumes 512-sample chunks at 16 kHz (32 ms), each prefixed by the last 64
samples of the previous chunk (zeros before the first) and reflect-padded by 64 samples on the
right; a clip is zero-padded at the end to whole chunks (as ``audio_forward`` does), so a clip of
``n`` samples gives ``ceil(n / 512)`` frames, 31.25 frames per second.  Frame ``i`` is reported at
the centre of its chunk's new samples, ``(512 * i + 256) / 16000`` s.  An LSTM cell carries its
state from chunk to chunk, so frame ``i`` depends on the whole clip up to the end of chunk ``i``
and on nothing after it: clips of any lengths are batched by zero-padding at the end, which
leaves every clip's frames unchanged.

Layers, input to output (per chunk; 2-D maps flattened channel-major):

``stft``         STFT magnitude (a fixed conv basis: 256-sample frames, hop 128), 129 bins × 4 frames
``conv1``        encoder block 1 (conv k=3 + ReLU), 128 channels × 4
``conv2``        encoder block 2 (stride 2), 64 × 2
``conv3``        encoder block 3 (stride 2), 64 × 1
``conv4``        encoder block 4, 128 × 1
``lstm_h``       LSTM cell hidden state after this chunk (128)
``lstm_c``       LSTM cell memory state after this chunk (128)
``logit``        decoder output before the sigmoid (ReLU → 1×1 conv), 1
``speech_prob``  the speech probability silero-vad returns, 1
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from musiclens.errors import ConfigError, ExtractionError, MissingDependencyError
from musiclens.extract.pretrained._common import (
    PretrainedExtractor,
    info_head,
    iter_progress,
    randomize_module,
    state_dict_hash,
)
from musiclens.extract.pretrained._imports import PIP_COMMANDS, import_onnx, import_torch, package_data_path

__all__ = ["SileroVadExtractor", "build_silero_vad_net", "SILERO_SAMPLE_RATE", "SILERO_CHUNK"]

logger = logging.getLogger(__name__)

SILERO_SAMPLE_RATE = 16000
#: New samples per chunk (one output frame) at 16 kHz.
SILERO_CHUNK = 512
#: Samples of the previous chunk prefixed to each chunk.
SILERO_CONTEXT = 64
#: Weight files in ``silero_vad/data/``: ``"onnx"`` holds the tensors of the network silero-vad
#: 6.2.3 runs (``load_silero_vad()``'s TorchScript model and every 16 kHz ONNX file agree);
#: ``"safetensors"`` holds different weights (kept for comparison).
SILERO_WEIGHTS = {"onnx": "silero_vad_16k_op15.onnx", "safetensors": "silero_vad_16k.safetensors"}
#: Tensor name in the TorchScript / ONNX models -> ``SileroVadNet`` name.
_JIT_NAMES = {
    "stft.forward_basis_buffer": "stft_basis",
    **{f"encoder.{i}.reparam_conv.{p}": f"conv{i + 1}.{p}" for i in range(4) for p in ("weight", "bias")},
    **{f"decoder.rnn.{p}": f"lstm_cell.{p}" for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")},
    "decoder.decoder.2.weight": "final_conv.weight",
    "decoder.decoder.2.bias": "final_conv.bias",
}
SILERO_LAYERS = ["stft", "conv1", "conv2", "conv3", "conv4", "lstm_h", "lstm_c", "logit", "speech_prob"]


def build_silero_vad_net() -> Any:
    """A ``SileroVadNet`` with random weights (the class is defined here, so this module imports
    without torch)."""
    torch = import_torch()
    nn = torch.nn

    class SileroVadNet(nn.Module):
        """Silero VAD 16 kHz: fixed STFT basis → 4 conv blocks → LSTM cell → 1×1 conv → sigmoid.

        Parameter names are those of ``silero_vad_16k.safetensors`` (the STFT basis is a buffer).
        """

        n_fft = 256
        hop = 128
        pad = 64

        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("stft_basis", torch.zeros(2 * (self.n_fft // 2 + 1), 1, self.n_fft))
            self.conv1 = nn.Conv1d(129, 128, kernel_size=3, stride=1, padding=1)
            self.conv2 = nn.Conv1d(128, 64, kernel_size=3, stride=2, padding=1)
            self.conv3 = nn.Conv1d(64, 64, kernel_size=3, stride=2, padding=1)
            self.conv4 = nn.Conv1d(64, 128, kernel_size=3, stride=1, padding=1)
            self.lstm_cell = nn.LSTMCell(128, 128)
            self.final_conv = nn.Conv1d(128, 1, kernel_size=1)

        def encode(self, x: Any) -> dict[str, Any]:
            """``x [shape=(n, 576)]`` chunks with context → ``{stft, conv1..conv4}``, each ``(n, C, T)``."""
            x = nn.functional.pad(x, (0, self.pad), mode="reflect")[:, None, :]
            spec = nn.functional.conv1d(x, self.stft_basis, stride=self.hop)
            cut = self.n_fft // 2 + 1
            out = {"stft": torch.sqrt(spec[:, :cut] ** 2 + spec[:, cut:] ** 2)}
            h = out["stft"]
            for name in ("conv1", "conv2", "conv3", "conv4"):
                h = torch.relu(getattr(self, name)(h))
                out[name] = h
            return out

        def decode(self, feat: Any, state: tuple[Any, Any] | None) -> dict[str, Any]:
            """One LSTM step on ``feat [shape=(B, 128)]`` → ``{lstm_h, lstm_c, logit, speech_prob}``."""
            h, c = self.lstm_cell(feat, state)
            logit = self.final_conv(torch.relu(h)[:, :, None])[:, :, 0]      # (B, 1)
            return {"lstm_h": h, "lstm_c": c, "logit": logit, "speech_prob": torch.sigmoid(logit)}

    return SileroVadNet()


def _load_state(path: Any, weights: str) -> dict[str, Any]:
    """``SileroVadNet`` state dict from the wheel's 16 kHz ONNX file or its safetensors file."""
    torch = import_torch()
    if weights == "safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError as err:
            raise MissingDependencyError(
                f"silero-vad's safetensors weights need safetensors ({err}); install with: pip install safetensors"
            ) from err
        raw = load_file(str(path), device="cpu")
        return {("stft_basis" if k == "stft_conv.weight" else k): v for k, v in raw.items()}
    # Plain tensors from the ONNX file (named as in the TorchScript model, prefixed "model."):
    # nothing in the file is executed, and the forward pass is SileroVadNet's.
    onnx, _ = import_onnx()
    from onnx import numpy_helper

    try:
        graph = onnx.load(str(path)).graph
    except Exception as err:  # protobuf's DecodeError and OSError alike
        raise ExtractionError(f"could not read silero-vad's ONNX file {path} ({err!r}); "
                              f"reinstall with: {PIP_COMMANDS['silero_vad']}") from err
    raw = {i.name.removeprefix("model."): numpy_helper.to_array(i) for i in graph.initializer}
    if set(raw) != set(_JIT_NAMES):
        raise ExtractionError(f"silero-vad file {path} holds tensors {sorted(raw)}, expected {sorted(_JIT_NAMES)}; "
                              f"reinstall with: {PIP_COMMANDS['silero_vad']}")
    return {_JIT_NAMES[k]: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in raw.items()}


class SileroVadExtractor(PretrainedExtractor):
    """Silero VAD 16 kHz as an :class:`~musiclens.extract.base.Extractor` (31.25 frames/s).

    Parameters
    ----------
    weights
        ``"onnx"`` (default): the tensors of ``silero_vad/data/silero_vad_16k_op15.onnx``, the
        network that silero-vad 6.2.3's ``load_silero_vad()`` runs (its TorchScript model holds
        the same tensors).  ``"safetensors"``: ``silero_vad_16k.safetensors`` from the same
        wheel, which holds *different* weights of the same architecture (used by the package's
        tinygrad example).
    randomize
        Re-initialise the encoder convs, the LSTM cell and the output conv with ``seed`` (the STFT
        basis stays an STFT): the random-weights control.
    seed
        Seed of the re-initialisation.
    batch_size
        Clips per forward pass (chunks are streamed through the LSTM cell in time order).
    device
        Torch device.
    progress
        Progress bar over batches.
    """

    sample_rate: int = SILERO_SAMPLE_RATE
    frame_rate_hz: float = SILERO_SAMPLE_RATE / SILERO_CHUNK

    def __init__(
        self,
        *,
        weights: str = "onnx",
        randomize: bool = False,
        seed: int = 0,
        batch_size: int = 16,
        device: str = "cpu",
        progress: bool = False,
    ) -> None:
        torch = import_torch()
        if weights not in SILERO_WEIGHTS:
            raise ConfigError(f"silero-vad weights must be one of {', '.join(SILERO_WEIGHTS)}, got {weights!r}")
        path = package_data_path("silero_vad", "data", SILERO_WEIGHTS[weights])
        model = build_silero_vad_net()
        try:
            model.load_state_dict(_load_state(path, weights), strict=True)
        except ExtractionError:
            raise
        except (RuntimeError, ValueError, OSError) as err:
            raise ExtractionError(f"could not load silero-vad's weights {path} ({err}); "
                                  f"reinstall with: {PIP_COMMANDS['silero_vad']}") from err
        self.randomize = bool(randomize)
        self.seed = int(seed)
        if self.randomize:
            randomize_module(model, seed=self.seed)
        self.model = model.to(device).eval()
        self.device = device
        if int(batch_size) < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.progress = progress
        self.weights = weights
        self.weights_file = str(path)
        self.layer_names = list(SILERO_LAYERS)
        self.name = "silero-vad" + ("-random" if self.randomize else "")
        self.weights_hash = state_dict_hash(self.model)
        self._torch = torch

    def n_frames(self, n_samples: int) -> int:
        """Frames of a clip of ``n_samples`` (``ceil(n / 512)``)."""
        return -(-int(n_samples) // SILERO_CHUNK)

    def frame_times(self, n_frames: int) -> np.ndarray:
        """``[shape=(n_frames,)]`` seconds: centre of chunk ``i``'s new samples, ``(512 i + 256) / 16000``."""
        return (np.arange(n_frames, dtype=np.float64) * SILERO_CHUNK + SILERO_CHUNK / 2) / SILERO_SAMPLE_RATE

    def _forward(self, clips: Sequence[np.ndarray], names: Sequence[str]) -> dict[str, np.ndarray]:
        """Clips zero-padded to whole chunks of the longest → ``{layer: (B, n_chunks, dim)}``."""
        torch = self._torch
        n = max(self.n_frames(c.shape[0]) for c in clips)
        x = np.zeros((len(clips), SILERO_CONTEXT + n * SILERO_CHUNK), dtype=np.float32)
        for i, c in enumerate(clips):
            x[i, SILERO_CONTEXT:SILERO_CONTEXT + c.shape[0]] = c
        b = len(clips)
        wanted = set(names)
        out: dict[str, list[Any]] = {k: [] for k in names}
        with torch.inference_mode():
            xt = torch.from_numpy(x).to(self.device)
            chunks = xt.unfold(1, SILERO_CHUNK + SILERO_CONTEXT, SILERO_CHUNK)   # (B, n, 576)
            enc = self.model.encode(chunks.reshape(b * n, -1))                   # every chunk at once
            for k in ("stft", "conv1", "conv2", "conv3", "conv4"):
                if k in wanted:
                    out[k] = [enc[k].reshape(b, n, -1)]
            if wanted & {"lstm_h", "lstm_c", "logit", "speech_prob"}:
                feat = enc["conv4"][:, :, 0].reshape(b, n, -1)
                state = None
                steps: dict[str, list[Any]] = {k: [] for k in ("lstm_h", "lstm_c", "logit", "speech_prob")}
                for t in range(n):
                    dec = self.model.decode(feat[:, t], state)
                    state = (dec["lstm_h"], dec["lstm_c"])
                    for k in steps:
                        steps[k].append(dec[k])
                for k in steps:
                    if k in wanted:
                        out[k] = [torch.stack(steps[k], dim=1)]
        return {k: out[k][0].float().cpu().numpy() for k in names}

    def _per_clip(
        self, clips: list[np.ndarray], ids: list[str], names: list[str]
    ) -> tuple[list[dict[str, np.ndarray]], list[int]]:
        """Batches of ``batch_size`` clips (end-padded; streaming is causal, so padding changes nothing)."""
        counts = [self.n_frames(c.shape[0]) for c in clips]
        per_clip: list[dict[str, np.ndarray]] = []
        starts = range(0, len(clips), self.batch_size)
        for s in iter_progress(starts, total=len(starts), desc=self.name, enabled=self.progress):
            res = self._forward(clips[s:s + self.batch_size], names)
            for k in range(res[names[0]].shape[0]):
                per_clip.append({n: res[n][k, : counts[s + k]] for n in names})
        return per_clip, counts

    def info(self) -> dict[str, Any]:
        """Architecture, weights hash, training task and data, options."""
        head = info_head(self.name, "silero-vad", "silero-vad")
        return {
            **head,
            "task": "speech activity (voice activity detection)",
            "training_data": "Silero's speech and noise corpora (not published; the silero-vad README "
                             "reports more than 6000 languages)",
            "weights_source": f"pip package silero-vad {head['package_version']}, file "
                              f"silero_vad/data/{SILERO_WEIGHTS[self.weights]}"
                              + (" (its 15 named tensors; same as silero_vad.jit)" if self.weights == "onnx" else ""),
            "weights": self.weights,
            "weights_file": self.weights_file,
            "weights_hash": self.weights_hash,
            "randomized": self.randomize,
            "seed": self.seed if self.randomize else None,
            "sample_rate": SILERO_SAMPLE_RATE,
            "chunk": SILERO_CHUNK,
            "context": SILERO_CONTEXT,
            "frame_rate_hz": self.frame_rate_hz,
            "layers": list(self.layer_names),
            "frame_convention": "frame i = 512-sample chunk i (plus 64 samples of context), reported at "
                                "(512 i + 256) / 16000 s; causal LSTM state carried across chunks; "
                                "clip zero-padded to whole chunks",
            "licence": "silero-vad MIT (code and weights)",
        }
