"""A config's real training steps with two recurrent kernels side by side (issue 13, benchmark 3).

Builds the config's model twice, with `model.kernel` native and auto (or any two kernels), from the same
seed, and runs `Trainer.step` (the production step: collate, forward, loss, backward, clipping,
optimizer, schedule, EMA) over the same batches of the first epoch, alternating in rounds so that the
machine's drift touches both alike. Reports median ms per step, real tokens/s, and the epoch time
those imply (steps per epoch x mean step time); the speed-up over the first kernel of mean step times,
its range over the rounds (each round's batches, back to back) and of median step times.

    python benchmarks/kernel_steps.py configs/pos.yaml [--kernels native,auto] [--steps 60] [--rounds 5]
                                      [--threads 1] [--set key=value ...] [--torch-packing]

--torch-packing compares packing instead of kernels: the config's model (its own kernel) with the encoder's
one-gather `pack`/`unpack` against the same model packing with torch's pack_padded_sequence/pad_packed_sequence,
as it did before (benchmarks/packing_ab.py).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import script_args  # noqa: E402  (benchmarks/ is sys.path[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--kernels", default="native,auto", type=script_args.names("auto", "native", "fused", "compiled"))
    ap.add_argument("--steps", type=script_args.positive, default=60, help="steps per kernel per round")
    ap.add_argument("--rounds", type=script_args.positive, default=5)
    ap.add_argument("--threads", type=script_args.positive, default=1)
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--torch-packing", action="store_true", help="torch's packing vs the encoder's, not two kernels")
    args = ap.parse_args()
    # After the arguments: --help and a bad argument answer at once, not after torch's import (seconds).
    import torch

    from grutool.config_file import load_config
    from grutool.data.batching import epoch_batches
    from grutool.families import get_task
    from grutool.training.device import resolve_device
    from grutool.training.loop import Trainer

    torch.set_num_threads(args.threads)
    kernels = ["torch-packing", "gather"] if args.torch_packing else args.kernels.split(",")
    cfg = load_config(args.config, list(args.set))
    task = get_task(cfg.task)
    t0 = time.perf_counter()
    prepared = task.prepare(cfg)
    print(f"{args.config}: data prepared in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    split = prepared.splits["train"]
    t = cfg.train
    batches = epoch_batches(split.lengths(), t.batch_size, t.batching, t.seed, 0)
    need = args.steps * args.rounds
    order = (batches * (need // max(len(batches), 1) + 1))[:need]
    device = resolve_device("cpu")
    trainers = {}
    with tempfile.TemporaryDirectory() as tmp:
        for k in kernels:
            ck = cfg if args.torch_packing else cfg.model_copy(update={"model": cfg.model.model_copy(update={"kernel": k})})
            torch.manual_seed(t.seed)
            trainers[k] = Trainer(ck, task, prepared, task.build_model(ck, prepared), Path(tmp), device, callbacks=[])
            if k == "torch-packing":
                from packing_ab import with_torch_packing  # benchmarks/ is sys.path[0]
                with_torch_packing(trainers[k].model)
            trainers[k].model.train()
            for idx in order[:3]:  # warm-up
                trainers[k].step(idx)
        times = {k: [] for k in kernels}
        tokens = {k: 0 for k in kernels}
        for r in range(args.rounds):
            chunk = order[r * args.steps:(r + 1) * args.steps]
            for k in (kernels if r % 2 == 0 else kernels[::-1]):
                for idx in chunk:
                    s = time.perf_counter()
                    _, n = trainers[k].step(idx)
                    times[k].append(time.perf_counter() - s)
                    tokens[k] += n
    per_epoch = len(batches)
    print(f"{args.config}, {args.threads} thread(s), {need} steps per kernel in {args.rounds} alternating rounds; "
          f"{per_epoch} steps per epoch")
    base = None
    per_round = {k: [statistics.fmean(times[k][r * args.steps:(r + 1) * args.steps]) for r in range(args.rounds)]
                 for k in kernels}
    for k in kernels:
        mean = statistics.fmean(times[k])
        line = (f"  kernel {k:<6}  median {statistics.median(times[k]) * 1e3:7.2f} ms/step   "
                f"{tokens[k] / sum(times[k]):9,.0f} tokens/s   epoch ~{mean * per_epoch:7.1f} s")
        if base is None:
            base = k
        else:
            # speed over the first kernel: of mean step times, and per round (the same batches, back to back)
            rounds = [a / b for a, b in zip(per_round[base], per_round[k])]
            line += (f"   {statistics.fmean(times[base]) / mean:.2f}x (rounds {min(rounds):.2f}-{max(rounds):.2f}, "
                     f"medians {statistics.median(times[base]) / statistics.median(times[k]):.2f}x)")
        print(line)


if __name__ == "__main__":
    sys.exit(script_args.run(main))
