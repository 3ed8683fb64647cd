"""The one place that knows about packing.

`RecurrentEncoder` runs a recurrent layer from the cell registry (`grutool.cells`: GRU,
with grutool's fused CPU kernel or PyTorch's, LSTM or RNN) over a padded batch through
`pack_padded_sequence`, so padding never enters the recurrence (with padding, a bidirectional
layer's backward direction would start on pad tokens and its outputs would change). Classifier,
tagger and seq2seq all use it.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from grutool.cells import get_cell


class EncoderOutput(NamedTuple):
    outputs: torch.Tensor  # (B, T, D*H): last layer, every step; zeros at padding
    final: torch.Tensor    # (B, D*H): last layer's final state, cat(h_n[-2], h_n[-1]) when D=2
    h_n: torch.Tensor      # (L*D, B, H): every layer's final hidden state, as nn.GRU returns it


class RecurrentEncoder(nn.Module):
    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bidirectional: bool = True, dropout: float = 0.0, cell: str = "gru", *,
                 kernel: str = "auto", layer_norm: bool = False, residual: bool = False):
        super().__init__()
        self.cell = cell
        self._cell = get_cell(cell)
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.num_directions = 2 if bidirectional else 1
        self.rnn = self._cell.build(input_size, hidden_size, num_layers=num_layers, bidirectional=bidirectional,
                                   dropout=dropout, kernel=kernel, layer_norm=layer_norm, residual=residual)

    def get_output_dim(self) -> int:
        return self.hidden_size * self.num_directions

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, h0: Optional[torch.Tensor] = None) -> EncoderOutput:
        """x: (B, T, input_size) padded; lengths: (B,) on CPU, 0 allowed; h0: (L*D, B, H) initial state
        (streaming: the previous chunk's h_n; cells without a cell state only), zeros when None."""
        if h0 is not None and self._cell.cell_state:
            raise ValueError(f"cell {self.cell}: an initial state needs (h, c); streaming supports gru and rnn")
        B, T, _ = x.shape
        nonempty = lengths > 0
        if bool(nonempty.all()):
            return self._run(x, lengths, T, h0)
        # Empty sequences never reach pack_padded_sequence (it rejects length 0):
        # run the others and give the empty ones zero outputs and zero states.
        keep = nonempty.nonzero().squeeze(1)  # (B',)
        H, LD = self.hidden_size, self.num_layers * self.num_directions
        outputs = x.new_zeros(B, T, self.get_output_dim())
        final = x.new_zeros(B, self.get_output_dim()) if h0 is None else self._final(h0)
        h_n = x.new_zeros(LD, B, H) if h0 is None else h0  # an empty chunk leaves the state as it was
        if len(keep):
            sub = self._run(x[keep.to(x.device)], lengths[keep], T,
                            None if h0 is None else h0[:, keep.to(h0.device)])
            idx = keep.to(x.device)
            outputs = outputs.index_copy(0, idx, sub.outputs.to(outputs.dtype))
            final = final.index_copy(0, idx, sub.final.to(final.dtype))
            h_n = h_n.index_copy(1, idx, sub.h_n.to(h_n.dtype))
        return EncoderOutput(outputs, final, h_n)

    def _run(self, x: torch.Tensor, lengths: torch.Tensor, total_length: int,
             h0: Optional[torch.Tensor] = None) -> EncoderOutput:
        lengths = lengths.cpu()
        state0 = () if h0 is None else (h0,)  # no second argument without h0: `shapes` traces the call as it was
        if bool((lengths == lengths[0]).all()):
            # All sequences equally long: nothing to pack. The dense call is the same
            # computation, and for nn.GRU / nn.LSTM on CPU 2-3x faster per token (input
            # projections in one GEMM for all steps; oneDNN for LSTM) than their packed path.
            n = int(lengths[0])
            out, state = self.rnn(x[:, :n], *state0)  # (B, n, D*H)
            outputs = out if n == total_length else F.pad(out, (0, 0, 0, total_length - n))  # (B, T, D*H), zeros after n
        else:
            packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            out, state = self.rnn(packed, *state0)
            # total_length keeps T even when the longest sequence is shorter than the padded batch.
            outputs, _ = pad_packed_sequence(out, batch_first=True, total_length=total_length)  # (B, T, D*H)
        h_n = self._cell.hidden(state)  # (L*D, B, H), in the caller's batch order
        return EncoderOutput(outputs, self._final(h_n), h_n)

    def _final(self, h_n: torch.Tensor) -> torch.Tensor:
        if self.num_directions == 2:
            return torch.cat([h_n[-2], h_n[-1]], dim=-1)  # (B, 2H): forward at t=len-1, backward at t=0
        return h_n[-1]  # (B, H)
