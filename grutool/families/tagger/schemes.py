"""Tag schemes: which tags are well formed, how spans are read from tags, and conversion between schemes.

Spans are read with conlleval's chunk rules, so every tag sequence, malformed or
not, has exactly the spans conlleval would score: an `I-X` after `O` (or after
another type) starts a span, `B-X` always starts one, a change of type ends one.
For BIOES the rules add what the usual Python port of conlleval adds: `S-` starts
and ends a span, `E-` ends one. On IOB1/IOB2 input these extra rules never fire,
so the results equal conlleval.pl's.

A span is `(type, start, end)` with `end` exclusive. Pure Python, no torch.
"""

from __future__ import annotations

from typing import Optional

SPAN_SCHEMES = ("iob1", "iob2", "bioes")
_PREFIXES = {"iob1": "BI", "iob2": "BI", "bioes": "BIES"}


def canonical(scheme: str) -> str:
    """`bio` is another name for `iob2`."""
    return "iob2" if scheme == "bio" else scheme


def has_spans(scheme: Optional[str]) -> bool:
    return scheme is not None and canonical(scheme) in SPAN_SCHEMES


def split_tag(tag: str) -> tuple[str, str]:
    """`B-PER` -> (`B`, `PER`); `O` -> (`O`, ``). Split at the first hyphen, as conlleval does."""
    prefix, sep, kind = tag.partition("-")
    return (prefix, kind) if sep else (tag, "")


def is_valid_tag(tag: str, scheme: str) -> bool:
    """Whether `tag` is written in `scheme`: any non-empty tag for plain, else O or PREFIX-TYPE."""
    scheme = canonical(scheme)
    if scheme == "plain":
        return bool(tag)
    if tag == "O":
        return True
    prefix, kind = split_tag(tag)
    return len(prefix) == 1 and prefix in _PREFIXES[scheme] and bool(kind)


def _end_of_chunk(prev_tag: str, tag: str, prev_type: str, kind: str) -> bool:
    if prev_tag in ("E", "S"):
        return True
    if prev_tag in ("B", "I") and tag in ("B", "S", "O"):
        return True
    return prev_tag not in ("O", ".") and prev_type != kind


def _start_of_chunk(prev_tag: str, tag: str, prev_type: str, kind: str) -> bool:
    if tag in ("B", "S"):
        return True
    if prev_tag in ("E", "S", "O") and tag in ("E", "I"):
        return True
    return tag not in ("O", ".") and prev_type != kind


def spans(tags: list[str]) -> list[tuple[str, int, int]]:
    """The spans conlleval reads from one sentence's tags, in order."""
    found: list[tuple[str, int, int]] = []
    start: Optional[int] = None
    prev_tag, prev_type = "O", ""
    # The sentence boundary acts as an O, which closes any open span.
    for i, raw in enumerate(list(tags) + ["O"]):
        tag, kind = split_tag(raw)
        if start is not None and (_end_of_chunk(prev_tag, tag, prev_type, kind)
                                  or _start_of_chunk(prev_tag, tag, prev_type, kind)):
            found.append((prev_type, start, i))
            start = None
        if _start_of_chunk(prev_tag, tag, prev_type, kind):
            start = i
        prev_tag, prev_type = tag, kind
    return found


def to_tags(found: list[tuple[str, int, int]], n: int, scheme: str) -> list[str]:
    """Tags of length `n` in `scheme` that mark exactly the (non-overlapping) spans `found`."""
    scheme = canonical(scheme)
    tags = ["O"] * n
    prev_end, prev_type = -1, None
    for kind, start, end in sorted(found, key=lambda s: s[1]):
        if scheme == "iob2":
            tags[start:end] = [f"B-{kind}"] + [f"I-{kind}"] * (end - start - 1)
        elif scheme == "bioes":
            tags[start:end] = ([f"S-{kind}"] if end - start == 1 else
                               [f"B-{kind}"] + [f"I-{kind}"] * (end - start - 2) + [f"E-{kind}"])
        elif scheme == "iob1":
            # IOB1 uses B- only where a span directly follows another of the same type.
            first = "B" if (prev_end == start and prev_type == kind) else "I"
            tags[start:end] = [f"{first}-{kind}"] + [f"I-{kind}"] * (end - start - 1)
        else:
            raise ValueError(f"scheme {scheme!r} has no spans")
        prev_end, prev_type = end, kind
    return tags


def convert(tags: list[str], scheme: str) -> list[str]:
    """The same spans, written in `scheme` (also repairs malformed sequences the way conlleval reads them)."""
    return to_tags(spans(tags), len(tags), scheme)


def allowed_transitions(tags: list[str], scheme: str) -> tuple[list[list[bool]], list[bool], list[bool]]:
    """Which tag may follow which in well-formed `scheme` sequences: (allowed[i][j]: j after i, start[j], end[i]).

    Everything is allowed for plain tags.
    """
    scheme = canonical(scheme)
    parts = [split_tag(t) for t in tags]
    n = len(tags)
    if scheme not in SPAN_SCHEMES:
        return [[True] * n for _ in range(n)], [True] * n, [True] * n

    def follows(prev: Optional[tuple[str, str]], cur: Optional[tuple[str, str]]) -> bool:
        """`prev` None: sentence start; `cur` None: sentence end."""
        inside = prev is not None and prev[0] in ("B", "I") and scheme == "bioes"
        if cur is None:
            return not inside
        p, kind = cur
        if scheme == "iob2" and p == "I":
            return prev is not None and prev[0] in ("B", "I") and prev[1] == kind
        if scheme == "iob1" and p == "B":
            return prev is not None and prev[0] in ("B", "I") and prev[1] == kind
        if scheme == "bioes":
            if inside:
                return p in ("I", "E") and prev[1] == kind
            return p in ("O", "B", "S")
        return True

    allowed = [[follows(a, b) for b in parts] for a in parts]
    return allowed, [follows(None, b) for b in parts], [follows(a, None) for a in parts]
