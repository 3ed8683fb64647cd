"""Exponential moving average of the weights, used for evaluation and best.pt.

Averaging the weights of the last few hundred steps smooths out the noise of
the final updates; on small text classification sets it is a cheap accuracy gain.
The decay ramps up as (1 + n) / (10 + n) over the first updates, so the average
does not keep a large share of the random initial weights on short runs.
"""

from __future__ import annotations

import contextlib

import torch


class EMA:
    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        d = self.current_decay()
        self.updates += 1
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].lerp_(v, 1.0 - d)  # shadow = d*shadow + (1-d)*v
            else:
                self.shadow[k].copy_(v)

    @contextlib.contextmanager
    def applied(self, model: torch.nn.Module):
        """Run the block with the averaged weights in `model`, then put the raw ones back."""
        raw = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.shadow)
        try:
            yield
        finally:
            model.load_state_dict(raw)

    def state_dict(self) -> dict:
        return {"shadow": self.shadow, "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.updates = state["updates"]
        for k, v in state["shadow"].items():
            self.shadow[k].copy_(v)
