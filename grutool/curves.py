"""Learning curves of one or more runs as a PNG (`grutool plot`), read from metrics.jsonl. No torch.

Left: training loss (solid) and validation loss (dashed) per epoch; right: the monitored validation
metric, with each run's best epoch marked, one panel per metric where runs monitor different ones. Several runs
share the axes, one colour each, named in one legend below the panels.
"""

from __future__ import annotations

import io
import json
import logging
import math
import warnings
from pathlib import Path

from grutool.atomic import check_output_path, write_atomic
from grutool.errors import UserError, install
from grutool.rundir import CONFIG, METRICS, SUMMARY, has_checkpoint
from grutool.families.base import relabel
from grutool.runs import describe, nouns, parse_metrics

log = logging.getLogger("grutool")


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError(f"plot needs matplotlib, an optional extra: {install('plot')}") from None
    return plt


def check_png_path(path: str | Path, option: str = "output") -> Path:
    """A .png file name (not a folder) in an existing, writable folder (checked before any work), or a
    UserError naming `option`."""
    path = Path(path)
    if path.suffix.lower() != ".png" and not path.is_dir():
        raise UserError(f"--{option} {path}: give a .png file name", option=option)
    check_output_path(path, f"--{option}")
    return path


def save_png(fig, path: str | Path, dpi: int) -> None:
    """`fig` as a PNG at `path`, drawn in memory and written atomically (a full disk is a UserError)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    data = buffer.getbuffer()
    write_atomic(Path(path), lambda f: f.write(data), size=len(data))


def _finite(value):
    """A number to draw, or None (a gap) for what is missing, not a number or infinite (a hand-edited
    metrics.jsonl can hold `Infinity`)."""
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


class _Unplottable(UserError):
    """A run that has no curves to draw: with other runs to draw, `plot_curves` leaves it out with a warning."""


def _rows(run: Path) -> list[dict]:
    """Run `run`'s metrics.jsonl rows (a last line cut mid-write left out, as `runs` does); _Unplottable saying
    why there are none (missing, closed, damaged, no epoch yet), a UserError for a folder that is not a run. A
    missing or cut metrics.jsonl of a run that trained epochs said `no epochs to plot yet`."""
    metrics = run / METRICS
    try:  # a file closed to us is said so (read as empty, it was "no epochs yet", a wrong reason)
        if not metrics.is_file():
            if not (run / CONFIG).is_file():
                raise UserError(f"{run}: not a run directory (no {METRICS}); list runs with `grutool runs`")
            trained = _trained(run)
            if trained:  # deleted, or not copied with the run
                raise _Unplottable(f"{metrics}: missing, though {trained}")
            raise _Unplottable(f"{run}: no epochs to plot yet (the run has not finished an epoch)")
        text = metrics.read_text(encoding="utf-8", errors="replace")
    except OSError as e:  # another user's run: the file, or its folder, closed to us
        raise _Unplottable(f"{metrics}: cannot read the run's metrics ({e.strerror or type(e).__name__}); "
                           f"check its permissions, or copy the run somewhere you can read") from None
    rows, bad, cut = parse_metrics(text)
    if bad is not None:
        raise _Unplottable(f"{metrics}: unreadable at line {bad} (not JSON); restore the file as training wrote it")
    if not rows:
        trained = _trained(run)
        if trained:
            why = "its only line is cut short (a kill mid-write)" if cut else "no epoch row in it"
            raise _Unplottable(f"{metrics}: {why}, though {trained}")
        raise _Unplottable(f"{run}: no epochs in {METRICS} to plot yet (the run has not finished an epoch)")
    return rows


def _trained(run: Path) -> str | None:
    """What says run `run` trained an epoch (`the run trained 3 epoch(s)`, from summary.json; a checkpoint), or
    None."""
    try:
        epochs = json.loads((run / SUMMARY).read_text(encoding="utf-8")).get("epochs")
    except (OSError, ValueError, AttributeError):  # none, or no JSON object
        epochs = None
    if isinstance(epochs, int) and epochs > 0:
        return f"the run trained {epochs} epoch(s)"
    return "the run saved a checkpoint" if has_checkpoint(run) else None


def plot_curves(run_dirs: list[str | Path], path: str | Path, labels: list[str] | None = None) -> str:
    """Draw the runs' curves into `path` (a .png); returns the path. A folder that holds runs but is none (a
    study's, a tune's) stands for every run under it, as in `compare`; runs are named past the folder they share."""
    from grutool.runs import past_shared_folder, runs_in

    path = check_png_path(path)
    run_dirs = [run for r in run_dirs for run in runs_in(Path(r))]
    shared, names = past_shared_folder(run_dirs) if len(run_dirs) > 1 else (None, [str(r) for r in run_dirs])
    runs, skipped = [], []
    for i, run in enumerate(run_dirs):
        if not Path(run).is_dir():
            what = "is a file, not a run directory" if Path(run).exists() else "run directory not found"
            raise UserError(f"{run}: {what}; give the directory `grutool train` wrote")
        try:
            rows = _rows(Path(run))
        except _Unplottable as e:  # one run of several: the others are drawn, this one named in a warning
            skipped.append(str(e))
            continue
        info = describe(run)
        # the monitor as the run's task names it (a numeric tagger's token_accuracy is step_accuracy)
        info["shown"] = relabel(info["monitor"], nouns(run)) if info["monitor"] else None
        name = labels[i] if labels else names[i]
        if info.get("status") in ("interrupted", "running", "diverged", "pruned"):  # not a finished run's curves
            name += f" ({info['status']})"
        runs.append((name, rows, info))
    if not runs:
        raise UserError(skipped[0] if len(skipped) == 1 else f"no run to plot: {'; '.join(skipped)}")
    for reason in skipped:
        log.warning("%s; left out of the plot", reason)
    plt = _pyplot()
    from matplotlib.lines import Line2D

    # One metric panel per monitored metric: an lm's loss in nats, another's bpc, a classifier's accuracy and a
    # regressor's rmse are not one axis. A run without a validation split has no validation figures: no panel
    # for it (it drew empty axes, and the legend named a validation loss no line showed).
    validated = [(rows, d) for _, rows, d in runs if d["monitor"] and any(f"val_{d['monitor']}" in r for r in rows)]
    monitors = list(dict.fromkeys(d["shown"] for _, d in validated))
    val_loss = any("val_loss" in r for _, rows, _ in runs for r in rows)
    handles = [Line2D([], [], color=f"C{n % 10}", marker="o", markersize=4, label=label)
               for n, (label, _, _) in enumerate(runs)]
    handles += [Line2D([], [], color="grey", linestyle=style, marker=marker, markersize=3, label=what)
                for style, marker, what in (("-", "o", "train loss"), ("--", "s", "validation loss"))
                if what == "train loss" or val_loss]
    width = 5.5 * (1 + len(monitors))
    # The legend below the panels, never over a curve: as many columns as the longest name lets fit.
    columns = max(1, min(len(handles), int(width * 13 // (max(len(h.get_label()) for h in handles) + 5))))
    rows_of_legend = -(-len(handles) // columns)
    legend_in = 0.25 * rows_of_legend + 0.2
    fig, axes = plt.subplots(1, 1 + len(monitors), figsize=(width, 4.2 + legend_in), squeeze=False)
    ax_loss, panels = axes[0][0], dict(zip(monitors, axes[0][1:]))
    for n, (label, rows, info) in enumerate(runs):
        colour = f"C{n % 10}"
        epochs = [r["epoch"] for r in rows]
        # Markers as on the metric panel: a line alone draws nothing for a one-epoch run (or an epoch between gaps)
        ax_loss.plot(epochs, [_finite(r.get("train_loss")) for r in rows], "-o", color=colour, markersize=3)
        if any("val_loss" in r for r in rows):
            ax_loss.plot(epochs, [_finite(r.get("val_loss")) for r in rows], "--s", color=colour, markersize=3)
        key = f"val_{info['monitor']}"
        if info["monitor"] and any(key in r for r in rows):
            panel = panels[info["shown"]]
            panel.plot(epochs, [_finite(r.get(key)) for r in rows], "-o", color=colour, markersize=3)
            if info["best_epoch"] and _finite(info["best"]) is not None:
                panel.plot([info["best_epoch"]], [info["best"]], "*", color=colour, markersize=14,
                           markeredgecolor="black")
    ax_loss.set(title="loss (solid: train, dashed: validation)" if val_loss else "training loss (no validation split)",
                xlabel="epoch", ylabel="loss")
    for monitor, panel in panels.items():
        panel.set(title=f"validation {monitor or 'metric'} (star: best epoch)", xlabel="epoch",
                  ylabel=monitor or "")
    epochs = [r["epoch"] for _, rows, _ in runs for r in rows]
    for ax in axes[0]:
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
        if min(epochs) == max(epochs):  # one epoch: the locator would tick 0.96 ... 1.04 around it
            ax.set_xticks([epochs[0]])
    fig.legend(handles=handles, loc="lower center", ncol=columns, fontsize=8, frameon=False)
    if shared is not None:
        fig.suptitle(f"runs under {shared}", fontsize=9)
    try:
        with warnings.catch_warnings():  # numpy's overflow warnings on such spans: the error below says it
            warnings.simplefilter("ignore", RuntimeWarning)
            fig.tight_layout(rect=(0, legend_in / (4.2 + legend_in), 1, 1))
            save_png(fig, path, dpi=110)
    except (ValueError, OverflowError) as exc:  # finite but beyond what matplotlib's axes can span (~1e308)
        raise UserError(f"{path}: cannot draw these curves ({exc}); a metrics.jsonl holds values out of "
                        f"range: {', '.join(map(str, run_dirs))}") from None
    finally:
        plt.close(fig)
    return str(path)
