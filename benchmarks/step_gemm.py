"""The compiled GRU's time per step on each step-GEMM backend, against the GEMM limit (issue 26, benchmark 2).

One direction of the compiled kernel (`grutool.modules.rnn.runtime.direction` with `GRU.compiled_step`) over a
dense batch, forward only, with its step GEMMs forced onto each backend in turn (`gemm.use_gemm_backend`:
`blas` = ATen's mm per step, `onednn` = oneDNN's linear on pre-packed weights, `brgemm` = oneDNN's micro-kernel
on raw pointers, the input projection then per step too), interleaved A B C A B C ... in rounds. The limit:
the same call's GEMM flops (the input projection and T step GEMMs) at the rate one large GEMM of the same
inner sizes reaches on this machine (torch.mm of (B*T, H) x (H, 3H)), so `% of limit` says how close a step
comes to GEMM-bound.

    python benchmarks/step_gemm.py [--hidden 64,128,256,512] [--batch 32] [--steps 100] [--input 128]
                                   [--rounds 7] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import os
import statistics
import time

import script_args  # noqa: E402  (benchmarks/ is sys.path[0])


def _time(fn, repeats: int) -> float:
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", default="64,128,256,512", type=script_args.positive_list)
    ap.add_argument("--batch", type=script_args.positive, default=32)
    ap.add_argument("--steps", type=script_args.positive, default=100)
    ap.add_argument("--input", type=script_args.positive, default=128)
    ap.add_argument("--rounds", type=script_args.positive, default=7)
    ap.add_argument("--threads", type=script_args.positive, default=1)
    args = ap.parse_args()
    # After the arguments: --help and a bad argument answer at once, not after torch's import (seconds).
    import torch

    from grutool.modules.rnn import compiled, gemm
    from grutool.modules.rnn.gru import GRU
    from grutool.modules.rnn.runtime import direction

    torch.set_num_threads(args.threads)
    compiled.extension()  # build (or load) before timing
    backends = ["blas"] + (["onednn"] if gemm._onednn_available() else []) + \
        (["brgemm"] if compiled.brgemm_ok() else [])
    B, T, I = args.batch, args.steps, args.input
    load = os.getloadavg()[0]
    print(f"compiled GRU, one direction, forward, B {B}, T {T}, input {I}, {args.threads} thread(s); "
          f"median of {args.rounds} interleaved rounds; 1-min load {load:.2f} at start")
    print("| H | " + " | ".join(f"{b} us/step" for b in backends) + " | GEMM limit us/step | best | % of limit |")
    print("|---:|" + "---:|" * (len(backends) + 3))
    torch.manual_seed(0)
    for H in (int(h) for h in args.hidden.split(",")):
        layer = GRU(I, H, kernel="compiled")
        weights = tuple(p.detach() for p in layer.parameters())
        x = torch.randn(T * B, I)
        h0 = torch.zeros(B, H)
        sizes = [B] * T

        def call(backend):
            with gemm.use_gemm_backend(backend), torch.no_grad():
                direction(GRU.compiled_step, x, (h0,), weights, sizes, False, module=layer)

        big_a, big_b = torch.randn(B * T, H), torch.randn(3 * H, H)
        flops = 2 * B * T * 3 * H * (I + H)  # input projection + T step GEMMs
        reps = max(1, int(0.2 / max(1e-4, _time(lambda: call(backends[0]), 1))))
        samples = {b: [] for b in backends + ["gemm"]}
        for b in backends:
            call(b)
        for _ in range(args.rounds):
            for b in backends:
                samples[b].append(_time(lambda: call(b), reps) / T * 1e6)
            rate = (2 * B * T * H * 3 * H) / _time(lambda: torch.mm(big_a, big_b.t()), reps)  # flop/s
            samples["gemm"].append(flops / rate / T * 1e6)
        med = {b: statistics.median(v) for b, v in samples.items()}
        best = min(backends, key=lambda b: med[b])
        print(f"| {H} | " + " | ".join(f"{med[b]:.1f}" for b in backends) +
              f" | {med['gemm']:.1f} | {best} | {100 * med['gemm'] / med[best]:.0f} % |")
    print(f"1-min load {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    sys.exit(script_args.run(main))
