"""The one place that knows about packing.

`RecurrentEncoder` runs a recurrent layer from the cell registry (`grutool.cells`: GRU,
with grutool's fused CPU kernel or PyTorch's, LSTM or RNN) over a padded batch, packed,
so padding never enters the recurrence (with padding, a bidirectional layer's backward
direction would start on pad tokens and its outputs would change). Classifier, tagger and
seq2seq all use it.

`pack` and `unpack` give exactly what `pack_padded_sequence(enforce_sorted=False)` and
`pad_packed_sequence` give (the same PackedSequence, the same padded tensor, the same
gradients), each as one gather or scatter of rows: torch's pair copies one time step at a
time, forward and backward, which was 10.3 ms of a 17 ms bidirectional GRU training call
at B 32, T 100, H 64 (docs/benchmarks.md, "Packing in one gather").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from grutool.cells import get_cell

if TYPE_CHECKING:
    from grutool.config import ModelConfig


class EncoderOutput(NamedTuple):
    outputs: torch.Tensor  # (B, T, D*H): last layer, every step; zeros at padding
    final: torch.Tensor    # (B, D*H): last layer's final state, cat(h_n[-2], h_n[-1]) when D=2
    h_n: torch.Tensor      # (L*D, B, H): every layer's final hidden state, as nn.GRU returns it
    state: object = None   # the cell's whole final state as its module returns it (LSTM: (h_n, c_n)):
                           # what a stateful caller passes back as the next `state`


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

    @classmethod
    def from_config(cls, m: "ModelConfig", input_size: int) -> "RecurrentEncoder":
        """The encoder `model.*` describes (cell, kernel, size, layers, direction, dropout, layer_norm,
        residual), reading `input_size` features per step (the front-end's `output_dim`)."""
        return cls(input_size, m.hidden_size, m.num_layers, m.bidirectional, m.dropout, m.cell,
                   kernel=m.kernel, layer_norm=m.layer_norm, residual=m.residual)

    @property
    def output_dim(self) -> int:
        """Features per step of `outputs` and of `final`: D*H, what a head reads."""
        return self.hidden_size * self.num_directions

    def get_output_dim(self) -> int:
        return self.output_dim

    def initial_state(self, h0: torch.Tensor):
        """The `state` to pass for hidden state h0 (L*D, B, H) (LSTM: with a zero cell state)."""
        return self._cell.initial_state(h0)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, state=None) -> EncoderOutput:
        """x: (B, T, input_size) padded; lengths: (B,) on CPU, 0 allowed; `state`: the initial state as
        the cell takes it (h0 (L*D, B, H); LSTM (h0, c0)), None for zeros. A sequence of length 0 keeps
        its initial state as its final one."""
        B, T, _ = x.shape
        nonempty = lengths > 0
        if bool(nonempty.all()):
            return self._run(x, lengths, T, state)
        # Empty sequences are never packed (a packed step has no row for them; pack_padded_sequence rejects them):
        # run the others and give the empty ones zero outputs and their initial (or zero) states.
        keep = nonempty.nonzero().squeeze(1)  # (B',)
        H, LD = self.hidden_size, self.num_layers * self.num_directions
        outputs = x.new_zeros(B, T, self.get_output_dim())
        final = x.new_zeros(B, self.get_output_dim())
        if state is None:
            state = self.initial_state(x.new_zeros(LD, B, H))
        parts = state if isinstance(state, tuple) else (state,)
        if len(keep):
            idx = keep.to(x.device)
            sub_state = tuple(p.index_select(1, idx) for p in parts)
            sub = self._run(x[idx], lengths[keep], T, sub_state if isinstance(state, tuple) else sub_state[0])
            outputs = outputs.index_copy(0, idx, sub.outputs.to(outputs.dtype))
            final = final.index_copy(0, idx, sub.final.to(final.dtype))
            new = sub.state if isinstance(sub.state, tuple) else (sub.state,)
            parts = tuple(p.index_copy(1, idx, n.to(p.dtype)) for p, n in zip(parts, new))
        state = parts if isinstance(state, tuple) else parts[0]
        h_n = self._cell.hidden(state)
        if len(keep) < B:
            # An empty sequence's final state is its initial one; `final` follows h_n.
            empty = (~nonempty).nonzero().squeeze(1).to(x.device)
            last = torch.cat([h_n[-2], h_n[-1]], dim=-1) if self.num_directions == 2 else h_n[-1]  # (B, D*H)
            final = final.index_copy(0, empty, last.index_select(0, empty).to(final.dtype))
        return EncoderOutput(outputs, final, h_n, state)

    def _run(self, x: torch.Tensor, lengths: torch.Tensor, total_length: int, state=None) -> EncoderOutput:
        lengths = lengths.cpu()
        if bool((lengths == lengths[0]).all()):
            # All sequences equally long: nothing to pack. The dense call is the same
            # computation, and for nn.GRU / nn.LSTM on CPU 2-3x faster per token (input
            # projections in one GEMM for all steps; oneDNN for LSTM) than their packed path.
            n = int(lengths[0])
            out, state = self.rnn(*_with_state(x[:, :n], state))  # (B, n, D*H)
            outputs = out if n == total_length else F.pad(out, (0, 0, 0, total_length - n))  # (B, T, D*H), zeros after n
        else:
            packed, rows = pack(x, lengths)
            out, state = self.rnn(*_with_state(packed, state))  # `state` in batch order: the module sorts it
            # total_length keeps T even when the longest sequence is shorter than the padded batch.
            outputs = unpack(out.data, rows, x.shape[0], total_length)  # (B, T, D*H)
        h_n = self._cell.hidden(state)  # (L*D, B, H), in the caller's batch order
        if self.num_directions == 2:
            final = torch.cat([h_n[-2], h_n[-1]], dim=-1)  # (B, 2H): forward at t=len-1, backward at t=0
        else:
            final = h_n[-1]  # (B, H)
        return EncoderOutput(outputs, final, h_n, state)


def pack(x: torch.Tensor, lengths: torch.Tensor) -> tuple[PackedSequence, torch.Tensor]:
    """x (B, T, I) batch-first, lengths (B,) on CPU, all ≥ 1 → (the PackedSequence that
    pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False) returns, rows (N,)).

    Packed row k is x.reshape(B*T, I)[rows[k]]: time-major, and within a step the sequences in
    descending length (torch.sort's order, so ties fall as torch's own packing has them). One
    index_select, whose backward is one index_add into zeros; each row is read once, so the
    gradient is a copy, exact.
    """
    B, T = x.shape[0], x.shape[1]
    lengths = torch.as_tensor(lengths, dtype=torch.int64, device="cpu")   # as pack_padded_sequence takes them
    sorted_lengths, sorted_indices = torch.sort(lengths, descending=True)  # as pack_padded_sequence sorts
    if int(sorted_lengths[-1]) < 1 or int(sorted_lengths[0]) > T:  # a row index would leave its sequence
        raise ValueError(f"pack: every length must be in 1..{T} (the padded batch's steps), "
                         f"got {int(sorted_lengths[-1])}..{int(sorted_lengths[0])}")
    steps = torch.arange(int(sorted_lengths[0]))                           # (T',)
    live = steps[:, None] < sorted_lengths[None, :]                        # (T', B): a prefix in each row
    rows = (sorted_indices[None, :] * T + steps[:, None])[live]            # (N,) time-major, sorted order
    batch_sizes = live.sum(1)                                              # (T',) int64 on CPU
    data = x.reshape(B * T, -1).index_select(0, rows.to(x.device))         # (N, I)
    # PackedSequence derives unsorted_indices (the inverse permutation), as pack_padded_sequence's does
    return PackedSequence(data, batch_sizes, sorted_indices.to(x.device)), rows


def unpack(data: torch.Tensor, rows: torch.Tensor, batch_size: int, total_length: int) -> torch.Tensor:
    """data (N, F) in the packed order of `pack`'s `rows` → (B, total_length, F), zeros at padding:
    what pad_packed_sequence(batch_first=True, total_length=T) returns, as one index_copy_ into zeros
    (backward: one index_select; in place, so the zeros are not cloned first, which on CPU cost more than
    the copy: a fresh buffer's page faults). `rows` index a (B, T) grid of the packed input, so total_length
    must be that T."""
    out = data.new_zeros(batch_size * total_length, data.shape[1])
    return out.index_copy_(0, rows.to(data.device), data).view(batch_size, total_length, data.shape[1])


def _with_state(x, state) -> tuple:
    """The recurrent module's arguments: its input, and the initial state when there is one (a call
    without it is the same computation, and `shapes` traces the input alone)."""
    return (x,) if state is None else (x, state)


def detach_state(state):
    """A recurrent state (a tensor, or a tuple of them for LSTM) cut from its graph: truncated BPTT carries
    the value of h_n into the next chunk but not the gradient path to the previous one."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()
