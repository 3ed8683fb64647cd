"""Config rules and capability checks that several families share; each family's Task calls those it needs.

Torch-free: task modules import this at module level, and config validation must not pay for torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from grutool.config import Config


def check_columns(cfg: Config, fields: tuple[str, ...]) -> None:
    """With data.column_names, the columns a task reads must be among them."""
    d = cfg.data
    if d.column_names:
        for field in fields:
            name = getattr(d, field)
            if name not in d.column_names:
                raise ValueError(f"data.{field}: '{name}' is not one of data.column_names {d.column_names}")


def check_one_path_per_split(cfg: Config) -> None:
    """Only seq2seq's parallel_text reads a split from a [source file, target file] pair."""
    for name in ("train", "validation", "test"):
        if isinstance(getattr(cfg.data, name), list):
            raise ValueError(f"data.{name}: a list of paths is for task seq2seq with data.format parallel_text "
                             f"([source file, target file]); give one path")


def encoder_stream_reason(cfg: Config) -> Optional[str]:
    """Why the encoder of `cfg` cannot continue from a previous chunk's state, or None."""
    from grutool.cells import get_cell

    if cfg.model.bidirectional:
        return ("the encoder is bidirectional: its backward direction starts at the input's last token, so "
                "every output waits for the whole input (train with model.bidirectional: false)")
    if get_cell(cfg.model.cell).cell_state:
        return f"model.cell {cfg.model.cell} carries (h, c); streaming supports cells with a hidden state alone"
    return None
