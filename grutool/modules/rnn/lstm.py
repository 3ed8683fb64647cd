"""The LSTM cell on the packed-row runtime: `LSTM`, nn.LSTM's parameters and results, for packed batches on CPU.

Equations: `grutool.shapes.reference.lstm_step` (gate order i | f | g | o). On CPU `nn.LSTM` runs oneDNN's
fused primitive for dense input, but packed batches of unequal lengths go through ATen's per-step loop
recorded op by op; this kernel runs them: all input projections in one GEMM with both biases folded in,
the recurrent GEMM accumulated onto them in place, one sigmoid over all four gates (g's rows doubled:
the runtime's "tanh as a sigmoid"), and a hand-written backward of 6 ops per step. No projections
(`proj_size`): those run `nn.LSTM`.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from grutool.modules.rnn import compiled
from grutool.modules.rnn.gemm import Linear, gemm_backend, matmul_t
from grutool.modules.rnn.runtime import (CellStep, Recurrent, direction, final_rows, previous_rows, step_order,
                                         step_start)


def _weights(w_ih, w_hh, b_ih, b_hh):
    """g rows doubled (its tanh becomes a sigmoid), both biases in one."""
    H = w_hh.shape[1]
    scale = w_hh.new_ones(4 * H, 1)
    scale[2 * H:3 * H] = 2.0
    bias = None
    if b_ih is not None or b_hh is not None:
        bias = (b_ih if b_ih is not None else 0.0) + (b_hh if b_hh is not None else 0.0)
        bias = bias * scale[:, 0]
    return w_ih * scale, w_hh * scale, bias


def _prepare(module, weights, rows: int, steps: int, dtype, ragged: bool = False) -> str:
    return gemm_backend(dtype, rows, weights[1].shape[1], gates=4, ragged=ragged)


def _forward(x, states, weights, batch_sizes, offs, reverse, backend, save):
    """x (N, I) packed rows; h0, c0 (B, H) sorted -> out (N, H), (h_n, c_n) (B, H), saved (gates, c, tanh c)."""
    h0, c0 = states
    N, B, H = x.shape[0], h0.shape[0], h0.shape[1]
    T = len(batch_sizes)
    w_ih2, w_hh2, bias = _weights(*weights)
    # (N, 4H): x W_ih^T + b_ih + b_hh for every step, then + h W_hh^T
    gates = matmul_t(x, w_ih2, bias)
    step = Linear(w_hh2, B, backend, T)
    out, c_all, tc_all = x.new_empty(N, H), x.new_empty(N, H), x.new_empty(N, H)
    split = batch_sizes
    g_s = gates.split(split)
    i_s, f_s = gates[:, :H].split(split), gates[:, H:2 * H].split(split)
    gg_s, o_s = gates[:, 2 * H:3 * H].split(split), gates[:, 3 * H:].split(split)
    out_s, c_s, tc_s = out.split(split), c_all.split(split), tc_all.split(split)
    prev = None
    for t in step_order(T, reverse):
        bs = batch_sizes[t]
        hp = step_start(out_s[prev] if prev is not None else None, h0, bs)  # (bs, H)
        cp = step_start(c_s[prev] if prev is not None else None, c0, bs)
        if backend == "blas":
            g_s[t].addmm_(hp, step.w)  # (bs, 4H) pre-activations
        else:
            g_s[t].add_(step(hp))
        g_s[t].sigmoid_()  # i | f | (g + 1) / 2 | o
        gg_s[t].mul_(2.0).sub_(1.0)  # g = tanh(a_g)
        torch.mul(f_s[t], cp, out=c_s[t]).addcmul_(i_s[t], gg_s[t])  # c = f c_prev + i g
        torch.tanh(c_s[t], out=tc_s[t])
        torch.mul(o_s[t], tc_s[t], out=out_s[t])  # h = o tanh(c)
        prev = t
    h_n = final_rows(out, h0, batch_sizes, offs, reverse)
    c_n = final_rows(c_all, c0, batch_sizes, offs, reverse)
    return out, (h_n, c_n), (gates, c_all, tc_all)


def _backward(needs, x, states, weights, out, saved, g_out, g_finals, batch_sizes, offs, reverse, backend):
    (h0, c0), (g_hn, g_cn) = states, g_finals
    w_ih, w_hh, b_ih, b_hh = weights
    gates, c_all, tc_all = saved
    has_b_ih, has_b_hh = b_ih is not None, b_hh is not None
    N, H = out.shape
    B, T = h0.shape[0], len(batch_sizes)
    i, f, g, o = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H], gates[:, 3 * H:]
    hp = previous_rows(out, h0, batch_sizes, offs, reverse)  # (N, H)
    cp = previous_rows(c_all, c0, batch_sizes, offs, reverse)
    # Factors that do not depend on the incoming gradient, for all steps at once:
    # dL/da_o = d * tc o (1 - o); dL/dc (total) = dc + d * o (1 - tc^2);
    # dL/da_{i,f,g} = dc_total * [g i (1 - i), c_prev f (1 - f), i (1 - g^2)].
    a_o = tc_all * o * (1 - o)
    b_c = o * (1 - tc_all * tc_all)
    k = torch.stack([g * i * (1 - i), cp * f * (1 - f), i * (1 - g * g)], dim=1)  # (N, 3, H)
    if g_out is None:
        g_out = out.new_zeros(N, H)
    dh = g_hn.clone() if g_hn is not None else h0.new_zeros(h0.shape)
    dc = g_cn.clone() if g_cn is not None else c0.new_zeros(c0.shape)
    d_all, dct_all, da = out.new_empty(N, H), out.new_empty(N, H), out.new_empty(N, 4 * H)
    split = batch_sizes
    d_s, dct_s, dct3_s = d_all.split(split), dct_all.split(split), dct_all.view(N, 1, H).split(split)
    k_s, ao_s, bc_s, f_s, go_s = k.split(split), a_o.split(split), b_c.split(split), f.split(split), g_out.split(split)
    da_s = da.split(split)
    da3_s = da.view(N, 4, H)[:, :3].split(split)
    dao_s = da[:, 3 * H:].split(split)
    rows = {bs: (dh[:bs], dc[:bs]) for bs in set(batch_sizes)}
    step = Linear(w_hh.t().contiguous(), B, backend, T) if backend == "onednn" else None
    for t in step_order(T, reverse, backward=True):
        dh_t, dc_t = rows[batch_sizes[t]]
        torch.add(dh_t, go_s[t], out=d_s[t])
        torch.addcmul(dc_t, d_s[t], bc_s[t], out=dct_s[t])
        torch.mul(dct3_s[t], k_s[t], out=da3_s[t])
        torch.mul(d_s[t], ao_s[t], out=dao_s[t])
        torch.mul(dct_s[t], f_s[t], out=dc_t)
        if step is None:
            torch.mm(da_s[t], w_hh, out=dh_t)  # (bs, H)
        else:
            dh_t.copy_(step(da_s[t]))
    dx = matmul_t(da, w_ih.t()) if needs[0] else None
    dw_ih = da.t() @ x if needs[3] else None
    dw_hh = da.t() @ hp if needs[4] else None
    db = da.sum(0) if (has_b_ih or has_b_hh) else None
    return (dx, (dh if needs[1] else None, dc if needs[2] else None),
            (dw_ih, dw_hh, db if has_b_ih else None, (db.clone() if has_b_ih else db) if has_b_hh else None))


STEP = CellStep("lstm", cell_state=True, stacks=False, prepare=_prepare, forward=_forward, backward=_backward,
                fusable=lambda module: not module.proj_size)


def lstm_direction(x, h0, c0, w_ih, w_hh, b_ih, b_hh, batch_sizes: list[int], reverse: bool,
                   offs: Optional[list[int]] = None):
    """One LSTM direction over packed rows: x (N, I), h0, c0 (B, H) sorted -> out (N, H), h_n, c_n (B, H)."""
    return direction(STEP, x, (h0, c0), (w_ih, w_hh, b_ih, b_hh), batch_sizes, reverse, offs)


class LSTM(Recurrent, nn.LSTM):
    """`nn.LSTM` with grutool's fused CPU kernel for packed batches and its compiled one (see `Recurrent`; no
    layer_norm / residual)."""

    cell_step = STEP
    compiled_step = compiled.lstm_step(STEP)
