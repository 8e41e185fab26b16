"""The ``musiclens`` command line.

Each subcommand is a thin Typer wrapper over one public function; the wrappers live in
``musiclens.commands.<name>`` and register themselves on :data:`app` through ``register(app)``.
Heavy imports (torch, transformers) happen inside the commands, so ``musiclens --help`` is fast.
"""

from __future__ import annotations

import importlib
import logging

import typer

from musiclens import __version__
from musiclens.errors import MusicLensError

__all__ = ["app", "main"]

app = typer.Typer(
    name="musiclens",
    help="What does an audio neural network know about music, and which training makes it emerge?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: Command modules under ``musiclens.commands``; each defines ``register(app)``.
COMMAND_MODULES: tuple[str, ...] = ("stimuli", "run", "rsa", "extract", "report", "corpus", "attention", "ssm", "train", "probe",
                                     "benchmark")


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"musiclens {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More log output (-v info, -vv debug)."),
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True, help="Print the version."),
) -> None:
    """musiclens: stimuli -> audio -> extract -> analysis (RSA, probes, attention, SSM) -> report."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # Lightning logs banners and tips at INFO through its own handlers; keep them for -v
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(level)


for _name in COMMAND_MODULES:
    importlib.import_module(f"musiclens.commands.{_name}").register(app)


def main() -> None:
    """Entry point: run the CLI; a :class:`MusicLensError` prints its message and exits with 2."""
    try:
        app()
    except MusicLensError as err:
        typer.echo(f"error: {err}", err=True)
        raise SystemExit(2) from None
