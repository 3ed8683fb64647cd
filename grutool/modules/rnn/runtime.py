"""The packed-row runtime every fused cell runs on: rows in and out, steps over live rows, the layer stack, the module.

On CPU PyTorch runs GRU/LSTM/RNN layers as a per-step loop of small ATen ops, each recorded for
autograd, and packed batches on their slowest path. A fused cell here keeps PyTorch's module (its
parameters, names and return values: checkpoints load either way) and computes each (layer,
direction) with one autograd Function over *packed rows*:

- input of any layout becomes rows in packed (time-major) order (`rows_in`); dense input is the packed
  case with every step B rows long; `rows_out` puts the results back in the caller's layout;
- step t reads and writes rows offs[t] : offs[t] + batch_sizes[t]: only the first batch_sizes[t]
  sequences are live (PyTorch sorts packed sequences longest first), so a step is a slice, and the
  reverse direction is the same loop run from the last step, with its not-yet-started rows read from
  the initial state (`step_start`); `final_rows` and `previous_rows` gather a direction's final state
  and each row's h_{t-1} in one op;
- all input projections of a layer in one GEMM before the loop, and a hand-written backward with the
  weight gradients as single GEMMs after it (BLAS; per step `grutool.modules.rnn.gemm` picks oneDNN or BLAS);
- `stack_layers`: layers and directions, dropout between layers in training, and for cells that stack
  (GRU) LayerNorm / residual connections, with either kernel; a cell with `forward_pair` (the compiled
  kernels) gets both directions of a layer in one call (`_Pair`), which it runs side by side.

The equations are PyTorch's, written out plainly in `grutool.shapes.reference` (`gru_step`, `lstm_step`,
`rnn_step`); the parity tests hold every kernel to them and to PyTorch's modules. One rewrite is shared:
**tanh as a sigmoid.** On CPU torch's tanh costs several sigmoids per element (docs/benchmarks.md), so
the loops use tanh(a) = 2 sigmoid(2a) - 1: a tanh gate's weight rows and bias are doubled and its
sigmoid gives s = (n + 1) / 2. Where the state itself is a tanh (GRU, RNN with tanh) the loop carries
u = (h + 1) / 2 instead of h; a recurrent weight acting on h = 2u - 1 becomes W h + b = 2W u + (b - W 1),
i.e. doubled weights and a bias shifted by the weight's row sums, and h = 2u - 1 is restored once
after the loop.

A cell (`gru.py`, `lstm.py`, `rnn.py`) is a `CellStep`: its forward and backward over one direction's
rows and its fusability rule; `Recurrent` turns it into the module. Where kernel `auto` runs the compiled or
fused kernel is `grutool.kernels.AUTO`. On CUDA and for dtypes other than float32/float64 the module defers
to PyTorch's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable
from torch.nn.utils.rnn import PackedSequence

from grutool.kernels import AUTO, KERNELS
from grutool.modules.rnn.gemm import ragged

# --- packed rows ------------------------------------------------------------------------------------


def offsets(batch_sizes: list[int]) -> list[int]:
    """Each step's first row: offs[t] = batch_sizes[0] + ... + batch_sizes[t - 1]."""
    offs, s = [], 0
    for b in batch_sizes:
        offs.append(s)
        s += b
    return offs


def step_start(prev_rows: Optional[torch.Tensor], initial: torch.Tensor, bs: int) -> torch.Tensor:
    """(bs, H): the state a step's bs live rows start from: the previous step's output rows (packed order
    keeps them first), joined, in the reverse direction, by the initial state of sequences starting now."""
    if prev_rows is None:
        return initial if bs == initial.shape[0] else initial[:bs]
    n = prev_rows.shape[0]
    if n == bs:
        return prev_rows
    return prev_rows[:bs] if n > bs else torch.cat([prev_rows, initial[n:bs]])


def final_rows(out, h0, batch_sizes, offs, reverse) -> torch.Tensor:
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


def previous_rows(out, h0, batch_sizes, offs, reverse) -> torch.Tensor:
    """(N, H): the state each row's step started from (h_{t-1}), gathered in one op."""
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


def step_order(T: int, reverse: bool, backward: bool = False) -> range:
    """The order a direction visits its steps: forward in time (the reverse direction backwards), and
    the other way round in the backward pass."""
    return range(T - 1, -1, -1) if reverse != backward else range(T)


class Layout(NamedTuple):
    dense_shape: Optional[tuple[int, int]]  # (T, B) for dense input, None for packed
    unbatched: bool                          # nn.RNN's (T, I) form


def rows_in(module: nn.RNNBase, input, states: tuple):
    """nn.GRU / nn.LSTM / nn.RNN input -> rows in packed (time-major) order, batch_sizes, initial states
    sorted as the rows (zeros where not given, (L*D, B, H)), and how to put the output back."""
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


# --- one direction of one layer ---------------------------------------------------------------------


@dataclass(frozen=True)
class CellStep:
    """What a cell brings to the runtime; everything else is shared.

    prepare(module or None, weights, rows, steps, dtype, ragged) -> extra: per-call constants of one direction
        (GEMM backend, weights rewritten for the loop), computed without gradients; `ragged`: the steps have
        unequal row counts (`grutool.modules.rnn.gemm.ragged`).
    forward(x, states, weights, batch_sizes, offs, reverse, extra, save) -> (out (N, H), final states
        (B, H) each, saved tensors for the backward or None): x (N, I) packed rows, states (B, H) each.
    backward(needs, x, states, weights, out, saved, g_out, g_finals, batch_sizes, offs, reverse, extra)
        -> (dx, state gradients, 4 weight gradients); `needs`: needs_input_grad of (x, *states, *weights).
    fusable(module) -> whether the fused kernel can run this module's configuration at all (`auto`
        then decides where it pays, `grutool.kernels.AUTO`).
    """

    name: str
    cell_state: bool  # the state is (h, c)
    stacks: bool      # layer_norm / residual between layers
    prepare: Callable[..., Any]
    forward: Callable[..., tuple]
    backward: Callable[..., tuple]
    fusable: Callable[[nn.RNNBase], bool] = lambda module: True
    native_layer: Optional[Callable[..., tuple]] = None  # PyTorch's op for one layer (cells that stack)
    ready: Callable[[], bool] = lambda: True  # whether it can run here (the compiled kernel: built and loaded)
    # Both directions of a bidirectional layer in one call (the compiled kernel: side by side, a thread each):
    # forward_pair(x, a, b, batch_sizes, offs, save) with a, b = (states, weights, extra) of the forward and
    # the reverse direction -> ((out, finals, saved) of each, y (N, 2H) whose halves the outs are);
    # backward_pair(x, a, b, batch_sizes, offs) with a, b = (needs, states, weights, out, saved, g_out,
    # g_finals, extra) -> ((dx, state grads, weight grads) of each); out and g_out may be column slices.
    forward_pair: Optional[Callable[..., tuple]] = None
    backward_pair: Optional[Callable[..., tuple]] = None


class _Direction(torch.autograd.Function):
    """One direction of one layer over packed rows, with the cell's own backward."""

    @staticmethod
    def forward(ctx, cell, batch_sizes, offs, reverse, extra, n_states, x, *tensors):
        states, weights = tensors[:n_states], tensors[n_states:]
        out, finals, saved = cell.forward(x, states, weights, batch_sizes, offs, reverse, extra, True)
        ctx.save_for_backward(x, *tensors, out, *saved)
        ctx.meta = (cell, batch_sizes, offs, reverse, extra, n_states)
        return (out, *finals)

    @staticmethod
    @once_differentiable
    def backward(ctx, g_out, *g_finals):
        cell, batch_sizes, offs, reverse, extra, k = ctx.meta
        x, *rest = ctx.saved_tensors
        states, weights, out, saved = rest[:k], rest[k:k + 4], rest[k + 4], rest[k + 5:]
        dx, d_states, d_weights = cell.backward(ctx.needs_input_grad[6:], x, states, weights, out, saved, g_out,
                                                g_finals, batch_sizes, offs, reverse, extra)
        return (None,) * 6 + (dx, *d_states, *d_weights)


def direction(cell: CellStep, x, states: tuple, weights: tuple, batch_sizes: list[int], reverse: bool,
              offs: Optional[list[int]] = None, extra: Any = None, module: Optional[nn.RNNBase] = None):
    """One direction over packed rows: x (N, I), states (B, H) each, sorted -> (out (N, H), *final states).

    The autograd Function where a tensor needs a gradient, else the forward alone. `extra`: the
    direction's prepared constants (`cell.prepare`), prepared here when not given.
    """
    offs = offs if offs is not None else offsets(batch_sizes)
    if extra is None:
        extra = cell.prepare(module, weights, states[0].shape[0], len(batch_sizes), x.dtype, ragged(batch_sizes))
    tensors = (x, *states, *weights)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        return _Direction.apply(cell, batch_sizes, offs, reverse, extra, len(states), *tensors)
    with torch.no_grad():
        out, finals, _ = cell.forward(x, states, weights, batch_sizes, offs, reverse, extra, False)
    return (out, *finals)


class _Pair(torch.autograd.Function):
    """Both directions of one layer over the same packed rows, through the cell's `forward_pair`/`backward_pair`."""

    @staticmethod
    def forward(ctx, cell, batch_sizes, offs, extras, n_states, x, *tensors):
        k = n_states + 4
        a, b = tensors[:k], tensors[k:]
        ra, rb, y = cell.forward_pair(x, (a[:n_states], a[n_states:], extras[0]),
                                      (b[:n_states], b[n_states:], extras[1]), batch_sizes, offs, True)
        ctx.save_for_backward(x, *tensors, y, *ra[2], *rb[2])
        ctx.meta = (cell, batch_sizes, offs, extras, n_states, len(ra[2]))
        return (y, *ra[1], *rb[1])

    @staticmethod
    @once_differentiable
    def backward(ctx, *grads):
        cell, batch_sizes, offs, extras, n, n_saved = ctx.meta
        x, *rest = ctx.saved_tensors
        k = n + 4
        a, b, (y, *kept) = rest[:k], rest[k:2 * k], rest[2 * k:]
        saved_a, saved_b = kept[:n_saved], kept[n_saved:]
        needs = ctx.needs_input_grad[5:]  # x, then the tensors
        needs_a, needs_b = (needs[0], *needs[1:1 + k]), (needs[0], *needs[1 + k:])
        H = y.shape[1] // 2
        g_y, g_fa, g_fb = grads[0], grads[1:1 + n], grads[1 + n:]
        g_a, g_b = (g_y[:, :H], g_y[:, H:]) if g_y is not None else (None, None)  # column slices, no copy
        (dx_a, ds_a, dw_a), (dx_b, ds_b, dw_b) = cell.backward_pair(
            x, (needs_a, a[:n], a[n:], y[:, :H], saved_a, g_a, g_fa, extras[0]),
            (needs_b, b[:n], b[n:], y[:, H:], saved_b, g_b, g_fb, extras[1]), batch_sizes, offs)
        dx = dx_a if dx_b is None else dx_b if dx_a is None else dx_a.add_(dx_b)  # dx_a is the kernel's new tensor
        return (None,) * 5 + (dx, *ds_a, *dw_a, *ds_b, *dw_b)


def direction_pair(cell: CellStep, x, a: tuple, b: tuple, batch_sizes: list[int], offs: list[int]):
    """Both directions of a layer: a, b = (states, weights, extra) of the forward and the reverse direction
    -> (y (N, 2H): both outputs side by side, finals_a, finals_b). The autograd Function where a tensor needs
    a gradient."""
    tensors = (*a[0], *a[1], *b[0], *b[1])
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, *tensors)):
        n = len(a[0])
        res = _Pair.apply(cell, batch_sizes, offs, (a[2], b[2]), n, x, *tensors)
        return res[0], res[1:1 + n], res[1 + n:]
    with torch.no_grad():
        ra, rb, y = cell.forward_pair(x, a, b, batch_sizes, offs, False)
    return y, ra[1], rb[1]


# --- the layer stack and the module -----------------------------------------------------------------


def stack_layers(module: "Recurrent", data: torch.Tensor, batch_sizes: torch.Tensor, states: tuple,
                 cell: Optional[CellStep], dense_shape: Optional[tuple[int, int]]):
    """Packed rows through every layer and direction: (N, I) -> (N, D*H), and the final states, each (L*D, B, H).

    states: initial states, each (L*D, B, H), sorted as the rows. `cell`: the step each direction runs
    (the module's fused or compiled one). Between layers: the residual where the widths match, LayerNorm,
    dropout in training. No `cell` (a stack with layer_norm / residual on the native kernel): PyTorch's op
    one layer at a time. (Advancing both directions of a dense batch together, one batched GEMM per step,
    was measured slower: CPU baddbmm is a loop of addmm.)
    """
    D, k = (2 if module.bidirectional else 1), (4 if module.bias else 2)
    sizes = batch_sizes.tolist()
    offs = offsets(sizes)
    uneven = ragged(sizes)
    finals = [[] for _ in states]

    def direction_args(layer: int, d: int) -> tuple:
        """(initial states, weights, prepared constants) of one layer's direction d."""
        w = module._flat_weights[(layer * D + d) * k:(layer * D + d + 1) * k]
        weights = tuple(w) if module.bias else (w[0], w[1], None, None)
        first = tuple(s[layer * D + d] for s in states)
        with torch.no_grad():  # the prepared weights are constants of the Function
            extra = cell.prepare(module, weights, first[0].shape[0], len(sizes), data.dtype, uneven)
        return first, weights, extra

    for layer in range(module.num_layers):
        flat = module._flat_weights[layer * D * k:(layer + 1) * D * k]
        if cell is not None and D == 2 and cell.forward_pair is not None:
            y, final_a, final_b = direction_pair(cell, data, direction_args(layer, 0), direction_args(layer, 1),
                                                 sizes, offs)  # y (N, 2H)
            for fa, fb, kept in zip(final_a, final_b, finals):
                kept.extend((fa, fb))
        elif cell is not None:
            outs = []
            for d in range(D):
                first, weights, extra = direction_args(layer, d)
                out, *final = direction(cell, data, first, weights, sizes, d == 1, offs, extra)
                outs.append(out)
                for f, kept in zip(final, finals):
                    kept.append(f)
            y = torch.cat(outs, 1) if D == 2 else outs[0]  # (N, D*H)
        else:
            y, final = module.cell_step.native_layer(module, data, batch_sizes,
                                                     [s[layer * D:(layer + 1) * D] for s in states], flat, dense_shape)
            for f, kept in zip(final, finals):
                kept.extend(f.unbind(0))
        if module.residual and y.shape[1] == data.shape[1]:
            y = y + data
        if layer < module.num_layers - 1:
            if module.layer_norms is not None:
                y = module.layer_norms[layer](y)
            if module.dropout > 0 and module.training:
                y = F.dropout(y, module.dropout, training=True)
        data = y
    return data, tuple(torch.stack(f) for f in finals)


class Recurrent:
    """Mixin that turns a `CellStep` into PyTorch's module with grutool's kernels: `class GRU(Recurrent, nn.GRU)`.

    Same constructor arguments, parameters and return values as the PyTorch module, plus:
      kernel: `fused` (the cell's CPU kernel; CUDA and other dtypes use PyTorch's), `compiled` (cells
        with a `compiled_step`: the same, its time loop in C++, built on first use; where it cannot be
        built, the fused kernel, said once), `native` (PyTorch's own) or `auto` (per call, whichever of these
        `grutool.kernels.AUTO` says; the compiled kernel builds on its first call).
      layer_norm: LayerNorm(D*H) on each layer's output before the next layer (cells that stack).
      residual: add each layer's input to its output where both are D*H wide (cells that stack).
    """

    cell_step: CellStep
    compiled_step: Optional[CellStep] = None  # the cell's compiled kernel, where it has one

    def __init__(self, *args, kernel: str = "auto", layer_norm: bool = False, residual: bool = False, **kwargs):
        if (layer_norm or residual) and not self.cell_step.stacks:
            raise ValueError(f"{type(self).__name__}: layer_norm and residual are GRU-only (grutool.cells)")
        super().__init__(*args, **kwargs)
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
        if kernel == "compiled" and self.compiled_step is None:
            raise ValueError(f"{type(self).__name__} has no compiled kernel (grutool.cells)")
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

    def load_compiled(self) -> None:
        """Build (or load) the compiled kernel now where this layer's calls may run it (kernel `compiled`, or
        `auto` for a cell whose rule runs it; parameters on the CPU in float32/float64), rather than in its
        first call, which would wait for the build (a training's first step, and its clock with it). Where
        it cannot be built, the fallback is said now."""
        if self.compiled_step is None or self.kernel not in ("compiled", "auto") or \
                (self.kernel == "auto" and AUTO[self.cell_step.name].compiled_training_from is None):
            return
        if self._own_kernels(self.weight_hh_l0):
            self.compiled_step.ready()

    def _own_kernels(self, x: torch.Tensor) -> bool:
        """Whether the cell's own kernels (fused, compiled) may run on tensors like `x`: not kernel native, on the
        CPU in float32/float64, a layer they fuse."""
        return self.kernel != "native" and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) \
            and self.cell_step.fusable(self)

    def _choice(self, input) -> str:
        """`compiled`, `fused` or `native`: the kernel this call runs (before the compiled kernel's build is
        known to have worked, for kernel `compiled`)."""
        packed = isinstance(input, PackedSequence)
        x = input.data if packed else input
        if not self._own_kernels(x):
            return "native"
        if self.kernel in ("fused", "compiled"):
            return self.kernel
        if packed:
            steps = len(input.batch_sizes)  # the longest sequence
        else:
            steps = x.shape[1 if self.batch_first else 0] if x.dim() == 3 else x.shape[0]
        ready = self.compiled_step.ready if self.compiled_step is not None else (lambda: False)
        return AUTO[self.cell_step.name].pick(packed=packed, training=torch.is_grad_enabled(),
                                              hidden_size=self.hidden_size, steps=steps, compiled_ready=ready,
                                              side_by_side=self.bidirectional and torch.get_num_threads() >= 2)

    def path(self, input) -> str:
        """What `forward(input)` runs: `compiled` (the cell's C++ loop), `fused` (the cell's CPU kernel),
        `stack` (grutool's layer stack over PyTorch's op per layer: layer_norm / residual) or `native`
        (PyTorch's module's own forward). Kernels `compiled` and `auto` (`grutool.kernels.AUTO`) build the
        compiled extension here on first use; kernel `compiled` runs `fused` where it cannot be built."""
        choice = self._choice(input)
        if choice == "compiled":
            return "compiled" if self.compiled_step.ready() else "fused"
        if choice == "fused":
            return "fused"
        return "stack" if self.layer_norms is not None or self.residual else "native"

    def forward(self, input, hx=None):
        path = self.path(input)
        if path == "native":
            return super().forward(input, hx)
        cell = {"fused": self.cell_step, "compiled": self.compiled_step}.get(path)
        name = self.cell_step.name
        with torch.profiler.record_function(f"grutool::{path}_{name}" if cell else f"grutool::{name}_stack"):
            if self.cell_step.cell_state:
                states = hx if hx is not None else (None, None)
            else:
                states = (hx,)
            data, batch_sizes, states, layout = rows_in(self, input, states)
            out, finals = stack_layers(self, data, batch_sizes, states, cell, layout.dense_shape)
            out, finals = rows_out(self, input, out, finals, layout)
            return out, (finals if self.cell_step.cell_state else finals[0])


def load_compiled_kernels(model: nn.Module) -> None:
    """`Recurrent.load_compiled` for every recurrent layer of `model`, where its parameters are now."""
    for module in model.modules():
        if isinstance(module, Recurrent):
            module.load_compiled()
