"""Where a bidirectional layer's time goes, GRU against LSTM: inside the compiled pair call, and around it.

`grutool bench`'s layer rows time one encoder call (B 32, T 100, input 128, one bidirectional layer, the
compiled kernel): forward, then `sum().backward()`. This splits each such call, for both cells, into the time
inside the compiled extension's two calls (`gru_forward_pair` / `gru_backward_pair`, and the LSTM's: both
directions' whole loops, the input-projection and weight-gradient GEMMs) and the rest (packing and unpacking,
the autograd Function's Python, the output sum and its backward, gradient accumulation), which the two cells
share. The cells alternate round by round in one process, on the same inputs (`--lengths padded` or
`packed`, as `grutool bench --lengths`), so a change of load falls on both. Printed per cell: median ms of
forward and backward wall time, of the pair calls, and of the rest; then GRU / LSTM of each.

    python benchmarks/pair_parts.py [--hidden 64,128] [--lengths padded,packed] [--threads 2] [--rounds 40]

The time inside the pair calls is what the cells' own code decides; the rest is the same work for both, so the
larger its share, the nearer GRU / LSTM of the whole call is to 1 (docs/benchmarks.md, "Two threads at H 64").
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import script_args  # noqa: E402  (benchmarks/ is sys.path[0])

CELLS = ("gru", "lstm")


class Timed:
    """The extension with its *_pair calls timed (seconds, summed since the last `take`)."""

    def __init__(self, ext):
        self.ext, self.spent = ext, {"forward": 0.0, "backward": 0.0}

    def __getattr__(self, name):
        f = getattr(self.ext, name)
        if not name.endswith("_pair"):
            return f
        part = "backward" if "backward" in name else "forward"

        def call(*args):
            t = time.perf_counter()
            try:
                return f(*args)
            finally:
                self.spent[part] += time.perf_counter() - t
        return call

    def take(self) -> dict:
        out, self.spent = self.spent, {"forward": 0.0, "backward": 0.0}
        return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hidden", default="64,128", type=script_args.positive_list)
    ap.add_argument("--lengths", default="padded,packed", type=script_args.names("padded", "packed"))
    ap.add_argument("--threads", type=script_args.positive, default=2)
    ap.add_argument("--rounds", type=script_args.positive, default=40)
    script_args.layer_shape(ap)
    args = ap.parse_args(argv)
    # After the arguments: --help and a bad argument answer at once, not after torch's import (seconds).
    import torch

    from grutool.bench.workloads import batch_lengths
    from grutool.modules.encoder import RecurrentEncoder
    from grutool.modules.rnn import compiled

    torch.set_num_threads(args.threads)
    if not compiled.available():
        print("error: the compiled kernel is not available here (see the warning above)", file=sys.stderr)
        return 2
    timed = Timed(compiled.extension())
    compiled.extension = lambda: timed  # every compiled call in this process goes through the timer
    B, T, I = args.batch, args.seq_len, args.input_size
    print(f"B {B}, T {T}, input {I}, one bidirectional layer, kernel compiled, {args.threads} thread(s), "
          f"{args.rounds} rounds; load {os.getloadavg()[0]:.2f} at start")
    for kind in args.lengths.split(","):
        for H in (int(h) for h in args.hidden.split(",")):
            g = torch.Generator().manual_seed(0)
            lengths = batch_lengths(kind, B, T, g)
            x = torch.randn(B, T, I, generator=g).requires_grad_(True)
            torch.manual_seed(0)
            encs = {c: RecurrentEncoder(I, H, 1, True, 0.0, c, kernel="compiled").train() for c in CELLS}
            samples = {c: {k: [] for k in ("fwd", "bwd", "pair_fwd", "pair_bwd")} for c in CELLS}

            def one(enc):
                enc.zero_grad(set_to_none=True)
                x.grad = None
                t0 = time.perf_counter()
                out = enc.rnn(x)[0] if kind == "padded" else enc(x, lengths).outputs  # (B, T, 2H)
                t1 = time.perf_counter()
                out.sum().backward()
                return t1 - t0, time.perf_counter() - t1

            for c in CELLS:  # warm-up: kernels built, brgemm shapes made, buffers sized
                for _ in range(5):
                    one(encs[c])
                timed.take()
            for r in range(args.rounds):
                for c in (CELLS if r % 2 == 0 else CELLS[::-1]):
                    f, b = one(encs[c])
                    spent = timed.take()
                    s = samples[c]
                    s["fwd"].append(f)
                    s["bwd"].append(b)
                    s["pair_fwd"].append(spent["forward"])
                    s["pair_bwd"].append(spent["backward"])
            med = {c: {k: statistics.median(v) * 1e3 for k, v in samples[c].items()} for c in CELLS}
            for c in CELLS:
                m = med[c]
                m["total"], m["pair"] = m["fwd"] + m["bwd"], m["pair_fwd"] + m["pair_bwd"]
                m["rest"] = m["total"] - m["pair"]
            g_, l_ = med["gru"], med["lstm"]
            print(f"{kind} H {H}: ms (median)     total   fwd   bwd | pair  fwd   bwd | rest")
            for c in CELLS:
                m = med[c]
                print(f"  {c:4s}              {m['total']:8.3f} {m['fwd']:5.2f} {m['bwd']:5.2f} | {m['pair']:5.2f} "
                      f"{m['pair_fwd']:4.2f} {m['pair_bwd']:5.2f} | {m['rest']:4.2f}")
            print(f"  GRU / LSTM        {g_['total'] / l_['total']:8.3f}             | {g_['pair'] / l_['pair']:5.3f} "
                  f"{g_['pair_fwd'] / l_['pair_fwd']:4.2f} {g_['pair_bwd'] / l_['pair_bwd']:5.2f} | "
                  f"{g_['rest'] / l_['rest']:4.2f}")
    print(f"load {os.getloadavg()[0]:.2f} at end")
    return 0


if __name__ == "__main__":
    sys.exit(script_args.run(main))
