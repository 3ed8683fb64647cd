"""Exporting a forecaster: one graph, window (batch, input_length, columns) -> forecast (batch, horizon, targets),
both z-scored; the metadata carries the scaler (mean and std per column) to apply before and undo after.

Parity: max |diff| of the forecasts, and the share of forecast values within 1e-3 of the original's.
"""

from __future__ import annotations

import torch
from torch import nn

from grutool.export.graph import Graph
from grutool.export.parity import Parity

UNIT = "values within 1e-3"
CLOSE = 1e-3


class ForecastGraph(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        return self.model.predict(window)  # (B, H, T)


def graphs(model, vocab_size: int) -> list[Graph]:
    example = torch.zeros(2, model.input_length, model.channels)
    return [Graph("model", ForecastGraph(model), {"window": (example, {0: "batch"})}, ["forecast"],
                  {"window": "the last input_length rows of the input columns, z-scored: (x - mean) / std",
                   "forecast": "(batch, horizon, targets), z-scored: x * std + mean gives the columns' units"})]


class Runtime:
    """An exported forecaster with the model's call: (window, lengths) -> (forecast, None)."""

    def __init__(self, backend, meta: dict):
        self.backend, self.meta = backend, meta

    def __call__(self, ids, lengths=None, targets=None):
        return self.backend.run("model", {"window": ids.float()})["forecast"], None

    def eval(self):
        return self


def metadata(model) -> dict:
    return {"forecast": {"input_length": model.input_length, "horizon": model.horizon,
                         "channels": model.channels, "targets": model.targets.tolist(),
                         "scaling": "z-score per column with vocabularies.scaler's mean and std "
                                    "(scaler.json in the run directory)"}}


def parity(model, runtime, batch, parity: Parity) -> None:
    with torch.no_grad():
        ref, _ = model(batch.ids, batch.lengths)
    got, _ = runtime(batch.ids, batch.lengths)
    parity.update_diff("forecast", ref, got)
    close = (ref.float() - got.float()).abs() <= CLOSE
    parity.update_agreement(close, torch.ones_like(close))
