"""How `train`, `eval` and `infer` show forecasts: the model beside its baselines, per horizon bucket; the
forecast rows with their times; `eval --plot` draws a few windows (history, forecast, actual). No torch."""

from __future__ import annotations

from rich.table import Table

from grutool.cli.render.tables import plain

NAMES = {"last_value": "last value", "seasonal_naive": "seasonal", "train_mean": "train mean"}


def summary_line(metrics: dict) -> str:
    """The headline figures: z-scored MSE/MAE (the published protocol) and the best baseline's MSE."""
    line = f"mse {metrics['mse']:.4f}, mae {metrics['mae']:.4f}"
    base = metrics.get("baselines") or {}
    if base:
        name, best = min(base.items(), key=lambda kv: kv[1]["mse"])
        line += f" (best baseline {NAMES.get(name, name)}: mse {best['mse']:.4f})"
    return line


def tables(metrics: dict) -> list:
    rows = [("model", metrics)] + [(NAMES.get(k, k) + (f" {metrics['season']}" if k == "seasonal_naive" else ""),
                                   v) for k, v in (metrics.get("baselines") or {}).items()]
    shape = (f"input {metrics['input_length']}, horizon {metrics['horizon']}, predicting "
             f"{', '.join(plain(c) for c in metrics['targets'])}")
    # The `scored` line above the table says which file and rows; without one (older results), the title does.
    t = Table(title=shape if metrics.get("scored") else
              f"{plain(metrics['source'])}: {metrics['windows']:,} windows, {shape}")
    # the MSE in units is in squared units (the regressor's line says so too): `mse (units)` read as the MAE's
    for col in ("forecast", "mse", "mae", "mse (units²)", "mae (units)", "smape %", "mase"):
        t.add_column(col, justify="left" if col == "forecast" else "right")
    from grutool.runs import figure  # the units' figures to 4 significant digits, trailing zeros kept (1.100)

    for name, m in rows:
        t.add_row(name, f"{m['mse']:.4f}", f"{m['mae']:.4f}", figure(m["mse_original"]), figure(m["mae_original"]),
                  f"{m['smape']:.2f}", f"{m['mase']:.3f}")
    q = metrics.get("quantiles")
    # a line of its own below the table: as the table's caption it wrapped centred, ragged, under a narrow table
    band = [f"quantiles {', '.join(f'{x:g}' for x in q['levels'])}: {100 * q['coverage']:.1f} % of values between "
            f"the outermost two (nominal {100 * q['nominal']:.0f} %), pinball {q['pinball']:.4f}"] if q else []
    b = Table(title="mse / mae (z-scored) per horizon bucket")
    b.add_column("steps ahead")
    for name, _ in rows:
        b.add_column(name, justify="right")
    for k, bucket in enumerate(metrics["buckets"]):
        b.add_row(bucket["steps"], *(f"{m['buckets'][k]['mse']:.3f}/{m['buckets'][k]['mae']:.3f}" for _, m in rows))
    scored = [f"scored {plain(metrics['scored'])}"] if metrics.get("scored") else []
    return (*scored, t, *band, b)


def line(result: dict) -> str:
    """The forecast rows as tab-separated text: a header (time column and predicted columns), one row per step;
    long form, a `series NAME` line first. With quantiles, each column's other levels follow it as `COLUMN@LEVEL`
    (the column itself is the point forecast, the level nearest 0.5)."""
    bands = result.get("quantiles") or {}
    point = next((k for k, v in bands.items() if v == result["forecast"]), None)
    others = [k for k in bands if k != point]
    cols = [result["time_column"] or "time"] if result["times"] else ["step"]
    for c in result["columns"]:
        cols += [c] + [f"{c}@{k}" for k in others]
    lines = ([f"series {result['series']}"] if "series" in result else []) + ["\t".join(cols)]
    for k, row in enumerate(result["forecast"]):
        first = result["times"][k] if result["times"] else str(k + 1)
        values = []
        for j, v in enumerate(row):
            values += [f"{v:.6g}"] + [f"{bands[q][k][j]:.6g}" for q in others]
        lines.append("\t".join([first] + values))
    return "\n".join(lines)


def plot(metrics: dict, path, title: str = "") -> str:
    """`eval --plot`: a panel per sampled window: the last input rows, the forecast and the actual values, in the
    column's original units; one legend for the figure, below the panels, so it hides no data."""
    from grutool.curves import _pyplot, check_png_path, save_png

    path = check_png_path(path, option="plot")
    samples = metrics.get("samples") or []
    levels = (metrics.get("quantiles") or {}).get("levels") or []
    band = f"quantiles {levels[0]:g} to {levels[-1]:g}" if len(levels) > 1 else "quantile band"
    plt = _pyplot()
    # constrained layout leaves room for the suptitle above and the "outside" legend below the panels
    fig, axes = plt.subplots(len(samples), 1, figsize=(9, 2.6 * len(samples) + 0.5), squeeze=False,
                             layout="constrained")
    for ax, s in zip(axes[:, 0], samples):
        h, f = len(s["history"]), len(s["forecast"])
        ax.plot(range(h), s["history"], color="0.4", lw=1, label="history")
        ax.plot(range(h, h + f), s["actual"], color="tab:blue", lw=1.2, label="actual")
        ax.plot(range(h, h + f), s["forecast"], color="tab:orange", lw=1.5, label="forecast")
        if "lower" in s:
            ax.fill_between(range(h, h + f), s["lower"], s["upper"], color="tab:orange", alpha=0.2,
                            label=band)
        ax.axvline(h - 0.5, color="0.7", ls="--", lw=0.8)
        of = f" of series {s['series']!r}" if "series" in s else ""  # long form: panels of several series
        ax.set_title(f"{s['column']}{of}, window {s['window']} (forecast from {s['time']})", fontsize=9)
        ax.set_xlabel("rows shown (the forecast starts at the dashed line)", fontsize=8)
        ax.set_ylabel(f"{s['column']} (original units)", fontsize=8)
    targets = metrics.get("targets") or []
    first = (f"; {samples[0]['column']}, the first of the {len(targets)} predicted columns"
             if samples and len(targets) > 1 else "")
    fig.suptitle((title or "forecasts") + first, fontsize=10)
    if samples:  # every panel draws the same entries: the first one's handles serve the figure
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=len(handles), fontsize=8, frameon=False)
    save_png(fig, path, dpi=100)
    plt.close(fig)
    return str(path)
