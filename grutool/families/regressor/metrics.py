"""Regression metrics as a small stateful object: update per batch, compute per epoch.

Predictions and targets are compared in the target's own units (the model predicts z-scores of the target; the
run's target scaler turns them back), so RMSE and MAE read as the data does. R² = 1 - SS_res / SS_tot, with
SS_tot around the split's own mean (scikit-learn's `r2_score`); 0 when every target is equal and the predictions
miss, 1 when they are all right. SS_tot is summed from the targets' offsets from the training mean (their z-scores
times the deviation), not from the raw values: targets far from 0 with a small spread (1e6 ± 0.1) would otherwise
lose SS_tot to cancellation and read R² 0.
"""

from __future__ import annotations

import math

import torch

from grutool.jsonsafe import float32_values

PAD = -100  # collate's padding of per-step targets
SCATTER_POINTS = 2000  # eval keeps at most this many (true, predicted) pairs for `eval --plot`


class RegressionMetrics:
    """MSE, RMSE, MAE, R² (and the loss) over a split; `scale`: (mean, std) that turn z-scores into units."""

    def __init__(self, scale: tuple[float, float] = (0.0, 1.0), target: str | None = None):
        self.mean, self.std = scale
        self.target = target  # the table column's name, for the scatter's axes; None: a .ts file's target
        self.n = 0
        self.sequences: int | None = None  # per step: the sequences the n values come from
        self.sum_sq = self.sum_abs = 0.0
        self.sum_y = self.sum_y2 = 0.0
        self.true: list[float] = []
        self.predicted: list[float] = []
        self.loss_sum = 0.0

    def update(self, outputs: torch.Tensor, targets: torch.Tensor, loss: float | None = None) -> None:
        """outputs, targets: (B,) z-scores of the target, or (B, T) per step with targets -100 at padding (every
        step counts as one value)."""
        outputs, targets = outputs.detach().cpu(), targets.detach().cpu()
        if targets.dim() == 2:
            self.sequences = (self.sequences or 0) + targets.shape[0]
            keep = targets != PAD  # (B, T)
            outputs, targets = outputs[keep], targets[keep]  # (sum of lengths,)
        pred = outputs.double() * self.std + self.mean  # (N,) in units
        gold = targets.double() * self.std + self.mean  # (N,)
        err = pred - gold
        self.n += len(gold)
        self.sum_sq += float((err ** 2).sum())
        self.sum_abs += float(err.abs().sum())
        offset = targets.double() * self.std  # (N,) gold - the training mean: no cancellation in SS_tot
        self.sum_y += float(offset.sum())
        self.sum_y2 += float((offset ** 2).sum())
        room = SCATTER_POINTS - len(self.true)
        if room > 0:  # from the float32 z-scores: the data's 0.724, not the float64 product's 0.7240000003922312
            self.true += float32_values(targets[:room].float().numpy(), self.mean, self.std)
            self.predicted += float32_values(outputs[:room].float().numpy(), self.mean, self.std)
        if loss is not None:
            self.loss_sum += loss * len(gold)

    def compute(self) -> dict:
        n = max(self.n, 1)
        mse = self.sum_sq / n
        ss_tot = self.sum_y2 - self.sum_y ** 2 / n
        if ss_tot > 1e-12 * max(1.0, self.sum_y2):
            r2 = 1 - self.sum_sq / ss_tot
        else:
            r2 = 1.0 if self.sum_sq == 0 else 0.0
        out = {"n": self.n, "mse": mse, "rmse": math.sqrt(mse), "mae": self.sum_abs / n, "r2": r2,
               "scatter": {"true": self.true, "predicted": self.predicted,
                           **({"target": self.target} if self.target is not None else {})}}
        if self.n:
            out["loss"] = self.loss_sum / self.n
        if self.sequences is not None:  # per step: n counts steps, as a tagger's `tokens`
            out["sequences"] = self.sequences
        return out
