"""A config file to a validated Config: YAML, `--set` overrides, the schema, the task's own rules.

Everything a run needs is validated once, at load time, so the rest of the library can trust
it. Errors name the dotted path and, when the value came from a YAML file, the line and column of its key, as
compilers write them: ``configs/x.yaml:12:3: model.hidden_size: must be > 0``. Imports pydantic and yaml but
never torch.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
from pathlib import Path
from typing import Any, NamedTuple, Optional, Sequence

import yaml
from pydantic import BaseModel, ValidationError

from grutool.config import Config
from grutool.errors import UserError, clipped
from grutool.families import TASKS


# --- loading ----------------------------------------------------------------------


MAX_DEPTH = 100  # nesting levels: deeper, PyYAML's recursive composer raises RecursionError
MAX_VALUES = 100_000  # values once aliases are expanded: an alias bomb (billion laughs) expands to billions


class _Refused(yaml.MarkedYAMLError):
    """Well-formed YAML that grutool will not read (too deep, or aliases that expand too far)."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads `1e-3` as a float (YAML 1.2); PyYAML's 1.1 rules need `1.0e-3`. It refuses
    documents nested deeper than MAX_DEPTH, and aliases that expand to more than MAX_VALUES values."""

    _depth = 0

    def compose_node(self, parent, index):
        if self._depth >= MAX_DEPTH:
            raise _Refused(None, None, f"nested more than {MAX_DEPTH} levels deep; a config is a few levels "
                           f"of sections and lists", self.peek_event().start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self):
        node = super().compose_document()
        _expanded_size(node, {})
        return node


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """How many values `node` stands for with every alias written out (each shared node counted once per
    use, computed once); _Refused at the first node above MAX_VALUES."""
    key = id(node)
    if key in sizes:
        if sizes[key] < 0:
            raise _Refused(None, None, "an alias refers to a node it is inside of (endless); write the "
                           "values out", node.start_mark)
        return sizes[key]
    sizes[key] = -1  # in progress: meeting it again is a cycle
    children = (node.value if isinstance(node, yaml.SequenceNode) else
                [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else [])
    size = 1 + sum(_expanded_size(child, sizes) for child in children)
    if size > MAX_VALUES:
        raise _Refused(None, None, f"aliases expand to more than {MAX_VALUES:,} values here; write the values "
                       f"out, or use fewer aliases", node.start_mark)
    sizes[key] = size
    return size


class _Dumper(yaml.SafeDumper):
    """PyYAML's safe dumper, knowing the numbers `_Loader` reads: a string such as '1e-3' is written quoted.
    (PyYAML wrote it plain, and grutool read the saved config.yaml back as the number 0.001.)"""


for _reader in (_Loader, _Dumper):  # 1e-3 is a float (YAML 1.2), as `lr: 1e-3` means; PyYAML's 1.1 wants 1.0e-3
    _reader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
        list("-+0123456789"),
    )


def _load_yaml(text: str):
    return yaml.load(text, Loader=_Loader)


class Place(NamedTuple):
    """Where a key starts in a YAML file, 1-based; written `line:column`, so `f"{file}:{place}"` reads as a
    compiler's `file:line:column`."""

    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.line}:{self.column}"

    @classmethod
    def of(cls, mark) -> "Place":
        return cls(mark.line + 1, mark.column + 1)


def yaml_lines(text: str, source: str = "<yaml>") -> dict[tuple[str, ...], Place]:
    """Map each key path in a YAML document to where its key starts (`Place`: line and column).

    A key given twice in one mapping is a UserError naming both places (YAML loaders keep the last silently).
    """
    lines: dict[tuple[str, ...], Place] = {}

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                sub = path + (str(key.value),)
                if sub in lines:
                    raise UserError(f"{source}:{Place.of(key.start_mark)}: {'.'.join(sub)}: duplicate key "
                                    f"(also at line {lines[sub].line}, column {lines[sub].column}); keep one "
                                    f"of them")
                lines[sub] = Place.of(key.start_mark)
                walk(value, sub)

    root = yaml.compose(text, Loader=_Loader)
    if root is not None:
        walk(root, ())
    return lines


def read_text_file(path: Path, what: str) -> str:
    """The UTF-8 text of `path`; UserError naming `what` it should be when missing, a directory, unreadable or
    not UTF-8."""
    path = Path(path)
    try:
        if path.is_dir():
            raise UserError(f"{path}: is a directory; give the {what} file inside it")
        if not path.exists():
            raise UserError(f"{path}: {what} file not found")
        if not path.is_file():  # /dev/null, a FIFO, a socket: reading one may block or give nothing
            raise UserError(f"{path}: not a regular file ({_kind(path)}); give the {what} file itself")
        data = path.read_bytes()
    except OSError as exc:  # another user's file or folder, a broken mount: was a PermissionError traceback
        raise UserError(f"{path}: cannot read the {what} file ({exc.strerror or exc}); check its permissions, "
                        f"or copy it somewhere you can read") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}:{place_of(data, e.start)}: not UTF-8 text (byte {e.start}); "
                        f"save the file as UTF-8") from None


def _kind(path: Path) -> str:
    import stat

    mode = path.stat().st_mode
    return ("a FIFO" if stat.S_ISFIFO(mode) else "a character device" if stat.S_ISCHR(mode) else
            "a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a file")


def place_of(data: bytes, offset: int) -> Place:
    """Line and column (in bytes, as compilers count them) of byte `offset` in `data`, 1-based."""
    return Place(data.count(b"\n", 0, offset) + 1, offset - (data.rfind(b"\n", 0, offset) + 1) + 1)


def read_yaml(path: Path, what: str = "config") -> tuple[Any, dict[tuple[str, ...], Place]]:
    """A YAML file's content and where its keys are; every problem is one UserError line with
    file:line:column."""
    text = read_text_file(path, what)
    try:
        raw = _load_yaml(text)
        lines = yaml_lines(text, str(path))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f":{Place.of(mark)}" if mark else ""
        problem = clipped(getattr(e, "problem", None) or str(e).splitlines()[0])
        if isinstance(e, _Refused):
            raise UserError(f"{path}{at}: {problem}") from None
        raise UserError(f"{path}{at}: YAML syntax error: {_yaml_fix(problem)}") from None
    return raw, lines


def _yaml_fix(problem: str) -> str:
    """A YAML syntax error and its fix, where PyYAML's words do not say it."""
    if "'\\t'" in problem:
        return f"{problem}; indent with spaces, not tabs"
    if "another document" in problem:
        return "a second YAML document starts here (`---`); a config is one document: remove the `---` line " \
               "and what follows it, or merge the two"
    return f"{problem}; fix the file"


def _schema_for(path: tuple[str, ...]) -> Optional[type[BaseModel]]:
    model: Any = Config
    for key in path:
        field = model.model_fields.get(key)
        if field is None:
            return None
        model = field.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
    return model


def _suggest(key: str, path: tuple[str, ...]) -> str:
    schema = _schema_for(path)
    if schema is None:
        return ""
    close = difflib.get_close_matches(key, list(schema.model_fields), n=1, cutoff=0.6)
    if close:
        return f"; did you mean '{close[0]}'?"
    return f"; expected one of: {', '.join(schema.model_fields)}"


def _did_you_mean(value: str, choices: list[str]) -> str:
    """`; did you mean 'x'?` for a mistyped choice (`lstmm`, `classifer`), else nothing."""
    close = difflib.get_close_matches(value, choices, n=1, cutoff=0.6) or \
        [c for c in choices if c.lower() == value.lower()]
    return f"; did you mean '{close[0]}'?" if close else ""


def _uncapitalised(msg: str) -> str:
    """pydantic's `Input should be 'M', 'S' or 'MS'` as `input should be ...`: only the first letter, since the
    quoted choices are values to type as written."""
    return msg[:1].lower() + msg[1:]


def _field_path(loc: tuple[str, ...]) -> tuple[str, ...]:
    """`loc` cut after its last schema field: a union's member tag (`data.train.list[str]`) is not a key."""
    model: Any = Config
    for i, key in enumerate(loc):
        field = getattr(model, "model_fields", {}).get(key)
        if field is None:
            return loc[:i] if i else loc
        model = field.annotation
    return loc


def _format_errors(err: ValidationError, where: dict[tuple[str, ...], str], raw: Any = None) -> str:
    messages: dict[tuple[str, ...], str] = {}
    for e in err.errors():
        raw_loc = tuple(str(p) for p in e["loc"])
        loc = raw_loc if e["type"] in ("extra_forbidden", "invalid_key") else _field_path(raw_loc)
        dotted = ".".join(loc)
        rest = e["loc"][len(loc):]  # past the field: a union's member tag (str), a list item's index (int)
        member = next((str(p) for p in rest if isinstance(p, str)), None)
        item = next((p for p in rest if isinstance(p, int)), None)
        prefix = where.get(loc) or where.get(loc[:-1]) or where.get(())
        got = e.get("input")
        if e["type"] == "extra_forbidden":
            text = f"{dotted}: unknown key{_suggest(loc[-1], loc[:-1])}"
        elif e["type"] == "invalid_key":  # YAML reads `1:`, `1.5:`, `true:`, `null:` as non-string keys
            parent = ".".join(loc[:-1])
            kind = {bool: "a boolean", type(None): "YAML's null", int: "a number", float: "a number"}.get(
                type(got), f"a {type(got).__name__}")
            shown = yaml.safe_dump(got).splitlines()[0] if isinstance(got, bool) or got is None else repr(got)
            text = (f"{parent + ': ' if parent else ''}key {clipped(shown, 60)} is {kind}, not a field "
                    f"name{_suggest(str(got), loc[:-1])}")
        elif e["type"] == "missing":
            text = f"{dotted}: required field is missing"
        elif e["type"] == "value_error":
            text = str(e["ctx"]["error"]) if "ctx" in e else e["msg"]
            prefix = _located(text, where) or prefix
        elif got is None:
            text = f"{dotted}: needs a value (got none; an empty `--set {dotted}=` or a bare `{loc[-1]}:` gives none)"
        elif loc in messages:  # a union: one message per field, naming every accepted kind (a list's
            # later items: the first one's message stands)
            if member is None:
                continue
            kind = member
            if f" {kind} (got" not in messages[loc] and f" {kind} or " not in messages[loc]:
                messages[loc] = messages[loc].replace(" (got", f" or {kind} (got", 1)
            continue
        elif e["type"] == "model_type":  # a section given as a list or a value; pydantic names its class
            text = f"{dotted}: should be a mapping of its fields (`{loc[-1]}:` then indented `key: value` lines) " \
                   f"(got {clipped(repr(got))})"
        elif item is not None and member is None:  # one item of a list field
            text = f"{dotted}: item {item + 1} of the list: {_uncapitalised(e['msg'])} (got {clipped(repr(got))})"
            if e["type"] == "string_type" and isinstance(got, (bool, int, float)):
                text = f"{dotted}: {_quoted_list_advice(loc, got, raw)}"
        else:
            kind = f"input should be {member}" if member is not None else _uncapitalised(e["msg"])
            text = f"{dotted}: {kind} (got {clipped(repr(got))})"
            if e["type"] == "literal_error" and isinstance(got, str):
                text += _did_you_mean(got, re.findall(r"'([^']*)'", e["ctx"]["expected"]))
            if e["type"] == "string_type" and isinstance(got, (bool, int, float)):
                shown = yaml.safe_dump(got).splitlines()[0]
                what = "a boolean" if isinstance(got, bool) else "a number"
                text += (f"; YAML reads {shown} as {what}: quote it for text ({loc[-1]}: '{shown}'; "
                         f"--set \"{dotted}='{shown}'\")")
        messages.setdefault(loc, f"{prefix}: {text}" if prefix else text)
    return "; ".join(messages.values())


def _quoted_list_advice(loc: tuple[str, ...], got: Any, raw: Any) -> str:
    """A list of names with an item YAML read as a number or a boolean (`channels: [1, 2]`): the list with
    every item quoted, as a YAML file and a `--set` write it."""
    shown = yaml.safe_dump(got).splitlines()[0]
    what = "a boolean" if isinstance(got, bool) else "a number"
    value = raw
    for key in loc:
        value = value.get(key) if isinstance(value, dict) else None
    items = value if isinstance(value, list) else [got]
    texts = [yaml.safe_dump(v).splitlines()[0] if not isinstance(v, str) else v for v in items]
    quoted = ", ".join("'" + t.replace("'", "''") + "'" for t in texts)
    return (f"YAML reads {shown} as {what}, not a name: quote the names ({loc[-1]}: [{quoted}]; "
            f"--set \"{'.'.join(loc)}=[{quoted.replace(', ', ',')}]\")")


def _merge(into: dict, given: dict, path: tuple[str, ...]) -> None:
    """`--set SECTION={field: value, ...}` sets those fields of the section, in nested sections too; the fields
    it leaves out keep the config file's values (as `--set SECTION.field=value` for each would)."""
    for key, value in given.items():
        sub = (*path, str(key))
        if _schema_for(sub) is not None and isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value, sub)
        else:
            into[key] = value


def _key_paths(value: Any, path: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The key paths a mapping given at `path` sets, nested ones included."""
    if not isinstance(value, dict):
        return []
    return [q for key, sub in value.items() for q in [(*path, str(key)), *_key_paths(sub, (*path, str(key)))]]


def _no_duplicate_keys(value: str, item: str) -> None:
    """A mapping given in a `--set` value names each key once, as a config file must (`yaml_lines`); YAML
    loaders keep the last silently."""
    try:
        yaml_lines(value)
    except UserError as err:
        duplicate = str(err).split(": ")[1]  # `<yaml>:1:20: hidden_size: duplicate key (...)`
        raise UserError(f"--set {clipped(item)}: {duplicate} is given twice in the mapping; keep one of "
                        f"them") from None


def _apply_override(raw: dict, item: str) -> tuple[tuple[str, ...], Any]:
    """Apply one `KEY=VALUE`: the key path, and the value as read."""
    if "=" not in item:
        raise UserError(f"--set {clipped(item)}: expected key.path=value, e.g. --set model.hidden_size=256")
    key, _, value = item.partition("=")
    path = tuple(p for p in key.strip().split(".") if p)
    if not path:
        raise UserError(f"--set {clipped(item)}: empty key")
    if len(path) != len(key.strip().split(".")):  # `.model.x`, `model..x`, `model.`: read as another key before
        raise UserError(f"--set {clipped(key)}: a key path is names joined by single dots, none at its start or "
                        f"end (e.g. model.hidden_size={clipped(value) or 'N'})")
    # Check the path against the schema so typos fail here, with a suggestion.
    for i, part in enumerate(path[:-1]):
        parent = _schema_for(path[:i])
        if parent is not None and part in parent.model_fields and _schema_for(path[: i + 1]) is None:
            raise UserError(f"--set {key}: '{'.'.join(path[: i + 1])}' is a value, not a section")
        if _schema_for(path[: i + 1]) is None:
            raise UserError(f"--set {key}: '{'.'.join(path[: i + 1])}' is not a config section{_suggest(part, path[:i])}")
    schema = _schema_for(path[:-1])
    if schema is None or path[-1] not in schema.model_fields:
        raise UserError(f"--set {key}: unknown key{_suggest(path[-1], path[:-1])}")
    node = raw
    for part in path[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    loaded = None
    try:
        loaded = _load_yaml(value) if value.strip() else None
        if isinstance(loaded, (dict, list)):
            _no_duplicate_keys(value, item)
        if _schema_for(path) is not None and isinstance(loaded, dict) and isinstance(node.get(path[-1]), dict):
            _merge(node[path[-1]], loaded, path)  # a section: the fields given, the file's others kept
        else:
            node[path[-1]] = loaded
    except _Refused as e:
        raise UserError(f"--set {key}: {e.problem}") from None
    except yaml.YAMLError as e:
        if value.lstrip()[:1] in ("[", "{"):  # meant as a list or mapping; read as a string it is a type error
            problem = clipped(getattr(e, "problem", None) or str(e).splitlines()[0])
            raise UserError(f"--set {clipped(item)}: not a YAML list or mapping ({problem}); write it as "
                            f"[a, b] or {{key: value}}, quoted for the shell") from None
        node[path[-1]] = value
    return path, loaded


def parse_config(raw: Any, source: str = "<config>", overrides: list[str] = (),
                 lines: Optional[dict] = None, default_output_dir: Optional[str] = None, saved: bool = False) -> Config:
    """Validate a raw mapping (as read from YAML) plus `--set` overrides: `KEY=VALUE` strings, or
    `(KEY=VALUE, option)` pairs whose errors name the option the user typed (`--seed N`). `saved`: the mapping is
    a run's config.yaml, which older versions may have written with settings the family never reads
    (`unread_to_defaults`)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(f"{source}: the top level must be a mapping with data/model/train sections")
    if saved:
        unread_to_defaults(raw)
    where = {path: f"{source}:{line}" for path, line in (lines or {}).items()}
    where[()] = source
    for item in overrides:
        item, shown = item if isinstance(item, tuple) else (item, f"--set {clipped(item)}")
        path, given = _apply_override(raw, item)
        for set_here in (path, *_key_paths(given, path)):  # a mapping's fields: their errors name this --set
            where[set_here] = shown
    if default_output_dir is not None and raw.get("output_dir") is None:
        raw["output_dir"] = default_output_dir
    family_defaults(raw)
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as err:
        raise UserError(_format_errors(err, where, raw)) from None
    task = TASKS.get(cfg.task)
    if task is None:
        prefix = where.get(("task",)) or source
        known = ", ".join(f"'{name}'" for name in list(TASKS)[:-1]) + f" or '{list(TASKS)[-1]}'"
        raise UserError(f"{prefix}: task: input should be {known} (got {clipped(repr(cfg.task))})"
                        f"{_did_you_mean(cfg.task, list(TASKS))}")
    try:
        task().check_config(cfg, saved=saved)
    except ValueError as err:
        raise UserError(f"{_located(str(err), where) or source}: {err}") from None
    return cfg


def family_defaults(raw: dict) -> None:
    """Fields the config leaves out whose default depends on the family take the family's (`Task.default`):
    a minimal language model or forecaster gets `bidirectional: false`, a tagger `monitor: token_accuracy`, so
    a config names only what it changes. A section that is not a mapping is left for validation to refuse."""
    task = TASKS.get(raw.get("task", Config.model_fields["task"].default)) \
        if isinstance(raw.get("task", ""), str) else None
    if task is None:
        return
    for section, names in task.defaulted().items():
        part = raw.setdefault(section, {})
        if part is None:  # `train:` with nothing under it
            part = raw[section] = {}
        if not isinstance(part, dict):
            continue
        for name in names:
            if name not in part:
                schema = Config.model_fields[section].annotation  # the section's class: ModelConfig, ...
                part[name] = task.default(section, name, schema.model_fields[name].default, raw.get("data"))


def unread_to_defaults(raw) -> None:
    """A run trained before grutool refused the settings its family never reads may have one set: a field of its
    `Task.ignores`, one that only other families own (`data.tag_column` in a classifier run: `Task.lacks`), a
    token setting on numeric data. It changed nothing then, so it goes back to its default here rather than
    making the run unreadable; a config the user writes is still refused for it."""
    for path in unread_fields(raw):
        section, name = path.split(".", 1)
        raw[section].pop(name, None)


def unread_fields(raw) -> list[str]:
    """The fields of a raw config (`section.name`, as set in it) that its family never reads: those the family
    lacks (`Task.lacks`: its `ignores`, fields only other families own), then, on numeric data, the token
    settings (`TEXT_ONLY`), and on text, in a family that reads numbers too, theirs (`NUMERIC_SETTINGS`); then
    those another setting makes idle (sgd's momentum under adam).
    `compare` shows no value of them; `unread_to_defaults` drops them."""
    from types import SimpleNamespace

    from grutool.families.rules import NUMERIC_SETTINGS, TEXT_ONLY, is_numeric, reads_both, ts_training

    if not isinstance(raw, dict) or raw.get("task") not in TASKS:
        return []  # parse_config says what is wrong
    task = TASKS[raw["task"]]()
    unread = [f"{section}.{n}" for section, part in raw.items() if isinstance(part, dict)
              for n in part if isinstance(n, str) and task.lacks(f"{section}.{n}")]
    data = raw.get("data")
    if isinstance(data, dict):
        read = {k: v for k, v in data.items() if f"data.{k}" not in unread}  # a setting it lacks decides nothing
        d = SimpleNamespace(format=read.get("format", "auto"), channels=read.get("channels"),
                            train=read.get("train"))
        numeric = is_numeric(SimpleNamespace(data=d))
        # numbers: the token settings; text, in a family that reads numbers too (classifier, tagger): theirs
        other = TEXT_ONLY if numeric else NUMERIC_SETTINGS if reads_both(task) else {}
        unread += [f"{section}.{name}" for section, names in other.items() if isinstance(raw.get(section), dict)
                   for name in names if name in raw[section] and f"{section}.{name}" not in unread]
        if read.get("channels") and ts_training(d):  # a .ts file's channels are its own (check_numeric)
            unread.append("data.channels")
    # Settings that others make idle (refused in a config: config._optimizer_settings, _kernel_fits_cells,
    # _tensorboard_folder): sgd's momentum under another optimizer, a residual around a single layer, no folder.
    train, model = raw.get("train"), raw.get("model")
    if isinstance(train, dict):
        if "momentum" in train and train.get("optimizer", "adam") != "sgd":
            unread.append("train.momentum")
        if isinstance(train.get("tensorboard"), str) and not train["tensorboard"].strip():
            unread.append("train.tensorboard")
    if isinstance(model, dict) and model.get("residual") and model.get("num_layers", 1) == 1:
        unread.append("model.residual")
    return unread


def _located(message: str, where: dict[tuple[str, ...], str]) -> Optional[str]:
    """Where a cross-field rule's fields were given: the YAML line (or the `--set`) of the field its message
    starts with (`model.layer_norm: ...`), else of the first other field it names that was given; None when
    the user gave none of them (the message names them anyway). A field given on the command line (a `--set`,
    an option) comes first: of a file's field and the `--set` that now clashes with it, the `--set` is the
    change to look at (`data.validation: ... overlaps data.train`, the train slice given by --set)."""
    paths = re.findall(r"(?<![\w.])([a-z_]\w*(?:\.[a-z_]\w*)+)", message)
    given = [where[key] for key in (tuple(path.split(".")) for path in paths) if key in where]
    in_file = where.get(()) or ""
    command_line = [place for place in given if not (in_file and place.startswith(f"{in_file}:"))]
    if command_line or given:
        return (command_line or given)[0]
    # A whole section (`decoding: only for task seq2seq`): where one of its fields was given (`--set
    # decoding.beam_size=4`: the file, which has no such section, was named).
    section = re.match(r"([a-z_]\w*): ", message)
    if section:
        return next((place for key, place in where.items() if key[:1] == (section.group(1),)), None)
    return None


def config_places(path: str | Path, overrides: Sequence = ()) -> dict[str, str]:
    """Where each field of the config file `path` plus `--set` overrides was given: its dotted key -> `file:line:column`
    or `--set KEY=VALUE` (the last given wins, as loading does); {} when the file cannot be read (its loading says so)."""
    try:
        _, lines = read_yaml(Path(path))
    except UserError:
        return {}
    places = {".".join(key): f"{path}:{place}" for key, place in lines.items()}
    for item in overrides:  # KEY=VALUE, or (KEY=VALUE, the option the user typed) as parse_config takes them
        item, shown = item if isinstance(item, tuple) else (item, f"--set {clipped(item)}")
        places[item.partition("=")[0].strip()] = shown
    return places


@contextlib.contextmanager
def located(places: dict[str, str]):
    """A UserError about a config field found after the config was read (`data.time_column: the file has no column
    'dat'`, raised while reading the data) names where that field was given, as a schema error does:
    `configs/x.yaml:12:3: data.time_column: ...` or `--set data.time_column=dat: data.time_column: ...`."""
    try:
        yield
    except UserError as exc:
        m = re.match(r"([a-z_]\w*(?:\.[a-z_]\w*)+): ", str(exc))
        key = m.group(1) if m else None
        while key and key not in places and "." in key:  # data.covariates.past given as data.covariates: {...}
            key = key.rsplit(".", 1)[0]
        if not key or key not in places or "." not in key:
            raise
        exc.args = (f"{places[key]}: {exc}", *exc.args[1:])
        raise


def load_config(path: str | Path, overrides: Sequence[str] = (), saved: bool = False) -> Config:
    """Read, override and validate a YAML config file; relative data paths found only beside it are made
    to point there (see `beside_config`). `overrides`: a list of `key.path=value` strings, as `--set` takes them
    (not one str: a list of one). `saved`: the file is a run's own config.yaml (see `parse_config`)."""
    overrides = _checked_overrides(path, overrides)
    path = Path(path)
    raw, lines = read_yaml(path)
    if isinstance(raw, dict) and not {"task", "data", "model", "train"} & set(raw) \
            and {"cells", "kernels", "lengths", "mode"} & set(raw):  # a bench grid: 17 unknown keys, said as such
        raise UserError(f"{path}: this is a bench grid, not a model config; measure it with: grutool bench {path}")
    cfg = parse_config(raw, str(path), overrides, lines, default_output_dir=str(Path("runs") / path.stem),
                       saved=saved)
    return beside_config(home_expanded(cfg), path.parent)


def _checked_overrides(path, overrides) -> list:
    """`load_config`'s arguments from Python, each wrong type one line (a str of overrides was read character by
    character, `--set t: expected key.path=value`; a path of None a pathlib TypeError). An override is a str, or
    the CLI's (KEY=VALUE, the option typed) pair (see `parse_config`)."""
    if not isinstance(path, (str, os.PathLike)):
        raise UserError(f"path: a config file's path (a str or Path), not {clipped(repr(path), 40)}; e.g. "
                        f"load_config('configs/sentiment.yaml')")
    if isinstance(overrides, str):
        raise UserError(f"overrides: a list of key.path=value strings, not one str; write "
                        f"load_config(path, [{clipped(repr(overrides), 40)}])", option="overrides")
    try:
        overrides = list(overrides)
    except TypeError:
        raise UserError(f"overrides: a list of key.path=value strings, not {clipped(repr(overrides), 40)}; "
                        f"e.g. ['train.epochs=5']", option="overrides") from None
    for k, item in enumerate(overrides):
        if not (isinstance(item, str) or (isinstance(item, tuple) and len(item) == 2
                                          and all(isinstance(x, str) for x in item))):
            raise UserError(f"overrides[{k}]: {clipped(repr(item), 40)} is not a key.path=value str; e.g. "
                            f"'train.epochs=5'", option="overrides")
    return overrides


DATA_PATHS = ("train", "validation", "test", "vectors")


def data_present(path: Path) -> bool:
    """A data path as the readers take it: a file, a directory, or a prefix of files (`data/x/train` -> train.*)."""
    return path.exists() or (path.parent.is_dir() and any(path.parent.glob(glob_escape(path.name) + ".*")))


def glob_escape(name: str) -> str:
    import glob

    return glob.escape(name)


def home_expanded(cfg: Config) -> Config:
    """`~/x` (or `~user/x`) in a config's paths is that home folder, as a shell reads it: YAML has no shell, and
    `output_dir: ~/runs` made a folder named `~` in the working directory (the data paths were not found)."""

    def expand(value):
        if isinstance(value, list):
            return [expand(v) for v in value]
        return os.path.expanduser(value) if isinstance(value, str) and value.startswith("~") else value

    d, t = cfg.data, cfg.train
    data = {name: expand(getattr(d, name)) for name in DATA_PATHS
            if d.dataset is None or name == "vectors"}  # a Hub dataset's train/validation/test are split names
    return cfg.model_copy(update={"output_dir": expand(cfg.output_dir),
                                  "data": d.model_copy(update=data),
                                  "train": t.model_copy(update={"tensorboard": expand(t.tensorboard)})})


def beside_config(cfg: Config, folder: Path, first: bool = False) -> Config:
    """Relative data paths are read from the working directory; one that is missing there but present
    relative to the config file's folder is read from there (and saved so in the run's config.yaml).
    `first`: one present relative to `folder` is read from there even when the working directory has one too
    (a run's paths, relative to the folder `train` ran in: `grutool.rundir.read_from_run`)."""
    d = cfg.data
    if d.split_names or folder.resolve() == Path.cwd().resolve():
        return cfg
    moved = {}
    for name in DATA_PATHS:
        value = getattr(d, name)
        paths = value if isinstance(value, list) else [value]
        if value is None or not all(isinstance(p, str) for p in paths):
            continue
        fixed = [_beside(p, folder, first) for p in paths]
        if fixed != paths:
            moved[name] = fixed if isinstance(value, list) else fixed[0]
    if not moved:
        return cfg
    return cfg.model_copy(update={"data": d.model_copy(update=moved)})


def _beside(spec: str, folder: Path, first: bool) -> str:
    """One data path of `beside_config`, a slice (`train.ts[80%:]`) kept on the path it slices."""
    from grutool.data.slices import SLICE

    m = SLICE.match(spec)
    path = m["path"] if m else spec
    if Path(path).is_absolute() or not data_present(folder / path) or (not first and data_present(Path(path))):
        return spec
    return str(folder / path) + spec[len(path):]


def yaml_value(value) -> str:
    """One setting's value as config.yaml writes it, on one line: true, null, [a, b], {0: neg}, 1.0e-05 (never
    Python's True, None, ['a', 'b']): what `init`, `compare` and tune's messages show."""
    return yaml.dump(value, Dumper=_Dumper, default_flow_style=True, sort_keys=False, allow_unicode=True,
                     width=10_000).removesuffix("\n").removesuffix("\n...")


def to_yaml(cfg: Config) -> str:
    """The fully resolved config, as saved in a run directory: UTF-8 as written (`ü daten/train.tsv`, not
    `"\\xFC daten/train.tsv"`)."""
    return yaml.dump(cfg.model_dump(mode="json"), Dumper=_Dumper, sort_keys=False, allow_unicode=True)


def read_yaml_view(cfg: Config) -> str:
    """`to_yaml` less the fields the config's family never reads (`unread_fields`: a classifier's forecast and
    seq2seq settings, the token settings of numeric data, sgd's momentum under adam): what `train
    --print-config` shows, where every family's ~150 fields buried the ones that act."""
    raw = cfg.model_dump(mode="json")
    unread_to_defaults(raw)
    raw = {k: v for k, v in raw.items() if v != {}}  # a section the family has no field of (a classifier's decoding)
    return yaml.dump(raw, Dumper=_Dumper, sort_keys=False, allow_unicode=True)
