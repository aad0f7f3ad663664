"""The `pmsync` command line: one module per group of commands, registered in `main`."""

from .main import cli, main

__all__ = ["cli", "main"]
