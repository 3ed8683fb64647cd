"""`grutool init TASK`: print a commented starting config (grutool.config_template). No torch."""

from __future__ import annotations

import typer


def init(task: str = typer.Argument(..., metavar="TASK", help="classifier, tagger, joint or seq2seq.")):
    """Print a commented starting config for TASK: every field it reads, with its default.

    \b
    Examples:
      grutool init classifier > my.yaml
      grutool train my.yaml --dry-run
    """
    from grutool.cli.console import user_errors

    with user_errors():
        from grutool.config_template import template

        print(template(task), end="")
