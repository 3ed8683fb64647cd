"""The input front-end of the word-level families, in one place: token dropout, the token embedding (where
data.vectors are loaded), optional char features, `embedding_dropout` and, for a conditioned language model,
the condition vector appended to every step.

`Embedder.from_config` builds it once from the config and the task hands it to the model, as it hands the
`RecurrentEncoder` (grutool.models.base.Model); the encoder's `input_size` is its `output_dim`. A front-end for
other inputs (real-valued sequences) takes its place behind the same contract: `forward(...) -> (B, T,
output_dim)`, its parts as its child modules, named as they appear in checkpoints.

Its parts sit on the model itself (`embedding`, `embedding_dropout`, `chars`, `condition_embedding`), so
state_dict keys (`embedding.weight`, `chars.embedding.weight`, `chars.encoder.*`), the shapes trace and the
export code read the same paths in every family, and checkpoints written before it load unchanged. Seq2seq
embeds its source through it too, under the name it always had (`source_embedding`); its target embedding
belongs to the decoder (it may be tied to the output layer) and stays the model's own.

Order: `embedding_dropout` acts on what the encoder reads, the word vector with its char vector
appended. One rule for every family, the char BiGRU's output is regularised like the word vector
(it has no dropout of its own), and it is what the tagger (tagging, pos, atis configs) always did.
The condition vector is appended after it, undropped, as the language model always did.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import torch
from torch import nn

from grutool.data.vocab import Vocab
from grutool.modules.char_encoder import CharEncoder
from grutool.modules.embedding import make_embedding
from grutool.modules.masking import drop_tokens

if TYPE_CHECKING:
    from grutool.config import ModelConfig


class Embedder(nn.Module):
    """ids (B, T) [+ chars (B, T, W)] [+ condition (B,)] -> (B, T, output_dim), what the encoder reads."""

    def __init__(self, embedding: nn.Embedding, dropout: float = 0.0, token_dropout: float = 0.0, *,
                 chars: Optional[CharEncoder] = None, conditions: Optional[nn.Embedding] = None,
                 condition_input: bool = False, name: str = "embedding"):
        """`embedding`: the token embedding, registered as `name`; `conditions`: the condition labels'
        embedding, appended to every step with `condition_input` (else only the model reads it)."""
        super().__init__()
        self.token_dropout = token_dropout
        self._embedding_name = name
        self.register_module(name, embedding)
        self.embedding_dropout = nn.Dropout(dropout)
        self.register_module("chars", chars)
        self.register_module("condition_embedding", conditions)
        self.condition_input = condition_input and conditions is not None

    @classmethod
    def from_config(cls, m: "ModelConfig", vocab_size: int, *, num_chars: int = 0, num_conditions: int = 0,
                    name: str = "embedding") -> "Embedder":
        """The front-end `model.*` describes for `vocab_size` tokens; `num_chars` sizes the char features
        (model.char_features), `num_conditions` the condition labels (model.condition, condition_dim).

        Parts are built in this order (their initial weights draw from the RNG as they always did): token
        embedding, char encoder, condition embedding. model.embedding_init draws the token and char
        embeddings (grutool.modules.embedding); the condition embedding keeps nn.Embedding's N(0, 1)."""
        embedding = make_embedding(vocab_size, m.embedding_dim, m.embedding_init, padding_idx=Vocab.pad_id)
        embedding.weight.requires_grad_(not m.freeze_embeddings)
        chars = (CharEncoder(num_chars, m.char_embedding_dim, m.char_hidden_size, m.cell, m.kernel,
                             embedding_init=m.embedding_init)
                 if num_chars and m.char_features else None)
        conditions = nn.Embedding(num_conditions, m.condition_dim) if num_conditions else None
        return cls(embedding, m.embedding_dropout, m.token_dropout, chars=chars, conditions=conditions,
                   condition_input=m.condition in ("input", "both"), name=name)

    @property
    def output_dim(self) -> int:
        """Features per step: E [+ 2c with char features] [+ condition_dim with the condition as input]."""
        chars = self.chars.get_output_dim() if self.chars is not None else 0
        condition = self.condition_embedding.embedding_dim if self.condition_input else 0
        return self.token_embedding().embedding_dim + chars + condition

    def token_embedding(self) -> nn.Embedding:
        """The input token embedding (where data.vectors are loaded)."""
        return getattr(self, self._embedding_name)

    def forward(self, ids: torch.Tensor, chars: Optional[torch.Tensor] = None,
                condition: Optional[torch.Tensor] = None) -> torch.Tensor:
        """ids (B, T), chars (B, T, W) with char features, condition (B,) with the condition as input
        -> (B, T, E [+ 2c] [+ C]), what the encoder reads."""
        if self.training and self.token_dropout > 0:
            ids = drop_tokens(ids, self.token_dropout)
        x = self.token_embedding()(ids)  # (B, T, E)
        if self.chars is not None:
            x = self.chars.append(x, chars)  # (B, T, E + 2c)
        x = self.embedding_dropout(x)
        if self.condition_input:
            B, T = ids.shape
            c = self.condition_embedding(condition)[:, None].expand(B, T, -1)  # (B, T, C)
            x = torch.cat([x, c.to(x.dtype)], dim=-1)  # (B, T, E + C)
        return x
