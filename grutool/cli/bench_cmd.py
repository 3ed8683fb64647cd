"""`grutool bench`: parse the grid, run `grutool.bench.runner.run`, render, write, compare.

The library does the work (see grutool/bench); torch is imported only once the
grid has been checked, so a bad grid answers at once.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from typing import List, Optional

import typer

from grutool.kernels import describe_auto


def bench(
    grid_file: Optional[Path] = typer.Argument(
        None, metavar="[GRID.yaml|REPORT.json]",
        help="Grid file (see configs/bench.yaml; command-line options override it), or a saved JSON report to "
             "show, compare (--compare), plot (--plot) or convert (-o) without measuring again."),
    config: Optional[str] = typer.Option(
        None, "--config", "-c", metavar="CONFIG.yaml", help="Model config: time its real train step and inference, not bare layers."),
    set_: List[str] = typer.Option([], "--set", metavar="KEY=VALUE", help="Override a field: --set model.hidden_size=256 (repeatable)."),
    cells: Optional[str] = typer.Option(None, metavar="CELL,...", help="Cells, comma-separated: gru,lstm,rnn."),
    batch: Optional[str] = typer.Option(None, "--batch", "--batch-size", metavar="N,...", help="Batch sizes, e.g. 32,128."),
    seq_len: Optional[str] = typer.Option(None, "--seq-len", metavar="N,...", help="Time steps T (the longest sequence), e.g. 50,200."),
    input_size: Optional[str] = typer.Option(None, "--input-size", metavar="N,...", help="Features per step (embedding_dim with --config)."),
    hidden_size: Optional[str] = typer.Option(None, "--hidden-size", metavar="N,...", help="Hidden sizes, e.g. 64,256,512."),
    layers: Optional[str] = typer.Option(None, "--layers", "--num-layers", metavar="N,...", help="Stacked layers, e.g. 1,2."),
    bidirectional: Optional[bool] = typer.Option(
        None, "--bidirectional/--unidirectional", help="Both directions, or one (default: one; --config: its own)."),
    mode: Optional[str] = typer.Option(None, metavar="MODE,...", help="infer,train."),
    lengths: Optional[str] = typer.Option(
        None, metavar="KIND,...", help="padded (dense, unpacked), packed (varied lengths, packed) and/or bucketed (similar lengths, packed)."),
    kernels: Optional[str] = typer.Option(
        None, metavar="KERNEL,...", help=f"default (grutool's choice, model.kernel auto, per call on CPU: {describe_auto()}; "
                   "PyTorch's elsewhere), native (PyTorch's modules, oneDNN on CPU / cuDNN on CUDA switched off), fused "
                   "(grutool's fused kernels) and/or compiled (the fused kernels' loop in C++, built on first use; "
                   "the row's kernel column says which ran)."),
    device: Optional[str] = typer.Option(None, metavar="auto|cpu|cuda", help="auto (CUDA if present), cpu or cuda."),
    dtype: Optional[str] = typer.Option(None, metavar="DTYPE,...", help="float32, bfloat16, float16 (CUDA only); layer rows only."),
    threads: Optional[int] = typer.Option(None, metavar="N", help="torch.set_num_threads for the run."),
    repeats: Optional[int] = typer.Option(None, metavar="N", help="Timed samples per row (default 10)."),
    warmup: Optional[int] = typer.Option(None, metavar="N", help="Untimed calls per row first (default 2)."),
    min_sample_ms: Optional[float] = typer.Option(
        None, "--min-sample-ms", metavar="MS", help="Shortest sample; short calls repeat (default 50)."),
    vocab_size: Optional[int] = typer.Option(
        None, "--vocab-size", metavar="N", help="--config without readable data: vocabulary size (default 20000); a forecaster's columns in (needed)."),
    num_classes: Optional[int] = typer.Option(
        None, "--num-classes", metavar="N", help="--config without readable data: classes (default 2); a forecaster's columns out."),
    seed: Optional[int] = typer.Option(None, metavar="N", help="Seed for weights and synthetic batches."),
    output: List[Path] = typer.Option([], "--output", "-o", metavar="PATH", help="Write the report: .md, .json or .csv (repeatable)."),
    plot: Optional[Path] = typer.Option(None, metavar="PATH.png", help="Draw tokens/s per cell as a PNG (needs matplotlib)."),
    compare: Optional[Path] = typer.Option(
        None, metavar="OLD.json", help="Earlier JSON report: print new/old time per matching row, against a saved "
                                       "REPORT.json (no measuring) or against a grid measured now."),
    smoke: bool = typer.Option(False, "--smoke", help="The tiny grid (seconds) and its sanity checks; exit 1 if "
                               "one fails. Values given as options or in GRID.yaml replace the tiny grid's, so a "
                               "full GRID.yaml runs in full."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress; only warnings and errors on stderr."),
):
    """Time GRU vs LSTM vs RNN, or a configured model's train step and inference (docs/bench.md).

    \b
    Examples:
      grutool bench --smoke                        # seconds: a sanity check (CI)
      grutool bench --cells gru,lstm --hidden-size 64,512 -o new.json
      grutool bench --compare old.json new.json    # saved reports, no measuring
      grutool bench new.json --plot new.png        # draw a saved report
      grutool bench --config configs/sentiment.yaml   # your model's train step
      grutool bench --config configs/sentiment.yaml --set model.num_layers=2
    """
    from rich.markup import escape

    from grutool.cli.console import err, out, setup_logging, user_errors, warning

    setup_logging(quiet)
    with user_errors():
        from grutool.bench import grid as grids
        from grutool.bench import report as reports
        from grutool.errors import UserError, install

        options = dict(
            cells=cells, batch_size=batch, seq_len=seq_len, input_size=input_size, hidden_size=hidden_size,
            num_layers=layers, bidirectional=bidirectional, mode=mode, lengths=lengths, kernels=kernels,
            device=device, dtype=dtype, threads=threads, repeats=repeats, warmup=warmup,
            min_sample_ms=min_sample_ms, config=config, vocab_size=vocab_size, num_classes=num_classes, seed=seed)
        saved = grid_file is not None and grid_file.suffix.lower() == ".json"
        for given, what in ((grid_file, ""), (compare, "--compare ")):
            kind = {".md": "markdown", ".csv": "csv"}.get(given.suffix.lower()) if given is not None else None
            if kind:  # the positional was read as a grid: a YAML syntax error about a report bench wrote itself
                raise UserError(f"{what}{given}: a {kind} report is for reading; bench reads back the .json one it "
                                f"writes beside it (-o report.json), or measures a GRID.yaml")
        if saved:
            # A saved report is shown, compared, plotted or converted as it is: nothing is measured.
            setting = sorted([k for k, v in options.items() if v is not None] + (["set"] if set_ else []))
            if setting or smoke:
                flags = ", ".join(f"--{k.replace('_', '-')}" for k in setting) or "--smoke"
                raise UserError(f"{flags}: set what to measure, but {grid_file} is a saved report; "
                                f"drop the option, or give a grid (GRID.yaml or options alone) to measure")
        elif compare is not None and grid_file is None and all(v is None for v in options.values()) and not smoke \
                and not set_:
            if not Path(compare).is_file():  # said first: the report to compare with is missing, not the other
                raise UserError(f"--compare {compare}: report not found")
            raise UserError(f"--compare {compare}: nothing to compare it with; give the newer saved report "
                            f"(grutool bench --compare {compare} NEW.json), or what to measure now "
                            f"(a GRID.yaml such as configs/bench.yaml, or options such as --cells)")
        else:
            given = grids.from_options(**options)
            grid = grids.merge(grids.load_grid(grid_file), given) if grid_file is not None else given
            if set_ and grid.config is None:
                raise UserError(f"--set {set_[0]}: sets a field of a model config, and none is given; "
                                f"give one with --config CONFIG.yaml, or drop --set")
            if grid.config is not None:  # a bad config or --set answers before torch is imported
                from grutool.config_file import load_config

                load_config(grid.config, list(set_))
        # Everything that can fail after a long run is checked before it.
        from grutool.atomic import check_output_path

        for path in output:
            reports.output_format(path)
            check_output_path(path, "--output")
        if plot is not None:
            if plot.suffix.lower() != ".png":
                raise UserError(f"--plot {plot}: give a .png file name")
            check_output_path(plot, "--plot")
            if importlib.util.find_spec("matplotlib") is None:
                raise UserError(f"--plot needs matplotlib, an optional extra: {install('plot')}")
        old = reports.read_report(compare) if compare is not None else None

        if not saved:
            from grutool.bench.runner import run, sanity_problems

        if saved:
            report = reports.read_report(grid_file)
        else:
            report = _run_with_progress(functools.partial(run, overrides=list(set_)), grid, smoke, quiet, console=err)
        if out.is_terminal:  # a table too wide for the terminal in parts, never a number cut to `…`
            for table in reports.rich_tables(report, lambda t: _needed(out, t) <= out.width):
                out.print(table)
        else:
            _print_wide(out, reports.rich_table(report))
        if not (smoke and quiet):  # a smoke run is never published: its timing caveats are noise in CI logs
            for message in report.get("warnings", []):
                warning(message)
        if old is not None:
            result = reports.compare(report, old)
            if result["rows"]:
                _print_wide(out, reports.compare_table(result))
            else:
                out.print(f"no rows in common with {compare}: nothing to compare", markup=False)
            if result["only_new"] or result["only_old"]:
                out.print(f"unmatched rows: {result['only_new']} only in {grid_file if saved else 'this run'}, "
                          f"{result['only_old']} only in {compare}", markup=False)
            for change in result["env_changes"]:
                warning(f"environment differs from {compare}: {change}")
        for path in output:
            reports.write(report, path)
            if not quiet:
                err.print(f"wrote {path}", markup=False)
        if plot is not None:
            from grutool.bench.plot import plot as draw

            draw(report, plot)
            if not quiet:
                err.print(f"wrote {plot}", markup=False)
        if smoke:
            problems = sanity_problems(report)
            for p in problems:
                err.print(f"[red]smoke check failed:[/] {escape(p)}", markup=True)
            if problems:
                raise typer.Exit(1)
            out.print(f"smoke: ok ({len(report['rows'])} rows in {report['duration_s']:.1f}s)")


def _needed(console, table) -> int:
    """The columns `table` takes with no cell wrapped or cut."""
    return console.measure(table, options=console.options.update_width(10_000)).maximum


def _print_wide(console, table) -> None:
    """In a terminal, its width; into a file or pipe, as wide as the table needs (no truncated cells)."""
    needed = _needed(console, table)
    if console.is_terminal or needed <= console.width:
        console.print(table)
        return
    from rich.console import Console

    Console(file=console.file, width=needed, highlight=False, soft_wrap=True, emoji=False).print(table)


def _run_with_progress(run, grid, smoke: bool, quiet: bool, console):
    """A progress bar in a terminal; one line per group into a file or pipe; nothing with --quiet."""
    if quiet:
        return run(grid, smoke=smoke)
    from grutool.training.progress import TerminalBar, draws_bars  # training's bar: one progress library (tqdm)

    if not draws_bars(sys.stderr):
        def lines(done: int, total: int, label: str) -> None:
            # rows timed before the group named starts; the last line says all are done (it stopped at [2/4])
            console.print(f"[{done}/{total}] {label}", markup=False)

        return run(grid, smoke=smoke, progress=lines)
    shown: list[TerminalBar] = []  # made at the first report, which brings the row count

    def progress(done: int, total: int, label: str) -> None:
        if not shown:
            shown.append(TerminalBar(total=total, desc=label, stream=sys.stderr, unit="row",
                                     bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}]"))
        bar = shown[0].tqdm
        bar.set_description_str(label, refresh=False)
        bar.n = done
        bar.refresh()  # each report redraws: the label of the group being timed, rows done, elapsed

    try:
        return run(grid, smoke=smoke, progress=progress)
    finally:
        for bar in shown:  # transient: erased, the table follows
            bar.close()
