"""The forecaster: a recurrent encoder over input segments, then one of three decoders (SegRNN's recipe by config).

    x (B, L, C) z-scored --norm--> segments (B', N, W) --Linear+ReLU--> (B', N, d) --cell--> h_N (B', d)
        direct           h_N --Linear--> every output step at once
        parallel         one cell step per output segment, all in one call: h_N as the state, position (and
                         channel) embeddings as the input (SegRNN's parallel multi-step decoding)
        autoregressive   one segment at a time, each prediction fed back as the next input
    --denorm--> (B, H, T)

B' = B * C with `channel_independent` (every column through the same model, told apart by a channel
embedding), else B (all columns of a segment in one input vector). W = `segment_length` (1: step-wise).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from grutool.cells import get_cell
from grutool.config import Config
from grutool.modules.encoder import RecurrentEncoder


class WindowNorm(nn.Module):
    """Per-window normalisation: `none`, `last` (subtract the window's last value) or `revin` (the window's
    mean and standard deviation, with a learned affine map per column, undone on the outputs)."""

    def __init__(self, kind: str, channels: int):
        super().__init__()
        self.kind = kind
        if kind == "revin":
            self.weight = nn.Parameter(torch.ones(channels))
            self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        """x (B, L, C) -> normalised x and what `undo` needs."""
        if self.kind == "last":
            last = x[:, -1:, :]  # (B, 1, C)
            return x - last, (last,)
        if self.kind == "revin":
            mean = x.mean(1, keepdim=True)  # (B, 1, C)
            std = torch.sqrt(x.var(1, keepdim=True, unbiased=False) + 1e-5)
            return (x - mean) / std * self.weight + self.bias, (mean, std)
        return x, ()

    def undo(self, y: torch.Tensor, stats: tuple, targets: torch.Tensor) -> torch.Tensor:
        """y (B, H, T, Q) of the target columns `targets` (T,) back to the z-scored scale."""
        if self.kind == "last":
            return y + stats[0][..., targets, None]
        if self.kind == "revin":
            mean, std = stats[0][..., targets, None], stats[1][..., targets, None]
            return (y - self.bias[targets, None]) / (self.weight[targets, None] + 1e-10) * std + mean
        return y


class Forecaster(nn.Module):
    def __init__(self, channels: int, targets: list[int], input_length: int, horizon: int, hidden_size: int, *,
                 cell: str = "gru", kernel: str = "auto", num_layers: int = 1, segment_length: int = 1,
                 decoder: str = "direct", channel_independent: bool = False, normalization: str = "none",
                 dropout: float = 0.0, layer_dropout: float = 0.0, loss: str = "mse",
                 quantiles: Optional[list[float]] = None):
        """`channels` input columns, of which `targets` (indices) are predicted, `horizon` steps ahead of
        `input_length` steps; `dropout` acts on the decoder's states (model.head_dropout), `layer_dropout` between
        recurrent layers (model.dropout); `quantiles`: predict these quantiles of each value (pinball loss)
        instead of one value; the rest are the model.* fields of the same names."""
        super().__init__()
        if input_length % segment_length:
            raise ValueError(f"input_length {input_length} is not a multiple of segment_length {segment_length}")
        self.channels, self.input_length, self.horizon = channels, input_length, horizon
        self.register_buffer("targets", torch.tensor(targets, dtype=torch.long), persistent=False)
        self.segment_length, self.decoder, self.channel_independent = segment_length, decoder, channel_independent
        self.loss_kind = loss
        self.quantiles = list(quantiles or [])
        q = max(1, len(self.quantiles))                          # Q: values per predicted point
        # The point forecast of a quantile model (fed back by the autoregressive decoder): the median's.
        self.median = min(range(q), key=lambda i: abs(self.quantiles[i] - 0.5)) if self.quantiles else 0
        self.register_buffer("levels", torch.tensor(self.quantiles or [0.5]), persistent=False)
        self.cell = get_cell(cell)
        w, d = segment_length, hidden_size
        self.num_segments = input_length // w                    # N: recurrent steps over the input
        self.out_segments = math.ceil(horizon / w)               # M: output segments (the last one cut to fit)
        width = 1 if channel_independent else channels           # values per step of one input row
        out_width = (1 if channel_independent else len(targets)) * q  # values per step of one output row
        self.norm = WindowNorm(normalization, channels)
        self.project = nn.Sequential(nn.Linear(w * width, d), nn.ReLU())  # a segment to the cell's input
        # The encoder over the segments; the decoders step its cell on (SegRNN: one GRU encodes and decodes).
        self.encoder = RecurrentEncoder(d, d, num_layers, bidirectional=False, dropout=layer_dropout, cell=cell,
                                        kernel=kernel)
        self.dropout = nn.Dropout(dropout)
        if decoder == "direct":
            self.head = nn.Linear(d, horizon * out_width)
        else:
            self.head = nn.Linear(d, w * out_width)              # one output segment from one decoder step
        if decoder == "parallel":
            # Position of each output segment (+ which column, channel-independent): the decoder step's input.
            half = d // 2 if channel_independent else d
            self.position = nn.Parameter(torch.randn(self.out_segments, half))
            if channel_independent:
                self.channel = nn.Parameter(torch.randn(channels, d - half))
        elif channel_independent:
            # Direct and autoregressive decoders tell the columns apart through the initial state.
            self.channel = nn.Parameter(torch.randn(channels, d) * 0.02)

    @classmethod
    def from_config(cls, cfg: Config, channels: int, targets: list[int]) -> "Forecaster":
        m, d = cfg.model, cfg.data
        return cls(channels, targets, d.input_length, d.horizon, m.hidden_size, cell=m.cell, kernel=m.kernel,
                   num_layers=m.num_layers, segment_length=m.segment_length, decoder=m.decoder,
                   channel_independent=m.channel_independent, normalization=m.normalization,
                   dropout=m.head_dropout, layer_dropout=m.dropout, loss=m.loss, quantiles=m.quantiles)

    def _h0(self, rows: int, batch: int) -> Optional[torch.Tensor]:
        """Channel-independent direct/autoregressive models: each column's embedding as its initial state."""
        if not self.channel_independent or self.decoder == "parallel":
            return None
        h0 = self.channel.repeat(batch, 1)  # (B*C, d): row b*C + c is column c
        return self.cell.initial_state(h0.unsqueeze(0).expand(self.encoder.num_layers, rows, -1).contiguous())

    def _step(self, x: torch.Tensor, state):
        """The encoder run on from `state` over x (B'', S, d): the decoders' steps (outputs, state)."""
        lengths = torch.full((x.shape[0],), x.shape[1], dtype=torch.long)  # (B'',) CPU
        enc = self.encoder(x, lengths, state)
        return enc.outputs, enc.state

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, L, C) z-scored -> (B, H, T) z-scored predictions of the target columns ((B, H, T, Q) with
        quantiles)."""
        b = x.shape[0]
        w, c = self.segment_length, self.channels
        z, stats = self.norm(x)
        if self.channel_independent:
            z = z.permute(0, 2, 1).reshape(b * c, self.num_segments, w)  # (B*C, N, W)
        else:
            z = z.reshape(b, self.num_segments, w * c)  # (B, N, W*C): a segment's steps, each with every column
        rows = z.shape[0]
        lengths = torch.full((rows,), self.num_segments, dtype=torch.long)  # (B',) CPU: every row is N segments
        enc = self.encoder(self.project(z), lengths, self._h0(rows, b))  # state: (layers, B', d) (LSTM: (h, c))
        state, h = enc.state, enc.final  # h: (B', d)
        if self.decoder == "direct":
            y = self.head(self.dropout(h))  # (B', H * out_width)
        elif self.decoder == "parallel":
            y = self._parallel(state, b)  # (B', M * W * out_width)
        else:
            y = self._autoregressive(state, z[:, -1], rows)
        y = self.norm.undo(self._to_targets(y, b), stats, self.targets)  # (B, H, T, Q)
        return y if self.quantiles else y[..., 0]

    def _parallel(self, state, b: int) -> torch.Tensor:
        """All M output segments in one cell step: row (b', m) starts from b''s final state and reads segment m's
        position (and its column's) embedding."""
        m, d = self.out_segments, self.encoder.hidden_size
        if self.channel_independent:
            c = self.channels
            pos = self.position.unsqueeze(0).expand(c, m, -1)  # (C, M, d/2)
            chan = self.channel.unsqueeze(1).expand(c, m, -1)  # (C, M, d/2)
            inputs = torch.cat([pos, chan], -1).reshape(1, c * m, d).expand(b, -1, -1).reshape(b * c * m, 1, d)
        else:
            inputs = self.position.unsqueeze(0).expand(b, m, d).reshape(b * m, 1, d)  # (B*M, 1, d)
        rep = lambda s: s.repeat_interleave(m, dim=1)  # (layers, B'*M, d): each row's state, once per segment
        state = tuple(rep(s) for s in state) if isinstance(state, tuple) else rep(state)
        out, _ = self._step(inputs, state)  # (B'*M, 1, d)
        y = self.head(self.dropout(out[:, 0]))  # (B'*M, W * out_width)
        return y.reshape(-1, m * y.shape[-1])  # (B', M * W * out_width), segment-major

    def _autoregressive(self, state, last: torch.Tensor, rows: int) -> torch.Tensor:
        """One output segment per step; each prediction (in the normalised scale) is the next step's input.
        Without channel independence the fed-back segment needs every column: only M = S settings (targets
        are all columns) can do that, which the task checks."""
        outs = []
        for _ in range(self.out_segments):
            h = self.cell.hidden(state)[-1]  # (B', d)
            seg = self.head(self.dropout(h))  # (B', W * out_width)
            outs.append(seg)
            q = max(1, len(self.quantiles))
            point = seg.reshape(len(seg), -1, q)[..., self.median].reshape(len(seg), -1)  # (B', W * width)
            _, state = self._step(self.project(point).unsqueeze(1), state)
        return torch.cat(outs, -1)  # (B', M * W * out_width)

    def _to_targets(self, y: torch.Tensor, b: int) -> torch.Tensor:
        """Decoder rows to (B, H, T, Q); the last segment's steps beyond the horizon are dropped."""
        q = max(1, len(self.quantiles))
        if self.channel_independent:
            y = y.reshape(b, self.channels, -1, q)[:, :, :self.horizon]  # (B, C, H, Q)
            return y[:, self.targets].permute(0, 2, 1, 3)  # (B, H, T, Q)
        t = len(self.targets)
        if self.decoder == "direct":
            return y.reshape(b, self.horizon, t, q)
        w = self.segment_length
        return y.reshape(b, self.out_segments * w, t, q)[:, :self.horizon]  # (B, H, T, Q)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor, targets: Optional[torch.Tensor] = None):
        """ids: the input windows (B, L, C) float, z-scored; lengths unused (every window is L long);
        targets (B, H, T) z-scored. Returns predictions (B, H, T) ((B, H, T, Q) with quantiles) and the loss
        (with quantiles: the pinball loss averaged over them)."""
        pred = self.predict(ids)
        loss = None
        if targets is not None:
            if self.quantiles:
                diff = targets.unsqueeze(-1) - pred  # (B, H, T, Q)
                loss = torch.maximum(self.levels * diff, (self.levels - 1) * diff).mean()
            elif self.loss_kind == "mae":
                loss = F.l1_loss(pred, targets)
            elif self.loss_kind == "huber":
                loss = F.huber_loss(pred, targets)
            else:
                loss = F.mse_loss(pred, targets)
        return pred, loss
