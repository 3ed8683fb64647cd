"""A GRU for CPU that trains and infers faster than `nn.GRU`, with the same parameters and results.

On CPU, `nn.GRU` runs a per-step loop of small ATen ops and records every one of them for
autograd, so its backward pass replays a graph that grows with the sequence. `GRU` here keeps
`nn.GRU`'s parameters (`weight_ih_l0`, `weight_hh_l0_reverse`, ...; checkpoints load either way)
and its return values, and computes each (layer, direction) with one autograd Function:

- all input projections of a layer in one GEMM, `(N, I) @ (I, 3H)`;
- a step loop over the rows in packed order: at step t only the first `batch_sizes[t]` rows are
  live (PyTorch sorts packed sequences longest first), so a step is a slice, and the reverse
  direction is the same loop run from the last step with its not-yet-started rows read from h0;
- a hand-written backward (BPTT through the saved gates, 4 ops a step), with the weight gradients
  as single GEMMs over all steps after the loop.

Dense input is the packed case with every step `B` rows long. On CUDA (and for dtypes other than
float32/float64) it defers to `nn.GRU` (cuDNN). GEMMs go through oneDNN's linear where torch exposes
its private ops (feature-detected, see `gemm_backend`) and the size pays for the call, else BLAS.

Optional, for deep stacks: `layer_norm` (LayerNorm on a layer's output before the next layer) and
`residual` (a layer's input added to its output where the sizes match); both work with either
kernel (`kernel="native"` then runs `nn.GRU`'s own op one layer at a time).
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable
from torch.nn.utils.rnn import PackedSequence

from grutool.cells import KERNELS

AUTO_MIN_STEPS = 8  # kernel auto: dense calls of fewer steps run nn.GRU's own (see GRU._fusable)

# --- GEMMs ------------------------------------------------------------------------------------------

_ONEDNN_OK: Optional[bool] = None
_FORCED_BACKEND: Optional[str] = None


def _onednn_available() -> bool:
    """Whether torch exposes oneDNN's pre-packed linear (private ops Inductor uses) and it computes correctly."""
    global _ONEDNN_OK
    if _ONEDNN_OK is None:
        try:
            ok = torch.backends.mkldnn.is_available()
            if ok:
                # Fixed values, not torch.randn: the probe must not draw from the global RNG (it would shift
                # every dropout mask after it, and runs would differ from the native kernel's).
                x = torch.linspace(-1, 1, 15).reshape(3, 5)
                w = torch.linspace(-0.5, 0.7, 20).reshape(4, 5)
                b = torch.linspace(0.1, 0.4, 4)
                packed = torch.ops.mkldnn._reorder_linear_weight(w, 3)
                y = torch.ops.mkldnn._linear_pointwise(x, packed, b, "none", [], "")
                ok = bool(torch.allclose(y, F.linear(x, w, b), atol=1e-5))
        except (AttributeError, RuntimeError, NotImplementedError):
            ok = False
        _ONEDNN_OK = ok
    return _ONEDNN_OK


# Below this many flops a step GEMM (B, H) x (H, 3H) is faster through BLAS: oneDNN's call costs ~12 us
# on its own (measured: B32 H64 9.6 us BLAS vs 15 us oneDNN; B64 H64 17 vs 20 us; equal at B16 H128;
# oneDNN 1.2x faster at B32 H128, 1.8-2.4x from H 256 up).
ONEDNN_MIN_FLOPS = 2e6
# From this hidden size the weight-gradient GEMMs go through oneDNN despite a transposing copy.
BIG_WEIGHT_GRAD_H = 256


def gemm_backend(dtype: torch.dtype = torch.float32, rows: int = 1 << 30, hidden: int = 1 << 30, gates: int = 3) -> str:
    """`onednn` (pre-packed weights, float32 on CPU) where available and the step GEMM is large
    enough to pay for its call, else `blas` (torch.addmm / MKL)."""
    if dtype != torch.float32:
        return "blas"
    if _FORCED_BACKEND is not None:
        return _FORCED_BACKEND
    big = 2 * gates * rows * hidden * hidden >= ONEDNN_MIN_FLOPS
    return "onednn" if big and _onednn_available() else "blas"


@contextlib.contextmanager
def use_gemm_backend(name: str):
    """Force `blas` or `onednn` for the per-step GEMMs (tests and benchmarks compare the two)."""
    global _FORCED_BACKEND
    if name not in ("blas", "onednn"):
        raise ValueError(f"GEMM backend must be blas or onednn, got {name!r}")
    if name == "onednn" and not _onednn_available():
        raise RuntimeError("oneDNN's linear ops are not available in this torch build")
    previous, _FORCED_BACKEND = _FORCED_BACKEND, name
    try:
        yield
    finally:
        _FORCED_BACKEND = previous


def _matmul_t(a: torch.Tensor, b: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """a @ b.T (+ bias) for the big once-per-layer GEMMs (all steps at once).

    oneDNN runs these ~2x faster than MKL on this project's AMD test machine (N1600 H256: 2.7 vs 6.0 ms,
    benchmarks/fused_gru_parts.py); BLAS where oneDNN is missing or the dtype is not float32.
    """
    if a.dtype == torch.float32 and _FORCED_BACKEND != "blas" and _onednn_available():
        return torch.ops.mkldnn._linear_pointwise(a, b, bias, "none", [], "")  # strided views are fine
    return F.linear(a, b, bias)


# oneDNN runs a step GEMM on plain weights nearly as fast as on weights reordered into its blocked
# layout (B64 H128: 39 vs 35 us), but a reorder costs 80-300 us: worth it for long sequences only.
REORDER_MIN_STEPS = 32


class _Linear:
    """y = x @ w.T (+ b) for one weight used at each of `steps` steps, through oneDNN or BLAS."""

    def __init__(self, w: torch.Tensor, rows: int, backend: str, steps: int = REORDER_MIN_STEPS):
        self.backend = backend
        if backend == "onednn":
            self.w = torch.ops.mkldnn._reorder_linear_weight(w, rows) if steps >= REORDER_MIN_STEPS else w
        else:
            self.w = w.t()  # (in, out) view: addmm reads it transposed, no copy

    def __call__(self, x: torch.Tensor, b: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.backend == "onednn":
            return torch.ops.mkldnn._linear_pointwise(x, self.w, b, "none", [], "")
        return torch.addmm(b, x, self.w) if b is not None else torch.mm(x, self.w)


# --- one direction of one layer ---------------------------------------------------------------------

def _offsets(batch_sizes: list[int]) -> list[int]:
    offs, s = [], 0
    for b in batch_sizes:
        offs.append(s)
        s += b
    return offs


class Prepared(NamedTuple):
    """One direction's weights in the loop's form (see `_direction_forward`), ready for its GEMMs."""

    w_ih: torch.Tensor            # (3H, I), n rows doubled
    b_ih: Optional[torch.Tensor]  # (3H,), n entries doubled
    b_hh: torch.Tensor            # (3H,): b_hh - W_hh 1, n entries doubled
    step: "_Linear"               # u (bs, H) -> (bs, 3H): 2 W_hh u (n rows 4 W_hh u)
    backend: str


def prepare(w_ih, w_hh, b_ih, b_hh, rows: int, backend: str, steps: int = REORDER_MIN_STEPS) -> Prepared:
    """The weights of the loop's tanh-free form of the GRU step, for `steps` step GEMMs of about `rows` rows."""
    H = w_hh.shape[1]
    scale = w_hh.new_ones(3 * H, 1)
    scale[2 * H:] = 2.0
    w_ih2 = w_ih * scale  # (3H, I): n rows doubled
    b_ih2 = b_ih * scale[:, 0] if b_ih is not None else None
    w_hh2 = w_hh * (2.0 * scale)  # (3H, H): acts on u = (h + 1) / 2, so h = 2u - 1
    b_hh2 = (b_hh if b_hh is not None else 0.0) - w_hh.sum(1)  # W (2u - 1) + b = 2W u + (b - W 1)
    return Prepared(w_ih2, b_ih2, b_hh2 * scale[:, 0], _Linear(w_hh2, rows, backend, steps), backend)


def _direction_forward(x, h0, prep: Prepared, batch_sizes, offs, reverse, save):
    """x (N, I) in packed order, h0 (B, H) sorted -> out (N, H), h_n (B, H), and the gates when `save`.

    Step t reads rows offs[t] : offs[t] + batch_sizes[t] of x and writes the same rows of out.

    The loop carries u = (h + 1) / 2 instead of h, with weights rewritten so that it computes exactly
    the GRU step (`prepare`): s = sigmoid(2 a_n) gives n = tanh(a_n) = 2s - 1, and
    h' = (1 - z) n + z h becomes u' = lerp(s, u, z). No tanh in the loop: on CPU torch's tanh costs
    ~10x a sigmoid per element (benchmarks/fused_gru_parts.py), more than the step's other gate math.
    Every per-step view is cut before the loop (one `split` per buffer): slicing in the loop costs
    as much as the arithmetic at small sizes.
    """
    N, H = x.shape[0], h0.shape[1]
    T = len(batch_sizes)
    gi = _matmul_t(x, prep.w_ih, prep.b_ih)  # (N, 3H): every step's input projection in one GEMM
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
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        bs = batch_sizes[t]
        # u_{t-1}: the previous step's output rows; sequences that start at this step read u0.
        up = step_start(out_s[prev] if prev is not None else None, u0, bs)  # (bs, H)
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
    h_n = _final_state(out, h0, batch_sizes, offs, reverse)
    if not save:
        return out, h_n, None
    return out, h_n, (rz_all, s_all, hn_all)  # hn_all: 2 (W_hn h + b_hn), see prepare


def step_start(prev_rows: Optional[torch.Tensor], initial: torch.Tensor, bs: int) -> torch.Tensor:
    """(bs, H): the state a step's bs live rows start from: the previous step's output rows (packed order
    keeps them first), joined, in the reverse direction, by the initial state of sequences starting now."""
    if prev_rows is None:
        return initial if bs == initial.shape[0] else initial[:bs]
    n = prev_rows.shape[0]
    if n == bs:
        return prev_rows
    return prev_rows[:bs] if n > bs else torch.cat([prev_rows, initial[n:bs]])


def _final_state(out, h0, batch_sizes, offs, reverse) -> torch.Tensor:
    """(B, H): each sequence's last output in processing order (step 0 for the reverse direction)."""
    B = h0.shape[0]
    if reverse:
        return out[:B].clone()
    if batch_sizes[-1] == B:  # all sequences equally long
        return out[offs[-1]:].clone()
    bs = torch.tensor(batch_sizes)
    lengths = (bs.unsqueeze(0) > torch.arange(B).unsqueeze(1)).sum(1)  # (B,) in sorted order, all >= 1
    idx = torch.tensor(offs)[lengths - 1] + torch.arange(B)
    return out.index_select(0, idx.to(out.device))


def _previous_rows(out, h0, batch_sizes, offs, reverse) -> torch.Tensor:
    """(N, H): the hidden state each row's step started from (h_{t-1}), gathered in one op."""
    B, N = h0.shape[0], out.shape[0]
    T = len(batch_sizes)
    if batch_sizes[-1] == B:  # dense: every step B rows
        return torch.cat([h0, out[:N - B]]) if not reverse else torch.cat([out[B:], h0])
    bs = torch.tensor(batch_sizes)
    of = torch.tensor(offs)
    step = torch.repeat_interleave(torch.arange(T), bs)  # (N,): each row's time step
    pos = torch.arange(N) - of[step]  # (N,): row within its step
    if reverse:
        nxt = (step + 1).clamp(max=T - 1)
        from_out = (step < T - 1) & (pos < bs[nxt])
        idx = torch.where(from_out, B + of[nxt] + pos, pos)
    else:
        idx = torch.where(step > 0, B + of[(step - 1).clamp(min=0)] + pos, pos)
    return torch.cat([h0, out]).index_select(0, idx.to(out.device))


class _GRUDirection(torch.autograd.Function):
    """One direction of one GRU layer over packed rows, with its own backward."""

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, offs, reverse, prep):
        out, h_n, gates = _direction_forward(x, h0, prep, batch_sizes, offs, reverse, True)
        backend = prep.backend
        ctx.save_for_backward(x, h0, w_ih, w_hh, out, *gates)
        ctx.meta = (batch_sizes, offs, reverse, backend, b_ih is not None, b_hh is not None)
        return out, h_n

    @staticmethod
    @once_differentiable
    def backward(ctx, g_out, g_hn):
        x, h0, w_ih, w_hh, out, rz, s, gh_n = ctx.saved_tensors
        batch_sizes, offs, reverse, backend, has_b_ih, has_b_hh = ctx.meta
        N, H = out.shape
        T = len(batch_sizes)
        r, z = rz[:, :H], rz[:, H:]
        n = s * 2.0 - 1.0  # (N, H): tanh(a_n)
        hp = _previous_rows(out, h0, batch_sizes, offs, reverse)  # (N, H)
        hn = gh_n * 0.5  # (N, H): W_hn h + b_hn (the loop keeps it doubled, see prepare)
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
        step = _Linear(w_hh.t().contiguous(), B, backend, T) if backend == "onednn" else None
        split = batch_sizes
        d_s, d3_s, g_s = d_all.split(split), d_all.view(N, 1, H).split(split), g.split(split)
        dgh_s, dgh3_s = dgh.split(split), dgh.view(N, 3, H).split(split)
        z_s, go_s = z.split(split), g_out.split(split)
        dh_rows = {bs: dh[:bs] for bs in set(batch_sizes)}
        for t in (range(T) if reverse else range(T - 1, -1, -1)):
            dh_t = dh_rows[batch_sizes[t]]
            torch.add(dh_t, go_s[t], out=d_s[t])
            torch.mul(d3_s[t], g_s[t], out=dgh3_s[t])
            torch.mul(d_s[t], z_s[t], out=dh_t)
            if step is None:
                dh_t.addmm_(dgh_s[t], w_hh)  # + dgh @ W_hh, (bs, H)
            else:
                dh_t.add_(step(dgh_s[t]))
        # Weight gradients: one GEMM each over all steps. MKL reads the transposes in place; oneDNN
        # needs a transposing copy of dgh, which pays off only for large layers.
        big = H >= BIG_WEIGHT_GRAD_H
        dw_hh = (_matmul_t(dgh.t(), hp.t()) if big else dgh.t() @ hp) if ctx.needs_input_grad[3] else None
        db_hh = dgh.sum(0) if has_b_hh and ctx.needs_input_grad[5] else None
        dgi = dgh  # the input side differs only in n, which r does not gate: reuse the buffer
        torch.mul(d_all, a, out=dgi[:, 2 * H:])
        dx = _matmul_t(dgi, w_ih.t()) if ctx.needs_input_grad[0] else None  # (N, I)
        dw_ih = (_matmul_t(dgi.t(), x.t()) if big else dgi.t() @ x) if ctx.needs_input_grad[2] else None
        db_ih = dgi.sum(0) if has_b_ih and ctx.needs_input_grad[4] else None
        dh0 = dh if ctx.needs_input_grad[1] else None
        return dx, dh0, dw_ih, dw_hh, db_ih, db_hh, None, None, None, None


def gru_direction(x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes: list[int], reverse: bool,
                  offs: Optional[list[int]] = None, prep: Optional[Prepared] = None):
    """One GRU direction over packed rows: x (N, I), h0 (B, H) sorted -> out (N, H), h_n (B, H).

    `prep`: the weights already prepared (`prepare`), e.g. cached by the module while they do not change.
    """
    offs = offs if offs is not None else _offsets(batch_sizes)
    if prep is None:
        prep = prepare(w_ih, w_hh, b_ih, b_hh, h0.shape[0], gemm_backend(x.dtype, h0.shape[0], h0.shape[1]),
                       len(batch_sizes))
    tensors = (x, h0, w_ih, w_hh, b_ih, b_hh)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        return _GRUDirection.apply(x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, offs, reverse, prep)
    out, h_n, _ = _direction_forward(x, h0, prep, batch_sizes, offs, reverse, False)
    return out, h_n


# --- the module -------------------------------------------------------------------------------------

def stack_layers(module: nn.RNNBase, data: torch.Tensor, sizes: list[int], states: tuple, direction):
    """Packed rows through every layer and direction of `module` (dropout between layers in training).

    states: initial states, each (L*D, B, H), sorted as the rows; direction(data, states of one layer and
    direction, (w_ih, w_hh, b_ih, b_hh), reverse) -> (out (N, H), *final states (B, H)).
    Returns the last layer's rows (N, D*H) and the final states, each (L*D, B, H).
    """
    D, k = (2 if module.bidirectional else 1), (4 if module.bias else 2)
    finals = [[] for _ in states]
    for layer in range(module.num_layers):
        flat = module._flat_weights[layer * D * k:(layer + 1) * D * k]
        outs = []
        for d in range(D):
            w = flat[d * k:(d + 1) * k]
            weights = tuple(w) if module.bias else (w[0], w[1], None, None)
            out, *final = direction(data, [s[layer * D + d] for s in states], weights, d == 1)
            outs.append(out)
            for f, kept in zip(final, finals):
                kept.append(f)
        data = torch.cat(outs, 1) if D == 2 else outs[0]  # (N, D*H)
        if layer < module.num_layers - 1 and module.dropout > 0 and module.training:
            data = F.dropout(data, module.dropout, training=True)
    return data, tuple(torch.stack(f) for f in finals)


class PlainStack:
    """Mixin for grutool's LSTM and RNN: a `kernel` argument, and no layer_norm / residual stack."""

    def __init__(self, *args, kernel: str = "auto", layer_norm: bool = False, residual: bool = False, **kwargs):
        if layer_norm or residual:
            raise ValueError(f"{type(self).__name__}: layer_norm and residual are GRU-only (grutool.cells)")
        super().__init__(*args, **kwargs)
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
        self.kernel = kernel

    def extra_repr(self) -> str:
        return super().extra_repr() + f", kernel={self.kernel}"


class Layout(NamedTuple):
    dense_shape: Optional[tuple[int, int]]  # (T, B) for dense input, None for packed
    unbatched: bool                          # nn.RNN's (T, I) form


def rows_in(module: nn.RNNBase, input, states: tuple):
    """nn.GRU / nn.LSTM input -> rows in packed (time-major) order, batch_sizes, initial states sorted as
    the rows (zeros where not given, (L*D, B, H)), and how to put the output back."""
    D = 2 if module.bidirectional else 1
    if isinstance(input, PackedSequence):
        data, batch_sizes = input.data, input.batch_sizes
        B = int(batch_sizes[0])
        if input.sorted_indices is not None:
            states = tuple(s.index_select(1, input.sorted_indices) if s is not None else None for s in states)
        layout = Layout(None, False)
    else:
        x = input
        unbatched = x.dim() == 2
        if unbatched:
            x = x.unsqueeze(1)  # (T, 1, I)
            states = tuple(s.unsqueeze(1) if s is not None else None for s in states)
        elif module.batch_first:
            x = x.transpose(0, 1)  # (T, B, I)
        T, B = x.shape[0], x.shape[1]
        data = x.reshape(T * B, x.shape[2])  # (T*B, I): step t is rows t*B .. t*B+B-1
        batch_sizes = torch.full((T,), B, dtype=torch.int64)
        layout = Layout((T, B), unbatched)
    checked = []
    for s, width in zip(states, (getattr(module, "proj_size", 0) or module.hidden_size, module.hidden_size)):
        shape = (module.num_layers * D, B, width)
        if s is None:
            s = data.new_zeros(shape)
        elif s.shape != shape:
            raise RuntimeError(f"Expected hidden size {shape}, got {tuple(s.shape)}")
        checked.append(s)
    return data, batch_sizes, tuple(checked), layout


def rows_out(module: nn.RNNBase, input, out: torch.Tensor, states: tuple, layout: Layout):
    """The inverse of `rows_in` for the output rows (N, D*H) and final states (L*D, B, H)."""
    if layout.dense_shape is None:
        if input.unsorted_indices is not None:
            states = tuple(s.index_select(1, input.unsorted_indices) for s in states)
        return PackedSequence(out, input.batch_sizes, input.sorted_indices, input.unsorted_indices), states
    T, B = layout.dense_shape
    out = out.view(T, B, -1)  # (T, B, D*H)
    if layout.unbatched:
        return out.squeeze(1), tuple(s.squeeze(1) for s in states)
    return (out.transpose(0, 1) if module.batch_first else out), states




class GRU(nn.GRU):
    """`nn.GRU` with a faster CPU kernel and optional LayerNorm / residual connections between layers.

    Same constructor arguments, parameters and return values as `nn.GRU`, plus:
      kernel: `fused` (this module's CPU kernel; CUDA and other dtypes use nn.GRU's) or `native` (nn.GRU's own).
      layer_norm: LayerNorm(D*H) on each layer's output before the next layer (num_layers > 1).
      residual: add each layer's input to its output where both are D*H wide.
    """

    def __init__(self, *args, kernel: str = "fused", layer_norm: bool = False, residual: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
        self.kernel = kernel
        self.residual = residual
        width = self.hidden_size * (2 if self.bidirectional else 1)
        factory = {k: kwargs[k] for k in ("device", "dtype") if k in kwargs}
        self.layer_norms = (nn.ModuleList(nn.LayerNorm(width, **factory) for _ in range(self.num_layers - 1))
                            if layer_norm else None)

    def extra_repr(self) -> str:
        extra = f", kernel={self.kernel}"
        if self.layer_norms is not None:
            extra += ", layer_norm=True"
        if self.residual:
            extra += ", residual=True"
        return super().extra_repr() + extra

    def _fusable(self, x: torch.Tensor, packed: bool) -> bool:
        if self.kernel == "native" or x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
            return False
        # auto: short dense calls (a decoder generating token by token, a batch of 5-word phrases) are
        # faster in nn.GRU's own loop, whose dense path is efficient: the fused kernel's per-call set-up
        # (weight preparation, its larger GEMMs' fixed costs) is paid over too few steps. Measured
        # (B64 H64 bidirectional, training): T 5: fused 0.83x nn.GRU's speed, T 10: 1.04x, T 20: 1.06x.
        # Packed input always: nn.GRU's packed path is its slow one.
        steps = x.shape[1 if self.batch_first else 0] if x.dim() == 3 else x.shape[0]
        return self.kernel == "fused" or packed or steps >= AUTO_MIN_STEPS

    def _prepared(self, weights, rows: int, steps: int, dtype) -> Prepared:
        """A direction's weights in the loop's form, prepared at every call: caching them by the
        weights' version counters would be wrong, as torch's fused Adam/AdamW (grutool's optimizer
        where available) updates parameters in place without bumping those counters."""
        w_ih, w_hh, b_ih, b_hh = weights
        with torch.no_grad():
            return prepare(w_ih, w_hh, b_ih, b_hh, rows, gemm_backend(dtype, rows, w_hh.shape[1]), steps)

    def forward(self, input, hx: Optional[torch.Tensor] = None):
        packed = isinstance(input, PackedSequence)
        x = input.data if packed else input
        fused = self._fusable(x, packed)
        if not fused and self.layer_norms is None and not self.residual:
            return super().forward(input, hx)
        with torch.profiler.record_function("grutool::fused_gru" if fused else "grutool::gru_stack"):
            return self._forward(input, hx, packed, fused)

    def _forward(self, input, hx, packed: bool, fused: bool):
        data, batch_sizes, (hx,), layout = rows_in(self, input, (hx,))
        out, h_n = self._layers(data, batch_sizes, hx, fused, layout.dense_shape)
        out, (h_n,) = rows_out(self, input, out, (h_n,), layout)
        return out, h_n

    def _layers(self, data, batch_sizes, hx, fused, dense_shape):
        """Rows in packed (time-major) order through every layer: (N, I) -> (N, D*H), and h_n (L*D, B, H).

        Dense input arrives here as packed rows with every step B long. (Advancing both directions
        of a dense batch together, one batched GEMM and one set of gate ops per step, was measured
        slower: CPU baddbmm is a loop of addmm, and the time flips cost more than the saved calls.)
        """
        D = 2 if self.bidirectional else 1
        k = 4 if self.bias else 2
        sizes = batch_sizes.tolist()
        offs = _offsets(sizes)
        states = []
        for layer in range(self.num_layers):
            flat = self._flat_weights[layer * D * k:(layer + 1) * D * k]
            weights = [tuple(flat[d * k:(d + 1) * k]) + (() if self.bias else (None, None)) for d in range(D)]
            h0 = hx[layer * D:(layer + 1) * D]  # (D, B, H)
            if fused:
                outs = []
                for d, (w_ih, w_hh, b_ih, b_hh) in enumerate(weights):
                    prep = self._prepared(weights[d], h0.shape[1], len(sizes), data.dtype)
                    o, h = gru_direction(data, h0[d], w_ih, w_hh, b_ih, b_hh, sizes, d == 1, offs, prep)
                    outs.append(o)
                    states.append(h)
                y = torch.cat(outs, 1) if D == 2 else outs[0]  # (N, D*H)
            else:  # nn.GRU's own op, one layer at a time (for layer_norm / residual)
                y, h = self._native_layer(data, batch_sizes, h0, flat, dense_shape)
                states.extend(h.unbind(0))
            if self.residual and y.shape[1] == data.shape[1]:
                y = y + data
            if layer < self.num_layers - 1:
                if self.layer_norms is not None:
                    y = self.layer_norms[layer](y)
                if self.dropout > 0 and self.training:
                    y = F.dropout(y, self.dropout, training=True)
            data = y
        return data, torch.stack(states)

    def _native_layer(self, data, batch_sizes, h0, weights, dense_shape):
        if dense_shape is not None:
            T, B = dense_shape
            y, h = torch._VF.gru(data.view(T, B, -1), h0, weights, self.bias, 1, 0.0, self.training,
                                 self.bidirectional, False)
            return y.reshape(T * B, -1), h
        return torch._VF.gru(data, batch_sizes, h0, weights, self.bias, 1, 0.0, self.training, self.bidirectional)
