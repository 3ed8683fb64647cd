"""Sequence tagging (N -> N) and joint intent + tags: sentences to encoded splits, metrics, predictions."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Optional

import torch

from grutool.config import Config
from grutool.data import schemes
from grutool.data.batching import EncodedSplit, sorted_batches
from grutool.data.tagging import Sentence, read_sentences, to_model_scheme
from grutool.data.tokenize import get_tokenizer
from grutool.data.vocab import LabelVocab, Vocab
from grutool.errors import UserError, listed
from grutool.metrics_tagging import TaggingMetrics
from grutool.tasks.classifier import Prepared

log = logging.getLogger("grutool")


@dataclass
class TaggingPrepared(Prepared):
    intents: Optional[LabelVocab] = None  # joint task (chars, for model.char_features, comes from Prepared)


class TaggerTask:
    def __init__(self, name: str = "tagger"):
        self.name = name
        self.joint = name == "joint"

    # --- reading ---------------------------------------------------------------------

    def read(self, cfg: Config, source: str, name: str) -> list[Sentence]:
        """A labelled split with tags in the model's scheme."""
        return to_model_scheme(read_sentences(cfg.data, source, need_intents=self.joint), cfg.data, name)

    def model_scheme(self, cfg: Config) -> str:
        return cfg.data.convert_to or cfg.data.scheme

    # --- encoding --------------------------------------------------------------------

    def encode(self, cfg: Config, vocab: Vocab, tokens: list[list[str]], labels: Optional[LabelVocab] = None,
               tags: Optional[list[list[str]]] = None, intents: Optional[LabelVocab] = None,
               gold_intents: Optional[list[str]] = None, chars: Optional[Vocab] = None) -> EncodedSplit:
        """Ids (lower-cased when data.lowercase), chars (original case) and, when given, target ids.

        Gold tags and intents the model never saw get ids after the model's own (see metrics).
        """
        lower = cfg.data.lowercase
        ids = [torch.tensor(vocab.encode([t.lower() for t in s] if lower else s), dtype=torch.long) for s in tokens]
        split = EncodedSplit(ids, None, [" ".join(s) for s in tokens], scheme=self.model_scheme(cfg))
        if chars is not None:
            split.chars = [chars.encode_chars(s, cfg.data.max_word_length) for s in tokens]  # each (T_i, W_i)
        if tags is not None:
            names = list(labels.itos) + sorted({t for s in tags for t in s} - set(labels.stoi))
            index = {n: i for i, n in enumerate(names)}
            split.targets = [torch.tensor([index[t] for t in s], dtype=torch.long) for s in tags]
            split.label_names = names
        if gold_intents is not None:
            names = list(intents.itos) + sorted(set(gold_intents) - set(intents.stoi))
            index = {n: i for i, n in enumerate(names)}
            split.intents = [torch.tensor(index[g]) for g in gold_intents]
            split.intent_names = names
        return split

    def prepare(self, cfg: Config, vocab: Optional[Vocab] = None, labels: Optional[LabelVocab] = None,
                intents: Optional[LabelVocab] = None, chars: Optional[Vocab] = None) -> TaggingPrepared:
        """Read every configured split, build vocabularies on train (unless given), encode all."""
        d = cfg.data
        sentences = self.read(cfg, d.train, "train")
        empty = [s for s in sentences if not s.tokens]
        if len(empty) == len(sentences):
            raise UserError(f"{d.train}: every sentence is empty (no tokens)")
        if empty:
            # An empty sentence has no tags to learn from (and for joint, no words behind its intent).
            log.warning("train: %d empty sentence(s) (no tokens) are skipped, first at %s", len(empty), empty[0].where)
            sentences = [s for s in sentences if s.tokens]
        if d.max_length is not None:
            long = sum(1 for s in sentences if len(s.tokens) > d.max_length)
            if long:
                log.info("train: %d sentence(s) longer than data.max_length=%d are truncated", long, d.max_length)
                sentences = [Sentence(s.tokens[:d.max_length], s.tags[:d.max_length], s.intent, s.where)
                             for s in sentences]
        tokens = [s.tokens for s in sentences]
        tags = [s.tags for s in sentences]
        vocab = vocab or Vocab.build([[t.lower() for t in s] if d.lowercase else s for s in tokens],
                                     d.min_freq, d.max_size)
        labels = labels or LabelVocab.build(t for s in tags for t in s)
        if len(labels) < 2:
            raise UserError(f"{d.train}: only one tag ({labels.itos[0]!r}); a tagger needs at least two")
        gold_intents = [s.intent for s in sentences] if self.joint else None
        if self.joint:
            intents = intents or LabelVocab.build(gold_intents)
        if cfg.model.char_features:
            chars = chars or Vocab.build([list(t[:d.max_word_length]) for s in tokens for t in s])
        else:
            chars = None
        splits = {"train": self.encode(cfg, vocab, tokens, labels, tags, intents, gold_intents, chars)}
        for name in ("validation", "test"):
            source = getattr(d, name)
            if source is not None:
                splits[name] = self.encode_split(cfg, vocab, labels, source, name, intents, chars)
        return TaggingPrepared(vocab, labels, splits, chars=chars, intents=intents)

    def encode_split(self, cfg: Config, vocab: Vocab, labels: LabelVocab, source: str, name: str,
                     intents: Optional[LabelVocab] = None, chars: Optional[Vocab] = None) -> EncodedSplit:
        """A labelled evaluation split; tags and intents the model never saw are reported, then scored as errors.

        Empty sentences are kept: they have no tags to score, and the joint model still
        predicts their intent (from an all-zero encoder state).
        """
        sentences = self.read(cfg, source, name)
        tags = [s.tags for s in sentences]
        all_tags = Counter(t for s in tags for t in s)
        unseen = Counter({t: n for t, n in all_tags.items() if t not in labels.stoi})
        if unseen and sum(unseen.values()) == sum(all_tags.values()):
            raise UserError(f"{source}: none of its tags {sorted(unseen)[:10]} were seen in training "
                            f"(model tags: {labels.itos[:10]}); is this the right dataset and data.tag_column?")
        if unseen:
            log.warning("%s: %d token(s) have tags never seen in training, counted as errors: %s",
                        name, sum(unseen.values()), listed(unseen, 10))
        gold_intents = None
        if self.joint:
            gold_intents = [s.intent for s in sentences]
            unseen_intents = Counter(g for g in gold_intents if g not in intents.stoi)
            if len(unseen_intents) and sum(unseen_intents.values()) == len(gold_intents):
                raise UserError(f"{source}: none of its intents {sorted(unseen_intents)[:10]} were seen in training "
                                f"(model intents: {intents.itos[:10]}); is this the right dataset?")
            if unseen_intents:
                log.warning("%s: %d sentence(s) have intents never seen in training, counted as errors: %s",
                            name, sum(unseen_intents.values()), listed(unseen_intents, 10))
        return self.encode(cfg, vocab, [s.tokens for s in sentences], labels, tags, intents, gold_intents, chars)

    def metrics(self, split: EncodedSplit) -> TaggingMetrics:
        return TaggingMetrics(split.label_names, split.scheme, split.intent_names if self.joint else None)

    # --- prediction ------------------------------------------------------------------

    @torch.no_grad()
    def predict(self, predictor, texts: list[str], batch_size: int = 64) -> list[dict]:
        """One dict per text, in input order: text, tokens, tags, spans (type, start, end exclusive, text),
        and for the joint model intent and intent_prob.

        Texts are split by data.tokenizer, keeping their case (data.lowercase applies to
        the word lookup only). An empty text gets no tags; the joint model still gives
        its intent prior.
        """
        cfg, run, model = predictor.cfg, predictor.run, predictor.model
        split_words = get_tokenizer(cfg.data.tokenizer, lowercase=False)
        tokens = [split_words(t) for t in texts]
        split = self.encode(cfg, run.vocab, tokens, chars=run.chars)
        tag_names = run.labels.itos
        with_spans = schemes.has_spans(split.scheme)
        results: list[dict] = [{} for _ in texts]
        for batch in sorted_batches(split, batch_size):
            batch = batch.to(predictor.device)
            out, _ = model(batch.ids, batch.lengths, **batch.extra_inputs())
            tags = out.tags.cpu()  # (B, T)
            probs = torch.softmax(out.intent.float(), -1).cpu() if out.intent is not None else None  # (B, K)
            for row, i in enumerate(batch.index):
                words = tokens[i]
                predicted = [tag_names[j] for j in tags[row, :len(words)].tolist()]
                found = schemes.spans(predicted) if with_spans else []
                r = {"text": texts[i], "tokens": words, "tags": predicted,
                     "spans": [{"type": kind, "start": s, "end": e, "text": " ".join(words[s:e])}
                               for kind, s, e in found]}
                if probs is not None:
                    k = int(probs[row].argmax())
                    r["intent"] = run.intents.itos[k]
                    r["intent_prob"] = round(float(probs[row, k]), 6)
                results[i] = r
        return results
