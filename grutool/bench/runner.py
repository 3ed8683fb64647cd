"""`run(grid)`: grid -> workloads -> interleaved timing -> report rows.

Rows that differ only in the cell and kernel path form a group; a group's
workloads are built together and sampled in turn (GRU LSTM RNN GRU LSTM RNN ...),
so the ratios between them, the numbers people compare, are the most robust
part of a report.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import time
from dataclasses import fields, replace
from typing import Callable, Optional

import torch

from grutool.bench import env, grid as grids, timing, workloads
from grutool.bench.grid import Grid, Spec
from grutool.bench.report import SCHEMA, VERSION, add_ratios, key_without_cell
from grutool.errors import UserError, counted, counted_plural
from grutool.families import get_task
from grutool.families.rules import is_numeric
from grutool.training.device import resolve_device

log = logging.getLogger("grutool")

BUSY_LOAD = 0.5  # load average per logical CPU at the start above which the run gets a warning

# What `Task.synthetic_sizes`' other keywords count, for the line that says which sizes were assumed.
SIZE_WORDS = {"num_chars": "characters", "num_intents": "intents", "num_series": "series"}

Progress = Callable[[int, int, str], None]  # (rows done, rows in all, label of the group being timed)


def _check_dtypes(dtypes, device: torch.device) -> None:
    if device.type == "cpu" and "float16" in dtypes:
        raise UserError("--dtype float16: not supported for CPU benchmarks (PyTorch's CPU RNN kernels "
                        "are not meant for it); use float32 or bfloat16 on CPU, or float16 with --device cuda")


def layer_specs(g: Grid, device: torch.device) -> list[Spec]:
    _check_dtypes(g.dtype, device)
    return [Spec("layer", cell, mode, lengths, kernels, device.type, dtype, b, t, i, h, n, bi)
            for mode, lengths, dtype, b, t, i, h, n, bi, kernels, cell in itertools.product(
                g.mode, g.lengths, g.dtype, g.batch_size, g.seq_len, g.input_size, g.hidden_size,
                g.num_layers, g.bidirectional, g.kernels, g.cells)
            if grids.has_kernel(cell, kernels)]


def model_specs(g: Grid, cfg, device: torch.device) -> tuple[list[Spec], dict]:
    """Rows for a model config: the config's own sizes unless the grid gives others; and the task's other
    sizes read from the data (`workloads.data_sizes`), for `workloads.model`."""
    if g.dtype is not None:
        raise UserError("--dtype: does not apply with --config; the model runs as `grutool train` runs it "
                        "(float32, or float16 autocast on CUDA when train.amp is true)")
    if g.lengths is not None and "padded" in g.lengths:
        raise UserError("--lengths padded: a configured model packs its batches of mixed lengths and runs those of "
                        "one length dense, as train does (grutool.modules.encoder), so padding never enters its "
                        "recurrence; use packed or bucketed with --config")
    vocab_size, num_classes, source, counts, longest = workloads.data_sizes(cfg, g.vocab_size, g.num_classes)
    m, t = cfg.model, cfg.train
    task = get_task(cfg.task)
    # A family whose examples all have one length (forecast: data.input_length rows a window; `shapes` reads the
    # same flag) has no lengths to vary: its rows say `equal`, never the sampler's name.
    # So is a stream's (train.bptt): every chunk is bptt steps, run dense (it was timed packed, `bucketed`).
    fixed = task.throughput_unit != "tokens" or bool(t.bptt)
    examples = "chunk of a stream (train.bptt)" if t.bptt else f"example of a task {cfg.task}"
    if fixed and g.lengths is not None:
        raise UserError(f"--lengths: every {examples} has the same length (T={longest}); drop --lengths",
                        option="lengths")
    length_setting = "train.bptt" if t.bptt else task.length_setting
    if length_setting and g.seq_len and set(g.seq_len) != {longest}:  # its examples ignore it: rows mislabelled
        raise UserError(f"--seq-len: every {examples} has {length_setting} steps (T={longest}); vary it with "
                        f"--set {length_setting}=N, one bench per value", option="seq-len")
    # I: the recurrent layer's input width. A family without a token embedding (forecast) projects each segment
    # to the hidden size, so I is H and not a size of its own.
    embedded = task.reads("model", "embedding_dim")
    if g.input_size is not None and not embedded:
        raise UserError(f"--input-size: task {cfg.task} feeds its recurrent layer model.hidden_size features "
                        f"(each segment projected to it); vary --hidden-size instead", option="input-size")
    chars = workloads.synthetic_counts(cfg, counts).get("num_chars")  # model.char_features: the char vocabulary
    if source == "defaults" and not embedded and g.vocab_size is None:
        # a forecaster is sized by its columns: the text default, 20,000 of them, ran out of memory in a traceback
        raise UserError(f"--config: {task.train_file(cfg)}: data file not found, and a forecaster's model is sized by "
                        f"its columns; point data.train at the file (docs/data.md), or give --vocab-size (the "
                        f"columns it reads) and --num-classes (those it predicts)")
    if source == "defaults" and is_numeric(cfg):  # values per step: channels, no vocabulary
        from grutool.data.numeric import SYNTHETIC_CHANNELS

        log.info("data not read: %d channels per step; %d %s for a model with classes (set with --num-classes)",
                 SYNTHETIC_CHANNELS, num_classes, task.outputs)
    elif source == "defaults":
        assumed = ", ".join(f"{n} {SIZE_WORDS.get(k, k.removeprefix('num_'))}"
                            for k, n in workloads.assumed_sizes(cfg, vocab_size, num_classes).items())
        sizes = f"vocabulary {vocab_size} and {num_classes} classes" if embedded else \
            f"{vocab_size} columns in and {counted_plural(num_classes, task.outputs)}"
        log.info("data not read: %s (set with --vocab-size / --num-classes)%s", sizes,
                 f"; {assumed} assumed" if assumed else "")
    elif not embedded:  # a forecaster's synthetic_sizes: the columns it reads and those it predicts
        log.info("%s in and %s from %s", counted(vocab_size, "column"), counted_plural(num_classes, task.outputs),
                 source)
    elif is_numeric(cfg):  # values per step: no vocabulary
        log.info("%s from %s", counted_plural(num_classes, task.outputs), source)
    else:
        outputs = task.counted_outputs(cfg, num_classes)  # tags, targets, an lm's conditions (or none)
        sizes = ", ".join([f"vocabulary {vocab_size}", *([outputs] if outputs else [])])
        if chars:
            sizes += f", {chars} characters"
        steps = f"chunks of T={longest} steps (train.bptt)" if t.bptt else f"batches up to T={longest} steps"
        log.info("%s from %s; %s", sizes, source, steps)
    dtype = "float16-amp" if device.type == "cuda" and t.amp else "float32"
    axes = itertools.product(
        g.mode or grids.MODES,
        ("equal",) if fixed else g.lengths or (("bucketed",) if t.batching == "bucketed" else ("packed",)),
        g.batch_size or (t.batch_size,),
        g.seq_len or (longest,),
        g.input_size or ((m.embedding_dim,) if embedded else (None,)),
        g.hidden_size or (m.hidden_size,),
        g.num_layers or (m.num_layers,),
        g.bidirectional or (m.bidirectional,),
        g.kernels or ("default",),
        g.cells or (m.cell,),
    )
    return [Spec("model", cell, mode, lengths, kernels, device.type, dtype, b, tl, h if i is None else i, h, n, bi,
                 config=g.config, vocab_size=vocab_size, num_classes=num_classes)
            for mode, lengths, b, tl, i, h, n, bi, kernels, cell in axes if grids.has_kernel(cell, kernels)], counts


def variant(cfg, spec: Spec):
    """`cfg` with this row's cell, sizes and batch (what `train` would see had the YAML said so)."""
    # A forecaster has no embedding: its recurrent input is its hidden size.
    sizes = {"embedding_dim": spec.input_size} if get_task(cfg.task).reads("model", "embedding_dim") else {}
    model = cfg.model.model_copy(update=dict(cell=spec.cell, **sizes, hidden_size=spec.hidden_size,
                                             num_layers=spec.num_layers, bidirectional=spec.bidirectional,
                                             kernel=grids.model_kernel(spec.kernels, cfg.model.kernel, spec.cell)))
    train = cfg.train.model_copy(update=dict(batch_size=spec.batch_size, device=spec.device))
    return cfg.model_copy(update=dict(model=model, train=train))


def _group_key(spec: Spec) -> tuple:
    return tuple(getattr(spec, f.name) for f in fields(Spec) if f.name not in ("cell", "kernels"))


def _label(spec: Spec) -> str:
    return (f"{spec.mode} {spec.lengths} B={spec.batch_size} T={spec.seq_len} I={spec.input_size} "
            f"H={spec.hidden_size} L={spec.num_layers}{' bi' if spec.bidirectional else ''} {spec.dtype}")


def _row(w: workloads.Workload, stats: timing.Stats, probe: env.Probe, repeats: int) -> dict:
    ms = 1000.0
    return {
        **w.spec.key(),
        "kernel": probe.kernel,
        "params": w.params,
        "tokens": w.tokens,
        "unit": w.unit,
        "repeats": repeats,
        "number": stats.number,
        "median_ms": stats.median * ms,
        "q1_ms": stats.q1 * ms,
        "q3_ms": stats.q3 * ms,
        "min_ms": stats.min * ms,
        "max_ms": stats.max * ms,
        "spread": stats.spread if math.isfinite(stats.spread) else None,
        "noisy": stats.noisy,
        "tokens_per_s": w.tokens / stats.median if stats.median > 0 else 0.0,
        "vs_lstm": None,
        "peak_mem_mb": probe.peak_mem_mb,
        "rss_growth_mb": probe.rss_growth_mb,
        "samples_ms": [s * ms for s in stats.samples],
    }


@contextlib.contextmanager
def _torch_settings(threads: Optional[int], deterministic: bool):
    """Thread count and determinism for the run, restored afterwards (the process may go on)."""
    old_threads, old_det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    if threads:
        torch.set_num_threads(threads)
    if deterministic:
        torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det)


def run(grid: Grid, *, smoke: bool = False, progress: Optional[Progress] = None, overrides: list[str] = ()) -> dict:
    """Time every row of `grid` (a model config's rows when grid.config is set, read with `overrides`, the
    `--set KEY=VALUE` strings); returns the report."""
    base = grids.SMOKE if smoke else grids.DEFAULT
    settings = grids.merge(replace(base, **{a: None for a in grids.AXES}), grid)
    cfg, counts = None, {}
    if grid.config:
        from grutool.config_file import load_config

        cfg = load_config(grid.config, list(overrides))
        # --device (or the grid's device) is named as the option; the config's own as train.device
        device = resolve_device(grid.device, "device") if grid.device else resolve_device(cfg.train.device)
        specs, counts = model_specs(grid, cfg, device)
        threads, deterministic = settings.threads or cfg.train.num_threads, cfg.train.deterministic
    else:
        device = resolve_device(settings.device, "device")
        specs = layer_specs(grids.resolve(grid, smoke), device)
        threads, deterministic = settings.threads, False

    for spec in specs:  # an absurd size is one error line before anything is allocated or timed
        workloads.check_fits(spec, variant(cfg, spec) if cfg is not None else None, counts)
    groups: dict[tuple, list[Spec]] = {}
    for spec in specs:
        groups.setdefault(_group_key(spec), []).append(spec)

    log.info("timing %d rows in %d group(s) on %s (cells and kernel paths interleaved within a group)",
             len(specs), len(groups), device)
    clock = timing.CudaEventClock() if device.type == "cuda" else timing.WallClock()
    rows: list[dict] = []
    start = time.perf_counter()
    with _torch_settings(threads, deterministic):
        report = {"schema": SCHEMA, "version": VERSION, "env": env.capture(device)}
        for members in groups.values():
            if progress:
                progress(len(rows), len(specs), _label(members[0]))
            built = [workloads.model(s, variant(cfg, s), settings.seed, counts) if cfg is not None
                     else workloads.layer(s, settings.seed) for s in members]
            cases = [timing.Case(f"{w.spec.cell}/{w.spec.kernels}", w.fn, w.context) for w in built]
            stats = timing.time_interleaved(cases, repeats=settings.repeats, warmup=settings.warmup,
                                            min_sample_s=settings.min_sample_ms / 1000, clock=clock)
            for w, s in zip(built, stats):
                rows.append(_row(w, s, env.probe(w.fn, w.context, device), settings.repeats))
            del built, cases
        if progress:
            progress(len(rows), len(specs), "done")
    add_ratios(rows)
    report["env"]["loadavg_end"] = env.capture(device)["loadavg"]
    report["settings"] = {"repeats": settings.repeats, "warmup": settings.warmup,
                          "min_sample_ms": settings.min_sample_ms, "seed": settings.seed,
                          "threads": threads, "smoke": smoke, "config": grid.config, "set": list(overrides),
                          "memory": env.memory_metric(device), "noisy_spread": timing.NOISY_SPREAD}
    report["duration_s"] = round(time.perf_counter() - start, 1)
    report["rows"] = rows
    noisy = [r for r in rows if r["noisy"]]
    report["warnings"] = []
    load, cpus = report["env"]["loadavg"], report["env"]["cpu_count"] or 1
    if load and load[0] > BUSY_LOAD * cpus:
        report["warnings"].append(
            f"the machine was busy when the run started (1-minute load average {load[0]:.2f} on {cpus} logical "
            f"CPUs): other processes shared the cores, so these timings are not fit to publish")
    if noisy:
        report["warnings"].append(
            f"{len(noisy)} of {len(rows)} rows vary too much to trust (interquartile range above "
            f"{timing.NOISY_SPREAD:.0%} of the median; marked '~'): rerun on a quieter machine or with more --repeats")
    return report


def sanity_problems(report: dict) -> list[str]:
    """What `--smoke` checks: positive times, kernel paths identified, GRU = 3/4 of LSTM's parameters."""
    problems = []
    rows = report["rows"]
    if not rows:
        problems.append("no rows were timed")
    for r in rows:
        name = f"{r['cell']} {r['mode']} {r['lengths']} {r['kernels']} H={r['hidden_size']}"
        if not (r["median_ms"] > 0 and r["min_ms"] > 0 and r["tokens_per_s"] > 0):
            problems.append(f"{name}: non-positive time ({r['median_ms']} ms)")
        if r["kernel"] == "unknown":
            problems.append(f"{name}: no recurrent op found in its profile")
    lstm = {key_without_cell(r): r for r in rows if r["cell"] == "lstm" and r["workload"] == "layer"}
    for r in rows:
        other = lstm.get(key_without_cell(r))
        if r["cell"] == "gru" and other is not None and 4 * r["params"] != 3 * other["params"]:
            problems.append(f"GRU has {r['params']:,} parameters, LSTM {other['params']:,}: "
                            f"expected exactly 3/4 (3 gates against 4)")
    return problems

