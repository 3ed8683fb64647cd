"""Kernel names and the `auto` policy: the one place that says when grutool's fused kernel runs.

`grutool.cells` (the registry), the config schema's docs, `grutool bench`, `grutool shapes` and the
kernels themselves (`grutool.modules.rnn`) read it from here. Imports nothing, so anything may read it
for free, and nothing it reads can import back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

KERNELS = ("auto", "native", "fused", "compiled")
"""`native`: PyTorch's module (oneDNN for dense LSTM on CPU, cuDNN on CUDA); `fused`: grutool's CPU
kernels (`grutool.modules.rnn`); `compiled` (GRU): the fused kernel's time loop in C++, built on first
use with a C++ compiler and ninja (the fused kernel where it cannot be built, said once); `auto`: `fused`
where it measured faster (`AUTO`), else `native`."""


@dataclass(frozen=True)
class Auto:
    """Where kernel `auto` runs a cell's fused kernel, on CPU in float32/float64 (never on CUDA). The
    thresholds were measured (docs/benchmarks.md, "The fused GRU" and its LSTM and RNN table)."""

    packed_training: bool = True                  # packed input with autograd recording
    packed_inference_from: Optional[int] = 0      # packed input without gradients, from this hidden size; None: never
    dense_from_steps: Optional[int] = None        # dense input of this many steps or more; None: never

    def fused(self, *, packed: bool, training: bool, hidden_size: int, steps: int) -> bool:
        if packed:
            if training:
                return self.packed_training
            return self.packed_inference_from is not None and hidden_size >= self.packed_inference_from
        return self.dense_from_steps is not None and steps >= self.dense_from_steps

    def describe(self) -> str:
        if self.packed_training and self.packed_inference_from == 0:
            parts = ["packed batches"]
        else:
            parts = ["packed training"] if self.packed_training else []
            if self.packed_inference_from is not None:
                parts.append(f"packed inference from hidden_size {self.packed_inference_from}")
        if self.dense_from_steps is not None:
            parts.append(f"dense ones of {self.dense_from_steps}+ steps")
        return " and ".join(parts) if parts else "never"


AUTO: dict[str, Auto] = {
    # nn.GRU's packed path is its slow one; on short dense calls (one-step decoding, 5-word phrases) its own
    # dense loop wins, the fused kernel's per-call set-up being paid over too few steps.
    "gru": Auto(packed_training=True, packed_inference_from=0, dense_from_steps=8),
    # Dense LSTM keeps oneDNN's fused primitive; below H 256 nn.LSTM's packed inference loop is as fast.
    "lstm": Auto(packed_training=True, packed_inference_from=256),
    # nn.RNN's packed inference (no autograd record) and its dense path are already lean.
    "rnn": Auto(packed_training=True, packed_inference_from=None),
}


def describe_auto() -> str:
    """One line, e.g. for help texts: `gru: packed batches and dense ones of 8+ steps; lstm: ...`."""
    return "; ".join(f"{name}: {rule.describe()}" for name, rule in AUTO.items())
