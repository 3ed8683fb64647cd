"""Pretrained word vectors from a GloVe or word2vec text file."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from grutool.data.vocab import Vocab
from grutool.errors import UserError, clipped

log = logging.getLogger("grutool")


def load_vectors(path: str, vocab: Vocab, dim: int) -> tuple[torch.Tensor, float]:
    """Rows for the vocabulary's tokens and the fraction of (non-special) tokens found.

    Tokens missing from the file keep a small random init; `<pad>` stays zero.
    Reads only the lines whose word is in the vocabulary, so big files stream.
    """
    p = Path(path)
    if not p.is_file():
        from grutool.data.loading import not_found_hint

        raise UserError(f"data.vectors: {path}: file not found{not_found_hint(path)}")
    weight = torch.randn(len(vocab), dim) * 0.1  # (V, E)
    weight[vocab.pad_id] = 0
    found = set()
    with p.open(encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.rstrip("\n").rstrip().split(" ")
            if lineno == 1 and len(parts) == 2 and all(x.isdigit() for x in parts):
                continue  # word2vec text header: "<count> <dim>"
            if len(parts) < 2:
                continue
            word = parts[0]
            idx = vocab.stoi.get(word)
            if idx is None or idx in found:
                continue
            if len(parts) - 1 != dim:
                raise UserError(f"{path}:{lineno}: vectors have dimension {len(parts) - 1}, "
                                f"but model.embedding_dim is {dim}; set model.embedding_dim: {len(parts) - 1}")
            try:
                row = torch.tensor([float(x) for x in parts[1:]])  # float32: 1e39 becomes inf
            except ValueError:
                row = None
            if row is None or not torch.isfinite(row).all():  # else training diverges, blaming train.lr
                bad = next(x for x in parts[1:] if not _finite_float32(x))
                raise UserError(f"{path}:{lineno}: vector for {clipped(word, 40)!r} holds {clipped(bad, 40)}, not a "
                                f"finite float32 number (|x| < 3.4e38); fix or remove the line")
            weight[idx] = row
            found.add(idx)
    coverage = len(found) / max(1, len(vocab) - 2)
    log.info("vectors: %d of %d vocabulary tokens found in %s (%.1f%% coverage)",
             len(found), len(vocab) - 2, path, 100 * coverage)
    return weight, coverage


def _finite_float32(text: str) -> bool:
    try:
        return bool(torch.isfinite(torch.tensor(float(text))))
    except ValueError:
        return False
