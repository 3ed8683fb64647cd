"""Predicted against true values as a PNG (`grutool eval --plot` of a regressor), drawn from eval's metrics dict
(its `scatter`: the first points of the split, in the target's units). No torch."""

from __future__ import annotations

from pathlib import Path

from grutool.curves import _pyplot, check_png_path, save_png


def plot_scatter(metrics: dict, path: str | Path, title: str = "") -> str:
    """One panel: a point per sequence (true on x, predicted on y) and the y = x line; returns the path."""
    path = check_png_path(path, option="plot")
    true, predicted = metrics["scatter"]["true"], metrics["scatter"]["predicted"]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    ax.scatter(true, predicted, s=12, alpha=0.6)
    lo, hi = min(true + predicted, default=0.0), max(true + predicted, default=1.0)
    ax.plot([lo, hi], [lo, hi], color="grey", linewidth=1, linestyle="--", label="predicted = true")
    target = metrics["scatter"].get("target")  # a table column's name; a .ts file's target has none
    ax.set_xlabel(f"true {target}" if target else "true")
    ax.set_ylabel(f"predicted {target}" if target else "predicted")
    shown = f"{len(true):,} of {metrics['n']:,}" if len(true) < metrics["n"] else f"{metrics['n']:,}"
    ax.set_title(f"n={shown}; RMSE {metrics['rmse']:.4g}, MAE {metrics['mae']:.4g}, R² {metrics['r2']:.3f}", fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    try:
        save_png(fig, path, dpi=110)
    finally:
        plt.close(fig)
    return str(path)
