"""Bench reports: one dict, written as JSON (the record), CSV, Markdown or a rich table.

The JSON file is the source of truth: schema name and version, the environment,
the run settings and one row per workload (its Spec fields, what ran, the
statistics and every raw sample). It reads back to an equal dict, and `compare`
matches the rows of two reports by their Spec fields.

Nothing here imports torch: reading, comparing, rendering and the atomic write (grutool.atomic).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import fields
from pathlib import Path
from typing import Callable, Optional

from grutool import jsonsafe
from grutool.atomic import write_text_atomic
from grutool.bench.grid import Spec
from grutool.errors import UserError, counted

SCHEMA = "grutool-bench"
VERSION = 1

KEY_FIELDS = [f.name for f in fields(Spec)]
MEASURED = ["kernel", "params", "tokens", "unit", "repeats", "number", "median_ms", "q1_ms", "q3_ms", "min_ms",
            "max_ms", "spread", "noisy", "tokens_per_s", "vs_lstm", "peak_mem_mb", "rss_growth_mb"]
CSV_FIELDS = KEY_FIELDS + MEASURED  # every row field but the raw samples
FORMATS = {".json": "json", ".csv": "csv", ".md": "markdown", ".markdown": "markdown"}


def row_key(row: dict) -> tuple:
    return tuple(row.get(name) for name in KEY_FIELDS)


def key_without_cell(row: dict) -> tuple:
    return tuple(row.get(name) for name in KEY_FIELDS if name != "cell")


def add_ratios(rows: list[dict]) -> None:
    """vs_lstm: each row's median time over the LSTM row that differs from it only in the cell; for a `fused` or
    `compiled` row without such an LSTM row, over LSTM's `default` row (its best path)."""
    lstm = {key_without_cell(r): r for r in rows if r["cell"] == "lstm"}
    for r in rows:
        other = lstm.get(key_without_cell(r))
        if other is None and r.get("kernels") in ("fused", "compiled"):
            other = lstm.get(key_without_cell({**r, "kernels": "default"}))
        r["vs_lstm"] = r["median_ms"] / other["median_ms"] if other and other["median_ms"] > 0 else None


# --- files ------------------------------------------------------------------------


def to_json(report: dict) -> str:
    return jsonsafe.dumps(report, indent=1) + "\n"


def read_report(path: str | Path) -> dict:
    """A JSON report written by `grutool bench --output x.json`, checked for schema and version."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: report not found")
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not a JSON bench report (not UTF-8 text, byte {e.start})") from None
    except json.JSONDecodeError as e:  # where: file:line:column, as every other file error
        raise UserError(f"{path}:{e.lineno}:{e.colno}: not a JSON bench report ({e.msg}); "
                        f"write one with grutool bench --output report.json") from None
    if not isinstance(report, dict) or report.get("schema") != SCHEMA or not isinstance(report.get("rows"), list):
        raise UserError(f"{path}: not a grutool bench report (no \"schema\": \"{SCHEMA}\" with rows); "
                        f"write one with grutool bench --output report.json")
    if report.get("version") != VERSION:
        raise UserError(f"{path}: bench report version {report.get('version')}, this grutool reads version "
                        f"{VERSION}; rerun the benchmark with this version")
    return report


def to_csv(report: dict) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in report["rows"]:
        w.writerow(jsonsafe.finite(row))
    return buf.getvalue()


def output_format(path: str | Path) -> str:
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise UserError(f"--output {path}: unknown format; use a .md, .json or .csv file name")
    return fmt


def write(report: dict, path: str | Path) -> None:
    """Write `report` in the format its file name asks for (.json, .csv, .md), atomically."""
    render = {"json": to_json, "csv": to_csv, "markdown": to_markdown}[output_format(path)]
    write_text_atomic(render(report), Path(path))


# --- what a reader sees -----------------------------------------------------------


def _ms(x: Optional[float]) -> str:
    if x is None:
        return "-"
    return f"{x:.3f}" if x < 1 else f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:.0f}"


def _kernel(row: dict) -> str:
    """The kernel that ran; `*` when the row asked for oneDNN/cuDNN to be off (--kernels native)."""
    return row["kernel"] + ("*" if row["kernels"] == "native" else "")


def _off(rows: list[dict]) -> str:
    return "cuDNN" if any(r.get("device") == "cuda" for r in rows) else "oneDNN"


# Spec fields shown as columns when they vary across rows, else once above the table.
SHOWN = [("config", "config", str), ("cell", "cell", str), ("mode", "mode", str), ("lengths", "lengths", str),
         ("device", "device", str), ("dtype", "dtype", str), ("batch_size", "B", str), ("seq_len", "T", str),
         ("input_size", "I", str), ("hidden_size", "H", str), ("num_layers", "L", str),
         ("bidirectional", "bi", lambda v: "yes" if v else "no")]
RIGHT = {"batch_size", "seq_len", "input_size", "hidden_size", "num_layers"}

Column = tuple[str, Callable[[dict], str], bool]  # header, cell text, right-aligned


def _spec_columns(rows: list[dict]) -> tuple[list[Column], list[str]]:
    """Columns for the Spec fields that vary across `rows`, and `name=value` for the others."""
    cols, fixed = [], []
    for name, header, fmt in SHOWN:
        values = {r.get(name) for r in rows}
        if not values:
            continue
        if name == "cell" or len(values) > 1:
            cols.append((header, lambda r, n=name, f=fmt: f(r.get(n)), name in RIGHT))
        elif values != {None}:
            fixed.append(f"{header}={fmt(values.pop())}")
    return cols, fixed


def unit(rows: list[dict]) -> str:
    """What the rows' `tokens` and `tokens_per_s` count: tokens (layer rows, most configs, reports written
    before rows said) or a family's examples (`--config` of a forecast: windows); `items` when rows differ."""
    units = {r.get("unit") or "tokens" for r in rows}
    return units.pop() if len(units) == 1 else "items"


def _measure_columns(full: bool, rows: list[dict]) -> list[Column]:
    """`full` (Markdown) adds the quartiles and extremes; the terminal gets the spread as a percentage."""
    spread = [("IQR ms", lambda r: f"{_ms(r['q1_ms'])}–{_ms(r['q3_ms'])}", True),
              ("min–max ms", lambda r: f"{_ms(r['min_ms'])}–{_ms(r['max_ms'])}", True)] if full else [
              ("IQR", lambda r: "-" if r["spread"] is None else f"{100 * r['spread']:.0f}%", True)]
    # Several --kernels choices in one report: a `default` row says so, else it reads as the row of the kernel it
    # picked (`--kernels default,compiled`: two rows of `compiled`).
    chose = len({r.get("kernels") for r in rows}) > 1
    kernel = (lambda r: _kernel(r) + (" (default)" if r.get("kernels") == "default" else "")) if chose else _kernel
    return [
        ("kernel", kernel, False),
        ("ms/batch", lambda r: ("~" if r["noisy"] else "") + _ms(r["median_ms"]), True),
        *spread,
        (f"{unit(rows)}/s", lambda r: f"{r['tokens_per_s']:,.{0 if r['tokens_per_s'] >= 100 else 1}f}", True),
        ("vs LSTM", lambda r: "-" if r["vs_lstm"] is None else f"{r['vs_lstm']:.2f}", True),
        ("params", lambda r: f"{r['params']:,}", True),
        ("mem MB", lambda r: "-" if r["peak_mem_mb"] is None else f"{r['peak_mem_mb']:.1f}", True),
    ]


def environment_lines(report: dict) -> list[str]:
    e, s = report["env"], report.get("settings", {})
    lines = [f"torch {e['torch']}, python {e['python']}, grutool {e['grutool']}; {e['date']}",
             f"CPU: {e['cpu']} ({e['cpu_count']} logical CPUs, {e.get('cpu_capability')}); "
             f"{e['torch_threads']} torch thread{'' if e['torch_threads'] == 1 else 's'}"
             f"{'' if e['torch_threads'] == 1 or not e.get('thread_wait') else ' (' + e['thread_wait'] + ')'}; "
             f"oneDNN {e.get('onednn_version') or '?'} "
             f"{'enabled' if e['mkldnn_enabled'] else 'disabled'}"
             f"{'' if e['mkldnn_available'] else ' (not available)'}"]
    if e.get("gpu"):
        lines.append(f"GPU: {e['gpu']}; CUDA {e['cuda']}, cuDNN {e['cudnn']}")
    if e.get("loadavg"):
        lines.append(f"load average {e['loadavg'][0]:.2f} at start, "
                     f"{(e.get('loadavg_end') or e['loadavg'])[0]:.2f} at end (1 min)")
    if s:
        lines.append(f"median of {counted(s['repeats'], 'sample')} after {s['warmup']} warm-up call(s), each sample at least "
                     f"{s['min_sample_ms']:g} ms, cells and kernels interleaved; memory: {s['memory']}")
    return lines


def legend(report: dict) -> str:
    off = _off(report["rows"])
    return (f"ms/batch: median time per batch (~: interquartile range above "
            f"{report.get('settings', {}).get('noisy_spread', 0.1):.0%} of it); vs LSTM: time over the LSTM row "
            f"that differs only in the cell (or LSTM's default row where there is none; below 1 = faster); kernel: "
            f"fused = grutool's fused kernel, compiled = its C++ time loop, onednn/cudnn = fused library kernel, "
            f"native = ATen's per-step loop; *: {off} switched off (--kernels native)")


def rich_table(report: dict, measures: Optional[list[int]] = None, title: bool = True, caption: bool = True):
    """The terminal table: the spec columns, then the measure columns (those at `measures`' indices; all by
    default). Cells fold rather than end in `…`: a number is never cut, however narrow the terminal."""
    from rich.markup import escape
    from rich.table import Table

    cols, fixed = _spec_columns(report["rows"])
    shown = _measure_columns(full=False, rows=report["rows"])
    cols += shown if measures is None else [shown[i] for i in measures]
    heading = "grutool bench" + (f": {', '.join(fixed)}" if fixed else "")
    legend_lines = "\n".join([legend(report)] + environment_lines(report))
    t = Table(title=escape(heading) if title else None, caption=escape(legend_lines) if caption else None,
              caption_justify="left")
    for header, _, right in cols:
        t.add_column(header, justify="right" if right else "left", overflow="fold")
    for r in report["rows"]:
        t.add_row(*[escape(fn(r)) for _, fn, _ in cols])
    return t


def rich_tables(report: dict, fits: Callable[[object], bool]) -> list:
    """`rich_table`, or where `fits` (the terminal's width) says it does not fit, its measure columns spread
    over as few tables as fit, each repeating the spec columns and the kernel (what tells a row from the others)
    so that a row reads on its own, then the legend as lines of its own (a caption would wrap to the narrower
    table's width)."""
    whole = rich_table(report)
    if fits(whole):
        return [whole]
    count = len(_measure_columns(full=False, rows=report["rows"]))  # index 0: the kernel
    groups: list[list[int]] = [[0]]
    for i in range(1, count):
        if len(groups[-1]) > 1 and not fits(rich_table(report, groups[-1] + [i], title=False, caption=False)):
            groups.append([0])
        groups[-1].append(i)
    from rich.text import Text

    tables: list = [rich_table(report, g, title=n == 0, caption=False) for n, g in enumerate(groups)]
    return tables + [Text("\n".join([legend(report)] + environment_lines(report)))]


def to_markdown(report: dict) -> str:
    cols, fixed = _spec_columns(report["rows"])
    cols += _measure_columns(full=True, rows=report["rows"])
    out = ["# grutool bench", ""]
    out += [f"- {line}" for line in environment_lines(report)]
    if fixed:
        out.append(f"- every row: {', '.join(fixed)}")
    out.append(f"- {legend(report)}")
    out += ["", "| " + " | ".join(h for h, _, _ in cols) + " |",
            "|" + "|".join("---:" if right else "---" for _, _, right in cols) + "|"]
    for r in report["rows"]:
        out.append("| " + " | ".join(fn(r).replace("|", "\\|") for _, fn, _ in cols) + " |")
    for w in report.get("warnings", []):
        out += ["", f"**Warning:** {w}"]
    return "\n".join(out) + "\n"


# --- comparing two reports --------------------------------------------------------

ENV_COMPARED = ("torch", "cpu", "torch_threads", "thread_wait", "mkldnn_enabled", "onednn_version", "gpu", "cuda", "cudnn")


def compare(new: dict, old: dict) -> dict:
    """Per-row ratios new/old of the median time, for rows present in both (matched by Spec fields)."""
    before = {row_key(r): r for r in old["rows"]}
    matched, only_new = [], 0
    for r in new["rows"]:
        o = before.pop(row_key(r), None)
        if o is None:
            only_new += 1
            continue
        ratio = r["median_ms"] / o["median_ms"] if o["median_ms"] > 0 else None
        matched.append({"key": {k: r[k] for k in KEY_FIELDS}, "old_ms": o["median_ms"], "new_ms": r["median_ms"],
                        "ratio": ratio, "old_kernel": o.get("kernel"), "new_kernel": r.get("kernel"),
                        "noisy": bool(r.get("noisy") or o.get("noisy"))})
    changes = [f"{k}: {old['env'].get(k)} -> {new['env'].get(k)}" for k in ENV_COMPARED
               if old.get("env", {}).get(k) != new.get("env", {}).get(k)]
    return {"rows": matched, "only_new": only_new, "only_old": len(before), "env_changes": changes}


def compare_table(result: dict):
    from rich.markup import escape
    from rich.table import Table

    cols, fixed = _spec_columns([m["key"] for m in result["rows"]])
    t = Table(title="against the earlier report: new / old median time" + (f" ({', '.join(fixed)})" if fixed else ""))
    for header, _, right in cols:
        t.add_column(header, justify="right" if right else "left")
    for header in ("kernel", "old ms", "new ms", "new/old"):
        t.add_column(header, justify="left" if header == "kernel" else "right")
    for m in result["rows"]:
        star = "*" if m["key"]["kernels"] == "native" else ""
        # the kernel `default` picked, marked as the report's own table marks it: beside a row that asked for
        # that kernel by name, `compiled` alone read as that row
        chose = " (default)" if m["key"]["kernels"] == "default" else ""
        kernel = (f"{m['new_kernel']}{star}{chose}" if m["old_kernel"] == m["new_kernel"]
                  else f"{m['old_kernel']}{star} -> {m['new_kernel']}{star}{chose}")
        ratio = "-" if m["ratio"] is None else ("~" if m["noisy"] else "") + f"{m['ratio']:.2f}×"
        if m["ratio"] is not None and abs(m["ratio"] - 1) > 0.05:
            ratio = f"[{'green' if m['ratio'] < 1 else 'red'}]{ratio}[/]"
        t.add_row(*[escape(fn(m["key"])) for _, fn, _ in cols], escape(kernel), _ms(m["old_ms"]), _ms(m["new_ms"]), ratio)
    return t
