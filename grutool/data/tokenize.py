"""Tokenizers: text -> list of token strings. Pure Python, no torch."""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from typing import Callable


def _marks() -> str:
    """A character class of Unicode's combining marks (categories Mn, Mc, Me), as ranges: `\\w` holds none of
    them, so a word split at each (Devanagari's vowel signs; a decomposed ë, e + U+0308). The planes that hold
    marks: 0-2 and 14 (variation selectors)."""
    ranges, start, last = [], None, None
    for code in itertools.chain(range(0x30000), range(0xE0000, 0xE1000), [0x10FFFF]):
        if unicodedata.category(chr(code)).startswith("M"):
            if start is None:
                start = code
            last = code
        elif start is not None:
            ranges.append(f"\\U{start:08x}-\\U{last:08x}" if start != last else f"\\U{start:08x}")
            start = None
    return "".join(ranges)


@functools.lru_cache(maxsize=1)
def _word_pattern() -> re.Pattern:
    """Words (letters, digits and the combining marks on them; inner apostrophes, so "don't" stays one token) or
    single punctuation marks. Built on first use (~50 ms), not at import."""
    letter = rf"[\w{_marks()}]"
    return re.compile(rf"{letter}+(?:'{letter}+)*|[^\w\s]")


def whitespace(text: str) -> list[str]:
    return text.split()


def word(text: str) -> list[str]:
    return _word_pattern().findall(text)


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
    """Text is read in Unicode's composed form (NFC) first: a decomposed "Zoë" (e + U+0308, as macOS file names and
    some editors write it) is the same tokens as the composed one, not another word."""
    split = TOKENIZERS[name]
    if not lowercase:
        return lambda text: split(unicodedata.normalize("NFC", text))
    return lambda text: split(unicodedata.normalize("NFC", text).lower())
