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


# `word` splits punctuation off; joining it back leaves no space before closing marks or after opening ones.
_NO_SPACE_BEFORE = re.compile(r" ([.,!?;:%)\]}])")
_NO_SPACE_AFTER = re.compile(r"([(\[{]) ")


def detokenize(tokens: list[str], name: str) -> str:
    """Text from tokens that tokenizer `name` made: characters joined as they are, words with spaces
    (`word`: no space before . , ! ? ; : % ) ] } or after ( [ {)."""
    if name == "char":
        return "".join(tokens)
    text = " ".join(tokens)
    if name == "word":
        text = _NO_SPACE_AFTER.sub(r"\1", _NO_SPACE_BEFORE.sub(r"\1", text))
    return text


def get_tokenizer(name: str, lowercase: bool) -> Callable[[str], list[str]]:
    split = TOKENIZERS[name]
    if not lowercase:
        return split
    return lambda text: split(text.lower())
