"""The fused GRU's approach applied to the Elman RNN (`nn.RNN`, tanh or relu), on CPU.

`RNN` keeps `nn.RNN`'s parameters and results and runs each (layer, direction) as one autograd
Function over packed rows (layout: `grutool.modules.fused_gru`): all input projections in one GEMM with
both biases folded in, then per step one GEMM accumulated in place and one activation written straight
into the output (tanh as a sigmoid on the half-shifted state u = (h + 1) / 2, as the GRU's loop does);
a hand-written backward of 3 ops per step. `auto` uses it for packed training only: on dense input and
in packed inference `nn.RNN`'s own loop is as fast (docs/benchmarks.md).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn
from torch.autograd.function import once_differentiable
from torch.nn.utils.rnn import PackedSequence

from grutool.modules.fused_gru import (_Linear, _final_state, _matmul_t, _offsets, _previous_rows,
                                       PlainStack, gemm_backend, rows_in, rows_out, stack_layers, step_start)


def _rnn_forward(x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, offs, reverse, tanh, backend):
    """x (N, I) packed rows, h0 (B, H) sorted -> out (N, H), h_n (B, H)."""
    B, T = h0.shape[0], len(batch_sizes)
    bias = None
    if b_ih is not None or b_hh is not None:
        bias = (b_ih if b_ih is not None else 0.0) + (b_hh if b_hh is not None else 0.0)
    if tanh:  # tanh(a) = 2 sigmoid(2a) - 1: run on u = (h + 1) / 2, so 2a = 2(x W_ih^T + b - W_hh 1) + 4 W_hh u
        shift = -w_hh.sum(1) if bias is None else bias - w_hh.sum(1)
        pre = _matmul_t(x, w_ih * 2.0, shift * 2.0)  # (N, H)
        step = _Linear(w_hh * 4.0, B, backend, T)
        state0 = (h0 + 1) * 0.5
    else:
        pre = _matmul_t(x, w_ih, bias)
        step = _Linear(w_hh, B, backend, T)
        state0 = h0
    pre_s = pre.split(batch_sizes)
    prev = None
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        bs = batch_sizes[t]
        hp = step_start(pre_s[prev] if prev is not None else None, state0, bs)  # (bs, H)
        if backend == "blas":
            pre_s[t].addmm_(hp, step.w)
        else:
            pre_s[t].add_(step(hp))
        if tanh:
            pre_s[t].sigmoid_()  # u
        else:
            pre_s[t].relu_()
        prev = t
    out = pre.mul_(2.0).sub_(1.0) if tanh else pre  # (N, H): the buffer now holds h
    return out, _final_state(out, h0, batch_sizes, offs, reverse)


class _RNNDirection(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, offs, reverse, tanh, backend):
        out, h_n = _rnn_forward(x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, offs, reverse, tanh, backend)
        ctx.save_for_backward(x, h0, w_ih, w_hh, out)
        ctx.meta = (batch_sizes, offs, reverse, tanh, b_ih is not None, b_hh is not None)
        return out, h_n

    @staticmethod
    @once_differentiable
    def backward(ctx, g_out, g_hn):
        x, h0, w_ih, w_hh, out = ctx.saved_tensors
        batch_sizes, offs, reverse, tanh, has_b_ih, has_b_hh = ctx.meta
        N, H = out.shape
        T = len(batch_sizes)
        act = 1 - out * out if tanh else (out > 0).to(out.dtype)  # d h / d a, all steps at once
        if g_out is None:
            g_out = out.new_zeros(N, H)
        dh = g_hn.clone() if g_hn is not None else h0.new_zeros(h0.shape)
        da, d_all = out.new_empty(N, H), out.new_empty(N, H)
        split = batch_sizes
        da_s, d_s, act_s, go_s = da.split(split), d_all.split(split), act.split(split), g_out.split(split)
        rows = {bs: dh[:bs] for bs in set(batch_sizes)}
        for t in (range(T) if reverse else range(T - 1, -1, -1)):
            dh_t = rows[batch_sizes[t]]
            torch.add(dh_t, go_s[t], out=d_s[t])
            torch.mul(d_s[t], act_s[t], out=da_s[t])
            torch.mm(da_s[t], w_hh, out=dh_t)
        hp = _previous_rows(out, h0, batch_sizes, offs, reverse)
        db = da.sum(0) if (has_b_ih or has_b_hh) else None
        return (_matmul_t(da, w_ih.t()) if ctx.needs_input_grad[0] else None,
                dh if ctx.needs_input_grad[1] else None,
                da.t() @ x if ctx.needs_input_grad[2] else None,
                da.t() @ hp if ctx.needs_input_grad[3] else None,
                db if has_b_ih else None, (db.clone() if has_b_ih else db) if has_b_hh else None,
                None, None, None, None, None)


def rnn_direction(x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes: list[int], reverse: bool, tanh: bool = True,
                  offs: Optional[list[int]] = None):
    """One RNN direction over packed rows: x (N, I), h0 (B, H) sorted -> out (N, H), h_n (B, H)."""
    offs = offs if offs is not None else _offsets(batch_sizes)
    backend = gemm_backend(x.dtype, h0.shape[0], h0.shape[1], gates=1)
    tensors = (x, h0, w_ih, w_hh, b_ih, b_hh)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        return _RNNDirection.apply(x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, offs, reverse, tanh, backend)
    with torch.no_grad():
        return _rnn_forward(x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, offs, reverse, tanh, backend)


class RNN(PlainStack, nn.RNN):
    """`nn.RNN` with grutool's fused CPU kernel for packed batches (same parameters and results).

    kernel: `auto` (fused for packed input on CPU), `fused` (also dense input), `native` (nn.RNN always).
    """

    def _fusable(self, x: torch.Tensor, packed: bool) -> bool:
        if self.kernel == "native" or x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
            return False
        # auto: packed training only. Inference of nn.RNN's packed loop (no autograd record) is as fast
        # or faster at small sizes (B32 T100 H64: 3.3 vs 6.9 ms), and its dense path is already lean.
        return self.kernel == "fused" or (packed and torch.is_grad_enabled())

    def forward(self, input, hx=None):
        packed = isinstance(input, PackedSequence)
        if not self._fusable(input.data if packed else input, packed):
            return super().forward(input, hx)
        with torch.profiler.record_function("grutool::fused_rnn"):
            data, batch_sizes, (h0,), layout = rows_in(self, input, (hx,))
            sizes = batch_sizes.tolist()
            offs = _offsets(sizes)
            tanh = self.nonlinearity == "tanh"
            out, (h_n,) = stack_layers(self, data, sizes, (h0,),
                                       lambda x, s, w, reverse: rnn_direction(x, s[0], *w, sizes, reverse, tanh, offs))
            out, (h_n,) = rows_out(self, input, out, (h_n,), layout)
            return out, h_n
