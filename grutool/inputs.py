"""What `infer --file` reads: one input per line, or a data file read as training reads it.

    lines   every line is one input (stdin, .txt, anything without a data extension)
    data    a csv/tsv/json/jsonl/parquet (or conll/conllu, or a numeric .ts) file read with the run's data settings: its
            text column (seq2seq: source column; tagger: tokens), header and format; labels, targets
            and tags in the file are ignored
    auto    `data` for those extensions, `lines` otherwise (the default)
"""

from __future__ import annotations

from pathlib import Path

from grutool.errors import UserError

FORMATS = ("auto", "lines", "data")
DATA_EXTENSIONS = (".csv", ".tsv", ".json", ".jsonl", ".parquet", ".conll", ".conllu", ".ts")


def input_format(path: str, fmt: str = "auto") -> str:
    """`lines` or `data` for `infer --file path --format fmt`."""
    if fmt not in FORMATS:
        raise UserError(f"format: expected one of {', '.join(FORMATS)} (got {fmt!r})", option="format")
    if fmt != "auto":
        if fmt == "data" and path == "-":
            raise UserError("format: data files are read by name, not from stdin; give --file PATH",
                            option="format")
        return fmt
    return "data" if path != "-" and Path(path).suffix.lower() in DATA_EXTENSIONS else "lines"


def read_data_inputs(task, cfg, path: str) -> list[str]:
    """The inputs of a data file, read with the run's columns (see the module docstring)."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"{path}: input file not found")
    data = cfg.data
    if p.suffix.lower() in DATA_EXTENSIONS and data.format != "auto":
        # The run may declare a format for its own files (parallel_text, conllu): this file names its own.
        data = data.model_copy(update={"format": "auto"})
    return task.read_inputs(cfg.model_copy(update={"data": data}), path)
