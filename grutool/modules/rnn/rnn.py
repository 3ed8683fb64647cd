"""The Elman RNN cell (`nn.RNN`, tanh or relu) on the packed-row runtime: `RNN`, same parameters and results.

Equations: `grutool.shapes.reference.rnn_step`. All input projections in one GEMM with both biases folded
in, then per step one GEMM accumulated in place and one activation written straight into the output
(tanh through the runtime's "tanh as a sigmoid" on u = (h + 1) / 2); a hand-written backward of 3 ops
per step.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from grutool.modules.rnn import compiled
from grutool.modules.rnn.gemm import Linear, gemm_backend, matmul_t, ragged
from grutool.modules.rnn.runtime import (CellStep, Recurrent, direction, final_rows, previous_rows, step_order,
                                         step_start)


def _prepare(module, weights, rows: int, steps: int, dtype, ragged: bool = False) -> tuple[bool, str]:
    tanh = module is None or module.nonlinearity == "tanh"
    return tanh, gemm_backend(dtype, rows, weights[1].shape[1], gates=1, ragged=ragged)


def _forward(x, states, weights, batch_sizes, offs, reverse, extra, save):
    """x (N, I) packed rows, h0 (B, H) sorted -> out (N, H), (h_n (B, H),), nothing saved beyond out."""
    (h0,), (w_ih, w_hh, b_ih, b_hh), (tanh, backend) = states, weights, extra
    B, T = h0.shape[0], len(batch_sizes)
    bias = None
    if b_ih is not None or b_hh is not None:
        bias = (b_ih if b_ih is not None else 0.0) + (b_hh if b_hh is not None else 0.0)
    if tanh:  # on u = (h + 1) / 2: 2a = 2(x W_ih^T + b - W_hh 1) + 4 W_hh u
        shift = -w_hh.sum(1) if bias is None else bias - w_hh.sum(1)
        pre = matmul_t(x, w_ih * 2.0, shift * 2.0)  # (N, H)
        step = Linear(w_hh * 4.0, B, backend, T)
        state0 = (h0 + 1) * 0.5
    else:
        pre = matmul_t(x, w_ih, bias)
        step = Linear(w_hh, B, backend, T)
        state0 = h0
    pre_s = pre.split(batch_sizes)
    prev = None
    for t in step_order(T, reverse):
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
    return out, (final_rows(out, h0, batch_sizes, offs, reverse),), ()


def _backward(needs, x, states, weights, out, saved, g_out, g_finals, batch_sizes, offs, reverse, extra):
    (h0,), (g_hn,), (w_ih, w_hh, b_ih, b_hh), (tanh, _) = states, g_finals, weights, extra
    has_b_ih, has_b_hh = b_ih is not None, b_hh is not None
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
    for t in step_order(T, reverse, backward=True):
        dh_t = rows[batch_sizes[t]]
        torch.add(dh_t, go_s[t], out=d_s[t])
        torch.mul(d_s[t], act_s[t], out=da_s[t])
        torch.mm(da_s[t], w_hh, out=dh_t)
    hp = previous_rows(out, h0, batch_sizes, offs, reverse)
    db = da.sum(0) if (has_b_ih or has_b_hh) else None
    return (matmul_t(da, w_ih.t()) if needs[0] else None,
            (dh if needs[1] else None,),
            (da.t() @ x if needs[2] else None, da.t() @ hp if needs[3] else None,
             db if has_b_ih else None, (db.clone() if has_b_ih else db) if has_b_hh else None))


STEP = CellStep("rnn", cell_state=False, stacks=False, prepare=_prepare, forward=_forward, backward=_backward)


def rnn_direction(x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes: list[int], reverse: bool, tanh: bool = True,
                  offs: Optional[list[int]] = None):
    """One RNN direction over packed rows: x (N, I), h0 (B, H) sorted -> out (N, H), h_n (B, H)."""
    extra = (tanh, gemm_backend(x.dtype, h0.shape[0], h0.shape[1], gates=1, ragged=ragged(batch_sizes)))
    return direction(STEP, x, (h0,), (w_ih, w_hh, b_ih, b_hh), batch_sizes, reverse, offs, extra)


class RNN(Recurrent, nn.RNN):
    """`nn.RNN` with grutool's fused CPU kernel for packed batches and its compiled one (see `Recurrent`; no
    layer_norm / residual)."""

    cell_step = STEP
    compiled_step = compiled.rnn_step(STEP)
