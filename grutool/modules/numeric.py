"""The input front-end of numeric sequences: real values per step -> what the encoder reads.

It takes the token `Embedder`'s place behind the same contract (`forward(values, ...) -> (B, T, output_dim)`,
`output_dim`), so the classifier's and the tagger's models and the packing `RecurrentEncoder` read sensor
channels or speech frames as they read words, with no branch for numbers anywhere else.

Its input is already standardised (the run's `grutool.data.scaling.Standardizer`, fitted on the training
split); a value missing under `data.missing: mask` arrives as NaN. With `mask`, the front-end replaces each NaN
by 0 (the training mean) and appends one channel per input channel saying whether the value was observed, so
the model can tell "average" from "unknown". Padding (0.0 after a sequence's end) never reaches the recurrence:
the encoder packs.

Its parts sit on the model (`projection`, `embedding_dropout`; see grutool.models.base.Model), so checkpoint keys
read `projection.weight`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import torch
from torch import nn

if TYPE_CHECKING:
    from grutool.config import ModelConfig


class NumericEmbedder(nn.Module):
    """values (B, T, C) float, NaN where missing (mask only) -> (B, T, embedding_dim)."""

    def __init__(self, channels: int, dim: int, dropout: float = 0.0, *, mask: bool = False, noise: float = 0.0,
                 offset_noise: float = 0.0, deltas: bool = False):
        """`channels`: values per step; `mask`: append an observed/missing flag per channel (data.missing: mask);
        `noise`: standard deviation of the Gaussian noise added to every value in training mode only;
        `offset_noise`: that of one Gaussian offset per sequence and channel, the same at every step, added in
        training mode only; `deltas`: append each channel's change since the step before."""
        super().__init__()
        self.channels = channels
        self.mask = mask
        self.noise = noise
        self.offset_noise = offset_noise
        self.deltas = deltas
        self.projection = nn.Linear(channels * (1 + int(mask) + int(deltas)), dim)
        self.embedding_dropout = nn.Dropout(dropout)

    @classmethod
    def from_config(cls, m: "ModelConfig", channels: int, *, mask: bool = False) -> "NumericEmbedder":
        """The front-end for `channels` values per step: model.input_noise and input_offset_noise in training,
        model.input_deltas, a projection to model.embedding_dim, then model.embedding_dropout."""
        return cls(channels, m.embedding_dim, m.embedding_dropout, mask=mask, noise=m.input_noise,
                   offset_noise=m.input_offset_noise, deltas=m.input_deltas)

    @property
    def output_dim(self) -> int:
        return self.projection.out_features

    def example_input(self, batch: int, time: int) -> torch.Tensor:
        """Made-up standardised values (batch, time, C) of the shape `forward` reads (export traces them)."""
        return torch.randn(batch, time, self.channels)

    def token_embedding(self):
        raise TypeError("a numeric front-end has no token embedding (data.vectors are for text)")

    def forward(self, values: torch.Tensor, chars: Optional[torch.Tensor] = None,
                condition: Optional[torch.Tensor] = None) -> torch.Tensor:
        """values (B, T, C) -> (B, T, E); `chars` and `condition` are the token front-end's and always None here."""
        x = values.float()
        if self.training and self.noise > 0:
            # Padding after a sequence's end gets noise too: the encoder packs and pooling masks, so it is never read.
            x = x + self.noise * torch.randn_like(x)  # (B, T, C); NaN (missing under mask) stays NaN
        if self.training and self.offset_noise > 0:
            # One shift per sequence and channel, at every step: what a recording channel does to cepstra.
            x = x + self.offset_noise * torch.randn_like(x[:, :1])  # (B, T, C) + (B, 1, C)
        parts = [x]
        if self.mask:
            observed = ~torch.isnan(x)  # (B, T, C)
            parts = [torch.where(observed, x, torch.zeros_like(x)), observed.to(x.dtype)]  # (B, T, C) each
        if self.deltas:
            # Only backwards in time, so padding after a sequence's end changes no delta the encoder reads; a
            # missing value (mask) counts as 0, the training mean, as the recurrence sees it.
            v = parts[0]
            parts.append(torch.cat([torch.zeros_like(v[:, :1]), v[:, 1:] - v[:, :-1]], dim=1))  # (B, T, C)
        x = torch.cat(parts, dim=-1) if len(parts) > 1 else x  # (B, T, C · (1 + mask + deltas))
        return self.embedding_dropout(self.projection(x))  # (B, T, E)
