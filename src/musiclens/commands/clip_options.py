"""The options shared by the corpus-clip analysis commands (``musiclens attention``, ``musiclens ssm``).

Both commands take the same network (``--model``, ``--randomize``, ``--seed``, ``--device``,
``--trust-remote-code``, ``--option``), the same clips (``--corpus``, ``--clips``, ``--crop``,
``--start``) and the same output options (``--out``, ``--layers``, ``--network``, ``--keep``,
``--figures``).  :func:`clip_analysis_command` declares them once: it wraps a command body that
takes a :class:`ClipRun` plus its own options and gives Typer the full signature, in the order

``--model --corpus --out --clips --crop --start --layers`` <the body's options>
``--network --keep --randomize --seed --device --trust-remote-code --option --figures``.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

__all__ = ["ClipRun", "clip_analysis_command"]


@dataclass(frozen=True)
class ClipRun:
    """The shared options of one command call (see the module docstring)."""

    model: str
    corpus: Path
    out: Path
    clips: int
    crop: float | None
    start: float
    layers: str
    network: str | None
    keep: int
    randomize: bool
    seed: int
    device: str
    trust_remote_code: bool
    option: list[str]
    figures: bool

    def to_folder_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`~musiclens.attention.attention_to_folder` /
        :func:`~musiclens.ssm.ssm_to_folder` for these options (``--layers all`` -> None)."""
        from musiclens.commands.extract import _parse_options

        build = {"randomize": self.randomize, "seed": self.seed, "device": self.device,
                 "trust_remote_code": self.trust_remote_code, **_parse_options(self.option)}
        return {"model": self.model, "corpus": self.corpus, "out": self.out, "n_clips": self.clips,
                "crop_s": self.crop, "start_s": self.start, "figures": self.figures,
                "layers": None if self.layers == "all" else self.layers, "network": self.network, "keep": self.keep,
                "build_options": build}


def _param(name: str, annotation: Any, option: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation)


def _head(model_help: str, out_help: str, layers_help: str) -> list[inspect.Parameter]:
    return [
        _param("model", str, typer.Option(..., "--model", "-m", help=model_help)),
        _param("corpus", Path, typer.Option(..., "--corpus", "-c", help="Music corpus folder (built with `musiclens corpus`).")),
        _param("out", Path, typer.Option(..., "--out", "-o", help=out_help)),
        _param("clips", int, typer.Option(4, "--clips", help="Number of corpus pieces to analyse (in corpus order).")),
        _param("crop", float, typer.Option(None, "--crop", help="Clip length in s (default: whole pieces).")),
        _param("start", float, typer.Option(0.0, "--start", help="Clip start within each piece, s.")),
        _param("layers", str, typer.Option("all", "--layers", help=layers_help)),
    ]


def _tail(keep_help: str) -> list[inspect.Parameter]:
    return [
        _param("network", str, typer.Option(None, "--network", help="Network name in the table (default: the extractor's).")),
        _param("keep", int, typer.Option(1, "--keep", help=keep_help)),
        _param("randomize", bool, typer.Option(False, "--randomize", help="Same architecture, random weights (control).")),
        _param("seed", int, typer.Option(0, "--seed", help="Seed of --randomize.")),
        _param("device", str, typer.Option("cpu", "--device", help="cpu, cuda or auto.")),
        _param("trust_remote_code", bool, typer.Option(False, "--trust-remote-code",
                                                       help="Allow code from the checkpoint directory to run (off by default).")),
        _param("option", list[str], typer.Option([], "--option", help="Extra builder option KEY=VALUE (JSON value), repeatable.")),
        _param("figures", bool, typer.Option(True, "--figures/--no-figures", help="Write PNG figures.")),
    ]


def clip_analysis_command(
    *, model_help: str, out_help: str, layers_help: str, keep_help: str
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Decorate a command body ``body(run: ClipRun, **own_options)`` into a Typer command.

    Parameters
    ----------
    model_help, out_help, layers_help, keep_help
        Help texts of ``--model``, ``--out``, ``--layers`` and ``--keep`` (they name what the
        command needs and writes).

    Returns
    -------
    callable
        A decorator; the command it returns takes the shared options and the body's own
        (``typer.Option`` defaults, declared after ``run``) and calls the body with a
        :class:`ClipRun`.  Its name and docstring are the body's.
    """
    def decorate(body: Callable[..., None]) -> Callable[..., None]:
        hints = typing.get_type_hints(body)  # the body's annotations are strings (PEP 563)
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=hints.get(p.name, Any))
               for p in inspect.signature(body).parameters.values() if p.name != "run"]
        params = _head(model_help, out_help, layers_help) + own + _tail(keep_help)
        shared = [p.name for p in params if p.name not in {q.name for q in own}]

        @functools.wraps(body)
        def command(**kwargs: Any) -> None:
            run = ClipRun(**{name: kwargs.pop(name) for name in shared})
            body(run, **kwargs)

        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        del command.__wrapped__  # Typer must read the signature above, not the body's
        return command

    return decorate

