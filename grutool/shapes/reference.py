"""From-scratch reference cells: one step of nn.GRU, nn.LSTM and nn.RNN computed from the module's own weights.

What `grutool shapes --explain` checks the real module against, and what tests use as the reference a
GRU must match (PyTorch's gate order and reset placement, written out by hand). Also the equations and
the gate row blocks the explainer prints. Needs torch only: no grutool module, no nn.Module.
"""

from __future__ import annotations

import torch

# PyTorch's gate order: the rows of weight_ih / weight_hh / biases are these blocks of H rows.
GATES = {"gru": ["r", "z", "n"], "lstm": ["i", "f", "g", "o"], "rnn": ["h"]}

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
    "with bias=False the b terms are 0",
]
PROJ_EQUATION = "h_t = W_hr (o_t ⊙ tanh(c_t))   (proj_size > 0: W_hr = weight_hr_l{k}, (P, H))"


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


def gru_stack(x, params: dict, num_layers: int, bidirectional: bool, h0=None):
    """A whole nn.GRU (no packing, no padding) from `gru_step`: x (T, B, I), `params` named as
    nn.GRU.named_parameters() names them (weight_ih_l0, ..., *_reverse; bias_* optional).
    Returns (output (T, B, D·H), h_n (L·D, B, H)), as nn.GRU returns them."""
    D, T, B = 2 if bidirectional else 1, x.shape[0], x.shape[1]
    H = params["weight_hh_l0"].shape[1]
    if h0 is None:
        h0 = x.new_zeros(num_layers * D, B, H)
    finals, inp = [], x
    for layer in range(num_layers):
        outs = []
        for d in range(D):
            key = f"_l{layer}{'_reverse' if d else ''}"
            w_ih, w_hh = params[f"weight_ih{key}"], params[f"weight_hh{key}"]
            zeros = x.new_zeros(3 * H)  # bias=False
            b_ih, b_hh = params.get(f"bias_ih{key}", zeros), params.get(f"bias_hh{key}", zeros)
            h, steps = h0[layer * D + d], [None] * T
            for t in (reversed(range(T)) if d else range(T)):  # the reverse direction runs from T-1 down to 0
                h = gru_step(inp[t], h, w_ih, w_hh, b_ih, b_hh)  # (B, H)
                steps[t] = h
            outs.append(torch.stack(steps))  # (T, B, H)
            finals.append(h)
        inp = torch.cat(outs, dim=-1)  # (T, B, D·H): the next layer's input
    return inp, torch.stack(finals)
