"""The GRU cell on the packed-row runtime: `GRU`, nn.GRU's parameters and results, faster on CPU.

Equations: `grutool.shapes.reference.gru_step` (PyTorch's gate order r | z | n, r applied after W_hn h + b_hn).
The loop runs them in the runtime's tanh-free form (`grutool.modules.rnn.runtime`, "tanh as a
sigmoid"): it carries u = (h + 1) / 2, n's rows are doubled so s = sigmoid(2 a_n) = (n + 1) / 2, and
h' = (1 - z) n + z h becomes u' = lerp(s, u, z): three sigmoid-class ops a step, no tanh. The backward
is BPTT through the saved gates, 4 ops a step.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import nn

from grutool.modules.rnn import compiled
from grutool.modules.rnn.gemm import REORDER_MIN_STEPS, Linear, gemm_backend, matmul_t
from grutool.modules.rnn.runtime import (CellStep, Recurrent, direction, final_rows, previous_rows, step_order,
                                         step_start)


class Prepared(NamedTuple):
    """One direction's weights in the loop's form, ready for its GEMMs."""

    w_ih: torch.Tensor            # (3H, I), n rows doubled
    b_ih: Optional[torch.Tensor]  # (3H,), n entries doubled
    b_hh: torch.Tensor            # (3H,): b_hh - W_hh 1, n entries doubled
    step: Linear                  # u (bs, H) -> (bs, 3H): 2 W_hh u (n rows 4 W_hh u)
    backend: str


def prepare_weights(w_ih, w_hh, b_ih, b_hh, rows: int, backend: str, steps: int = REORDER_MIN_STEPS) -> Prepared:
    """The weights of the loop's tanh-free form of the GRU step, for `steps` step GEMMs of about `rows` rows."""
    H = w_hh.shape[1]
    scale = w_hh.new_ones(3 * H, 1)
    scale[2 * H:] = 2.0
    w_ih2 = w_ih * scale  # (3H, I): n rows doubled
    b_ih2 = b_ih * scale[:, 0] if b_ih is not None else None
    w_hh2 = w_hh * (2.0 * scale)  # (3H, H): acts on u = (h + 1) / 2, so h = 2u - 1
    b_hh2 = (b_hh if b_hh is not None else 0.0) - w_hh.sum(1)  # W (2u - 1) + b = 2W u + (b - W 1)
    return Prepared(w_ih2, b_ih2, b_hh2 * scale[:, 0], Linear(w_hh2, rows, backend, steps), backend)


def _prepare(module, weights, rows: int, steps: int, dtype, ragged: bool = False) -> Prepared:
    # Prepared at every call: caching by the weights' version counters would be wrong, as torch's fused
    # Adam/AdamW (grutool's optimizer where available) updates parameters in place without bumping them.
    w_ih, w_hh, b_ih, b_hh = weights
    return prepare_weights(w_ih, w_hh, b_ih, b_hh, rows, gemm_backend(dtype, rows, w_hh.shape[1], ragged=ragged),
                           steps)


def _forward(x, states, weights, batch_sizes, offs, reverse, prep: Prepared, save):
    """x (N, I) packed rows, h0 (B, H) sorted -> out (N, H), (h_n (B, H),), and the gates when `save`.

    Every per-step view is cut before the loop (one `split` per buffer): slicing in the loop costs as
    much as the arithmetic at small sizes.
    """
    (h0,) = states
    N, H = x.shape[0], h0.shape[1]
    T = len(batch_sizes)
    gi = matmul_t(x, prep.w_ih, prep.b_ih)  # (N, 3H): every step's input projection in one GEMM
    step, b_hh2 = prep.step, prep.b_hh
    u0 = (h0 + 1) * 0.5  # (B, H)
    out = x.new_empty(N, H)  # u, then h in place after the loop
    blas = prep.backend == "blas"
    split = batch_sizes
    # The recurrent projection of every step. For BLAS the bias is laid down once for all steps and
    # each step adds its GEMM in place: addmm(out=) would copy the broadcast bias at every step.
    if blas:
        gh_all = b_hh2.expand(N, 3 * H).contiguous()
        gh_s, gh_rz, gh_n = gh_all.split(split), gh_all[:, :2 * H].split(split), gh_all[:, 2 * H:].split(split)
        hn_all = gh_all[:, 2 * H:]
    elif save:
        hn_all = x.new_empty(N, H)
        hn_s = hn_all.split(split)
    rz_all, s_all = x.new_empty(N, 2 * H), x.new_empty(N, H)  # gates r | z, and s = (n + 1) / 2
    gi_rz, gi_n = gi[:, :2 * H].split(split), gi[:, 2 * H:].split(split)
    rz_s, r_s, z_s = rz_all.split(split), rz_all[:, :H].split(split), rz_all[:, H:].split(split)
    s_s, out_s = s_all.split(split), out.split(split)
    prev = None  # the step before, in processing order
    for t in step_order(T, reverse):
        bs = batch_sizes[t]
        up = step_start(out_s[prev] if prev is not None else None, u0, bs)  # (bs, H): u_{t-1}
        if blas:
            gh_s[t].addmm_(up, step.w)  # (bs, 3H)
            g_rz, g_n = gh_rz[t], gh_n[t]
        else:
            g_rz, g_n = step(up, b_hh2).split((2 * H, H), 1)  # (bs, 2H), (bs, H)
            if save:
                hn_s[t].copy_(g_n)
        torch.add(gi_rz[t], g_rz, out=rz_s[t]).sigmoid_()  # r | z, (bs, 2H)
        torch.addcmul(gi_n[t], r_s[t], g_n, out=s_s[t]).sigmoid_()  # s = sigmoid(2 (i_n + r * h_n))
        torch.lerp(s_s[t], up, z_s[t], out=out_s[t])  # u = (1 - z) s + z u_{t-1}
        prev = t
    out.mul_(2.0).sub_(1.0)  # (N, H): h = 2u - 1
    h_n = final_rows(out, h0, batch_sizes, offs, reverse)
    if not save:
        return out, (h_n,), None
    return out, (h_n,), (rz_all, s_all, hn_all)  # hn_all: 2 (W_hn h + b_hn), see prepare_weights


def _backward(needs, x, states, weights, out, saved, g_out, g_finals, batch_sizes, offs, reverse, prep: Prepared):
    (h0,), (g_hn,) = states, g_finals
    w_ih, w_hh, b_ih, b_hh = weights
    rz, s, gh_n = saved
    backend = prep.backend
    N, H = out.shape
    T = len(batch_sizes)
    r, z = rz[:, :H], rz[:, H:]
    n = s * 2.0 - 1.0  # (N, H): tanh(a_n)
    hp = previous_rows(out, h0, batch_sizes, offs, reverse)  # (N, H)
    hn = gh_n * 0.5  # (N, H): W_hn h + b_hn (the loop keeps it doubled, see prepare_weights)
    # Per-row factors that do not depend on the incoming gradient, computed for all steps at once:
    # dL/da_n = d * a, dL/da_z = d * (hp - n) z (1 - z), dL/da_r = d * a * hn * r (1 - r).
    a = (1 - z) * (1 - n * n)  # (N, H)
    g = torch.stack([a * hn * r * (1 - r), (hp - n) * z * (1 - z), a * r], dim=1)  # (N, 3, H): d(gh)/d
    d_all = out.new_empty(N, H)  # dL/dh_t for every row
    dgh = out.new_empty(N, 3 * H)  # dL/d(W_hh h + b_hh)
    if g_out is None:
        g_out = out.new_zeros(N, H)
    B = h0.shape[0]
    dh = g_hn.clone() if g_hn is not None else h0.new_zeros(h0.shape)  # (B, H)
    step = Linear(w_hh.t().contiguous(), B, backend, T) if backend == "onednn" else None
    split = batch_sizes
    d_s, d3_s, g_s = d_all.split(split), d_all.view(N, 1, H).split(split), g.split(split)
    dgh_s, dgh3_s = dgh.split(split), dgh.view(N, 3, H).split(split)
    z_s, go_s = z.split(split), g_out.split(split)
    dh_rows = {bs: dh[:bs] for bs in set(batch_sizes)}
    for t in step_order(T, reverse, backward=True):
        dh_t = dh_rows[batch_sizes[t]]
        torch.add(dh_t, go_s[t], out=d_s[t])
        torch.mul(d3_s[t], g_s[t], out=dgh3_s[t])
        torch.mul(d_s[t], z_s[t], out=dh_t)
        if step is None:
            dh_t.addmm_(dgh_s[t], w_hh)  # + dgh @ W_hh, (bs, H)
        else:
            dh_t.add_(step(dgh_s[t]))
    # Weight gradients: one GEMM each over all steps, through BLAS (MKL reads the transposes in place; the
    # sum over N rows is a new shape nearly every call, see gemm.matmul_t).
    dw_hh = dgh.t() @ hp if needs[3] else None
    db_hh = dgh.sum(0) if b_hh is not None and needs[5] else None
    dgi = dgh  # the input side differs only in n, which r does not gate: reuse the buffer
    torch.mul(d_all, a, out=dgi[:, 2 * H:])
    dx = matmul_t(dgi, w_ih.t()) if needs[0] else None  # (N, I)
    dw_ih = dgi.t() @ x if needs[2] else None
    db_ih = dgi.sum(0) if b_ih is not None and needs[4] else None
    dh0 = dh if needs[1] else None
    return dx, (dh0,), (dw_ih, dw_hh, db_ih, db_hh)


def _native_layer(module, data, batch_sizes, states, weights, dense_shape):
    """nn.GRU's own op for one layer (a stack with layer_norm / residual on the native kernel)."""
    (h0,) = states  # (D, B, H)
    if dense_shape is not None:
        T, B = dense_shape
        y, h = torch._VF.gru(data.view(T, B, -1), h0, weights, module.bias, 1, 0.0, module.training,
                             module.bidirectional, False)
        return y.reshape(T * B, -1), (h,)
    y, h = torch._VF.gru(data, batch_sizes, h0, weights, module.bias, 1, 0.0, module.training, module.bidirectional)
    return y, (h,)


STEP = CellStep("gru", cell_state=False, stacks=True, prepare=_prepare, forward=_forward, backward=_backward,
                native_layer=_native_layer)


def gru_direction(x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes: list[int], reverse: bool,
                  offs: Optional[list[int]] = None, prep: Optional[Prepared] = None):
    """One GRU direction over packed rows: x (N, I), h0 (B, H) sorted -> out (N, H), h_n (B, H)."""
    return direction(STEP, x, (h0,), (w_ih, w_hh, b_ih, b_hh), batch_sizes, reverse, offs, prep)


class GRU(Recurrent, nn.GRU):
    """`nn.GRU` with grutool's CPU kernel and optional LayerNorm / residual connections between layers
    (see `Recurrent`; here `kernel` defaults to `fused`)."""

    cell_step = STEP
    compiled_step = compiled.step(STEP)

    def __init__(self, *args, kernel: str = "fused", **kwargs):
        super().__init__(*args, kernel=kernel, **kwargs)
