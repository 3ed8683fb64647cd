"""Attention of decoder states over encoder outputs, with source padding masked out.

Scores (Bahdanau et al. 2015; Luong et al. 2015), for a query q and an encoder output k:

    additive   v . tanh(W_q q + W_k k)
    dot        q . k                     (needs equal sizes)
    general    q . (W k)

The key side (W_k k, W k) depends on the source only, so `keys` computes it once per
sentence and every decoding step reuses it.
"""

from __future__ import annotations

import torch
from torch import nn


class Attention(nn.Module):
    def __init__(self, kind: str, query_size: int, memory_size: int):
        super().__init__()
        if kind not in ("additive", "dot", "general"):
            raise ValueError(f"unknown attention {kind!r}")
        if kind == "dot" and query_size != memory_size:
            raise ValueError(f"dot attention needs equal sizes (query {query_size}, memory {memory_size})")
        self.kind = kind
        self.key = nn.Linear(memory_size, query_size, bias=False) if kind != "dot" else None
        self.query = nn.Linear(query_size, query_size) if kind == "additive" else None
        self.v = nn.Linear(query_size, 1, bias=False) if kind == "additive" else None

    def keys(self, memory: torch.Tensor) -> torch.Tensor:
        """memory: (B, S, K) encoder outputs -> (B, S, Q) keys, computed once per source."""
        return self.key(memory) if self.key is not None else memory

    def forward(self, query: torch.Tensor, keys: torch.Tensor, memory: torch.Tensor,
                mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """query (B, T, Q) for T decoder steps; keys (B, S, Q); memory (B, S, K); mask (B, S) True at real tokens.

        Returns the context (B, T, K) and the weights (B, T, S): zero at padding, all zero for an empty source.
        """
        if self.kind == "additive":
            scores = self.v(torch.tanh(self.query(query)[:, :, None] + keys[:, None])).squeeze(-1)  # (B, T, S)
        else:
            scores = torch.bmm(query, keys.transpose(1, 2))  # (B, T, S)
        m = mask[:, None, :]  # (B, 1, S)
        scores = scores.masked_fill(~m, torch.finfo(scores.dtype).min)
        # Multiplying by the mask makes padding exactly 0 and an empty source's row all 0 (not uniform).
        weights = torch.softmax(scores, dim=-1) * m  # (B, T, S)
        return torch.bmm(weights, memory), weights  # (B, T, K), (B, T, S)
