"""N -> 1: embedding (+ char features), or the numeric front-end -> packed recurrent encoder -> pooling -> linear head."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from grutool.config import Config, ModelConfig
from grutool.models.base import Model
from grutool.modules.embedder import Embedder
from grutool.modules.encoder import RecurrentEncoder
from grutool.modules.masking import length_mask
from grutool.modules.numeric import NumericEmbedder
from grutool.modules.pooling import Pooling


class Classifier(Model):
    def __init__(self, embedder: Embedder, encoder: RecurrentEncoder, num_classes: int, m: ModelConfig,
                 label_smoothing: float = 0.0):
        """Built parts in, the head sized from the encoder; `m` gives pooling and head_dropout;
        `label_smoothing`: train.label_smoothing, applied to the training loss alone."""
        super().__init__(embedder)
        self.encoder = encoder
        self.label_smoothing = label_smoothing
        self.pooling = Pooling(m.pooling, encoder.output_dim)
        self.head_dropout = nn.Dropout(m.head_dropout)
        self.head = nn.Linear(encoder.output_dim, num_classes)

    @classmethod
    def from_config(cls, cfg: Config, *, vocab_size: int, num_outputs: int, num_chars: int = 0,
                    channels: int = 0) -> "Classifier":
        """`num_outputs` classes; `num_chars` sizes the char features (model.char_features); `channels` > 0:
        numeric sequences of that many values per step, read by the numeric front-end instead of tokens."""
        if channels:
            embedder = NumericEmbedder.from_config(cfg.model, channels, mask=cfg.data.missing == "mask")
        else:
            embedder = Embedder.from_config(cfg.model, vocab_size, num_chars=num_chars)
        encoder = RecurrentEncoder.from_config(cfg.model, embedder.output_dim)
        return cls(embedder, encoder, num_outputs, cfg.model, label_smoothing=cfg.train.label_smoothing)

    def scores(self, ids: torch.Tensor, lengths: torch.Tensor, chars: Optional[torch.Tensor] = None,
               h0: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, C) and the encoder's h_n (L*D, B, H); `h0` continues a stream (see grutool.streaming)."""
        enc = self.encoder(self.embed(ids, chars), lengths, h0)
        mask = length_mask(lengths, ids.shape[1], ids.device)  # (B, T)
        pooled = self.head_dropout(self.pooling(enc, mask))  # (B, D*H)
        return self.head(pooled), enc.h_n  # (B, C), (L*D, B, H)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor,
                targets: Optional[torch.Tensor] = None,
                chars: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """ids: (B, T) token ids, or (B, T, C) float values (numeric sequences); lengths: (B,) CPU; targets: (B,), ids >= num_classes mean 'unseen label';
        chars: (B, T, W) with char features."""
        logits, _ = self.scores(ids, lengths, chars)  # (B, C)
        loss = None
        if targets is not None:
            # Labels the model never saw cannot be predicted; they count as errors in
            # the metrics but are left out of the loss.
            known = targets.masked_fill(targets >= logits.shape[-1], -100)
            n = (known != -100).sum().clamp(min=1)
            # Smoothing in training mode only: validation's loss (monitor: loss) stays the plain negative
            # log-likelihood, comparable between runs with and without it.
            smoothing = self.label_smoothing if self.training else 0.0
            loss = F.cross_entropy(logits.float(), known, label_smoothing=smoothing, reduction="sum") / n
        return logits, loss
