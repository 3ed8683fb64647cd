"""Exporting a tagger or joint model: one graph, (ids, lengths[, chars][, h0]) -> emissions[, intent][, h_n].

Decoding stays outside the graph (a Viterbi loop over a dynamic length is no graph op): without a CRF
the tags are emissions.argmax(-1); with one, the CRF's scores are in the metadata JSON and
`grutool/families/tagger/postprocess.py` (NumPy only) decodes them exactly as grutool does.
"""

from __future__ import annotations

import numpy as np
import torch

from grutool.export.graph import Graph
from grutool.export.parity import Parity
from grutool.export.tokens import ScoresGraph, TokenRuntime, input_notes, state_metadata, token_inputs
from grutool.families.tagger.postprocess import viterbi
from grutool.modules.masking import length_mask

UNIT = "tags"  # a joint run's parity counts intents too and says so (see `parity`)


def graphs(model, vocab_size: int) -> list[Graph]:
    inputs = token_inputs(model, vocab_size)
    outputs = ["emissions"] + (["intent"] if model.intent_head is not None else []) + (["h_n"] if "h0" in inputs else [])
    notes = {"emissions": "(batch, time, tags): per-token tag scores; decode with argmax, or Viterbi with the "
                          "'crf' scores (grutool/families/tagger/postprocess.py)", **input_notes(model)}
    if model.intent_head is not None:
        notes["intent"] = "(batch, intents): intent logits"
    return [Graph("model", ScoresGraph(model, "chars" in inputs, "h0" in inputs), inputs, outputs, notes)]


def metadata(model) -> dict:
    meta = {}
    if model.crf is not None:
        trans, start, end = model.crf.scores()
        meta["crf"] = {"transitions": trans.tolist(), "start": start.tolist(), "end": end.tolist(),
                       "decode": "viterbi (grutool/families/tagger/postprocess.py)"}
    meta.update(state_metadata(model))
    return meta


def decode(emissions: torch.Tensor, lengths: torch.Tensor, crf: dict | None) -> torch.Tensor:
    """Tags (B, T), 0 at padding, from emissions (B, T, C): Viterbi with the export's CRF scores, else argmax."""
    mask = length_mask(lengths, emissions.shape[1], emissions.device)
    if crf is None:
        return emissions.argmax(-1).masked_fill(~mask, 0)
    scores = [np.asarray(crf[k], dtype=np.float32) for k in ("transitions", "start", "end")]
    tags = torch.zeros(emissions.shape[:2], dtype=torch.long)
    e = emissions.float().cpu().numpy()
    for row, n in enumerate(lengths.tolist()):
        tags[row, :n] = torch.tensor(viterbi(e[row, :n], *scores), dtype=torch.long)
    return tags


class Runtime(TokenRuntime):
    """An exported tagger with the model's calls: (ids, lengths, chars) -> (TaggerOutput, None), and `scores`."""

    def __call__(self, ids, lengths, targets=None, chars=None):
        from grutool.families.tagger.model import TaggerOutput

        out = self.run(ids, lengths, chars)
        emissions = out["emissions"]
        return TaggerOutput(emissions, decode(emissions, lengths, self.meta.get("crf")), out.get("intent")), None

    def scores(self, ids, lengths, chars=None, h0=None):
        """Emissions, intent logits and h_n for one chunk, continuing from h0 (grutool.streaming)."""
        out = self.run(ids, lengths, chars, h0)
        return out["emissions"], out.get("intent"), out["h_n"]


def parity(model, runtime, batch, parity: Parity) -> None:
    """Emissions (and intent logits) of the original model against the export's; decoded tags on real tokens."""
    extra = batch.extra_inputs()
    with torch.no_grad():
        ref, _ = model(batch.ids, batch.lengths, **extra)
    got, _ = runtime(batch.ids, batch.lengths, **extra)
    real = length_mask(batch.lengths, batch.ids.shape[1], batch.ids.device)  # (B, T): padding left out of both
    parity.update_diff("emissions", ref.emissions, got.emissions, real)
    parity.update_agreement(ref.tags, got.tags, real)
    if ref.intent is not None:
        parity.unit = "tags and intents"
        parity.update_diff("intent", ref.intent, got.intent)
        parity.update_agreement(ref.intent.argmax(-1), got.intent.argmax(-1))
