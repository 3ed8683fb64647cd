"""Classification metrics as a small stateful object: update per batch, compute per epoch."""

from __future__ import annotations

import torch

from grutool.metrics.confusion import add_to_confusion


class ClassificationMetrics:
    """Accuracy, macro-F1, per-class P/R/F1 and the confusion matrix.

    `labels` are the model's classes followed by any gold labels it never saw;
    gold ids at or beyond the model's class count are such unseen labels: they
    are never predicted, so they always count as errors.
    """

    def __init__(self, labels: list[str]):
        self.labels = list(labels)
        k = len(self.labels)
        self.confusion = torch.zeros(k, k, dtype=torch.long)  # rows: gold, columns: predicted
        self.loss_sum = 0.0
        self.loss_count = 0

    def update(self, logits: torch.Tensor, targets: torch.Tensor, loss: float | None = None) -> None:
        pred = logits.argmax(-1).cpu()  # (B,)
        gold = targets.cpu()
        add_to_confusion(self.confusion, gold, pred)
        if loss is not None:
            self.loss_sum += loss * len(gold)
            self.loss_count += len(gold)

    def compute(self) -> dict:
        c = self.confusion.double()
        tp = c.diag()
        support = c.sum(1)
        predicted = c.sum(0)
        precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), torch.zeros_like(tp))
        recall = torch.where(support > 0, tp / support.clamp(min=1), torch.zeros_like(tp))
        denom = precision + recall
        f1 = torch.where(denom > 0, 2 * precision * recall / denom.clamp(min=1e-12), torch.zeros_like(tp))
        n = int(c.sum())
        # Macro averages run over the classes present in gold or predictions.
        present = (support + predicted) > 0
        macro_f1 = float(f1[present].mean()) if bool(present.any()) else 0.0
        out = {
            "n": n,
            "accuracy": float(tp.sum() / n) if n else 0.0,
            "macro_f1": macro_f1,
            "per_class": {
                label: {"precision": float(precision[i]), "recall": float(recall[i]),
                        "f1": float(f1[i]), "support": int(support[i])}
                for i, label in enumerate(self.labels) if bool(present[i])
            },
            "confusion": {"labels": self.labels, "matrix": self.confusion.tolist()},
        }
        if self.loss_count:
            out["loss"] = self.loss_sum / self.loss_count
        return out
