"""Overhead of grutool's training loop over the bare model step (benchmark 2).

Times N steps of the real `grutool.train` (collation, autocast check, clipping,
schedule, callbacks, bookkeeping) against a bare loop over the *same* model class and
the *same* pre-collated batches doing only forward, backward and optimizer step.
Medians of per-step wall time after a warm-up; the two are run alternately
(`--rounds`) so machine drift affects both.

    python benchmarks/step_overhead.py --hidden-size 256 --steps 150 [--rounds 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

from grutool.errors import UserError
from grutool.training.callbacks import Callback  # no torch


class StepClock(Callback):
    def __init__(self):
        self.stamps = []

    def on_epoch_begin(self, tr):
        self.stamps.append(time.perf_counter())

    def on_step_end(self, tr, loss, tokens):
        self.stamps.append(time.perf_counter())


def grutool_steps(cfg) -> list[float]:
    from grutool.training.loop import train

    clock = StepClock()
    train(cfg, callbacks=[clock])
    return [b - a for a, b in zip(clock.stamps, clock.stamps[1:])]


def bare_steps(cfg, prepared, n: int) -> list[float]:
    import torch

    from grutool.data.batching import collate, epoch_batches
    from grutool.families import get_task
    from grutool.training.optim import build_optimizer

    t = cfg.train
    torch.manual_seed(t.seed)
    model = get_task(cfg.task).build_model(cfg, prepared).train()
    opt = build_optimizer(model.parameters(), t)
    split = prepared.splits["train"]
    batches = [collate(split, idx) for idx in epoch_batches(split.lengths(), t.batch_size, t.batching, t.seed, 0)[:n]]
    times = []
    for b in batches:
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        _, loss = model(b.ids, b.lengths, b.targets, **b.extra_inputs())
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/sst2.yaml")
    ap.add_argument("--hidden-size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="default: torch's own count")
    args = ap.parse_args()
    # After the arguments: --help and a bad argument answer at once, not after torch's import (seconds).
    import torch

    from grutool.config_file import load_config
    from grutool.families import get_task

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(args.config, [f"model.hidden_size={args.hidden_size}", f"train.max_steps={args.steps}",
                                        "data.validation=null", "data.test=null", "train.patience=null",
                                        "train.epochs=1", f"output_dir={tmp}/run"])
        prepared = get_task(cfg.task).prepare(cfg)
        ours, bare = [], []
        for r in range(args.rounds):
            cfg.output_dir = f"{tmp}/run{r}"
            ours += grutool_steps(cfg)[args.warmup:]
            bare += bare_steps(cfg, prepared, args.steps)[args.warmup:]
    mo, mb = statistics.median(ours), statistics.median(bare)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, hidden_size {args.hidden_size}, "
          f"batch {cfg.train.batch_size}, {args.steps} steps x {args.rounds} rounds, first {args.warmup} dropped")
    print("| loop | median ms/step | p10 | p90 |")
    print("|---|---:|---:|---:|")
    for name, xs in (("grutool train", ours), ("bare forward+backward+step", bare)):
        q = statistics.quantiles(xs, n=10)
        print(f"| {name} | {1e3 * statistics.median(xs):.2f} | {1e3 * q[0]:.2f} | {1e3 * q[-1]:.2f} |")
    print(f"\noverhead: {100 * (mo / mb - 1):+.1f}%")
    sys.stdout.flush()


if __name__ == "__main__":
    try:
        main()
    except UserError as e:  # data not in place (docs/data.md), a bad --set: one line and exit 2, as grutool's own
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
