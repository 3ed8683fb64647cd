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

    def __init__(self, channels: int, dim: int, dropout: float = 0.0, *, mask: bool = False, noise: float = 0.0):
        """`channels`: values per step; `mask`: append an observed/missing flag per channel (data.missing: mask);
        `noise`: standard deviation of the Gaussian noise added to the values in training mode only."""
        super().__init__()
        self.channels = channels
        self.mask = mask
        self.noise = noise
        self.projection = nn.Linear(channels * (2 if mask else 1), dim)
        self.embedding_dropout = nn.Dropout(dropout)

    @classmethod
    def from_config(cls, m: "ModelConfig", channels: int, *, mask: bool = False) -> "NumericEmbedder":
        """The front-end for `channels` values per step: model.input_noise in training, a projection to
        model.embedding_dim, then model.embedding_dropout."""
        return cls(channels, m.embedding_dim, m.embedding_dropout, mask=mask, noise=m.input_noise)

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
        if self.mask:
            observed = ~torch.isnan(x)  # (B, T, C)
            x = torch.cat([torch.where(observed, x, torch.zeros_like(x)), observed.to(x.dtype)], dim=-1)  # (B, T, 2C)
        return self.embedding_dropout(self.projection(x))  # (B, T, E)
