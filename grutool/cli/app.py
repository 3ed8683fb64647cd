"""The `grutool` command: thin commands that parse, call the library, and render.

Heavy imports (torch, datasets) happen inside command bodies so `grutool --help`
and config errors answer fast. Exit codes: 0 ok, 2 user error, 1 bug, 130 Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import warnings
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from grutool.errors import TrainingInterrupted, UserError

app = typer.Typer(
    name="grutool",
    help="Train, evaluate and inspect GRU sequence models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    # Plain click help: typer's rich help renderer costs ~0.1 s of imports on every --help.
    rich_markup_mode=None,
)


class _LazyConsole:
    """A rich Console made on first use, so `--help` never imports rich's console machinery."""

    def __init__(self, **options):
        self._options = options
        self._console = None

    def __getattr__(self, name):
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return getattr(self._console, name)


err = _LazyConsole(stderr=True, highlight=False, soft_wrap=True)
out = _LazyConsole(highlight=False, soft_wrap=True)


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def _setup_logging(quiet: bool) -> None:
    logger = logging.getLogger("grutool")
    logger.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.propagate = False

    def show(message, category, filename, lineno, file=None, line=None):
        err.print(f"[yellow]warning:[/] {escape(str(message))}", markup=True)

    warnings.showwarning = show


@contextlib.contextmanager
def user_errors():
    """Turn UserError into one line on stderr and exit code 2 (no traceback)."""
    try:
        yield
    except UserError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", markup=True)
        raise typer.Exit(exc.exit_code)
    except TrainingInterrupted as exc:
        err.print(f"interrupted: resumable checkpoint saved to {exc.checkpoint}; "
                  f"continue with the same command plus --resume")
        raise typer.Exit(130)


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Split(str, Enum):
    validation = "validation"
    test = "test"


@app.command()
def train(
    config: Path = typer.Argument(..., help="YAML config file (see configs/)."),
    set_: List[str] = typer.Option([], "--set", help="Override a field: --set model.hidden_size=256 (repeatable)."),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", "-o", help="Run directory (default: runs/<config name>)."),
    device: Optional[Device] = typer.Option(None, help="auto (CUDA if present), cpu or cuda; overrides train.device."),
    seed: Optional[int] = typer.Option(None, help="Overrides train.seed."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in the output directory from last.pt."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run directory."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate, build data and model, print a summary, write nothing."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors on stderr."),
):
    """Train a model from a YAML config; writes a run directory."""
    _setup_logging(quiet)
    with user_errors():
        from grutool.config import load_config

        overrides = list(set_)
        if device is not None:
            overrides.append(f"train.device={device.value}")
        if seed is not None:
            overrides.append(f"train.seed={seed}")
        if output_dir is not None:
            overrides.append(f"output_dir={output_dir}")
        cfg = load_config(config, overrides)

        from grutool.training.loop import train as run_training

        summary = run_training(cfg, resume=resume, overwrite=overwrite, dry_run=dry_run,
                               progress=not quiet and sys.stderr.isatty())
        if dry_run:
            ex = ", ".join(f"{k} {v:,}" for k, v in summary["examples"].items())
            outputs = "targets" if summary["task"] == "seq2seq" else "classes"
            out.print(f"config ok: {config}\n  task        {summary['task']}\n"
                      f"  parameters  {summary['parameters']:,}\n  vocab size  {summary['vocab_size']:,}\n"
                      f"  {outputs:<12}{summary['num_classes']}\n  examples    {ex}\n"
                      f"  device      {summary['device']}\n  run dir     {summary['run_dir']} (not written)")
            return
        line = f"done: {summary['epochs']} epoch(s), {summary['steps']} steps, {summary['wall_time_s']:.1f}s"
        if summary.get("validation"):
            v = summary["validation"]
            if "accuracy" in v:
                line += f"; best epoch {summary['best_epoch']}: validation accuracy {v['accuracy']:.4f}, macro-F1 {v['macro_f1']:.4f}"
            else:
                if "exact_match" in v:
                    from grutool.cli.seq2seq_render import summary_line
                else:
                    from grutool.cli.tagging_render import summary_line

                line += f"; best epoch {summary['best_epoch']}: validation {summary_line(v)}"
        out.print(line)
        out.print(f"run directory: {summary['run_dir']}")


def _metrics_table(metrics: dict):
    from rich.table import Table

    t = Table(title=f"{metrics['source']}: n={metrics['n']}, accuracy {metrics['accuracy']:.4f}, "
                    f"macro-F1 {metrics['macro_f1']:.4f}")
    for col in ("label", "precision", "recall", "f1", "support"):
        t.add_column(col, justify="left" if col == "label" else "right")
    for label, m in metrics["per_class"].items():
        t.add_row(label, f"{m['precision']:.4f}", f"{m['recall']:.4f}", f"{m['f1']:.4f}", str(m["support"]))
    from grutool.cli.tables import confusion_table

    return t, confusion_table("confusion", metrics["confusion"]["labels"], metrics["confusion"]["matrix"])


@app.command("eval")
def eval_(
    run_dir: Path = typer.Argument(..., help="Run directory written by `grutool train`."),
    split: Split = typer.Option(Split.validation, help="Which configured split to score."),
    data: Optional[Path] = typer.Option(None, help="Score this file instead (same columns as the training data)."),
    json_: bool = typer.Option(False, "--json", help="Print metrics as one JSON object only."),
    beam: Optional[int] = typer.Option(None, "--beam", help="Seq2seq: beam size (default: the run's decoding.beam_size)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1),
    device: Device = typer.Option(Device.auto),
):
    """Metrics of a trained run on a labelled split."""
    _setup_logging(quiet=json_)
    with user_errors():
        from grutool.evaluate import evaluate

        metrics = evaluate(str(run_dir), split.value, str(data) if data else None, batch_size, device.value, beam)
        if json_:
            print(json.dumps(metrics))
            return
        if "token_accuracy" in metrics:
            from grutool.cli.tagging_render import tables
        elif "exact_match" in metrics:
            from grutool.cli.seq2seq_render import tables
        else:
            tables = _metrics_table
        for table in tables(metrics):
            out.print(table)


def _read_inputs(texts: List[str], file: Optional[str]) -> list[str]:
    if file is None:
        if not texts:
            raise UserError("infer: give TEXT arguments, or --file PATH (use - for stdin)")
        return list(texts)
    if file == "-":
        data = sys.stdin.buffer.read()
        name = "stdin"
    else:
        p = Path(file)
        if not p.is_file():
            raise UserError(f"{file}: input file not found")
        data, name = p.read_bytes(), file
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{name}: not valid UTF-8 (byte offset {e.start})") from None
    return list(texts) + text.splitlines()


@app.command()
def infer(
    run_dir: Path = typer.Argument(..., help="Run directory written by `grutool train`."),
    texts: List[str] = typer.Argument(None, help="Texts to classify."),
    file: Optional[str] = typer.Option(None, "--file", "-f", help="Read one input per line from PATH, or - for stdin."),
    jsonl: bool = typer.Option(False, "--jsonl", help="One JSON object per input: text, label, probs (tagger/joint: text, tokens, tags, spans[, intent]; seq2seq: source, output, score)."),
    beam: Optional[int] = typer.Option(None, "--beam", help="Seq2seq: beam size (1: greedy; default: the run's decoding.beam_size)."),
    attention: Optional[str] = typer.Option(None, "--attention", metavar="PATH.png", help="Seq2seq: draw the attention weights as a heatmap (several inputs: PATH-1.png, ...)."),
    attention_weights: bool = typer.Option(False, "--attention-weights", help="Seq2seq: add the attention weights to --jsonl objects."),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    device: Device = typer.Option(Device.auto),
):
    """Predict a label (tagger/joint: tags and spans; seq2seq: the output) for each input, one line per input."""
    _setup_logging(quiet=True)
    with user_errors():
        if beam is not None and beam < 1:
            raise UserError(f"--beam: must be at least 1 (got {beam}); 1 is greedy decoding")
        inputs = _read_inputs(texts or [], file)
        from grutool.predict import Predictor

        predictor = Predictor(run_dir, device.value)
        options = {}
        if beam is not None or attention or attention_weights:
            if predictor.cfg.task != "seq2seq":
                raise UserError(f"--beam, --attention, --attention-weights: for seq2seq runs only "
                                f"({run_dir} is task {predictor.cfg.task})")
            options = {"beam": beam, "attention": bool(attention or attention_weights)}
        results = predictor.predict(inputs, batch_size, **options)
        if attention:
            from grutool.cli.seq2seq_render import plot_attention

            plot_attention(results, attention)
            if not attention_weights:
                for r in results:
                    r.pop("attention")
        for r in results:
            if jsonl:
                print(json.dumps(r, ensure_ascii=False))
            elif "tags" in r:
                from grutool.cli.tagging_render import line

                print(line(r))
            elif "output" in r:
                from grutool.cli.seq2seq_render import line

                print(line(r))
            else:
                print(f"{r['label']}\t{r['probs'][r['label']]:.4f}\t{r['text']}")


from grutool.cli.shapes_cmd import shapes  # noqa: E402
app.command()(shapes)


from grutool.cli.bench_cmd import bench  # noqa: E402
app.command()(bench)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
