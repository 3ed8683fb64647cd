"""Token and label vocabularies, saved as JSON in the run directory."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping, Optional

from grutool import jsonsafe
from grutool.atomic import write_json_atomic
from grutool.errors import clipped
from grutool.jsonsafe import json_type

if TYPE_CHECKING:
    import torch

PAD, UNK = "<pad>", "<unk>"
BOS, EOS = "<bos>", "<eos>"
TARGET_SPECIALS = (BOS, EOS)  # seq2seq target vocabularies: ids 2 and 3


def read_strings(path: Path, key: str) -> list[str]:
    """The list of distinct strings under `key` in the JSON object in `path`; ValueError saying what is wrong."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}:{e.colno}: not valid JSON ({e.msg})") from None
    items = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(items, list) or not all(isinstance(t, str) for t in items):
        raise ValueError(f'{path}: expected {{"{key}": [strings]}}, found {_shape(obj)}')
    if len(set(items)) != len(items):
        raise ValueError(f"{path}: {key} has duplicate entries")
    return items


def _shape(obj) -> str:
    if isinstance(obj, dict):
        return "{" + ", ".join(f'"{k}": {json_type(v)}' for k, v in list(obj.items())[:3]) + "}"
    return f"a JSON {json_type(obj)}"


class Vocab:
    """Token <-> id. Id 0 is `<pad>` (embedding row kept at zero), id 1 is `<unk>`; a seq2seq target
    vocabulary (built with specials=TARGET_SPECIALS) adds `<bos>` = 2 and `<eos>` = 3."""

    pad_id, unk_id = 0, 1
    bos_id, eos_id = 2, 3

    def __init__(self, tokens: list[str]):
        self.itos = list(tokens)
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    @classmethod
    def build(cls, sequences: Iterable[list[str]], min_freq: int = 1,
              max_size: Optional[int] = None, specials: tuple[str, ...] = ()) -> "Vocab":
        return cls.from_counts(Counter(tok for seq in sequences for tok in seq), min_freq, max_size, specials)

    @classmethod
    def from_counts(cls, counts: Mapping[str, int], min_freq: int = 1, max_size: Optional[int] = None,
                    specials: tuple[str, ...] = ()) -> "Vocab":
        """`build` from the token counts alone (see grutool.data.ragged.Tokenized.counts)."""
        # Most frequent first; ties broken alphabetically so builds are reproducible.
        ranked = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
        ranked = [t for t in ranked if t not in (PAD, UNK) + tuple(specials)]
        if max_size is not None:
            ranked = ranked[:max_size]
        return cls([PAD, UNK, *specials] + ranked)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: list[str]) -> list[int]:
        unk = self.unk_id
        return [self.stoi.get(t, unk) for t in tokens]

    def encode_chars(self, tokens: list[str], width: int) -> "torch.Tensor":
        """Char ids of each token (this vocabulary holds characters), first `width` characters:
        (T, W) long, 0-padded, W the longest kept spelling (1 for an empty sequence)."""
        import torch

        rows = [self.encode(list(t[:width])) for t in tokens]
        m = torch.zeros(len(rows), max([len(r) for r in rows] or [1]), dtype=torch.long)  # (T, W)
        for i, r in enumerate(rows):
            m[i, :len(r)] = torch.tensor(r, dtype=torch.long)
        return m

    def save(self, path: Path) -> None:
        write_json_atomic({"tokens": self.itos}, path, ensure_ascii=False)

    @classmethod
    def load(cls, path: Path) -> "Vocab":
        tokens = read_strings(path, "tokens")
        if tokens[:2] != [PAD, UNK]:  # ids 0 and 1 size the embedding's padding row and unknown words
            found = f"{clipped(jsonsafe.dumps(tokens[:2], ensure_ascii=False), 60)} first" if tokens else "none"
            raise ValueError(f'{path}: expected {{"tokens": ["{PAD}", "{UNK}", ...]}}, found {found}')
        return cls(tokens)


class LabelVocab:
    """Class label <-> id. Labels are kept as strings so csv ints and json strings agree."""

    def __init__(self, labels: list[str]):
        self.itos = list(labels)
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    @classmethod
    def build(cls, labels: Iterable[str]) -> "LabelVocab":
        distinct = set(labels)
        # Integer-like labels sort numerically ("2" before "10"), others alphabetically.
        if all(s.lstrip("-").isdigit() for s in distinct):
            return cls(sorted(distinct, key=int))
        return cls(sorted(distinct))

    def __len__(self) -> int:
        return len(self.itos)

    def save(self, path: Path) -> None:
        write_json_atomic({"labels": self.itos}, path, ensure_ascii=False)

    @classmethod
    def load(cls, path: Path) -> "LabelVocab":
        return cls(read_strings(path, "labels"))


def char_counts(token_counts: Counter, width: int) -> Counter:
    """How often each character occurs in the first `width` characters of the tokens counted."""
    counts: Counter = Counter()
    for token, n in token_counts.items():
        for c in token[:width]:
            counts[c] += n
    return counts
