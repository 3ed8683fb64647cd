"""Exporting a regressor: one graph, (values, lengths[, h0]) -> prediction[, h_n]; the prediction is the target's
z-score (the metadata's `vocabularies.labels` holds the mean and deviation that give it back in units)."""

from __future__ import annotations

import torch

from grutool.export.graph import Graph
from grutool.export.parity import Parity
from grutool.export.tokens import ScoresGraph, TokenRuntime, input_notes, state_metadata, token_inputs
from grutool.modules.masking import length_mask

UNIT = "predictions within {close:g} std"  # one per sequence, or per step; z-scored, so a share of the target's std
CLOSE = 1e-3  # fp32: float rounding only
# int8: 8-bit weights and inputs of each Linear moved configs/numeric_regression.yaml's predictions by up to
# 2e-3 (ONNX) and 5e-3 std (TorchScript); the forecaster's reasoning holds (forecast/export.py).
INT8_CLOSE = 0.05


def graphs(model, vocab_size: int) -> list[Graph]:
    inputs = token_inputs(model, vocab_size)
    outputs = ["prediction"] + (["h_n"] if "h0" in inputs else [])
    return [Graph("model", ScoresGraph(model, False, "h0" in inputs), inputs, outputs,
                  {"prediction": "(batch,) z-score of the target: times vocabularies.labels std, plus its mean",
                   **input_notes(model)})]


class Runtime(TokenRuntime):
    """An exported regressor with the model's calls: (ids, lengths) -> (prediction, None), and `scores`."""

    def __call__(self, ids, lengths, targets=None, chars=None):
        return self.run(ids, lengths)["prediction"], None

    def scores(self, ids, lengths, chars=None, h0=None):
        out = self.run(ids, lengths, None, h0)
        return out["prediction"], out["h_n"]


def metadata(model) -> dict:
    return {"pooling": model.pooling.kind, **state_metadata(model)}


def parity(model, runtime, batch, parity: Parity) -> None:
    """Predictions of the original (packed) model against the export's; `agreement`: within the tolerance, counted
    per sequence, or per real step (padding left out) for a prediction per step."""
    with torch.no_grad():
        ref, _ = model(batch.ids, batch.lengths)  # (B,) or (B, T)
    got, _ = runtime(batch.ids, batch.lengths)
    real = length_mask(batch.lengths, ref.shape[1], ref.device) if ref.dim() == 2 else None  # (B, T)
    parity.update_diff("prediction", ref, got, real)
    close = (ref - got.to(ref.device)).abs() <= parity.close
    parity.update_agreement(torch.ones_like(close), close, real)
