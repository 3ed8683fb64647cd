"""Where a GRU training step's time goes on this CPU, and how close it gets to the GEMM limit (issue 13).

Measures, interleaved, medians, in one process:
  1. the GEMM limit: torch.mm (MKL) and oneDNN's linear on large square matrices, GFLOP/s;
  2. a bidirectional GRU layer's training step (forward + backward, packed batch of lengths uniform in
     1..T, as `grutool bench --lengths packed`), nn.GRU vs grutool's fused kernel, and the fraction of
     the GEMM limit each reaches (the step's matrix-multiply flops over its time);
  3. the parts the fused kernel was designed around: one step's GEMM through BLAS and oneDNN, and
     tanh vs sigmoid on a step's gate tensor.

    python benchmarks/fused_gru_parts.py [--threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import sys
import json
import statistics
import time

import script_args  # noqa: E402  (benchmarks/ is sys.path[0])


def median_ms(fns: dict, repeats: int, min_s: float = 0.05) -> dict:
    """Interleaved A B C A B C ...: each sample repeats a call until it lasts min_s; median ms per call."""
    numbers = {}
    for name, fn in fns.items():
        fn()
        n, t0 = 1, time.perf_counter()
        fn()
        one = max(time.perf_counter() - t0, 1e-6)
        numbers[name] = max(1, int(min_s / one))
    samples = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(numbers[name]):
                fn()
            samples[name].append((time.perf_counter() - t0) / numbers[name] * 1e3)
    return {name: statistics.median(v) for name, v in samples.items()}


def gemm_limit(repeats: int) -> dict:
    import torch

    n = 1024
    a, b = torch.randn(n, n), torch.randn(n, n)
    ms = median_ms({"mkl": lambda: torch.mm(a, b),
                    "onednn": lambda: torch.ops.mkldnn._linear_pointwise(a, b, None, "none", [], "")}, repeats)
    flops = 2 * n ** 3
    return {k: flops / (v / 1e3) / 1e9 for k, v in ms.items()}


def step_flops(tokens: int, I: int, H: int, directions: int = 2) -> float:
    """Matrix-multiply flops of forward + backward of one GRU layer over `tokens` real tokens: per direction
    forward x W_ih^T and h W_hh^T; backward the input gradient, the state gradient and both weight gradients."""
    forward = 2 * tokens * 3 * H * (I + H)
    return directions * 3 * forward


def training_steps(repeats: int, limit: float) -> list[dict]:
    import torch
    from torch import nn
    from torch.nn.utils.rnn import pack_padded_sequence

    from grutool.modules.rnn.gru import GRU

    rows = []
    for H in (64, 128, 256, 512):
        B, T, I = 32, 100, 128
        torch.manual_seed(0)
        g = torch.Generator().manual_seed(0)
        native = nn.GRU(I, H, batch_first=True, bidirectional=True)
        fused = GRU(I, H, batch_first=True, bidirectional=True, kernel="fused")
        fused.load_state_dict(native.state_dict())
        lengths = torch.randint(1, T + 1, (B,), generator=g)
        lengths[0] = T
        x = torch.randn(B, T, I, generator=g, requires_grad=True)

        def step(m):
            packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            out, h = m(packed)
            (out.data.sum() + h.sum()).backward()

        ms = median_ms({"native": lambda: step(native), "fused": lambda: step(fused)}, repeats)
        flops = step_flops(int(lengths.sum()), I, H)
        rows.append({"H": H, "B": B, "T": T, "I": I, "tokens": int(lengths.sum()),
                     "native_ms": ms["native"], "fused_ms": ms["fused"], "speedup": ms["native"] / ms["fused"],
                     "native_gemm_fraction": flops / (ms["native"] / 1e3) / 1e9 / limit,
                     "fused_gemm_fraction": flops / (ms["fused"] / 1e3) / 1e9 / limit})
    return rows


def parts(repeats: int) -> dict:
    import torch

    out = {}
    for B, H in ((32, 64), (32, 128), (64, 256)):
        x, w, b = torch.randn(B, H), torch.randn(3 * H, H), torch.randn(3 * H)
        ms = median_ms({"blas": lambda: torch.addmm(b, x, w.t()),
                        "onednn": lambda: torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")}, repeats, 0.02)
        out[f"step_gemm_B{B}_H{H}_us"] = {k: v * 1e3 for k, v in ms.items()}
    gate = torch.randn(64, 128)
    ms = median_ms({"tanh_": lambda: gate.tanh_(), "sigmoid_": lambda: gate.sigmoid_()}, repeats, 0.02)
    out["gate_64x128_us"] = {k: v * 1e3 for k, v in ms.items()}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=script_args.positive, default=1)
    ap.add_argument("--repeats", type=script_args.positive, default=9)
    ap.add_argument("--json")
    args = ap.parse_args()
    # After the arguments: --help and a bad argument answer at once, not after torch's import (seconds).
    import torch

    torch.set_num_threads(args.threads)
    limit = gemm_limit(args.repeats)
    print(f"GEMM limit, 1024^3, {args.threads} thread(s): MKL {limit['mkl']:.0f} GFLOP/s, "
          f"oneDNN {limit['onednn']:.0f} GFLOP/s (fractions below are of the higher)")
    best = max(limit.values())
    rows = training_steps(args.repeats, best)
    print("training step, BiGRU layer, packed B32 T100 I128 (lengths 1..100):")
    for r in rows:
        print(f"  H={r['H']:<4} nn.GRU {r['native_ms']:8.2f} ms ({r['native_gemm_fraction']:5.1%} of the limit)   "
              f"fused {r['fused_ms']:8.2f} ms ({r['fused_gemm_fraction']:5.1%})   {r['speedup']:.2f}x")
    p = parts(args.repeats)
    for name, v in p.items():
        print(f"  {name}: " + ", ".join(f"{k} {x:.1f}" for k, x in v.items()))
    result = {"threads": args.threads, "gemm_limit_gflops": limit, "training_steps": rows, "parts": p,
              "torch": torch.__version__}
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    sys.exit(script_args.run(main))
