"""Kernel names and the `auto` policy: the one place that says when grutool's compiled and fused kernels run.

`grutool.cells` (the registry), the config schema's docs, `grutool bench`, `grutool shapes` and the
kernels themselves (`grutool.modules.rnn`) read it from here. Imports nothing, so anything may read it
for free, and nothing it reads can import back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

KERNELS = ("auto", "native", "fused", "compiled")
"""`native`: PyTorch's module (oneDNN for dense LSTM on CPU, cuDNN on CUDA); `fused`: grutool's CPU
kernels (`grutool.modules.rnn`); `compiled`: the fused kernel's time loop in C++, built on first
use with a C++ compiler and ninja (the fused kernel where it cannot be built, said once); `auto`: per call,
`compiled` or `fused` where it measured faster (`AUTO`), else `native`."""


@dataclass(frozen=True)
class Auto:
    """What kernel `auto` runs for one call of a cell's layer, on CPU in float32/float64 (never on CUDA).

    Where the cell has a compiled kernel (`compiled_training_from` set) and it is built, auto runs it on calls
    of enough steps and `native` below them; where it cannot be built, the fused rule (the other fields)
    decides between `fused` and `native`. Every number was measured (docs/benchmarks.md, "The fused GRU",
    its LSTM and RNN table, and "`kernel: auto` with the compiled GRU")."""

    packed_training: bool = True                  # fused rule: packed input with autograd recording
    packed_inference_from: Optional[int] = 0      # fused rule: packed input without gradients, from this hidden size; None: never
    dense_from_steps: Optional[int] = None        # fused rule: dense input of this many steps or more; None: never
    dense_inference_from: Optional[int] = 0       # fused rule: ... and, without gradients, from this hidden size; None: never
    compiled_training_from: Optional[int] = None  # compiled kernel, built: calls recording autograd from this many steps
    compiled_inference_from: Optional[int] = None  # compiled kernel, built: calls without gradients from this many steps
    compiled_dense_inference: bool = True          # ... dense ones too (False: those stay native, except:)
    compiled_side_by_side_inference: bool = False  # ... dense ones whose two directions run side by side (below)

    def fused(self, *, packed: bool, training: bool, hidden_size: int, steps: int) -> bool:
        """The fused rule: where the fused kernel runs when there is no compiled kernel to run."""
        if packed:
            if training:
                return self.packed_training
            return self.packed_inference_from is not None and hidden_size >= self.packed_inference_from
        if self.dense_from_steps is None or steps < self.dense_from_steps:
            return False
        return training or (self.dense_inference_from is not None and hidden_size >= self.dense_inference_from)

    def pick(self, *, packed: bool, training: bool, hidden_size: int, steps: int,
             compiled_ready: Callable[[], bool] = lambda: False, side_by_side: bool = False) -> str:
        """`compiled`, `fused` or `native` for one call. `steps`: the call's time steps (a packed batch's
        longest sequence); `compiled_ready`: whether the compiled kernel runs here (it builds on the first
        call, so it is asked only where the cell has one); `side_by_side`: a bidirectional layer with 2+ torch
        threads, whose directions the compiled kernel runs on a thread each."""
        if self.compiled_training_from is not None and compiled_ready():
            start = self.compiled_training_from if training else self.compiled_inference_from
            if not training and not packed and not self.compiled_dense_inference \
                    and not (side_by_side and self.compiled_side_by_side_inference):
                start = None
            return "compiled" if start is not None and steps >= start else "native"
        return "fused" if self.fused(packed=packed, training=training, hidden_size=hidden_size, steps=steps) \
            else "native"

    def describe_fused(self) -> str:
        if self.packed_training and self.packed_inference_from == 0:
            parts = ["packed batches"]
        else:
            parts = ["packed training"] if self.packed_training else []
            if self.packed_inference_from is not None:
                parts.append(f"packed inference from hidden_size {self.packed_inference_from}")
        if self.dense_from_steps is not None:
            dense = f"dense ones of {self.dense_from_steps}+ steps"
            if self.dense_inference_from is None:
                dense += " in training"
            elif self.dense_inference_from > 0:
                dense += f" (without gradients from hidden_size {self.dense_inference_from})"
            parts.append(dense)
        return " and ".join(parts) if parts else "never"

    def describe(self) -> str:
        fused = f"fused for {self.describe_fused()}"
        if self.compiled_training_from is None:
            return fused
        packed = "" if self.compiled_dense_inference else \
            " (packed ones, and dense ones of bidirectional layers with 2+ threads)" \
            if self.compiled_side_by_side_inference else " (packed ones)"
        return (f"compiled for calls of {self.compiled_training_from}+ steps in training and "
                f"{self.compiled_inference_from}+ without gradients{packed}, else native; where compiled cannot "
                f"be built, {fused}")


AUTO: dict[str, Auto] = {
    # Compiled, built: at most nn.GRU's time (within the spread) on every measured dense and packed call from 3
    # steps with autograd and 5 without (H 64-512, B 1-64); below that nn.GRU's own loop wins (one-step
    # decoding above all), and the fused kernel loses to both there. Without the build, the fused rule:
    # nn.GRU's packed path is its slow one; dense calls pay for the fused kernel's per-call set-up from 16
    # steps in training (at 8-12 steps H 256 B 64, names.yaml, lost), and without gradients only from H 512.
    "gru": Auto(packed_training=True, packed_inference_from=0, dense_from_steps=16, dense_inference_from=512,
                compiled_training_from=3, compiled_inference_from=5),
    # Compiled, built: faster than oneDNN's LSTM and nn.LSTM's packed loop on every measured call with autograd
    # (0.49-0.99 of native's time, H 64-256, B 1-32, 1-8 steps), and without gradients on packed calls from 8
    # steps (B 32: 0.61-0.81; B 1 at H 256 is the exception, 1.32-1.38, where the per-call copy of the weights
    # into panels is most of the call). Dense inference stays on oneDNN's primitive (1.13-1.57 at 1-8 steps,
    # H 256, one thread; unidirectional on two threads 1.03-1.70), except a bidirectional layer's on 2+ threads,
    # where the compiled kernel runs the directions on a thread each (0.42-0.92 of oneDNN's time at H 64-256,
    # B 1-32, 8-100 steps on two threads; H 256 B 1 at 8 steps 1.13). Without the build: dense LSTM keeps
    # oneDNN's primitive, and below H 256 nn.LSTM's packed inference loop is as fast as the fused kernel.
    "lstm": Auto(packed_training=True, packed_inference_from=256, compiled_training_from=1,
                 compiled_inference_from=8, compiled_dense_inference=False, compiled_side_by_side_inference=True),
    # Compiled, built: nn.RNN's own loop is lean, so the compiled one pays only from 5 steps with autograd
    # (0.75-0.93 of native's time at 5, 0.43-0.81 at 16; at 3 steps 0.90-1.13) and 16 without (0.68-1.04; at 8 steps
    # 0.86-1.50), H 64-256, B 1-32. Without the build: nn.RNN's packed inference (no autograd record) and its
    # dense path are already lean.
    "rnn": Auto(packed_training=True, packed_inference_from=None, compiled_training_from=5,
                compiled_inference_from=16),
}


def describe_auto() -> str:
    """One line, e.g. for help texts: `gru: compiled for calls of 3+ steps in training ...; lstm: ...`."""
    return "; ".join(f"{name}: {rule.describe()}" for name, rule in AUTO.items())
