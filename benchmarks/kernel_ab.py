"""Two builds of the compiled GRU's C++ source, interleaved in one process (issue 26): is a kernel change faster?

Builds `--base` (another copy of `grutool/modules/rnn/csrc/gru.cpp`, e.g. from `git show REV:...`) under its
own module name beside the extension this checkout uses, then times both on the same inputs: one bidirectional
layer's forward (`gru_forward_pair`, step GEMMs on brgemm, float32, nn.GRU's weight initialisation) over a dense
and a ragged packed batch, A B, B A, ... in rounds, and checks that both give the same output.

    git show 9371840:grutool/modules/rnn/csrc/gru.cpp > /tmp/gru_base.cpp
    python benchmarks/kernel_ab.py --base /tmp/gru_base.cpp [--hidden 64,128,256,512] [--threads 1] [--rounds 9]
"""

from __future__ import annotations

import argparse
import sys
import os
import statistics
import tempfile
import time

import script_args  # noqa: E402  (benchmarks/ is sys.path[0])


def inputs(H: int, packed: bool, I: int = 128, B: int = 32, T: int = 100):
    """x (N, I) in packed row order, its batch sizes, and both directions' (h0, w_ih, w_hh, b_ih, b_hh, None)."""
    import torch

    g = torch.Generator().manual_seed(0)
    k = H ** -0.5  # nn.GRU's U(-1/sqrt(H), 1/sqrt(H))

    def w(*shape):
        return (torch.rand(*shape, generator=g) * 2 - 1) * k

    if packed:
        lengths = sorted((int(v) for v in torch.randint(1, T + 1, (B,), generator=g)), reverse=True)
        lengths[0] = T
        batch_sizes = [sum(1 for n in lengths if n > t) for t in range(T)]
    else:
        batch_sizes = [B] * T
    x = torch.randn(sum(batch_sizes), I, generator=g)

    def direction():
        return torch.zeros(B, H), w(3 * H, I), w(3 * H, H), w(3 * H), w(3 * H), None

    return x, batch_sizes, direction(), direction()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="the other gru.cpp")
    ap.add_argument("--hidden", default="64,128,256,512", type=script_args.positive_list)
    ap.add_argument("--threads", type=script_args.positive, default=1)
    ap.add_argument("--rounds", type=script_args.positive, default=9)
    args = ap.parse_args()
    # After the arguments: --help and a bad argument answer at once, not after torch's import (seconds).
    import torch
    from torch.utils import cpp_extension

    from grutool.modules.rnn import compiled

    torch.set_num_threads(args.threads)
    if not compiled.brgemm_ok():
        raise SystemExit("oneDNN's brgemm micro-kernel does not run here: nothing to compare")
    ours = compiled.extension()
    with tempfile.TemporaryDirectory() as build:
        base = cpp_extension.load(name="grutool_gru_ab_base", sources=[args.base], build_directory=build,
                                  extra_cflags=compiled.CFLAGS + compiled.openmp_flags(),
                                  extra_ldflags=compiled.openmp_flags(), verbose=False)
    print(f"one bidirectional layer's forward, B 32, T 100, input 128, {args.threads} thread(s); median of "
          f"{args.rounds} interleaved rounds; 1-min load {os.getloadavg()[0]:.2f} at start")
    print("| batch | H | base ms | this ms (min-max) | this / base | max abs difference |")
    print("|---|---:|---:|---:|---:|---:|")
    for packed in (False, True):
        for H in (int(h) for h in args.hidden.split(",")):
            x, batch_sizes, a, b = inputs(H, packed)
            fns = {name: (lambda m=m: m.gru_forward_pair(x, batch_sizes, False, True, *a, *b))
                   for name, m in (("base", base), ("this", ours))}
            for fn in fns.values():  # warm-up: brgemm's JIT kernels, the allocator
                fn()
                fn()
            times = {name: [] for name in fns}
            for r in range(args.rounds):  # A B, B A, A B ...: neither build always runs first
                for name, fn in (list(fns.items()) if r % 2 == 0 else list(fns.items())[::-1]):
                    t0 = time.perf_counter()
                    fn()
                    times[name].append((time.perf_counter() - t0) * 1e3)
            med = {name: statistics.median(v) for name, v in times.items()}
            diff = float((fns["base"]()[-1] - fns["this"]()[-1]).abs().max())
            print(f"| {'packed' if packed else 'dense'} | {H} | {med['base']:.2f} | {med['this']:.2f} "
                  f"({min(times['this']):.2f}-{max(times['this']):.2f}) | {med['this'] / med['base']:.3f} | {diff:.1e} |")
    print(f"1-min load {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    sys.exit(script_args.run(main))
