"""`grutool shapes`: every tensor shape of a recurrent layer, or of a configured model, proven by running it.

Two reports, both plain dicts (what `grutool shapes --json` prints; the CLI only renders them):

- `layer_report(LayerSpec(...))`: a real nn.GRU / nn.LSTM / nn.RNN (from `CELLS`) with the
  user's settings. Tensors with symbolic and concrete shapes, the packed layout when
  lengths are given, every parameter with its gate rows, and identities (e.g. "h_n[-2] is
  output's forward half at the last step") checked on random input, each with its max
  absolute difference so that a wrong claim shows up as a failure.
- `config_report(path)`: the model `train` builds for a config (same code path), traced
  module by module with forward hooks, plus the layer report of its encoder's recurrent layer.

Checks run on a float64 copy of the module so the tolerance can be tight. Error messages
use the CLI's option names (`--layers`, `--seq-len`, ...).
"""

from __future__ import annotations

import contextlib
import copy
import re
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple, Optional, Sequence, Union

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from grutool.errors import UserError
from grutool.cells import CELL_NAMES

CELLS = {name: getattr(nn, name.upper()) for name in CELL_NAMES}  # PyTorch's module per cell

TOL = 1e-9         # float64 checks: the same arithmetic in another order differs by ~1e-15
MODEL_TOL = 1e-5   # float32 checks on a configured model

# PyTorch's gate order: the rows of weight_ih / weight_hh / biases are these blocks of H rows.
GATES = {"gru": ["r", "z", "n"], "lstm": ["i", "f", "g", "o"], "rnn": ["h"]}

DEFAULTS = {"batch": 3, "seq_len": 5}

EQUATIONS = {
    "gru": [
        "r_t = σ(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)",
        "z_t = σ(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)",
        "n_t = tanh(W_in x_t + b_in + r_t ⊙ (W_hn h_{t-1} + b_hn))",
        "h_t = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t-1}",
    ],
    "lstm": [
        "i_t = σ(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)",
        "f_t = σ(W_if x_t + b_if + W_hf h_{t-1} + b_hf)",
        "g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)",
        "o_t = σ(W_io x_t + b_io + W_ho h_{t-1} + b_ho)",
        "c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t",
        "h_t = o_t ⊙ tanh(c_t)",
    ],
    "rnn": ["h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)"],
}

WHERE = {
    "gru": [
        "W_ir | W_iz | W_in are the row blocks [0:H | H:2H | 2H:3H] of weight_ih_l{k}; "
        "W_h* of weight_hh_l{k}; b_i* of bias_ih_l{k}; b_h* of bias_hh_l{k}",
        "r_t multiplies (W_hn h_{t-1} + b_hn), after the matrix product and including b_hn "
        "(the original GRU paper resets h_{t-1} before W_hn; PyTorch and cuDNN do not)",
    ],
    "lstm": [
        "W_ii | W_if | W_ig | W_io are the row blocks [0:H | H:2H | 2H:3H | 3H:4H] of weight_ih_l{k}; "
        "W_h* of weight_hh_l{k}; b_i* of bias_ih_l{k}; b_h* of bias_hh_l{k}",
    ],
    "rnn": ["W_ih = weight_ih_l{k}, W_hh = weight_hh_l{k}, b_ih = bias_ih_l{k}, b_hh = bias_hh_l{k}"],
}
COMMON_WHERE = [
    "x_t of layer k > 0 is cat(forward h_t, backward h_t) of layer k−1 (dropout between layers in training only)",
    "the reverse direction uses the *_reverse weights and runs from t = T−1 down to 0",
    "without bias=True the b terms are 0",
]
PROJ_EQUATION = "h_t = W_hr (o_t ⊙ tanh(c_t))   (proj_size > 0: W_hr = weight_hr_l{k}, (P, H))"


# --- settings ------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerSpec:
    """Settings of one recurrent layer stack and of the random batch run through it (PyTorch's names)."""

    cell: str = "gru"
    """gru | lstm | rnn."""
    input_size: int = 10
    """I: features per step."""
    hidden_size: int = 20
    """H: features of the hidden state, per direction."""
    num_layers: int = 1
    """L: stacked layers."""
    bidirectional: bool = False
    """D = 2 when true."""
    batch_first: bool = False
    """Input and output as (B, T, ·) instead of (T, B, ·); h_n is never batch-first."""
    batch: Optional[int] = None
    """B; default 3, or the number of `lengths`."""
    seq_len: Optional[int] = None
    """T; default 5, or the longest of `lengths`."""
    lengths: Optional[tuple[int, ...]] = None
    """One length per sequence: the batch is packed with pack_padded_sequence."""
    bias: bool = True
    """Whether the layer has bias_ih / bias_hh."""
    dropout: float = 0.0
    """Dropout between layers (training only; the checks run in eval mode)."""
    proj_size: int = 0
    """P: LSTM projection of h (0: none)."""


def parse_lengths(text: str) -> tuple[int, ...]:
    """'5,3,2' -> (5, 3, 2)."""
    try:
        values = tuple(int(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise UserError(f"--lengths: expected comma-separated integers like 5,3,2 (got {text!r})") from None
    return values


def resolve_batch(batch: Optional[int], seq_len: Optional[int],
                  lengths: Optional[Sequence[int]]) -> tuple[int, int, Optional[tuple[int, ...]]]:
    """B, T and lengths after defaults, or a UserError saying which option is wrong and how to fix it."""
    for option, value in (("--batch", batch), ("--seq-len", seq_len)):
        if value is not None and value <= 0:
            raise UserError(f"{option}: must be > 0 (got {value})")
    if lengths is None:
        return batch or DEFAULTS["batch"], seq_len or DEFAULTS["seq_len"], None
    lengths = tuple(int(n) for n in lengths)
    if not lengths:
        raise UserError("--lengths: give one length per sequence, e.g. 5,3,2")
    for i, n in enumerate(lengths):
        if n <= 0:
            raise UserError(f"--lengths: length {n} at position {i + 1}; every sequence needs at least "
                            f"one step (pack_padded_sequence rejects empty ones)")
    T = seq_len or max(lengths)
    for i, n in enumerate(lengths):
        if n > T:
            raise UserError(f"--lengths: length {n} at position {i + 1} is longer than --seq-len {T}; "
                            f"raise --seq-len or shorten the sequence")
    if batch is not None and batch != len(lengths):
        raise UserError(f"--lengths: {len(lengths)} length(s) for --batch {batch}; give one length per "
                        f"sequence, or leave out --batch")
    return len(lengths), T, lengths


def check_spec(spec: LayerSpec) -> tuple[LayerSpec, list[str]]:
    """The spec with B, T filled in, and the warnings it deserves; UserError for impossible settings."""
    if spec.cell not in CELLS:
        raise UserError(f"--cell: unknown cell {spec.cell!r}; expected one of {', '.join(CELLS)}")
    for option, value in (("--input-size", spec.input_size), ("--hidden-size", spec.hidden_size),
                          ("--layers", spec.num_layers)):
        if value <= 0:
            raise UserError(f"{option}: must be > 0 (got {value})")
    if spec.proj_size:
        if spec.cell != "lstm":
            raise UserError(f"--proj-size: only nn.LSTM has a projection (got --cell {spec.cell}); "
                            f"use --cell lstm or leave out --proj-size")
        if spec.proj_size < 0:
            raise UserError(f"--proj-size: must be > 0 (got {spec.proj_size})")
        if spec.proj_size >= spec.hidden_size:
            raise UserError(f"--proj-size: must be smaller than --hidden-size {spec.hidden_size}, as nn.LSTM "
                            f"requires (got {spec.proj_size})")
    if not 0.0 <= spec.dropout < 1.0:
        raise UserError(f"--dropout: must be in [0, 1) (got {spec.dropout})")
    B, T, lengths = resolve_batch(spec.batch, spec.seq_len, spec.lengths)
    notes = []
    if spec.dropout > 0 and spec.num_layers == 1:
        # PyTorch warns too; this says it with the options the user typed.
        notes.append(f"--dropout {spec.dropout} has no effect with --layers 1: nn.{CELLS[spec.cell].__name__} "
                     f"applies it between layers only (as PyTorch warns); use --layers 2 or more")
    return replace(spec, batch=B, seq_len=T, lengths=lengths), notes


def build_layer(spec: LayerSpec) -> nn.RNNBase:
    """The real module for a spec (weights from the current torch seed)."""
    kwargs = dict(num_layers=spec.num_layers, bias=spec.bias, batch_first=spec.batch_first,
                  dropout=spec.dropout, bidirectional=spec.bidirectional)
    if spec.proj_size:
        kwargs["proj_size"] = spec.proj_size
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*dropout option adds dropout.*")  # reported by check_spec
        return CELLS[spec.cell](spec.input_size, spec.hidden_size, **kwargs)


def _cell_name(module: nn.Module) -> str:
    for name, cls in CELLS.items():
        if isinstance(module, cls):  # grutool's fused GRU is an nn.GRU
            return name
    raise TypeError(f"not one of {list(CELLS)}: {type(module).__name__}")


def _same_kind(m: nn.RNNBase, **changes) -> nn.RNNBase:
    """A module like `m` with some constructor arguments changed (fresh weights, float64)."""
    kwargs = dict(input_size=m.input_size, hidden_size=m.hidden_size, num_layers=m.num_layers, bias=m.bias,
                  batch_first=m.batch_first, dropout=m.dropout, bidirectional=m.bidirectional)
    if isinstance(m, nn.LSTM):
        kwargs["proj_size"] = m.proj_size
    if isinstance(m, nn.RNN):
        kwargs["nonlinearity"] = m.nonlinearity
    kwargs.update(changes)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*dropout option adds dropout.*")
        return type(m)(**kwargs, dtype=torch.float64).eval()


# --- symbolic shapes ---------------------------------------------------------------------


def eval_symbol(symbol: Sequence[str], values: dict[str, int]) -> list[int]:
    """('L·D', 'B', '3H') with L=2, D=2, B=3, H=20 -> [4, 3, 60]."""
    shape = []
    for dim in symbol:
        size = 1
        for term in dim.split("·"):
            coef, name = re.fullmatch(r"(\d*)([A-Z]?)", term).groups()
            size *= (int(coef) if coef else 1) * (values[name] if name else 1)
        shape.append(size)
    return shape


def _fmt_symbol(symbol: Sequence[str]) -> str:
    return "(" + ", ".join(symbol) + ("," if len(symbol) == 1 else "") + ")"


def _tensor_row(name: str, symbol: Sequence[str], tensor: torch.Tensor, values: dict, meaning: str) -> dict:
    expected = eval_symbol(symbol, values)
    shape = list(tensor.shape)
    return {"name": name, "symbol": _fmt_symbol(symbol), "shape": shape, "formula_shape": expected,
            "matches_formula": shape == expected, "meaning": meaning}


# --- identities: each compares two computed sides, so a wrong claim is reported as a failure ----------


Tensors = Union[torch.Tensor, Sequence[torch.Tensor]]


def compare(name: str, claim: str, left: Tensors, right: Tensors, tol: float = TOL) -> dict:
    """Pass/fail and the max absolute difference of `left` and `right` (same shapes required)."""
    left = [left] if isinstance(left, torch.Tensor) else list(left)
    right = [right] if isinstance(right, torch.Tensor) else list(right)
    check = {"name": name, "claim": claim, "passed": False, "max_abs_diff": None, "tolerance": tol}
    shapes_l, shapes_r = [list(t.shape) for t in left], [list(t.shape) for t in right]
    if shapes_l != shapes_r:
        check["detail"] = f"shapes differ: {shapes_l} vs {shapes_r}"
        return check
    diff = max([(a.double() - b.double()).abs().max().item() for a, b in zip(left, right) if a.numel()],
               default=0.0)
    check["max_abs_diff"] = diff
    check["passed"] = diff <= tol
    return check


def _last_step(output_tm: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(T, B, X) -> (B, X): each sequence's output at its own last valid step."""
    return output_tm[lengths - 1, torch.arange(output_tm.shape[1])]


def last_forward_identity(output_tm: torch.Tensor, h_n: torch.Tensor, lengths: torch.Tensor,
                          num_directions: int) -> dict:
    """The last layer's forward final state is output's forward half at each sequence's last step."""
    D, Hout = num_directions, h_n.shape[-1]
    row = "h_n[-2]" if D == 2 else "h_n[-1]"
    at = "t = len_b − 1 (each sequence's own last step)" if bool((lengths != output_tm.shape[0]).any()) \
        else "t = T − 1"
    half = "forward half output[..., :H]" if D == 2 else "output"
    return compare("last_layer_forward_final", f"{row} (last layer, forward) equals the {half} at {at}",
                   h_n[-D], _last_step(output_tm, lengths)[:, :Hout])


def first_backward_identity(output_tm: torch.Tensor, h_n: torch.Tensor) -> dict:
    """The last layer's backward final state is output's backward half at step 0 (where it ends)."""
    Hout = h_n.shape[-1]
    return compare("last_layer_backward_final",
                   "h_n[-1] (last layer, backward) equals the backward half output[..., H:] at t = 0",
                   h_n[-1], output_tm[0, :, Hout:])


def layout_identity(h_n: torch.Tensor, per_layer_h: torch.Tensor, num_layers: int,
                    c_n: Optional[torch.Tensor] = None, per_layer_c: Optional[torch.Tensor] = None) -> dict:
    """h_n.view(L, D, B, H)[l, d] is layer l's direction d; per_layer_*: (L, D, B, ·) from layers run alone."""
    L = num_layers
    left, right = [h_n.reshape(L, -1, *h_n.shape[1:])], [per_layer_h]
    if c_n is not None:
        left.append(c_n.reshape(L, -1, *c_n.shape[1:]))
        right.append(per_layer_c)
    what = "h_n and c_n" if c_n is not None else "h_n"
    return compare("h_n_layout",
                   f"{what}.view(L, D, B, ·)[l, d] is layer l, direction d (0 forward, 1 backward): equal to "
                   "each layer run alone with its own weights (*_l{l}, *_l{l}_reverse)", left, right)


def padding_identity(output_tm: torch.Tensor, lengths: torch.Tensor) -> dict:
    """Unpacked output is exactly zero at padding steps."""
    T = output_tm.shape[0]
    pad = torch.arange(T)[:, None] >= lengths[None, :]  # (T, B)
    values = output_tm[pad]
    return compare("padding_is_zero", "pad_packed_sequence fills output with 0 at padding steps (t ≥ len_b)",
                   values, torch.zeros_like(values))


# --- running the module ------------------------------------------------------------------


class Run(NamedTuple):
    output: torch.Tensor            # in the module's layout: (T, B, D·H) or (B, T, D·H); padded when packed
    h_n: torch.Tensor               # (L·D, B, H_out)
    c_n: Optional[torch.Tensor]     # (L·D, B, H) for LSTM
    packed_in: Optional[PackedSequence]
    packed_out: Optional[PackedSequence]


def _tm(x: torch.Tensor, batch_first: bool) -> torch.Tensor:
    return x.transpose(0, 1) if batch_first else x


def run_module(m: nn.RNNBase, x: torch.Tensor, lengths: Optional[Sequence[int]], h0: torch.Tensor,
               c0: Optional[torch.Tensor]) -> Run:
    """Run `m` on x (its own layout) with initial states; packed with enforce_sorted=False when lengths are given."""
    hx = (h0, c0) if c0 is not None else h0
    if lengths is None:
        output, state = m(x, hx)
        packed_in = packed_out = None
    else:
        T = x.shape[1] if m.batch_first else x.shape[0]
        packed_in = pack_padded_sequence(x, torch.tensor(lengths), batch_first=m.batch_first, enforce_sorted=False)
        packed_out, state = m(packed_in, hx)
        output, _ = pad_packed_sequence(packed_out, batch_first=m.batch_first, total_length=T)
    h_n, c_n = state if c0 is not None else (state, None)
    return Run(output, h_n, c_n, packed_in, packed_out)


def _single_layer(m: nn.RNNBase, layer: int) -> nn.RNNBase:
    """Layer `layer` of m as a one-layer module with the same weights."""
    D = 2 if m.bidirectional else 1
    in_size = m.input_size if layer == 0 else D * (m.proj_size or m.hidden_size)
    single = _same_kind(m, input_size=in_size, num_layers=1, dropout=0.0)
    suffix = re.compile(rf"_l{layer}(_reverse)?$")
    state = {re.sub(rf"_l{layer}(?=(_reverse)?$)", "_l0", name): p
             for name, p in m.named_parameters() if suffix.search(name)}
    single.load_state_dict(state)
    return single


def _slice_states(h0: torch.Tensor, c0: Optional[torch.Tensor], b: int):
    return h0[:, b:b + 1], (c0[:, b:b + 1] if c0 is not None else None)


# --- from-scratch cell steps (the --explain check) -----------------------------------------


def gru_step(x, h, w_ih, w_hh, b_ih, b_hh):
    """One nn.GRU step from its weights; rows in r|z|n order."""
    i_r, i_z, i_n = (x @ w_ih.T + b_ih).chunk(3, dim=-1)  # each (B, H)
    h_r, h_z, h_n = (h @ w_hh.T + b_hh).chunk(3, dim=-1)
    r = torch.sigmoid(i_r + h_r)
    z = torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)  # r ⊙ (W_hn h + b_hn): after the product, b_hn included
    return (1 - z) * n + z * h


def lstm_step(x, h, c, w_ih, w_hh, b_ih, b_hh, w_hr=None):
    """One nn.LSTM step from its weights; rows in i|f|g|o order. Returns (h, c)."""
    i, f, g, o = (x @ w_ih.T + b_ih + h @ w_hh.T + b_hh).chunk(4, dim=-1)  # each (B, H)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    if w_hr is not None:
        h = h @ w_hr.T  # (B, P)
    return h, c


def rnn_step(x, h, w_ih, w_hh, b_ih, b_hh, nonlinearity: str = "tanh"):
    """One nn.RNN step from its weights."""
    pre = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh
    return torch.tanh(pre) if nonlinearity == "tanh" else torch.relu(pre)


def explain(m: nn.RNNBase, batch: int) -> dict:
    """Cell equations, and one step (T = 1) of every layer and direction computed from m's own weights."""
    cell = _cell_name(m)
    L, D, H, P = m.num_layers, 2 if m.bidirectional else 1, m.hidden_size, m.proj_size
    Hout = P or H
    kw = dict(dtype=m.weight_ih_l0.dtype)
    x = torch.randn(batch, m.input_size, **kw)
    h0 = torch.randn(L * D, batch, Hout, **kw)
    c0 = torch.randn(L * D, batch, H, **kw) if cell == "lstm" else None

    def weight(name: str, layer: int, d: int, rows: int):
        value = getattr(m, f"{name}_l{layer}{'_reverse' if d else ''}", None)
        return value if value is not None else torch.zeros(rows, **kw)  # bias=False

    hs, cs, used = [], [], []
    inp = x  # (B, I), then (B, D·H_out) for layers above the first
    for layer in range(L):
        outs = []
        for d in range(D):
            k = layer * D + d
            G = len(GATES[cell]) * H
            w = [weight("weight_ih", layer, d, 0), weight("weight_hh", layer, d, 0),
                 weight("bias_ih", layer, d, G), weight("bias_hh", layer, d, G)]
            used += [n for n, _ in m.named_parameters() if re.search(rf"_l{layer}{'_reverse' if d else ''}$", n)]
            if cell == "gru":
                h = gru_step(inp, h0[k], *w)
            elif cell == "lstm":
                h, c = lstm_step(inp, h0[k], c0[k], *w, weight("weight_hr", layer, d, 0) if P else None)
                cs.append(c)
            else:
                h = rnn_step(inp, h0[k], *w, nonlinearity=m.nonlinearity)
            hs.append(h)
            outs.append(h)
        inp = torch.cat(outs, dim=-1)
    run = run_module(m, x.unsqueeze(1 if m.batch_first else 0), None, h0, c0)
    left = [torch.stack(hs), inp] + ([torch.stack(cs)] if cs else [])
    right = [run.h_n, run.output.reshape(batch, -1)] + ([run.c_n] if cs else [])
    step = compare("from_scratch_step",
                   f"one step (T = 1, random x, h0{', c0' if cs else ''}) of all {L} layer(s) × {D} direction(s) "
                   f"computed by hand from the module's own weights equals nn.{type(m).__name__}'s h_n"
                   f"{', c_n' if cs else ''} and output", left, right, tol=_tol(m))
    step["weights_used"] = used
    equations = list(EQUATIONS[cell])
    if cell == "lstm" and P:
        equations.append(PROJ_EQUATION)
    if cell == "rnn" and m.nonlinearity == "relu":
        equations = [e.replace("tanh", "relu") for e in equations]
    return {"cell": cell, "gate_order": "|".join(GATES[cell]), "equations": equations,
            "where": WHERE[cell] + COMMON_WHERE, "step": step}


def _tol(m: nn.Module) -> float:
    return TOL if next(m.parameters()).dtype == torch.float64 else MODEL_TOL


# --- parameters ------------------------------------------------------------------------------

ROLES = {"weight_ih": "input x_t → gates", "weight_hh": "previous state h_{t-1} → gates",
         "bias_ih": "bias of the input part", "bias_hh": "bias of the recurrent part",
         "weight_hr": "projection of h to P features (LSTM proj_size)"}


PARAM_NAME = re.compile(r"(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?")


def parameter_table(m: nn.RNNBase) -> dict:
    """Every parameter with symbolic shape and gate row blocks; per-layer, total and per-cell counts."""
    cell = _cell_name(m)
    L, D, H, P = m.num_layers, 2 if m.bidirectional else 1, m.hidden_size, m.proj_size
    out = "P" if P else "H"
    values = {"I": m.input_size, "H": H, "D": D, "P": P}
    G = len(GATES[cell])
    gh = f"{G}H" if G > 1 else "H"
    rows = []
    for name, p in m.named_parameters():
        kind, layer, rev = PARAM_NAME.fullmatch(name).groups()
        layer = int(layer)
        symbol = {"weight_ih": (gh, "I" if layer == 0 else f"D·{out}"), "weight_hh": (gh, out),
                  "bias_ih": (gh,), "bias_hh": (gh,), "weight_hr": ("P", "H")}[kind]
        gates = None if kind == "weight_hr" else [
            {"gate": g, "rows": [i * H, (i + 1) * H]} for i, g in enumerate(GATES[cell])]
        row = _tensor_row(name, symbol, p, values, ROLES[kind])
        row.update(layer=layer, direction="reverse" if rev else "forward", numel=p.numel(), gates=gates)
        rows.append(row)
    per_layer = []
    for layer in range(L):
        fwd = sum(r["numel"] for r in rows if r["layer"] == layer and r["direction"] == "forward")
        rev = sum(r["numel"] for r in rows if r["layer"] == layer and r["direction"] == "reverse")
        per_layer.append({"layer": layer, "forward": fwd, "reverse": rev if D == 2 else None, "total": fwd + rev})
    by_cell = []
    for name, cls in CELLS.items():
        # Same sizes, no projection; the meta device counts without allocating.
        other = cls(m.input_size, H, num_layers=L, bias=m.bias, bidirectional=m.bidirectional, device="meta")
        by_cell.append({"cell": name, "gates": len(GATES[name]),
                        "parameters": sum(p.numel() for p in other.parameters())})
    return {"tensors": rows, "per_layer": per_layer, "total": sum(r["numel"] for r in rows), "by_cell": by_cell}


def count_identities(by_cell: list[dict]) -> list[dict]:
    """GRU has 3 gate blocks where LSTM has 4 and RNN 1: every weight and bias scales by that."""
    n = {row["cell"]: float(row["parameters"]) for row in by_cell}
    t = torch.tensor
    return [
        compare("gru_is_3/4_lstm", "GRU parameters = 3/4 of LSTM parameters at the same sizes (3 gate blocks vs 4)",
                t(n["gru"]), t(0.75 * n["lstm"]), tol=0.0),
        compare("rnn_is_1/4_lstm", "RNN parameters = 1/4 of LSTM parameters at the same sizes (1 block vs 4)",
                t(n["rnn"]), t(0.25 * n["lstm"]), tol=0.0),
    ]


def layer_identities(m: nn.RNNBase, x: torch.Tensor, lengths: Optional[Sequence[int]], h0: torch.Tensor,
                     c0: Optional[torch.Tensor], run: Run) -> list[dict]:
    """Every identity of one run of `m` on x (its layout) from h0/c0, against other runs of the same weights."""
    L, D, H = m.num_layers, 2 if m.bidirectional else 1, m.hidden_size
    Hout, bf = m.proj_size or H, m.batch_first
    B, T = h0.shape[1], x.shape[1 if bf else 0]
    lens = torch.tensor(lengths if lengths is not None else [T] * B)
    out_tm = _tm(run.output, bf)  # (T, B, D·H_out)

    # Each layer alone, fed the previous one's output: proves the layer/direction layout of h_n.
    prev, per_h, per_c = x, [], []
    h0v, c0v = h0.view(L, D, B, Hout), (c0.view(L, D, B, H) if c0 is not None else None)
    for layer in range(L):
        r = run_module(_single_layer(m, layer), prev, lengths, h0v[layer],
                       c0v[layer] if c0v is not None else None)
        per_h.append(r.h_n)
        per_c.append(r.c_n)
        prev = r.output
    identities = [
        layout_identity(run.h_n, torch.stack(per_h), L, run.c_n,
                        torch.stack(per_c) if run.c_n is not None else None),
        compare("output_is_last_layer", "output is the last layer's per-step output only "
                "(running the layers one at a time ends in the same tensor)", run.output, prev),
        last_forward_identity(out_tm, run.h_n, lens, D),
    ]
    if D == 2:
        identities.append(first_backward_identity(out_tm, run.h_n))

    # Same weights, the other batch_first: only input and output are transposed.
    twin = _same_kind(m, batch_first=not bf)
    twin.load_state_dict(m.state_dict())
    other = run_module(twin, x.transpose(0, 1), lengths, h0, c0)
    identities += [
        compare("batch_first_output", f"batch_first={not bf} with the same weights gives output.transpose(0, 1)",
                _tm(other.output, not bf), out_tm),
        compare("batch_first_h_n", f"batch_first={not bf} gives the identical h_n{', c_n' if c0 is not None else ''}: "
                "(L·D, B, ·) either way", [other.h_n] + ([other.c_n] if c0 is not None else []),
                [run.h_n] + ([run.c_n] if c0 is not None else [])),
    ]
    if lengths is not None:
        identities.append(padding_identity(out_tm, lens))

    # Each sequence alone, without padding: the batch (packed or not) changes nothing.
    got, ref = [], []
    for b, n in enumerate(lens.tolist()):
        xb = _tm(x, bf)[:n, b:b + 1]  # (n, 1, I)
        hb, cb = _slice_states(h0, c0, b)
        alone = run_module(m, _tm(xb, bf), None, hb, cb)
        got += [out_tm[:n, b], run.h_n[:, b]] + ([run.c_n[:, b]] if c0 is not None else [])
        ref += [_tm(alone.output, bf)[:, 0], alone.h_n[:, 0]] + ([alone.c_n[:, 0]] if c0 is not None else [])
    what = "the packed batch" if lengths is not None else "the batch"
    identities.append(compare("sequence_alone", f"each sequence run alone (its own length, no padding) gives the "
                              f"same output steps and final states as in {what}", got, ref))
    return identities


# --- the layer report -----------------------------------------------------------------------------


def analyze_layer(module: nn.RNNBase, batch: int, seq_len: int, lengths: Optional[Sequence[int]] = None,
                  want_explain: bool = False) -> dict:
    """Shapes, parameters and identities of `module` (left untouched: a float64 copy is run, in eval mode)."""
    m = copy.deepcopy(module).double().eval()
    cell = _cell_name(m)
    L, D, H, P = m.num_layers, 2 if m.bidirectional else 1, m.hidden_size, m.proj_size
    I, B, T, bf = m.input_size, batch, seq_len, m.batch_first
    Hout, out = (P or H), ("P" if P else "H")
    values = {"L": L, "D": D, "B": B, "T": T, "I": I, "H": H, "P": P}
    lens = torch.tensor(lengths if lengths is not None else [T] * B)
    if lengths is not None:
        values.update(N=int(lens.sum()), M=int(lens.max()))
    f64 = dict(dtype=torch.float64)

    x = torch.randn(*((B, T) if bf else (T, B)), I, **f64)  # padding steps are random too: packing skips them
    h0 = torch.randn(L * D, B, Hout, **f64)
    c0 = torch.randn(L * D, B, H, **f64) if cell == "lstm" else None
    run = run_module(m, x, lengths, h0, c0)

    seq = ("B", "T") if bf else ("T", "B")
    layout = "batch-first" if bf else "time-major (batch_first=False)"
    tensors = [
        _tensor_row("input", (*seq, "I"), x, values, f"the input sequence, {layout}"
                    + ("; packed before the call" if lengths is not None else "")),
        _tensor_row("h0", ("L·D", "B", out), h0, values,
                    "initial hidden state per layer and direction (zeros when omitted); never batch-first"),
    ]
    if c0 is not None:
        tensors.append(_tensor_row("c0", ("L·D", "B", "H"), c0, values, "initial cell state (zeros when omitted)"))
    tensors.append(_tensor_row(
        "output", (*seq, f"D·{out}"), run.output, values,
        "last layer's hidden state at every step" + (", [forward | backward] on the last dim" if D == 2 else "")
        + ("; from pad_packed_sequence(total_length=T), 0 at padding" if lengths is not None else "")))
    tensors.append(_tensor_row("h_n", ("L·D", "B", out), run.h_n, values,
                               "final hidden state of every layer and direction, row l·D + d; "
                               "batch on dim 1 even with batch_first"))
    if run.c_n is not None:
        tensors.append(_tensor_row("c_n", ("L·D", "B", "H"), run.c_n, values,
                                   "final cell state of every layer and direction"
                                   + (" (H, not P: only h is projected)" if P else "")))

    packed = None
    if lengths is not None:
        packed = {
            "input_data": _tensor_row("packed input .data", ("N", "I"), run.packed_in.data, values,
                                      "the valid steps only, step by step, longest sequence first"),
            "batch_sizes": {**_tensor_row("batch_sizes", ("M",), run.packed_in.batch_sizes, values,
                                          "how many sequences are still running at each step"),
                            "values": run.packed_in.batch_sizes.tolist()},
            "sorted_indices": run.packed_in.sorted_indices.tolist(),
            "unsorted_indices": run.packed_in.unsorted_indices.tolist(),
            "output_data": _tensor_row("packed output .data", ("N", f"D·{out}"), run.packed_out.data, values,
                                       "the module's PackedSequence output before unpacking"),
            "padding_mask": [[t >= n for t in range(T)] for n in lens.tolist()],  # [b][t], True at padding
        }

    identities = layer_identities(m, x, lengths, h0, c0, run)
    params = parameter_table(m)
    identities += count_identities(params["by_cell"])

    report = {
        "mode": "layer",
        "module": f"nn.{type(module).__name__}",
        "settings": {"cell": cell, "input_size": I, "hidden_size": H, "num_layers": L, "bidirectional": D == 2,
                     "batch_first": bf, "batch": B, "seq_len": T, "lengths": list(lengths) if lengths else None,
                     "bias": m.bias, "dropout": m.dropout, "proj_size": P},
        "symbols": {k: v for k, v in values.items() if k != "P" or P},
        "dtype": "float64",
        "tensors": tensors,
        "packed": packed,
        "parameters": params,
        "identities": identities,
        "explain": explain(m, B) if want_explain else None,
    }
    report["all_passed"] = _all_passed(report)
    return report


def _all_passed(report: dict) -> bool:
    checks = list(report.get("identities", [])) + list(report.get("checks", []))
    if report.get("explain"):
        checks.append(report["explain"]["step"])
    rows = report.get("tensors", []) + report["parameters"].get("tensors", [])
    shapes_ok = all(t["matches_formula"] for t in rows)
    nested = report.get("encoder")
    return all(c["passed"] for c in checks) and shapes_ok and (nested is None or nested["all_passed"])


@contextlib.contextmanager
def _one_thread():
    """Tiny tensors gain nothing from intra-op threads, and on a busy machine each parallel
    region can wait a scheduler slice for its second thread (0.2 s per RNN call measured)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _warn(notes: list[str], message: str) -> None:
    warnings.warn(message, UserWarning, stacklevel=3)
    notes.append(message)


def layer_report(spec: LayerSpec = LayerSpec(), want_explain: bool = False, seed: int = 0) -> dict:
    """The full report for a real nn.GRU / nn.LSTM / nn.RNN with these settings."""
    spec, notes = check_spec(spec)
    for note in notes:
        warnings.warn(note, UserWarning, stacklevel=2)
    # fork_rng: reproducible, and the caller's RNG is left alone.
    with torch.random.fork_rng(devices=[]), _one_thread():
        torch.manual_seed(seed)
        module = build_layer(spec)
        report = analyze_layer(module, spec.batch, spec.seq_len, spec.lengths, want_explain)
    report["warnings"] = notes
    return report


# --- the config report --------------------------------------------------------------------------


def _describe(value):
    """Shapes of whatever a module takes or returns, as plain data."""
    if isinstance(value, torch.Tensor):
        return list(value.shape)
    if isinstance(value, PackedSequence):
        return {"packed_data": list(value.data.shape), "batch_sizes": value.batch_sizes.tolist()}
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return {k: _describe(v) for k, v in zip(value._fields, value)}
    if isinstance(value, (tuple, list)):
        return [_describe(v) for v in value]
    return None


def trace_model(model: nn.Module, *inputs, **kw_inputs) -> tuple[list[dict], dict]:
    """Run model(*inputs) with hooks on every submodule: rows in call order, and each module's raw output."""
    rows, pending, outputs, handles = [], {}, {}, []
    for name, mod in model.named_modules():
        if not name:
            continue

        def pre(mod, args, name=name):
            row = {"module": name, "type": type(mod).__name__, "depth": name.count("."),
                   "input": _describe(args if len(args) != 1 else args[0]),
                   "parameters": sum(p.numel() for p in mod.parameters()),
                   "own_parameters": sum(p.numel() for p in mod.parameters(recurse=False))}
            rows.append(row)
            pending.setdefault(name, []).append(row)

        def post(mod, args, output, name=name):
            pending[name].pop()["output"] = _describe(output)
            outputs[name] = output

        handles += [mod.register_forward_pre_hook(pre), mod.register_forward_hook(post)]
    try:
        with torch.no_grad():
            outputs[""] = model(*inputs, **kw_inputs)
    finally:
        for h in handles:
            h.remove()
    return rows, outputs


def _model_checks(model: nn.Module, enc, lens: torch.Tensor, T: int, bidirectional: bool) -> tuple[int, list, list]:
    """Total parameters, per-module counts, and the checks every traced model gets: counts add up,
    encoder.final is the last layer's final state(s), encoder outputs are zero at padding."""
    from grutool.modules.masking import length_mask

    total = sum(p.numel() for p in model.parameters())
    by_module = [{"module": name, "type": type(mod).__name__, "parameters": sum(p.numel() for p in mod.parameters())}
                 for name, mod in model.named_children()]
    final_ref = torch.cat([enc.h_n[-2], enc.h_n[-1]], dim=-1) if bidirectional else enc.h_n[-1]
    pad = ~length_mask(lens, T, enc.outputs.device)
    t = torch.tensor
    checks = [
        compare("per_module_counts_add_up", "the per-module parameter counts add up to the model's total",
                t(float(sum(r["parameters"] for r in by_module))), t(float(total)), tol=0.0),
        compare("encoder_final", "encoder.final is " + ("cat(h_n[-2], h_n[-1])" if bidirectional else "h_n[-1]")
                + " (what pooling 'last' uses)", enc.final, final_ref, tol=0.0),
        compare("encoder_padding_zero", "encoder.outputs is 0 at padding steps", enc.outputs[pad],
                torch.zeros_like(enc.outputs[pad]), tol=0.0),
    ]
    return total, by_module, checks


def _task_model_report(path, cfg, prepared, B: int, want_explain: bool, warned: list[str]) -> dict:
    """Tagger, joint, seq2seq and char-feature classifier models: trace the first B training examples (real token ids,
    characters and targets, as `train` collates them) through the model `train` builds."""
    from grutool.data.batching import collate
    from grutool.tasks import get_task

    notes: list[str] = []
    for message in warned:
        _warn(notes, message)
    split = prepared.splits["train"]
    index = list(range(min(B, len(split))))
    batch = collate(split, index)
    lens, T = batch.lengths, batch.ids.shape[1]
    V, C = len(prepared.vocab), len(prepared.labels)
    with torch.random.fork_rng(devices=[]), _one_thread():
        torch.manual_seed(cfg.train.seed)  # as train does: the same initial weights
        model = get_task(cfg.task).build_model(cfg, prepared)
        model.eval()
        rows, outputs = trace_model(model, batch.ids, batch.lengths, batch.targets, **batch.extra_inputs())
        enc = outputs["encoder"]
        encoder = analyze_layer(model.encoder.rnn, len(index), T, lens.tolist(), want_explain)
    m = cfg.model
    D = 2 if m.bidirectional else 1
    total, by_module, checks = _model_checks(model, enc, lens, T, m.bidirectional)
    result = outputs[""][0]
    report = {
        "mode": "config", "config": str(path), "task": cfg.task, "vocab_size": V, "num_classes": C,
        "labels": list(prepared.labels.itos), "model": cfg.model.model_dump(),
        "symbols": {"B": len(index), "T": T, "V": V, "E": m.embedding_dim, "L": m.num_layers, "D": D,
                    "H": m.hidden_size, "C": C},
        "batch": {"ids": list(batch.ids.shape), "lengths": lens.tolist(), "source": "first training examples"},
        "trace": rows,
        "logits": _describe(result),
        "parameters": {"total": total, "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
                       "by_module": by_module},
        "checks": checks, "encoder": encoder, "warnings": notes,
    }
    report["all_passed"] = _all_passed(report)
    return report


def config_report(path: Union[str, Path], batch: Optional[int] = None, seq_len: Optional[int] = None,
                  lengths: Optional[Sequence[int]] = None, want_explain: bool = False, seed: int = 0) -> dict:
    """Build the model exactly as `train` does and trace a random batch of token ids through it."""
    from grutool.config_file import load_config
    from grutool.modules.masking import length_mask
    from grutool.tasks import get_task

    B, T, lengths = resolve_batch(batch, seq_len, lengths)
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cfg = load_config(path)
        task = get_task(cfg.task)
        prepared = task.prepare(cfg)  # reads the training data: the vocabulary sets the size
    if task.traces_real_examples or cfg.model.char_features:
        # Models that read more than token ids (characters, targets) are traced on real examples.
        kind = cfg.task if task.traces_real_examples else f"{cfg.task} with char features"
        if lengths is not None or seq_len is not None:
            raise UserError(f"{path}: --lengths/--seq-len apply to classifier configs without char features; a "
                            f"{kind} model is traced on the first --batch examples of its training data")
        return _task_model_report(path, cfg, prepared, B, want_explain, [str(w.message) for w in caught
                                                                          if issubclass(w.category, UserWarning)])
    for w in caught:
        if issubclass(w.category, UserWarning):
            _warn(notes, str(w.message))
    V, C = len(prepared.vocab), len(prepared.labels)
    lens = torch.tensor(lengths if lengths is not None else [T] * B)
    with torch.random.fork_rng(devices=[]), _one_thread():
        torch.manual_seed(cfg.train.seed)  # as train does: the same initial weights
        model = task.build_model(cfg, prepared)
        model.eval()
        torch.manual_seed(seed)
        low = 2 if V > 2 else 1  # real tokens: not <pad> (0) nor, if possible, <unk> (1)
        ids = torch.randint(low, V, (B, T))  # (B, T)
        ids = ids.masked_fill(~length_mask(lens, T, ids.device), 0)  # <pad> after each length
        rows, outputs = trace_model(model, ids, lens)
        logits, _ = outputs[""]
        enc = outputs["encoder"]
        with torch.no_grad():
            one_by_one = torch.cat([model(ids[b:b + 1, :n], lens[b:b + 1])[0] for b, n in enumerate(lens.tolist())])
        encoder = analyze_layer(model.encoder.rnn, B, T, lens.tolist(), want_explain)

    m = cfg.model
    D = 2 if m.bidirectional else 1
    total, by_module, checks = _model_checks(model, enc, lens, T, m.bidirectional)
    checks += [
        compare("batch_equals_one_by_one", "logits of the batch equal logits of each sequence run alone",
                logits, one_by_one, tol=MODEL_TOL),
    ]
    report = {
        "mode": "config",
        "config": str(path),
        "task": cfg.task,
        "vocab_size": V,
        "num_classes": C,
        "labels": list(prepared.labels.itos),
        "model": cfg.model.model_dump(),
        "symbols": {"B": B, "T": T, "V": V, "E": m.embedding_dim, "L": m.num_layers, "D": D, "H": m.hidden_size,
                    "C": C},
        "batch": {"ids": list(ids.shape), "lengths": lens.tolist()},
        "trace": rows,
        "logits": list(logits.shape),
        "parameters": {"total": total, "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
                       "by_module": by_module},
        "checks": checks,
        "encoder": encoder,
        "warnings": notes,
    }
    report["all_passed"] = _all_passed(report)
    return report
