"""Streaming inference: feed a long input in chunks, carrying the encoder's h_n into the next chunk's h0.

For a unidirectional encoder the state after token t depends on tokens 0..t only, so the result after
the last chunk equals the result of feeding the whole input at once (tested). A bidirectional encoder
cannot stream: its backward direction starts at the input's last token, so every output depends on
tokens that have not arrived yet. Which models stream and what a chunk answers is the task's call
(`Task.stream_reason`, `stream_encode`, `stream_render`): a classifier with `pooling: last` answers
with the label of everything fed so far, a tagger without CRF with the tags of the chunk's tokens; numeric
sequences are read whole. A refusal names every setting to change at once.

Chunks are split where tokens are (e.g. at whitespace); `data.max_length` does not apply (a stream has
no length). Works on the checkpoint or on an export (`Predictor(..., backend="onnx")`: the graph takes
h0 and gives h_n).
"""

from __future__ import annotations

from typing import Optional

import torch

from grutool.arguments import check_chunk
from grutool.errors import UserError


class Stream:
    """One input fed in chunks; `feed(text)` returns the task's result so far, `state` is h_n (L, 1, H)."""

    def __init__(self, predictor):
        self.predictor = predictor
        why = predictor.task.stream_reason(predictor.cfg)
        if why:
            raise UserError(f"{predictor.run.path}: this model cannot stream: {why}")
        self.state: Optional[torch.Tensor] = None
        self.text = ""

    def feed(self, text: str) -> dict:
        from grutool.data.batching import collate

        check_chunk(text)
        p = self.predictor
        split = p.task.stream_encode(p, text)
        batch = collate(split, [0]).to(p.device)
        with torch.no_grad():
            outputs = p.model.scores(batch.ids, batch.lengths, batch.chars, self.state)
        self.state = outputs[-1]
        self.text = f"{self.text} {text}".strip() if text.strip() else self.text
        return p.task.stream_render(p, self.text, text, outputs[:-1])

    def reset(self) -> None:
        self.state, self.text = None, ""
