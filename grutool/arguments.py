"""The Python API's arguments checked as the CLI's options are (`evaluate`, `Predictor`): a value the command line
cannot give (typer refuses it there) is one UserError naming the keyword argument, never a traceback from deep
inside or a silently wrong answer. Torch-free: `grutool.evaluate` imports it at module level."""

from __future__ import annotations

import difflib

from grutool.errors import UserError, clipped

SPLITS = ("train", "validation", "test")
"""The splits `evaluate` scores (`eval --split`)."""


def described(value) -> str:
    """A value's type for a message: `an int`, `a bytes`, `None`."""
    if value is None:
        return "None"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def check_batch_size(batch_size, default: str = "") -> None:
    """A positive int (not a bool), as `--batch-size` takes; `default`: what None means, where it is allowed."""
    if batch_size is None and default:
        return
    import numbers

    # any integer type (numpy's int64 from a sweep's array too), never a bool
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        got = repr(batch_size) if isinstance(batch_size, int) else described(batch_size)
        raise UserError(f"batch_size: must be an int >= 1 (got {clipped(got, 40)}){default}", option="batch_size")


def check_split(split) -> None:
    """One of `SPLITS`, as `--split` takes (a config field's name, `format`, was read as a path)."""
    if isinstance(split, str) and split in SPLITS:
        return
    close = difflib.get_close_matches(split, SPLITS, n=1, cutoff=0.6) if isinstance(split, str) else []
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise UserError(f"split: {clipped(repr(split), 40)} is not one of {', '.join(SPLITS)}{hint}; "
                    f"`data` scores another file", option="split")


def text_list(texts, name=None) -> list:
    """`Predictor.predict`'s inputs as a list: any iterable of str but a str or bytes itself (a generator or
    tuple is read once, here); None, a non-iterable or an entry that is not a str is refused, the entry by its
    index. `name(k)`: how a message names entry k (default `texts[k]`)."""
    if isinstance(texts, (str, bytes)):  # iterated, a string is one input per character
        one = texts if isinstance(texts, str) else texts.decode("utf-8", "replace")
        raise UserError(f"texts: a list of inputs, not one {type(texts).__name__}; write "
                        f"predict([{clipped(repr(one), 40)}])", option="texts")
    try:
        texts = list(texts)
    except TypeError:  # None, a number: nothing to iterate
        raise UserError(f"texts: a list of str, not {described(texts)}; write predict(['some text'])",
                        option="texts") from None
    for k, text in enumerate(texts):
        if not isinstance(text, str):
            fix = ("decode it to a str" if isinstance(text, (bytes, bytearray)) else
                   "each input is one text: tokens joined by spaces, a numeric sequence as '0.5,1.2' (channels "
                   "separated by ':')" if isinstance(text, (list, tuple)) else "each input is one text")
            raise UserError(f"{name(k) if name else f'texts[{k}]'}: {described(text)}, not a str; {fix}")
    return texts


def check_chunk(text) -> None:
    """A stream's `feed(text)`: one chunk of text, a str."""
    if not isinstance(text, str):
        fix = "decode it to a str" if isinstance(text, (bytes, bytearray)) else "feed one chunk of text at a time"
        raise UserError(f"text: {described(text)}, not a str; {fix}", option="text")


def check_option_types(options: dict, accepted: dict) -> None:
    """Each given option's value of its `Option.type` (None: the family's default), as `serve`'s strict schema
    reads a request: bool only for bool, no bool for a number, an int for a float."""
    import numbers

    for name, value in options.items():
        want = accepted[name].type
        if value is None or (isinstance(value, want) and (want is bool or not isinstance(value, bool))):
            continue
        # any integer type for an int (numpy's int64), any real number for a float; a bool for neither
        kind = {int: numbers.Integral, float: numbers.Real}.get(want)
        if kind is not None and isinstance(value, kind) and not isinstance(value, bool):
            continue
        raise UserError(f"{name}: must be {described(want())}, not {described(value)} "
                        f"({clipped(repr(value), 40)})", option=name)
