"""N -> 1: embedding (+ char features) -> packed recurrent encoder -> pooling -> linear head."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from grutool.config import Config
from grutool.modules.embedder import Embedder, embedder_options
from grutool.modules.encoder import RecurrentEncoder
from grutool.modules.masking import length_mask
from grutool.modules.pooling import Pooling


class Classifier(Embedder):
    def __init__(self, vocab_size: int, num_classes: int, embedding_dim: int, hidden_size: int,
                 num_layers: int = 1, bidirectional: bool = True, cell: str = "gru",
                 dropout: float = 0.0, embedding_dropout: float = 0.0, head_dropout: float = 0.0,
                 pooling: str = "last", freeze_embeddings: bool = False, token_dropout: float = 0.0,
                 num_chars: int = 0, char_embedding_dim: int = 32, char_hidden_size: int = 32,
                 kernel: str = "auto", layer_norm: bool = False, residual: bool = False):
        super().__init__()
        input_size = self.init_embedder(vocab_size, embedding_dim, freeze_embeddings=freeze_embeddings,
                                        embedding_dropout=embedding_dropout, token_dropout=token_dropout,
                                        num_chars=num_chars, char_embedding_dim=char_embedding_dim,
                                        char_hidden_size=char_hidden_size, cell=cell, kernel=kernel)
        self.encoder = RecurrentEncoder(input_size, hidden_size, num_layers, bidirectional, dropout, cell,
                                        kernel=kernel, layer_norm=layer_norm, residual=residual)
        self.pooling = Pooling(pooling, self.encoder.get_output_dim())
        self.head_dropout = nn.Dropout(head_dropout)
        self.head = nn.Linear(self.encoder.get_output_dim(), num_classes)

    @classmethod
    def from_config(cls, cfg: Config, *, vocab_size: int, num_outputs: int, num_chars: int = 0) -> "Classifier":
        """`num_outputs` classes; `num_chars` sizes the char features (model.char_features)."""
        m = cfg.model
        return cls(vocab_size, num_outputs, **embedder_options(m, num_chars), hidden_size=m.hidden_size,
                   num_layers=m.num_layers, bidirectional=m.bidirectional, cell=m.cell, dropout=m.dropout,
                   kernel=m.kernel, layer_norm=m.layer_norm, residual=m.residual,
                   head_dropout=m.head_dropout, pooling=m.pooling)

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
        """ids: (B, T); lengths: (B,) CPU; targets: (B,), ids >= num_classes mean 'unseen label';
        chars: (B, T, W) with char features."""
        logits, _ = self.scores(ids, lengths, chars)  # (B, C)
        loss = None
        if targets is not None:
            # Labels the model never saw cannot be predicted; they count as errors in
            # the metrics but are left out of the loss.
            known = targets.masked_fill(targets >= logits.shape[-1], -100)
            n = (known != -100).sum().clamp(min=1)
            loss = F.cross_entropy(logits.float(), known, reduction="sum") / n
        return logits, loss
