"""musiclens: what does an audio neural network know about music?

Data flows one way: ``stimuli`` -> ``audio`` -> ``extract`` -> analysis (``rsa``, probes,
attention, SSMs) -> ``report``, with ``train`` beside extraction.  ``musiclens.stimuli``,
``musiclens.rsa`` and ``musiclens.report`` import without torch.
"""

from __future__ import annotations

import logging

from musiclens.errors import MusicLensError
from musiclens.registry import Registry

__version__ = "0.1.0"
__all__ = ["MusicLensError", "Registry", "__version__"]

logging.getLogger(__name__).addHandler(logging.NullHandler())
