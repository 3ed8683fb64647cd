"""What the word-level families read from model config for their input embedding, in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from grutool.config import ModelConfig


def embedder_options(m: "ModelConfig", num_chars: int = 0) -> dict:
    """Constructor keywords of the token embedding: size, freezing, the two input dropouts and, with
    model.char_features and `num_chars`, the char features appended to each word vector."""
    return dict(embedding_dim=m.embedding_dim, freeze_embeddings=m.freeze_embeddings,
                embedding_dropout=m.embedding_dropout, token_dropout=m.token_dropout,
                num_chars=num_chars if m.char_features else 0, char_embedding_dim=m.char_embedding_dim,
                char_hidden_size=m.char_hidden_size)
