"""The layer explainer: every tensor shape of a GRU / LSTM / RNN layer, proven by running the module `train` builds.

`layer_report(LayerSpec(...))` builds the module (`build_layer`, the one place a spec becomes a module:
grutool's `grutool.modules.rnn` class for the cell, which runs PyTorch's op or grutool's fused kernel as
its `kernel` says) and reports which code ran (`module`, `path`, `paths`), tensors with symbolic and
concrete shapes, the packed layout when lengths are given, every parameter with its gate rows, and
identities (e.g. "h_n[-2] is output's forward half at the last step") checked on random input, each with
its max absolute difference so that a wrong claim shows up as a failure. `analyze_layer` does the same for
any module, such as the encoder inside a configured model. Checks run on a float64 copy of the module so
the tolerance can be tight.
"""

from __future__ import annotations

import copy
import re
import warnings
from collections import Counter
from contextlib import contextmanager
from typing import Iterator, NamedTuple, Optional, Sequence

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from grutool.cells import CELL_NAMES, get_cell
from grutool.shapes import reference
from grutool.shapes.checks import MODEL_TOL, TOL, all_passed, compare, one_thread
from grutool.shapes.reference import COMMON_WHERE, EQUATIONS, GATES, PROJ_EQUATION, WHERE
from grutool.shapes.spec import LayerSpec, check_spec


# --- the module ---------------------------------------------------------------------------


def build_layer(spec: LayerSpec) -> nn.RNNBase:
    """The real module for a spec (weights from the current torch seed)."""
    kwargs = dict(num_layers=spec.num_layers, bias=spec.bias, batch_first=spec.batch_first,
                  dropout=spec.dropout, bidirectional=spec.bidirectional)
    if spec.proj_size:
        kwargs["proj_size"] = spec.proj_size
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*dropout option adds dropout.*")  # reported by check_spec
        if spec.proj_size:  # a projection is nn.LSTM's alone
            return nn.LSTM(spec.input_size, spec.hidden_size, **kwargs)
        # The module `train` would build (grutool.cells); kernel auto: grutool.kernels.AUTO.
        return get_cell(spec.cell).build(spec.input_size, spec.hidden_size, num_layers=spec.num_layers,
                                         bidirectional=spec.bidirectional, dropout=spec.dropout, bias=spec.bias,
                                         batch_first=spec.batch_first, kernel=spec.kernel)


def _cell_name(module: nn.Module) -> str:
    for name in CELL_NAMES:
        if isinstance(module, getattr(nn, name.upper())):  # grutool's fused modules subclass nn.GRU / LSTM / RNN
            return name
    raise TypeError(f"not one of {list(CELL_NAMES)}: {type(module).__name__}")


# What a forward call runs (grutool's modules say it with `path(input)`; PyTorch's own always run their op).
PATHS = {"native": "PyTorch's kernel", "fused": "grutool's fused CPU kernel",
         "compiled": "grutool's compiled C++ CPU kernel",
         "stack": "grutool's layer stack over PyTorch's op per layer"}


def path_of(m: nn.Module, input) -> str:
    """`native`, `fused` or `stack`: what `m(input)` runs (the choice `kernel: auto` makes per call)."""
    return m.path(input) if hasattr(m, "path") else "native"


@contextmanager
def recorded_paths() -> Iterator[Counter]:
    """Counts every recurrent layer's forward call inside the block by the path it ran (`PATHS`), the twins
    and single layers the identities build included."""
    counts: Counter = Counter()

    def hook(module, args):
        if isinstance(module, nn.RNNBase):
            counts[path_of(module, args[0])] += 1

    handle = torch.nn.modules.module.register_module_forward_pre_hook(hook)
    try:
        yield counts
    finally:
        handle.remove()


def module_text(module: nn.Module, path: str) -> str:
    """The module that ran, for the report's header: PyTorch's class when its own op ran, else grutool's."""
    torch_name = f"nn.{_cell_name(module).upper()}"
    if not hasattr(module, "kernel"):
        return torch_name
    own = f"{type(module).__module__}.{type(module).__name__}"
    if path == "native":  # grutool's class hands the call to PyTorch's forward unchanged
        return f"{torch_name} (PyTorch's kernel: {own} with kernel {module.kernel} calls {torch_name}.forward)"
    return f"{own} ({PATHS[path]}, kernel {module.kernel}; {torch_name}'s parameters and results)"


def _same_kind(m: nn.RNNBase, **changes) -> nn.RNNBase:
    """A module like `m` with some constructor arguments changed (fresh weights, float64)."""
    kwargs = dict(input_size=m.input_size, hidden_size=m.hidden_size, num_layers=m.num_layers, bias=m.bias,
                  batch_first=m.batch_first, dropout=m.dropout, bidirectional=m.bidirectional)
    if isinstance(m, nn.LSTM):
        kwargs["proj_size"] = m.proj_size
    if isinstance(m, nn.RNN):
        kwargs["nonlinearity"] = m.nonlinearity
    if hasattr(m, "kernel"):  # grutool's module: the same kernel (and the GRU's layer stack)
        kwargs["kernel"] = m.kernel
    if hasattr(m, "residual"):
        kwargs.update(layer_norm=m.layer_norms is not None, residual=m.residual)
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


def _last_step(output_tm: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(T, B, X) -> (B, X): each sequence's output at its own last valid step."""
    return output_tm[lengths - 1, torch.arange(output_tm.shape[1])]


def last_forward_identity(output_tm: torch.Tensor, h_n: torch.Tensor, lengths: torch.Tensor,
                          num_directions: int, width: str = "H") -> dict:
    """The last layer's forward final state is output's forward half at each sequence's last step; `width`: the
    symbol of a direction's width (H, or P for an LSTM with proj_size)."""
    D, Hout = num_directions, h_n.shape[-1]
    row = "h_n[-2]" if D == 2 else "h_n[-1]"
    at = "t = len_b − 1 (each sequence's own last step)" if bool((lengths != output_tm.shape[0]).any()) \
        else "t = T − 1"
    half = f"forward half output[..., :{width}]" if D == 2 else "output"
    return compare("last_layer_forward_final", f"{row} (last layer, forward) equals the {half} at {at}",
                   h_n[-D], _last_step(output_tm, lengths)[:, :Hout])


def first_backward_identity(output_tm: torch.Tensor, h_n: torch.Tensor, width: str = "H") -> dict:
    """The last layer's backward final state is output's backward half at step 0 (where it ends)."""
    Hout = h_n.shape[-1]
    return compare("last_layer_backward_final",
                   f"h_n[-1] (last layer, backward) equals the backward half output[..., {width}:] at t = 0",
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
    plain = dict(layer_norm=False, residual=False) if hasattr(m, "residual") else {}  # the recurrence alone
    single = _same_kind(m, input_size=in_size, num_layers=1, dropout=0.0, **plain)
    suffix = re.compile(rf"_l{layer}(_reverse)?$")
    state = {re.sub(rf"_l{layer}(?=(_reverse)?$)", "_l0", name): p
             for name, p in m.named_parameters() if suffix.search(name)}
    single.load_state_dict(state)
    return single


def _slice_states(h0: torch.Tensor, c0: Optional[torch.Tensor], b: int):
    return h0[:, b:b + 1], (c0[:, b:b + 1] if c0 is not None else None)


# --- the from-scratch step (the --explain check) -----------------------------------------------


def explain(m: nn.RNNBase, batch: int) -> dict:
    """Cell equations, and one step (T = 1) of every layer and direction computed from m's own weights."""
    cell = _cell_name(m)
    L, D, H, P = m.num_layers, 2 if m.bidirectional else 1, m.hidden_size, m.proj_size
    Hout = P or H
    kw = dict(dtype=m.weight_ih_l0.dtype)
    x = torch.randn(batch, m.input_size, **kw)
    h0 = torch.randn(L * D, batch, Hout, **kw)
    c0 = torch.randn(L * D, batch, H, **kw) if get_cell(cell).cell_state else None

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
                h = reference.gru_step(inp, h0[k], *w)
            elif cell == "lstm":
                h, c = reference.lstm_step(inp, h0[k], c0[k], *w, weight("weight_hr", layer, d, 0) if P else None)
                cs.append(c)
            else:
                h = reference.rnn_step(inp, h0[k], *w, nonlinearity=m.nonlinearity)
            hs.append(h)
            outs.append(h)
        y = torch.cat(outs, dim=-1)
        if getattr(m, "residual", False) and y.shape[-1] == inp.shape[-1]:
            y = y + inp  # grutool's GRU stack: the layer's input added to its output
        norms = getattr(m, "layer_norms", None)
        if norms is not None and layer < L - 1:
            mean, var = y.mean(-1, keepdim=True), y.var(-1, unbiased=False, keepdim=True)
            y = (y - mean) / torch.sqrt(var + norms[layer].eps) * norms[layer].weight + norms[layer].bias
            used += [f"layer_norms.{layer}.weight", f"layer_norms.{layer}.bias"]
        inp = y
    x_step = x.unsqueeze(1 if m.batch_first else 0)
    run = run_module(m, x_step, None, h0, c0)
    left = [torch.stack(hs), inp] + ([torch.stack(cs)] if cs else [])
    right = [run.h_n, run.output.reshape(batch, -1)] + ([run.c_n] if cs else [])
    step = compare("from_scratch_step",
                   f"one step (T = 1, random x, h0{', c0' if cs else ''}) of all {L} layer(s) × {D} direction(s) "
                   f"computed by hand from the module's own weights equals the module's h_n{', c_n' if cs else ''} "
                   f"and output ({PATHS[path_of(m, x_step)]})", left, right, tol=_tol(m))
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
NORM_NAME = re.compile(r"layer_norms\.(\d+)\.(weight|bias)")  # grutool's GRU with layer_norm


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
        norm = NORM_NAME.fullmatch(name)
        if norm:  # LayerNorm(D·H) on layer k's output, before layer k + 1
            layer, what = int(norm.group(1)), norm.group(2)
            row = _tensor_row(name, (f"D·{out}",), p, values,
                              f"LayerNorm {'gain' if what == 'weight' else 'shift'} on layer {layer}'s output "
                              f"before layer {layer + 1} (model.layer_norm)")
            row.update(layer=layer, direction="between", numel=p.numel(), gates=None)
            rows.append(row)
            continue
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
        norm = sum(r["numel"] for r in rows if r["layer"] == layer and r["direction"] == "between")
        per_layer.append({"layer": layer, "forward": fwd, "reverse": rev if D == 2 else None,
                          "total": fwd + rev + norm})
    by_cell = []
    for name in CELL_NAMES:
        cls = getattr(nn, name.upper())
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
    # grutool's GRU stack may add the layer's input (residual) and a LayerNorm between layers: the
    # same steps are applied here, outside the module, to what each layer alone returns.
    prev, per_h, per_c = x, [], []
    h0v, c0v = h0.view(L, D, B, Hout), (c0.view(L, D, B, H) if c0 is not None else None)
    norms, residual = getattr(m, "layer_norms", None), getattr(m, "residual", False)
    valid = (torch.arange(T)[:, None] < lens[None, :])[..., None]  # (T, B, 1): False at padding
    valid = valid.transpose(0, 1) if bf else valid
    for layer in range(L):
        r = run_module(_single_layer(m, layer), prev, lengths, h0v[layer],
                       c0v[layer] if c0v is not None else None)
        per_h.append(r.h_n)
        per_c.append(r.c_n)
        raw, y = r.output, r.output
        if residual and y.shape[-1] == prev.shape[-1]:
            y = y + prev
        if norms is not None and layer < L - 1:
            y = norms[layer](y)
        prev = y * valid if lengths is not None else y  # padding stays 0, as after pad_packed_sequence
    last = _tm(raw, bf)  # the last layer's recurrent output (before any residual)
    with_residual = not torch.equal(raw, prev)
    identities = [
        layout_identity(run.h_n, torch.stack(per_h), L, run.c_n,
                        torch.stack(per_c) if run.c_n is not None else None),
        compare("output_is_last_layer", "output is the last layer's per-step output only "
                "(running the layers one at a time ends in the same tensor"
                + (", with the residual and LayerNorm steps between them)" if norms is not None or residual else ")"),
                run.output, prev),
        last_forward_identity(last, run.h_n, lens, D, "P" if Hout != H else "H"),
    ]
    if D == 2:
        identities.append(first_backward_identity(last, run.h_n, "P" if Hout != H else "H"))
    if with_residual:
        for row in identities[-2:]:
            row["claim"] += " (of the last layer's recurrent output: output minus its residual input)"

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
    Hout = P or H
    values = {"L": L, "D": D, "B": B, "T": T, "I": I, "H": H, "P": P}
    lens = torch.tensor(lengths if lengths is not None else [T] * B)
    if lengths is not None:
        values.update(N=int(lens.sum()), M=int(lens.max()))
    f64 = dict(dtype=torch.float64)

    x = torch.randn(*((B, T) if bf else (T, B)), I, **f64)  # padding steps are random too: packing skips them
    h0 = torch.randn(L * D, B, Hout, **f64)
    c0 = torch.randn(L * D, B, H, **f64) if get_cell(cell).cell_state else None
    with recorded_paths() as paths:
        run = run_module(m, x, lengths, h0, c0)
        path = path_of(m, run.packed_in if run.packed_in is not None else x)  # the call the tables show
        report = _layer_tables(m, x, lengths, h0, c0, run, values, want_explain)
    report = {"mode": "layer", "module": module_text(module, path), "path": path, "paths": dict(paths), **report}
    report["all_passed"] = all_passed(report)
    return report


def _layer_tables(m: nn.RNNBase, x: torch.Tensor, lengths: Optional[Sequence[int]], h0: torch.Tensor,
                  c0: Optional[torch.Tensor], run: Run, values: dict, want_explain: bool) -> dict:
    """`analyze_layer`'s report after the header: tensors, packing, parameters, identities, --explain."""
    cell = _cell_name(m)
    L, D, H, P, I = values["L"], values["D"], values["H"], values["P"], values["I"]
    B, T, bf = values["B"], values["T"], m.batch_first
    out = "P" if P else "H"
    lens = torch.tensor(lengths if lengths is not None else [T] * B)

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

    return {
        "settings": {"cell": cell, "input_size": I, "hidden_size": H, "num_layers": L, "bidirectional": D == 2,
                     "batch_first": bf, "batch": B, "seq_len": T, "lengths": list(lengths) if lengths else None,
                     "bias": m.bias, "dropout": m.dropout, "proj_size": P, "kernel": getattr(m, "kernel", "native"),
                     "layer_norm": getattr(m, "layer_norms", None) is not None, "residual": getattr(m, "residual", False)},
        "symbols": {k: v for k, v in values.items() if k != "P" or P},
        "dtype": "float64",
        "tensors": tensors,
        "packed": packed,
        "parameters": params,
        "identities": identities,
        "explain": explain(m, B) if want_explain else None,
    }


def _check_fits(spec: LayerSpec) -> None:
    """Refuse, before allocating, sizes whose weights (float32, a float64 copy and its twin) and float64
    activations cannot fit in free memory (grutool.training.memory; parameters counted on meta)."""
    from grutool.training import memory

    with torch.device("meta"):
        parameters = sum(p.numel() for p in build_layer(spec).parameters())
    values = memory.activation_values(spec.batch, spec.seq_len, spec.input_size, spec.hidden_size, spec.num_layers,
                                      spec.bidirectional, get_cell(spec.cell).gates, train=False)
    memory.check_run_fits(f"layer ({parameters:,} parameters)", parameters * (4 + 8 + 8), values * 8,
                          torch.device("cpu"), f"lower --batch ({spec.batch}), --seq-len ({spec.seq_len}), "
                          f"--hidden-size ({spec.hidden_size}), --input-size ({spec.input_size}) or --layers "
                          f"({spec.num_layers})")


def layer_report(spec: LayerSpec = LayerSpec(), want_explain: bool = False, seed: int = 0) -> dict:
    """The full report for the GRU / LSTM / RNN layer these settings build (`build_layer`)."""
    spec, notes = check_spec(spec)
    for note in notes:
        warnings.warn(note, UserWarning, stacklevel=2)
    _check_fits(spec)
    # fork_rng: reproducible, and the caller's RNG is left alone.
    with torch.random.fork_rng(devices=[]), one_thread():
        torch.manual_seed(seed)
        module = build_layer(spec)
        report = analyze_layer(module, spec.batch, spec.seq_len, spec.lengths, want_explain)
    report["warnings"] = notes
    return report
