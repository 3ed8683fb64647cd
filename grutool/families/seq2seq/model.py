"""N -> M: the packed (bi)GRU encoder, a bridge, and a recurrent decoder with attention (Luong et al. 2015).

One decoder step, for the previous token y and the previous attentional vector o':

    h_t = RNN([embed(y); o'] (input feeding) or embed(y), h_{t-1})
    c_t, a_t = attention(h_t, encoder outputs)        a_t is zero at source padding
    o_t = tanh(W_c [h_t; c_t])                       (o_t = h_t without attention)
    logits = W_out o_t                               (tied: the target embedding matrix)

The decoder starts from the encoder's final state: per layer, cat(h_n[2l], h_n[2l+1])
(forward and backward halves) through a linear bridge and tanh.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from grutool.config import Config
from grutool.models.base import Model
from grutool.data.vocab import Vocab
from grutool.families.seq2seq.decoding import Generated, generate
from grutool.families.seq2seq.attention import Attention
from grutool.cells import get_cell
from grutool.modules.embedder import Embedder
from grutool.modules.embedding import make_embedding
from grutool.modules.encoder import RecurrentEncoder
from grutool.modules.masking import length_mask
from grutool.modules.output import output_layers

Targets = Union[torch.Tensor, dict]  # (B, M) target ids ending in <eos>, -100 after; or {"tokens": ..., "example": ...}


class Memory(NamedTuple):
    """What the decoder reads from the source; fixed for the whole output."""

    outputs: torch.Tensor           # (B, S, D*H) encoder outputs, zero at padding
    keys: Optional[torch.Tensor]    # (B, S, H_dec) attention keys (None without attention)
    mask: torch.Tensor              # (B, S) bool, True at real source tokens

    def select(self, index: torch.Tensor) -> "Memory":
        """Rows `index` (beam search copies each source once per hypothesis)."""
        return Memory(self.outputs.index_select(0, index),
                      self.keys.index_select(0, index) if self.keys is not None else None,
                      self.mask.index_select(0, index))


class DecoderState(NamedTuple):
    hidden: torch.Tensor | tuple    # (L, B, H_dec); LSTM: (h, c)
    feed: torch.Tensor              # (B, H_dec) previous attentional vector (input feeding); zeros at the start

    def select(self, index: torch.Tensor) -> "DecoderState":
        h = self.hidden
        h = tuple(x.index_select(1, index) for x in h) if isinstance(h, tuple) else h.index_select(1, index)
        return DecoderState(h, self.feed.index_select(0, index))


class Seq2SeqOutput(NamedTuple):
    """What a seq2seq model returns in the `logits` slot of `(logits, loss)`."""

    logits: Optional[torch.Tensor]  # (B, M, V) next-token scores under teacher forcing; None without targets
    hypotheses: Optional[Generated] # outputs generated in eval mode (what metrics score); None while training


class Seq2Seq(Model):
    def __init__(self, embedder: Embedder, target_embedding: nn.Embedding, encoder: RecurrentEncoder, cfg: Config):
        """Built parts in: the source front-end, the decoder's target embedding (built between the two, as
        it always was) and the encoder. The decoder has the encoder's hidden size and layers; `cfg` gives
        model.decoder_cell, attention, input_feeding, tie_embeddings, dropout, head_dropout, kernel,
        train.teacher_forcing, label_smoothing and the decoding defaults."""
        super().__init__(embedder)
        m, t = cfg.model, cfg.train
        self.teacher_forcing, self.label_smoothing = t.teacher_forcing, t.label_smoothing
        self.decoder_cell = m.decoder_cell or m.cell
        # The source side is the shared embedder (token dropout, embedding, embedding_dropout); the target
        # embedding is the decoder's input (and maybe the output layer's weight), read with the same dropout.
        self.target_embedding = target_embedding
        self.encoder = encoder
        enc_dim, H = encoder.output_dim, encoder.hidden_size
        self.bridge = nn.Linear(enc_dim, H)
        self.attention = Attention(m.attention, H, enc_dim) if m.attention != "none" else None
        self.input_feeding = m.input_feeding and self.attention is not None
        rnn_input = target_embedding.embedding_dim + (H if self.input_feeding else 0)
        # The decoder runs one step per call while generating (and with input feeding, while training);
        # model.kernel auto picks the kernel per call, by the one policy the cell registry states.
        self._decoder_cell = get_cell(self.decoder_cell)
        self.decoder = self._decoder_cell.build(rnn_input, H, num_layers=encoder.num_layers, dropout=m.dropout,
                                                kernel=m.kernel)
        self.combine = nn.Linear(H + enc_dim, H) if self.attention is not None else None
        self.head_dropout = nn.Dropout(m.head_dropout)
        self.pre_output, self.out = output_layers(H, target_embedding, target_embedding.num_embeddings,
                                                  m.tie_embeddings)
        # Defaults for generation in eval mode (validation, eval); infer may override them.
        self.decoding = cfg.decoding.model_dump()
        self.generates = True  # eval mode generates too; `shapes` traces the teacher-forced pass alone

    @classmethod
    def from_config(cls, cfg: Config, *, vocab_size: int, num_outputs: int) -> "Seq2Seq":
        """`vocab_size` source tokens, `num_outputs` target tokens."""
        embedder = Embedder.from_config(cfg.model, vocab_size, name="source_embedding")
        target_embedding = make_embedding(num_outputs, cfg.model.embedding_dim, cfg.model.embedding_init,
                                          padding_idx=Vocab.pad_id)
        encoder = RecurrentEncoder.from_config(cfg.model, embedder.output_dim)
        return cls(embedder, target_embedding, encoder, cfg)

    # --- pieces shared by training and generation ------------------------------------------------

    def encode(self, ids: torch.Tensor, lengths: torch.Tensor) -> tuple[Memory, DecoderState]:
        """ids (B, S), lengths (B,) on CPU -> what the decoder reads, and its first state."""
        enc = self.encoder(self.embed(ids), lengths)
        mask = length_mask(lengths, ids.shape[1], ids.device)  # (B, S)
        L, D, H = self.encoder.num_layers, self.encoder.num_directions, self.encoder.hidden_size
        B = ids.shape[0]
        # h_n is (L*D, B, H), layer-major: layer l's directions are rows l*D .. l*D+D-1.
        final = enc.h_n.view(L, D, B, H).permute(0, 2, 1, 3).reshape(L, B, D * H)  # (L, B, D*H)
        h0 = torch.tanh(self.bridge(final))  # (L, B, H_dec)
        hidden = self._decoder_cell.initial_state(h0)
        keys = self.attention.keys(enc.outputs) if self.attention is not None else None  # (B, S, H_dec)
        return Memory(enc.outputs, keys, mask), DecoderState(hidden, h0.new_zeros(B, h0.shape[-1]))

    def _attend(self, out: torch.Tensor, memory: Memory) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Decoder outputs (B, T, H) -> attentional vectors (B, T, H) and weights (B, T, S)."""
        if self.attention is None:
            return out, None
        context, weights = self.attention(out, memory.keys, memory.outputs, memory.mask)  # (B, T, D*H), (B, T, S)
        return torch.tanh(self.combine(torch.cat([out, context], dim=-1))), weights

    def _logits(self, o: torch.Tensor) -> torch.Tensor:
        o = self.head_dropout(o)
        if self.pre_output is not None:
            o = self.pre_output(o)
        return self.out(o)  # (..., V)

    def step(self, y: torch.Tensor, state: DecoderState, memory: Memory
             ) -> tuple[torch.Tensor, DecoderState, Optional[torch.Tensor]]:
        """One output token: previous tokens y (B,) -> logits (B, V), next state, attention weights (B, S)."""
        x = self.embedding_dropout(self.target_embedding(y))[:, None]  # (B, 1, E)
        if self.input_feeding:
            x = torch.cat([x, state.feed[:, None].to(x.dtype)], dim=-1)  # (B, 1, E + H)
        out, hidden = self.decoder(x, state.hidden)  # (B, 1, H)
        o, weights = self._attend(out, memory)  # (B, 1, H), (B, 1, S)
        return self._logits(o[:, 0]), DecoderState(hidden, o[:, 0]), None if weights is None else weights[:, 0]

    # --- training ----------------------------------------------------------------------------

    def teacher_forced(self, tokens: torch.Tensor, memory: Memory, state: DecoderState) -> torch.Tensor:
        """Logits (B, M, V) for gold targets (B, M): the decoder reads <bos> y_1 .. y_{M-1}.

        While training with teacher_forcing < 1, each example's next input is, with
        probability 1 - teacher_forcing, the decoder's own best guess instead of the gold token.
        """
        B, M = tokens.shape
        bos = tokens.new_full((B, 1), Vocab.bos_id)
        inputs = torch.cat([bos, tokens[:, :-1]], dim=1)  # (B, M)
        inputs = inputs.masked_fill(inputs < 0, Vocab.pad_id)  # -100 padding -> <pad>
        ratio = self.teacher_forcing if self.training else 1.0
        if not self.input_feeding and ratio >= 1.0:
            # Every input is known and no step feeds the next: run the whole target in one call.
            # The decoder is unidirectional, so padding after a target's end cannot change its steps.
            out, _ = self.decoder(self.embedding_dropout(self.target_embedding(inputs)), state.hidden)  # (B, M, H)
            o, _ = self._attend(out, memory)
            return self._logits(o)
        steps = []
        y = inputs[:, 0]
        for t in range(M):
            logits, state, _ = self.step(y, state, memory)  # (B, V)
            steps.append(logits)
            if t + 1 < M:
                y = inputs[:, t + 1]
                if ratio < 1.0:
                    own = torch.rand(B, device=y.device) >= ratio
                    y = torch.where(own, logits.detach().argmax(-1), y)
        return torch.stack(steps, dim=1)  # (B, M, V)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor, targets: Optional[Targets] = None
                ) -> tuple[Seq2SeqOutput, Optional[torch.Tensor]]:
        """ids (B, S) sources, lengths (B,) on CPU; targets as collate builds them.

        Training: teacher-forced logits and the (label-smoothed) loss per target token.
        Eval mode: also generates outputs with the `decoding` settings, for the metrics.
        """
        tokens = targets["tokens"] if isinstance(targets, dict) else targets  # (B, M)
        memory, state = self.encode(ids, lengths)
        logits = loss = None
        if tokens is not None:
            logits = self.teacher_forced(tokens, memory, state)  # (B, M, V)
            n = (tokens != -100).sum().clamp(min=1)
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), tokens.reshape(-1),
                                   ignore_index=-100, label_smoothing=self.label_smoothing, reduction="sum") / n
        hypotheses = None
        if not self.training and self.generates:
            hypotheses = generate(self, memory, state, lengths, **self.decoding)
        return Seq2SeqOutput(logits, hypotheses), loss
