"""One vector per token from its characters: char embedding -> bidirectional GRU -> final state.

The characters go through the same packed `RecurrentEncoder` as the words, so
padding characters never enter the recurrence and padding tokens (no characters)
get a zero vector. Each distinct spelling in a batch is encoded once.
"""

from __future__ import annotations

import torch
from torch import nn

from grutool.data.vocab import Vocab
from grutool.modules.embedding import make_embedding
from grutool.modules.encoder import RecurrentEncoder
from grutool.modules.tracing import exporting


class CharEncoder(nn.Module):
    def __init__(self, num_chars: int, embedding_dim: int, hidden_size: int, cell: str = "gru",
                 kernel: str = "auto", embedding_init: str = "normal"):
        super().__init__()
        self.embedding = make_embedding(num_chars, embedding_dim, embedding_init, padding_idx=Vocab.pad_id)
        self.encoder = RecurrentEncoder(embedding_dim, hidden_size, num_layers=1, bidirectional=True, cell=cell,
                                        kernel=kernel)

    def get_output_dim(self) -> int:
        return self.encoder.get_output_dim()

    def append(self, x: torch.Tensor, chars) -> torch.Tensor:
        """Word vectors x (B, T, E) -> (B, T, E + 2 * hidden_size), each token's char vector appended."""
        if chars is None:
            raise ValueError("this model reads characters: pass chars (B, T, W)")
        return torch.cat([x, self(chars).to(x.dtype)], dim=-1)

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        """chars: (B, T, W) char ids, 0-padded on both axes. Returns (B, T, 2 * hidden_size)."""
        B, T, W = chars.shape
        if B * T * W == 0:
            return chars.new_zeros(B, T, self.get_output_dim(), dtype=self.embedding.weight.dtype)
        if exporting():
            # An exported graph has no data-dependent shapes (torch.unique's): encode every token.
            lengths = (chars != Vocab.pad_id).sum(-1).reshape(B * T)  # (B*T,)
            return self.encoder(self.embedding(chars.reshape(B * T, W)), lengths).final.view(B, T, -1)
        # Words repeat within a batch (the, of, punctuation): encode each spelling once.
        spellings, where = torch.unique(chars.reshape(B * T, W), dim=0, return_inverse=True)  # (U, W), (B*T,)
        # The pad id never encodes a character, so counting non-pad ids gives each word's exact length.
        lengths = (spellings != Vocab.pad_id).sum(1).cpu()  # (U,); 0 for padding tokens
        enc = self.encoder(self.embedding(spellings), lengths)  # final: (U, 2h), zeros where length is 0
        return enc.final[where].view(B, T, -1)  # (B, T, 2h)
