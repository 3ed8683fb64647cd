"""A split given as a slice of a file, `path[lo%:hi%]` (`TRAIN.ts[:80%]`, `input.txt[90%:]`): the one parser
every family uses (numeric sequences are cut class by class after a shuffle with data.split_seed, a text
stream by characters), and the rule that two splits cut from one file share none of it.

Free of torch and numpy: config validation reads it.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from grutool.errors import UserError

if TYPE_CHECKING:
    from grutool.config import Config

SLICE = re.compile(r"^(?P<path>.*)\[(?P<lo>\d+(?:\.\d+)?%)?:(?P<hi>\d+(?:\.\d+)?%)?\]$")


def split_slice(spec: str) -> tuple[str, float, float]:
    """`path[lo%:hi%]` -> (path, lo, hi) as fractions; a plain path is (path, 0, 1)."""
    m = SLICE.match(str(spec))
    if not m:
        return str(spec), 0.0, 1.0
    lo = float(m["lo"][:-1]) / 100 if m["lo"] else 0.0
    hi = float(m["hi"][:-1]) / 100 if m["hi"] else 1.0
    if not 0 <= lo < hi <= 1:
        raise UserError(f"{spec}: a slice [lo%:hi%] needs 0 <= lo < hi <= 100")
    return m["path"], lo, hi


def check_splits_apart(cfg: Config) -> None:
    """Two splits cut from one file (at least one of them a slice) must not share any of it: validation or test
    would score examples the model trained on. The same file whole in two splits is left alone (a toy config
    may score its training data on purpose; a forecaster cuts one file by data.borders or data.fractions)."""
    d = cfg.data
    named = [(name, getattr(d, name)) for name in ("train", "validation", "test")]
    cuts = []
    for name, spec in named:
        if not isinstance(spec, str):
            continue
        try:
            path, lo, hi = split_slice(spec)
        except UserError as err:
            raise ValueError(f"data.{name}: {err}") from None
        # the file itself, however written: ./x, an absolute path, a link to it (a --set's absolute path beside the
        # config's relative one overlapped unseen)
        cuts.append((name, spec, path, os.path.realpath(path), lo, hi))
    for i, (first, first_spec, _, real, lo, hi) in enumerate(cuts):
        for second, second_spec, path, other, lo2, hi2 in cuts[i + 1:]:
            if real != other or (lo, hi) == (0.0, 1.0) == (lo2, hi2):
                continue
            shared_lo, shared_hi = max(lo, lo2), min(hi, hi2)
            if shared_lo < shared_hi:
                raise ValueError(
                    f"data.{second}: {_cut_of(second_spec)} {path} overlaps data.{first}, {_cut_of(first_spec)} it "
                    f"({_percent(shared_lo)}–{_percent(shared_hi)} % of the file in both): {second} would score "
                    f"examples {'the model trains on' if first == 'train' else 'that ' + first + ' scores'}; cut "
                    f"slices that meet, e.g. [:80%] and [80%:]")


def _cut_of(spec: str) -> str:
    """`[70%:] of` for a slice, `the whole of` for a plain path."""
    m = SLICE.match(spec)
    return f"[{m['lo'] or ''}:{m['hi'] or ''}] of" if m else "the whole of"


def _percent(fraction: float) -> str:
    return f"{fraction * 100:g}"
