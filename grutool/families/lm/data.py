"""Language-model data: lines (each an example, optionally with a condition) or one long stream, as token ids.

A line example is read as `<bos> x_1 .. x_n` and predicts `x_1 .. x_n <eos>`. A stream is one token
sequence (characters including newlines; or words with `<eos>` for each line end) cut into `rows`
parallel rows and then into `bptt`-step chunks, laid out chunk-major for truncated BPTT
(`grutool.data.batching.EncodedSplit.streams`). Paths may end in a slice (`input.txt[:90%]`).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from grutool.data.loading import read_text
from grutool.data.slices import split_slice
from grutool.errors import UserError
from grutool.jsonsafe import json_type

FOLDER_FIX = "name a data file (or set data.format: text_dir)"  # a folder given where a file is read

if TYPE_CHECKING:
    from grutool.config import Config, DataConfig
    from grutool.data.batching import EncodedSplit
    from grutool.data.vocab import LabelVocab, Vocab

log = logging.getLogger("grutool")

LINE_FORMATS = ("text", "csv", "tsv", "jsonl", "text_dir")


@dataclass
class Lines:
    """Line examples of one split: texts, their conditions (or None) and where each came from."""

    texts: list[str]
    conditions: Optional[list[str]]
    where: list[str]


def _cut(n: int, lo: float, hi: float) -> slice:
    return slice(int(n * lo), int(n * hi))


def _read_text(path) -> str:
    """A text file as the model should see it: a leading BOM dropped and CRLF line ends read as LF (a file
    saved on Windows trains on the same tokens as the text saved elsewhere: no BOM or CR token)."""
    return read_text(path, FOLDER_FIX, encoding="utf-8-sig").replace("\r\n", "\n")


def line_format(cfg: Config, path: str) -> str:
    fmt = cfg.data.format
    if fmt != "auto":
        return fmt
    p = Path(path)
    if p.is_dir():
        return "text_dir"
    known = {".txt": "text", ".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl"}
    if p.suffix.lower() not in known and not p.exists():  # mistyped: say it is missing, not that its format is unknown
        from grutool.data.loading import data_not_found

        raise data_not_found(path, "data file or directory")
    if p.suffix.lower() not in known:
        from grutool.data.loading import format_unknown

        raise format_unknown(f"{path}: cannot tell the format from the extension",
                             f"set data.format to one of {', '.join(LINE_FORMATS)}", ".txt, .csv, .tsv or .jsonl")
    return known[p.suffix.lower()]


def read_stream(cfg: Config, spec: str) -> str:
    """The characters of a stream split (its slice applied). From a Hub split (data.dataset), the rows of
    data.text_column, each ending in a line end (a dataset of a text file's lines gives the file back)."""
    path, lo, hi = split_slice(spec)
    if cfg.data.dataset:
        lines = _read_hub(cfg, path, 0.0, 1.0)
        text = "".join(t if t.endswith("\n") else t + "\n" for t in lines.texts)
    else:
        text = _read_text(path)
    text = text[_cut(len(text), lo, hi)]
    if not text.strip():
        raise UserError(f"{spec}: empty corpus (no text to train or score on)")
    return text


def read_lines(cfg: Config, spec: str) -> Lines:
    """The line examples of a split; every data problem as a UserError."""
    d = cfg.data
    path, lo, hi = split_slice(spec)
    if d.dataset:
        lines = _read_hub(cfg, path, lo, hi)
        if not lines.texts:
            raise UserError(f"data.dataset '{d.dataset}' split '{spec}': empty corpus (no rows)")
        return lines
    fmt = line_format(cfg, path)
    if fmt == "text_dir":
        return _read_dir(path, spec, lo, hi, d.split_seed)
    if fmt == "text":
        rows = [(i + 1, line.rstrip("\r")) for i, line in enumerate(_read_text(path).split("\n"))]
        rows = [(n, t) for n, t in rows if t.strip()]  # blank lines separate nothing: skipped
        rows = rows[_cut(len(rows), lo, hi)]
        if d.condition_column:
            raise UserError(f"{path}: plain text has no columns for data.condition_column; use csv, tsv, "
                            f"jsonl or text_dir")
        lines = Lines([t for _, t in rows], None, [f"{path}:{n}" for n, _ in rows])
    else:
        lines = _read_table(cfg, path, fmt, lo, hi)
    if not lines.texts:
        raise UserError(f"{spec}: empty corpus (no lines)")
    return lines


def _read_table(cfg: Config, path: str, fmt: str, lo: float, hi: float) -> Lines:
    from grutool.data.loading import load_file

    d = cfg.data.model_copy(update={"format": fmt})
    return _table_lines(d, load_file(path, d, ("text_column",)), path, path, lo, hi)


def _read_hub(cfg: Config, split: str, lo: float, hi: float) -> Lines:
    """A Hub split's rows (data.dataset), sliced here as a local file's lines are (not by `datasets`)."""
    from grutool.data.loading import load_hub_split, split_where

    d = cfg.data
    return _table_lines(d, load_hub_split(d, split), split, split_where(d, split), lo, hi)


def _table_lines(d: DataConfig, ds, source: str, where: str, lo: float, hi: float) -> Lines:
    """The text column's rows in [lo, hi) (and their conditions) of a table read by `datasets`."""
    from grutool.data.loading import class_names, first_row_line, label_name, require_columns

    fields = {"text_column": d.text_column}
    if d.condition_column:
        fields["condition_column"] = d.condition_column
    require_columns(ds, where, fields)
    rows = range(len(ds))[_cut(len(ds), lo, hi)]
    texts = ["" if t is None else str(t) for t in ds[d.text_column][:]]
    conds = None
    if d.condition_column:
        raw = ds[d.condition_column][:]
        names = class_names(ds, d.condition_column)
        if names is not None:  # a ClassLabel column: the names are the conditions
            raw = [label_name(v, names, f"{where} {first_row_line(d, source, i)}", d.condition_column)
                   for i, v in enumerate(raw)]
        missing = [i for i in rows if raw[i] is None or str(raw[i]) == ""]
        if missing:
            raise UserError(f"{where}: condition column '{d.condition_column}' is empty at "
                            f"{first_row_line(d, source, missing[0])}; fill or remove it")
        nested = [i for i in rows if isinstance(raw[i], (list, dict))]
        if nested:  # str() would make a condition "['x']"
            raise UserError(f"{where}: condition column '{d.condition_column}' holds {json_type(raw[nested[0]], article=True)} "
                            f"at {first_row_line(d, source, nested[0])}; a condition is one string or number")
        conds = [str(raw[i]) for i in rows]
    at = [f"{where} {first_row_line(d, source, i)}" for i in rows]
    return Lines([texts[i] for i in rows], conds, at)


def _read_dir(path: str, spec: str, lo: float, hi: float, seed: int) -> Lines:
    """One .txt file per condition: lines deduplicated, shuffled with `seed`, then sliced (a stratified split)."""
    p = Path(path)
    if p.is_file():
        raise UserError(f"{path}: is a file; data.format text_dir reads a directory of .txt files, one per condition")
    if not p.is_dir():
        from grutool.data.loading import data_not_found

        raise data_not_found(path, "data directory")
    files = sorted(p.glob("*.txt"))
    if not files:
        raise UserError(f"{path}: no .txt files (one per condition, a line per example)")
    texts, conds, where = [], [], []
    for f in files:
        unique = list(dict.fromkeys(l.strip() for l in _read_text(f).splitlines() if l.strip()))
        random.Random(f"{seed}:{f.stem}").shuffle(unique)
        part = unique[_cut(len(unique), lo, hi)]
        texts += part
        conds += [f.stem] * len(part)
        where += [f"{f}"] * len(part)
    if not texts:
        raise UserError(f"{spec}: empty corpus (no lines in this slice)")
    return Lines(texts, conds, where)


# --- tokens ---------------------------------------------------------------------------------------------


def line_tokenizer(cfg: Config):
    from grutool.data.tokenize import get_tokenizer

    return get_tokenizer(cfg.data.tokenizer, cfg.data.lowercase)


def stream_tokens(cfg: Config, text: str) -> list[str]:
    """A stream as tokens: every character (newlines too) for `char`; else each line's tokens and <eos>."""
    from grutool.data.vocab import EOS

    d = cfg.data
    if d.lowercase:
        text = text.lower()
    if d.tokenizer == "char":
        return list(text)
    split = line_tokenizer(cfg.model_copy(update={"data": d.model_copy(update={"lowercase": False})}))
    return [t for line in text.split("\n") for t in split(line) + [EOS]]


def untokenize(tokens: list[str], tokenizer: str, stream: bool) -> str:
    """Text from generated tokens; in a word stream <eos> is a line end."""
    from grutool.data.tokenize import detokenize

    if stream and tokenizer != "char":
        return "\n".join(detokenize([t for t in line.split(" ") if t], tokenizer)
                         for line in " ".join(tokens).split("<eos>"))
    return detokenize(tokens, tokenizer)


# --- ids --------------------------------------------------------------------------------------------------


def encode_lines(tokens: list[list[str]], vocab: Vocab, conditions: Optional[list[str]],
                 condition_vocab: Optional[LabelVocab], texts: list[str]) -> EncodedSplit:
    """Inputs `<bos> x_1 .. x_n`, targets `x_1 .. x_n <eos>`; each example's condition id."""
    import torch

    from grutool.data.batching import EncodedSplit
    from grutool.data.vocab import Vocab as V

    ids = [torch.tensor([V.bos_id] + vocab.encode(t), dtype=torch.long) for t in tokens]
    targets = [torch.tensor(vocab.encode(t) + [V.eos_id], dtype=torch.long) for t in tokens]
    split = EncodedSplit(ids, targets, texts)
    if condition_vocab is not None:
        split.conditions = [torch.tensor(condition_vocab.stoi[c]) for c in conditions]
    return split


def stream_rows(n_tokens: int, rows: int) -> int:
    """Tokens per row of a stream of `n_tokens` cut into `rows` rows (inputs and next-token targets)."""
    return (n_tokens - 1) // rows


def encode_stream(tokens: list[str], vocab: Vocab, bptt: int, rows: int) -> EncodedSplit:
    """`rows` parallel rows of inputs x_t and targets x_{t+1}, cut into chunks of `bptt` steps (the last one
    shorter when bptt does not divide a row), chunk-major. The caller checks that a row holds a chunk."""
    import torch

    from grutool.data.batching import EncodedSplit

    ids = torch.tensor(vocab.encode(tokens), dtype=torch.long)  # (N,)
    per_row = stream_rows(len(ids), rows)
    x = ids[: rows * per_row].view(rows, per_row)  # (R, L)
    y = ids[1: rows * per_row + 1].view(rows, per_row)  # (R, L): each input's next token
    inputs, targets = [], []
    for start in range(0, per_row, bptt):
        inputs += list(x[:, start:start + bptt])
        targets += list(y[:, start:start + bptt])
    split = EncodedSplit(inputs, targets, [""] * len(inputs))
    split.streams = rows
    return split

