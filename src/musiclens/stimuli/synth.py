"""Pure-NumPy note synthesis: additive harmonic tones, pure tones and Shepard tones.

These need no SoundFont and no compiled library, so they always work; they also give analytic
stimuli for tests:

- :func:`pure_tone` — one sinusoid at the note's fundamental: pitch height without timbre.
- :func:`shepard_tone` — octave-spaced partials under a fixed log-frequency bell: chroma without
  a well-defined height (notes an octave apart are nearly identical).
- :func:`additive_note` — a harmonic (optionally inharmonic, ``f_k = k f0 sqrt(1 + B k^2)``)
  spectrum with a spectral slope, odd/even balance, per-partial decay and an ADSR envelope.

All functions return mono float32 ``[shape=(round(duration_s * sample_rate),)]``; the note is
held for ``hold_s`` and then released (as NSynth notes: 3 s held, 1 s release).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from musiclens.errors import ConfigError
from musiclens.registry import Registry
from musiclens.stimuli.stimulus_set import midi_to_hz

__all__ = [
    "AdditiveTimbre",
    "TIMBRES",
    "adsr_envelope",
    "additive_note",
    "pure_tone",
    "shepard_tone",
    "random_timbres",
]


def _check_times(duration_s: float, hold_s: float, sample_rate: int) -> int:
    if sample_rate <= 0:
        raise ConfigError(f"sample_rate must be positive, got {sample_rate}")
    if duration_s <= 0 or not 0 < hold_s <= duration_s:
        raise ConfigError(
            f"need 0 < hold_s <= duration_s, got hold_s={hold_s}, duration_s={duration_s}"
        )
    return int(round(duration_s * sample_rate))


def adsr_envelope(
    *,
    n_samples: int,
    sample_rate: int,
    hold_s: float,
    attack_s: float = 0.01,
    decay_s: float = 0.1,
    sustain: float = 0.8,
    release_s: float = 0.3,
) -> np.ndarray:
    """Attack-decay-sustain-release envelope ``[shape=(n_samples,)]`` in [0, 1].

    The note-off happens at ``hold_s``; the release then decays exponentially (to -60 dB after
    ``release_s``) from whatever level the envelope had reached.
    """
    t = np.arange(n_samples) / sample_rate
    attack_s = max(attack_s, 1.0 / sample_rate)
    env = np.where(
        t < attack_s,
        t / attack_s,
        sustain + (1.0 - sustain) * np.exp(-(t - attack_s) / max(decay_s, 1e-6) * 3.0),
    )
    level_at_off = float(np.interp(hold_s, t, env)) if n_samples else 0.0
    after = t >= hold_s
    env[after] = level_at_off * np.exp(-(t[after] - hold_s) * (np.log(1000.0) / max(release_s, 1e-6)))
    return env


def _fade(n_samples: int, sample_rate: int, fade_s: float = 0.01) -> np.ndarray:
    n = min(int(fade_s * sample_rate), n_samples // 2)
    ramp = np.ones(n_samples)
    if n > 0:
        w = 0.5 - 0.5 * np.cos(np.pi * np.arange(n) / n)
        ramp[:n] = w
        ramp[-n:] = w[::-1]
    return ramp


def pure_tone(
    *, midi: float, duration_s: float = 4.0, hold_s: float = 3.0, sample_rate: int = 16000,
    amplitude: float = 0.5, release_s: float = 0.3,
) -> np.ndarray:
    """A sinusoid at the frequency of ``midi`` with 10 ms raised-cosine onset and an ADSR release."""
    n = _check_times(duration_s, hold_s, sample_rate)
    f0 = float(midi_to_hz(midi))
    t = np.arange(n) / sample_rate
    env = adsr_envelope(n_samples=n, sample_rate=sample_rate, hold_s=hold_s, attack_s=0.01,
                        decay_s=0.05, sustain=1.0, release_s=release_s)
    return (amplitude * env * _fade(n, sample_rate) * np.sin(2 * np.pi * f0 * t)).astype(np.float32)


def shepard_tone(
    *, midi: float, duration_s: float = 4.0, hold_s: float = 3.0, sample_rate: int = 16000,
    amplitude: float = 0.5, center_hz: float = 523.25, sigma_octaves: float = 1.0,
    f_min: float = 20.0, release_s: float = 0.3,
) -> np.ndarray:
    """A Shepard tone: partials at ``f0 * 2**k`` (all octaves in [f_min, Nyquist)) weighted by a
    Gaussian over log2 frequency centred at ``center_hz`` with width ``sigma_octaves``.

    Its pitch class is that of ``midi``; notes an octave apart have (almost) the same spectrum.
    """
    n = _check_times(duration_s, hold_s, sample_rate)
    f0 = float(midi_to_hz(midi))
    nyq = sample_rate / 2.0
    base = f0
    while base / 2.0 >= f_min:
        base /= 2.0
    freqs = []
    f = base
    while f < nyq * 0.95:
        freqs.append(f)
        f *= 2.0
    freqs_a = np.array(freqs)
    weights = np.exp(-0.5 * (np.log2(freqs_a / center_hz) / sigma_octaves) ** 2)
    t = np.arange(n) / sample_rate
    sig = (weights[:, None] * np.sin(2 * np.pi * freqs_a[:, None] * t[None, :])).sum(0)
    sig /= max(weights.sum(), 1e-12)
    env = adsr_envelope(n_samples=n, sample_rate=sample_rate, hold_s=hold_s, attack_s=0.01,
                        decay_s=0.05, sustain=1.0, release_s=release_s)
    return (amplitude * env * _fade(n, sample_rate) * sig).astype(np.float32)


@dataclass(frozen=True)
class AdditiveTimbre:
    """Parameters of an additive harmonic instrument.

    Attributes
    ----------
    family
        Study family recorded in metadata.
    n_partials
        Maximum number of partials (those at or above Nyquist are dropped).
    slope_db_per_octave
        Spectral tilt: partial ``k`` has gain ``slope * log2(k)`` dB.
    odd_even
        Gain of even partials relative to odd ones (0 = clarinet-like, 1 = neutral).
    inharmonicity
        ``B`` in ``f_k = k f0 sqrt(1 + B k^2)`` (piano-like strings: ~1e-4).
    partial_decay_s
        Time constant of the extra decay of upper partials (``None`` = none): partial ``k``
        decays as ``exp(-t k / partial_decay_s)`` — plucked/struck timbres.
    attack_s, decay_s, sustain, release_s
        ADSR envelope.
    vibrato_cents, vibrato_hz
        Sinusoidal frequency modulation depth and rate (0 = none).
    """

    family: str = "synth"
    n_partials: int = 20
    slope_db_per_octave: float = -6.0
    odd_even: float = 1.0
    inharmonicity: float = 0.0
    partial_decay_s: float | None = None
    attack_s: float = 0.02
    decay_s: float = 0.2
    sustain: float = 0.7
    release_s: float = 0.3
    vibrato_cents: float = 0.0
    vibrato_hz: float = 5.0


#: Named additive timbres; users register their own ``AdditiveTimbre`` by name.
TIMBRES: Registry[AdditiveTimbre] = Registry("additive timbre")
TIMBRES.register("additive_keyboard", AdditiveTimbre(
    family="keyboard", n_partials=30, slope_db_per_octave=-9.0, inharmonicity=2e-4,
    partial_decay_s=1.5, attack_s=0.005, decay_s=1.0, sustain=0.3, release_s=0.4),
    help="struck-string keyboard: steep tilt, slight inharmonicity, decaying partials")
TIMBRES.register("additive_guitar", AdditiveTimbre(
    family="guitar", n_partials=25, slope_db_per_octave=-7.0, inharmonicity=5e-5,
    partial_decay_s=0.8, attack_s=0.003, decay_s=0.6, sustain=0.2, release_s=0.2),
    help="plucked string: fast attack, strong decay of upper partials")
TIMBRES.register("additive_flute", AdditiveTimbre(
    family="flute", n_partials=8, slope_db_per_octave=-12.0, odd_even=0.6,
    attack_s=0.06, decay_s=0.1, sustain=0.9, release_s=0.15, vibrato_cents=12.0, vibrato_hz=5.0),
    help="flute: few partials, breathy odd emphasis, gentle vibrato")
TIMBRES.register("additive_clarinet", AdditiveTimbre(
    family="reed", n_partials=20, slope_db_per_octave=-4.0, odd_even=0.1,
    attack_s=0.03, decay_s=0.1, sustain=0.9, release_s=0.1),
    help="clarinet-like: odd partials only")
TIMBRES.register("additive_brass", AdditiveTimbre(
    family="brass", n_partials=30, slope_db_per_octave=-3.0, attack_s=0.05, decay_s=0.2,
    sustain=0.8, release_s=0.15),
    help="bright brass-like spectrum")
TIMBRES.register("additive_organ", AdditiveTimbre(
    family="organ", n_partials=12, slope_db_per_octave=-5.0, attack_s=0.01, decay_s=0.05,
    sustain=1.0, release_s=0.05),
    help="steady organ-like tone")


def random_timbres(n: int, *, seed: int, family: str = "synth") -> list[AdditiveTimbre]:
    """``n`` additive timbres with random tilt, odd/even balance, inharmonicity and envelope."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        out.append(AdditiveTimbre(
            family=family,
            n_partials=int(rng.integers(6, 30)),
            slope_db_per_octave=float(rng.uniform(-12, -2)),
            odd_even=float(rng.uniform(0.1, 1.0)),
            inharmonicity=float(rng.choice([0.0, rng.uniform(0, 3e-4)])),
            partial_decay_s=float(rng.uniform(0.5, 3.0)) if rng.random() < 0.5 else None,
            attack_s=float(rng.uniform(0.003, 0.08)),
            decay_s=float(rng.uniform(0.05, 1.0)),
            sustain=float(rng.uniform(0.2, 1.0)),
            release_s=float(rng.uniform(0.05, 0.5)),
        ))
    return out


def additive_note(
    timbre: AdditiveTimbre,
    *,
    midi: float,
    velocity: int = 100,
    duration_s: float = 4.0,
    hold_s: float = 3.0,
    sample_rate: int = 16000,
    seed: int = 0,
) -> np.ndarray:
    """Render one note of an additive timbre.

    Parameters
    ----------
    timbre
        The instrument.
    midi
        Pitch (fractional MIDI allowed).
    velocity
        1–127; sets the peak amplitude (``0.5 * velocity / 127``) and brightness (softer notes
        lose 3 dB/octave of upper partials at velocity 1).
    seed
        Seeds the partials' start phases.
    """
    if not 1 <= int(velocity) <= 127:
        raise ConfigError(f"velocity must be 1-127, got {velocity}")
    n = _check_times(duration_s, hold_s, sample_rate)
    f0 = float(midi_to_hz(midi))
    nyq = sample_rate / 2.0
    k = np.arange(1, timbre.n_partials + 1, dtype=float)
    fk = k * f0 * np.sqrt(1.0 + timbre.inharmonicity * k**2)
    keep = fk < nyq * 0.98
    if not keep.any():
        raise ConfigError(f"MIDI {midi} ({f0:.1f} Hz) is above the Nyquist frequency of {sample_rate} Hz")
    k, fk = k[keep], fk[keep]
    softness = 3.0 * (1.0 - velocity / 127.0)
    gain_db = (timbre.slope_db_per_octave - softness) * np.log2(k)
    gains = 10.0 ** (gain_db / 20.0)
    gains[(k % 2 == 0)] *= timbre.odd_even
    rng = np.random.default_rng(seed)
    phases = rng.uniform(0, 2 * np.pi, size=k.size)
    t = np.arange(n) / sample_rate
    if timbre.vibrato_cents > 0:
        dev = 2.0 ** (timbre.vibrato_cents / 1200.0 * np.sin(2 * np.pi * timbre.vibrato_hz * t)) - 1.0
        phase_mod = 2 * np.pi * np.cumsum(dev) / sample_rate
    else:
        phase_mod = np.zeros(n)
    sig = np.zeros(n)
    for g, f, ph, kk in zip(gains, fk, phases, k):
        partial = g * np.sin(2 * np.pi * f * t + f * phase_mod + ph)
        if timbre.partial_decay_s is not None:
            partial *= np.exp(-t * (kk - 1.0) / timbre.partial_decay_s)
        sig += partial
    sig /= max(np.abs(sig).max(), 1e-12)
    env = adsr_envelope(n_samples=n, sample_rate=sample_rate, hold_s=hold_s, attack_s=timbre.attack_s,
                        decay_s=timbre.decay_s, sustain=timbre.sustain, release_s=timbre.release_s)
    amp = 0.5 * velocity / 127.0
    return (amp * env * _fade(n, sample_rate, 0.003) * sig).astype(np.float32)
