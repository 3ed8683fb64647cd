"""Per-step encoder outputs -> one vector per sequence, ignoring padding."""

from __future__ import annotations

import torch
from torch import nn

from grutool.modules.encoder import EncoderOutput
from grutool.modules.tracing import exporting


class Pooling(nn.Module):
    """`last` | `mean` | `max` | `attention`. Empty sequences pool to a zero vector."""

    def __init__(self, kind: str, dim: int):
        super().__init__()
        self.kind = kind
        self.score = nn.Linear(dim, 1) if kind == "attention" else None

    def forward(self, enc: EncoderOutput, mask: torch.Tensor) -> torch.Tensor:
        """mask: (B, T) bool, True at real tokens. Returns (B, D*H)."""
        if self.kind == "last":
            return enc.final
        out = enc.outputs  # (B, T, D*H)
        m = mask.unsqueeze(-1)  # (B, T, 1)
        if self.kind == "mean":
            count = m.sum(1).clamp(min=1)  # (B, 1)
            return (out * m).sum(1) / count
        if self.kind == "max":
            if out.shape[1] == 0:  # every sequence empty: nothing to take a max over
                return out.new_zeros(out.shape[0], out.shape[2])
            # amax, not max(1): no indices, ~10x faster on CPU. With no padding (equal-length
            # batches) there is nothing to mask; the check is free on CPU (on GPU it would sync).
            # (Not while exporting: a graph holds no data-dependent branch; the masked path gives the same.)
            if mask.device.type == "cpu" and not exporting() and bool(mask.all()):
                return out.amax(1)  # (B, D*H)
            pooled = out.masked_fill(~m, float("-inf")).amax(1)  # (B, D*H)
            return pooled.masked_fill(~mask.any(1, keepdim=True), 0.0)
        scores = self.score(out).squeeze(-1)  # (B, T)
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=1) * mask  # (B, T); zero at padding, all-zero when empty
        return torch.bmm(weights.unsqueeze(1), out).squeeze(1)  # (B, D*H)
