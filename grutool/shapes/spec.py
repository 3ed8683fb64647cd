"""The settings of one recurrent layer (`grutool shapes` without --config), their defaults and their checks.

Error messages use the CLI's option names (`--layers`, `--seq-len`, ...): these settings are the command's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Sequence

from grutool.errors import UserError
from grutool.cells import CELL_NAMES as CELLS  # cell names; their modules come from grutool.cells

DEFAULTS = {"batch": 3, "seq_len": 5}


@dataclass(frozen=True)
class LayerSpec:
    """Settings of one recurrent layer stack and of the random batch run through it (PyTorch's names)."""

    cell: str = "gru"
    """gru | lstm | rnn."""
    input_size: int = 10
    """I: features per step."""
    hidden_size: int = 20
    """H: features of the hidden state, per direction."""
    num_layers: int = 1
    """L: stacked layers."""
    bidirectional: bool = False
    """D = 2 when true."""
    batch_first: bool = False
    """Input and output as (B, T, ·) instead of (T, B, ·); h_n is never batch-first."""
    batch: Optional[int] = None
    """B; default 3, or the number of `lengths`."""
    seq_len: Optional[int] = None
    """T; default 5, or the longest of `lengths`."""
    lengths: Optional[tuple[int, ...]] = None
    """One length per sequence: the batch is packed with pack_padded_sequence."""
    bias: bool = True
    """Whether the layer has bias_ih / bias_hh."""
    dropout: float = 0.0
    """Dropout between layers (training only; the checks run in eval mode)."""
    proj_size: int = 0
    """P: LSTM projection of h (0: none)."""
    kernel: str = "auto"
    """How the layer runs (grutool.cells): auto | native | fused; every check runs on that module."""


def parse_lengths(text: str) -> tuple[int, ...]:
    """'5,3,2' -> (5, 3, 2)."""
    try:
        values = tuple(int(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise UserError(f"--lengths: expected comma-separated integers like 5,3,2 (got {text!r})") from None
    return values


def resolve_batch(batch: Optional[int], seq_len: Optional[int],
                  lengths: Optional[Sequence[int]]) -> tuple[int, int, Optional[tuple[int, ...]]]:
    """B, T and lengths after defaults, or a UserError saying which option is wrong and how to fix it."""
    for option, value in (("--batch", batch), ("--seq-len", seq_len)):
        if value is not None and value <= 0:
            raise UserError(f"{option}: must be > 0 (got {value})")
    if lengths is None:
        return batch or DEFAULTS["batch"], seq_len or DEFAULTS["seq_len"], None
    lengths = tuple(int(n) for n in lengths)
    if not lengths:
        raise UserError("--lengths: give one length per sequence, e.g. 5,3,2")
    for i, n in enumerate(lengths):
        if n <= 0:
            raise UserError(f"--lengths: length {n} at position {i + 1}; every sequence needs at least "
                            f"one step (pack_padded_sequence rejects empty ones)")
    T = seq_len or max(lengths)
    for i, n in enumerate(lengths):
        if n > T:
            raise UserError(f"--lengths: length {n} at position {i + 1} is longer than --seq-len {T}; "
                            f"raise --seq-len or shorten the sequence")
    if batch is not None and batch != len(lengths):
        raise UserError(f"--lengths: {len(lengths)} length(s) for --batch {batch}; give one length per "
                        f"sequence, or leave out --batch")
    return len(lengths), T, lengths


def check_spec(spec: LayerSpec) -> tuple[LayerSpec, list[str]]:
    """The spec with B, T filled in, and the warnings it deserves; UserError for impossible settings."""
    if spec.cell not in CELLS:
        raise UserError(f"--cell: unknown cell {spec.cell!r}; expected one of {', '.join(CELLS)}")
    for option, value in (("--input-size", spec.input_size), ("--hidden-size", spec.hidden_size),
                          ("--layers", spec.num_layers)):
        if value <= 0:
            raise UserError(f"{option}: must be > 0 (got {value})")
    if spec.proj_size:
        if spec.cell != "lstm":
            raise UserError(f"--proj-size: only nn.LSTM has a projection (got --cell {spec.cell}); "
                            f"use --cell lstm or leave out --proj-size")
        if spec.proj_size < 0:
            raise UserError(f"--proj-size: must be > 0 (got {spec.proj_size})")
        if spec.proj_size >= spec.hidden_size:
            raise UserError(f"--proj-size: must be smaller than --hidden-size {spec.hidden_size}, as nn.LSTM "
                            f"requires (got {spec.proj_size})")
    if not 0.0 <= spec.dropout < 1.0:
        raise UserError(f"--dropout: must be in [0, 1) (got {spec.dropout})")
    from grutool.cells import CELLS as REGISTRY, KERNELS
    if spec.kernel not in KERNELS:
        raise UserError(f"--kernel: unknown kernel {spec.kernel!r}; expected one of {', '.join(KERNELS)}")
    if spec.kernel not in REGISTRY[spec.cell].kernels:
        raise UserError(f"--kernel {spec.kernel}: not available for --cell {spec.cell} "
                        f"(it has {', '.join(REGISTRY[spec.cell].kernels)})")
    if spec.proj_size and spec.kernel in ("fused", "compiled"):
        # the user asked for an LSTM: say that grutool's kernel is what has no projection
        raise UserError(f"--proj-size: grutool's {spec.kernel} LSTM kernel has no projection (PyTorch's nn.LSTM "
                        f"has); use --kernel native or auto, or leave out --proj-size")
    B, T, lengths = resolve_batch(spec.batch, spec.seq_len, spec.lengths)
    notes = []
    if spec.dropout > 0 and spec.num_layers == 1:
        # PyTorch warns too; this says it with the options the user typed.
        notes.append(f"--dropout {spec.dropout} has no effect with --layers 1: nn.{spec.cell.upper()} "
                     f"applies it between layers only (as PyTorch warns); use --layers 2 or more")
    return replace(spec, batch=B, seq_len=T, lengths=lengths), notes
