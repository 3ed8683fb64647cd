"""`grutool init TASK`: print a commented starting config (grutool.config_template). No torch."""

from __future__ import annotations

from typing import Optional

import typer


# The family names, written out: importing the registry (grutool.families) here would cost every `--help`
# its start-up; tests/cli/test_daily.py checks this list against grutool.families.TASKS.
FAMILIES = "classifier, tagger, joint, seq2seq, lm, regressor or forecast"
NUMERIC = "classifier, tagger, regressor or forecast"  # the families with `inputs["numeric"]`, checked by the same test


def init(task: str = typer.Argument(..., metavar="TASK", help=f"The model family: {FAMILIES}."),
         input: Optional[str] = typer.Option(None, "--input", metavar="KIND", show_default=False,
                                             help="What the model reads: text, or numeric (sequences of numbers: "
                                                  f"{NUMERIC}). Default: text where TASK reads text, else "
                                                  "numeric.")):
    """Print a commented starting config for TASK: every field it reads, at its default unless its comment names
    the default (a value chosen for the toy data); its data paths name the toy data in grutool's data/ folder,
    so it trains as printed from a clone's root.

    \b
    Examples:
      grutool init lm > my.yaml
      grutool init classifier --input numeric > sensors.yaml
      grutool train my.yaml --dry-run
    """
    from grutool.cli.console import user_errors

    with user_errors():
        from grutool.config_template import template

        print(template(task, input), end="")
