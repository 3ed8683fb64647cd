"""The day-to-day commands, registered on the app in one place: init, runs, compare, plot, study, tune."""

from __future__ import annotations


def register_daily(app) -> None:
    from grutool.cli.init_cmd import init
    from grutool.cli.plot_cmd import plot
    from grutool.cli.runs_cmd import compare, runs
    from grutool.cli.study_cmd import study
    from grutool.cli.tune_cmd import tune

    app.command()(init)
    app.command()(runs)
    app.command()(compare)
    app.command()(plot)
    app.command()(study)
    app.command()(tune)
