"""The Python API's arguments checked as the CLI's options are (`evaluate`, `Predictor`): a value the command line
cannot give (typer refuses it there) is one UserError naming the keyword argument, never a traceback from deep
inside or a silently wrong answer. Torch-free: `grutool.evaluate` imports it at module level."""

from __future__ import annotations

import difflib

from grutool.errors import UserError, clipped

SPLITS = ("train", "validation", "test")
"""The splits `evaluate` scores (`eval --split`)."""


def described(value) -> str:
    """A value's type for a message: `an int`, `a bytes`, `None`."""
    if value is None:
        return "None"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def check_batch_size(batch_size, default: str = "") -> None:
    """A positive int (not a bool), as `--batch-size` takes; `default`: what None means, where it is allowed."""
    if batch_size is None and default:
        return
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        got = repr(batch_size) if isinstance(batch_size, int) else described(batch_size)
        raise UserError(f"batch_size: must be an int >= 1 (got {clipped(got, 40)}){default}", option="batch_size")


def check_split(split) -> None:
    """One of `SPLITS`, as `--split` takes (a config field's name, `format`, was read as a path)."""
    if isinstance(split, str) and split in SPLITS:
        return
    close = difflib.get_close_matches(split, SPLITS, n=1, cutoff=0.6) if isinstance(split, str) else []
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise UserError(f"split: {clipped(repr(split), 40)} is not one of {', '.join(SPLITS)}{hint}; "
                    f"`data` scores another file", option="split")
