"""The `grutool` command: thin commands that parse, call the library, and render.

Heavy imports (torch, datasets) happen inside command bodies so `grutool --help`
and config errors answer fast. Exit codes: 0 ok, 2 user error, 1 bug, 130 Ctrl-C.
"""

from __future__ import annotations

import json
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
):
    """Train a model from a YAML config; writes a run directory."""
    setup_logging(quiet)
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
            print(json.dumps(metrics))
            return
        from grutool.cli.render import renderer
        from grutool.rundir import run_task

        for table in renderer(run_task(run_dir)).tables(metrics):
            out.print(table)


def _read_inputs(texts: List[str], file: Optional[str], run_dir: Path) -> list[str]:
    if file is None:
        if not texts:
            from grutool.rundir import run_task

            if run_task(run_dir).needs_inputs:
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
    texts: List[str] = typer.Argument(None, help="Texts to classify (lm: prompts to continue, or texts to --score)."),
    file: Optional[str] = typer.Option(None, "--file", "-f", help="Read one input per line from PATH, or - for stdin."),
    jsonl: bool = typer.Option(False, "--jsonl", help="One JSON object per input: text, label, probs (tagger/joint: text, tokens, tags, spans[, intent]; seq2seq: source, output, score; lm: prompt, condition, text, logprob, finished)."),
    prompt: List[str] = typer.Option([], "--prompt", help="Lm: text to continue (repeatable; default: from nothing)."),
    condition: Optional[str] = typer.Option(None, "--condition", help="Lm: the condition label to generate or score with."),
    num: Optional[int] = typer.Option(None, "--num", help="Lm: samples per prompt (default 1)."),
    max_length: Optional[int] = typer.Option(None, "--max-length", help="Lm: tokens generated at most (default 200)."),
    temperature: Optional[float] = typer.Option(None, "--temperature", help="Lm: divide the logits by this (> 0; default 1)."),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="Lm: sample among the k most likely tokens (1: greedy)."),
    top_p: Optional[float] = typer.Option(None, "--top-p", help="Lm: sample among the most likely tokens holding this probability, in (0, 1]."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Lm: sampling seed (default 0); the same seed gives the same samples."),
    greedy: bool = typer.Option(False, "--greedy", help="Lm: always the most likely token."),
    score: bool = typer.Option(False, "--score", help="Lm: per-token log-probabilities of the given texts instead of generating."),
    beam: Optional[int] = typer.Option(None, "--beam", help="Seq2seq: beam size (1: greedy; default: the run's decoding.beam_size)."),
    attention: Optional[str] = typer.Option(None, "--attention", metavar="PATH.png", help="Seq2seq: draw the attention weights as a heatmap (several inputs: PATH-1.png, ...)."),
    attention_weights: bool = typer.Option(False, "--attention-weights", help="Seq2seq: add the attention weights to --jsonl objects."),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    device: Device = typer.Option(Device.auto),
):
    """Predict a label (tagger/joint: tags and spans; seq2seq: the output) for each input, one line per input;
    lm: generate from each prompt (none: from nothing), or --score the inputs."""
    setup_logging(quiet=True)
    with user_errors():
        if beam is not None and beam < 1:
            raise UserError(f"--beam: must be at least 1 (got {beam}); 1 is greedy decoding")
        if score and prompt:
            raise UserError("--prompt: --score scores the TEXT arguments (or --file lines); remove --prompt")
        inputs = _read_inputs(list(texts or []) + list(prompt), file, run_dir)
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
        generation = {"num": num, "max_length": max_length, "temperature": temperature, "top_k": top_k,
                      "top_p": top_p, "seed": seed, "condition": condition, "score": score or None,
                      "greedy": greedy or None}
        generation = {k: v for k, v in generation.items() if v is not None}
        if generation:
            flags = [f"--{k.replace('_', '-')}" for k in generation]
            if not set(generation) <= set(predictor.task.predict_options):
                raise UserError(f"{', '.join(flags)}: for {' or '.join(accepting(*generation))} runs only "
                                f"({run_dir} is task {predictor.cfg.task})")
            options.update(generation)
        results = predictor.predict(inputs, batch_size, **options)
        render = renderer(predictor.task)
        if attention:
            render.plot_attention(results, attention)
            if not attention_weights:
                for r in results:
                    r.pop("attention")
        for r in results:
            print(json.dumps(r, ensure_ascii=False) if jsonl else render.line(r))


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
