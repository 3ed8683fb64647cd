"""`RecurrentEncoder`'s results without packing: the form an exported graph can hold.

The dynamo ONNX exporter and `torch.export` cannot trace `pack_padded_sequence`, and a dense
recurrent op over a padded batch lets padding into a bidirectional layer (its backward direction
would start on pad tokens). Here each direction of each layer is PyTorch's own single-layer module
over the dense batch, and the backward direction reads every row reversed *within its own length*
(position t <-> length-1-t; padding stays after the end). A unidirectional step never sees what
comes after it, so padding placed after each row's end changes no real step in either direction,
and the results equal the packed path's (tested against `RecurrentEncoder`). Each direction is one
ONNX `GRU` op with dynamic batch and length, plus two gathers for the backward one.

It also runs grutool's layer stack (`model.layer_norm`, `model.residual`) layer by layer, as
`grutool.modules.rnn.gru.GRU` does, so those models export too.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from grutool.cells import get_cell
from grutool.modules.encoder import EncoderOutput, RecurrentEncoder


class ExportEncoder(nn.Module):
    """A copy of `encoder`'s weights with the same call: (x (B, T, I), lengths (B,), h0) -> EncoderOutput."""

    def __init__(self, encoder: RecurrentEncoder):
        super().__init__()
        rnn, cell = encoder.rnn, get_cell(encoder.cell)
        self.cell = encoder.cell
        self.cell_state = cell.cell_state
        self.hidden_size, self.num_layers = encoder.hidden_size, encoder.num_layers
        self.num_directions = encoder.num_directions
        self.residual = bool(getattr(rnn, "residual", False))
        self.layer_norms = getattr(rnn, "layer_norms", None)
        native = cell.native_class()
        self.directions = nn.ModuleList()
        for layer in range(self.num_layers):
            for d in range(self.num_directions):
                suffix = f"_l{layer}" + ("_reverse" if d else "")
                w_ih = getattr(rnn, "weight_ih" + suffix)
                module = native(w_ih.shape[1], self.hidden_size, batch_first=True, bias=rnn.bias)
                module.load_state_dict({name + "_l0": getattr(rnn, name + suffix).detach()
                                        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
                                        if hasattr(rnn, name + suffix)})
                self.directions.append(module)

    def get_output_dim(self) -> int:
        return self.hidden_size * self.num_directions

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, h0=None) -> EncoderOutput:
        """x (B, T, I) padded; lengths (B,), 0 allowed; h0 (L*D, B, H), LSTM (h0, c0), or None (zeros).

        LSTM's c_n is the cell state after all T steps, exact for a row of length T (a forecaster's windows,
        a decoder's steps); a shorter row's is not computed here (nn.LSTM gives no per-step c) and is NaN, so a
        graph that reads it fails visibly instead of going on from a wrong state."""
        c0 = None
        if isinstance(h0, tuple):
            h0, c0 = h0  # (L*D, B, H) each
        B, T, _ = x.shape
        H, D = self.hidden_size, self.num_directions
        lengths = lengths.to(x.device)
        steps = torch.arange(T, device=x.device)[None, :]  # (1, T)
        mask = steps < lengths[:, None]  # (B, T)
        reverse = torch.where(mask, lengths[:, None] - 1 - steps, steps)  # (B, T): its own inverse
        last = (lengths - 1).clamp(min=0).view(B, 1, 1).expand(B, 1, H)  # (B, 1, H): each row's last real step
        data, states, cells = x, [], []
        for layer in range(self.num_layers):
            outs = []
            for d in range(D):
                module = self.directions[layer * D + d]
                flip = reverse[:, :, None].expand(B, T, data.shape[-1])
                inp = data if d == 0 else data.gather(1, flip)  # (B, T, I), backward: reversed within length
                k = layer * D + d
                h = None if h0 is None else h0[k:k + 1]  # (1, B, H)
                if self.cell_state and h is not None:
                    h = (h, c0[k:k + 1] if c0 is not None else torch.zeros_like(h))
                y, final_state = module(inp, h)  # (B, T, H); steps after a row's end are never read
                states.append(y.gather(1, last).squeeze(1))  # (B, H): the state after the last real step
                if self.cell_state:
                    cells.append(final_state[1][0])  # (B, H): c after step T
                outs.append(y if d == 0 else y.gather(1, reverse[:, :, None].expand(B, T, H)))
            y = torch.cat(outs, -1) if D == 2 else outs[0]  # (B, T, D*H)
            if self.residual and y.shape[-1] == data.shape[-1]:
                y = y + data
            if layer < self.num_layers - 1 and self.layer_norms is not None:
                y = self.layer_norms[layer](y)
            data = y
        outputs = data * mask[:, :, None].to(data.dtype)  # (B, T, D*H), zeros at padding
        h_n = torch.stack(states)  # (L*D, B, H)
        empty = (lengths == 0)[None, :, None]  # an empty row keeps its initial state (zeros without h0)
        h_n = torch.where(empty, h0 if h0 is not None else torch.zeros_like(h_n), h_n)
        final = torch.cat([h_n[-2], h_n[-1]], dim=-1) if D == 2 else h_n[-1]  # (B, D*H)
        if not self.cell_state:
            return EncoderOutput(outputs, final, h_n, h_n)  # the cell's whole final state: h_n for GRU and RNN
        c_n = torch.stack(cells)  # (L*D, B, H)
        c_n = torch.where((lengths == T)[None, :, None], c_n, torch.full_like(c_n, float("nan")))
        c_n = torch.where(empty, c0 if c0 is not None else torch.zeros_like(c_n), c_n)
        return EncoderOutput(outputs, final, h_n, (h_n, c_n))


def exportable(model: nn.Module) -> nn.Module:
    """`model` (built with model.kernel=native) with every RecurrentEncoder replaced by an ExportEncoder, in place."""
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, RecurrentEncoder):
                setattr(module, child_name, ExportEncoder(child))
    return model


def streamable(encoder) -> bool:
    """Whether an encoder can continue from a previous chunk's state: one direction (a backward direction
    needs the input's end before its first step) and a cell whose state is h alone."""
    return encoder.num_directions == 1 and not get_cell(encoder.cell).cell_state
