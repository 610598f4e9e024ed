"""`python -m charrec` and the `charrec` command: run the CLI (`charrec.cli.main`).

The CLI is imported inside `main`, so a Ctrl-C while it loads also ends with one line and exit
130 instead of a traceback. Holds nothing else: commands live in the `charrec.cli` package.
"""

import sys

EXIT_INTERRUPTED = 130


def main() -> None:
    try:
        from charrec.cli import main as cli_main

        cli_main()
        code = 0
    except KeyboardInterrupt:  # while the CLI's modules were loading
        sys.stderr.write("Error: interrupted by Ctrl-C\n")
        code = EXIT_INTERRUPTED
    except SystemExit as exit_:
        code = exit_.code
    if code == EXIT_INTERRUPTED:
        _forget_caught_interrupt()
    sys.exit(code)


def _forget_caught_interrupt() -> None:
    """CPython 3.11 marks a KeyboardInterrupt "unhandled" when it passes through code run by
    `exec` of a string (dataclasses and typing do that while modules import), even when it is
    caught later, and then ends the process by SIGINT instead of with our exit code. We did
    handle it, so clear the mark; on Pythons without it there is nothing to clear."""
    try:
        import ctypes

        ctypes.c_int.in_dll(ctypes.pythonapi, "_Py_UnhandledKeyboardInterrupt").value = 0
    except (ImportError, ValueError, AttributeError, OSError):
        pass


if __name__ == "__main__":
    main()
