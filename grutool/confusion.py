"""Confusion matrices as a PNG (`grutool eval --plot`), drawn from eval's metrics dict. No torch.

Any metrics entry named `confusion` or `*_confusion` with `labels` and `matrix` (rows: gold, columns:
predicted) becomes one panel: a classifier's classes, a tagger's tags, a joint model's tags and intents.
Cells are coloured by the fraction of their gold row (so rare labels stay readable next to a
dominant `O`), with the count written in each cell.
"""

from __future__ import annotations

from pathlib import Path

from grutool.curves import _pyplot, check_png_path, save_png
from grutool.errors import UserError

MAX_COUNTS_SHOWN = 30  # above this many labels the numbers no longer fit their cells


def matrices(metrics: dict) -> list[tuple[str, list[str], list[list[int]]]]:
    """(title, labels, matrix) of every confusion matrix in an eval result."""
    out = []
    for key, value in metrics.items():
        if (key == "confusion" or key.endswith("_confusion")) and isinstance(value, dict) and value.get("matrix"):
            title = "confusion" if key == "confusion" else f"{key.removesuffix('_confusion')} confusion"
            out.append((title, [str(x) for x in value["labels"]], value["matrix"]))
    return out


def plot_confusion(metrics: dict, path: str | Path, title: str = "") -> str:
    """Draw the confusion matrices of `metrics` into `path` (a .png); returns the path."""
    path = check_png_path(path, option="plot")
    panels = matrices(metrics)
    if not panels:
        raise UserError("--plot: this run's evaluation has no confusion matrix "
                        "(classifiers, taggers and joint models have one)", option="plot")
    plt = _pyplot()
    from matplotlib.colors import Normalize

    sizes = [max(4.5, 0.45 * len(labels) + 2.5) for _, labels, _ in panels]
    fig, axes = plt.subplots(1, len(panels), figsize=(sum(sizes) + 1.2 * len(panels), max(sizes)), squeeze=False)
    for ax, (name, labels, matrix) in zip(axes[0], panels):
        n = len(labels)
        rows = [sum(r) for r in matrix]
        share = [[c / rows[i] if rows[i] else 0.0 for c in r] for i, r in enumerate(matrix)]
        image = ax.imshow(share, cmap="Blues", norm=Normalize(0, 1), interpolation="nearest")
        bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        bar.set_label("share of the gold label's row")
        font = 9 if n <= 12 else max(5, 9 - (n - 12) // 4)
        if n <= MAX_COUNTS_SHOWN:
            for i in range(n):
                for j in range(n):
                    ax.text(j, i, f"{matrix[i][j]:,}", ha="center", va="center", fontsize=font,
                            color="white" if share[i][j] > 0.5 else "black")
        ax.set_xticks(range(n), labels, rotation=45 if max(map(len, labels)) > 3 else 0, ha="right"
                      if max(map(len, labels)) > 3 else "center", fontsize=font)
        ax.set_yticks(range(n), labels, fontsize=font)
        ax.set_xlabel("predicted")
        ax.set_ylabel("gold")
        ax.set_title(f"{name} (n={sum(rows):,})")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    try:
        save_png(fig, path, dpi=110)
    finally:
        plt.close(fig)
    return str(path)
