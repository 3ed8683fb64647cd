"""N -> N: embedding (+ char features) -> packed recurrent encoder -> a tag per token (softmax or CRF);
with `num_intents`, also an intent per sentence from the same encoder (the joint model)."""

from __future__ import annotations

from typing import NamedTuple, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from grutool.config import Config, ModelConfig
from grutool.families.tagger.crf import CRF
from grutool.models.base import Model
from grutool.modules.embedder import Embedder
from grutool.modules.encoder import RecurrentEncoder
from grutool.modules.masking import length_mask
from grutool.modules.numeric import NumericEmbedder
from grutool.modules.pooling import Pooling

Targets = Union[torch.Tensor, dict]  # tags (B, T), or {"tags": (B, T), "intent": (B,)} for the joint model


class TaggerOutput(NamedTuple):
    """What a tagger returns in the `logits` slot of `(logits, loss)`."""

    emissions: torch.Tensor         # (B, T, C) per-token tag scores
    tags: Optional[torch.Tensor]    # (B, T) decoded tags (argmax, or Viterbi with a CRF), 0 at padding; None while training
    intent: Optional[torch.Tensor]  # (B, K) intent logits (joint model), else None


class Tagger(Model):
    def __init__(self, embedder: Embedder, encoder: RecurrentEncoder, num_tags: int, m: ModelConfig, *,
                 num_intents: int = 0, constraints: Optional[tuple] = None):
        """Built parts in, the heads sized from the encoder; `m` gives head_dropout, crf, pooling and the loss
        weights; `num_intents` > 0 adds the joint model's intent head; `constraints` (allowed start,
        transition and end tags) restrict a CRF to the tag scheme's valid paths."""
        super().__init__(embedder)
        # train.label_smoothing (from_config sets it): smooths the softmax tag loss and the intent loss while
        # training; a CRF's sentence-level loss is left as it is.
        self.label_smoothing = 0.0
        self.tag_loss_weight, self.intent_loss_weight = m.tag_loss_weight, m.intent_loss_weight
        self.encoder = encoder
        self.head_dropout = nn.Dropout(m.head_dropout)
        self.head = nn.Linear(encoder.output_dim, num_tags)
        self.crf = CRF(num_tags, *(constraints or ())) if m.crf else None
        self.pooling = Pooling(m.pooling, encoder.output_dim) if num_intents else None
        self.intent_head = nn.Linear(encoder.output_dim, num_intents) if num_intents else None

    @classmethod
    def from_config(cls, cfg: Config, *, vocab_size: int, num_outputs: int, num_chars: int = 0,
                    num_intents: int = 0, constraints: Optional[tuple] = None, channels: int = 0) -> "Tagger":
        """`num_outputs` tags; `num_chars` sizes the char features (model.char_features); `channels` > 0: numeric
        sequences of that many values per step, read by the numeric front-end instead of tokens."""
        if channels:
            embedder = NumericEmbedder.from_config(cfg.model, channels, mask=cfg.data.missing == "mask")
        else:
            embedder = Embedder.from_config(cfg.model, vocab_size, num_chars=num_chars)
        encoder = RecurrentEncoder.from_config(cfg.model, embedder.output_dim)
        model = cls(embedder, encoder, num_outputs, cfg.model, num_intents=num_intents, constraints=constraints)
        model.label_smoothing = cfg.train.label_smoothing
        return model

    def scores(self, ids: torch.Tensor, lengths: torch.Tensor, chars: Optional[torch.Tensor] = None,
               h0: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, Optional[torch.Tensor], torch.Tensor]:
        """Emissions (B, T, C), intent logits (B, K) for the joint model (else None) and the encoder's
        h_n (L*D, B, H): everything but decoding and the loss (what an exported graph holds)."""
        enc = self.encoder(self.embed(ids, chars), lengths, h0)
        emissions = self.head(self.head_dropout(enc.outputs))  # (B, T, C)
        intent = None
        if self.intent_head is not None:
            mask = length_mask(lengths, ids.shape[1], ids.device)  # (B, T)
            intent = self.intent_head(self.head_dropout(self.pooling(enc, mask)))  # (B, K)
        return emissions, intent, enc.h_n

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor, targets: Optional[Targets] = None,
                chars: Optional[torch.Tensor] = None) -> tuple[TaggerOutput, Optional[torch.Tensor]]:
        """ids: (B, T); lengths: (B,) CPU; chars: (B, T, W) with char features.

        targets: tag ids (B, T), -100 at padding, ids >= num_tags for tags never seen in
        training; for the joint model a dict that adds intent ids (B,).
        """
        emissions, intent, _ = self.scores(ids, lengths, chars)  # (B, T, C), (B, K) or None
        mask = length_mask(lengths, ids.shape[1], ids.device)  # (B, T)
        # Decoding is skipped while training: the loop only needs the loss there.
        tags = None if self.training else self.decode(emissions, mask)
        loss = None
        if targets is not None:
            loss = self.loss(emissions, intent, mask, targets)
        return TaggerOutput(emissions, tags, intent), loss

    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Best tags (B, T), 0 at padding."""
        if self.crf is not None:
            return self.crf.viterbi(emissions, mask)
        return emissions.argmax(-1).masked_fill(~mask, 0)

    def loss(self, emissions: torch.Tensor, intent: Optional[torch.Tensor], mask: torch.Tensor,
             targets: Targets) -> torch.Tensor:
        tags = targets["tags"] if isinstance(targets, dict) else targets  # (B, T)
        C = emissions.shape[-1]
        # Tags the model never saw cannot be predicted; they count as errors in the metrics
        # but are left out of the loss.
        unseen = tags >= C  # (B, T)
        known = tags.masked_fill(unseen, -100)
        smoothing = self.label_smoothing if self.training else 0.0  # validation's loss is the plain NLL
        if self.crf is not None:
            # A path through an unseen tag has no score: leave such sentences out of the loss.
            keep = mask & ~unseen.any(1, keepdim=True)  # (B, T)
            nll = self.crf.nll(emissions, known.clamp(min=0), keep)  # (B,)
            tag_loss = nll.sum() / keep.sum().clamp(min=1)  # per token, like the softmax loss
        else:
            n = (known != -100).sum().clamp(min=1)
            tag_loss = F.cross_entropy(emissions.float().reshape(-1, C), known.reshape(-1), ignore_index=-100,
                                       label_smoothing=smoothing, reduction="sum") / n
        if self.intent_head is None:
            return tag_loss
        gold = targets["intent"]  # (B,)
        gold = gold.masked_fill(gold >= intent.shape[-1], -100)
        n = (gold != -100).sum().clamp(min=1)
        intent_loss = F.cross_entropy(intent.float(), gold, ignore_index=-100, label_smoothing=smoothing,
                                      reduction="sum") / n
        return self.tag_loss_weight * tag_loss + self.intent_loss_weight * intent_loss
