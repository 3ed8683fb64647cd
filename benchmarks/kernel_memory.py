"""Peak memory of a config's real training steps with one recurrent kernel (issue 24 (b)).

One kernel per process, since peak RSS (VmHWM) is a process's own: builds the config's model with
`model.kernel` set, runs `Trainer.step` (the production step) over the first `--steps` batches of epoch 0,
then one validation pass, and prints the process's resident memory (VmRSS) and its peak (VmHWM) as it
goes, with the Python heap's view (glibc's `mallinfo2`: bytes in use and bytes held free) beside them.

    python benchmarks/kernel_memory.py configs/pos.yaml --kernel fused [--steps 200] [--every 25]
                                       [--threads 1] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import sys
import tempfile
import time
from pathlib import Path

from grutool.errors import UserError


def _status() -> dict:
    """VmRSS, VmHWM (MB) from /proc, and glibc's heap: in use and held free (MB)."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = round(int(value.split()[0]) / 1024, 1)
    try:
        class Mallinfo2(ctypes.Structure):
            _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                       "fsmblks", "uordblks", "fordblks", "keepcost")]
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = Mallinfo2
        m = libc.mallinfo2()
        out["heap_used"] = round((m.uordblks + m.hblkhd) / 2**20, 1)
        out["heap_free"] = round(m.fordblks / 2**20, 1)
    except (OSError, AttributeError):
        pass
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--kernel", default="fused")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--every", type=int, default=25)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-validation", action="store_true")
    ap.add_argument("--gemm", choices=("auto", "blas", "onednn"), default="auto",
                    help="force the fused kernels' GEMM backend (grutool.modules.rnn.gemm.use_gemm_backend)")
    ap.add_argument("--set", action="append", default=[])
    args = ap.parse_args()
    # After the arguments: --help and a bad argument answer at once, not after torch's import (seconds).
    # Imported before the `start` figures are read, as before.
    import torch

    from grutool.config_file import load_config
    from grutool.data.batching import epoch_batches
    from grutool.families import get_task
    from grutool.modules.rnn.gemm import use_gemm_backend
    from grutool.training.device import resolve_device
    from grutool.training.evaluation import evaluate_split
    from grutool.training.trainer import Trainer

    torch.set_num_threads(args.threads)
    cfg = load_config(args.config, [*args.set, f"model.kernel={args.kernel}"])
    task = get_task(cfg.task)
    trace = [("start", 0, _status())]
    prepared = task.prepare(cfg)
    trace.append(("data", 0, _status()))
    t = cfg.train
    batches = epoch_batches(prepared.splits["train"].lengths(), t.batch_size, t.batching, t.seed, 0)
    device = resolve_device("cpu")
    t0 = time.perf_counter()
    gemm = use_gemm_backend(args.gemm) if args.gemm != "auto" else contextlib.nullcontext()
    with tempfile.TemporaryDirectory() as tmp, gemm:
        torch.manual_seed(t.seed)
        trainer = Trainer(cfg, task, prepared, task.build_model(cfg, prepared), Path(tmp), device, callbacks=[])
        trainer.model.train()
        trace.append(("model", 0, _status()))
        for i, idx in enumerate(batches[:args.steps], 1):
            trainer.step(idx)
            if i % args.every == 0 or i == args.steps:
                trace.append(("step", i, _status()))
        seconds = time.perf_counter() - t0
        if not args.no_validation and "validation" in prepared.splits:
            evaluate_split(trainer.model, task, prepared.splits["validation"], device, t.batch_size)
            trace.append(("validation", args.steps, _status()))
    for what, i, s in trace:
        print(f"{args.kernel:<6} {what:<10} {i:5d}  " + "  ".join(f"{k} {v:8.1f}" for k, v in s.items()))
    print(json.dumps({"config": args.config, "kernel": args.kernel, "steps": args.steps, "train_s": round(seconds, 1),
                      "peak_rss_mb": trace[-1][2]["VmHWM"], "trace": trace}))


if __name__ == "__main__":
    try:
        main()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
