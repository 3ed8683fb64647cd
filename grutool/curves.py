"""Learning curves of one or more runs as a PNG (`grutool plot`), read from metrics.jsonl. No torch.

Left: training loss (solid) and validation loss (dashed) per epoch; right: the monitored validation
metric, with each run's best epoch marked. Several runs share the axes, one colour each.
"""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path

from grutool.atomic import check_output_path, write_atomic
from grutool.errors import UserError, install
from grutool.rundir import METRICS
from grutool.families.base import relabel
from grutool.runs import describe, nouns, read_metrics


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


def plot_curves(run_dirs: list[str | Path], path: str | Path, labels: list[str] | None = None) -> str:
    """Draw the runs' curves into `path` (a .png); returns the path."""
    path = check_png_path(path)
    runs = []
    for i, run in enumerate(run_dirs):
        if not Path(run).is_dir():
            what = "is a file, not a run directory" if Path(run).exists() else "run directory not found"
            raise UserError(f"{run}: {what}; give the directory `grutool train` wrote")
        try:  # read_metrics takes an unreadable file for an empty one: "no epochs yet", a wrong reason
            if not (Path(run) / METRICS).is_file():
                raise UserError(f"{run}: not a run directory (no {METRICS}); list runs with `grutool runs`")
            with open(Path(run) / METRICS, "rb"):
                pass
        except OSError as e:  # another user's run: the file, or its folder, closed to us
            raise UserError(f"{Path(run) / METRICS}: cannot read the run's metrics ({e.strerror or type(e).__name__}); "
                            f"check its permissions, or copy the run somewhere you can read") from None
        rows = read_metrics(run)
        if not rows:
            raise UserError(f"{run}: no epochs in {METRICS} to plot yet (the run has not finished an epoch)")
        info = describe(run)
        # the monitor as the run's task names it (a numeric tagger's token_accuracy is step_accuracy)
        info["shown"] = relabel(info["monitor"], nouns(run)) if info["monitor"] else None
        runs.append((labels[i] if labels else str(run), rows, info))
    plt = _pyplot()
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(11, 4.2))
    monitors = sorted({d["shown"] for _, _, d in runs if d["shown"]})
    for n, (label, rows, info) in enumerate(runs):
        colour = f"C{n % 10}"
        epochs = [r["epoch"] for r in rows]
        # Markers as on the metric panel: a line alone draws nothing for a one-epoch run (or an epoch between gaps)
        ax_loss.plot(epochs, [_finite(r.get("train_loss")) for r in rows], "-o", color=colour, markersize=3,
                     label=f"{label} train")
        if any("val_loss" in r for r in rows):
            ax_loss.plot(epochs, [_finite(r.get("val_loss")) for r in rows], "--s", color=colour, markersize=3,
                         label=f"{label} validation")
        key = f"val_{info['monitor']}"
        if info["monitor"] and any(key in r for r in rows):
            ax_metric.plot(epochs, [_finite(r.get(key)) for r in rows], "-o", color=colour, markersize=3,
                           label=f"{label} ({info['shown']})")
            if info["best_epoch"] and _finite(info["best"]) is not None:
                ax_metric.plot([info["best_epoch"]], [info["best"]], "*", color=colour, markersize=14,
                               markeredgecolor="black")
    ax_loss.set(title="loss", xlabel="epoch", ylabel="loss")
    ax_metric.set(title=f"validation {' / '.join(monitors) or 'metric'} (star: best epoch)", xlabel="epoch",
                  ylabel=" / ".join(monitors))
    epochs = [r["epoch"] for _, rows, _ in runs for r in rows]
    for ax in (ax_loss, ax_metric):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
        if min(epochs) == max(epochs):  # one epoch: the locator would tick 0.96 ... 1.04 around it
            ax.set_xticks([epochs[0]])
        if ax.lines:
            ax.legend(fontsize=8)
    try:
        with warnings.catch_warnings():  # numpy's overflow warnings on such spans: the error below says it
            warnings.simplefilter("ignore", RuntimeWarning)
            fig.tight_layout()
            save_png(fig, path, dpi=110)
    except (ValueError, OverflowError) as exc:  # finite but beyond what matplotlib's axes can span (~1e308)
        raise UserError(f"{path}: cannot draw these curves ({exc}); a metrics.jsonl holds values out of "
                        f"range: {', '.join(map(str, run_dirs))}") from None
    finally:
        plt.close(fig)
    return str(path)
