"""Learning bars: did a training run learn its task?

A trained condition speaks for its training regime only if it learned what it was trained on.
A *bar* names one validation metric and the value it must reach, either absolutely
(transcription frame F1 >= 0.5; phoneme error rate <= 0.5) or as a gain over the same network
at initialisation (``relative_to: init``: the random-weights control on its own objective, e.g.
wav2vec 2.0's masked-frame contrastive accuracy at least 0.1 above its value before training).

Every objective may declare a default (``Objective.default_bar``); a training config's ``bar``
section overrides it key by key.  The engine evaluates the bar at the end of a run against the
last validation metrics and the validation metrics at initialisation (``val_at_init.json``,
computed once before the first step on the same validation items) and records the verdict in
the run's ``manifest.json`` under ``bar``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from musiclens.errors import ConfigError

__all__ = ["Bar", "resolve_bar", "evaluate_bar", "BAR_KEYS"]

#: Keys of a config's ``bar`` section (``None``: take the objective's default).
BAR_KEYS: dict[str, Any] = {"metric": None, "threshold": None, "direction": None, "relative_to": None,
                            "relative": None}


@dataclass(frozen=True)
class Bar:
    """One learning criterion.

    Attributes
    ----------
    metric
        Logged validation metric, e.g. ``"val/frame_f1"``.
    threshold
        Required value (absolute) or required gain over initialisation (``relative_to="init"``).
    direction
        ``"higher"`` (larger is better) or ``"lower"``.
    relative_to
        ``None`` (absolute bar) or ``"init"`` (gain over the validation value before training).
    relative
        With ``relative_to="init"``: the gain is divided by ``|value at init|`` (a fraction).
    """

    metric: str
    threshold: float
    direction: str = "higher"
    relative_to: str | None = None
    relative: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.metric, str) or not self.metric:
            raise ConfigError(f"bar.metric must name a logged validation metric (e.g. val/frame_f1), got {self.metric!r}")
        if self.direction not in ("higher", "lower"):
            raise ConfigError(f"bar.direction must be 'higher' or 'lower', got {self.direction!r}")
        if self.relative_to not in (None, "init"):
            raise ConfigError(f"bar.relative_to must be null (absolute bar) or 'init', got {self.relative_to!r}")
        if not isinstance(self.threshold, int | float) or isinstance(self.threshold, bool) \
                or not math.isfinite(float(self.threshold)):
            raise ConfigError(f"bar.threshold must be a finite number, got {self.threshold!r}")
        if self.relative and self.relative_to != "init":
            raise ConfigError("bar.relative: true needs bar.relative_to: init")

    def describe(self) -> str:
        """E.g. ``val/frame_f1 >= 0.5`` or ``val/top1 - init >= 0.2``."""
        name = self.metric
        if self.relative_to == "init":
            gain = f"({name} - init)" if self.direction == "higher" else f"(init - {name})"
            if self.relative:
                gain += " / |init|"
            return f"{gain} >= {self.threshold:g}"
        return f"{name} {'>=' if self.direction == 'higher' else '<='} {self.threshold:g}"


def resolve_bar(config_bar: Mapping[str, Any] | None, default: Mapping[str, Any] | None) -> Bar | None:
    """The bar of a run: the objective's ``default`` with the config's non-null keys over it.

    Returns ``None`` when neither names a metric (the objective has no natural bar).
    """
    merged = {**BAR_KEYS, **dict(default or {})}
    for key, value in dict(config_bar or {}).items():
        if key not in BAR_KEYS:
            raise ConfigError(f"unknown key {key!r} in section 'bar'; valid keys: {', '.join(BAR_KEYS)}")
        if value is not None:
            merged[key] = value
    if merged["metric"] is None:
        return None
    if merged["threshold"] is None:
        raise ConfigError(f"bar on {merged['metric']!r} needs a threshold")
    return Bar(metric=str(merged["metric"]), threshold=float(merged["threshold"]),
               direction=str(merged["direction"] or "higher"), relative_to=merged["relative_to"],
               relative=bool(merged["relative"]))


def evaluate_bar(bar: Bar, metrics: Mapping[str, float], at_init: Mapping[str, float] | None) -> dict[str, Any]:
    """The verdict of ``bar`` given the final validation ``metrics`` and those ``at_init``.

    Returns
    -------
    dict
        The bar's fields plus ``value``, ``at_init`` (or ``None``), ``gain`` (``None`` for an
        absolute bar), ``passed`` (bool) and ``reason`` when it could not be evaluated (the
        metric was never logged): then ``passed`` is False.
    """
    out: dict[str, Any] = {**asdict(bar), "rule": bar.describe(), "value": None, "at_init": None, "gain": None,
                           "passed": False, "reason": None}
    value = metrics.get(bar.metric)
    init = (at_init or {}).get(bar.metric)
    out["at_init"] = None if init is None else float(init)
    if value is None or not math.isfinite(float(value)):
        out["reason"] = f"no finite validation {bar.metric} was logged (is data.val set?)"
        return out
    value = float(value)
    out["value"] = value
    sign = 1.0 if bar.direction == "higher" else -1.0
    if bar.relative_to == "init":
        if init is None or not math.isfinite(float(init)):
            out["reason"] = f"no {bar.metric} at initialisation to compare with"
            return out
        gain = sign * (value - float(init))
        if bar.relative:
            gain = gain / abs(float(init)) if float(init) != 0 else math.inf * (1 if gain > 0 else -1)
        out["gain"] = gain
        out["passed"] = bool(gain >= bar.threshold)
    else:
        out["passed"] = bool(sign * (value - bar.threshold) >= 0)
    return out
