"""The output layer over a vocabulary, optionally tied to an embedding matrix (seq2seq decoders, language models)."""

from __future__ import annotations

from typing import Optional

from torch import nn


def output_layers(hidden_size: int, embedding: nn.Embedding, vocab_size: int,
                  tie: bool) -> tuple[Optional[nn.Linear], nn.Linear]:
    """(projection or None, output layer). Tied, the output matrix is the embedding itself, one (V, E) tensor,
    so a state of another width is projected to E first."""
    pre_output, width = None, hidden_size
    if tie and hidden_size != embedding.embedding_dim:
        pre_output, width = nn.Linear(hidden_size, embedding.embedding_dim), embedding.embedding_dim
    out = nn.Linear(width, vocab_size)
    if tie:
        out.weight = embedding.weight
    return pre_output, out
