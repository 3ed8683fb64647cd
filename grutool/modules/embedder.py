"""The input side of the word-level families, in one place: token dropout, the token embedding (where
data.vectors are loaded), optional char features and `embedding_dropout`.

`Embedder` is a base class of the models, not a child module: its parts are registered on the model
itself (`embedding`, `embedding_dropout`, `chars`), so state_dict keys (`embedding.weight`,
`chars.embedding.weight`, `chars.encoder.*`), the shapes trace and the export code read the same paths
in every family, and checkpoints written before it load unchanged. Seq2seq embeds its source through it too,
under the name it always had (`source_embedding`); its target embedding belongs to the decoder (it may be
tied to the output layer) and stays the model's own.

Order: `embedding_dropout` acts on what the encoder reads, the word vector with its char vector
appended. One rule for every family, the char BiGRU's output is regularised like the word vector
(it has no dropout of its own), and it is what the tagger (tagging, pos, atis configs) always did.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import torch
from torch import nn

from grutool.data.vocab import Vocab
from grutool.modules.char_encoder import CharEncoder
from grutool.modules.masking import drop_tokens

if TYPE_CHECKING:
    from grutool.config import ModelConfig


def embedder_options(m: "ModelConfig", num_chars: int = 0) -> dict:
    """Constructor keywords of the token embedding: size, freezing, the two input dropouts and, with
    model.char_features and `num_chars`, the char features appended to each word vector."""
    return dict(embedding_dim=m.embedding_dim, freeze_embeddings=m.freeze_embeddings,
                embedding_dropout=m.embedding_dropout, token_dropout=m.token_dropout,
                num_chars=num_chars if m.char_features else 0, char_embedding_dim=m.char_embedding_dim,
                char_hidden_size=m.char_hidden_size)


class Embedder(nn.Module):
    """Base of the models that read word ids: call `init_embedder` in `__init__`, then `embed` in forward."""

    def init_embedder(self, vocab_size: int, embedding_dim: int, *, freeze_embeddings: bool = False,
                      embedding_dropout: float = 0.0, token_dropout: float = 0.0, num_chars: int = 0,
                      char_embedding_dim: int = 32, char_hidden_size: int = 32, cell: str = "gru",
                      kernel: str = "auto", name: str = "embedding") -> int:
        """Build the parts (in this order: their initial weights draw from the RNG as they always did) and
        return the size of each vector `embed` makes (the encoder's `input_size`). `name`: the attribute (and
        state_dict prefix) of the token embedding."""
        self.token_dropout = token_dropout
        self._embedding_name = name
        embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=Vocab.pad_id)
        embedding.weight.requires_grad_(not freeze_embeddings)
        setattr(self, name, embedding)
        self.embedding_dropout = nn.Dropout(embedding_dropout)
        self.chars = CharEncoder(num_chars, char_embedding_dim, char_hidden_size, cell, kernel) if num_chars else None
        return embedding_dim + (self.chars.get_output_dim() if self.chars is not None else 0)

    def token_embedding(self) -> nn.Embedding:
        """The input token embedding (where data.vectors are loaded)."""
        return getattr(self, self._embedding_name)

    def embed(self, ids: torch.Tensor, chars: Optional[torch.Tensor] = None) -> torch.Tensor:
        """ids (B, T), chars (B, T, W) with char features -> (B, T, E [+ 2c]), what the encoder reads."""
        if self.training and self.token_dropout > 0:
            ids = drop_tokens(ids, self.token_dropout)
        x = self.token_embedding()(ids)  # (B, T, E)
        if self.chars is not None:
            x = self.chars.append(x, chars)  # (B, T, E + 2c)
        return self.embedding_dropout(x)
