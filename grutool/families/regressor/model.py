"""N -> 1 real value: the numeric front-end -> packed recurrent encoder -> pooling -> linear head to one number.

The head predicts the target's z-score (the run's target scaler, fitted on train); the loss (model.loss: mse, mae
or huber with model.huber_delta) is taken on z-scores, so its size does not depend on the target's units.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from grutool.config import Config, ModelConfig
from grutool.models.base import Model
from grutool.modules.encoder import RecurrentEncoder
from grutool.modules.masking import length_mask
from grutool.modules.numeric import NumericEmbedder
from grutool.modules.pooling import Pooling


class Regressor(Model):
    def __init__(self, embedder: NumericEmbedder, encoder: RecurrentEncoder, m: ModelConfig, per_step: bool = False):
        """Built parts in, the head sized from the encoder; `m` gives pooling, head_dropout, loss, huber_delta;
        `per_step`: a prediction per step from each step's output (N->N) instead of one from the pooled outputs."""
        super().__init__(embedder)
        self.encoder = encoder
        self.per_step = per_step
        self.pooling = Pooling(m.pooling, encoder.output_dim)
        self.head_dropout = nn.Dropout(m.head_dropout)
        self.head = nn.Linear(encoder.output_dim, 1)
        self.loss_kind, self.huber_delta = m.loss, m.huber_delta

    @classmethod
    def from_config(cls, cfg: Config, *, channels: int) -> "Regressor":
        embedder = NumericEmbedder.from_config(cfg.model, channels, mask=cfg.data.missing == "mask")
        encoder = RecurrentEncoder.from_config(cfg.model, embedder.output_dim)
        return cls(embedder, encoder, cfg.model, per_step=cfg.data.per_step)

    def scores(self, ids: torch.Tensor, lengths: torch.Tensor, chars: Optional[torch.Tensor] = None,
               h0: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted z-scores (B,), or (B, T) per step, and the encoder's h_n (L*D, B, H); `h0` continues a stream."""
        enc = self.encoder(self.embed(ids), lengths, h0)
        if self.per_step:
            return self.head(self.head_dropout(enc.outputs)).squeeze(-1), enc.h_n  # (B, T), (L*D, B, H)
        mask = length_mask(lengths, ids.shape[1], ids.device)  # (B, T)
        pooled = self.head_dropout(self.pooling(enc, mask))  # (B, D*H)
        return self.head(pooled).squeeze(-1), enc.h_n  # (B,), (L*D, B, H)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor, targets: Optional[torch.Tensor] = None,
                chars: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """ids: (B, T, C) standardised values; lengths: (B,) CPU; targets: (B,) z-scores of the target, or per
        step (B, T) with -100 after each sequence's end (collate's padding, as for tags)."""
        pred, _ = self.scores(ids, lengths)  # (B,) or (B, T)
        loss = None
        if targets is not None:
            p, t = pred.float(), targets.float()
            if self.per_step:
                keep = length_mask(lengths, ids.shape[1], ids.device)  # (B, T): padding is not a target
                p, t = p[keep], t[keep]  # (sum of lengths,)
            if self.loss_kind == "mae":
                loss = F.l1_loss(p, t)
            elif self.loss_kind == "huber":
                loss = F.huber_loss(p, t, delta=self.huber_delta)
            else:
                loss = F.mse_loss(p, t)
        return pred, loss
