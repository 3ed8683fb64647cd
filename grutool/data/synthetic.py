"""Made-up inputs of real shapes, for timing a model without its data (`bench --config`)."""

from __future__ import annotations

import torch

SYNTHETIC_CHARS = 64  # character vocabulary of synthetic batches for model.char_features (letters, digits, ...)


def spell(ids: torch.Tensor, num_chars: int = SYNTHETIC_CHARS) -> torch.Tensor:
    """(T,) token ids -> (T, 8) made-up char ids, 0-padded: token k always gets the same spelling of
    1 + k % 8 characters, so words repeat within a batch as real words do (CharEncoder dedupes them)."""
    pos = torch.arange(8)[None, :]  # (1, 8)
    chars = 2 + (ids[:, None] * 7 + pos * 13) % (num_chars - 2)  # (T, 8)
    return torch.where(pos < (1 + ids % 8)[:, None], chars, 0)
