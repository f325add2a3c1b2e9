"""The `edgekd` command line (see app.py); `main` is the console script."""
from .app import cli, main

__all__ = ["cli", "main"]
