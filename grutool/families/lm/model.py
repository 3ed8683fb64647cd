"""N -> N and 1 -> N: embedding (+ condition) -> unidirectional recurrent stack -> (tied) softmax over the vocabulary.

One step, for token x_t and an optional condition c (a label acting on every output):

    h_t = RNN([embed(x_t); embed_c(c)] (condition input) or embed(x_t), h_{t-1})
    h_0 = tanh(W_c embed_c(c)) (condition state), the caller's state (stateful use), or zeros
    p(x_{t+1} | x_<=t, c) = softmax(W_o h_t)  (W_o = the embedding matrix with tied weights)

The same forward serves training, evaluation, scoring and generation: it takes a `state` and returns
the final one, so h_n of one call becomes h_0 of the next (truncated BPTT, streaming, sampling).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn

from grutool.config import Config
from grutool.modules.embedder import Embedder
from grutool.modules.encoder import RecurrentEncoder
from grutool.modules.output import output_layers


class LMOutput(NamedTuple):
    logits: Optional[torch.Tensor]  # (B, T, V) next-token logits (adaptive softmax: log-probabilities);
                                    # None while training with adaptive softmax (only its loss is needed)
    state: object                   # the recurrent state after the last real step of each row


class LanguageModel(Embedder):
    def __init__(self, vocab_size: int, embedding_dim: int, hidden_size: int, num_layers: int = 1,
                 cell: str = "gru", dropout: float = 0.0, embedding_dropout: float = 0.0,
                 head_dropout: float = 0.0, tie_embeddings: bool = False, num_conditions: int = 0,
                 condition_dim: int = 16, condition: str = "input",
                 adaptive_cutoffs: Optional[list[int]] = None, kernel: str = "auto",
                 layer_norm: bool = False, residual: bool = False):
        super().__init__()
        input_size = self.init_embedder(vocab_size, embedding_dim, embedding_dropout=embedding_dropout)
        self.condition_input = bool(num_conditions) and condition in ("input", "both")
        self.condition_embedding = nn.Embedding(num_conditions, condition_dim) if num_conditions else None
        input_size += condition_dim if self.condition_input else 0
        self.encoder = RecurrentEncoder(input_size, hidden_size, num_layers, bidirectional=False, dropout=dropout,
                                        cell=cell, kernel=kernel, layer_norm=layer_norm, residual=residual)
        # condition -> h0 of every layer, (L*H) values
        self.condition_state = (nn.Linear(condition_dim, num_layers * hidden_size)
                                if num_conditions and condition in ("state", "both") else None)
        self.head_dropout = nn.Dropout(head_dropout)
        self.adaptive = self.pre_output = self.out = None
        if adaptive_cutoffs:  # never tied (the config says so): clusters of their own
            self.adaptive = nn.AdaptiveLogSoftmaxWithLoss(hidden_size, vocab_size, list(adaptive_cutoffs), div_value=4.0)
        else:
            self.pre_output, self.out = output_layers(hidden_size, self.embedding, vocab_size, tie_embeddings)

    @classmethod
    def from_config(cls, cfg: Config, *, vocab_size: int, num_conditions: int = 0) -> "LanguageModel":
        """`vocab_size` tokens in and out; `num_conditions` condition labels (0: unconditioned)."""
        m = cfg.model
        return cls(vocab_size, m.embedding_dim, m.hidden_size, m.num_layers, m.cell, m.dropout,
                   m.embedding_dropout, m.head_dropout, m.tie_embeddings, num_conditions, m.condition_dim,
                   m.condition, m.adaptive_cutoffs, m.kernel, m.layer_norm, m.residual)

    def initial_state(self, condition: Optional[torch.Tensor], batch_size: int):
        """h0 from the condition (model.condition state/both), else None (zeros)."""
        if self.condition_state is None or condition is None:
            return None
        L, H = self.encoder.num_layers, self.encoder.hidden_size
        h0 = torch.tanh(self.condition_state(self.condition_embedding(condition)))  # (B, L*H)
        return self.encoder.initial_state(h0.view(batch_size, L, H).transpose(0, 1).contiguous())  # (L, B, H)

    def features(self, ids: torch.Tensor, lengths: torch.Tensor, condition: Optional[torch.Tensor] = None,
                 state=None) -> tuple[torch.Tensor, object]:
        """ids (B, T), lengths (B,) on CPU -> what the output layer reads (B, T, H or E), final state."""
        B, T = ids.shape
        x = self.embed(ids)  # (B, T, E)
        if self.condition_input:
            c = self.condition_embedding(condition)[:, None].expand(B, T, -1)  # (B, T, C)
            x = torch.cat([x, c.to(x.dtype)], dim=-1)  # (B, T, E + C)
        if state is None:
            state = self.initial_state(condition, B)
        enc = self.encoder(x, lengths, state)
        o = self.head_dropout(enc.outputs)  # (B, T, H)
        if self.pre_output is not None:
            o = self.pre_output(o)  # (B, T, E)
        return o, enc.state

    def log_probs(self, o: torch.Tensor) -> torch.Tensor:
        """Next-token log-probabilities (..., V) from features (..., H or E)."""
        if self.adaptive is not None:
            return self.adaptive.log_prob(o.reshape(-1, o.shape[-1]).float()).view(*o.shape[:-1], -1)
        return F.log_softmax(self.out(o).float(), dim=-1)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor, targets: Optional[torch.Tensor] = None,
                condition: Optional[torch.Tensor] = None, state=None) -> tuple[LMOutput, Optional[torch.Tensor]]:
        """ids (B, T) inputs, lengths (B,) on CPU, targets (B, T) next tokens (-100 at padding), condition (B,),
        state: the initial recurrent state (None: the condition's, or zeros). Loss: mean nats per target token."""
        o, state = self.features(ids, lengths, condition, state)
        if self.adaptive is not None:
            logits = None if self.training else self.log_probs(o)
            loss = None
            if targets is not None:
                real = targets != -100
                loss = self.adaptive(o[real].float(), targets[real]).loss
            return LMOutput(logits, state), loss
        logits = self.out(o)  # (B, T, V)
        loss = None
        if targets is not None:
            n = (targets != -100).sum().clamp(min=1)
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                   ignore_index=-100, reduction="sum") / n
        return LMOutput(logits, state), loss
