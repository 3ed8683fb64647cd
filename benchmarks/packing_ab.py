"""Packing in one gather against torch's pack_padded_sequence / pad_packed_sequence, interleaved in one process.

The encoder (grutool.modules.encoder) packs a padded batch with `pack` (one index_select) and unpacks the
layer's output with `unpack` (one index_copy); before, it called torch's pair, which copies one time step at a
time, forward and backward. This times one encoder call both ways on the same layer and inputs: a ragged batch
(lengths uniform in 1..T, one of length T, as `grutool bench --lengths packed`), A B, B A, ... in rounds, one
bidirectional layer, training (forward + backward, input gradient included) or inference. Outputs and gradients
are checked equal first.

    python benchmarks/packing_ab.py [--cells gru,lstm] [--kernels auto,native] [--hidden 64,128,256,512]
                                    [--mode train,infer] [--threads 1] [--rounds 9]
"""

from __future__ import annotations

import argparse
import sys
import contextlib
import statistics
import time

import script_args  # noqa: E402  (benchmarks/ is sys.path[0])


def arguments() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", default="gru,lstm", type=script_args.names("gru", "lstm", "rnn"))
    ap.add_argument("--kernels", default="auto", type=script_args.names("auto", "native", "fused", "compiled"), help="model.kernel values, e.g. auto,native,compiled")
    ap.add_argument("--hidden", default="64,128,256,512", type=script_args.positive_list)
    ap.add_argument("--mode", default="train,infer", type=script_args.names("train", "infer"))
    script_args.layer_shape(ap)
    ap.add_argument("--threads", type=script_args.positive, default=1)
    ap.add_argument("--rounds", type=script_args.positive, default=9)
    return ap.parse_args()


if __name__ == "__main__":  # --help and a bad argument answer at once, before torch's import below (seconds)
    arguments()

import torch  # noqa: E402
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

from grutool.bench.workloads import batch_lengths  # noqa: E402
from grutool.modules import encoder  # noqa: E402
from grutool.modules.encoder import RecurrentEncoder  # noqa: E402


@contextlib.contextmanager
def torch_packing():
    """Inside the block, the encoder packs and unpacks with torch's pack_padded_sequence / pad_packed_sequence,
    as it did before; everything else is the encoder's own code. (`pack`'s second result, which `unpack`
    gets back, carries the PackedSequence here instead of the row index.)"""
    def pack(x, lengths):
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        return packed, packed

    def unpack(data, packed, batch_size, total_length):
        return pad_packed_sequence(packed._replace(data=data), batch_first=True, total_length=total_length)[0]

    ours = encoder.pack, encoder.unpack
    encoder.pack, encoder.unpack = pack, unpack
    try:
        yield
    finally:
        encoder.pack, encoder.unpack = ours


def with_torch_packing(model: torch.nn.Module) -> None:
    """Make every RecurrentEncoder in `model` pack with torch's pair (benchmarks/kernel_steps.py --torch-packing)."""
    def run(self, *args, **kwargs):
        with torch_packing():
            return RecurrentEncoder._run(self, *args, **kwargs)

    for m in model.modules():
        if isinstance(m, RecurrentEncoder):
            m._run = run.__get__(m)


def torch_pair(enc: RecurrentEncoder, x, lengths):
    with torch_packing():
        return enc(x, lengths).outputs  # (B, T, D*H)


def one_gather(enc: RecurrentEncoder, x, lengths):
    return enc(x, lengths).outputs  # (B, T, D*H)


def call(way, enc, x, lengths, train: bool):
    if not train:
        with torch.no_grad():
            return way(enc, x, lengths), None
    enc.zero_grad(set_to_none=True)
    x.grad = None
    out = way(enc, x, lengths)
    out.sum().backward()
    return out, x.grad


def main() -> None:
    args = arguments()
    torch.set_num_threads(args.threads)
    print(f"B {args.batch}, T {args.seq_len}, I {args.input_size}, bidirectional, {args.threads} thread(s), "
          f"{args.rounds} rounds; ms per call, median (min-max); new / old")
    print("| cell | kernel | mode | H | torch's pack/pad ms | one gather ms | new / old |")
    print("|---|---|---|---:|---:|---:|---:|")
    for cell in args.cells.split(","):
        for kernel in args.kernels.split(","):
            for mode in args.mode.split(","):
                train = mode == "train"
                for H in (int(h) for h in args.hidden.split(",")):
                    torch.manual_seed(0)
                    g = torch.Generator().manual_seed(0)
                    enc = RecurrentEncoder(args.input_size, H, 1, True, 0.0, cell, kernel=kernel).train(train)
                    lengths = batch_lengths("packed", args.batch, args.seq_len, g)
                    x = torch.randn(args.batch, args.seq_len, args.input_size, generator=g, requires_grad=train)
                    a_out, a_grad = call(torch_pair, enc, x, lengths, train)
                    b_out, b_grad = call(one_gather, enc, x, lengths, train)
                    assert torch.equal(a_out, b_out), "outputs differ"
                    assert a_grad is None or torch.equal(a_grad, b_grad), "input gradients differ"
                    times = {"a": [], "b": []}
                    for r in range(args.rounds + 1):  # round 0 warms up both
                        order = (("a", torch_pair), ("b", one_gather))
                        for key, way in (order if r % 2 else order[::-1]):
                            t0 = time.perf_counter()
                            call(way, enc, x, lengths, train)
                            if r:
                                times[key].append((time.perf_counter() - t0) * 1e3)
                    a, b = statistics.median(times["a"]), statistics.median(times["b"])
                    span = {k: f"{min(v):.2f}-{max(v):.2f}" for k, v in times.items()}
                    print(f"| {cell} | {kernel} | {mode} | {H} | {a:.2f} ({span['a']}) | {b:.2f} ({span['b']}) "
                          f"| {b / a:.2f} |", flush=True)


if __name__ == "__main__":
    sys.exit(script_args.run(main))
