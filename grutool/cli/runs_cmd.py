"""`grutool runs` and `grutool compare`: run directories listed and side by side (grutool.runs). No torch."""

from __future__ import annotations

from pathlib import Path
from typing import List

import typer

from grutool.cli.render.tables import plain

STATUS_STYLE = {"finished": "green", "pruned": "magenta", "running": "cyan", "interrupted": "yellow",
                "diverged": "red", "failed": "red", "unreadable": "red"}


def _figure(value) -> str:
    from grutool.runs import figure  # (read here: `grutool --help` loads this module)

    return figure(value)


def _setting(value) -> str:
    """A config value in `compare`'s table as config.yaml writes it, so that it can be copied back into `--set`:
    numbers whole (`train.seed` 19530, never 19,530; an lr of 0.000123456, never 1.235e-04), null, true
    and false, lists and mappings (`[a, b]`, never Python's `['a', 'b']`); and `n/a` where the run's family does
    not read the field (runs.NOT_READ), so the two never look alike."""
    from grutool.runs import NOT_READ

    if value == NOT_READ:
        return "n/a"
    if value is None or isinstance(value, (bool, int, float, list, dict)):
        from grutool.config_file import yaml_value

        return yaml_value(value)
    return str(value)


def runs(
    root: Path = typer.Argument(Path("runs"), metavar="[DIR]", help="Folder holding run directories (default: runs)."),
    json_: bool = typer.Option(False, "--json", help="One JSON object per run, one per line."),
):
    """List run directories: task, best monitored metric, epochs, time, status.

    \b
    Status: finished, diverged, pruned (a tune trial stopped early), running,
    interrupted (--resume continues it), failed (stopped before its first
    checkpoint), unreadable (its folder or files cannot be read, or a file
    is damaged: why, below the table).

    \b
    Examples:
      grutool runs
      grutool runs experiments/ --json
    """
    from grutool.cli.console import out, setup_logging, user_errors

    setup_logging(quiet=True)  # a run's config warning as one `warning:` line, not Python's with its source line
    with user_errors():
        from grutool.runs import list_runs

        found = list_runs(root)
        if json_:
            from grutool import jsonsafe

            for r in found:
                print(jsonsafe.dumps(r))
            return
        if not found:
            out.print(f"no runs under {root}", markup=False)
            return
        shared, names = _run_names(found, root)
        # the title a line of its own, wrapped between words on a terminal: in the table, rich folded a long
        # path to the table's width
        out.print(f"{len(found)} run(s) under {shared}", markup=False)
        out.print(_runs_view(found, names))
        for r, name in zip(found, names):
            if r.get("reason"):
                out.print(f"{name}: unreadable ({r['reason']})", markup=False)


def _run_names(found: list[dict], root: Path) -> tuple[Path, list[str]]:
    """The folder the runs share (`root` or below it) and each run's path past it."""
    from grutool.runs import past_shared_folder

    shared, names = past_shared_folder([Path(r["run"]) for r in found])
    if len(found) == 1 and Path(found[0]["run"]) == root:  # the folder given is the run: by its own name, not `.`
        named = root if root.name not in ("", ".", "..") else root.resolve()
        return named.parent, [named.name]
    if shared is None or len(found) == 1:  # one run is named by its own folder, as before
        return root, [_relative(r["run"], root) for r in found]
    return shared, names


def _runs_view(found: list[dict], names: list[str]):
    """One line per run, every cell whole (a name split over two lines reads as two runs; `accuracy` over
    `0.6375` as two cells): two spaces between the columns, else one; else the runs under a line naming their
    folder (`studies/sentiment/runs/`), each by its own name; a table that fits none keeps its lines long. The
    best epoch is in `compare` and --json."""
    from grutool.cli.render.tables import FirstThatFits
    from grutool.runs import nouns

    words = [nouns(r["run"]) for r in found]  # each run's task's words for its figures
    return FirstThatFits(*(_runs_table(found, names, words, gap, grouped) for grouped in (False, True)
                           for gap in (2, 1)))


def _runs_table(found: list[dict], names: list[str], words: list[dict], gap: int, grouped: bool = False):
    """The runs as a table, each by its name (`grouped`: under a row naming its folder, by its last part), `gap`
    spaces between the columns."""
    from rich import box
    from rich.table import Table

    from grutool.cli.render.tables import whole_cells

    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True, padding=(0, gap - 1))
    for col in ("run", "task", "best", "epochs", "time", "status"):
        t.add_column(col, justify="right" if col in ("epochs", "time") else "left")
    from grutool.families.base import relabel

    folder = None
    for r, name, nouns in zip(found, names, words):
        if grouped and Path(name).parent != Path("."):
            if Path(name).parent != folder:  # the runs come sorted by path: a folder's runs are together
                folder = Path(name).parent
                t.add_row(plain(f"{folder}/"))
            name = f"  {Path(name).name}"
        # `sentence_accuracy` as `sentence_acc`, as in the epoch lines, by the run's task's words (a numeric
        # tagger's `step_acc`)
        shown = relabel(r["monitor"], nouns) if r["best"] is not None else None
        best = f"{plain(shown.replace('_accuracy', '_acc'))} {_figure(r['best'])}" if shown else "-"
        done = r["epochs"]
        if r.get("partial_epoch") and isinstance(done, int):  # max_steps cut the last epoch: 3 of 25 batches
            trained, batches = r["partial_epoch"]
            value, decimals = done - 1 + trained / batches, 2  # 0.12, not 1: the epochs trained, as a number
            while round(value, decimals) == done - 1 and decimals < 6:  # 3 of 1,053 batches: 0.003, never 0.0
                decimals += 1
            done = round(value, decimals)
        done = f"{done:g}" if isinstance(done, float) else _figure(done)  # 0.25 epochs, as rounded above
        epochs = f"{done}/{r['max_epochs']}" if r["max_epochs"] else done
        time_s = _duration(r["time_s"]) if r["time_s"] is not None else "-"
        style = STATUS_STYLE.get(r["status"], "")
        status = f"[{style}]{plain(r['status'])}[/]" if style else plain(r["status"])
        t.add_row(plain(name), plain(r["task"]), best, epochs, time_s, status)
    return whole_cells(t)


def _duration(seconds: float) -> str:
    """0:42, 12:05, 1:02:03 (as training's progress lines write it)."""
    minutes, s = divmod(int(round(seconds)), 60)
    h, m = divmod(minutes, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _relative(run: str, root: Path) -> str:
    try:
        return str(Path(run).relative_to(root)) or "."
    except ValueError:
        return run


def compare(
    run_dirs: List[Path] = typer.Argument(..., metavar="RUN_DIR...", help="Two run directories or more, or folders holding runs (a study's or a tune's: every run under it)."),
    json_: bool = typer.Option(False, "--json", help="Print the comparison as one JSON object."),
):
    """Runs side by side: the config fields that differ, then their validation figures.

    \b
    Examples:
      grutool compare runs/sentiment runs/lr1e-3
      grutool compare runs/* --json
      grutool compare studies/sentiment          # every run of a study
    """
    from grutool.cli.console import out, setup_logging, user_errors

    setup_logging(quiet=True)
    with user_errors():
        from grutool.runs import compare as compare_runs, past_shared_folder

        result = compare_runs(run_dirs)
        if json_:
            from grutool import jsonsafe

            print(jsonsafe.dumps(result))
            return
        # Column headers are the paths past the folder they share, stated once above: whole paths in two or
        # three columns of 80 were folded mid-word ("…/studies/senti" / "ment/gru-13").
        shared, short = past_shared_folder([Path(r) for r in result["runs"]])  # a study's folder: its runs
        if shared is not None:
            out.print(f"runs under {shared}", markup=False)
        names = [plain(n) for n in short]
        if result["config"]:
            from grutool.runs import NOT_READ

            rows = [(plain(key), *[plain(_setting(v)) for v in values]) for key, values in result["config"].items()]
            out.print(_side_by_side("config: fields that differ", "field", names, rows, "left"))
            if any(v == NOT_READ for values in result["config"].values() for v in values):
                out.print("n/a: the run's task does not read this field; null: its config sets it to null", markup=False)
        else:  # no empty table under the title
            out.print("config: identical (output_dir aside)")
        shown = [("status", "status"), ("epochs", "epochs"), ("best_epoch", "best epoch"), ("time_s", "time")]
        if any(s.get("processes") not in (1, None) for s in result["summary"]):  # a `--nproc` run among them:
            shown.append(("processes", "processes"))  # its steps took batch_size examples in each process
        # the time as `runs` writes it, 0:07 and 1:02:03 (as seconds to 4 digits it read 0.5400 beside 6.061)
        rows = [(label, *[plain(_duration(s[s_key]) if s_key == "time_s" and s.get(s_key) is not None
                                else _figure(s.get(s_key))) for s in result["summary"]]) for s_key, label in shown]
        from grutool.families.base import relabel
        from grutool.runs import nouns

        words = [nouns(r) for r in result["runs"]]
        for key, values in result["validation"].items():
            # a figure by the words of the runs' tasks that have it, where they agree (numeric taggers:
            # step_accuracy, steps)
            shown = {relabel(key, w) for w, v in zip(words, values) if v is not None} or {key}
            rows.append((plain(shown.pop() if len(shown) == 1 else key), *[plain(_figure(v)) for v in values]))
        # A figure no run has (the best epoch and time of runs stopped before their first epoch) is left out:
        # it said nothing, and the block layout gave it a line per run. --json keeps it, as null.
        rows = [row for row in rows if any(v != "-" for v in row[1:])]
        out.print(_side_by_side("validation (best epoch)", "figure", names, rows, "right"))


def _side_by_side(title: str, first: str, names: list[str], rows: list[tuple], justify: str):
    """`compare`'s table: a column per run, every cell whole. Where it is wider than the terminal (the data paths
    of two studies, three runs' names), one block per row instead: its label, then each run's name and value on a
    line of their own, so the names stay whole inside 80 columns; a block wider still keeps its lines long."""
    from rich.table import Table

    from grutool.cli.render.tables import FirstThatFits, whole_cells

    side = Table(title=title)
    side.add_column(first)
    for n in names:
        side.add_column(n, justify=justify)
    for row in rows:
        side.add_row(*row)
    blocks = Table(title=title, title_justify="left", box=None, show_header=False, pad_edge=False)
    blocks.add_column(first)
    blocks.add_column("value", justify=justify)
    for label, *values in rows:
        blocks.add_row(label, "")
        for n, v in zip(names, values):
            blocks.add_row(f"  {n}", v)
    return FirstThatFits(whole_cells(side), whole_cells(blocks))
