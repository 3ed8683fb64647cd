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

from grutool.config import Config, ModelConfig
from grutool.models.base import Model
from grutool.modules.embedder import Embedder
from grutool.modules.encoder import RecurrentEncoder
from grutool.modules.output import output_layers


class LMOutput(NamedTuple):
    logits: Optional[torch.Tensor]  # (B, T, V) next-token logits (adaptive softmax: log-probabilities);
                                    # None while training with adaptive softmax (only its loss is needed)
    state: object                   # the recurrent state after the last real step of each row


class LanguageModel(Model):
    def __init__(self, embedder: Embedder, encoder: RecurrentEncoder, m: ModelConfig):
        """Built parts in (the embedder with its condition embedding, if any); the output layer reads the
        encoder's states over the embedder's vocabulary; `m` gives condition, head_dropout, tie_embeddings
        and adaptive_cutoffs."""
        super().__init__(embedder)
        self.encoder = encoder
        embedding = embedder.token_embedding()
        vocab_size, H = embedding.num_embeddings, encoder.output_dim
        # condition -> h0 of every layer, (L*H) values
        self.condition_state = (nn.Linear(self.condition_embedding.embedding_dim, encoder.num_layers * H)
                                if self.condition_embedding is not None and m.condition in ("state", "both")
                                else None)
        self.head_dropout = nn.Dropout(m.head_dropout)
        self.adaptive = self.pre_output = self.out = None
        if m.adaptive_cutoffs:  # never tied (the config says so): clusters of their own
            self.adaptive = nn.AdaptiveLogSoftmaxWithLoss(H, vocab_size, list(m.adaptive_cutoffs), div_value=4.0)
        else:
            self.pre_output, self.out = output_layers(H, embedding, vocab_size, m.tie_embeddings)

    @classmethod
    def from_config(cls, cfg: Config, *, vocab_size: int, num_conditions: int = 0) -> "LanguageModel":
        """`vocab_size` tokens in and out; `num_conditions` condition labels (0: unconditioned)."""
        # A language model has never read model.token_dropout: kept so (its runs train as they did).
        m = cfg.model.model_copy(update={"token_dropout": 0.0})
        embedder = Embedder.from_config(m, vocab_size, num_conditions=num_conditions)
        encoder = RecurrentEncoder.from_config(m, embedder.output_dim)
        return cls(embedder, encoder, m)

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
        x = self.embed(ids, None, condition)  # (B, T, E [+ C])
        if state is None:
            state = self.initial_state(condition, ids.shape[0])
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
