"""JapaneseVowels (UEA, numeric sequences, issue 23): test accuracy mean ± sd over seeds, GRU vs LSTM.

The protocol, for each cell and seed:
1. **Holdout on TRAIN** (the check that chose the recipe): the config trained on `JapaneseVowels_TRAIN.ts[:80%]`
   for its whole schedule, its last epoch scored on `JapaneseVowels_TRAIN.ts[80%:]` (a stratified 20 % of
   each speaker's utterances, `data.split_seed` = the seed, so each seed holds out other utterances). TEST is
   not read.
2. **The run as shipped**: `configs/japanese_vowels.yaml` as `grutool train` trains it (all 270 TRAIN
   utterances, the same schedule, the last epoch kept), then scored once on the TEST file as
   `grutool eval --split test` scores it.

`--holdout-percent P --holdout-seeds S1 S2 ... --no-test` is the screening mode (TRAIN alone): step 1 alone,
trained on a stratified P % of each speaker's TRAIN utterances and scored on the rest, once per seed; it prints the
errors per seed and their sum, so two recipes can be compared seed by seed on many more held-out utterances than
the 54 of an 80 % split (where the shipped recipe makes no error).

Reported per cell: holdout accuracy and loss, test accuracy (mean ± sd), training seconds of the shipped run
(whole run, and per epoch), and batch-1 latency: the median time of one `Predictor.predict` call on one test
sequence (parsing, scaling, the model; what `grutool infer` does per input).

    OMP_NUM_THREADS=1 python benchmarks/japanese_vowels.py [--data DIR] [--cells gru lstm] [--seeds 13 14 15]
        [--set model.hidden_size=96 ...] [--no-holdout] [--json out.json]
    OMP_NUM_THREADS=1 python benchmarks/japanese_vowels.py --cells gru --no-test --holdout-percent 50 \
        --holdout-seeds 101 102 ... [--set train.label_smoothing=0.1 ...]

`--data`: the folder holding JapaneseVowels_{TRAIN,TEST}.ts (default ../shared/data/timeseries/JapaneseVowels).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from grutool.config_file import load_config  # no torch, as the next
from grutool.evaluate import evaluate
import script_args  # noqa: E402  (benchmarks/ is sys.path[0])

ROOT = Path(__file__).resolve().parents[1]


def mean_sd(xs: list[float]) -> str:
    return f"{statistics.mean(xs):.4f} ± {statistics.stdev(xs) if len(xs) > 1 else 0.0:.4f}"


def latency_ms(run: Path, test: str, repeats: int) -> float:
    """Median ms of one predict call with one sequence (cycling through the test sequences)."""
    from grutool.predict import Predictor

    p = Predictor(run, "cpu")
    texts = p.task.read_inputs(p.cfg, test)
    for t in texts[:10]:
        p.predict([t])  # warm-up
    times = []
    for k in range(repeats):
        t0 = time.perf_counter()
        p.predict([texts[k % len(texts)]])
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def run_sets(cell: str, seed: int, out: Path, overrides: list[str]) -> list[str]:
    """What both steps set besides the data: the cell, the seed, one CPU thread, the run folder, then --set."""
    return [f"model.cell={cell}", f"train.seed={seed}", "train.num_threads=1", "train.device=cpu",
            f"output_dir={out}", *overrides]


def holdout(config: Path, data: Path, cell: str, seed: int, overrides: list[str], out: Path,
            percent: int = 80) -> dict:
    """Step 1: train on TRAIN[:P%] for the whole schedule; the last epoch's accuracy, loss and errors on
    TRAIN[P%:]."""
    train_file = f"{data}/JapaneseVowels_TRAIN.ts"
    sets = [f"data.train={train_file}[:{percent}%]", f"data.validation={train_file}[{percent}%:]",
            "data.test=null", f"data.split_seed={seed}", *run_sets(cell, seed, out, overrides)]
    cfg = load_config(config, sets)
    from grutool.training.loop import train

    train(cfg, overwrite=True)
    last = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][-1]
    return {"holdout_accuracy": last["val_accuracy"], "holdout_loss": last["val_loss"], "holdout_n": last["val_n"],
            "holdout_errors": round((1 - last["val_accuracy"]) * last["val_n"])}


def one(config: Path, data: Path, cell: str, seed: int, overrides: list[str], out: Path, repeats: int) -> dict:
    """Step 2: the config as shipped (TRAIN in, its data.validation if it has one), then TEST once."""
    sets = [f"data.train={data}/JapaneseVowels_TRAIN.ts", f"data.test={data}/JapaneseVowels_TEST.ts",
            *run_sets(cell, seed, out, overrides)]
    cfg = load_config(config, sets)
    from grutool.training.loop import train

    summary = train(cfg, overwrite=True)
    test = evaluate(str(out), "test", device="cpu")
    return {"cell": cell, "seed": seed, "test_accuracy": test["accuracy"],
            "best_epoch": summary["best_epoch"], "epochs": summary["epochs"], "train_s": summary["wall_time_s"],
            "s_per_epoch": summary["wall_time_s"] / summary["epochs"], "parameters": summary["parameters"],
            "latency_ms": latency_ms(out, cfg.data.test, repeats)}


def percent(text: str) -> int:
    """An argparse type: a whole percent from 10 to 90."""
    value = int(text) if text.strip().isdigit() else -1
    if not 10 <= value <= 90:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole percent from 10 to 90")
    return value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "japanese_vowels.yaml"))
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "timeseries" / "JapaneseVowels"))
    ap.add_argument("--cells", nargs="+", default=["gru", "lstm"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[13, 14, 15])
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--repeats", type=script_args.positive, default=200, help="batch-1 predict calls timed per run")
    ap.add_argument("--no-holdout", dest="holdout", action="store_false", help="skip step 1 (the TRAIN holdout)")
    ap.add_argument("--no-test", dest="test", action="store_false",
                    help="skip step 2 (the shipped run and TEST): the TRAIN-only screening mode")
    ap.add_argument("--holdout-percent", type=percent, default=80, metavar="10..90",
                    help="the percent of each speaker's TRAIN utterances step 1 trains on (default 80)")
    ap.add_argument("--holdout-seeds", nargs="+", type=int,
                    help="the split (and training) seeds of step 1 (default: --seeds)")
    ap.add_argument("--json", help="write every run's figures here")
    args = ap.parse_args()
    if not (args.test or args.holdout):
        ap.error("--no-test with --no-holdout leaves nothing to run")
    # After the arguments: --help and a bad argument answer at once, not after torch's import (seconds).
    import torch

    torch.set_num_threads(1)
    load_start = os.getloadavg()[0]
    rows, held = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for cell in args.cells:
            if args.test:
                for seed in args.seeds:
                    row = one(Path(args.config), Path(args.data), cell, seed, args.overrides,
                              Path(tmp) / f"{cell}{seed}", args.repeats)
                    rows.append(row)
                    print(json.dumps(row), file=sys.stderr, flush=True)
            if args.holdout:
                for seed in args.holdout_seeds or args.seeds:
                    h = {"cell": cell, "seed": seed, **holdout(Path(args.config), Path(args.data), cell, seed,
                                                               args.overrides, Path(tmp) / f"holdout_{cell}{seed}",
                                                               args.holdout_percent)}
                    held.append(h)
                    print(json.dumps(h), file=sys.stderr, flush=True)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    env = {"date": time.strftime("%Y-%m-%d"), "commit": commit, "torch": torch.__version__,
           "python": platform.python_version(), "threads": torch.get_num_threads(),
           "load_1min": [round(load_start, 2), round(os.getloadavg()[0], 2)], "overrides": args.overrides,
           "holdout_percent": args.holdout_percent}
    if not args.test:
        print("| cell | holdout errors per seed | errors | held out | accuracy | mean loss |")
        print("|---|---|---:|---:|---:|---:|")
        for cell in args.cells:
            hs = [h for h in held if h["cell"] == cell]
            errors, n = sum(h["holdout_errors"] for h in hs), sum(h["holdout_n"] for h in hs)
            print(f"| {cell} | {' '.join(str(h['holdout_errors']) for h in hs)} | **{errors}** | {n} | "
                  f"{1 - errors / n:.4f} | {statistics.mean(h['holdout_loss'] for h in hs):.4f} |")
        print(json.dumps(env))
        if args.json:
            Path(args.json).write_text(json.dumps({"env": env, "holdouts": held}, indent=1), encoding="utf-8")
        return
    for row in rows:  # step 1's figures beside step 2's, by cell and seed
        row.update({k: v for h in held if (h["cell"], h["seed"]) == (row["cell"], row["seed"])
                    for k, v in h.items() if k.startswith("holdout")})
    print(f"| cell | parameters | holdout accuracy (loss) | test accuracy (per seed) | test mean ± sd | train s (mean) | "
          f"s/epoch | batch-1 latency ms |")
    print("|---|---:|---:|---|---:|---:|---:|---:|")
    for cell in args.cells:
        rs = [r for r in rows if r["cell"] == cell]
        per_seed = " / ".join(f"{r['test_accuracy']:.4f}" for r in rs)
        hs = [h for h in held if h["cell"] == cell]
        step1 = "—"
        if hs:
            loss = statistics.mean(h["holdout_loss"] for h in hs)
            step1 = f"{mean_sd([h['holdout_accuracy'] for h in hs])} ({loss:.4f})"
        print(f"| {cell} | {rs[0]['parameters']:,} | {step1} | "
              f"{per_seed} | **{mean_sd([r['test_accuracy'] for r in rs])}** | "
              f"{statistics.mean(r['train_s'] for r in rs):.1f} | {statistics.mean(r['s_per_epoch'] for r in rs):.3f} | "
              f"{statistics.median(r['latency_ms'] for r in rs):.2f} |")
    print(json.dumps(env))
    if args.json:
        Path(args.json).write_text(json.dumps({"env": env, "runs": rows}, indent=1), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(script_args.run(main))
