"""Tokenizers: text -> list of token strings. Pure Python, no torch."""

from __future__ import annotations

import re
from typing import Callable

# Words (with inner apostrophes, so "don't" stays one token) or single
# punctuation marks.
_WORD = re.compile(r"\w+(?:'\w+)*|[^\w\s]")


def whitespace(text: str) -> list[str]:
    return text.split()


def word(text: str) -> list[str]:
    return _WORD.findall(text)


def char(text: str) -> list[str]:
    return list(text.strip())


TOKENIZERS: dict[str, Callable[[str], list[str]]] = {
    "whitespace": whitespace,
    "word": word,
    "char": char,
}


def get_tokenizer(name: str, lowercase: bool) -> Callable[[str], list[str]]:
    split = TOKENIZERS[name]
    if not lowercase:
        return split
    return lambda text: split(text.lower())
