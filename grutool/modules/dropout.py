"""Dropout with the semantics of nn.Dropout, cheaper on CPU.

On CPU, nn.Dropout draws its mask with `bernoulli_`, which (torch 2.13, one thread)
takes about 1.8x as long as drawing uniforms and comparing them: 324 vs 177 us for
a (64, 10, 64) embedding batch, a few percent of a small classifier's training step.
The distribution is the same: each element is kept with probability 1 - p and
scaled by 1 / (1 - p). On other devices nn.Dropout's fused kernel is used.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Dropout(nn.Module):
    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self.p, training=True)
        keep = (torch.rand(x.shape, dtype=x.dtype) >= self.p).to(x.dtype)  # same shape as x, 1 where kept
        return x * keep.mul_(1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"
