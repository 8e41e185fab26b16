"""Physical checks of rendered notes: is the fundamental where the label says?

:func:`fundamental_check` measures, on a long zero-padded FFT of the sustained part of a note,

- the frequency of the strongest spectral peak within +-50 cents of the labelled pitch
  (parabolic interpolation), as a deviation in cents;
- that peak's level relative to the strongest peak of the whole spectrum (dB): a real
  fundamental is not buried;
- the strongest level within +-50 cents of half the labelled frequency, relative to the
  fundamental (dB): a strong sub-octave component means the note actually sounds an octave
  lower (e.g. an organ's 16' stop), and the label would be wrong.

Used by the tests (every note of the default grid) and by users vetting their own SoundFonts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from musiclens.errors import AudioError
from musiclens.stimuli.stimulus_set import midi_to_hz

__all__ = ["FundamentalCheck", "fundamental_check"]


@dataclass(frozen=True)
class FundamentalCheck:
    """Result of :func:`fundamental_check` (see the module docstring)."""

    deviation_cents: float
    fundamental_db: float
    subharmonic_db: float

    def ok(self, *, tolerance_cents: float = 25.0, min_fundamental_db: float = -40.0,
           max_subharmonic_db: float = -12.0) -> bool:
        """Whether the note sounds at its label within the given tolerances."""
        return (abs(self.deviation_cents) <= tolerance_cents and self.fundamental_db >= min_fundamental_db
                and self.subharmonic_db <= max_subharmonic_db)


def _band_peak(mag: np.ndarray, freqs: np.ndarray, center: float, cents: float) -> tuple[float, float]:
    lo, hi = center * 2 ** (-cents / 1200), center * 2 ** (cents / 1200)
    idx = np.flatnonzero((freqs >= lo) & (freqs <= hi))
    if idx.size == 0:
        return center, 0.0
    k = int(idx[np.argmax(mag[idx])])
    if 0 < k < mag.size - 1:
        a, b, c = np.log(mag[k - 1] + 1e-30), np.log(mag[k] + 1e-30), np.log(mag[k + 1] + 1e-30)
        denom = a - 2 * b + c
        shift = 0.5 * (a - c) / denom if denom != 0 else 0.0
    else:
        shift = 0.0
    df = freqs[1] - freqs[0]
    return float(freqs[k] + shift * df), float(mag[k])


def fundamental_check(
    audio: np.ndarray, *, sample_rate: int, midi: float, start_s: float = 0.05, stop_s: float = 1.0,
) -> FundamentalCheck:
    """Measure where the fundamental of a note lies relative to its MIDI label.

    Parameters
    ----------
    audio
        Mono note ``[shape=(n_samples,)]``.
    sample_rate
        Hz.
    midi
        Labelled pitch.
    start_s, stop_s
        Analysed segment (the sustained part).
    """
    seg = np.asarray(audio, dtype=np.float64)[int(start_s * sample_rate): int(stop_s * sample_rate)]
    if seg.size < 256 or not np.any(seg):
        raise AudioError("the analysed segment is empty or silent; render a longer or louder note")
    n_fft = 1 << 17
    while n_fft < 4 * seg.size:
        n_fft <<= 1
    mag = np.abs(np.fft.rfft(seg * np.hanning(seg.size), n=n_fft))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    f_exp = float(midi_to_hz(midi))
    f_peak, m_peak = _band_peak(mag, freqs, f_exp, 50.0)
    _, m_sub = _band_peak(mag, freqs, f_exp / 2.0, 50.0)
    top = float(mag.max())
    return FundamentalCheck(
        deviation_cents=float(1200 * np.log2(f_peak / f_exp)),
        fundamental_db=float(20 * np.log10(max(m_peak, 1e-30) / top)),
        subharmonic_db=float(20 * np.log10(max(m_sub, 1e-30) / max(m_peak, 1e-30))),
    )
