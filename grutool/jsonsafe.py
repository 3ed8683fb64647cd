"""JSON as strict parsers read it: every JSON text grutool writes goes through `dumps`; every message naming
the type of a JSON value it read, through `json_type`.

Python's `json.dumps` writes float NaN and infinities as bare `NaN`/`Infinity` tokens, which are not
JSON (a strict parser, `jq`, JavaScript reject them). Here they become `null`: a metric that could
not be computed (a diverged loss, a ratio over zero) reads as "no value", never as a number.
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


_JSON_TYPES = {bool: "boolean", int: "number", float: "number", str: "string", list: "array", tuple: "array",
               dict: "object", type(None): "null"}


def json_type(value, article: bool = False) -> str:
    """What a parsed JSON value is, in JSON's own words: array, object, string, number, boolean, null (not
    Python's list, dict, str, int, float, bool, None), for every message about JSON input; with its article
    (`an array`, `a string`) where `article`. Other values (a Hub dataset's cell) by their Python type's name."""
    name = _JSON_TYPES.get(type(value), type(value).__name__)
    return f"{'an' if name[:1] in 'aeiou' else 'a'} {name}" if article else name


def dumps(obj, **kwargs) -> str:
    """`json.dumps` of `obj` with non-finite floats as null; `allow_nan=False` makes any that slip through an error."""
    return json.dumps(finite(obj), allow_nan=False, **kwargs)
