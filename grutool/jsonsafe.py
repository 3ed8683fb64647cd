"""JSON as strict parsers read it: every JSON text grutool writes goes through `dumps`; every message naming
the type of a JSON value it read, through `json_type`.

Python's `json.dumps` writes float NaN and infinities as bare `NaN`/`Infinity` tokens, which are not
JSON (a strict parser, `jq`, JavaScript reject them). Here they become `null`: a metric that could
not be computed (a diverged loss, a ratio over zero) reads as "no value", never as a number.

Values that come from float32 tensors (a model's outputs, z-scored targets) go through `float32_values` before
they reach `dumps`, so they are written with the digits float32 holds, not float64's noise around them.
"""

from __future__ import annotations

import json
import math


def finite(value):
    """`value` with every non-finite float (NaN, +-inf) inside dicts, lists and tuples replaced by None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def float32_values(z, mean=0.0, std=1.0) -> list:
    """`z * std + mean` as nested lists of Python floats (`z`'s shape), each written with the fewest significant
    digits that are still exact. `z` holds float32 values (a model's outputs, or targets z-scored into a float32
    tensor), so each value is known only to float32's precision of its z-score, and the float64 arithmetic that
    turns it back into units adds digits the data never had (0.724 z-scored and back: 0.7240000003922312). Each
    value becomes the shortest decimal (1 to 17 significant digits) whose z-score `(d - mean) / std`, computed in
    float64 as `Standardizer.transform` does, rounds to the same float32: the data's own number where the z-score
    came from it, and float32's shortest repr where mean is 0 and std 1. The precision follows the z-score, not the
    value's size, so a target of 1e6 +- 0.1 keeps its decimals. `mean` and `std`: numbers, or arrays that
    broadcast against `z` (one per column on its last axis). NaN and infinities pass unchanged (`dumps` writes
    them as null)."""
    import numpy as np

    z = np.asarray(z, dtype=np.float32)
    mean, std = (np.broadcast_to(np.asarray(a, dtype=np.float64), z.shape).ravel() for a in (mean, std))
    zs = z.ravel()
    flat = zs.astype(np.float64) * std + mean  # what the float64 arithmetic gives
    out = flat.copy()
    done = ~np.isfinite(flat)  # NaN and infinities pass unchanged

    def keep(candidate, at):  # the candidates whose z-score rounds to the same float32 replace their values
        same = ((candidate - mean[at]) / std[at]).astype(np.float32) == zs[at]
        out[at[same]], done[at[same]] = candidate[same], True
        return ~same

    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        # Vectorised first (a forecast of 96 x 7 values in well under a millisecond, where formatting each value
        # as a string took ~5 ms): a decimal of `digits` significant digits is an integer times a power of ten,
        # both exact in float64 (integers below 2**53, powers up to 1e22), so their product or quotient is the
        # decimal's nearest double, the float that `float(f"{v:.{digits}g}")` parses; past that a candidate may be
        # a neighbour of it, kept only if it too rounds to the same float32, as every candidate must.
        size = np.abs(flat)
        at = np.flatnonzero(~done & (size > 1e-280) & (size < 1e280))
        exponent = np.floor(np.log10(size[at]))
        for digits in range(1, 18):
            if not at.size:
                break
            places = digits - 1 - exponent
            scale, v = 10.0 ** np.abs(places), flat[at]
            left = keep(np.where(places >= 0, np.round(v * scale) / scale, np.round(v / scale) * scale), at)
            at, exponent = at[left], exponent[left]
        todo = np.flatnonzero(~done)  # zeros, extremes, and any the powers of ten above rounded off
        for digits in range(1, 18):
            if not todo.size:
                break
            todo = todo[keep(np.array([float(f"{x:.{digits}g}") for x in flat[todo]]), todo)]
    return out.reshape(z.shape).tolist()  # values no decimal matched (float64 cancellation) stay as computed


_JSON_TYPES = {bool: "boolean", int: "number", float: "number", str: "string", list: "array", tuple: "array",
               dict: "object", type(None): "null"}


def json_type(value, article: bool = False) -> str:
    """What a parsed JSON value is, in JSON's own words: array, object, string, number, boolean, null (not
    Python's list, dict, str, int, float, bool, None), for every message about JSON input; with its article
    (`an array`, `a string`) where `article`. Other values (a Hub dataset's cell) by their Python type's name."""
    name = _JSON_TYPES.get(type(value), type(value).__name__)
    return f"{'an' if name[:1] in 'aeiou' else 'a'} {name}" if article else name


def dumps(obj, **kwargs) -> str:
    """`json.dumps` of `obj` with non-finite floats as null; `allow_nan=False` makes any that slip through an error.
    With `ensure_ascii=False`, the three characters JSON leaves unescaped that line readers take for line breaks
    (U+0085, U+2028, U+2029: Python's `str.splitlines`, JavaScript before ES2019) are escaped all the same, so a
    JSON Lines record stays one line whatever its text holds."""
    text = json.dumps(finite(obj), allow_nan=False, **kwargs)
    if kwargs.get("ensure_ascii", True) is False:
        text = text.translate(_LINE_BREAKS)
    return text


_LINE_BREAKS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}
