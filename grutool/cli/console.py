"""The CLI's two consoles (stdout, stderr), its logging setup and how user errors reach the terminal.

Every command module imports these from here; `rich` is imported on first use only.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings

import typer

from grutool.errors import TrainingInterrupted, UserError


class _LazyConsole:
    """A rich Console made on first use, so `--help` never imports rich's console machinery."""

    def __init__(self, **options):
        self._options = options
        self._console = None

    def __getattr__(self, name):
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return getattr(self._console, name)


err = _LazyConsole(stderr=True, highlight=False, soft_wrap=True)
out = _LazyConsole(highlight=False, soft_wrap=True)


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def setup_logging(quiet: bool) -> None:
    logger = logging.getLogger("grutool")
    logger.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.propagate = False

    def show(message, category, filename, lineno, file=None, line=None):
        err.print(f"[yellow]warning:[/] {escape(str(message))}", markup=True)

    warnings.showwarning = show


@contextlib.contextmanager
def user_errors():
    """Turn UserError into one line on stderr and exit code 2 (no traceback)."""
    try:
        yield
    except UserError as exc:
        message = str(exc)
        for option in exc.options:
            # The library names its keyword argument; here the user typed an option.
            flag = f"--{option.replace('_', '-')}"
            if message.startswith(f"{option}:"):
                message = flag + message[len(option):]
            message = message.replace(f"`{option}`", flag)
        if not getattr(exc, "echo", False):  # an echo: distributed, rank 0's error, which rank 0 prints
            err.print(f"[red]error:[/] {escape(message)}", markup=True)
        raise typer.Exit(exc.exit_code)
    except TrainingInterrupted as exc:
        err.print(f"interrupted: saved {exc.checkpoint}; continue with the same command plus --resume")
        raise typer.Exit(130)
