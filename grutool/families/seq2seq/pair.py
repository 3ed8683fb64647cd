"""One source/target example of sequence-to-sequence data, as every parallel reader returns it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass
class Pair:
    source: str
    target: Optional[str]  # None where only sources are given (infer)
    where: str             # "path:line" (or "cmudict:word"), for messages
