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
from typer.core import TyperGroup

from grutool.cli.console import (err, escape_unwritable, hold_closed_stdout, out, output_errors, setup_logging,
                                 unicode_output, usage_errors, user_errors)
from grutool.cli.metavars import clean_metavars
from grutool.errors import UserError, clipped
from grutool.threads import sleep_when_waiting


class _Group(TyperGroup):
    """The command group; its usage errors (a bad option value, an unknown option, a missing argument), in
    any command, are one `error:` line and exit code 2 (see `usage_errors`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        clean_metavars(self)  # `CONFIG.yaml`, not `{CONFIG.yaml}` or `CONFIG.yaml <path>`

    def make_context(self, info_name, args, parent=None, **extra):
        with usage_errors(lambda: info_name or self.name):
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx):
        # A subcommand's own parsing happens in here; it names the subcommand's help when click did not.
        with usage_errors(lambda: " ".join(filter(None, [ctx.command_path, ctx.invoked_subcommand]))), \
                output_errors():
            return super().invoke(ctx)


app = typer.Typer(
    name="grutool",
    cls=_Group,
    no_args_is_help=True,
    # Shell completion: `grutool --install-completion` (bash, zsh, fish, PowerShell).
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    # Plain click help: typer's rich help renderer costs ~0.1 s of imports on every --help.
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        from grutool import __version__

        with output_errors():  # `--version >&-`: said, not an exit-time "Exception ignored" and exit 120
            print(f"grutool {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                       help="Print grutool's version and exit.")):
    """Train, evaluate and inspect GRU sequence models.

    \b
    Examples:
      grutool init classifier > my.yaml        # a commented starting config
      grutool train configs/sentiment.yaml     # -> runs/sentiment/
      grutool runs                             # every run: task, best metric, status
      grutool eval runs/sentiment --split test
      grutool infer runs/sentiment "What a lovely little film."
      grutool plot runs/sentiment -o curves.png
    """


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Backend(str, Enum):
    torch = "torch"
    onnx = "onnx"
    torchscript = "torchscript"


class InputFormat(str, Enum):  # grutool.inputs.FORMATS
    auto = "auto"
    lines = "lines"
    data = "data"


def _check_model(backend: Backend, model: Optional[Path]) -> None:
    """infer and serve: --model names an exported file, which the default backend (the checkpoint) would ignore."""
    if model is not None and backend == Backend.torch:
        raise UserError("--model: names an exported file; add --backend onnx or --backend torchscript")


class Split(str, Enum):
    train = "train"
    validation = "validation"
    test = "test"


@app.command()
def train(
    config: Path = typer.Argument(..., metavar="CONFIG.yaml", help="YAML config file (see configs/; `grutool init TASK` writes one)."),
    set_: List[str] = typer.Option([], "--set", metavar="KEY=VALUE", help="Override a field: --set model.hidden_size=256 (repeatable)."),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", "-o", metavar="DIR", help="Run directory (default: runs/<config name>)."),
    device: Optional[Device] = typer.Option(None, help="auto (CUDA if present), cpu or cuda; overrides train.device."),
    seed: Optional[int] = typer.Option(None, metavar="N", help="Overrides train.seed."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in the output directory from last.pt."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run directory."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate, build data and model, print a summary, write nothing."),
    print_config: bool = typer.Option(False, "--print-config", help="Print the fully resolved config (defaults filled, --set applied; the fields this task reads) as YAML and exit."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors on stderr."),
    nproc: int = typer.Option(1, "--nproc", min=1, metavar="N", help="Train with N data-parallel processes on this machine (runs torchrun for you)."),
    tensorboard: Optional[Path] = typer.Option(None, "--tensorboard", metavar="DIR", help="Write TensorBoard event files under DIR, in DIR/<run name>/ (sets train.tensorboard; needs the tensorboard extra)."),
):
    """Train a model from a YAML config; writes a run directory.

    \b
    Examples:
      grutool train configs/sentiment.yaml                  # -> runs/sentiment/
      grutool train configs/sentiment.yaml --set train.lr=1e-3 -o runs/lr1e-3
      grutool train configs/sentiment.yaml --print-config   # the resolved config
      grutool train configs/sentiment.yaml --resume         # after Ctrl-C
      grutool train configs/sentiment.yaml --nproc 2        # DDP, via torchrun
    """
    rank = int(os.environ.get("RANK", "0") or 0)  # set by torchrun: only rank 0 reports
    setup_logging(quiet or rank != 0)
    if "WORLD_SIZE" in os.environ:  # a worker of `--nproc`: stop when the launcher dies
        from grutool.cli.launch import follow_launcher

        follow_launcher()
    with user_errors():
        from grutool.config_file import load_config

        if resume and overwrite:  # said once, before a config is read or `--nproc` starts a worker per process
            raise UserError("--resume: contradicts --overwrite; pick one (after Ctrl-C of a run started with "
                            "--overwrite, continue it with --resume in its place)")
        overrides = list(set_)
        if device is not None:
            overrides.append(f"train.device={device.value}")
        if seed is not None:
            overrides.append((f"train.seed={seed}", f"--seed {clipped(str(seed))}"))  # errors name --seed
        if output_dir is not None:
            overrides.append(f"output_dir={output_dir}")
        if tensorboard is not None:
            from grutool import jsonsafe

            overrides.append(f"train.tensorboard={jsonsafe.dumps(str(tensorboard))}")  # quoted: always a path
        from grutool.rundir import is_run_config

        own = is_run_config(config)  # RUN/config.yaml: read as the run's
        cfg = load_config(config, overrides, saved=own)
        run = Path(config).parent
        if own and resume and output_dir is None and Path(cfg.output_dir or "").resolve() != run.resolve():
            # Its output_dir is relative to the folder train ran in: from elsewhere it named another folder,
            # which --resume then "started over" in. The run to resume is the one the config is in.
            from grutool import jsonsafe

            cfg = load_config(config, [*overrides, f"output_dir={jsonsafe.dumps(str(run))}"], saved=own)
        if print_config:
            from grutool.config_file import read_yaml_view

            print(read_yaml_view(cfg), end="")
            return
        if nproc > 1 and "WORLD_SIZE" not in os.environ:  # the config is valid: start the workers
            from grutool.cli.launch import launch

            if cfg.train.lazy_embeddings:
                from grutool.config import LAZY_ONE_PROCESS

                raise UserError(LAZY_ONE_PROCESS, option="--nproc")
            from grutool.training.device import resolve_device

            device = resolve_device(cfg.train.device)  # every worker would refuse it alike, each with its own line
            if device.type == "cpu":
                from grutool.cli.launch import oversubscribed

                said = oversubscribed(nproc, cfg.train.num_threads)
                if said:
                    from grutool.cli.console import warning

                    warning(said)
            raise typer.Exit(launch(nproc, sys.argv[1:]))

        from grutool.config_file import config_places, located
        from grutool.training.loop import train as run_training

        with located(config_places(config, overrides)):  # a field a data error names: where it was given
            summary = run_training(cfg, resume=resume, overwrite=overwrite, dry_run=dry_run,
                                   progress=not quiet)
        from grutool.families import get_task

        task = get_task(summary["task"])
        if rank != 0:
            return
        if dry_run:
            ex = ", ".join(f"{k} {v:,}" for k, v in summary["examples"].items())
            # Each output vocabulary by what it holds: classes, tags, targets; intents and chars by name.
            vocabularies = dict(summary.get("vocabularies", {"labels": summary["num_classes"]}))
            # Numbers (numeric sequences, forecasting) have a scaler of their channels, not a token vocabulary:
            # what the model reads is the task's to count (`inputs`: a forecaster's channels and covariates apart).
            vocabularies.pop("scaler", None)
            inputs = "".join(f"  {'vocab size' if name == 'vocabulary' else name:<12}{n:,}\n"
                             for name, n in summary["inputs"].items())
            sizes = "".join(f"  {task.outputs if name == 'labels' else name:<12}{n:,}\n"
                            for name, n in vocabularies.items())
            out.print(f"config ok: {config}\n  task        {summary['task']}\n"
                      f"  parameters  {summary['parameters']:,}\n{inputs}"
                      f"{sizes}  examples    {ex}\n"
                      f"  device      {summary['device']}\n  run dir     {summary['run_dir']} "
                      f"({_run_dir_plan(summary.get('run_dir_plan') or {})})", markup=False)
            return
        out.print(_fit(_done_line(summary, task.update_name(cfg))), markup=False)
        if summary.get("validation"):
            from grutool.cli.render import renderer

            out.print(_fit(f"best: epoch {summary['best_epoch']}, "
                           f"{renderer(task).summary_line(summary['validation'])}"), markup=False)
        out.print(f"run directory: {summary['run_dir']}", markup=False)


def _done_line(summary: dict, step: str = "step") -> str:
    """`done: 30 epoch(s), 750 steps, 12.3 s`; a last epoch that train.max_steps cut short is said so, never
    counted as a whole one: `done: 3 steps (train.max_steps), epoch 1 stopped at 3 of its 25 steps, 1.0 s`.
    `step`: what the run calls an optimizer step (`Task.update_name`: numbers' `updates`, their speed being
    time steps)."""
    count = summary["steps"]
    steps, seconds = f"{count:,} {step}{'s' if count != 1 else ''}", f"{summary['wall_time_s']:.1f} s"
    from grutool.rundir import cut_epoch

    cut = cut_epoch(summary)
    if cut is None:
        return f"done: {summary['epochs']} epoch(s), {steps}, {seconds}"
    return (f"done: {steps} (train.max_steps), epoch {summary['epochs']} stopped at {cut[0]:,} of its {cut[1]:,} "
            f"{step}s, {seconds}")


def _run_dir_plan(plan: dict) -> str:
    """What `train` would do with the run directory, for the dry run's summary (which wrote nothing)."""
    action = plan.get("action")
    if action == "replace":
        return "not written; train would replace the run there, keeping other files"
    if action == "start over":
        return "not written; train would start over the run that stopped before its first checkpoint"
    if action == "resume":
        return f"not written; train would resume it at epoch {plan.get('epoch', 1)}"
    if action == "ended":  # --resume of a run with nothing left to train
        return f"not written; {plan['why']}"
    return "not written"


def _fit(figures: str, width: int = 80) -> str:
    """`name value, name value (P x, R y), ...` broken after a comma (never inside a figure or its
    parentheses) into lines of at most `width` columns, the continuations indented: a joint model's
    summary is ~120 columns, and a terminal would cut it mid-word."""
    import re

    lines = [""]
    for part in re.split(r", (?![^(]*\))", figures):
        if lines[-1] and len(lines[-1]) + 2 + len(part) > width - 1:  # room for the comma
            lines[-1] += ","
            lines.append("  " + part)
        else:
            lines[-1] = f"{lines[-1]}, {part}" if lines[-1] else part
    return "\n".join(lines)


@app.command("eval")
def eval_(
    ctx: typer.Context,
    run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="Run directory written by `grutool train`."),
    split: Split = typer.Option(Split.validation, help="Which configured split to score."),
    data: Optional[Path] = typer.Option(None, metavar="PATH", help="Score this file instead (same columns as the training data), all of it: a forecast scores every window of the file, never a part cut by data.borders / data.fractions (--split scores those)."),
    json_: bool = typer.Option(False, "--json", help="Print metrics as one JSON object only."),
    beam: Optional[int] = typer.Option(None, "--beam", metavar="N", help="Seq2seq: beam size (default: the run's decoding.beam_size)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, metavar="N",
                                             help="Examples per batch (default: the run's train.batch_size)."),
    device: Device = typer.Option(Device.auto, help="auto (CUDA if present), cpu or cuda."),
    plot: Optional[Path] = typer.Option(None, "--plot", metavar="PATH.png",
                                        help="Also draw the confusion matrix as a PNG (classifier, tagger, joint), "
                                             "predicted against true values (regressor) or a few windows (forecast); "
                                             "needs the plot extra."),
):
    """Metrics of a trained run on a labelled split.

    \b
    Examples:
      grutool eval runs/sentiment --split test
      grutool eval runs/sentiment --split test --json
      grutool eval runs/sentiment --data other.tsv   # any file, same columns
      grutool eval runs/sentiment --split test --plot cm.png
      grutool eval runs/sines --data last200.csv     # forecast: every window
    """
    setup_logging(quiet=json_)
    with user_errors():
        if data is not None and getattr(ctx.get_parameter_source("split"), "name", None) == "COMMANDLINE":
            # --data scores that file instead of a split: `--split train --data FILE` scored FILE, silently
            raise UserError(f"--split {split.value}: --data scores its file instead of a split; drop one of them",
                            option="split")
        from grutool.evaluate import evaluate

        from grutool.config import MAX_BEAM

        if beam is not None and not 1 <= beam <= MAX_BEAM:
            raise UserError(f"--beam: must be 1 to {MAX_BEAM} (got {beam}); 1 is greedy decoding")
        draw = None
        if plot is not None:
            from grutool.cli.render import renderer
            from grutool.curves import check_png_path
            from grutool.rundir import run_task

            check_png_path(plot, option="plot")
            # What a family draws is its render module's `plot` (classes and tags: a confusion matrix; real values:
            # predicted against true; forecasts: windows); a family without one is refused before evaluating.
            task = run_task(run_dir)
            draw = getattr(renderer(task), "plot", None)
            if draw is None:
                raise UserError(f"--plot: a task {task.name} evaluation has nothing to draw (--plot draws "
                                f"classifier, tagger and joint confusion matrices, a regressor's predicted against "
                                f"true values and a forecaster's windows); drop --plot")
        metrics = evaluate(str(run_dir), split.value, str(data) if data else None, batch_size, device.value, beam)
        # Drawn before the result is printed (a plot that fails leaves no half answer), said after it: a terminal
        # shows the tables, then `wrote cm.png` below them; stdout still carries the result alone.
        written = draw(metrics, plot, title=f"{run_dir} ({metrics.get('source', split.value)})") if draw else None
        if json_:
            from grutool import jsonsafe

            print(jsonsafe.dumps(metrics))
        else:
            from grutool.cli.render import renderer
            from grutool.rundir import run_task

            for table in renderer(run_task(run_dir)).tables(metrics):
                out.print(table)
        if written is not None:
            sys.stdout.flush()  # the result reaches a terminal (or a 2>&1 pipe) before the line about the file
            err.print(f"wrote {written}", markup=False)


def _read_inputs(texts: List[str], file: Optional[str], run_dir: Path) -> list[str]:
    if file is None:
        if not texts:
            from grutool.rundir import run_task

            if run_task(run_dir).needs_inputs:
                raise UserError("infer: give TEXT arguments, or --file PATH (use - for stdin)")
        return list(texts)
    if file == "-":
        from grutool.data.loading import read_stdin

        data = read_stdin()
        name = "stdin"
    else:
        p = Path(file)
        if p.is_dir():
            raise UserError(f"--file {file}: is a directory; give a text file with one input per line")
        if not p.is_file():
            raise UserError(f"--file {file}: input file not found")
        data, name = p.read_bytes(), file
    try:
        text = data.decode("utf-8-sig")  # a BOM (Notepad, PowerShell) is not part of the first input
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - data.rfind(b"\n", 0, e.start)  # 1-based, in bytes, as the line number is
        raise UserError(f"{name}:{line}: not valid UTF-8 (byte {column} of the line); save the input as UTF-8") \
            from None
    if not text.strip():  # nothing to predict is a mistake upstream (an empty pipe, a wrong file), not a success
        raise UserError(f"{name}: no inputs ({'only blank lines' if text else 'nothing read' if file == '-' else 'empty file'}); "
                        f"give one input per line")
    # One input per line: split at \n (a CRLF's \r dropped) alone; str.splitlines also splits at \r, \f, \x85 and
    # U+2028 inside a line, so a 3-line file gave 6 inputs and the answers no longer lined up with its lines.
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return list(texts) + [line[:-1] if line.endswith("\r") else line for line in lines]


@app.command()
def infer(
    run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="Run directory written by `grutool train`."),
    texts: List[str] = typer.Argument(None, metavar="[TEXT]...", help="Inputs: texts to label, sentences to tag, sources to translate; lm: prompts to continue, or texts to --score; forecast: tables (csv text), usually --file; numeric sequences: one sequence each, '1,2,3:4,5,6' (channels separated by ':'; one starting with '-': put -- before the inputs), or a .ts/.csv --file."),
    file: Optional[str] = typer.Option(None, "--file", "-f", metavar="PATH",
                                       help="Read inputs from PATH (- for stdin): see --format."),
    format_: InputFormat = typer.Option(InputFormat.auto, "--format",
                                help="lines: one input per line; data: a csv/tsv/json/jsonl/parquet/conll/conllu "
                                     "file (tagger/joint: also .bio/.iob; numeric: .ts) read with the run's "
                                     "columns, as training reads it (labels and tags ignored); "
                                     "auto: data for those extensions, else lines (forecast: any file, and "
                                     "stdin, is one table)."),
    jsonl: bool = typer.Option(False, "--jsonl", help="One JSON object per input: text, label, probs[, truncated_to: the tokens read of a text longer than data.max_length] (tagger/joint: text, tokens, tags[, spans under a span scheme][, intent, intent_prob]; seq2seq: source, output, score[, truncated_to]; lm: prompt, condition, text, logprob, finished; forecast: times, columns, forecast[, quantiles]; numeric sequences: id, then label and probs, prediction, predictions (one per step) or tags)."),
    prompt: List[str] = typer.Option([], "--prompt", metavar="TEXT", help="Lm: text to continue (repeatable; default: from nothing)."),
    condition: Optional[str] = typer.Option(None, "--condition", metavar="LABEL", help="Lm: the condition label to generate or score with."),
    num: Optional[int] = typer.Option(None, "--num", metavar="N", help="Lm: samples per prompt (default 1)."),
    max_length: Optional[int] = typer.Option(None, "--max-length", metavar="N", help="Lm: tokens generated at most (default 200)."),
    temperature: Optional[float] = typer.Option(None, "--temperature", metavar="T", help="Lm: divide the logits by this (> 0; default 1)."),
    top_k: Optional[int] = typer.Option(None, "--top-k", metavar="K", help="Lm: sample among the k most likely tokens (1: greedy)."),
    top_p: Optional[float] = typer.Option(None, "--top-p", metavar="P", help="Lm: sample among the most likely tokens holding this probability, in (0, 1]."),
    seed: Optional[int] = typer.Option(None, "--seed", metavar="N", help="Lm: sampling seed (default 0); the same seed and --num give the same samples."),
    greedy: bool = typer.Option(False, "--greedy", help="Lm: always the most likely token."),
    score: bool = typer.Option(False, "--score", help="Lm: per-token log-probabilities of the given texts instead of generating."),
    beam: Optional[int] = typer.Option(None, "--beam", metavar="N", help="Seq2seq: beam size (1: greedy; default: the run's decoding.beam_size)."),
    attention: Optional[str] = typer.Option(None, "--attention", metavar="PATH.png", help="Seq2seq: draw the attention weights as a heatmap (several inputs: PATH-1.png, ...)."),
    attention_weights: bool = typer.Option(False, "--attention-weights", help="Seq2seq: add the attention weights to --jsonl objects."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, metavar="N", help="Inputs per batch."),
    device: Device = typer.Option(Device.auto, help="auto (CUDA if present), cpu or cuda."),
    backend: Backend = typer.Option(Backend.torch, "--backend", help="torch (the checkpoint), or an export written by `grutool export`: onnx, torchscript."),
    model: Optional[Path] = typer.Option(None, "--model", help="With --backend onnx/torchscript: the exported file (default RUN/model.onnx or RUN/model.pt)."),
):
    """Predict a label (tagger/joint: tags and spans; seq2seq: the output) for each input, one line per input;
    lm: generate from each prompt (none: from nothing), or --score the inputs.

    \b
    Examples:
      grutool infer runs/sentiment "What a lovely little film."
      grutool infer runs/sentiment --file reviews.tsv --jsonl  # its text column
      echo "great service" | grutool infer runs/sentiment --file -
      grutool infer runs/reverse 12345 --beam 5 --attention att.png
      grutool infer runs/lm --condition zuri --num 3 --seed 1
      grutool infer runs/sines --file recent.csv    # forecast: the rows after it
      cat recent.csv | grutool infer runs/sines --file -
      grutool infer runs/numeric "0.1,0.5,0.9:3.2,2.8,3.0"   # 2 channels
      grutool infer runs/numeric --file data/numeric/test.ts --jsonl
    """
    setup_logging(quiet=True)
    from grutool.cli.console import argument_text

    texts, prompt = [argument_text(t) for t in texts or []], [argument_text(t) for t in prompt]
    condition = argument_text(condition) if condition is not None else None
    with user_errors():
        from grutool.config import MAX_BEAM

        if beam is not None and not 1 <= beam <= MAX_BEAM:
            raise UserError(f"--beam: must be 1 to {MAX_BEAM} (got {beam}); 1 is greedy decoding")
        from grutool.inputs import input_format, read_data_inputs

        if attention:
            from grutool.curves import check_png_path

            check_png_path(attention, option="attention")  # before the model is loaded and run
        if score and prompt:
            raise UserError("--prompt: --score scores the TEXT arguments (or --file lines); remove --prompt")
        if attention_weights and not jsonl:  # the weights have no place in the plain lines: they were dropped
            raise UserError("--attention-weights: adds the weights to the --jsonl objects; add --jsonl (or "
                            "--attention PATH.png for a picture)")
        from grutool.rundir import run_task

        task = run_task(run_dir)
        if prompt and "num" not in task.predict_options:  # a text to continue: a language model's
            from grutool.families import accepting

            raise UserError(f"--prompt: for {' or '.join(accepting('num'))} runs only ({run_dir} is task "
                            f"{task.name}); give the inputs as TEXT arguments")
        as_data = file is not None and input_format(file, format_.value, task.file_inputs,
                                                     task.data_extensions) == "data"
        given = list(texts or []) + list(prompt)
        inputs = given if as_data else _read_inputs(given, file, run_dir)
        from grutool.predict import Predictor

        _check_model(backend, model)
        predictor = Predictor(run_dir, device.value, backend=backend.value, exported=model)
        if as_data:
            read = read_data_inputs(predictor.task, predictor.cfg, file, predictor.run)
            predictor.sources = [None] * len(inputs) + [("stdin" if file == "-" else str(file))] * len(read)
            inputs += read
        from grutool.cli.render import renderer
        from grutool.families import accepting

        options = {}
        if beam is not None or attention or attention_weights:
            if not {"beam", "attention"} <= set(predictor.task.predict_options):
                given_flags = [f for f, v in (("--beam", beam is not None), ("--attention", attention),
                                              ("--attention-weights", attention_weights)) if v]
                raise UserError(f"{', '.join(given_flags)}: for {' or '.join(accepting('beam', 'attention'))} "
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
        try:
            results = predictor.predict(inputs, batch_size, **options)
        except UserError as e:  # the task names its `attention` option; here the flag given may be the other one
            if attention_weights and not attention and e.options == ("attention",):
                raise UserError("--attention-weights" + str(e).removeprefix("attention")) from None
            raise
        render = renderer(predictor.task)
        pictures = []
        if attention:
            pictures = render.plot_attention(results, attention)
            if not attention_weights:
                for r in results:
                    r.pop("attention")
        from grutool import jsonsafe

        for r in results:
            # JSON's own escapes where stdout cannot write a character (a Latin-1 or ASCII locale)
            print(jsonsafe.dumps(r, ensure_ascii=not unicode_output()) if jsonl else render.line(r))
        if pictures:  # on stderr, as eval --plot says it: stdout carries the results alone
            sys.stdout.flush()
            err.print(f"wrote {', '.join(map(str, pictures))}", markup=False)


from grutool.cli.shapes_cmd import shapes  # noqa: E402
app.command()(shapes)


from grutool.cli.bench_cmd import bench  # noqa: E402
app.command()(bench)


from grutool.cli.export_cmd import export  # noqa: E402
app.command()(export)


@app.command()
def serve(
    run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="Run directory written by `grutool train`."),
    host: str = typer.Option("127.0.0.1", "--host", metavar="HOST", help="Interface to bind (default: this machine only)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, metavar="N", help="TCP port to listen on."),
    backend: Backend = typer.Option(Backend.torch, "--backend", help="torch, or an export: onnx, torchscript."),
    model: Optional[Path] = typer.Option(None, "--model", metavar="PATH", help="With --backend onnx/torchscript: the exported file."),
    max_batch: int = typer.Option(64, "--max-batch", min=1, metavar="N", help="Most texts in one model call (dynamic batching)."),
    window_ms: float = typer.Option(2.0, "--batch-window-ms", min=0.0, metavar="MS", help="How long a request waits for others to batch with."),
    max_texts: int = typer.Option(64, "--max-texts", min=1, metavar="N", help="Most texts in one request."),
    max_chars: Optional[int] = typer.Option(None, "--max-chars", min=1, metavar="N", help="Most characters in one text (default 10,000, or what one input of the run takes: a forecast window's rows)."),
):
    """Serve a run over HTTP: POST /predict, GET /health, GET /info, /docs (needs the `serve` extra).

    \b
    Examples:
      grutool serve runs/sentiment                       # http://127.0.0.1:8000
      curl -s localhost:8000/predict -H 'content-type: application/json' \\
           -d '{"texts": ["What a lovely little film."]}'
      grutool serve runs/sentiment --backend onnx        # RUN/model.onnx
      grutool serve runs/sentiment --host 0.0.0.0 --port 8080 --max-texts 16
    """
    setup_logging(quiet=True)
    with user_errors():
        _check_model(backend, model)
        from grutool.serve import Limits
        from grutool.serve import serve as run_server

        run_server(run_dir, host, port, backend.value, model,
                   Limits(max_texts=max_texts, max_chars=max_chars, max_batch=max_batch, window_ms=window_ms),
                   ready=lambda url, what: err.print(f"serving {run_dir} ({what}) on {url} (docs at /docs); "
                                                     f"Ctrl-C stops", markup=False))


from grutool.cli.daily import register_daily  # noqa: E402
register_daily(app)


def main() -> None:
    """The console script. An interrupted command leaves at once: no atexit hooks, no shutdown traceback."""
    sleep_when_waiting()  # before torch loads: libgomp reads it once
    hold_closed_stdout()
    escape_unwritable()
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        _leave(130)
    except SystemExit as exc:
        if exc.code == 130:
            if _ctrl_c_unsaid(exc) and int(os.environ.get("RANK", "0") or 0) == 0:  # torchrun: rank 0 says it
                err.print("interrupted")
            _leave(130)
        raise


def _ctrl_c_unsaid(exc: SystemExit) -> bool:
    """A Ctrl-C that typer turned into exit 130 (`raise Exit(130) from KeyboardInterrupt`) with nothing said:
    one outside training (reading data, building the model, evaluating); training's own says what it saved."""
    return isinstance(exc.__context__, typer.Exit) and isinstance(exc.__context__.__cause__, KeyboardInterrupt)


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
