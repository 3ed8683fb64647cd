"""`grutool export`: parse, call grutool.export.export, render its report."""

from __future__ import annotations


from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from grutool import jsonsafe
from grutool.cli.console import err, out, setup_logging, user_errors, warning


class Exporter(str, Enum):
    dynamo = "dynamo"
    legacy = "legacy"


class Format(str, Enum):
    onnx = "onnx"
    torchscript = "torchscript"


def export(
    ctx: typer.Context,
    run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="Run directory written by `grutool train`."),
    format: Format = typer.Option(Format.onnx, "--format", help="onnx (needs the `onnx` extra) or torchscript."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", metavar="PATH", help="Model file (default: RUN/model[.int8].onnx or .pt); the metadata JSON goes beside it."),
    int8: bool = typer.Option(False, "--int8", help="Dynamic int8 weights (onnx: ONNX Runtime's quantizer; torchscript: torch's quantize_dynamic)."),
    split: str = typer.Option("validation", "--split", metavar="SPLIT", help="Labelled split the parity check runs on."),
    atol: Optional[float] = typer.Option(None, "--atol", metavar="X", help="Largest max |diff| of outputs accepted, >= 0 (fp32 default 1e-4; int8: not checked)."),
    min_agreement: Optional[float] = typer.Option(None, "--min-agreement", metavar="X", help="Smallest share of equal predictions accepted, 0 to 1 (fp32 0.999, int8 0.97)."),
    exporter: Exporter = typer.Option(Exporter.dynamo, "--exporter", help="ONNX: dynamo (torch's maintained exporter, ~10 s) or legacy (deprecated TorchScript-based, ~0.1 s; the same GRU ops, other nodes around them)."),
    json_: bool = typer.Option(False, "--json", help="Print the report as one JSON object."),
):
    """Export a trained run to ONNX or TorchScript, checked against the original on the validation split.

    \b
    Examples:
      grutool export runs/sentiment            # RUN/model.onnx, model.onnx.json
      grutool export runs/sentiment --int8        # RUN/model.int8.onnx
      grutool export runs/sentiment --format torchscript        # RUN/model.pt
      grutool export runs/sentiment -o dist/model.onnx   # an existing folder
      grutool infer runs/sentiment --backend onnx "A lovely film."
    """
    setup_logging(quiet=True)
    given = getattr(ctx.get_parameter_source("exporter"), "name", None) == "COMMANDLINE"  # (typer's own click)
    if format is Format.torchscript and given:
        # Not refused: scripts loop over both formats with one set of flags.
        warning(f"--exporter {exporter.value}: how ONNX graphs are made; a TorchScript export ignores it")
    with user_errors():
        from grutool.export import ParityError, describe
        from grutool.export import export as run_export

        try:
            report = run_export(run_dir, format.value, output, int8, split=split, atol=atol,
                                min_agreement=min_agreement, exporter=exporter.value)
        except ParityError as exc:
            if json_:
                print(jsonsafe.dumps(exc.report))
            err.print(f"error: export refused, nothing written: {exc}{_looser(exc.report)}", markup=False)
            raise typer.Exit(1)
        if json_:
            print(jsonsafe.dumps(report))
            return
        out.print(describe(report), markup=False)
        for name, path in report["files"].items():
            out.print(f"  {name:<8} {path}  ({report['bytes'][name] / 1e6:.2f} MB)", markup=False)
        out.print(f"  metadata {report['metadata']}", markup=False)
        if report.get("float_ops"):
            out.print(f"  note: {', '.join(report['float_ops'])} ops stay float32 (ONNX Runtime has no int8 kernel for them)")


def _looser(report: dict) -> str:
    """What would accept these differences, where the user judges them small enough (int8 moves a forecaster's
    values by more than 1e-3, which the default agreement counts as a disagreement)."""
    import math

    p = report["parity"]
    tol = p["tolerance"]
    flags = []
    worst = max(p["max_abs_diff"].values(), default=0.0)
    if tol["max_abs_diff"] is not None and worst > tol["max_abs_diff"]:
        flags.append(f"--atol {worst:.1e}")
    if p["agreement"] < tol["min_agreement"]:
        flags.append(f"--min-agreement {math.floor(100 * p['agreement']) / 100:.2f}")
    return f"; to accept these differences: {' '.join(flags)}" if flags else ""
