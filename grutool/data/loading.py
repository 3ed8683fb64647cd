"""Read one split of examples through Hugging Face `datasets`.

Local csv/tsv/json/jsonl/parquet files and Hub dataset names both come back as
a `datasets.Dataset`; every way that can fail becomes a `UserError` naming the
file and the fix. The Hub is probed with a short timeout first, because
`datasets` otherwise retries for ~20 s before saying it is offline.
"""

from __future__ import annotations

import contextlib
import contextvars
import csv
import logging
import os
import socket
import tempfile
from pathlib import Path
from typing import Optional
from urllib.parse import urlparse

from grutool import jsonsafe
from grutool.config import DataConfig
from grutool.errors import UserError, clipped

log = logging.getLogger("grutool")

_EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".json": "json", ".jsonl": "jsonl",
               ".parquet": "parquet", ".txt": "tsv"}
HUB_TIMEOUT_S = 3.0


def not_found_hint(path: str | Path) -> str:
    """What a missing relative data path was relative to, for the `not found` messages (a relative path
    in a config is read from the working directory, or from the config's folder when only there)."""
    if Path(path).is_absolute():
        return ""
    return (f" (relative to the working directory {Path.cwd()}, or to the config file's folder; "
            f"give an absolute path, or run from the folder the path starts in)")


DATA_DOCS = "docs/data.md"  # where each shipped real-data config's data comes from and how to fetch it


def data_not_found(path: str | Path, what: str = "data file") -> UserError:
    """The one message for a missing data path, every format alike: it is missing (not malformed), what a
    relative path was relative to, and where the shipped configs' data is described. For a trained run (`eval
    --data`) a file the user named: no config file's folder, no shipped dataset to fetch."""
    if trained_run():
        where = "" if Path(path).is_absolute() else f" (relative to the working directory {Path.cwd()})"
        return UserError(f"{path}: {what} not found{where}")
    return UserError(f"{path}: {what} not found{not_found_hint(path)}; the shipped configs' datasets, where "
                     f"to get them and how to point a config at them: {DATA_DOCS}")


def file_format(path: str, declared: str) -> str:
    if declared != "auto":
        return declared
    fmt = _EXTENSIONS.get(Path(path).suffix.lower())
    if fmt is None:
        raise format_unknown(f"{path}: cannot tell the format from the extension",
                             "set data.format to one of csv, tsv, json, jsonl, parquet", ".csv, .tsv, .json, .jsonl or .parquet")
    return fmt


def format_unknown(said: str, setting_fix: str, extensions: str) -> UserError:
    """A file whose format its name does not tell (`said`: path and what): a config's fix is `setting_fix` (a
    data.format); a trained run's data.format is fixed (auto: read by extension), so its fix is the file's name."""
    if trained_run():
        return UserError(f"{said}; the run reads a file's format from its extension: name it {extensions} as it "
                         f"is written")
    return UserError(f"{said}; {setting_fix}")


def _builder_args(path: str, cfg: DataConfig) -> tuple[str, dict]:
    fmt = file_format(path, cfg.format)
    if fmt in ("csv", "tsv"):
        kwargs: dict = {"header": 0 if cfg.header else None}
        if cfg.column_names:
            kwargs["column_names"] = cfg.column_names
        if fmt == "tsv":
            # Quotes are ordinary characters in TSV ("a ""great"" film" must stay as written).
            kwargs.update(delimiter="\t", quoting=csv.QUOTE_NONE)
        return "csv", kwargs
    if fmt in ("json", "jsonl"):
        return "json", {}
    return "parquet", {}


def _root_cause(exc: BaseException) -> BaseException:
    seen = exc
    while seen.__cause__ is not None or seen.__context__ is not None:
        seen = seen.__cause__ or seen.__context__
    return seen


# Set inside `transient_cache()`: the folder `datasets` prepares local files in, removed on leaving.
_TRANSIENT_CACHE: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar("transient_cache", default=None)


@contextlib.contextmanager
def transient_cache():
    """Within: local data files are read into memory through a temporary `datasets` cache folder, deleted
    on leaving, instead of the persistent cache (HF_DATASETS_CACHE): `train --dry-run` writes nothing."""
    with tempfile.TemporaryDirectory(prefix="grutool-data-") as folder:
        token = _TRANSIENT_CACHE.set(folder)
        try:
            yield
        finally:
            _TRANSIENT_CACHE.reset(token)


# Set inside `for_trained_run()`: the data is read for a trained run (eval, infer, serve), whose data settings
# were fixed by training; an error then offers fixes of the file, never a config change the run cannot take.
# The one way readers learn it (grutool.data.tables, grutool.data.numeric and the families ask `trained_run()`).
_TRAINED_RUN: contextvars.ContextVar[bool] = contextvars.ContextVar("trained_run", default=False)


@contextlib.contextmanager
def for_trained_run():
    """Within: data read for a trained run (`evaluate`, `infer --file` and stdin: `inputs.read_data_inputs`,
    `Predictor.predict` and `check_inputs`: infer's texts, serve's requests): what a bad input's error offers is
    a change of the input (rename a column, convert it, name its format by extension, fill a cell), not a
    `data.*` setting."""
    token = _TRAINED_RUN.set(True)
    try:
        yield
    finally:
        _TRAINED_RUN.reset(token)


def trained_run() -> bool:
    """Whether the data is being read for a trained run (see `for_trained_run`)."""
    return _TRAINED_RUN.get()


_CACHE_WRITABLE: Optional[bool] = None  # whether `datasets` can keep its cache: probed once per process


def _cache_writable(datasets) -> bool:
    """Whether the `datasets` cache folder (HF_DATASETS_CACHE, else ~/.cache/huggingface/datasets) can be written.
    Where it cannot (a read-only or missing home: a container's user, a CI job), every local file failed as
    `cannot read as tsv: [Errno 13] Permission denied: '/nonexistent'`; now it is said once, and files are read
    through a temporary folder instead (`transient_cache`)."""
    global _CACHE_WRITABLE
    if _CACHE_WRITABLE is None:
        folder = Path(datasets.config.HF_DATASETS_CACHE)
        try:
            if not folder.is_absolute():  # `~` left as it is: no HOME, and no home in the password file
                raise OSError("no home folder to keep it in")
            folder.mkdir(parents=True, exist_ok=True)
            tempfile.TemporaryFile(dir=folder).close()
            _CACHE_WRITABLE = True
        except OSError as exc:
            log.warning("the datasets cache %s cannot be written (%s); data files are read through a temporary "
                        "folder instead, each time (set HF_DATASETS_CACHE to a writable folder to keep a cache)",
                        folder, exc.strerror or exc)
            _CACHE_WRITABLE = False
    return _CACHE_WRITABLE


def _quiet_datasets():
    import datasets

    # Problems are reported as UserErrors; datasets' own ERROR logs would say them twice.
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)
    datasets.disable_progress_bars()
    return datasets


def load_file(path: str, cfg: DataConfig, text_fields: tuple[str, ...] = ()):
    """Load one local data file as a `datasets.Dataset`. `text_fields`: the config fields (text_column ...) whose
    columns every JSON line must hold as a string (`datasets` would read a missing one as None, a number as 5)."""
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{path}: is a directory; name a data file")
    if not p.is_file():
        raise data_not_found(path)
    builder, kwargs = _builder_args(path, cfg)
    if builder != "parquet":
        texts = {getattr(cfg, field): field for field in text_fields}
        _check_text_file(p, file_format(path, cfg.format), cfg.header, cfg.column_names, texts)
    datasets = _quiet_datasets()
    try:
        with contextlib.ExitStack() as stack:
            transient = _TRANSIENT_CACHE.get()
            if transient is None and not _cache_writable(datasets):
                transient = stack.enter_context(tempfile.TemporaryDirectory(prefix="grutool-data-"))
            if transient is not None:
                kwargs.update(cache_dir=transient, keep_in_memory=True)  # the Arrow table lives on after the folder
            return datasets.load_dataset(builder, data_files=str(p), split="train", **kwargs)
    except Exception as exc:  # datasets wraps parser errors in its own types
        cause = _root_cause(exc)
        if isinstance(cause, UnicodeDecodeError):
            raise UserError(f"{path}: not valid UTF-8 (byte offset {cause.start}); "
                            f"re-save the file as UTF-8") from None
        raise UserError(f"{path}: cannot read as {file_format(path, cfg.format)}: "
                        f"{str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__}") from None


def _check_text_file(p: Path, fmt: str, header: bool, column_names: Optional[list[str]] = None,
                     texts: Optional[dict[str, str]] = None) -> None:
    """UTF-8, non-empty and the right shape, checked here so the message can name the line; `texts`: column ->
    config field of the texts each JSON line must hold as a string."""
    text = read_text(p, "name a data file")
    lines = sum(1 for l in text.splitlines() if l.strip())
    if lines - (1 if fmt in ("csv", "tsv") and header else 0) <= 0:
        raise UserError(f"{p}: no examples" + (" (only a header line)" if lines else " (empty file)"))
    if fmt in ("csv", "tsv"):
        _check_row_widths(p, text, fmt, header, column_names)
    if fmt == "json":
        _check_json_shape(p, text)
    if fmt == "jsonl":  # the JSON parser behind `datasets` reports a byte offset: name the line instead
        import json

        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{p}:{number}: not valid JSON ({e.msg}, column {e.colno}); "
                                f"one JSON object per line") from None
            if not isinstance(row, dict):
                raise UserError(f"{p}:{number}: expected a JSON object with the text and label fields, "
                                f"got {jsonsafe.json_type(row, article=True)}") from None
            for column, field in (texts or {}).items():
                if column not in row:
                    raise UserError(f"{p}:{number}: no \"{column}\" field (data.{field}); give every line its "
                                    f"text, or remove the line")
                value = row[column]
                if value is None:
                    raise UserError(f"{p}:{number}: \"{column}\" is null (data.{field}); give the line its text, "
                                    f"or remove the line")
                if not isinstance(value, str):
                    raise UserError(f"{p}:{number}: \"{column}\" is {jsonsafe.json_type(value, article=True)} "
                                    f"({clipped(jsonsafe.dumps(value), 40)}), not a string (data.{field}); "
                                    f"write the text in quotes")


def _check_row_widths(p: Path, text: str, fmt: str, header: bool, column_names: Optional[list[str]]) -> None:
    """No row has more fields than there are columns: in the first, pandas would take the extra leading ones
    as the index, shift every column of the file, and the label column would read as empty; in a later one
    it stops with its own `Error tokenizing data. C error: ...`, which names neither the file nor the fix."""
    import io

    lines = io.StringIO(text, newline=None)  # lazily, universal newlines
    if fmt == "tsv":
        rows = ((n, line.rstrip("\n").split("\t")) for n, line in enumerate(lines, 1) if line.strip())
    else:
        reader = csv.reader(lines)
        rows = ((reader.line_num, row) for row in reader if row)
    try:
        if header:
            first = next(rows, None)  # the header line (replaced by data.column_names when given)
            if first is None:
                return
            names = column_names or first[1]
        elif column_names:
            names = column_names
        else:
            return
        line, row = next(((n, r) for n, r in rows if len(r) > len(names)), (0, None))
    except csv.Error:  # the reader behind `datasets` says what it is
        return
    if row is not None:
        what = f"the header names {len(names)}" if header and not column_names else \
            f"data.column_names names {len(names)}"
        fix = ("remove the extra tab(s): a TSV text cannot hold a tab" if fmt == "tsv" else
               'put a text that holds commas in double quotes')
        raise UserError(f"{p}:{line}: {len(row)} fields, but {what} ({', '.join(clipped(n, 40) for n in names)}); "
                        f"{fix}")


def _check_json_shape(p: Path, text: str) -> None:
    """A .json file holds an array of objects, an object of columns, or JSON lines; pandas answers anything
    else with `DataFrame constructor not properly called!`."""
    import json

    start = len(text) - len(text.lstrip())
    if text[start:start + 1] == "{":
        return
    expected = ('expected an array of objects, [{"text": ..., "label": ...}, ...], '
                'or one object per line')
    decoder = json.JSONDecoder()
    try:
        if text[start:start + 1] == "[":
            item = text[start + 1:].lstrip()
            if item[:1] in ("{", "]"):
                return
            value, _ = decoder.raw_decode(item)
            raise UserError(f"{p}: a JSON array of {jsonsafe.json_type(value)}s; {expected}")
        value, _ = decoder.raw_decode(text, start)
    except json.JSONDecodeError as e:
        raise UserError(f"{p}:{e.lineno}:{e.colno}: not valid JSON ({e.msg}); {expected}") from None
    raise UserError(f"{p}: a JSON {jsonsafe.json_type(value)} ({clipped(jsonsafe.dumps(value), 40)}) at the top level; "
                    f"{expected}")


def _hub_reachable(timeout: float = HUB_TIMEOUT_S) -> Optional[str]:
    """None if the Hub endpoint accepts a TCP connection, else the reason."""
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return None
    except OSError as exc:
        return f"{host}:{port}: {exc.strerror or exc}"


def hub_offline() -> Optional[str]:
    """The variable that keeps `datasets` off the Hub, as `NAME=value`, or None: `datasets`' own rule, so grutool
    never probes the network when it would not (or skips the probe when it would): HF_DATASETS_OFFLINE when set,
    else HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE), each on for 1, on, yes or true in any case."""
    name = next((n for n in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
                 if os.environ.get(n) is not None and (n == "HF_DATASETS_OFFLINE" or os.environ[n])), None)
    value = os.environ.get(name, "") if name else ""
    return f"{name}={value}" if value.upper() in ("1", "ON", "YES", "TRUE") else None


HUB_FIX = ("use local files instead: remove data.dataset and point data.train/validation/test at files "
           f"(each configs/hub/NAME.yaml has its offline twin configs/NAME.yaml; {DATA_DOCS})")


def load_hub_split(cfg: DataConfig, split: str):
    """Load `split` of the Hub dataset named in `cfg.dataset` (`datasets`' split syntax: `train[:4478]` too)."""
    offline = hub_offline()
    how = HUB_FIX
    if not offline:
        reason = _hub_reachable()
        if reason:
            raise UserError(f"data.dataset: cannot reach the Hugging Face Hub for '{cfg.dataset}' "
                            f"({reason}); {how} (or set HF_HUB_OFFLINE=1 to use a cached copy)")
    datasets = _quiet_datasets()
    try:
        return datasets.load_dataset(cfg.dataset, cfg.dataset_config, split=split)
    except Exception as exc:
        cause = _root_cause(exc)
        said = str(exc) or type(cause).__name__
        if offline and "OfflineModeIsEnabled" in f"{said} {type(cause).__name__}":
            # offline, `datasets` reads the local cache only and words a miss as "Couldn't reach"
            said = (f"it is not in the local Hugging Face cache, and {offline} keeps grutool off the Hub "
                    f"(unset it once, online, to download it)")
        raise UserError(f"data.dataset: cannot load split '{split}' of '{cfg.dataset}': {said}; {how}") from None


def load_split(cfg: DataConfig, source: str, text_fields: tuple[str, ...] = ()):
    """A split as a `datasets.Dataset`: a file path, or a split name when `cfg.dataset` is set (`text_fields`:
    see `load_file`)."""
    return load_hub_split(cfg, source) if cfg.dataset else load_file(source, cfg, text_fields)


def split_where(cfg: DataConfig, source: str) -> str:
    """How messages name a split: its file, or the Hub dataset and split name."""
    return f"data.dataset '{cfg.dataset}' split '{source}'" if cfg.dataset else str(source)


def class_names(ds, column: str) -> Optional[list[str]]:
    """The names of a `datasets.ClassLabel` column, or of a list column of ClassLabels (a tag per token); None
    for any other column. A Hub dataset stores such labels as ints; the names are what a run should keep."""
    import datasets

    feature = ds.features.get(column)
    for f in (feature, getattr(feature, "feature", None)):  # List / Sequence / LargeList hold theirs in .feature
        if isinstance(f, datasets.ClassLabel):
            return list(f.names)
    return None


def label_name(value, names: list[str], where: str, column: str):
    """A ClassLabel id as its name; -1 (`datasets`' "no label", e.g. a hidden test split) or an id out of range is
    a UserError naming the row. Anything but an int is returned as it is."""
    if not isinstance(value, int) or isinstance(value, bool):
        return value
    if value == -1:
        raise UserError(f"{where}: column '{column}' holds -1, the Hub's \"no label\" (its labels are hidden); "
                        f"score another split, or remove this one from the config")
    if not 0 <= value < len(names):
        raise UserError(f"{where}: column '{column}' holds {value}, but its ClassLabel names only "
                        f"{len(names)} classes")
    return names[value]


def require_columns(ds, where: str, fields: dict[str, str]) -> None:
    """Each config field's column (data.<field> -> its name) must exist in `ds`; else a UserError listing the columns."""
    columns = list(ds.column_names)
    for field, name in fields.items():
        if name not in columns:
            raise UserError(f"{where}: no column '{name}' (data.{field}); columns found: {columns}"
                            f"{_columns_fix(columns, field, name) if Path(where).is_file() else ''}")


def _columns_fix(columns: list, field: str, name: str) -> str:
    """What to do when a local table lacks a column: read with the wrong delimiter (its header is one column
    holding the other one's separator), or a file without a header line (its first row became the names)."""
    if len(columns) == 1:
        for sep, held, fmt in ((",", "commas", "csv"), ("\t", "tabs", "tsv")):
            if sep in str(columns[0]):
                if trained_run():
                    return (f"; the header is one column holding {held}: a {fmt} file read as another format; "
                            f"convert it to the format the run reads (with data.format auto, its extension's: "
                            f"name it .{fmt})")
                return f"; the header is one column holding {held}: set data.format: {fmt}"
    if trained_run():  # the run's columns are fixed by training: the file is what can change
        return (f"; the run reads the columns it was trained on: name the file's column {name!r} in its header "
                f"line, or, if the first line holds data and not column names, add a header line naming the "
                f"run's columns")
    return (f"; set data.{field} to one of them, or, if the first line holds data and not column names, "
            f"data.header: false and data.column_names: [...]")


def first_row_line(cfg: DataConfig, source: str, row: int) -> str:
    """Human position of a 0-based data row: a file line for text formats, else a row number."""
    if cfg.dataset:
        return f"row {row}"
    fmt = file_format(source, cfg.format)
    if fmt in ("csv", "tsv"):
        return f"line {row + (2 if cfg.header else 1)}"
    if fmt == "jsonl":
        return f"line {row + 1}"
    return f"row {row}"


def read_stdin() -> bytes:
    """Everything piped in (`--file -`); stdin closed (`<&-`, a service without one) is a UserError, where it was
    an AttributeError traceback."""
    import sys

    try:
        return sys.stdin.buffer.read()
    except (AttributeError, OSError, ValueError):  # sys.stdin is None, or its descriptor is not readable
        raise UserError("stdin: closed, nothing to read; pipe the input in, or give --file PATH") from None


def read_text(path: str | Path, folder_fix: str, encoding: str = "utf-8") -> str:
    """A data file's whole text; a folder (`folder_fix` says what to do), a missing file, or bytes that are not
    UTF-8 (named by line) are one UserError each."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a directory; {folder_fix}")
    if not path.is_file():
        raise data_not_found(path)
    data = path.read_bytes()
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise UserError(f"{path}:{line}: not valid UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start}); "
                        f"re-save the file as UTF-8") from None


def read_lines(path: Path) -> list[str]:
    """The file's lines: UTF-8 checked, BOM, CR and trailing spaces removed, trailing blank lines dropped."""
    text = read_text(path, "name a data file, or set data.format: parallel", encoding="utf-8-sig")
    # split("\n"), not splitlines(): tokens may contain characters that splitlines() treats as breaks.
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines
