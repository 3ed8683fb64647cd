"""`--plot`: GRU vs LSTM (vs RNN) throughput as grouped bars, one panel per mode.

matplotlib is an optional extra (the `plot` extra: `grutool.errors.install`), imported only here.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from grutool.bench.report import SHOWN, unit
from grutool.curves import save_png
from grutool.errors import UserError, install

COLORS = {"gru": "#1f77b4", "lstm": "#ff7f0e", "rnn": "#2ca02c"}
FUSED = ("onednn", "cudnn", "miopen")


def _label(row: dict, varying: list[tuple[str, str, object]]) -> str:
    """What tells a group of bars apart (never the cell: a group holds one bar per cell)."""
    parts = [f"{header}={fmt(row[name])}" if len(header) <= 2 else fmt(row[name]) for name, header, fmt in varying]
    return "\n".join(parts) or "all"


def plot(report: dict, path: str | Path) -> None:
    """Write a PNG of tokens/s per cell (median, with the interquartile range as error bars)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch
    except ImportError:
        raise UserError(f"--plot needs matplotlib, an optional extra: {install('plot')}") from None
    rows = report["rows"]
    if not rows:
        raise UserError("--plot: the report has no rows")
    varying = [(name, header, fmt) for name, header, fmt in SHOWN
               if name not in ("cell", "mode") and len({r.get(name) for r in rows}) > 1]
    if len({r["kernels"] for r in rows}) > 1:
        off = "cuDNN off" if rows[0]["device"] == "cuda" else "oneDNN off"
        # One group per --kernels choice (default, fused and compiled rows were once all "default kernels",
        # their bars drawn on top of each other).
        varying.append(("kernels", "kernels",
                        lambda k: off if k == "native" else "default kernels" if k == "default" else k))
    modes = list(dict.fromkeys(r["mode"] for r in rows))
    cells = list(dict.fromkeys(r["cell"] for r in rows))
    groups = {m: list(dict.fromkeys(_label(r, varying) for r in rows if r["mode"] == m)) for m in modes}
    widest = max(len(g) for g in groups.values())
    fig, axes = plt.subplots(len(modes), 1, figsize=(max(6.0, 1.0 + 0.8 * widest), 4.2 * len(modes)),
                             squeeze=False)
    width = 0.8 / len(cells)
    for ax, mode in zip(axes[:, 0], modes):
        labels = groups[mode]
        for j, cell in enumerate(cells):
            xs, ys, lo, hi, fused = [], [], [], [], []
            for r in rows:
                if r["mode"] == mode and r["cell"] == cell:
                    fused.append(r["kernel"] in FUSED)
                    x = labels.index(_label(r, varying)) + (j - (len(cells) - 1) / 2) * width
                    y = r["tokens_per_s"]
                    xs.append(x)
                    ys.append(y)
                    # Slower samples (q3 time) mean fewer tokens/s: the bar's IQR in throughput.
                    lo.append(y - r["tokens"] / (r["q3_ms"] / 1000) if r["q3_ms"] else 0)
                    hi.append(r["tokens"] / (r["q1_ms"] / 1000) - y if r["q1_ms"] else 0)
            bars = ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, label=cell.upper(), color=COLORS.get(cell))
            for bar, library in zip(bars, fused):
                if library:
                    bar.set_hatch("//")
                    bar.set_edgecolor("black")
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, fontsize=7)
        ax.set_title(mode)
        values = [r["tokens_per_s"] for r in rows if r["mode"] == mode and r["tokens_per_s"] > 0]
        if values and max(values) > 20 * min(values):
            ax.set_yscale("log")  # sizes differ by orders of magnitude; on a log axis equal ratios look equal
        ax.set_ylabel(f"{unit(report['rows'])} / s (median)")
        ax.grid(axis="y", alpha=0.3)
        # Handles drawn here: the bars' own would copy the first bar's hatching.
        handles = [Patch(color=COLORS.get(c), label=c.upper()) for c in cells]
        if any(r["kernel"] in FUSED for r in rows):
            handles.append(Patch(facecolor="white", edgecolor="black", hatch="//", label="oneDNN / cuDNN kernel"))
        ax.legend(handles=handles, fontsize=8)
    e = report["env"]
    threads = f"{e['torch_threads']} thread{'' if e['torch_threads'] == 1 else 's'}"
    title = (f"grutool bench: torch {e['torch']}, {e.get('gpu') or e['cpu']}, {threads}, {rows[0]['device']}; "
             f"error bars: interquartile range")
    # Wrapped to the figure's width (a 9-point character is at most ~6 points wide): one long line ran past
    # both edges of a 6-inch figure.
    fig.suptitle(textwrap.fill(title, width=int(fig.get_figwidth() * 72 / 6)), fontsize=9)
    fig.tight_layout()
    try:
        save_png(fig, path, dpi=120)  # in memory, then atomically: a full disk is one line
    finally:
        plt.close(fig)
