"""What the benchmark scripts check on their command lines, so a bad argument is a message, not a traceback.

The types are argparse `type=` functions: a bad value is argparse's usage line and `error: argument --x: ...`
with exit 2, before torch, data or a timing loop is touched. A comma list keeps its text (each script splits it
as before). `run(main)` turns grutool's UserError (data not in place, a run directory not found, a bad --set)
and a missing input file into one `error:` line on stderr and exit 2, as the `grutool` command does.
"""

from __future__ import annotations

import argparse
import sys


def positive(text: str) -> int:
    """A count or size: an integer > 0 (`--repeats 0` would leave nothing to take a median of)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be > 0 (got {value})")
    return value


def positive_list(text: str) -> str:
    """Comma-separated integers > 0, such as 64,256; returned as given."""
    items = [part.strip() for part in text.split(",")]
    if "" in items:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 64,256 (got {text!r})")
    for item in items:
        positive(item)
    return text


def names(*choices: str):
    """Comma-separated names out of `choices`, such as padded,packed; returned as given."""

    def check(text: str) -> str:
        for item in (part.strip() for part in text.split(",")):
            if item not in choices:
                raise argparse.ArgumentTypeError(f"{item!r} is not one of {', '.join(choices)} "
                                                 f"(comma-separated, e.g. {','.join(choices[:2])})")
        return text

    return check


def layer_shape(ap: argparse.ArgumentParser) -> None:
    """The layer call's shape, as `grutool bench` times it: --batch 32, --seq-len 100, --input-size 128."""
    ap.add_argument("--batch", type=positive, default=32)
    ap.add_argument("--seq-len", type=positive, default=100)
    ap.add_argument("--input-size", type=positive, default=128)


def run(main, *args) -> int:
    """`main(*args)`, with a user's mistake as one line and exit 2."""
    from grutool.errors import UserError

    try:
        return main(*args) or 0
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except FileNotFoundError as e:
        print(f"error: {e.filename}: file not found", file=sys.stderr)
        return 2
