"""Exporting a classifier: one graph, (ids, lengths[, chars][, h0]) -> logits[, h_n].

A unidirectional encoder carries its state as the input `h0` and the output `h_n` (zeros to start),
so a device can stream a long input chunk by chunk (see grutool.streaming); with `pooling: last`
the logits after the last chunk equal those of the whole input.
"""

from __future__ import annotations

import torch

from grutool.export.graph import Graph
from grutool.export.parity import Parity
from grutool.export.tokens import ScoresGraph, TokenRuntime, input_notes, state_metadata, token_inputs


def graphs(model, vocab_size: int) -> list[Graph]:
    inputs = token_inputs(model, vocab_size)
    outputs = ["logits"] + (["h_n"] if "h0" in inputs else [])
    return [Graph("model", ScoresGraph(model, "chars" in inputs, "h0" in inputs), inputs, outputs,
                  {"logits": "(batch, classes); softmax for probabilities", **input_notes(model)})]


class Runtime(TokenRuntime):
    """An exported classifier with the model's calls: (ids, lengths, chars) -> (logits, None), and `scores`."""

    def __call__(self, ids, lengths, targets=None, chars=None):
        return self.run(ids, lengths, chars)["logits"], None

    def scores(self, ids, lengths, chars=None, h0=None):
        """Logits and h_n for one chunk, continuing from h0 (grutool.streaming)."""
        out = self.run(ids, lengths, chars, h0)
        return out["logits"], out["h_n"]


def metadata(model) -> dict:
    return {"pooling": model.pooling.kind, **state_metadata(model)}


def parity(model, runtime, batch, parity: Parity) -> None:
    """Logits of the original (packed) model against the export's, and their argmax labels."""
    extra = batch.extra_inputs()
    with torch.no_grad():
        ref, _ = model(batch.ids, batch.lengths, **extra)
    got, _ = runtime(batch.ids, batch.lengths, **extra)
    parity.update_diff("logits", ref, got)
    parity.update_agreement(ref.argmax(-1), got.argmax(-1))
