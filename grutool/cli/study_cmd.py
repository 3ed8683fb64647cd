"""`grutool study`: a config trained per cell × seed, one report (grutool.study)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def study(
    config: Path = typer.Argument(..., metavar="CONFIG.yaml", help="YAML config file (the same for every run)."),
    cells: str = typer.Option("gru,lstm", "--cells", metavar="CELL,...", help="Cells to compare: gru, lstm, rnn."),
    seeds: int = typer.Option(3, "--seeds", min=1, metavar="N", help="Runs per cell: seeds train.seed, +1, ..."),
    set_: List[str] = typer.Option([], "--set", metavar="KEY=VALUE", help="Override a field in every run (repeatable)."),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", "-o", metavar="DIR",
                                              help="Study directory (default: studies/<config name>)."),
    resume: bool = typer.Option(False, "--resume", help="Reuse finished runs, continue an interrupted one."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Train every run again."),
    jobs: int = typer.Option(1, "--jobs", min=1, metavar="N", help="Runs trained at once, each in its own process."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, metavar="N",
                                          help="Thread budget shared by the jobs (default: every core)."),
    plot: bool = typer.Option(False, "--plot", help="Also draw DIR/study.png (needs the plot extra)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only a line per run, the report, warnings and errors."),
):
    """Train CONFIG once per cell and seed, everything else equal; report quality
    (mean ± sd, paired test over seeds), time, speed, size and latency.

    \b
    Writes DIR/report.md, report.json, report.csv; the runs are in DIR/runs/
    (`grutool runs DIR` lists them).

    \b
    Examples:
      grutool study configs/sst2.yaml --cells gru,lstm --seeds 3
      grutool study configs/pos.yaml --set train.epochs=5 -o studies/pos5
      grutool study configs/sst2.yaml --cells gru,lstm --seeds 3 --resume
      grutool study configs/sst2.yaml --seeds 3 --resume --plot
      grutool study configs/pos.yaml --jobs 2 --threads 4    # 2 runs at once
    """
    from grutool.cli.console import err, out, setup_logging, user_errors, warning

    setup_logging(quiet)
    with user_errors():
        from grutool import study as lib

        names = lib.parse_cells(cells)
        if plot:
            from grutool.curves import _pyplot

            _pyplot()  # a missing extra is one error line before any training

        def on_run(i, n, run, summary, reused):
            from grutool.families import get_task

            monitor = get_task(run.cfg.task).label(run.cfg, summary.get("monitor") or "")
            best = summary.get("best")
            figure = f"val {monitor} {best:.4f}" if isinstance(best, (int, float)) else "no validation figure"
            took = "reused" if reused else f"{summary.get('wall_time_s', 0):.1f} s"
            err.print(f"run {i}/{n} {run.name}: {figure} ({took})", markup=False)

        from grutool.config_file import config_places, located

        with located(config_places(config, list(set_))):  # a field a data error names: where it was given
            result = lib.run_study(config, names, seeds, list(set_), output_dir, resume=resume, overwrite=overwrite,
                                   progress=False if quiet else "lines", on_run=on_run, jobs=jobs, threads=threads)
        _render(result, out)
        folder = Path(result["study"])
        written = [folder / lib.REPORT_MD, folder / lib.REPORT_JSON, folder / lib.REPORT_CSV]
        if plot:
            written.append(Path(lib.plot(result, folder / lib.PLOT)))
        err.print("wrote " + ", ".join(str(p) for p in written), markup=False)
        if not plot and (folder / lib.PLOT).is_file():  # a resume rewrote the report, not the picture
            warning(f"{folder / lib.PLOT} was drawn for an earlier report; add --plot to draw it for this one")


def _render(result: dict, out) -> None:
    from rich import box
    from rich.table import Table

    from grutool.cli.render.tables import plain
    from grutool.families.base import relabel
    from grutool.study import environment_line, nouns, table_rows

    monitor = relabel(result["monitor"] or "monitor", nouns(result))
    titles = {"quality": f"quality: mean ± sd over seeds ({result['direction']} {monitor} is better); "
                         f"kernel in training / inference",
              "cost": "cost: training s per epoch and to the best epoch; inference ms per batch of 1 and 32"
                      + (f" ({result['jobs']} runs trained at a time, {result['threads_per_run']} thread(s) each: "
                         f"their timings shared the machine)" if result.get("jobs", 1) > 1 else ""),
              "differences": f"against {result['cells'][0]}, paired by seed (noise: p >= 0.05)"}
    for key, rows in table_rows(result, terminal=True).items():
        if len(rows) < 2:
            continue
        t = Table(title=plain(titles[key]), box=box.SIMPLE_HEAD, title_justify="left", show_edge=False,
                  pad_edge=False)
        for header in rows[0]:
            wraps = header in ("kernel", "reading")
            t.add_column(plain(header), overflow="fold" if wraps else "ellipsis", no_wrap=not wraps)
        for row in rows[1:]:
            t.add_row(*[plain(c) for c in row])
        out.print(t)
    out.print(environment_line(result), markup=False)
    if result["missing"]:
        out.print(f"not finished (continue with --resume): {', '.join(result['missing'])}", markup=False)
