"""The cell registry: every recurrent layer grutool builds comes from here.

A `Cell` declares what callers need to know instead of testing a cell's name: its gate count, the
kernels it has, whether its state is `(h, c)`, and whether it can stack layers with LayerNorm and
residual connections, and what kernel `auto` runs for it (`Cell.auto`). This module imports
no torch until a layer is built, and of grutool only the import-free `grutool.kernels`, so the config
schema reads cell and kernel names and capabilities from it for free. The kernels
(`grutool.modules.rnn`) are loaded by name and never import this module back (tests/test_import_graph.py).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Optional

from grutool.kernels import AUTO, KERNELS, Auto  # noqa: F401  (KERNELS: read from here by the config schema)


@dataclass(frozen=True)
class Cell:
    name: str
    gates: int                      # weight blocks per layer: rows of weight_ih are gates * hidden_size
    native: str                     # PyTorch's module, "torch.nn.GRU"
    fused: Optional[str] = None     # grutool's module with the same parameters and a `kernel` argument
    cell_state: bool = False        # forward returns (h_n, c_n) instead of h_n
    stacks: bool = False            # layer_norm / residual between layers (grutool's own layer stack)
    compiled: bool = False          # has kernel `compiled` (the fused module's C++ time loop)

    @property
    def auto(self) -> Optional[Auto]:
        """What kernel `auto` runs per call (`grutool.kernels.AUTO`: compiled, fused or native); None without a
        fused kernel."""
        return AUTO[self.name] if self.fused else None

    @property
    def kernels(self) -> tuple[str, ...]:
        if not self.fused:
            return ("auto", "native")
        return KERNELS if self.compiled else tuple(k for k in KERNELS if k != "compiled")

    def build(self, input_size: int, hidden_size: int, *, num_layers: int = 1, bidirectional: bool = False,
              dropout: float = 0.0, batch_first: bool = True, bias: bool = True, kernel: str = "auto",
              layer_norm: bool = False, residual: bool = False) -> Any:
        """The layer module. Its parameters are named as PyTorch names them whatever the kernel, so a
        checkpoint saved with one kernel loads with any other."""
        if kernel not in self.kernels:
            raise ValueError(f"cell {self.name} has no kernel {kernel!r} (it has {', '.join(self.kernels)})")
        if (layer_norm or residual) and not self.stacks:
            raise ValueError(f"cell {self.name}: layer_norm and residual need a cell with its own layer stack (gru)")
        # nn.GRU warns about dropout with one layer; the config already said so.
        kwargs = dict(num_layers=num_layers, batch_first=batch_first, bidirectional=bidirectional, bias=bias,
                      dropout=dropout if num_layers > 1 else 0.0)
        if self.fused:
            if self.stacks:  # its own layer stack takes the stack's options
                kwargs.update(layer_norm=layer_norm, residual=residual)
            return _load(self.fused)(input_size, hidden_size, kernel=kernel, **kwargs)
        return _load(self.native)(input_size, hidden_size, **kwargs)

    def native_class(self) -> Any:
        """PyTorch's own module class (what export and torch's quantize_dynamic know)."""
        return _load(self.native)

    def hidden(self, state):
        """h_n (L*D, B, H) out of what the module returned as its state."""
        return state[0] if self.cell_state else state

    def initial_state(self, h0):
        """The state to pass for hidden state h0 (LSTM: with a zero cell state)."""
        if self.cell_state:
            import torch
            return h0, torch.zeros_like(h0)
        return h0


def _load(path: str):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


CELLS: dict[str, Cell] = {
    "gru": Cell("gru", 3, "torch.nn.GRU", fused="grutool.modules.rnn.gru.GRU", stacks=True,
                compiled=True),
    "lstm": Cell("lstm", 4, "torch.nn.LSTM", fused="grutool.modules.rnn.lstm.LSTM", cell_state=True,
                 compiled=True),
    "rnn": Cell("rnn", 1, "torch.nn.RNN", fused="grutool.modules.rnn.rnn.RNN", compiled=True),
}
CELL_NAMES = tuple(CELLS)


def get_cell(name: str) -> Cell:
    try:
        return CELLS[name]
    except KeyError:
        raise ValueError(f"unknown cell {name!r}; one of {', '.join(CELL_NAMES)}") from None
