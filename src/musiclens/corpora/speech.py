"""Synthetic speech from espeak-ng, with phoneme sequences for CTC training.

Each utterance draws (from ``numpy.random.default_rng([seed, index])``) a sentence — from the
bundled list :data:`SENTENCES` or from a small generative grammar — a voice (language variant x
voice variant, e.g. ``en-gb-scotland+f3``), a speaking rate (words per minute) and a pitch
(espeak-ng's 0-99 scale).  espeak-ng writes the waveform (22,050 Hz, deterministic) and, in the
same call, the phonemes it spoke (``-x`` ASCII or ``--ipa``), which become the label sequence:
phonemes of each word with ``|`` between words (stress marks removed unless asked).

espeak-ng is a system program (Debian: ``apt-get install espeak-ng``); without it every entry
point raises :class:`~musiclens.errors.MissingDependencyError`.
"""

from __future__ import annotations

import functools
import logging
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from musiclens.audio import load_audio, resample
from musiclens.corpora.base import Piece
from musiclens.errors import ConfigError, MissingDependencyError, StimulusError

__all__ = ["SENTENCES", "DEFAULT_VOICES", "WORD_BOUNDARY", "espeak_path", "synthesize", "generate_sentence",
           "SpeechSource"]

logger = logging.getLogger(__name__)

WORD_BOUNDARY = "|"

#: Bundled sentences (written for musiclens; free of third-party text).
SENTENCES: tuple[str, ...] = (
    "The old clock in the hall stopped at noon.",
    "A small boat drifted slowly past the harbour wall.",
    "Please bring the green folder to the meeting room.",
    "We walked along the river until the sun went down.",
    "Her violin sounded warm and bright in the empty church.",
    "The children painted the fence a pale shade of blue.",
    "Could you tell me the way to the nearest station?",
    "Heavy rain fell on the roof all through the night.",
    "He counted the coins twice before he paid the driver.",
    "The orchestra tuned to a single note from the oboe.",
    "Fresh bread and cheese were laid out on the table.",
    "My brother keeps his bicycle in the garden shed.",
    "The winter wind carried snow across the frozen lake.",
    "She answered every question with a quiet smile.",
    "Thin clouds moved quickly over the distant hills.",
    "The piano in the corner had not been played for years.",
    "Turn left at the bakery and walk two more blocks.",
    "A flock of birds rose from the field at once.",
    "The teacher wrote the date at the top of the board.",
    "Nobody knew who had left the window open.",
    "The drummer kept a steady beat for the dancers.",
    "Our train was delayed by almost an hour.",
    "The library closes early on the last day of the month.",
    "He hummed a simple tune while he cooked dinner.",
    "The lamp threw long shadows across the wooden floor.",
    "Five yellow ducks swam in a line behind their mother.",
    "The singer held the final note for a long time.",
    "We found an old map hidden inside the book.",
    "The market was crowded with people buying fruit.",
    "Light from the kitchen spilled into the dark yard.",
    "Every morning she practised scales for half an hour.",
    "The bridge was closed for repairs until spring.",
)

_DET = ("the", "a", "every", "one", "that")
_ADJ = ("quiet", "bright", "small", "tired", "happy", "distant", "golden", "careful", "young", "heavy")
_NOUN = ("singer", "river", "teacher", "piano", "garden", "city", "drummer", "window", "letter", "mountain",
         "student", "violin", "market", "sailor", "lantern")
_VERB = ("watched", "followed", "carried", "remembered", "painted", "answered", "found", "visited", "heard", "opened")
_ADV = ("slowly", "again", "today", "at night", "without a word", "in the morning", "once more", "very carefully")

#: Default voices: English language variants x espeak-ng voice variants.
DEFAULT_VOICES: tuple[str, ...] = tuple(
    f"{lang}{var}" for lang in ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan")
    for var in ("", "+m1", "+m3", "+m7", "+f1", "+f3", "+f4")
)


def espeak_path() -> str:
    """Path of the ``espeak-ng`` program; :class:`MissingDependencyError` if it is not installed."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise MissingDependencyError(
            "synthetic speech needs the espeak-ng program, which is not on PATH: install it with "
            "`apt-get install espeak-ng` (Debian/Ubuntu) or `brew install espeak-ng` (macOS)"
        )
    return exe


def generate_sentence(rng: np.random.Generator) -> str:
    """A random sentence from a small grammar: ``Det Adj Noun Verb Det Noun Adv.``"""
    def pick(words: tuple[str, ...]) -> str:
        return str(words[int(rng.integers(0, len(words)))])

    s = f"{pick(_DET)} {pick(_ADJ)} {pick(_NOUN)} {pick(_VERB)} {pick(_DET)} {pick(_NOUN)} {pick(_ADV)}."
    return s[0].upper() + s[1:]


def _phonemes(text: str, *, keep_stress: bool, ipa: bool) -> list[str]:
    stress = "ˈˌ" if ipa else "',"
    out: list[str] = []
    for word in text.split():
        ph = [p for p in (x.strip(stress) if not keep_stress else x for x in word.split("_")) if p]
        if ph:
            if out:
                out.append(WORD_BOUNDARY)
            out.extend(ph)
    return out


def synthesize(text: str, *, voice: str = "en-us", rate_wpm: int = 160, pitch: int = 50, sample_rate: int = 16000,
               ipa: bool = False, keep_stress: bool = False) -> tuple[np.ndarray, list[str]]:
    """Speak ``text`` with espeak-ng.

    Parameters
    ----------
    text
        Text to speak.
    voice
        espeak-ng voice, optionally with a variant (``"en-gb+f3"``).
    rate_wpm
        Speaking rate, words per minute (80-450).
    pitch
        espeak-ng pitch, 0-99.
    sample_rate
        Output rate, Hz (espeak-ng speaks at 22,050 Hz; resampled with soxr).
    ipa
        Phonemes in IPA instead of espeak-ng's ASCII phoneme names.
    keep_stress
        Keep stress marks on phonemes.

    Returns
    -------
    audio
        ``[shape=(n_samples,)]`` float32.
    phonemes
        Phoneme symbols with ``"|"`` between words.
    """
    if not text.strip():
        raise ConfigError("text to speak is empty")
    if not 80 <= rate_wpm <= 450 or not 0 <= pitch <= 99:
        raise ConfigError(f"need 80 <= rate_wpm <= 450 and 0 <= pitch <= 99, got {rate_wpm}, {pitch}")
    exe = espeak_path()
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        cmd = [exe, "-v", voice, "-s", str(int(rate_wpm)), "-p", str(int(pitch)), "-w", str(wav),
               "--ipa" if ipa else "-x", "--sep=_", "--", text]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        if proc.returncode != 0 or not wav.is_file():
            raise StimulusError(f"espeak-ng failed for voice {voice!r} ({proc.stderr.strip() or proc.returncode}); "
                                "list voices with `espeak-ng --voices`")
        audio = load_audio(wav)
    samples = resample(audio.samples, orig_sr=audio.sample_rate, target_sr=sample_rate)
    phonemes = _phonemes(proc.stdout, keep_stress=keep_stress, ipa=ipa)
    if not phonemes:
        raise StimulusError(f"espeak-ng returned no phonemes for {text!r} with voice {voice!r}")
    return samples, phonemes


@functools.lru_cache(maxsize=1)
def espeak_voices() -> tuple[frozenset[str], frozenset[str]]:
    """espeak-ng's languages (codes, names and files) and voice variants, as it lists them."""
    exe = espeak_path()

    def listing(arg: str) -> set[str]:
        out = subprocess.run([exe, arg], capture_output=True, text=True, timeout=30, check=False).stdout
        names: set[str] = set()
        for line in out.splitlines()[1:]:
            cols = line.split()
            if len(cols) >= 5:
                names.update({cols[1].lower(), cols[3].lower(), cols[4].lower(), cols[4].rsplit("/", 1)[-1].lower()})
        return names

    return frozenset(listing("--voices")), frozenset(listing("--voices=variant"))


def check_voices(voices: tuple[str, ...]) -> None:
    """Refuse voices espeak-ng does not list (it would speak them with its default voice, silently)."""
    languages, variants = espeak_voices()
    bad = []
    for v in voices:
        lang, _, variant = v.partition("+")
        if lang.lower() not in languages or (variant and variant.lower() not in variants):
            bad.append(v)
    if bad:
        raise ConfigError(f"espeak-ng has no voice {', '.join(map(repr, bad))} (it would silently speak them with its "
                          "default voice); list voices with `espeak-ng --voices` and variants with "
                          "`espeak-ng --voices=variant`, e.g. en-us or en-gb+f3")


@dataclass
class SpeechSource:
    """``n_utterances`` synthetic utterances (a corpus source, ``kind="speech"``).

    Attributes
    ----------
    n_utterances
        Number of utterances.
    seed
        Corpus seed.
    voices
        espeak-ng voices to draw from.
    rate_range, pitch_range
        Speaking rate (wpm) and pitch (0-99) drawn uniformly (integers, inclusive).
    text
        ``"bundled"`` (:data:`SENTENCES`), ``"generated"`` (grammar), or ``"mixed"`` (either, 50/50).
    sample_rate
        Hz.
    ipa, keep_stress
        Phoneme alphabet and stress marks (see :func:`synthesize`).
    """

    n_utterances: int
    seed: int = 0
    voices: tuple[str, ...] = DEFAULT_VOICES
    rate_range: tuple[int, int] = (130, 210)
    pitch_range: tuple[int, int] = (25, 75)
    text: str = "mixed"
    sample_rate: int = 16000
    ipa: bool = False
    keep_stress: bool = False
    kind: str = "speech"

    def __post_init__(self) -> None:
        if self.text not in ("bundled", "generated", "mixed"):
            raise ConfigError(f"text must be bundled, generated or mixed, got {self.text!r}")
        if not self.voices:
            raise ConfigError("give at least one espeak-ng voice")
        if isinstance(self.n_utterances, bool) or not isinstance(self.n_utterances, int) or self.n_utterances < 1:
            raise ConfigError(f"a speech corpus needs n >= 1 utterances, got {self.n_utterances!r}")
        check_voices(tuple(self.voices))

    def __len__(self) -> int:
        return self.n_utterances

    def fingerprint(self) -> dict[str, Any]:
        version = subprocess.run([espeak_path(), "--version"], capture_output=True, text=True, check=False).stdout
        return {"type": "espeak_speech", "n": self.n_utterances, "seed": self.seed, "voices": list(self.voices),
                "rate_range": list(self.rate_range), "pitch_range": list(self.pitch_range), "text": self.text,
                "ipa": self.ipa, "keep_stress": self.keep_stress, "espeak": version.split("Data at")[0].strip()}

    def describe(self, index: int) -> str:
        return f"utterance {index} of seed {self.seed}"

    def make(self, index: int) -> Piece:
        rng = np.random.default_rng([int(self.seed), int(index)])
        mode = self.text if self.text != "mixed" else ("bundled" if rng.random() < 0.5 else "generated")
        sentence = SENTENCES[int(rng.integers(0, len(SENTENCES)))] if mode == "bundled" else generate_sentence(rng)
        voice = self.voices[int(rng.integers(0, len(self.voices)))]
        rate = int(rng.integers(self.rate_range[0], self.rate_range[1] + 1))
        pitch = int(rng.integers(self.pitch_range[0], self.pitch_range[1] + 1))
        audio, phonemes = synthesize(sentence, voice=voice, rate_wpm=rate, pitch=pitch, sample_rate=self.sample_rate,
                                     ipa=self.ipa, keep_stress=self.keep_stress)
        labels = {"kind": "speech", "text": sentence, "phonemes": phonemes,
                  "alphabet": "ipa" if self.ipa else "espeak-ascii", "duration_s": audio.size / self.sample_rate}
        meta = {"voice": voice, "rate_wpm": rate, "pitch": pitch, "text_source": mode}
        return Piece(id=f"speech-{self.seed}-{index:07d}", audio=audio, sample_rate=self.sample_rate,
                     labels=labels, meta=meta)
