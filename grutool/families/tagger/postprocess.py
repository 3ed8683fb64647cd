"""Post-processing an exported tagger needs outside its graph, in NumPy alone (no torch, no grutool):
copy this file next to the exported model to decode its emissions anywhere.

The CRF's scores (transitions [from, to], start, end; forbidden moves of the tag scheme already set
to -1e4) are in the export's JSON under "crf". Viterbi decoding of one sentence's emissions (T, C):

    tags = viterbi(emissions, np.array(meta["crf"]["transitions"]), np.array(meta["crf"]["start"]),
                   np.array(meta["crf"]["end"]))

Without a CRF the tags are emissions.argmax(-1). Results equal grutool.families.tagger.crf.CRF.viterbi.
"""

from __future__ import annotations

import numpy as np


def viterbi(emissions: np.ndarray, transitions: np.ndarray, start: np.ndarray, end: np.ndarray) -> list[int]:
    """The highest-scoring tag path of one sentence: emissions (T, C) -> T tag ids; [] when T is 0."""
    T = emissions.shape[0]
    if T == 0:
        return []
    emissions = emissions.astype(np.float32)
    best = start + emissions[0]  # (C,): best score of a path ending in each tag
    back = []
    for t in range(1, T):
        scores = best[:, None] + transitions  # (C, C): [previous, next]
        back.append(scores.argmax(0))
        best = scores.max(0) + emissions[t]
    tag = int((best + end).argmax())
    path = [tag]
    for arg in reversed(back):
        tag = int(arg[tag])
        path.append(tag)
    return path[::-1]


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)
