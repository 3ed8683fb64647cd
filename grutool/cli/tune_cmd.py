"""`grutool tune`: a search over a config's settings on Optuna (grutool.tune)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer


class Sampler(str, Enum):
    tpe = "tpe"
    random = "random"
    grid = "grid"


class Pruner(str, Enum):
    median = "median"
    hyperband = "hyperband"
    none = "none"


def tune(
    config: Path = typer.Argument(..., metavar="CONFIG.yaml", help="YAML config file: the trials start from it."),
    space: Path = typer.Option(..., "--space", metavar="SPACE.yaml",
                               help="Dotted config paths to search: int, float (log) or categorical entries."),
    trials: int = typer.Option(20, "--trials", min=1, metavar="N", help="Trials in all (a resumed study's count)."),
    set_: List[str] = typer.Option([], "--set", metavar="KEY=VALUE", help="Override a field in every trial (repeatable)."),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", "-o", metavar="DIR",
                                              help="Tune directory (default: tuning/<config name>)."),
    sampler: Sampler = typer.Option(Sampler.tpe, "--sampler", help="How trials choose: tpe, random, grid."),
    pruner: Pruner = typer.Option(Pruner.median, "--pruner", help="Stops bad trials early: median, hyperband, none."),
    prune_after: int = typer.Option(1, "--prune-after", min=1, metavar="EPOCHS",
                                    help="Epochs a trial trains before the pruner may stop it."),
    seeds: int = typer.Option(1, "--seeds", min=1, metavar="N", help="Runs per trial (seeds train.seed, +1, ...); "
                                                                      "the objective is their mean."),
    timeout: Optional[float] = typer.Option(None, "--timeout", min=0, metavar="SECONDS",
                                            help="Start no trial after this many seconds."),
    storage: Optional[str] = typer.Option(None, "--storage", metavar="URL",
                                          help="Optuna storage (default: sqlite in DIR); an RDB URL shares a "
                                               "study between machines."),
    study_name: Optional[str] = typer.Option(None, "--study-name", metavar="NAME",
                                             help="Study name in the storage (default: the config name)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the study in the storage."),
    jobs: int = typer.Option(1, "--jobs", min=1, metavar="N", help="Trials trained at once, each in its own "
                                                                    "process."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, metavar="N",
                                          help="Thread budget shared by the jobs (default: every core)."),
    baseline: bool = typer.Option(True, "--baseline/--no-baseline",
                                  help="First trial: the config's own values, when the space holds them (not with --sampler grid, which runs its own points)."),
    plot: bool = typer.Option(False, "--plot", help="Also draw DIR/tune.png: history, importances (plot extra)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only the trial lines, warnings and errors."),
):
    """Search settings with Optuna: each trial trains CONFIG with values from
    SPACE.yaml and is scored on validation by train.monitor (needs the tune extra).

    \b
    Writes DIR/trials.jsonl and DIR/best.yaml (ready for `grutool train`); each
    trial is a run directory in DIR/trials/ (`grutool runs DIR` lists them).
    SPACE.yaml, one dotted path per line:
      train.lr: {float: [1.0e-4, 1.0e-2], log: true}
      model.hidden_size: {int: [32, 256], step: 32}
      model.cell: {categorical: [gru, lstm]}

    \b
    Examples:
      grutool tune configs/atis.yaml --space space.yaml --trials 40
      grutool tune configs/atis.yaml --space space.yaml --trials 60 --resume
      grutool tune configs/atis.yaml --space space.yaml --timeout 7200 --plot
      grutool tune configs/atis.yaml --space space.yaml --jobs 4  # 4 at once
      grutool tune configs/atis.yaml --space space.yaml \\
          --storage postgresql://user@host/db --study-name atis  # many machines
    """
    from grutool.cli.console import err, out, setup_logging, user_errors, warning

    setup_logging(quiet)
    with user_errors():
        from grutool import tune as lib
        from grutool.errors import UserError

        if timeout is not None and timeout <= 0:  # no trial could start: refused before the study is written
            raise UserError(f"--timeout {timeout:g}: no trial could start; give the seconds after which no trial "
                            f"starts (more than 0), or leave it out")
        if plot:
            from grutool.curves import _pyplot

            _pyplot()  # a missing extra is one error line before any trial

        def line(rec, best):
            figure = "-" if rec.value is None else f"{rec.value:.4f}"
            took = "-" if rec.seconds is None else f"{rec.seconds:.1f} s"
            chosen = " ".join(f"{k}={_short(v)}" for k, v in rec.params.items())
            best_text = f"best {best.value:.4f} (trial {best.number})" if best is not None else "best -"
            given = "  (the config as given)" if rec.baseline else ""
            out.print(f"trial {rec.number:>3} {rec.state:<8} {figure:>8} {took:>9}  {chosen}{given}  | {best_text}",
                      markup=False)
            if rec.error:
                err.print(f"  trial {rec.number}: {rec.error}", markup=False)

        from grutool.config_file import config_places, located

        with located(config_places(config, list(set_))):  # a field a data error names: where it was given
            result = lib.tune(config, space, trials, list(set_), output_dir, sampler=sampler.value,
                              pruner=pruner.value, seeds=seeds, timeout=timeout, storage=storage,
                              study_name=study_name, resume=resume, progress=False, on_trial=line, jobs=jobs,
                              threads=threads, baseline=baseline, prune_after=prune_after)
        best = result["best"]
        written = [Path(result["dir"]) / lib.TRIALS]
        if plot:
            written.append(Path(lib.plot(result, Path(result["dir"]) / lib.PLOT)))
        elif (Path(result["dir"]) / lib.PLOT).is_file():  # a resume rewrote trials.jsonl, not the picture
            warning(f"{Path(result['dir']) / lib.PLOT} was drawn before these trials; add --plot to draw it again")
        if best is None:
            if all(t["state"] == "waiting" for t in result["trials"]):  # trials.jsonl is empty: nothing to see
                out.print("no trial ran" + (f": --timeout {timeout:g} s had passed before the first"
                                            if timeout is not None else ""), markup=False)
                return
            out.print(f"no trial completed; see {Path(result['dir']) / lib.TRIALS}", markup=False)
            return
        ran = sum(t["state"] in ("complete", "pruned") for t in result["trials"])
        if result.get("grid_points") and ran < trials and ran >= result["grid_points"]:
            out.print(f"grid: all {result['grid_points']} points tried, so the search ended before --trials {trials}",
                      markup=False)
        out.print(f"best: trial {best['number']}, validation {result['monitor_label']} {best['value']:.4f} "
                  f"({result['direction']}); {sum(t['state'] == 'complete' for t in result['trials'])} completed, "
                  f"{sum(t['state'] == 'pruned' for t in result['trials'])} pruned", markup=False)
        err.print(f"wrote {result['best_yaml']}, {', '.join(map(str, written))}; "
                  f"train it: grutool train {result['best_yaml']}", markup=False)


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
