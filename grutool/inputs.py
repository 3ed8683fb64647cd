"""What `infer --file` reads: one input per line, or a data file read as training reads it.

    lines   every line is one input (stdin, .txt, anything without a data extension)
    data    a csv/tsv/json/jsonl/parquet (or conll/conllu, tagger also .bio/.iob: `Task.data_extensions`, or
            numeric .ts) file read with the run's data settings: its text column (seq2seq: source column;
            tagger: tokens), header and format; labels, targets and tags in the file are ignored
            (tagger/joint: tags and intents need not be there, tokens alone are read). A split in the run's
            own multi-file format is read as training reads it too: a folder (`Task.folder_format`, or auto:
            tagger parallel with seq.in ..., lm text_dir) or a file-name prefix (format parallel_text:
            test -> test.de, test.en)
    auto    `data` for those extensions, folders and prefixes, `lines` otherwise (the default)

A task whose inputs are tables (`Task.file_inputs = "data"`: forecast) reads every file as `data`, stdin (`-`)
included, as one table.
"""

from __future__ import annotations

import glob
from pathlib import Path

from grutool.errors import UserError

FORMATS = ("auto", "lines", "data")
DATA_EXTENSIONS = (".csv", ".tsv", ".json", ".jsonl", ".parquet", ".conll", ".conllu", ".ts")


def input_format(path: str, fmt: str = "auto", reads: str = "auto", extensions: tuple[str, ...] = ()) -> str:
    """`lines` or `data` for `infer --file path --format fmt`; `reads`: the task's `file_inputs`; `extensions`:
    its `data_extensions`, read as data besides DATA_EXTENSIONS."""
    if fmt not in FORMATS:
        raise UserError(f"format: expected one of {', '.join(FORMATS)} (got {fmt!r})", option="format")
    if reads == "data":  # every input is a table (forecast): a file or stdin is one table, never one per line
        if fmt == "lines":
            raise UserError("format: this run reads each input as a table (a header line, then rows), not one "
                            "input per line; leave --format out", option="format")
        return "data"
    if fmt != "auto":
        if fmt == "data" and path == "-":
            raise UserError("format: data files are read by name, not from stdin; give --file PATH",
                            option="format")
        return fmt
    if path == "-":
        return "lines"
    p = Path(path)
    data_file = p.suffix.lower() in DATA_EXTENSIONS + tuple(extensions)
    return "data" if data_file or p.is_dir() or is_prefix(p) else "lines"


def is_prefix(p: Path) -> bool:
    """`p` names no file but is the common prefix of files beside it (parallel_text: test -> test.de, test.en)."""
    return not p.exists() and p.parent.is_dir() and any(p.parent.glob(glob.escape(p.name) + ".*"))


def read_data_inputs(task, cfg, path: str, vocabs=None) -> list[str]:
    """The inputs of a data file, read with the run's columns (see the module docstring); `vocabs`: the run's
    saved vocabularies, handed to the task (a numeric run's channels)."""
    p = Path(path)
    data = cfg.data.local()  # a local file, whatever trained it
    if path != "-":  # stdin: for a task that reads it as one table (Task.file_inputs), read as it is
        if not p.exists() and not is_prefix(p):
            raise UserError(f"{path}: input file not found")
        # A folder is read as training and `eval --data` read it: data.format auto resolves one to the task's
        # folder format.
        if p.is_dir() and (task.folder_format is None or cfg.data.format not in ("auto", task.folder_format)):
            why = (f"task {task.name} reads no folders" if task.folder_format is None else
                   f"this run reads data.format {cfg.data.format}, a folder is {task.folder_format} data")
            raise UserError(f"--file {path}: is a directory; give a data file, or a text file with one input per "
                            f"line ({why})")
        if p.suffix.lower() in DATA_EXTENSIONS + task.data_extensions and data.format != "auto":
            # The run may declare a format for its own files (parallel_text, conllu): this file names its own.
            data = data.model_copy(update={"format": "auto"})
    from grutool.data.loading import for_trained_run

    with for_trained_run():  # the run's data settings are fixed: errors offer changes of the file (stdin's too)
        return task.read_inputs(cfg.model_copy(update={"data": data}), path, vocabs)
