"""Read sequence-to-sequence pairs: line-aligned text files, tsv/csv/jsonl columns, or CMUdict.

Every reader returns `Pair`s (source text, target text, where it came from) and
reports each data problem as a `UserError` naming file and line: files of
different lengths (both counts), one side empty, no pairs at all. Lines empty on
both sides are skipped with a counted warning. Pure Python, no torch.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from grutool.config import DataConfig
from grutool.data.loading import format_unknown, read_lines
from grutool.errors import UserError
from grutool.jsonsafe import json_type
from grutool.families.seq2seq.pair import Pair

log = logging.getLogger("grutool")

_EXTENSIONS = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl"}


def pair_format(spec: str | list[str], declared: str) -> str:
    if declared != "auto":
        return declared
    if isinstance(spec, list):
        return "parallel_text"
    fmt = _EXTENSIONS.get(Path(spec).suffix.lower())
    if fmt is None:
        raise format_unknown(f"{spec}: cannot tell the seq2seq format from the name", "set data.format to "
                             "parallel_text (with data.source and data.target suffixes), tsv, csv, jsonl or cmudict",
                             ".tsv, .csv or .jsonl")
    return fmt


def parallel_paths(cfg: DataConfig, spec: str | list[str]) -> tuple[Path, Path]:
    """The source and target files of a split: [source, target] as given, or prefix.<source> and prefix.<target>."""
    if isinstance(spec, list):
        return Path(spec[0]), Path(spec[1])
    if cfg.source is None or cfg.target is None:
        raise UserError(f"{spec}: parallel_text needs data.source and data.target (file suffixes such as de and en), "
                        f"or the split as [source file, target file]")
    return Path(f"{spec}.{cfg.source}"), Path(f"{spec}.{cfg.target}")


def _parallel_text(cfg: DataConfig, spec: str | list[str]) -> list[tuple[str, str, str, str]]:
    src_path, tgt_path = parallel_paths(cfg, spec)
    sources, targets = read_lines(src_path), read_lines(tgt_path)
    if len(sources) != len(targets):
        raise UserError(f"{src_path} has {len(sources)} lines but {tgt_path} has {len(targets)}; "
                        f"the files must be line-aligned, one sentence per line")
    return [(s, t, f"{src_path}:{n}", f"{tgt_path}:{n}") for n, (s, t) in enumerate(zip(sources, targets), 1)]


def _columns(cfg: DataConfig, spec: str) -> list[tuple[str, str, str, str]]:
    from grutool.data.loading import first_row_line, load_file, require_columns

    ds = load_file(spec, cfg, ("source_column",))
    require_columns(ds, spec, {"source_column": cfg.source_column, "target_column": cfg.target_column})
    rows = []
    for i, (s, t) in enumerate(zip(ds[cfg.source_column], ds[cfg.target_column])):
        at = first_row_line(cfg, spec, i)  # "line N" (csv, tsv, jsonl) or "row N" (json)
        where = f"{spec}:{at[len('line '):]}" if at.startswith("line ") else f"{spec} {at}"
        rows.append((_text(s), _text(t), where, where))
    return rows


def _text(v) -> str:
    """A cell as text: empty for a missing value (None, NaN)."""
    return "" if v is None or (isinstance(v, float) and v != v) else str(v).strip()


def _hub(cfg: DataConfig, split: str) -> list[tuple[str, str, str, str]]:
    """A Hub split (data.dataset): two text columns (data.source_column, data.target_column), or with data.source and
    data.target the languages of one `translation` column of {language: text} (the layout of WMT and OPUS sets)."""
    from grutool.data.loading import load_hub_split, require_columns, split_where

    ds = load_hub_split(cfg, split)
    where = split_where(cfg, split)
    if cfg.source is not None:
        if "translation" not in ds.column_names:
            raise UserError(f"{where}: no column 'translation' (data.source and data.target name the languages of "
                            f"one; for two text columns remove them and set data.source_column, data.target_column); "
                            f"columns found: {list(ds.column_names)}")
        sources, targets = [], []
        for i, row in enumerate(ds["translation"][:]):
            missing = [lang for lang in (cfg.source, cfg.target) if not isinstance(row, dict) or lang not in row]
            if missing:
                found = sorted(row) if isinstance(row, dict) else json_type(row, article=True)
                raise UserError(f"{where} row {i}: no '{missing[0]}' in column 'translation' (data.source, "
                                f"data.target); it holds {found}")
            sources.append(row[cfg.source])
            targets.append(row[cfg.target])
    else:
        require_columns(ds, where, {"source_column": cfg.source_column, "target_column": cfg.target_column})
        sources, targets = ds[cfg.source_column][:], ds[cfg.target_column][:]
    return [(_text(s), _text(t), f"{where} row {i}", f"{where} row {i}") for i, (s, t) in enumerate(zip(sources, targets))]


def read_pairs(cfg: DataConfig, spec: str | list[str], name: str) -> list[Pair]:
    """The (source, target) pairs of one split, in file (or Hub split) order."""
    if cfg.dataset:
        rows = _hub(cfg, spec)
    else:
        fmt = pair_format(spec, cfg.format)
        if fmt == "cmudict":
            from grutool.families.seq2seq.cmudict import cmudict_pairs

            return cmudict_pairs(spec, cfg.split_seed, cfg.keep_stress)
        rows = _parallel_text(cfg, spec) if fmt == "parallel_text" else _columns(cfg, spec)
    pairs, blank = [], 0
    for source, target, src_where, tgt_where in rows:
        source, target = source.strip(), target.strip()
        if not source and not target:
            blank += 1
            continue
        if not target:  # a table row is one place; parallel files name the other side's line too
            other = "" if src_where == tgt_where else f" for the source at {src_where}"
            raise UserError(f"{tgt_where}: empty target{other}; every pair needs both "
                            f"sides (remove the pair, or fill in its target)")
        if not source:
            other = "" if src_where == tgt_where else f" for the target at {tgt_where}"
            raise UserError(f"{src_where}: empty source{other}; every pair needs both "
                            f"sides (remove the pair, or fill in its source)")
        pairs.append(Pair(source, target, src_where))
    if blank:
        log.warning("%s: %d line(s) empty on both sides are skipped", name, blank)
    if not pairs:
        raise UserError(f"{spec}: no pairs (every line is empty)")
    return pairs
