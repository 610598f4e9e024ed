"""The `charrec` command line: a thin Typer layer over the library, one module per command group.

`app` is the Typer application; every command module exposes `register(app)`, and the modules
are wired below in one place, in the order `charrec --help` lists them. Commands parse options
into a config, call the library and hand results to `charrec.report`; torch and the heavy modules
are imported inside the commands, so `charrec --help` is instant.
"""

from __future__ import annotations

from typing import Annotated

import typer

from charrec import __version__
from charrec.cli import data, export, inspect, models, serve, sweep, train
from charrec.cli.common import Debug, Group, run_app, state

app = typer.Typer(
    name="charrec",
    help="Train, test and use neural networks (hand-written autograd) that recognise letters.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's plain help: rich's is slower to import for every --help
    cls=Group,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"charrec {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    debug: Debug = False,
) -> None:
    """charrec: recognise single English letters (A-Z, case-insensitive) in images."""
    state.debug = debug


for module in (train, models, export, serve, sweep, data, inspect):
    module.register(app)


def main() -> None:
    """The `charrec` program: Ctrl-C anywhere gives one line and exit 130; `| head` is quiet."""
    run_app(app)
