"""The forecaster: a recurrent encoder over input segments, then one of three decoders (SegRNN's recipe by config).

    x (B, L, C) z-scored --norm--> segments (B', N, W) --Linear+ReLU--> (B', N, d) --cell--> h_N (B', d)
        direct           h_N --Linear--> every output step at once
        parallel         one cell step per output segment, all in one call: h_N as the state, position (and
                         channel) embeddings as the input (SegRNN's parallel multi-step decoding)
        autoregressive   one segment at a time, each prediction fed back as the next input
    --denorm--> (B, H, T)

B' = B * C with `channel_independent` (every column through the same model, told apart by a channel
embedding), else B (all columns of a segment in one input vector). W = `segment_length` (1: step-wise).

Covariates (data.covariates; none: no parameter below exists) are read, never predicted. One linear map
(`side`) turns a segment's covariates into a vector of the cell's input size: past (B, L, P) and known-future
(B, L + H, F) rows of the segment, the static values (B, S) and the series embedding (B, E). The encoder adds it
to each input segment's projection; the decoders see the horizon's known-future rows (past ones read 0, the
training mean: they are unknown there): parallel adds each output segment's to its query, autoregressive to the
state its head reads and to the fed-back segment, direct adds a projection of every horizon row to the head's
input. Channel-independent models give every column of a window the same covariates.
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
                 quantiles: Optional[list[float]] = None, past: int = 0, future: int = 0, static: int = 0,
                 num_series: int = 0, series_dim: int = 0):
        """`channels` input columns, of which `targets` (indices) are predicted, `horizon` steps ahead of
        `input_length` steps; `dropout` acts on the decoder's states (model.head_dropout), `layer_dropout` between
        recurrent layers (model.dropout); `quantiles`: predict these quantiles of each value (pinball loss)
        instead of one value; `past`, `future`, `static`: covariate values per row (past, known-future) or per
        window (static), `num_series` series told apart by a learned embedding of size `series_dim` (0: none);
        the rest are the model.* fields of the same names."""
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
        # Covariates last, so a model without them draws its parameters exactly as before.
        self.past_width, self.future_width, self.static_width = past, future, static
        self.series_embedding = nn.Embedding(num_series, series_dim) if series_dim else None
        side = w * (past + future) + static + series_dim        # one segment's covariates
        self.side = nn.Linear(side, d) if side else None
        self.ahead = nn.Linear(horizon * future, d) if future and decoder == "direct" else None

    @classmethod
    def from_config(cls, cfg: Config, channels: int, targets: list[int], roles=None,
                    num_series: int = 0) -> "Forecaster":
        """`roles` (grutool.families.forecast.covariates.Roles): the covariates' widths; `num_series` sizes
        the series embedding."""
        m, d = cfg.model, cfg.data
        widths = {}
        if roles is not None and roles.any:
            widths = dict(past=len(roles.past), future=roles.known_width, static=len(roles.static),
                          num_series=num_series, series_dim=roles.series_embedding)
        return cls(channels, targets, d.input_length, d.horizon, m.hidden_size, cell=m.cell, kernel=m.kernel,
                   num_layers=m.num_layers, segment_length=m.segment_length, decoder=m.decoder,
                   channel_independent=m.channel_independent, normalization=m.normalization,
                   dropout=m.head_dropout, layer_dropout=m.dropout, loss=m.loss, quantiles=m.quantiles, **widths)

    def covariate_inputs(self) -> dict[str, tuple]:
        """The covariate inputs this model reads, by keyword: (shape without the batch, dtype)."""
        out = {}
        if self.past_width:
            out["past"] = ((self.input_length, self.past_width), torch.float32)
        if self.future_width:
            out["future"] = ((self.input_length + self.horizon, self.future_width), torch.float32)
        if self.static_width:
            out["static"] = ((self.static_width,), torch.float32)
        if self.series_embedding is not None:
            out["series"] = ((), torch.long)
        return out

    def _covariates(self, b: int, past, future, static, series):
        """The covariates through `side`: (B, N, d) for the input segments, (B, M, d) for the output segments
        (None without covariates); and the horizon's known-future rows (B, H, F) for the direct head."""
        if self.side is None:
            return None, None, None
        given = {"past": past, "future": future, "static": static, "series": series}
        for key in self.covariate_inputs():
            if given[key] is None:
                raise ValueError(f"the model reads covariates {key!r}; pass them")
        w, n, m, L, H = self.segment_length, self.num_segments, self.out_segments, self.input_length, self.horizon
        enc, dec, ahead = [], [], None
        if self.past_width:
            p = self.past_width
            enc.append(past.reshape(b, n, w * p))              # (B, N, W*P)
            dec.append(past.new_zeros(b, m, w * p))            # unknown over the horizon: the training mean, 0
        if self.future_width:
            f = self.future_width
            enc.append(future[:, :L].reshape(b, n, w * f))     # (B, N, W*F)
            ahead = future[:, L:]                              # (B, H, F)
            padded = F.pad(ahead, (0, 0, 0, m * w - H))        # (B, M*W, F): the last segment cut to fit
            dec.append(padded.reshape(b, m, w * f))            # (B, M, W*F)
        fixed = [static] if self.static_width else []
        if self.series_embedding is not None:
            fixed.append(self.series_embedding(series))        # (B, E)
        if fixed:
            v = torch.cat(fixed, -1).unsqueeze(1)              # (B, 1, S+E)
            enc.append(v.expand(b, n, -1))
            dec.append(v.expand(b, m, -1))
        return self.side(torch.cat(enc, -1)), self.side(torch.cat(dec, -1)), ahead  # (B, N, d), (B, M, d)

    def _embed(self, z: torch.Tensor, side: Optional[torch.Tensor]) -> torch.Tensor:
        """Segments (rows, S, W*width) to the cell's input (rows, S, d), with their covariates' vector added."""
        if side is None:
            return self.project(z)
        return torch.relu(self.project[0](z) + side)

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

    def predict(self, x: torch.Tensor, past: Optional[torch.Tensor] = None, future: Optional[torch.Tensor] = None,
                static: Optional[torch.Tensor] = None, series: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x (B, L, C) z-scored -> (B, H, T) z-scored predictions of the target columns ((B, H, T, Q) with
        quantiles). Covariates, those the model reads: past (B, L, P), future (B, L + H, F), static (B, S),
        series (B,) long."""
        b = x.shape[0]
        w, c = self.segment_length, self.channels
        side_in, side_out, ahead = self._covariates(b, past, future, static, series)
        if self.channel_independent and side_in is not None:
            # Row b*C + c is column c of window b: every column of a window reads its covariates.
            side_in, side_out = side_in.repeat_interleave(c, 0), side_out.repeat_interleave(c, 0)  # (B', ., d)
        z, stats = self.norm(x)
        if self.channel_independent:
            z = z.permute(0, 2, 1).reshape(b * c, self.num_segments, w)  # (B*C, N, W)
        else:
            z = z.reshape(b, self.num_segments, w * c)  # (B, N, W*C): a segment's steps, each with every column
        rows = z.shape[0]
        lengths = torch.full((rows,), self.num_segments, dtype=torch.long)  # (B',) CPU: every row is N segments
        enc = self.encoder(self._embed(z, side_in), lengths, self._h0(rows, b))  # state: (layers, B', d)
        state, h = enc.state, enc.final  # h: (B', d)
        if self.decoder == "direct":
            if self.ahead is not None:  # every horizon row's known-future values, flattened, into the head
                q = self.ahead(ahead.reshape(b, -1))  # (B, d)
                h = h + (q.repeat_interleave(c, 0) if self.channel_independent else q)
            y = self.head(self.dropout(h))  # (B', H * out_width)
        elif self.decoder == "parallel":
            y = self._parallel(state, b, side_out)  # (B', M * W * out_width)
        else:
            y = self._autoregressive(state, z[:, -1], rows, side_out)
        y = self.norm.undo(self._to_targets(y, b), stats, self.targets)  # (B, H, T, Q)
        if self.quantiles and not self.training:
            # The levels' heads are independent and can cross (a 0.9 quantile below the 0.5 one). Sorted, every
            # value's quantiles increase with their levels, and for each value the pinball loss summed over
            # the levels falls wherever two crossed: swapping a > b between levels t1 < t2 changes it by
            # (t2 - t1)(b - a) (monotone rearrangement). Training reads the heads as they are.
            y = y.sort(dim=-1).values  # (B, H, T, Q)
        return y if self.quantiles else y[..., 0]

    def _parallel(self, state, b: int, side: Optional[torch.Tensor] = None) -> torch.Tensor:
        """All M output segments in one cell step: row (b', m) starts from b''s final state and reads segment m's
        position (and its column's) embedding, plus its covariates' vector `side` (B', M, d) when given."""
        m, d = self.out_segments, self.encoder.hidden_size
        if self.channel_independent:
            c = self.channels
            pos = self.position.unsqueeze(0).expand(c, m, -1)  # (C, M, d/2)
            chan = self.channel.unsqueeze(1).expand(c, m, -1)  # (C, M, d/2)
            inputs = torch.cat([pos, chan], -1).reshape(1, c * m, d).expand(b, -1, -1).reshape(b * c * m, 1, d)
        else:
            inputs = self.position.unsqueeze(0).expand(b, m, d).reshape(b * m, 1, d)  # (B*M, 1, d)
        if side is not None:
            inputs = inputs + side.reshape(-1, 1, d)  # row b'*M + m: segment m of row b'
        rep = lambda s: s.repeat_interleave(m, dim=1)  # (layers, B'*M, d): each row's state, once per segment
        state = tuple(rep(s) for s in state) if isinstance(state, tuple) else rep(state)
        out, _ = self._step(inputs, state)  # (B'*M, 1, d)
        y = self.head(self.dropout(out[:, 0]))  # (B'*M, W * out_width)
        return y.reshape(-1, m * y.shape[-1])  # (B', M * W * out_width), segment-major

    def _autoregressive(self, state, last: torch.Tensor, rows: int, side: Optional[torch.Tensor] = None
                        ) -> torch.Tensor:
        """One output segment per step; each prediction (in the normalised scale) is the next step's input.
        Without channel independence the fed-back segment needs every column: only M = S settings (targets
        are all columns) can do that, which the task checks. `side` (B', M, d): segment m's covariates, added
        to the state the head reads for it and to its fed-back values."""
        outs = []
        for k in range(self.out_segments):
            h = self.cell.hidden(state)[-1]  # (B', d)
            if side is not None:
                h = h + side[:, k]
            seg = self.head(self.dropout(h))  # (B', W * out_width)
            outs.append(seg)
            q = max(1, len(self.quantiles))
            # The batch as seg.shape[0], not len(seg): an exporter records the one and freezes the other.
            rows_now = seg.shape[0]
            point = seg.reshape(rows_now, -1, q)[..., self.median].reshape(rows_now, -1)  # (B', W * width)
            fed = self._embed(point, None if side is None else side[:, k])  # (B', d)
            _, state = self._step(fed.unsqueeze(1), state)
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

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor, targets: Optional[torch.Tensor] = None,
                **covariates):
        """ids: the input windows (B, L, C) float, z-scored; lengths unused (every window is L long);
        targets (B, H, T) z-scored; covariates: `predict`'s. Returns predictions (B, H, T) ((B, H, T, Q) with
        quantiles) and the loss (with quantiles: the pinball loss averaged over them)."""
        pred = self.predict(ids, **covariates)
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
