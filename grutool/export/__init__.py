"""`grutool export`: a trained run as ONNX or TorchScript files plus a JSON that makes them usable
without grutool, proved equal to the original by a parity check before anything is written.

    <out>.onnx | <out>.pt          the graph (seq2seq: the encoder)
    <out>.decoder.onnx | .pt       seq2seq only: the one-step decoder
    <out>.json                     vocabularies, labels, tokenizer settings, input/output names and
                                   shapes, the family's post-processing data, the parity report

What differs between families (which graphs, their inputs, how parity is judged, how an export is run
behind the model's own calls) lives in one module per family, `grutool.families.<Task.exporter>.export`.
Every graph is one self-contained file (its weights inside), serialised in memory, written under a
temporary name beside its target (grutool.atomic: a full disk is a one-line error), checked for parity
from that file, and renamed only after the check passed, so a failed or interrupted export leaves nothing
behind.
"""

from __future__ import annotations

import copy
import importlib
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Optional

from grutool import rundir
from grutool.errors import UserError, either

log = logging.getLogger("grutool")

METADATA_VERSION = 1
# fp32: the graph computes what the model computes, up to float rounding (measured ~1e-6 on logits).
FP32_TOLERANCE = 1e-4
FP32_MIN_AGREEMENT = 0.999
# int8: weights are rounded to 8 bits, so outputs move; what must hold is the prediction.
INT8_MIN_AGREEMENT = 0.97


class ParityError(Exception):
    """The export differs from the original beyond tolerance: exit 1, nothing written."""

    exit_code = 1

    def __init__(self, report: dict):
        super().__init__(describe(report))
        self.report = report


def default_path(run_path: Path, fmt: str, int8: bool = False) -> Path:
    from grutool.export.graph import FORMATS

    return run_path / ("model" + (".int8" if int8 else "") + FORMATS[fmt])


def graph_files(path: Path, names: list[str]) -> dict[str, Path]:
    """The first graph at `path`, the others beside it: model.onnx, model.decoder.onnx."""
    return {name: path if i == 0 else path.with_name(f"{path.stem}.{name}{path.suffix}") for i, name in enumerate(names)}


def metadata_path(path: Path) -> Path:
    """model.onnx -> model.onnx.json: an ONNX and a TorchScript export of one run can sit side by side."""
    return path.with_name(path.name + ".json")


def article(word) -> str:
    """'an' onnx, 'a' torchscript."""
    return "an" if str(word)[:1].lower() in "aeio" else "a"


def check_targets(out: Path, fmt: str, files: dict[str, Path]) -> None:
    """Refuse, before anything is written, an output that would replace something other than an earlier export:
    a file of the run (`-o RUN/config.yaml`), of the user's, or a metadata JSON grutool did not write; and a
    `.onnx` / `.pt` name that says the other format."""
    from grutool.export.graph import FORMATS

    other = {suffix: name for name, suffix in FORMATS.items() if name != fmt}
    if out.suffix in other:
        raise UserError(f"--output {out}: a {out.suffix} name for {article(fmt)} {fmt} export; name it "
                        f"{out.with_suffix(FORMATS[fmt]).name}, or pass --format {other[out.suffix]}")
    meta_file = metadata_path(out)
    earlier: set[str] = set()
    if meta_file.exists():
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = None
        if not (isinstance(meta, dict) and "grutool_export" in meta and isinstance(meta.get("files"), dict)):
            raise UserError(f"--output {out}: its metadata file {meta_file} exists and is not an export's; grutool "
                            f"replaces only an earlier export, so it leaves it alone: choose another --output")
        earlier = {str(name) for name in meta["files"].values()}
    for path in files.values():
        if path.exists() and path.name not in earlier:
            what = "exists" if path == out else f"its {path.name} exists"  # seq2seq: the decoder's file
            raise UserError(f"--output {out}: {what} and is not an earlier export (no {meta_file.name} "
                            f"beside it lists it); grutool replaces only its own exports, so it leaves it alone: "
                            f"choose another --output")


def family(task):
    """The export module of the task's family (grutool.families.<exporter>.export)."""
    if task.exporter is None:
        raise UserError(f"task {task.name}: its runs cannot be exported yet (no ONNX or TorchScript graph of its "
                        f"model); `grutool infer` and `grutool serve` run its checkpoint (--backend torch, the "
                        f"default)")
    return importlib.import_module(f"grutool.families.{task.exporter}.export")


def load_models(run, task, checkpoint: str):
    """The model `infer` runs (the reference) and an export-ready copy (model.kernel native, no packing)."""
    from grutool.checkpoint import load_run_weights
    from grutool.export.encoder import exportable

    path = run.path / checkpoint
    reference = load_run_weights(task.build_model(run.config, run), path, rundir.sizes(run, run.config)).eval()
    native_cfg = run.config.model_copy(update={"model": run.config.model.model_copy(update={"kernel": "native"})})
    native = task.build_model(native_cfg, run)
    native.load_state_dict(reference.state_dict())
    return reference, exportable(native.eval())


def quantize_torch(module):
    """torch's dynamic int8 quantization of the recurrent and linear layers; UserError naming layers it cannot take."""
    import torch
    from torch import nn

    supported = (nn.GRU, nn.LSTM, nn.Linear)
    refused = [f"{name} ({type(m).__name__})" for name, m in module.named_modules() if isinstance(m, nn.RNN)]
    if refused:
        raise UserError(f"int8: torch's dynamic quantization has no int8 kernel for {', '.join(refused)} "
                        f"(model.cell rnn); it supports GRU, LSTM and Linear layers. Export without --int8",
                        option="int8")
    from grutool.export.graph import quiet

    with torch.no_grad(), quiet():
        quantized = torch.ao.quantization.quantize_dynamic(copy.deepcopy(module), set(supported), dtype=torch.qint8)
    # The quantizer swaps children where they are registered, on the model; a model's front-end holds the same
    # parts by reference (grutool.models.base.Model), so a part that is itself a Linear (the numeric front-end's
    # projection) would stay float there and the trace would meet its float weights. Point it at the swapped one.
    for m in quantized.modules():
        embedder = getattr(m, "embedder", None)
        if isinstance(embedder, nn.Module) and "embedder" not in m._modules:
            for name in embedder._modules:
                if name in m._modules:
                    embedder._modules[name] = m._modules[name]
    return quantized


def describe(report: dict) -> str:
    """The parity report in one paragraph (the CLI prints it)."""
    p = report["parity"]
    diffs = ", ".join(f"{k} {v:.2e}" for k, v in p["max_abs_diff"].items())
    tol = p["tolerance"]
    verdict = "ok" if p["ok"] else "FAILED"
    limit = f" (tolerance {tol['max_abs_diff']:.0e})" if tol["max_abs_diff"] is not None else ""
    return (f"parity {verdict} on {p['split']} ({p['examples']} examples, {report['format']}"
            f"{' int8' if report['int8'] else ''}): max |diff| {diffs}{limit}; "
            f"{p['unit']} agree {p['agree']}/{p['total']} ({100 * p['agreement']:.2f} %, "
            f"at least {100 * tol['min_agreement']:.1f} % required)")


def export(run_dir: str | Path, fmt: str = "onnx", output: Optional[str | Path] = None, int8: bool = False,
           checkpoint: str = rundir.BEST, split: str = "validation", atol: Optional[float] = None,
           min_agreement: Optional[float] = None, max_examples: Optional[int] = None,
           exporter: str = "dynamo") -> dict:
    """Write the export of a run and return its report (files, sizes, parity, timings).

    fmt: onnx (torch.onnx dynamo exporter; int8 by ONNX Runtime's quantizer) or torchscript (torch.jit.trace;
    int8 by torch.ao.quantization.quantize_dynamic). Parity: the original model and the export on `split`
    (up to `max_examples`): max |diff| of the outputs <= atol (fp32 only) and agreement of the predicted
    labels / tags / outputs >= min_agreement; otherwise ParityError and nothing is written.
    exporter: onnx only, dynamo or legacy (see grutool.export.graph.onnx_bytes).
    """
    import torch

    from grutool.atomic import check_output_path, write_json_atomic, write_temporary
    from grutool.data.batching import sorted_batches
    from grutool.export import graph as g
    from grutool.export.parity import Parity
    from grutool.families import get_task

    if fmt not in g.FORMATS:
        raise UserError(f"format: '{fmt}' is not an export format; use {' or '.join(g.FORMATS)}", option="format")
    if exporter not in g.EXPORTERS:
        raise UserError(f"exporter: '{exporter}' is not an ONNX exporter; use {' or '.join(g.EXPORTERS)}",
                        option="exporter")
    if atol is not None and not (math.isfinite(atol) and atol >= 0):
        raise UserError(f"atol: must be a finite number >= 0 (got {atol}); the largest max |diff| accepted",
                        option="atol")
    if min_agreement is not None and not 0 <= min_agreement <= 1:
        raise UserError(f"min_agreement: must be between 0 and 1 (got {min_agreement}); the smallest share of "
                        f"equal predictions accepted", option="min_agreement")
    if fmt == "onnx":
        g.require_onnxruntime()
    run = rundir.open_run(run_dir)
    task = get_task(run.config.task)
    fam = family(task)
    from grutool.runs import status

    state = status(run.path)
    if state in ("interrupted", "running"):  # exported as it is, but said: it may not be the model meant
        how = "still training" if state == "running" else "interrupted (no summary.json)"
        log.warning("%s: the run is %s: its %s is the best epoch so far; `grutool train ... --resume` finishes "
                    "it", run.path, how, checkpoint)
    out = Path(output) if output is not None else default_path(run.path, fmt, int8)
    check_output_path(out, "--output")  # before the minutes of work: missing, a file or read-only
    check_targets(out, fmt, {"model": out})  # a run's config.yaml, a file of the user's: never replaced
    have = [s for s in ("train", "validation", "test") if getattr(run.config.data, s, None) is not None]
    if split not in have:  # a name that is no split (`nope`, `text_column`) or one this run lacks
        what = f"the run has no {split} split (data.{split})" if split in ("train", "validation", "test") \
            else f"'{split}' is not a split"
        raise UserError(f"split: {what}; the parity check runs on {either(have)}", option="split")
    source = getattr(run.config.data, split)
    t0 = time.perf_counter()
    reference, ready = load_models(run, task, checkpoint)
    graphs = fam.graphs(ready, len(run.vocab))
    if int8 and fmt == "torchscript":
        for graph in graphs:
            graph.module = quantize_torch(graph.module)
    files = graph_files(out, [graph.name for graph in graphs])
    check_targets(out, fmt, files)  # seq2seq: the decoder's file too
    temps: dict[str, Path] = {}
    try:
        float_ops: list[str] = []
        for graph in graphs:
            data = g.onnx_bytes(graph, exporter) if fmt == "onnx" else g.torchscript_bytes(graph)
            if int8 and fmt == "onnx":
                data, ops = g.quantize_onnx(data)
                float_ops = sorted(set(float_ops) | set(ops))
            temps[graph.name] = write_temporary(files[graph.name], lambda f: f.write(data), size=len(data))
        export_seconds = time.perf_counter() - t0
        signatures = {graph.name: graph.signature() for graph in graphs}
        meta = metadata(run, task, fmt, int8, files, signatures, fam.metadata(ready), checkpoint)
        runtime = runtime_for(fam, fmt, {name: temps[name] for name in files}, signatures, meta)
        # Parity on the labelled split, in the order eval reads it.
        split_data = task.encode_split(run.config, run, source, split)
        # Real-valued outputs agree within the family's CLOSE (INT8_CLOSE for --int8), in the unit its UNIT names.
        close = getattr(fam, "INT8_CLOSE" if int8 else "CLOSE", None)
        parity = Parity(unit=getattr(fam, "UNIT", "labels").format(close=close), close=close)
        t1 = time.perf_counter()
        for batch in sorted_batches(split_data, 64):
            if max_examples is not None and parity.examples >= max_examples:
                break
            try:
                fam.parity(reference, runtime, batch, parity)
            except UserError:
                raise
            except Exception as e:  # the graph itself fails (an exporter froze a size it should have kept)
                said = next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)
                raise UserError(f"export: the exported {fmt} graph failed on {split} examples "
                                f"{parity.examples + 1}-{parity.examples + len(batch.index)} "
                                f"({type(e).__name__}: {said[:200]}); nothing written. Try the other format or "
                                f"--exporter, and report it with the run's config.yaml") from e
            parity.examples += len(batch.index)
        atol_used = (atol if atol is not None else FP32_TOLERANCE) if not int8 else atol
        agreement = min_agreement if min_agreement is not None else (INT8_MIN_AGREEMENT if int8 else FP32_MIN_AGREEMENT)
        report = {"run": str(run.path), "task": task.name, "format": fmt, "int8": int8,
                  "exporter": exporter if fmt == "onnx" else "torch.jit.trace",
                  "files": {name: str(path) for name, path in files.items()},
                  "metadata": str(metadata_path(out)),
                  "bytes": {name: temps[name].stat().st_size for name in files},
                  "parity": {"split": split, **parity.report(atol_used, agreement),
                             "seconds": round(time.perf_counter() - t1, 2)},
                  "export_seconds": round(export_seconds, 2)}
        if float_ops:
            report["float_ops"] = float_ops
        meta["parity"] = report["parity"]
        if float_ops:
            meta["int8_note"] = (f"ONNX Runtime's dynamic quantizer made the MatMul/Gemm weights int8; "
                                 f"{', '.join(float_ops)} ops stay float (it has no int8 kernel for them)")
        if not report["parity"]["ok"]:
            raise ParityError(report)
        write_json_atomic(meta, metadata_path(out), indent=1)
        for name, path in files.items():
            os.replace(temps.pop(name), path)
        return report
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)


def weights_digest(path: Path) -> str:
    """The SHA-256 of a checkpoint file: which weights an export was made from (`produced_by.weights`)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def metadata(run, task, fmt: str, int8: bool, files: dict[str, Path], signatures: dict, family_meta: dict,
             checkpoint: str = rundir.BEST) -> dict:
    """What the JSON beside an export holds: enough to tokenize, run and read it without grutool; and which
    checkpoint file it was made from, by its bytes, so that a later load of it with a run can tell it is that
    run's (`load_export`)."""
    import torch

    from grutool.version import __version__

    cfg = run.config
    d = cfg.data
    vocabs = {"vocab": run.vocab.itos}
    for name in task.vocabularies(cfg):
        v = run.vocabulary(name)
        # A scaler (grutool.data.scaling) travels as its figures; vocabularies as their entries.
        vocabs[name] = v.to_dict() if hasattr(v, "to_dict") else v.itos
    return {"grutool_export": METADATA_VERSION, "task": task.name, "format": fmt, "int8": int8,
            "files": {name: path.name for name, path in files.items()}, "graphs": signatures,
            **inputs_meta(cfg, task),
            "vocabularies": vocabs, **family_meta,
            "produced_by": {"grutool": __version__, "torch": torch.__version__, "run": str(run.path),
                            "checkpoint": checkpoint, "weights": weights_digest(run.path / checkpoint),
                            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}}


# How a value missing from numeric input reaches the graph, per data.missing.
MISSING_NUMBERS = {
    "error": "none: the run was trained with data.missing: error, so every value must be a finite number",
    "ffill": "filled before scaling with the last value before it in the same channel (data.missing: ffill)",
    "interpolate": "filled before scaling, linearly between the values around it (data.missing: interpolate)",
    "mask": "NaN, after scaling: the graph zeroes it and tells the model it was missing (data.missing: mask)",
}


def inputs_meta(cfg, task) -> dict:
    """What turns a user's input into the graphs' inputs: tokens into ids (text), or numbers standardised with
    the run's scaler, which the graph expects done (numeric sequences and forecasts)."""
    from grutool.families.rules import is_numeric

    d = cfg.data
    if task.name == "forecast":
        return {"preprocessing": {
            "window": "float32 (batch, input_length, forecast.channels): the last input_length rows of the columns "
                      "the model reads, in vocabularies.scaler's `names` order, each z-scored, (x - mean) / std "
                      "with its mean and std",
            "forecast": "z-scored like the window: x * std + mean of its column gives the original units",
            "missing": MISSING_NUMBERS[d.missing]}}  # a forecast takes error, ffill or interpolate
    if is_numeric(cfg):
        return {"preprocessing": {
            "ids": "float32 (batch, time, channels): each step's values of the channels in vocabularies.scaler's "
                   "`names` order, each z-scored, (x - mean) / std with its mean and std (scaler.json in the run "
                   "directory); steps after a row's length are padding (0), never read",
            "missing": MISSING_NUMBERS[d.missing]}}
    return {"preprocessing": {"tokenizer": d.tokenizer, "lowercase": d.lowercase, "max_length": d.max_length,
                              "max_word_length": d.max_word_length,
                              "ids": "vocab index of each token, <unk> (1) when absent; rows padded with <pad> (0)",
                              "chars": "per token: char vocab index of each character (original case), 0-padded"
                              if cfg.model.char_features else None},
            "specials": {"pad": 0, "unk": 1, "bos": 2, "eos": 3}}


def runtime_for(fam, fmt: str, files: dict[str, Path], signatures: dict, meta: dict):
    from grutool.export import graph as g

    backend = g.OnnxRuntime(files) if fmt == "onnx" else g.TorchScriptRuntime(files, signatures)
    return fam.Runtime(backend, meta)


def _no_export(run, fmt: str, path: Path, meta_file: Path) -> UserError:
    """Why `path` is no export to load, with a fix `export` takes: a graph beside an export that lists it (a
    seq2seq decoder) is that export's part; a file of another kind is no export; a missing one can be written,
    under its own name only where the name fits the format."""
    from grutool.export.graph import FORMATS

    write = f"`grutool export {run.path} --format {fmt}`"
    if path.is_file():
        for other in sorted(path.parent.glob(f"*{FORMATS[fmt]}.json")):
            try:
                listed = json.loads(other.read_text(encoding="utf-8")).get("files", {})
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(listed, dict) and path.name in listed.values():
                whole = other.with_name(other.name.removesuffix(".json"))
                return UserError(f"{path}: one graph of the export {whole} (its {_key(listed, path.name)}); give "
                                 f"{whole} as `model`", option="model")
        return UserError(f"{path}: no export (no {meta_file.name} beside it: grutool did not write it); give an "
                         f"export's file as `model`, or write one with {write}", option="model")
    if path.suffix != FORMATS[fmt]:  # `export -o` refuses a name of another format's suffix
        return UserError(f"{path}: no export here; {article(fmt)} {fmt} export is a {FORMATS[fmt]} file: write one "
                         f"with {write}", option="model")
    output = f" -o {path}" if path != default_path(run.path, fmt) else ""
    int8 = default_path(run.path, fmt, int8=True)
    if path == default_path(run.path, fmt) and int8.is_file():  # the run's only export is its int8 one
        return UserError(f"{path}: no export here (missing {path.name}; the run has {int8.name}: give it as "
                         f"`model`), or write one with `grutool export {run.path} --format {fmt}`", option="model")
    return UserError(f"{path}: no export here (missing {path.name}); write one with "
                     f"`grutool export {run.path} --format {fmt}{output}`")


def _key(files: dict, name: str) -> str:
    return next(k for k, v in files.items() if v == name)


def load_export(run, fmt: str, path: Optional[str | Path] = None):
    """An exported file behind the model's own calls (for Predictor): the family's Runtime."""
    from grutool.export import graph as g
    from grutool.families import get_task

    if fmt not in g.FORMATS:
        raise UserError(f"backend: '{fmt}' is not a backend; use torch, {' or '.join(g.FORMATS)}", option="backend")
    task = get_task(run.config.task)
    if task.exporter is None:  # before the missing file, whose fix would be an export that is refused
        raise UserError(f"backend: task {task.name} has no {fmt} export (its runs cannot be exported yet); "
                        f"use `backend` torch, the checkpoint", option="backend")
    if fmt == "onnx":
        g.require_onnxruntime()
    path = Path(path) if path is not None else default_path(run.path, fmt)
    meta_file = metadata_path(path)
    if not path.is_file() or not meta_file.is_file():
        raise _no_export(run, fmt, path, meta_file)
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{meta_file}: unreadable export metadata ({exc})") from None
    graphs = meta.get("graphs") if isinstance(meta, dict) else None
    if not (isinstance(graphs, dict) and graphs and all(isinstance(v, dict) and {"inputs", "outputs"} <= set(v)
                                                         for v in graphs.values())):
        raise UserError(f"{meta_file}: export metadata without its `graphs` (each graph's inputs and outputs); "
                        f"it was edited or not written by grutool: export again with "
                        f"`grutool export {run.path} --format {fmt} -o {path}`")
    if meta.get("task") != task.name:
        raise UserError(f"{path}: an export of a {meta.get('task')} model, not of this {task.name} run; give this "
                        f"run's export as `model`, or write one with `grutool export {run.path} --format {fmt}`",
                        option="model")
    if meta.get("format") != fmt:
        said = meta.get("format")
        use = f"use `backend` {said} for it" if said in g.FORMATS else "export it again"
        raise UserError(f"{path}: {article(said)} {said} export, not {article(fmt)} {fmt} one; {use}",
                        option="backend")
    vocabularies = meta.get("vocabularies")
    if not isinstance(vocabularies, dict) or vocabularies.get("vocab") != run.vocab.itos:
        raise UserError(f"{path}: exported from another run (its vocabulary differs from {run.path}'s)")
    made = meta.get("produced_by") if isinstance(meta.get("produced_by"), dict) else {}
    source = made.get("checkpoint")
    # An export names the checkpoint it was made from by its bytes (exports before that: no check): another
    # run's export with the same vocabulary (a numeric or forecast run has no tokens to tell them apart), or this
    # run's from before it trained on (`train --resume` rewrote best.pt), would run other weights, or fail inside.
    if isinstance(made.get("weights"), str) and isinstance(source, str) and Path(source).name == source:
        current = run.path / source
        if not current.is_file() or weights_digest(current) != made["weights"]:
            if path.resolve().parent == run.path.resolve():  # the run's own export, from before it trained on
                output = f" -o {path}" if path != default_path(run.path, fmt) else ""
                raise UserError(f"{path}: made from the run's {source} as it was before it trained on (it has "
                                f"changed since); export it again with `grutool export {run.path} --format "
                                f"{fmt}{output}`", option="model")
            raise UserError(f"{path}: not made from {run.path}'s {source} (an export of another run, or of this one "
                            f"before it trained on); give this run's export as `model`, or write one with "
                            f"`grutool export {run.path} --format {fmt}`", option="model")
    try:
        return runtime_for(family(task), fmt, graph_files(path, list(graphs)), graphs, meta)
    except (KeyError, TypeError) as exc:  # a family's own entries (seq2seq's `decoding`, the crf, ...)
        what = f"no {exc.args[0]!r} entry" if isinstance(exc, KeyError) and exc.args else type(exc).__name__
        raise UserError(f"{meta_file}: export metadata is incomplete ({what}); it was edited or not written by "
                        f"grutool: export again with `grutool export {run.path} --format {fmt} -o {path}`") from None
