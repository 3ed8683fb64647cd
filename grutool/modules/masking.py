"""Padding masks and token dropout: the two things every model does to a padded (B, T) id batch."""

from __future__ import annotations

import torch

from grutool.data.vocab import Vocab


def length_mask(lengths: torch.Tensor, max_len: int, device: torch.device) -> torch.Tensor:
    """(B, T) bool, True at real tokens."""
    return torch.arange(max_len, device=device)[None, :] < lengths.to(device)[:, None]


def drop_tokens(ids: torch.Tensor, p: float) -> torch.Tensor:
    """ids (B, T) with each real token replaced by <unk> with probability p (padding stays padding)."""
    drop = torch.rand(ids.shape, device=ids.device) < p
    return ids.masked_fill(drop & (ids != Vocab.pad_id), Vocab.unk_id)
