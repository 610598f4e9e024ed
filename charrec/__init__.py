"""charrec: recognise single English letters with networks built from hand-written autograd.

The package is a library first (config -> data -> model -> train -> checkpoint) and a Typer CLI
second (`charrec.cli`). Importing it is cheap: torch is imported by the modules that need it.
"""

__version__ = "0.1.0"

CLASSES: tuple[str, ...] = tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
