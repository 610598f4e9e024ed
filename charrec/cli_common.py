"""Pieces every CLI module shares: the `--debug` switch and turning user errors into one line.

A command decorated with `@friendly_errors` prints a `CharrecError` as one red line on stderr and
exits 1 (Ctrl-C exits 130), unless `--debug` was given (before or after the command name), in
which case the full traceback is shown.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from typer.core import TyperCommand, TyperGroup

from charrec.errors import CharrecError
from charrec.report import error_console

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130

Debug = Annotated[bool, typer.Option("--debug", help="Show full tracebacks instead of one-line errors.")]


def _hide_flag_types(params: list[Any]) -> list[Any]:
    """Typer shows a flag's type (`<bool>`) in the help as if it took a value; an empty metavar
    hides it (flags take no value). Applied to every option, `--help` included."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


class Command(TyperCommand):
    """A charrec command: help without `<bool>` after flags (`@app.command(cls=Command)`)."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _hide_flag_types(super().get_params(ctx))


class Group(TyperGroup):
    """The command groups' counterpart of `Command` (`typer.Typer(cls=Group)`)."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _hide_flag_types(super().get_params(ctx))


class _State:
    debug = False


state = _State()

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = EXIT_ERROR) -> typer.Exit:
    """Print one red error line; return the Exit to raise."""
    error_console.print(f"[red]Error:[/red] {message}", soft_wrap=True, markup=True,
                        emoji=False)
    return typer.Exit(code)


def friendly_errors(command: F) -> F:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = bool(kwargs.get("debug")) or state.debug
        try:
            return command(*args, **kwargs)
        except CharrecError as error:
            if debug:
                raise
            raise fail(_escape(str(error))) from None
        except KeyboardInterrupt:
            if debug:
                raise
            raise fail("interrupted", EXIT_INTERRUPTED) from None

    return wrapper  # type: ignore[return-value]


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(" ".join(text.split("\n")))


def print_json(value: Any) -> None:
    """Machine-readable output: plain JSON on stdout, no colours or wrapping."""
    sys.stdout.write(json.dumps(value, indent=2) + "\n")
    sys.stdout.flush()
