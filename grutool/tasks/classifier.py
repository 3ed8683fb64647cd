"""Text classification (N -> 1): text and label columns to encoded splits, metrics, predictions."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Optional

import torch

from grutool.config import Config, DataConfig
from grutool.data.batching import EncodedSplit
from grutool.data.loading import first_row_line, load_split, require_columns
from grutool.data.tokenize import get_tokenizer
from grutool.data.vocab import LabelVocab, Vocab
from grutool.errors import UserError, listed
from grutool.metrics import ClassificationMetrics

log = logging.getLogger("grutool")


def read_examples(cfg: DataConfig, source: str, need_labels: bool = True) -> tuple[list[str], Optional[list[str]]]:
    """Texts and string labels of one split, with every data problem as a UserError."""
    ds = load_split(cfg, source)
    where = f"data.dataset '{cfg.dataset}' split '{source}'" if cfg.dataset else source
    fields = {"text_column": cfg.text_column}
    if need_labels:
        fields["label_column"] = cfg.label_column
    require_columns(ds, where, fields)
    if len(ds) == 0:
        raise UserError(f"{where}: no examples")
    texts = ["" if t is None else str(t) for t in ds[cfg.text_column]]
    if not need_labels:
        return texts, None
    raw = ds[cfg.label_column]
    nulls = [i for i, v in enumerate(raw) if v is None or (isinstance(v, float) and v != v)]
    if nulls:
        raise UserError(f"{where}: label column '{cfg.label_column}' is empty on {len(nulls)} row(s), "
                        f"first at {first_row_line(cfg, source, nulls[0])}; fill or remove those rows")
    # 1.0 from a float column and 1 from an int column are the same class.
    labels = [str(int(v)) if isinstance(v, float) and v.is_integer() else str(v) for v in raw]
    return texts, labels


@dataclass
class Prepared:
    vocab: Vocab
    labels: LabelVocab
    splits: dict[str, EncodedSplit]
    chars: Optional[Vocab] = None         # model.char_features


class ClassifierTask:
    name = "classifier"

    def tokenizer(self, cfg: Config):
        return get_tokenizer(cfg.data.tokenizer, cfg.data.lowercase)

    def encode(self, cfg: Config, vocab: Vocab, labels: LabelVocab, texts: list[str],
               gold: Optional[list[str]], extra: Optional[list[str]] = None,
               chars: Optional[Vocab] = None) -> EncodedSplit:
        """Token ids per text (and, with `chars`, the char ids of each token as tokenized);
        unseen gold labels get ids after the model's classes (see metrics)."""
        tok = self.tokenizer(cfg)
        limit = cfg.data.max_length
        tokens = [tok(t)[:limit] for t in texts]
        ids = [torch.tensor(vocab.encode(s), dtype=torch.long) for s in tokens]
        targets = None
        names = list(labels.itos) + [e for e in extra or [] if e not in labels.stoi]
        if gold is not None:
            index = {name: i for i, name in enumerate(names)}
            targets = [torch.tensor(index[g]) for g in gold]
        split = EncodedSplit(ids, targets, texts, names)
        if chars is not None:
            split.chars = [chars.encode_chars(s, cfg.data.max_word_length) for s in tokens]  # each (T_i, W_i)
        return split

    def prepare(self, cfg: Config, vocab: Optional[Vocab] = None, labels: Optional[LabelVocab] = None,
                chars: Optional[Vocab] = None) -> Prepared:
        """Read every configured split, build vocabularies on train (unless given), encode all."""
        d = cfg.data
        texts, gold = read_examples(d, d.train)
        tok = self.tokenizer(cfg)
        tokens = [tok(t)[: d.max_length] for t in texts]
        empty = sum(1 for t in tokens if not t)
        if empty == len(tokens):
            raise UserError(f"{d.train}: every text is empty after tokenization "
                            f"(data.text_column '{d.text_column}', data.tokenizer '{d.tokenizer}')")
        if empty:
            # An empty text carries no evidence for its label; training on it would teach the bias only.
            log.warning("train: %d example(s) are empty after tokenization and are skipped", empty)
            keep = [i for i, t in enumerate(tokens) if t]
            texts, gold, tokens = [texts[i] for i in keep], [gold[i] for i in keep], [tokens[i] for i in keep]
        vocab = vocab or Vocab.build(tokens, d.min_freq, d.max_size)
        labels = labels or LabelVocab.build(gold)
        if len(labels) < 2:
            raise UserError(f"{d.train}: only one label ({labels.itos[0]!r}) in column '{d.label_column}'; "
                            f"a classifier needs at least two")
        if cfg.model.char_features:
            chars = chars or Vocab.build([list(t[:d.max_word_length]) for s in tokens for t in s])
        else:
            chars = None
        splits = {"train": self.encode(cfg, vocab, labels, texts, gold, sorted(set(gold) - set(labels.stoi)), chars)}
        for name in ("validation", "test"):
            source = getattr(d, name)
            if source is not None:
                splits[name] = self.encode_split(cfg, vocab, labels, source, name, chars)
        return Prepared(vocab, labels, splits, chars)

    def encode_split(self, cfg: Config, vocab: Vocab, labels: LabelVocab, source: str, name: str,
                     chars: Optional[Vocab] = None) -> EncodedSplit:
        """A labelled evaluation split; labels the model never saw are reported, then scored as errors."""
        texts, gold = read_examples(cfg.data, source)
        unseen = Counter(g for g in gold if g not in labels.stoi)
        if unseen and sum(unseen.values()) == len(gold):
            raise UserError(f"{source}: none of its labels {sorted(unseen)[:10]} were seen in training "
                            f"(model labels: {labels.itos[:10]}); is this the right dataset and label column?")
        if unseen:
            log.warning("%s: %d example(s) have labels never seen in training, counted as errors: %s",
                        name, sum(unseen.values()), listed(unseen))
        return self.encode(cfg, vocab, labels, texts, gold, extra=sorted(unseen), chars=chars)

    def metrics(self, split: EncodedSplit) -> ClassificationMetrics:
        return ClassificationMetrics(split.label_names)
