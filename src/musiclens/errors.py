"""The musiclens exception hierarchy.

Every error musiclens raises on purpose derives from :class:`MusicLensError`, so a caller can
catch all of them with one ``except``.  Each message says what was wrong *and* how to fix it.

The subclasses also derive from the closest built-in exception (``ValueError``,
``FileNotFoundError``, ...) so code written against the standard library keeps working.
"""

from __future__ import annotations

__all__ = [
    "MusicLensError",
    "ConfigError",
    "RegistryError",
    "MissingDependencyError",
    "StimulusError",
    "AudioError",
    "DatasetError",
    "SoundFontError",
    "InstrumentRangeError",
    "ExtractionError",
    "CheckpointError",
    "AnalysisError",
    "InsufficientDataError",
    "TrainingError",
    "StoreError",
]


class MusicLensError(Exception):
    """Root of every error musiclens raises on purpose."""


class ConfigError(MusicLensError, ValueError):
    """A configuration value (CLI option, YAML key, function argument) is invalid."""


class RegistryError(MusicLensError, KeyError):
    """A name was looked up in, or added to, a :class:`~musiclens.registry.Registry` wrongly."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class MissingDependencyError(MusicLensError, ImportError):
    """An optional dependency (Python package or system library) is not installed."""


class StimulusError(MusicLensError, ValueError):
    """A stimulus set or a stimulus specification is invalid."""


class AudioError(MusicLensError, ValueError):
    """Audio is empty, corrupt, non-finite, or otherwise unusable."""


class DatasetError(MusicLensError, FileNotFoundError):
    """A dataset folder on disk is missing files or is not in the expected layout."""


class SoundFontError(MusicLensError, FileNotFoundError):
    """A SoundFont file is missing, unreadable, or lacks a requested preset."""


class InstrumentRangeError(StimulusError):
    """A note lies outside the playable range of an instrument."""


class ExtractionError(MusicLensError, RuntimeError):
    """Activations could not be extracted from a network."""


class CheckpointError(MusicLensError, ValueError):
    """A checkpoint is missing, unsafe to load, or does not match the architecture."""


class AnalysisError(MusicLensError, ValueError):
    """An analysis (RSA, probe, attention, SSM) received unusable input."""


class InsufficientDataError(AnalysisError):
    """Too few stimuli, classes, or examples for the requested analysis."""


class TrainingError(MusicLensError, RuntimeError):
    """Training could not start or continue."""


class StoreError(MusicLensError, RuntimeError):
    """An on-disk result store is corrupt, incomplete, or inconsistent with its inputs."""
