"""Confusion matrices as metrics count them: rows are gold ids, columns predicted ids.

Gold ids at or beyond the model's own label count are labels it never saw in training (see the families'
`encode_split`): they are never predicted, so their rows are all errors, reported by `unseen_rows`.
"""

from __future__ import annotations

import torch


def add_to_confusion(matrix: torch.Tensor, gold: torch.Tensor, pred: torch.Tensor) -> None:
    """matrix[g, p] += count of (gold g, predicted p) pairs; gold and pred are 1-D id tensors."""
    k = matrix.shape[0]
    matrix += torch.bincount(gold * k + pred, minlength=k * k).view(k, k)


def unseen_rows(confusion: dict, known: int) -> dict[str, int]:
    """Rows past the model's own labels are gold labels it never saw: how many examples (tokens, for tags) each."""
    matrix = confusion["matrix"]
    return {name: sum(matrix[known + j]) for j, name in enumerate(confusion["labels"][known:])}
