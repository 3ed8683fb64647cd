"""`grutool init TASK`: a commented starting config, written from the schema itself.

Every field a task reads, with its default (or the family's example value, its default named beside it), the
first sentence of its docstring in grutool/config.py and, for a field of fixed values, those values, so the
template can never drift from the schema. Fields other families
own (`Task.owns`) and shared fields the family never reads (`Task.ignores`) are left out; the family's
`Task.example` sets the data paths (the toy data in data/) and what that data and the family need, so the
template passes `train --dry-run` as printed. No torch.
"""

from __future__ import annotations

import ast
import inspect
from typing import Optional

from grutool import config as schema
from grutool import jsonsafe
from grutool.families import TASKS

WIDTH = 100


def field_docs(cls) -> dict[str, str]:
    """Attribute docstrings of a pydantic section (the string literal after each field)."""
    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body
    docs = {}
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(nxt, ast.Expr) \
                and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _first_sentence(text: str) -> str:
    import re

    m = re.search(r"(?<!e\.g)(?<!i\.e)\.\s+(?=[A-Z`(])", text)  # a sentence end, not the `e.g. x` inside one
    return (text if m is None else text[: m.start() + 1]).replace("``", "`")


def _owned_elsewhere(task: str) -> set[tuple[str, str]]:
    mine = TASKS[task].owns
    other = set()
    for name, cls in TASKS.items():
        for section, fields in cls.owns.items():
            for f in fields or ("",):
                if (section, f) not in {(s, x) for s, xs in mine.items() for x in (xs or ("",))} \
                        and not (section in mine and not mine[section]):
                    other.add((section, f))
    return other


def _value(value) -> str:
    if isinstance(value, (list, dict)):  # [a, b], as config.yaml writes it (not Python's ['a', 'b'])
        from grutool.config_file import yaml_value

        return yaml_value(value)
    return jsonsafe.dumps(value) if isinstance(value, str) and (not value or value[0] in "{[*&!|>%@`'\"" or ":" in value) \
        else ("null" if value is None else (str(value).lower() if isinstance(value, bool) else str(value)))


def template(task: str, input: Optional[str] = None) -> str:
    """The commented YAML config for `task` (a name in grutool.families.TASKS) reading `input`: its `example`
    (None: whatever the task reads first), or one of its `inputs` (numeric: numeric sequences)."""
    from grutool.errors import UserError
    from grutool.families.rules import reads_both

    if task not in TASKS:
        import difflib

        close = difflib.get_close_matches(task, list(TASKS), n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise UserError(f"init: unknown task '{task}'; {hint}choose one of {', '.join(TASKS)}")
    cls = TASKS[task]
    inputs = cls.inputs
    # A family whose example is its numeric input (regressor, forecast) reads numbers alone.
    reads = [*([] if cls.example == inputs.get("numeric") else ["text"]), *inputs]
    if input is not None and input not in reads:
        raise UserError(f"input: task {task} reads {' or '.join(reads)}, not {input!r}", option="input")
    input = input or reads[0]
    skip = _owned_elsewhere(task) | {(section, f) for section, fs in cls.ignores.items() for f in fs}
    if input == "numeric":  # the text settings a numeric sequence never reads
        from grutool.families.rules import TEXT_ONLY

        skip |= {(section, f) for section, fs in TEXT_ONLY.items() for f in fs}
    elif reads_both(cls):  # text, in a family that reads numbers too: the numbers' settings change nothing here
        # (seq2seq and lm read data.split_seed for their own text slices; joint ignores the tagger's numeric ones)
        from grutool.families.rules import NUMERIC_SETTINGS

        skip |= {(section, f) for section, fs in NUMERIC_SETTINGS.items() for f in fs}
    lines = [f"# A starting config for task {task}: every field it reads, at its default unless marked",
             "# \"default: ...\" (a value this starting config chose). The data paths name the toy data in grutool's",
             "# data/ folder (run from a clone's root); put yours there, then: grutool train THIS.yaml --dry-run",
             "# (every field's full description: grutool/config.py)",
             f"task: {task}"]
    sections = {"data": schema.DataConfig, "model": schema.ModelConfig, "train": schema.TrainConfig,
                "decoding": schema.DecodingConfig}
    for section, model in sections.items():
        if (section, "") in skip:
            continue
        docs = field_docs(model)
        lines.append(f"{section}:")
        for name, field in model.model_fields.items():
            if (section, name) in skip:
                continue
            default = cls.default(section, name, field.default)
            example = inputs[input] if input in inputs else cls.example
            if (section, name) == ("train", "monitor"):  # the default the example's data gets (seq2seq on
                default = cls.default_monitor(example.get("data", {}))  # characters: exact_match, not bleu)
            value = example.get(section, {}).get(name, default)
            # the family's own monitors, not every family's (the schema's Literal lists them all)
            choices = list(cls.monitors) if (section, name) == ("train", "monitor") else None
            doc = _described(_first_sentence(docs.get(name, "")), field.annotation, value, default, choices)
            if isinstance(default, schema.BaseModel):  # a nested section (data.covariates): its own fields
                _entry(lines, f"  {name}:", doc, "  ")
                inner = field_docs(type(default))
                given = value if isinstance(value, dict) else {}  # what the task's example sets
                for key, sub in type(default).model_fields.items():
                    _entry(lines, f"    {key}: {_value(given.get(key, sub.default))}",
                           _described(_first_sentence(inner.get(key, "")), sub.annotation,
                                      given.get(key, sub.default), sub.default), "    ")
                continue
            _entry(lines, f"  {name}: {_value(value)}", doc, "  ")
    return "\n".join(lines) + "\n"


def _choices(annotation) -> list:
    """The values a field takes when its type is a fixed set (`Literal[...]`, optionally with None), else []."""
    from typing import Literal, Union, get_args, get_origin

    if get_origin(annotation) is Literal:
        return list(get_args(annotation))
    if get_origin(annotation) is Union or type(annotation).__name__ == "UnionType":
        found = [c for arg in get_args(annotation) for c in (_choices(arg) or ([None] if arg is type(None) else []))]
        return found if any(c is not None for c in found) else []
    return []


def _described(doc: str, annotation, value, default, choices: Optional[list] = None) -> str:
    """A field's comment: the first sentence of its doc, the values it takes (a fixed set: `choices`, else its
    type's), and its default where the template's value is another (the family's example chose it)."""
    choices = choices if choices is not None else _choices(annotation)
    if choices and "one of" not in doc:
        doc = f"{doc} One of: {', '.join(_value(c) for c in choices)}.".strip()
    if value != default:
        doc = f"{doc} (default: {_value(default)})".strip()
    return doc


def _entry(lines: list[str], entry: str, doc: str, indent: str) -> None:
    """One field's line, its doc as a comment beside it, or above it (wrapped at WIDTH) when the line would be
    too long."""
    import textwrap

    comment = f"  # {doc}" if doc else ""
    if len(entry) + len(comment) > WIDTH and doc:
        lines.extend(textwrap.wrap(doc, WIDTH, initial_indent=f"{indent}# ", subsequent_indent=f"{indent}# ",
                                   break_long_words=False, break_on_hyphens=False))
        lines.append(entry)
    else:
        lines.append(entry + comment)
