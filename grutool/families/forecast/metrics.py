"""Forecast metrics: every window of a split, every step, every target column, beside three baselines scored
on the same windows (last value, seasonal naive, training mean).

MSE and MAE on the z-scored values are the published protocol (data/timeseries/SOURCE.md); `*_original` are the
same in the file's units (averaged over columns, so a column with large values weighs more). sMAPE is in
original units (0/0 counts 0); MASE divides each column's MAE by the mean absolute seasonal difference before
the split, then averages the columns.
"""

from __future__ import annotations

import numpy as np
import torch

from grutool.errors import counted
from grutool.jsonsafe import float32_values

SAMPLES = 3  # windows kept for `eval --plot`


def baselines(split) -> dict[str, np.ndarray]:
    """Forecasts (N, H, T) of the simple rules on the split's windows, z-scored."""
    z = split.series.numpy()
    starts = np.asarray(split.starts)
    L, H, cols, m = split.input_length, split.horizon, split.target_index, split.season
    steps = np.arange(H)
    last = z[starts + L - 1][:, None, cols].repeat(H, axis=1)  # (N, H, T)
    out = {"last_value": last}
    if 1 < m <= L:
        rows = starts[:, None] + L - m + (steps % m)[None, :]  # (N, H): the same step one season before
        out["seasonal_naive"] = z[rows][..., cols]
    # The scaler's mean is the training mean: 0 once z-scored.
    out["train_mean"] = np.zeros_like(last)
    return out


def scores(pred: np.ndarray, gold: np.ndarray, split, buckets: int = 4) -> dict:
    """MSE/MAE (z-scored and original units), RMSE, R², sMAPE, MASE and per-bucket MSE/MAE of forecasts (N, H, T)."""
    err = pred - gold
    mean, std = split.mean, split.std
    orig_pred, orig_gold = pred * std + mean, gold * std + mean
    denom = np.abs(orig_pred) + np.abs(orig_gold)
    smape = np.where(denom > 0, 200 * np.abs(orig_pred - orig_gold) / np.where(denom > 0, denom, 1), 0.0)
    mae_col = np.abs(err).mean(axis=(0, 1))  # (T,)
    sst = ((gold - gold.mean()) ** 2).sum()
    out = {"mse": float((err ** 2).mean()), "mae": float(np.abs(err).mean()),
           "rmse": float(np.sqrt((err ** 2).mean())), "r2": float(1 - (err ** 2).sum() / sst) if sst > 0 else 0.0,
           "mse_original": float(((err * std) ** 2).mean()), "mae_original": float(np.abs(err * std).mean()),
           "smape": float(smape.mean()), "mase": float((mae_col / split.scale).mean())}
    h = pred.shape[1]
    edges = np.linspace(0, h, min(buckets, h) + 1).round().astype(int)
    out["buckets"] = [{"steps": f"{a + 1}-{b}", "mse": float((err[:, a:b] ** 2).mean()),
                       "mae": float(np.abs(err[:, a:b]).mean())} for a, b in zip(edges[:-1], edges[1:])]
    return out


class ForecastMetrics:
    """Update per batch (forecasts and targets, z-scored, in the split's window order), compute per epoch."""

    def __init__(self, split):
        self.split = split
        self.preds: list[np.ndarray] = []
        self.golds: list[np.ndarray] = []
        self.loss_sum, self.loss_count = 0.0, 0
        self.levels = list(split.quantiles)
        # A quantile model's point forecast: its quantile nearest 0.5.
        self.median = min(range(len(self.levels)), key=lambda i: abs(self.levels[i] - 0.5)) if self.levels else None

    def update(self, pred: torch.Tensor, targets: torch.Tensor, loss: float | None = None) -> None:
        self.preds.append(pred.detach().float().cpu().numpy().astype(np.float64))  # (B, H, T) or (B, H, T, Q)
        self.golds.append(targets.detach().float().cpu().numpy().astype(np.float64))
        if loss is not None:
            self.loss_sum += loss * len(pred)
            self.loss_count += len(pred)

    def compute(self) -> dict:
        split = self.split
        pred, gold = np.concatenate(self.preds), np.concatenate(self.golds)  # (N, H, T[, Q])
        if len(pred) != len(split.starts):
            raise RuntimeError(f"scored {len(pred)} windows of {len(split.starts)}")
        quantiles = None
        if pred.ndim == 4:
            quantiles, pred = pred, pred[..., self.median]
        out = {"n": len(pred), "windows": len(pred), "horizon": split.horizon, "input_length": split.input_length,
               "targets": list(split.target_names), "season": split.season, **scores(pred, gold, split)}
        if split.covers:
            out["scored"] = f"{counted(len(pred), 'window')} {split.covers}"  # which rows: eval prints it
        if quantiles is not None:
            out["quantiles"] = quantile_scores(quantiles, gold, self.levels)
        if self.loss_count:
            out["loss"] = self.loss_sum / self.loss_count
        out["baselines"] = {name: scores(b, gold, split) for name, b in baselines(split).items()}
        out["samples"] = samples(split, pred, quantiles)
        return out


def quantile_scores(q: np.ndarray, gold: np.ndarray, levels: list[float]) -> dict:
    """Probabilistic forecasts (N, H, T, Q): the coverage of the outermost two quantiles (the share of values
    between them, against its nominal level), each quantile's hit rate (share of values at or below it: ideally
    its level) and the mean pinball loss, all on z-scored values."""
    diff = gold[..., None] - q  # (N, H, T, Q)
    lv = np.asarray(levels)
    return {"levels": list(levels),
            "coverage": float(((gold >= q[..., 0]) & (gold <= q[..., -1])).mean()),
            "nominal": round(levels[-1] - levels[0], 6),
            "hit_rate": [float((gold <= q[..., i]).mean()) for i in range(len(levels))],
            "pinball": float(np.maximum(lv * diff, (lv - 1) * diff).mean())}


def samples(split, pred: np.ndarray, quantiles: np.ndarray | None = None, k: int = SAMPLES) -> list[dict]:
    """A few windows spread over the split, first target column, in original units (float32's digits of each
    z-score: `jsonsafe.float32_values`): history (the last input rows, at most 2 horizons), forecast and actual
    values, the window's first forecast time and, long form, its series."""
    n = len(split.starts)
    picks = sorted({int(i) for i in np.linspace(0, n - 1, min(k, n))})
    col, L, H = 0, split.input_length, split.horizon
    c, mean, std = split.target_index[col], split.mean[col], split.std[col]
    z = split.series.numpy()
    out = []
    for i in picks:
        s = split.starts[i]
        keep = min(L, 2 * H)
        out.append({"window": i, "column": split.target_names[col],
                    "time": split.times[s + L] if split.times else str(s + L),
                    "history": float32_values(z[s + L - keep:s + L, c], mean, std),
                    "forecast": float32_values(pred[i, :, col], mean, std),
                    "actual": float32_values(z[s + L:s + L + H, c], mean, std)})
        if split.window_series:  # long form: which series the window is of
            out[-1]["series"] = split.window_series[i]
        if quantiles is not None:  # the outermost two quantiles: the band `eval --plot` shades
            out[-1]["lower"] = float32_values(quantiles[i, :, col, 0], mean, std)
            out[-1]["upper"] = float32_values(quantiles[i, :, col, -1], mean, std)
    return out
