"""Exporting a seq2seq model: an encoder graph and a one-step decoder graph, so any runtime can run
greedy or beam search (grutool's own `grutool.families.seq2seq.decoding` runs on them unchanged).

    encoder: ids (B, S), lengths (B,) -> memory (B, S, D*H), [keys (B, S, H)], mask (B, S), hidden (L, B, H)
    decoder: y (B,), hidden (L, B, H), [feed (B, H)], [memory, keys, mask]
             -> logits (B, V), hidden_out, feed_out (B, H), [weights (B, S)]

Start each output from <bos> with the encoder's hidden and a zero feed; feed each step's hidden_out
and feed_out to the next. The decoder carries its whole state, so it streams by construction.
"""

from __future__ import annotations

import torch
from torch import nn

from grutool.cells import get_cell
from grutool.errors import UserError
from grutool.export.graph import Graph
from grutool.export.parity import Parity

UNIT = "greedy outputs"


class EncoderGraph(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, ids, lengths):
        memory, state = self.model.encode(ids, lengths)
        keys = (memory.keys,) if memory.keys is not None else ()
        return (memory.outputs,) + keys + (memory.mask, state.hidden)


class DecoderGraph(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, y, hidden, *rest):
        from grutool.families.seq2seq.model import DecoderState, Memory

        m = self.model
        rest = list(rest)
        feed = rest.pop(0) if m.input_feeding else hidden.new_zeros(hidden.shape[1], hidden.shape[2])
        memory = Memory(*rest) if m.attention is not None else Memory(hidden.new_zeros(0), None, hidden.new_zeros(0))
        logits, state, weights = m.step(y, DecoderState(hidden, feed), memory)  # (B, V), ..., (B, S)
        return (logits, state.hidden, state.feed) + ((weights,) if weights is not None else ())


def graphs(model, vocab_size: int) -> list[Graph]:
    if get_cell(model.decoder_cell).cell_state:
        raise UserError(f"model.decoder_cell: {model.decoder_cell} has an (h, c) state; seq2seq export supports "
                        f"gru and rnn decoders")
    ids = torch.randint(2, max(3, vocab_size), (3, 5))
    lengths = torch.tensor([5, 2, 4])
    with torch.no_grad():
        outs = EncoderGraph(model)(ids, lengths)
    attention = model.attention is not None
    enc_out = ["memory"] + (["keys"] if attention else []) + ["mask", "hidden"]
    values = dict(zip(enc_out, outs))
    encoder = Graph("encoder", EncoderGraph(model), {"ids": (ids, {0: "batch", 1: "source"}),
                                                     "lengths": (lengths, {0: "batch"})}, enc_out,
                    {"hidden": "the decoder's first state; its first feed is zeros (batch, hidden)"})
    H = values["hidden"].shape[-1]
    inputs = {"y": (torch.tensor([2, 5, 7]), {0: "batch"}), "hidden": (values["hidden"], {1: "batch"})}
    if model.input_feeding:
        inputs["feed"] = (torch.randn(3, H), {0: "batch"})
    if attention:
        inputs["memory"] = (values["memory"], {0: "batch", 1: "source"})
        inputs["keys"] = (values["keys"], {0: "batch", 1: "source"})
        inputs["mask"] = (values["mask"], {0: "batch", 1: "source"})
    outputs = ["logits", "hidden_out", "feed_out"] + (["weights"] if attention else [])
    decoder = Graph("decoder", DecoderGraph(model), inputs, outputs,
                    {"logits": "(batch, target vocabulary): next-token scores; <pad> and <bos> are never generated",
                     "y": "previous token id, <bos> at the first step"})
    return [encoder, decoder]


def metadata(model) -> dict:
    return {"decoding": dict(model.decoding), "attention": model.attention.kind if model.attention else None,
            "input_feeding": model.input_feeding,
            "state": {"input": "hidden", "output": "hidden_out", "feed": "feed" if model.input_feeding else None}}


class Runtime:
    """An exported seq2seq model with the calls grutool.families.seq2seq.decoding uses: encode and step."""

    def __init__(self, backend, meta: dict):
        self.backend, self.meta = backend, meta
        self.decoding = dict(meta["decoding"])
        self.attention = meta["attention"]  # None without attention (what predict checks)
        self.input_feeding = meta["input_feeding"]

    def encode(self, ids, lengths):
        from grutool.families.seq2seq.model import DecoderState, Memory

        out = self.backend.run("encoder", {"ids": ids, "lengths": lengths})
        hidden = out["hidden"]
        return (Memory(out["memory"], out.get("keys"), out["mask"].bool()),
                DecoderState(hidden, hidden.new_zeros(hidden.shape[1], hidden.shape[2])))

    def step(self, y, state, memory):
        from grutool.families.seq2seq.model import DecoderState

        inputs = {"y": y, "hidden": state.hidden, "feed": state.feed, "memory": memory.outputs, "mask": memory.mask}
        if memory.keys is not None:
            inputs["keys"] = memory.keys
        out = self.backend.run("decoder", inputs)
        return out["logits"], DecoderState(out["hidden_out"], out["feed_out"]), out.get("weights")


def parity(model, runtime, batch, parity: Parity) -> None:
    """Encoder outputs and step logits along the original model's greedy path; greedy outputs, whole."""
    from grutool.data.vocab import Vocab
    from grutool.families.seq2seq.decoding import generate

    with torch.no_grad():
        ref_memory, ref_state = model.encode(batch.ids, batch.lengths)
        memory, state = runtime.encode(batch.ids, batch.lengths)
        parity.update_diff("memory", ref_memory.outputs, memory.outputs)
        parity.update_diff("hidden", ref_state.hidden, state.hidden)
        settings = {k: v for k, v in model.decoding.items() if k in ("max_length_ratio", "max_length_offset")}
        ref = generate(model, ref_memory, ref_state, batch.lengths, **settings)
        got = generate(runtime, memory, state, batch.lengths, **settings)
        y = torch.full((batch.ids.shape[0],), Vocab.bos_id, dtype=torch.long)
        for _ in range(max((len(t) for t in ref.tokens), default=0)):
            ref_logits, ref_state, _ = model.step(y, ref_state, ref_memory)
            logits, state, _ = runtime.step(y, state, memory)
            parity.update_diff("logits", ref_logits, logits)
            y = ref_logits.argmax(-1)
    parity.update_agreement(torch.tensor([a == b for a, b in zip(ref.tokens, got.tokens)]),
                            torch.ones(len(ref.tokens), dtype=torch.bool))
