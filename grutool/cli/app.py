"""The `grutool` command: thin commands that parse, call the library, and render.

Heavy imports (torch, datasets) happen inside command bodies so `grutool --help`
and config errors answer fast. Exit codes: 0 ok, 2 user error, 1 bug, 130 Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from grutool.cli.console import err, out, setup_logging, user_errors
from grutool.errors import UserError

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
    nproc: int = typer.Option(1, "--nproc", min=1, help="Train with N data-parallel processes on this machine (runs torchrun for you)."),
):
    """Train a model from a YAML config; writes a run directory."""
    rank = int(os.environ.get("RANK", "0") or 0)  # set by torchrun: only rank 0 reports
    setup_logging(quiet or rank != 0)
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        from grutool.cli.launch import launch

        raise typer.Exit(launch(nproc, sys.argv[1:]))
    with user_errors():
        from grutool.config_file import load_config

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
        from grutool.tasks import get_task

        task = get_task(summary["task"])
        if rank != 0:
            return
        if dry_run:
            ex = ", ".join(f"{k} {v:,}" for k, v in summary["examples"].items())
            outputs = task.outputs
            out.print(f"config ok: {config}\n  task        {summary['task']}\n"
                      f"  parameters  {summary['parameters']:,}\n  vocab size  {summary['vocab_size']:,}\n"
                      f"  {outputs:<12}{summary['num_classes']}\n  examples    {ex}\n"
                      f"  device      {summary['device']}\n  run dir     {summary['run_dir']} (not written)")
            return
        line = f"done: {summary['epochs']} epoch(s), {summary['steps']} steps, {summary['wall_time_s']:.1f}s"
        if summary.get("validation"):
            from grutool.cli.render import renderer

            line += f"; best epoch {summary['best_epoch']}: validation {renderer(task).summary_line(summary['validation'])}"
        out.print(line)
        out.print(f"run directory: {summary['run_dir']}")


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
    setup_logging(quiet=json_)
    with user_errors():
        from grutool.evaluate import evaluate

        if beam is not None and beam < 1:
            raise UserError(f"--beam: must be at least 1 (got {beam}); 1 is greedy decoding")
        metrics = evaluate(str(run_dir), split.value, str(data) if data else None, batch_size, device.value, beam)
        if json_:
            from grutool import jsonsafe

            print(jsonsafe.dumps(metrics))
            return
        from grutool.cli.render import renderer
        from grutool.rundir import run_task

        for table in renderer(run_task(run_dir)).tables(metrics):
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
        if p.is_dir():
            raise UserError(f"--file {file}: is a directory; give a text file with one input per line")
        if not p.is_file():
            raise UserError(f"--file {file}: input file not found")
        data, name = p.read_bytes(), file
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise UserError(f"{name}:{line}: not valid UTF-8 (byte {e.start}); save the input as UTF-8") from None
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
    setup_logging(quiet=True)
    with user_errors():
        if beam is not None and beam < 1:
            raise UserError(f"--beam: must be at least 1 (got {beam}); 1 is greedy decoding")
        inputs = _read_inputs(texts or [], file)
        from grutool.predict import Predictor

        predictor = Predictor(run_dir, device.value)
        from grutool.cli.render import renderer
        from grutool.tasks import accepting

        options = {}
        if beam is not None or attention or attention_weights:
            if not {"beam", "attention"} <= set(predictor.task.predict_options):
                raise UserError(f"--beam, --attention, --attention-weights: for {' or '.join(accepting('beam', 'attention'))} "
                                f"runs only ({run_dir} is task {predictor.cfg.task})")
            options = {"beam": beam, "attention": bool(attention or attention_weights)}
        results = predictor.predict(inputs, batch_size, **options)
        render = renderer(predictor.task)
        if attention:
            render.plot_attention(results, attention)
            if not attention_weights:
                for r in results:
                    r.pop("attention")
        from grutool import jsonsafe

        for r in results:
            print(jsonsafe.dumps(r, ensure_ascii=False) if jsonl else render.line(r))


from grutool.cli.shapes_cmd import shapes  # noqa: E402
app.command()(shapes)


from grutool.cli.bench_cmd import bench  # noqa: E402
app.command()(bench)


def main() -> None:
    """The console script. An interrupted command leaves at once: no atexit hooks, no shutdown traceback."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        _leave(130)
    except SystemExit as exc:
        if exc.code == 130:
            _leave(130)
        raise


def _leave(code: int) -> None:
    """Exit now, ignoring further Ctrl-C: everything worth keeping is already on disk (atomic writes,
    fsynced), so the interpreter's teardown (atexit hooks, torch, thread joins) is skipped; a second
    Ctrl-C during that teardown used to print an atexit KeyboardInterrupt traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
