"""`grutool shapes`: parse options, call grutool.shapes, render its report as tables or JSON.

torch and grutool.shapes are imported inside the command so `grutool --help` stays fast.
"""

from __future__ import annotations

import warnings
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from grutool.kernels import describe_auto


class Cell(str, Enum):
    gru = "gru"
    lstm = "lstm"
    rnn = "rnn"


def shapes(
    cell: Optional[Cell] = typer.Option(None, help="Recurrent cell: gru (default), lstm or rnn."),
    input_size: Optional[int] = typer.Option(None, "--input-size", metavar="N", help="I: input features per step (default 10)."),
    hidden_size: Optional[int] = typer.Option(None, "--hidden-size", metavar="N",
                                              help="H: hidden features per direction (default 20)."),
    layers: Optional[int] = typer.Option(None, "--layers", metavar="N", help="L: num_layers (default 1)."),
    bidirectional: bool = typer.Option(False, "--bidirectional", help="Two directions (D=2)."),
    batch_first: bool = typer.Option(False, "--batch-first", help="input and output as (B, T, ·)."),
    batch: Optional[int] = typer.Option(None, "--batch", metavar="N", help="B (default 3, or the number of --lengths)."),
    seq_len: Optional[int] = typer.Option(None, "--seq-len", metavar="N", help="T (default 5, or the longest of --lengths)."),
    lengths: Optional[str] = typer.Option(None, "--lengths", metavar="N,N,...", help="Pack the batch with these lengths, e.g. 5,3,2."),
    no_bias: bool = typer.Option(False, "--no-bias", help="bias=False: no bias_ih / bias_hh."),
    dropout: Optional[float] = typer.Option(None, "--dropout", metavar="P", help="Dropout between layers (needs --layers 2+)."),
    proj_size: Optional[int] = typer.Option(None, "--proj-size", metavar="N", help="P: LSTM projection of h (--cell lstm only)."),
    kernel: Optional[str] = typer.Option(None, "--kernel", metavar="NAME", help=f"auto (default: per call on CPU, "
                                         f"{describe_auto()}), native (PyTorch's module), fused or compiled (its loop in C++, built on first use); every check "
                                         "runs on that module."),
    config: Optional[Path] = typer.Option(None, "--config", metavar="CONFIG.yaml",
                                          help="Trace the model a config builds instead of one layer."),
    set_: List[str] = typer.Option([], "--set", metavar="KEY=VALUE",
                                   help="Override a field of --config: --set model.hidden_size=256 (repeatable)."),
    explain: bool = typer.Option(False, "--explain",
                                 help="Cell equations and a from-scratch step checked against the module."),
    json_: bool = typer.Option(False, "--json", help="Print the report as one JSON object only."),
):
    """Explain and prove every tensor shape of a GRU/LSTM/RNN layer, or of the model a config builds.

    \b
    Examples:
      grutool shapes --layers 2 --bidirectional
      grutool shapes --bidirectional --lengths 3,5,2 --explain
      grutool shapes --config configs/sentiment.yaml   # any task's model, traced
      grutool shapes --config configs/sentiment.yaml --set model.num_layers=2
    """
    from grutool.cli.console import err, out, setup_logging, user_errors, warning
    from grutool.errors import UserError

    setup_logging(quiet=True)  # the library's warnings (a kernel that cannot be built) as `warning: ...` lines
    with user_errors():
        layer_options = {"--cell": cell, "--input-size": input_size, "--hidden-size": hidden_size,
                         "--layers": layers, "--bidirectional": bidirectional or None,
                         "--batch-first": batch_first or None, "--no-bias": no_bias or None,
                         "--dropout": dropout, "--proj-size": proj_size, "--kernel": kernel}
        if set_ and config is None:
            raise UserError(f"--set {set_[0]}: sets a field of a config; give it with --config CONFIG.yaml, or "
                            f"use the layer options (--hidden-size, --layers, ...) without --set")
        if config is not None:
            given = [name for name, value in layer_options.items() if value is not None]
            if given:
                raise UserError(f"{given[0]}: not used with --config (the model's settings come from the config "
                                f"file); leave it out, or drop --config to inspect a single layer")
        from grutool import shapes as lib

        lens = lib.parse_lengths(lengths) if lengths is not None else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the report lists them; printed below, once, on stderr
            if config is not None:
                report = lib.config_report(config, batch, seq_len, lens, want_explain=explain, overrides=set_)
            else:
                given = dict(cell=cell.value if cell else None, input_size=input_size, hidden_size=hidden_size,
                             num_layers=layers, bidirectional=bidirectional, batch_first=batch_first,
                             batch=batch, seq_len=seq_len, lengths=lens, bias=not no_bias, dropout=dropout,
                             proj_size=proj_size, kernel=kernel)
                spec = lib.LayerSpec(**{k: v for k, v in given.items() if v is not None})
                report = lib.layer_report(spec, want_explain=explain)
    for message in report["warnings"]:
        warning(message)
    if json_:
        from grutool import jsonsafe

        print(jsonsafe.dumps(report))
    elif report["mode"] == "config":
        _render_config(out, report)
    else:
        _render_layer(out, report)
    if not report["all_passed"]:
        err.print("[red]error:[/] a check failed (marked ✗ above); that is a bug in grutool or PyTorch, please "
                  "report it with this command line", markup=True)
        raise typer.Exit(1)


# --- rendering -------------------------------------------------------------------------------------


def _shape_lines(value) -> str:
    """A traced module's inputs or outputs, one per line, each shape without spaces: `(3,5,128)`."""
    if isinstance(value, dict) and "packed_data" not in value:
        return "\n".join(f"{k} {_shape_lines(v)}" for k, v in value.items())
    if isinstance(value, list) and value and not all(isinstance(v, int) for v in value):
        return "\n".join(_shape_lines(v) for v in value)
    return _shape(value).replace(", ", ",")


def _shape(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        if "packed_data" in value:
            return f"packed {_shape(value['packed_data'])}"
        return ", ".join(f"{k} {_shape(v)}" for k, v in value.items())
    if value and all(isinstance(v, int) for v in value):
        return "(" + ", ".join(map(str, value)) + ("," if len(value) == 1 else "") + ")"
    if not value:
        return "()"
    return ", ".join(_shape(v) for v in value)


def _e(text: str) -> str:
    """Report text inside rich markup: brackets such as [forward | backward] are literal."""
    from rich.markup import escape

    return escape(text)


def _mark(passed: bool) -> str:
    return "[green]✓[/]" if passed else "[red]✗[/]"


def _diff(check: dict) -> str:
    return check.get("detail") or f"{check['max_abs_diff']:.1e}"


def _tensor_table(title: str, rows: list[dict]):
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for col in ("tensor", "symbolic", "shape", "meaning"):
        t.add_column(col, justify="right" if col == "shape" else "left")
    for r in rows:
        shape = _shape(r["shape"]) if r["matches_formula"] else f"[red]{_shape(r['shape'])} ≠ formula[/]"
        t.add_row(_e(r["name"]), r["symbol"], shape, _e(r["meaning"]))
    return t


def _checks_table(title: str, checks: list[dict]):
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    t.add_column("")
    t.add_column("claim")
    t.add_column("max |diff|", justify="right")
    for c in checks:
        t.add_row(_mark(c["passed"]), _e(c["claim"]), _e(_diff(c)))
    return t


def _render_layer(console, report: dict) -> None:
    from rich.table import Table

    s = report["settings"]
    sym = "  ".join(f"{k}={v}" for k, v in report["symbols"].items() if k not in ("N", "M"))
    console.print(f"[bold]{report['module']}[/]  {sym}  batch_first={s['batch_first']}  bias={s['bias']}"
                  + (f"  dropout={s['dropout']}" if s["dropout"] else "")
                  + ("  layer_norm=True" if s.get("layer_norm") else "") + ("  residual=True" if s.get("residual") else ""))
    if len(report["paths"]) > 1:  # kernel auto chose per call: say where each check ran
        from grutool.shapes.layer import PATHS

        runs = ", ".join(f"{n} on {PATHS[path]}" for path, n in sorted(report["paths"].items()))
        console.print(f"kernel {s['kernel']} picks per call (grutool.kernels.AUTO); this report's "
                      f"{sum(report['paths'].values())} forward calls: {runs}")
    console.print(_tensor_table("tensors", report["tensors"]))

    p = report["packed"]
    if p:
        title = (f"packed: lengths {','.join(map(str, s['lengths']))}, enforce_sorted=False; "
                 f"N = Σ lengths = {report['symbols']['N']}, M = longest = {report['symbols']['M']}")
        console.print(_tensor_table(title,
                                    [p["input_data"], p["batch_sizes"], p["output_data"]]))
        console.print(f"batch_sizes = {p['batch_sizes']['values']}; sorted_indices = {p['sorted_indices']} "
                      f"(longest first), unsorted_indices = {p['unsorted_indices']} (h_n is back in your order)")
        console.print("output steps: ■ valid, · padding (0 after unpacking)")
        for b, (n, mask) in enumerate(zip(s["lengths"], p["padding_mask"])):
            console.print(f"  b={b}  len {n:>3}  " + "".join("·" if pad else "■" for pad in mask))

    params = report["parameters"]
    t = Table(title="parameters", title_justify="left")
    for col in ("name", "symbolic", "shape", "rows by gate", "count"):
        t.add_column(col, justify="right" if col in ("shape", "count") else "left")
    for r in params["tensors"]:
        gates = (f"{'|'.join(g['gate'] for g in r['gates'])} ({len(r['gates'])}×{r['gates'][0]['rows'][1]})"
                 if r["gates"] else "projection")
        t.add_row(r["name"], r["symbol"], _shape(r["shape"]), gates, f"{r['numel']:,}")
    console.print(t)
    bidir = s["bidirectional"]
    t = Table(title=f"per layer (total {params['total']:,})", title_justify="left")
    for col in ("layer", "forward") + (("reverse",) if bidir else ()) + ("total",):
        t.add_column(col, justify="right")
    for r in params["per_layer"]:
        t.add_row(str(r["layer"]), f"{r['forward']:,}", *([f"{r['reverse']:,}"] if bidir else []), f"{r['total']:,}")
    console.print(t)
    t = Table(title="same sizes, each cell" + (" (no projection)" if s["proj_size"] else ""), title_justify="left")
    for col in ("cell", "gate blocks", "parameters", "of LSTM"):
        t.add_column(col, justify="left" if col == "cell" else "right")
    for r in params["by_cell"]:
        t.add_row(r["cell"], str(r["gates"]), f"{r['parameters']:,}", f"{r['gates']}/4")
    console.print(t)
    console.print(_checks_table("identities (random input, float64, run on the module)", report["identities"]))

    ex = report["explain"]
    if ex:
        console.print(f"[bold]{ex['cell'].upper()} cell[/] (gate order {ex['gate_order']})")
        for line in ex["equations"]:
            console.print(f"  {_e(line)}")
        for line in ex["where"]:
            console.print(f"  · {_e(line)}")
        step = ex["step"]
        console.print(f"{_mark(step['passed'])} {_e(step['claim'])}: max |diff| {_e(_diff(step))}")


def _trace_table(trace: list[dict], compact: bool):
    """The trace, every name and shape whole (a shape cut to `(53,25…` hid the width it exists to show): the type
    under the name, one shape per line, no spaces inside a shape; `compact`, for a narrower terminal, without
    the outer edges and with `params` for `parameters`. Where neither fits, the terminal wraps the lines
    (`FirstThatFits`), no cell is cut."""
    from rich import box
    from rich.table import Table

    from grutool.cli.render.tables import whole_cells

    look = {"box": box.SIMPLE_HEAD, "show_edge": False, "pad_edge": False} if compact else {}
    t = Table(title="trace (forward hooks, call order)", title_justify="left", **look)
    count = "params" if compact else "parameters"
    for col in ("module (type)", "input", "output", count):
        t.add_column(col, justify="right" if col == count else "left")
    for r in trace:
        indent = "  " * r["depth"]
        tied = r.get("tied_parameters", 0)
        t.add_row(f"{indent}{_e(r['module'])}\n{indent}[dim]{_e(r['type'])}[/]", _shape_lines(r["input"]),
                  _shape_lines(r["output"]), f"{r['parameters']:,}" + (f"\n[dim]{tied:,} tied[/]" if tied else ""))
    return whole_cells(t)


def _render_config(console, report: dict) -> None:
    from grutool.cli.render.tables import FirstThatFits

    sym = "  ".join(f"{k}={v}" for k, v in report["symbols"].items())
    source = report["batch"].get("source", "random batch")
    if report.get("numeric"):  # values, not token ids: channels in, the family's outputs out
        outputs = report["outputs"][:-1] if report["num_classes"] == 1 else report["outputs"]  # 1 target
        channels = report["symbols"]["F"]
        # covariates and other inputs come beside the values, so F counts the values' channels alone
        beside = "".join(f", {_e(k)} {_shape(v)}" for k, v in report["batch"].get("inputs", {}).items())
        console.print(f"[bold]{_e(report['config'])}[/]: task {report['task']}, {channels} "
                      f"channel{'' if channels == 1 else 's'} per step, {report['num_classes']} {outputs}; "
                      f"{source}: values "
                      f"{_shape(report['batch']['ids'])}{beside}, lengths {report['batch']['lengths']}")
    else:
        intents = f", {report['num_intents']:,} intents" if report.get("num_intents") is not None else ""
        console.print(f"[bold]{_e(report['config'])}[/]: task {report['task']}, {report['vocab_size']:,} tokens, "
                      f"{report['num_classes']:,} classes{intents}; {source}: ids {_shape(report['batch']['ids'])}, "
                      f"lengths {report['batch']['lengths']}")
    lengths = report["batch"]["lengths"]
    if len(set(lengths)) == 1 and not report.get("fixed_length"):  # a forecast window, a stream's chunk: one length
        if "source" in report["batch"]:  # real examples: --lengths is refused, --batch takes more of them
            see = "a larger --batch takes in more of the training examples"
        else:
            see = f"see them with --lengths {','.join(str(max(1, lengths[0] - i)) for i in range(len(lengths)))}"
        console.print(f"equal lengths: the encoder runs this batch dense, unpacked (mixed lengths are packed; {see})")
    console.print(sym)
    console.print(FirstThatFits(*(_trace_table(report["trace"], compact) for compact in (False, True))))
    p = report["parameters"]
    logits = report["logits"]
    if isinstance(logits, dict):  # a plain tagger's output has no intent: nothing to show for it (--json: null)
        logits = {k: v for k, v in logits.items() if v is not None}
    own = sum(r["parameters"] for r in p.get("by_module", []) if r["module"] == "(model)")
    tied = sum(r.get("tied_parameters", 0) for r in report["trace"])
    notes = [f"trainable {p['trainable']:,}"]
    if own:  # a forecaster's position and channel embeddings: registered on the model, no module's row
        notes.append(f"{own:,} the model's own, in no row")
    if tied:
        notes.append("a tied tensor counted once")
    # not `logits logits (...)`; a regressor's and a forecaster's outputs are predictions, not logits
    said = "outputs" if isinstance(logits, dict) and "logits" in logits else report.get("output_name", "logits")
    console.print(f"{said} {_shape(logits)}; parameters {p['total']:,} ({'; '.join(notes)})")
    console.print(_checks_table("checks (float32 model)", report["checks"]))
    console.print()
    console.print("[bold]encoder.rnn[/], the recurrent layer inside the encoder:")
    _render_layer(console, report["encoder"])
