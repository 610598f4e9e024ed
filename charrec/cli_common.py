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

from charrec.errors import CharrecError
from charrec.report import error_console

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130

Debug = Annotated[bool, typer.Option("--debug", help="Show full tracebacks instead of one-line errors.")]


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
