"""Training: backbones (:mod:`.models`), objectives (:mod:`.objectives`), the Lightning engine.

See :mod:`musiclens.train.base` for the contract everything meets at.
"""
