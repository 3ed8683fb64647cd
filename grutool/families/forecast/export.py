"""Exporting a forecaster: one graph, window (batch, input_length, columns) -> forecast (batch, horizon, targets),
both z-scored; the metadata carries the scaler (mean and std per column) to apply before and undo after. A model
with covariates (data.covariates) takes them as further inputs, those it reads of: past (batch, input_length,
P), future (batch, input_length + horizon, F: the future columns z-scored, then sin and cos of each calendar
feature), static (batch, S), series (batch,) int64 ids (vocabularies.series).

Parity: max |diff| of the forecasts, and the share of forecast values within CLOSE of the original's (INT8_CLOSE for
an int8 export), both z-scored: a share of each target column's training standard deviation, the unit the
published MSE and MAE are in.
"""

from __future__ import annotations

import torch
from torch import nn

from grutool.export.graph import Graph
from grutool.export.parity import Parity

UNIT = "values within {close:g} std"
CLOSE = 1e-3  # fp32: the graph computes the model's values up to float rounding (~1e-6)
# int8: ONNX Runtime quantizes each MatMul's input per tensor to 8 bits at run time, so a value moves by up to
# ~1/255 of its batch's range at the segment projection alone (a few hundredths of a std on the toy sines, the
# validation MSE unchanged to 3 decimals); 1e-3 is below what 8 bits can hold. 0.05 std: 1/20 of the spread.
INT8_CLOSE = 0.05


class ForecastGraph(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model
        self.names = list(model.covariate_inputs())  # the covariate inputs after the window, in this order

    def forward(self, window: torch.Tensor, *covariates: torch.Tensor) -> torch.Tensor:
        return self.model.predict(window, **dict(zip(self.names, covariates)))  # (B, H, T)


NOTES = {"past": "past-observed covariates over the input rows, z-scored",
         "future": "known-future covariates over the input rows and the horizon: the future columns z-scored, "
                   "then sin and cos of each calendar feature's phase",
         "static": "the series' static columns, z-scored",
         "series": "the series' index in vocabularies.series"}


def graphs(model, vocab_size: int) -> list[Graph]:
    example = torch.zeros(2, model.input_length, model.channels)
    inputs = {"window": (example, {0: "batch"})}
    for name, (shape, dtype) in model.covariate_inputs().items():
        inputs[name] = (torch.zeros(2, *shape, dtype=dtype), {0: "batch"})
    notes = {"window": "the last input_length rows of the input columns, z-scored: (x - mean) / std",
             "forecast": "(batch, horizon, targets), z-scored: x * std + mean gives the columns' units"}
    notes.update({k: v for k, v in NOTES.items() if k in inputs})
    return [Graph("model", ForecastGraph(model), inputs, ["forecast"], notes)]


class Runtime:
    """An exported forecaster with the model's call: (window, lengths) -> (forecast, None)."""

    def __init__(self, backend, meta: dict):
        self.backend, self.meta = backend, meta

    def __call__(self, ids, lengths=None, targets=None, **covariates):
        return self.backend.run("model", {"window": ids.float(), **covariates})["forecast"], None

    def eval(self):
        return self


def metadata(model) -> dict:
    return {"forecast": {"input_length": model.input_length, "horizon": model.horizon,
                         "channels": model.channels, "targets": model.targets.tolist(),
                         "covariates": {k: list(shape) for k, (shape, _) in model.covariate_inputs().items()},
                         "scaling": "z-score per column with vocabularies.scaler's mean and std "
                                    "(scaler.json in the run directory)"}}


def parity(model, runtime, batch, parity: Parity) -> None:
    with torch.no_grad():
        ref, _ = model(batch.ids, batch.lengths, **batch.extra_inputs())
    got, _ = runtime(batch.ids, batch.lengths, **batch.extra_inputs())
    parity.update_diff("forecast", ref, got)
    close = (ref.float() - got.float()).abs() <= parity.close
    parity.update_agreement(close, torch.ones_like(close))
