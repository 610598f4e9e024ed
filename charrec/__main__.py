"""`python -m charrec` runs the CLI."""

from charrec.cli import main

main()
