"""Will the model fit? Parameters counted on torch's `meta` device (no memory), checked before any allocation.

An absurd size (`--set model.hidden_size=10000000`, `bench --seq-len 1000000000`) is a one-line error
naming the figures, not an allocator traceback minutes later. The estimates are floors: for `train`,
weights, gradients, optimizer state and EMA copy (activations come on top); for `bench` and `shapes`,
weights plus the activations of one recurrent batch (`check_run_fits`); against the memory the device
has free now.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import torch
from torch.overrides import TorchFunctionMode

from grutool.errors import UserError

if TYPE_CHECKING:  # the config schema is not imported by a `shapes` layer report
    from grutool.config import Config

# Per parameter, beyond the weights: a gradient, then the optimizer's state.
OPTIMIZER_STATES = {"adam": 2, "adamw": 2, "sgd": 1}


class _SkipInit(TorchFunctionMode):
    """`torch.nn.init` functions return their tensor untouched: a meta tensor has no values to set, and
    torch's meta `normal_` goes through `torch._refs`, whose first use imports torch._dynamo (~2.5 s)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__module__", None) == "torch.nn.init":
            return args[0] if args else kwargs["tensor"]
        return func(*args, **(kwargs or {}))


def count_on_meta(task, cfg: Config, prepared) -> int:
    """Parameters of the model `task` builds for `cfg`, without allocating them."""
    with torch.device("meta"), _SkipInit():
        model = task.build_model(cfg, prepared)
    return sum(p.numel() for p in model.parameters())


def training_bytes(cfg: Config, parameters: int) -> int:
    copies = 2 + OPTIMIZER_STATES[cfg.train.optimizer] + (1 if cfg.train.ema_decay else 0)
    return parameters * 4 * copies  # float32


def available_bytes(device: torch.device) -> Optional[int]:
    """Free memory on `device` now (CUDA: the GPU's; CPU: MemAvailable), or None where unknown."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:,.0f} {unit}" if unit in ("B", "PB") else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def activation_values(batch: int, seq_len: int, input_size: int, hidden_size: int, num_layers: int,
                      bidirectional: bool, gates: int, train: bool) -> int:
    """A floor on the values a recurrent stack holds for one (B, T, I) batch: the input, and per layer
    its gate pre-activations (T·B·G·H per direction) and outputs (T·B·D·H); training keeps every
    layer's for backward, inference one layer's at a time."""
    D = 2 if bidirectional else 1
    per_layer = batch * seq_len * D * hidden_size * (gates + 1)
    return batch * seq_len * input_size + per_layer * (num_layers if train else 1)


def check_run_fits(what: str, weight_bytes: int, activation_bytes: int, device: torch.device, fix: str) -> None:
    """UserError when `what` (weights and one batch's activations, in bytes) cannot fit in `device`'s free memory."""
    needed, free = weight_bytes + activation_bytes, available_bytes(device)
    if free is not None and needed > free:
        raise UserError(f"{what} too large: needs at least {_size(needed)} (weights {_size(weight_bytes)}, "
                        f"activations {_size(activation_bytes)}), {device.type} has {_size(free)} free; {fix}")


def check_fits(cfg: Config, parameters: int, device: torch.device) -> None:
    """UserError when training `parameters` cannot fit in the free memory of `device`."""
    needed, free = training_bytes(cfg, parameters), available_bytes(device)
    if free is not None and needed > free:
        m = cfg.model
        raise UserError(f"model too large: {parameters:,} parameters need at least {_size(needed)} to train "
                        f"(weights, gradients, {cfg.train.optimizer} state), {device.type} has {_size(free)} free; "
                        f"reduce model.hidden_size ({m.hidden_size}), model.embedding_dim ({m.embedding_dim}), "
                        f"model.num_layers ({m.num_layers}) or the vocabulary (data.max_size)")
