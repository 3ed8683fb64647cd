"""Tagging metrics as a small stateful object: token accuracy, conlleval span P/R/F1, tag confusion,
sentence accuracy (the tagger's over sentences with tokens; the joint task's over all, intent included),
and for the joint task intent accuracy.

Tag and intent ids at or beyond the model's own count are gold labels it never
saw in training: they are never predicted, so they always count as errors.
"""

from __future__ import annotations

from collections import Counter
from typing import Optional

import torch

from grutool.families.tagger import schemes
from grutool.metrics.confusion import add_to_confusion


def _prf(correct: int, gold: int, predicted: int) -> dict:
    precision = correct / predicted if predicted else 0.0
    recall = correct / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


class SpanCounts:
    """conlleval's chunk counts: spans found in gold, in predictions, and in both (same type and extent)."""

    def __init__(self):
        self.correct, self.gold, self.predicted = Counter(), Counter(), Counter()

    def update(self, gold_tags: list[str], pred_tags: list[str]) -> None:
        gold, pred = set(schemes.spans(gold_tags)), set(schemes.spans(pred_tags))
        self.gold.update(kind for kind, _, _ in gold)
        self.predicted.update(kind for kind, _, _ in pred)
        self.correct.update(kind for kind, _, _ in gold & pred)

    def compute(self) -> dict:
        total = _prf(sum(self.correct.values()), sum(self.gold.values()), sum(self.predicted.values()))
        per_type = {kind: {**_prf(self.correct[kind], self.gold[kind], self.predicted[kind]),
                           "support": self.gold[kind], "predicted": self.predicted[kind]}
                    for kind in sorted(set(self.gold) | set(self.predicted))}
        return {"span_precision": total["precision"], "span_recall": total["recall"], "span_f1": total["f1"],
                "spans": {"gold": sum(self.gold.values()), "predicted": sum(self.predicted.values()),
                          "correct": sum(self.correct.values())},
                "per_type": per_type}


def conlleval(gold: list[list[str]], predicted: list[list[str]]) -> dict:
    """Span precision/recall/F1 (micro and per type) of tag sequences, as conlleval computes them."""
    counts = SpanCounts()
    for g, p in zip(gold, predicted):
        counts.update(g, p)
    return counts.compute()


class TaggingMetrics:
    """`tags`: the model's tags, then gold tags it never saw; likewise `intents` for the joint task."""

    def __init__(self, tags: list[str], scheme: Optional[str] = None, intents: Optional[list[str]] = None):
        self.tags = list(tags)
        self.spans = SpanCounts() if schemes.has_spans(scheme) else None
        self.intents = list(intents) if intents is not None else None
        self.confusion = torch.zeros(len(self.tags), len(self.tags), dtype=torch.long)  # rows: gold
        self.intent_confusion = (torch.zeros(len(self.intents), len(self.intents), dtype=torch.long)
                                 if self.intents is not None else None)
        # sentences: all of them (`n`); scored: those sentence_accuracy counts (tagger: the non-empty ones)
        self.sentences = self.sentences_scored = self.sentences_correct = 0
        self.loss_sum, self.loss_count = 0.0, 0

    def update(self, output, targets, loss: Optional[float] = None) -> None:
        """output: a TaggerOutput (decoded `tags` (B, T), `intent` logits (B, K)); targets as the batch has them."""
        gold = (targets["tags"] if isinstance(targets, dict) else targets).cpu()  # (B, T), -100 at padding
        pred = output.tags.cpu()  # (B, T)
        mask = gold != -100
        add_to_confusion(self.confusion, gold[mask], pred[mask])
        right = ((gold == pred) | ~mask).all(1)  # (B,) every tag right
        # An empty sentence has no tag to get right: the tagger leaves it out of sentence_accuracy (counted
        # right, it raised the figure); the joint model keeps it, its intent is scored.
        scored = mask.any(1) if self.intents is None else torch.ones_like(right)  # (B,)
        if self.intents is not None:
            gold_intent = targets["intent"].cpu()  # (B,)
            pred_intent = output.intent.argmax(-1).cpu()
            add_to_confusion(self.intent_confusion, gold_intent, pred_intent)
            right &= gold_intent == pred_intent
        self.sentences += len(gold)
        self.sentences_scored += int(scored.sum())
        self.sentences_correct += int((right & scored).sum())
        if self.spans is not None:
            for g, p, m in zip(gold.tolist(), pred.tolist(), mask.tolist()):
                n = sum(m)
                self.spans.update([self.tags[i] for i in g[:n]], [self.tags[i] for i in p[:n]])
        if loss is not None:
            self.loss_sum += loss * len(gold)
            self.loss_count += len(gold)

    def compute(self) -> dict:
        c = self.confusion.double()
        tokens = int(c.sum())
        tp, support, predicted = c.diag(), c.sum(1), c.sum(0)
        out: dict = {"n": self.sentences, "tokens": tokens,
                     "token_accuracy": float(tp.sum() / tokens) if tokens else 0.0,
                     "sentence_accuracy": (self.sentences_correct / self.sentences_scored
                                           if self.sentences_scored else 0.0)}
        if self.intent_confusion is not None:
            ic = self.intent_confusion
            out["intent_accuracy"] = float(ic.diag().sum()) / self.sentences if self.sentences else 0.0
        if self.spans is not None:
            out.update(self.spans.compute())
        out["per_tag"] = {tag: {**_prf(int(tp[i]), int(support[i]), int(predicted[i])), "support": int(support[i])}
                          for i, tag in enumerate(self.tags) if support[i] + predicted[i] > 0}
        out["confusion"] = {"labels": self.tags, "matrix": self.confusion.tolist()}
        if self.intent_confusion is not None:
            out["intent_confusion"] = {"labels": self.intents, "matrix": self.intent_confusion.tolist()}
        if self.loss_count:
            out["loss"] = self.loss_sum / self.loss_count
        return out
