"""The one way grutool makes an embedding table (word, char and target embeddings), with `model.embedding_init`.

`normal` is PyTorch's own nn.Embedding init, N(0, 1), untouched: the same RNG draws and tensors as a bare
nn.Embedding. The other two redraw the table right after it is made (so the parts built after it draw
from the RNG in the same order as before, only from a different state):

- `xavier_uniform`: U(-b, b), b = sqrt(6 / (num_embeddings + embedding_dim)) (Glorot, as flair and Ludwig
  start their embeddings); small for large vocabularies.
- `scaled_normal`: N(0, 1/embedding_dim), so a row's expected squared norm is 1 whatever its width.

The padding row stays zero under every init (nn.Embedding also keeps its gradient at zero).
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch
from torch import nn


def _xavier_uniform(weight: torch.Tensor) -> None:
    nn.init.xavier_uniform_(weight)  # fan_in = embedding_dim, fan_out = num_embeddings


def _scaled_normal(weight: torch.Tensor) -> None:
    nn.init.normal_(weight, std=1.0 / math.sqrt(weight.shape[1]))


# name -> redraw of a (num_embeddings, embedding_dim) table in place; None keeps nn.Embedding's N(0, 1).
# The names are model.embedding_init's (grutool.config); tests/models/test_embedding_init.py checks they agree.
EMBEDDING_INITS: dict[str, Optional[Callable[[torch.Tensor], None]]] = {
    "normal": None,
    "xavier_uniform": _xavier_uniform,
    "scaled_normal": _scaled_normal,
}


def make_embedding(num_embeddings: int, embedding_dim: int, init: str = "normal",
                   padding_idx: Optional[int] = None) -> nn.Embedding:
    """nn.Embedding(num_embeddings, embedding_dim, padding_idx) drawn by `init` (a name in EMBEDDING_INITS)."""
    embedding = nn.Embedding(num_embeddings, embedding_dim, padding_idx=padding_idx)
    redraw = EMBEDDING_INITS[init]
    if redraw is not None:
        with torch.no_grad():
            redraw(embedding.weight)
            if padding_idx is not None:
                embedding.weight[padding_idx].zero_()
    return embedding
