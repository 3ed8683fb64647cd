"""Batch-1 forecast latency of a forecast config, GRU vs LSTM, eager PyTorch vs ONNX Runtime (issue 22).

For each cell a tiny run of the config is trained with `grutool train` (one epoch, a few optimizer steps, the
data cut to fewer rows with data.borders: the model's sizes stay the config's own; its weights do not matter
for latency) and exported with `grutool export` (ONNX). Then, on one thread (torch.set_num_threads(1), ONNX
Runtime intra_op_num_threads 1), two things are timed, every case interleaved in each round (the order rotates
from round to round) so a change in the machine's load falls on all of them alike:

  model    the model call on one window: `Predictor.model(x, lengths)` with x (1, input_length, C), the eager
           module under no_grad or the ONNX Runtime session behind the same call;
  predict  one `Predictor.predict([table text])`: parsing input_length rows of csv text, scaling, the model,
           the inverse scaling and the result dict (what `grutool infer --file` does per input).

A sample is the mean of `--number` calls; printed per case: median, min and max of the samples (ms), with the
1-minute load average at the start and end, and the kernel each cell's eager model ran (profiled once).

    OMP_NUM_THREADS=1 python benchmarks/forecast_latency.py [--config configs/etth1.yaml] [--cells gru lstm]
        [--rounds 25] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import script_args  # noqa: E402  (benchmarks/ is sys.path[0])
from grutool.config_file import DATA_PATHS, data_present, load_config  # no torch, as the next
from grutool.families.forecast.covariates import Roles

ROOT = Path(__file__).resolve().parents[1]


def grutool(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "grutool", *args], stdout=subprocess.DEVNULL)
    if done.returncode == 2:  # grutool said what is wrong in one line: no traceback of this script under it
        sys.exit(2)
    done.check_returncode()


def check_data(cfg) -> None:
    """Every data file of the config in place, before the tiny runs train: else one line naming the missing one
    (a CalledProcessError traceback came after grutool's own line)."""
    from grutool.data.loading import data_not_found

    for name in DATA_PATHS:
        path = getattr(cfg.data, name)
        if isinstance(path, str) and not data_present(Path(path)):
            raise data_not_found(path)


def tiny_run(config: str, cell: str, out: Path, borders: str, steps: int) -> None:
    """Train (1 epoch, `steps` optimizer steps, the rows cut by `borders`) and export to ONNX."""
    grutool("train", config, "-o", str(out), "--set", f"model.cell={cell}", "--set", "train.epochs=1",
            "--set", f"train.max_steps={steps}", "--set", f"data.borders={borders}",
            "--set", "train.num_threads=1", "--set", "train.device=cpu")
    grutool("export", str(out))


def table_text(cfg, rows: int) -> str:
    """Header and `rows` rows of the test file, ending at the validation border (a window's worth)."""
    lines = Path(cfg.data.test).read_text(encoding="utf-8").splitlines()
    end = (cfg.data.borders or [len(lines) - 1] * 2)[1]
    return "\n".join([lines[0], *lines[end - rows + 1:end + 1]]) + "\n"


def sample_ms(fn, number: int) -> float:
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) * 1000 / number


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "etth1.yaml"))
    ap.add_argument("--cells", nargs="+", default=["gru", "lstm"])
    ap.add_argument("--borders", default="[8640,9000,9360]",
                    help="data.borders of the tiny runs (ETTh1: the first 8,640 rows train, validation cut short)")
    ap.add_argument("--steps", type=script_args.positive, default=4, help="train.max_steps of the tiny runs")
    ap.add_argument("--rounds", type=script_args.positive, default=25, help="timed rounds, every case once a round")
    ap.add_argument("--warmup", type=int, default=3, help="untimed rounds first")
    ap.add_argument("--number", type=script_args.positive, default=10, help="calls per sample")
    ap.add_argument("--runs", help="reuse the runs in this folder (one per cell, named by cell) if present")
    ap.add_argument("--json", help="write the samples and the environment here")
    args = ap.parse_args()
    cfg = load_config(args.config)
    check_data(cfg)
    # After the arguments and the data: --help, a bad argument and missing data answer at once, not after
    # torch's import (seconds).
    import torch

    from grutool.bench import env
    from grutool.predict import Predictor

    torch.set_num_threads(1)  # before the ONNX sessions: OnnxRuntime takes intra_op_num_threads from it
    tmp = tempfile.TemporaryDirectory()
    base = Path(args.runs or tmp.name)
    train_s = {}
    for cell in args.cells:
        if not (base / cell / "model.onnx").is_file():
            t0 = time.perf_counter()
            tiny_run(args.config, cell, base / cell, args.borders, args.steps)
            train_s[cell] = round(time.perf_counter() - t0, 1)

    load_start = os.getloadavg()[0]
    text = table_text(cfg, cfg.data.input_length)
    cases, kernels, params = {}, {}, {}
    for cell in args.cells:
        for backend in ("torch", "onnx"):
            p = Predictor(base / cell, "cpu", backend=backend)
            c = len(Roles.of(p.cfg, list(p.run.extra["scaler"].names)).columns)  # the window's columns
            x = torch.randn(1, cfg.data.input_length, c)  # (1, L, C): one window
            lengths = torch.full((1,), cfg.data.input_length, dtype=torch.long)

            def call(p=p, x=x, lengths=lengths):
                with torch.no_grad():
                    return p.model(x, lengths)

            cases[(cell, backend, "model")] = call
            cases[(cell, backend, "predict")] = lambda p=p: p.predict([text])
            if backend == "torch":
                kernels[cell] = env.probe(call, contextlib.nullcontext, torch.device("cpu")).kernel
                params[cell] = sum(t.numel() for t in p.model.parameters())
    assert torch.get_num_threads() == 1
    keys = list(cases)
    for _ in range(args.warmup):
        for k in keys:
            sample_ms(cases[k], args.number)
    samples = {k: [] for k in keys}
    for r in range(args.rounds):
        order = keys[r % len(keys):] + keys[:r % len(keys)]  # rotate: no case always first after a pause
        for k in order:
            samples[k].append(sample_ms(cases[k], args.number))
    load_end = os.getloadavg()[0]

    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    environment = {"date": time.strftime("%Y-%m-%d"), "commit": commit, "torch": torch.__version__,
                   "onnxruntime": __import__("onnxruntime").__version__, "python": platform.python_version(),
                   "cpu": env.cpu_model(), "threads": torch.get_num_threads(),
                   "load_1min": [round(load_start, 2), round(load_end, 2)], "rounds": args.rounds,
                   "number": args.number, "warmup": args.warmup, "borders": args.borders, "steps": args.steps,
                   "tiny_run_s": train_s}
    print("| cell | kernel (eager) | parameters | what | eager ms: median (min–max) | ONNX Runtime ms: median "
          "(min–max) | eager / ORT |")
    print("|---|---|---:|---|---:|---:|---:|")
    for what in ("model", "predict"):
        for cell in args.cells:
            e, o = samples[(cell, "torch", what)], samples[(cell, "onnx", what)]
            me, mo = statistics.median(e), statistics.median(o)
            print(f"| {cell} | {kernels[cell]} | {params[cell]:,} | {what} | {me:.2f} ({min(e):.2f}–{max(e):.2f}) | "
                  f"{mo:.2f} ({min(o):.2f}–{max(o):.2f}) | {me / mo:.2f} |")
    for what in ("model", "predict"):
        for backend in ("torch", "onnx"):
            if {"gru", "lstm"} <= set(args.cells):
                g = statistics.median(samples[("gru", backend, what)])
                l_ = statistics.median(samples[("lstm", backend, what)])
                print(f"{what} {backend}: GRU / LSTM = {g / l_:.2f}")
    print(json.dumps(environment))
    if args.json:
        Path(args.json).write_text(json.dumps({"env": environment, "kernels": kernels, "parameters": params,
                                               "samples_ms": {"/".join(k): v for k, v in samples.items()}},
                                              indent=1), encoding="utf-8")
    tmp.cleanup()


if __name__ == "__main__":
    sys.exit(script_args.run(main))
