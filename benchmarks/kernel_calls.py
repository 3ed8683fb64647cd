"""One GRU, LSTM or RNN layer's calls, native vs fused vs compiled, over a grid of small shapes (issue 26: the `auto` table).

The cases `grutool.kernels.AUTO` decides between: dense calls of few steps (one-step decoding, short phrases,
names' 5-12-character batches) and packed ones, with and without gradients. Every case runs its kernels
interleaved (A B C A B C ...) on the same weights and input, one thread, and reports the median ms per call
with min-max, and each kernel's median over native's.

    python benchmarks/kernel_calls.py [--cell gru|lstm|rnn] [--hidden 64,256,512] [--batch 1,32,64]
                                      [--steps 1,2,5,8,16] [--mode infer,train] [--lengths dense,packed]
                                      [--repeats 15] [--input 64]
"""

from __future__ import annotations

import argparse
import sys
import statistics
import time

import script_args  # noqa: E402  (benchmarks/ is sys.path[0])

KERNELS = ("native", "fused", "compiled")


def _ints(s: str) -> list[int]:
    return [int(v) for v in s.split(",")]


def one_case(cell: str, H: int, B: int, T: int, I: int, train: bool, packed: bool, repeats: int,
             bidirectional: bool):
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence

    from grutool.modules.rnn.gru import GRU
    from grutool.modules.rnn.lstm import LSTM
    from grutool.modules.rnn.rnn import RNN

    torch.manual_seed(0)
    module = {"gru": GRU, "lstm": LSTM, "rnn": RNN}[cell]
    layers = {k: module(I, H, batch_first=True, bidirectional=bidirectional, kernel=k) for k in KERNELS}
    for k in KERNELS[1:]:
        layers[k].load_state_dict(layers["native"].state_dict())
    x = torch.randn(B, T, I, requires_grad=train)
    if packed:
        lengths = torch.randint(1, T + 1, (B,))
        lengths[0] = T

    def call(layer):
        inp = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False) if packed else x
        with torch.set_grad_enabled(train):
            out, state = layer(inp)
            h = state[0] if isinstance(state, tuple) else state
            if train:
                (out.data.sum() + h.sum()).backward()

    inner = max(1, min(40, int(4e4 // (B * T * H))))  # calls per sample: samples of several ms on small shapes
    times = {k: [] for k in KERNELS}
    for k in KERNELS:
        for _ in range(3):
            call(layers[k])  # warm-up (and the compiled kernel's load)
    for r in range(repeats):
        for k in (KERNELS if r % 2 == 0 else KERNELS[::-1]):
            s = time.perf_counter()
            for _ in range(inner):
                call(layers[k])
            times[k].append((time.perf_counter() - s) / inner * 1e3)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cell", default="gru", choices=("gru", "lstm", "rnn"))
    ap.add_argument("--hidden", default="64,256,512", type=script_args.positive_list)
    ap.add_argument("--batch", default="1,32,64", type=script_args.positive_list)
    ap.add_argument("--steps", default="1,2,5,8,16", type=script_args.positive_list)
    ap.add_argument("--mode", default="infer,train", type=script_args.names("infer", "train"))
    ap.add_argument("--lengths", default="dense", type=script_args.names("dense", "packed"))
    ap.add_argument("--input", type=script_args.positive, default=64)
    ap.add_argument("--bidirectional", action="store_true")
    ap.add_argument("--repeats", type=script_args.positive, default=15)
    args = ap.parse_args()
    # After the arguments: --help and a bad argument answer at once, not after torch's import (seconds).
    import torch

    from grutool.modules.rnn import compiled

    torch.set_num_threads(1)
    compiled.extension()  # built or loaded before any timing
    print(f"{args.cell}, torch {torch.__version__}, 1 thread, input {args.input}, "
          f"{'bidirectional' if args.bidirectional else 'one direction'}, "
          f"{args.repeats} interleaved samples per kernel")
    print("mode   lengths  H    B    T    native ms (min-max)       fused ms (min-max)        "
          "compiled ms (min-max)     fused/nat  comp/nat")
    for mode in args.mode.split(","):
        for lengths in args.lengths.split(","):
            for H in _ints(args.hidden):
                for B in _ints(args.batch):
                    for T in _ints(args.steps):
                        t = one_case(args.cell, H, B, T, args.input, mode == "train", lengths == "packed", args.repeats,
                                     args.bidirectional)
                        med = {k: statistics.median(v) for k, v in t.items()}
                        cols = "  ".join(f"{med[k]:7.3f} ({min(t[k]):6.3f}-{max(t[k]):6.3f})" for k in KERNELS)
                        print(f"{mode:<6} {lengths:<7} {H:<4} {B:<4} {T:<4} {cols}   "
                              f"{med['fused'] / med['native']:5.2f}    {med['compiled'] / med['native']:5.2f}",
                              flush=True)


if __name__ == "__main__":
    sys.exit(script_args.run(main))
