"""`grutool plot`: learning curves of runs as a PNG (grutool.curves). No torch."""

from __future__ import annotations

from pathlib import Path
from typing import List

import typer


def plot(
    run_dirs: List[Path] = typer.Argument(..., metavar="RUN_DIR...", help="One run directory or more (overlaid)."),
    output: Path = typer.Option(Path("curves.png"), "--output", "-o", metavar="PATH.png", help="Where to write the PNG."),
):
    """Learning curves: loss and the monitored metric per epoch, several runs overlaid (needs the plot extra).

    A run with nothing to draw (metrics.jsonl missing or damaged) is left out
    with a warning, beside others that have.

    \b
    Examples:
      grutool plot runs/sentiment                      # -> curves.png
      grutool plot runs/sentiment runs/lr1e-3 -o lr.png
    """
    from grutool.cli.console import err, setup_logging, user_errors

    setup_logging(quiet=True)  # warnings only: a run left out of the plot
    with user_errors():
        from grutool.curves import plot_curves

        err.print(f"wrote {plot_curves(run_dirs, output)}", markup=False)
