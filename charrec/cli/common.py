"""Pieces every CLI module shares: the `--debug` switch and turning user errors into one line.

A command decorated with `@friendly_errors` prints a `CharrecError` as one red line on stderr and
exits with its code (2 for usage errors, 1 otherwise; an interruption exits 128 + the signal:
Ctrl-C 130, SIGTERM 143, SIGHUP 129), unless `--debug` was given (before or after the command
name), in which case the full traceback is shown. SIGTERM and SIGHUP (how batch schedulers and a
closed terminal stop a job) act like Ctrl-C: `run_app` makes them raise KeyboardInterrupt, so
every command stops through the same code, keeps what it finished and says what was
interrupted. A reader that closes our output early (`| head -1`) is not an error: the rest of
the output is dropped and the exit is quiet. `run_app` is the process's entry: it also covers
Ctrl-C outside any command (option parsing, shutdown).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Annotated, Any, TypeVar

import typer
from typer.core import TyperCommand, TyperGroup

from charrec.cli.params import fast_params
from charrec.errors import CharrecError, CharrecWarning, WriteError
from charrec.report import console, error_console

EXIT_ERROR = 1
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130; SIGTERM and SIGHUP give 143 and 129
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP")
                     if hasattr(signal, name))  # act like Ctrl-C (not on Windows)

Debug = Annotated[bool, typer.Option("--debug", help="Show full tracebacks instead of one-line errors.")]


def _hide_flag_types(params: list[Any]) -> list[Any]:
    """Typer shows a flag's type (`<bool>`) in the help as if it took a value; an empty metavar
    hides it (flags take no value). Applied to every option, `--help` included. An argument with
    a metavar (`IMAGE...`) is named by it, without Typer's type (`<list[Path]>`) after it."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
        elif getattr(param, "param_type_name", "") == "argument" and param.metavar:
            param.display_type_rich = lambda ctx: None
    return params


class Command(TyperCommand):
    """A charrec command (`@app.command(cls=Command)`): help without `<bool>` after flags, and
    option values converted without pydantic (`charrec.cli.params`)."""

    def get_params(self, ctx: Any) -> list[Any]:
        return fast_params(_hide_flag_types(super().get_params(ctx)))


class Group(TyperGroup):
    """The command groups' counterpart of `Command` (`typer.Typer(cls=Group)`)."""

    def get_params(self, ctx: Any) -> list[Any]:
        return fast_params(_hide_flag_types(super().get_params(ctx)))


class _State:
    debug = False
    reported = False  # an error line was printed
    dropped_interrupt = False  # a Ctrl-C landed in a finaliser, where Python drops it
    interrupted = False  # a Ctrl-C arrived (run_app's SIGINT handler saw it)
    signal: int | None = None  # the signal that interrupted: SIGINT, SIGTERM or SIGHUP


state = _State()

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def fail(message: str, code: int = EXIT_ERROR) -> typer.Exit:
    """Print one red error line; return the Exit to raise."""
    error_console.print(f"[red]Error:[/red] {message}", soft_wrap=True, markup=True,
                        emoji=False)
    state.reported = True
    return typer.Exit(code)


def interrupt_code() -> int:
    """The exit code of an interruption: 128 + the signal (130 for Ctrl-C)."""
    return 128 + (state.signal or signal.SIGINT)


def interrupted(detail: str = "") -> typer.Exit:
    """fail() for an interruption: "interrupted by Ctrl-C" (or SIGTERM, SIGHUP) + `detail`,
    e.g. "; saved ...", with the exit code `interrupt_code()`."""
    name = "Ctrl-C" if state.signal in (None, signal.SIGINT) else \
        signal.Signals(state.signal).name
    return fail(f"interrupted by {name}{detail}", interrupt_code())


def friendly_errors(command: F) -> F:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = bool(kwargs.get("debug")) or state.debug
        try:
            with warnings_as_lines():
                return command(*args, **kwargs)
        except CharrecError as error:
            if debug:
                raise
            raise fail(_escape(str(error)), error.exit_code) from None
        except KeyboardInterrupt:
            if debug:
                raise
            raise interrupted() from None
        except BrokenPipeError:
            _drop_stdout()
            raise typer.Exit(0) from None
        except typer.Exit:  # fail(...) already said what happened
            raise
        except Exception:
            # after a Ctrl-C that Python dropped inside a finaliser, that finaliser's work is
            # half done and a library may fail on it later: that failure is the interruption
            # A Ctrl-C inside a C extension's import (matplotlib's Agg backend, say) surfaces
            # as an ImportError("initialization failed") rather than KeyboardInterrupt
            if (state.dropped_interrupt or state.interrupted) and not debug:
                raise interrupted() from None
            raise

    return wrapper  # type: ignore[return-value]


def warn(message: str) -> None:
    """One `Warning:` line on stderr: something optional failed and the command goes on."""
    plain_line(" ".join(message.split("\n")), err=True, warning=True)


def write_extra(write: Callable[[], T]) -> T | None:
    """`write()`, or None after one warning line if the disk refused it (`WriteError`): plots
    and sheets are extras, and a full disk or a read-only folder never costs the result."""
    try:
        return write()
    except WriteError as error:
        warn(str(error))
        return None


@contextlib.contextmanager
def warnings_as_lines() -> Iterator[None]:
    """Inside, a `CharrecWarning` from the library (the font cache could not be written, say)
    is one `Warning:` line, not Python's two-line report; other warnings are shown as usual."""
    with warnings.catch_warnings():
        previous = warnings.showwarning

        def show(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
            if issubclass(category, CharrecWarning):
                warn(str(message))
            else:
                previous(message, category, *args, **kwargs)

        warnings.showwarning = show
        yield


def _drop_stdout() -> None:
    """Whoever read our stdout has gone: send the rest (and the final flush) nowhere."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file (e.g. under CliRunner)
        pass


def run_app(app: Callable[[], Any]) -> None:
    """Run the Typer app as the process's main program and exit with its code.

    Ctrl-C outside a command (Typer turns it into a silent exit 130) still gets its one line,
    and so does one that Python dropped inside a finaliser; SIGTERM and SIGHUP (unless they are
    ignored, as under nohup) act like Ctrl-C; once the app has returned, further interruptions
    are ignored (we are exiting anyway) so nothing prints a traceback during shutdown; a closed
    stdout at the final flush is not an error.
    """
    code: Any = 0
    previous_hook = sys.unraisablehook
    sys.unraisablehook = functools.partial(_note_dropped_interrupt, previous_hook)
    state.dropped_interrupt = state.interrupted = False
    state.signal = None
    caught = [signum for signum in STOP_SIGNALS if signal.getsignal(signum) == signal.SIG_DFL]
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        caught.append(signal.SIGINT)
    for signum in caught:
        signal.signal(signum, _note_interrupt)
    try:
        try:
            app()
        except SystemExit as exit_:
            code = exit_.code
        except KeyboardInterrupt:  # between Typer's own handler and here
            code = EXIT_INTERRUPTED
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    for signum in {signal.SIGINT, *caught}:
        signal.signal(signum, signal.SIG_IGN)
    sys.unraisablehook = previous_hook
    if code in (0, None) and state.dropped_interrupt:
        code = EXIT_INTERRUPTED
    if code == EXIT_ERROR and console.made and console.quiet and not state.reported:
        code = 0  # rich met a closed stdout: it silenced itself and exited 1; not an error
    if code == EXIT_INTERRUPTED:  # Typer's own, or ours above: say which signal it was
        code = interrupt_code()
    if code == interrupt_code() and not state.reported:
        interrupted()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _drop_stdout()
    sys.exit(code)


def _note_interrupt(signum: int, frame: Any) -> None:
    """Python's own Ctrl-C handler (for SIGTERM and SIGHUP too), remembering that it ran and
    which signal it was: whatever error the interrupted code then raises (a failed C-extension
    import, say) is reported as the interruption, and the exit code says which."""
    state.interrupted = True
    if state.signal is None:
        state.signal = signum
    signal.default_int_handler(signum, frame)


def _note_dropped_interrupt(previous_hook: Callable[[Any], None], unraisable: Any) -> None:
    """A Ctrl-C that lands while Python runs a finaliser (a `__del__`, a weakref callback) is
    dropped by Python, which prints "Exception ignored ... KeyboardInterrupt" and a traceback.
    Print nothing and remember it: the command then ends with exit 130 (sending the signal
    again from here would only raise it inside this hook)."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        state.dropped_interrupt = True
    else:
        previous_hook(unraisable)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(" ".join(text.split("\n")))


def import_torch() -> None:
    """Import torch first thing in a command, then move every object made so far (torch's
    million-odd module objects) out of the cyclic garbage collector's reach (`gc.freeze`).
    They live as long as the process anyway; otherwise the next full collection, which the
    library's own imports soon trigger, walks them all, a visible share of a short command
    (benchmarks/predict_speed.py, docs/benchmarks.md)."""
    import gc

    import torch  # noqa: F401

    gc.freeze()


def plain_line(text: str, err: bool = False, warning: bool = False) -> None:
    """One line of output without rich (whose import a one-image `predict` need not pay):
    `Warning:` in yellow on a terminal when `warning`."""
    prefix = typer.style("Warning:", fg="yellow") + " " if warning else ""
    typer.echo(prefix + text, err=err)


def print_json(value: Any) -> None:
    """Machine-readable output: plain JSON on stdout, no colours or wrapping."""
    sys.stdout.write(json.dumps(value, indent=2) + "\n")
    sys.stdout.flush()
