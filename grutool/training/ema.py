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
    """The running average of `model`'s state dict; build it after moving the model to its device."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        # The live tensors behind the state dict are paired with their averages once, so a step
        # does not rebuild the state dict (load_state_dict copies in place: they stay valid).
        live = model.state_dict()
        self.shadow = {k: v.detach().clone() for k, v in live.items()}
        floats = [k for k, v in live.items() if v.dtype.is_floating_point]
        self._averages, self._live = [self.shadow[k] for k in floats], [live[k] for k in floats]
        self._copied = [(self.shadow[k], v) for k, v in live.items() if k not in floats]  # integer buffers

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self) -> None:
        """Fold the model's current weights into the average (after each optimizer step)."""
        d = self.current_decay()
        self.updates += 1
        torch._foreach_lerp_(self._averages, self._live, 1.0 - d)  # avg = d*avg + (1-d)*v, one call for all
        for avg, v in self._copied:
            avg.copy_(v)

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
