"""Many short sequences in one flat tensor, and texts tokenized straight into it.

A million examples kept as a million small tensors (or lists of token strings) cost ~60 times the text
file: every tensor carries ~700 bytes of bookkeeping and every token string ~50. Here a split is one id
tensor plus offsets, and tokenizing numbers each distinct token once (see docs/reliability.md, Limits).
"""

from __future__ import annotations

from array import array
from collections import Counter
from itertools import accumulate
from typing import Callable, Iterable, Iterator, Optional

import torch


class Ragged:
    """Rows of one flat tensor: row i is `flat[offsets[i]:offsets[i + 1]]`, a view (nothing is copied).

    Reads like the list of per-row tensors it replaces: `len`, `[i]`, iteration.
    """

    def __init__(self, flat: torch.Tensor, lengths: Iterable[int]):
        self.flat = flat  # (sum of lengths,)
        self.offsets = array("q", accumulate(lengths, initial=0))  # 8 bytes a row; indexing gives an int
        if self.offsets[-1] != flat.numel():
            raise ValueError(f"lengths add up to {self.offsets[-1]}, the flat tensor has {flat.numel()} elements")

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> torch.Tensor:
        o = self.offsets
        return self.flat[o[i]:o[i + 1]]  # (T_i,)

    def __iter__(self) -> Iterator[torch.Tensor]:
        return (self[i] for i in range(len(self)))

    def lengths(self) -> list[int]:
        return torch.frombuffer(self.offsets, dtype=torch.int64).diff().tolist()


class _Numbering(dict):
    """Token -> id, a new token getting the next id: `map(numbering.__getitem__, tokens)` runs in C."""

    def __missing__(self, token: str) -> int:
        self[token] = n = len(self)
        return n


class Tokenized:
    """Texts tokenized once: each token as an index into `distinct` (the distinct tokens, first seen first).

    Holds 4 bytes a token instead of a string object each; the counts a vocabulary is built from and the
    ids of any vocabulary follow without tokenizing again.
    """

    def __init__(self, distinct: list[str], index: torch.Tensor, lengths: list[int], cut: Optional[list[int]] = None):
        self.distinct = distinct
        self.rows = Ragged(index, lengths)  # int32 indexes into `distinct`
        self.cut = cut or []
        """The rows `of` truncated to its limit (positions in the texts given)."""

    @classmethod
    def of(cls, texts: Iterable[str], tokenize: Callable[[str], list[str]], limit: Optional[int] = None) -> "Tokenized":
        """`tokenize(text)[:limit]` of each text; the rows cut short are in `cut`."""
        numbering = _Numbering()
        number = numbering.__getitem__
        index, lengths, cut = array("i"), [], []
        for i, text in enumerate(texts):
            tokens = tokenize(text)
            if limit is not None and len(tokens) > limit:
                tokens = tokens[:limit]
                cut.append(i)
            index.extend(map(number, tokens))
            lengths.append(len(tokens))
        return cls(list(numbering), _tensor(index), lengths, cut)

    @classmethod
    def from_lists(cls, sequences: Iterable[list[str]]) -> "Tokenized":
        """Sequences already tokenized."""
        return cls.of(sequences, list)

    def __len__(self) -> int:
        return len(self.rows)

    def lengths(self) -> list[int]:
        return self.rows.lengths()

    def nonempty(self) -> tuple[list[int], "Tokenized"]:
        """The rows with at least one token: their positions, and them (sharing this one's flat tensor)."""
        lengths = self.rows.lengths()
        keep = [i for i, n in enumerate(lengths) if n]
        return keep, Tokenized(self.distinct, self.rows.flat, [lengths[i] for i in keep])

    def counts(self) -> Counter:
        """How often each token occurs: what `Vocab.build` counts over the token lists."""
        occurrences = torch.bincount(self.rows.flat, minlength=len(self.distinct)).tolist()
        return Counter({t: c for t, c in zip(self.distinct, occurrences) if c})

    def tokens(self, i: int) -> list[str]:
        """Row i as token strings."""
        d = self.distinct
        return [d[j] for j in self.rows[i].tolist()]

    def ids(self, stoi: dict[str, int], unknown: int) -> Ragged:
        """Every row's ids in the vocabulary `stoi` (`unknown` for a token not in it), as long."""
        lookup = torch.tensor([stoi.get(t, unknown) for t in self.distinct], dtype=torch.long)  # (D,)
        # index_select takes the int32 indexes as they are (`lookup[...]` would first copy them to int64).
        return Ragged(torch.index_select(lookup, 0, self.rows.flat), self.rows.lengths())  # (N,) long


def _tensor(values: array) -> torch.Tensor:
    """An int32 array as a tensor, without a second copy (the tensor keeps the array alive)."""
    if not values:
        return torch.zeros(0, dtype=torch.int32)
    return torch.frombuffer(values, dtype=torch.int32)
