"""Token-level graphs, (ids, lengths[, chars][, h0]) -> a model's `scores`[, h_n]: what the classifier's and
the tagger's exports share (grutool.families.<name>.export)."""

from __future__ import annotations

import torch
from torch import nn

from grutool.export.encoder import streamable


def carries_state(model) -> bool:
    """Whether the graph takes h0 / gives h_n: a unidirectional encoder with a plain hidden state."""
    return streamable(model.encoder)


def state_metadata(model) -> dict:
    """The export metadata's `state` entry (what `TokenRuntime.run` feeds as h0) when the graph carries state."""
    if not carries_state(model):
        return {}
    return {"state": {"input": "h0", "output": "h_n", "layers": model.encoder.num_layers,
                      "hidden_size": model.encoder.hidden_size}}


class ScoresGraph(nn.Module):
    """A model's `scores` as a graph (classifier and tagger): (ids, lengths[, chars][, h0]) -> its outputs,
    h_n only when the graph carries state."""

    def __init__(self, model, chars: bool, state: bool):
        super().__init__()
        self.model, self.chars, self.state = model, chars, state

    def forward(self, ids, lengths, *rest):
        chars = rest[0] if self.chars else None
        h0 = rest[-1] if self.state else None
        *scores, h_n = self.model.scores(ids, lengths, chars, h0)  # ..., (L, B, H)
        out = tuple(x for x in scores if x is not None) + ((h_n,) if self.state else ())
        return out if len(out) > 1 else out[0]


def token_inputs(model, vocab_size: int) -> dict[str, tuple[torch.Tensor, dict[int, str]]]:
    """ids (token ids, or the values a numeric front-end reads), lengths (and chars, and h0 with state) of three rows of different lengths: batch and time stay dynamic."""
    example = getattr(model.embedder, "example_input", None)  # a front-end of other inputs (numbers) says what it reads
    ids = example(3, 5) if example is not None else torch.randint(2, max(3, vocab_size), (3, 5))  # (3, 5[, C])
    inputs = {"ids": (ids, {0: "batch", 1: "time"}), "lengths": (torch.tensor([5, 2, 4]), {0: "batch"})}
    if getattr(model, "chars", None) is not None:
        inputs["chars"] = (torch.randint(1, model.chars.embedding.num_embeddings, (3, 5, 4)),
                           {0: "batch", 1: "time", 2: "word"})
    if carries_state(model):
        enc = model.encoder
        inputs["h0"] = (torch.zeros(enc.num_layers, 3, enc.hidden_size), {1: "batch"})
    return inputs


def input_notes(model) -> dict[str, str]:
    """What a graph's `ids` and `lengths` hold, said in its metadata: token ids, or (a numeric front-end) the
    standardised values of each step's channels."""
    if getattr(model.embedder, "example_input", None) is not None:
        return {"ids": "(batch, time, channels) standardised values (vocabularies.scaler); 0 after a row's end",
                "lengths": "steps per row"}
    return {"ids": "(batch, time) token ids (vocabularies.vocab); 0 (<pad>) after a row's end",
            "lengths": "tokens per row"}


class TokenRuntime:
    """An exported token-level graph (ids, lengths[, chars][, h0]) run by a backend: what the classifier and
    tagger runtimes share. `run` feeds zeros for h0 unless a stream passes its state."""

    def __init__(self, backend, meta: dict):
        self.backend, self.meta = backend, meta

    def run(self, ids, lengths, chars=None, h0=None) -> dict:
        inputs = {"ids": ids, "lengths": lengths}
        state = self.meta.get("state")
        if state:
            inputs["h0"] = h0 if h0 is not None else torch.zeros(state["layers"], ids.shape[0], state["hidden_size"])
        elif h0 is not None:
            raise ValueError("this export carries no state (bidirectional encoder)")
        if chars is not None:
            inputs["chars"] = chars
        return self.backend.run("model", inputs)
