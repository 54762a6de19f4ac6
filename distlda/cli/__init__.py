"""The ``distlda`` command line: :func:`main` and one module per subcommand."""

from distlda.cli.main import main

__all__ = ["main"]
