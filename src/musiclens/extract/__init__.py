"""Layer-wise activations from any audio network (see :mod:`musiclens.extract.base`)."""

from musiclens.extract.base import EXTRACTORS, Activations, Extractor, layer_name, resolve_layers

__all__ = ["EXTRACTORS", "Activations", "Extractor", "layer_name", "resolve_layers"]
