"""Numeric sequences of one split, from a `.ts` file or a long table, and the float tensors the models read.

Two layouts:

    .ts          one case per line (grutool.data.tsfile): channels separated by ':', values by ','; the label
                 after the last ':' (per step: one per step, separated by ',')
    long table   csv, tsv or parquet, a row per step: data.id_column names the sequence (compared as text
                 without surrounding spaces; one number written two ways, 1 and 01, is refused), data.channels its
                 values, data.time_column (optional) orders the rows of a sequence (with data.time_delta the
                 time since the previous step is one more channel), data.label_column holds the label (once
                 per sequence: every row of a sequence must agree; or per step for tagging)

Either layout serves `infer --file` of a run trained on the other. A .ts file names no channels, so grutool
calls them c1 ... cC (the run's scaler.json): a long table for a run trained on .ts files holds data.id_column
(`id` unless the config said otherwise) and the columns c1 ... cC, a row per step in file order
(`read_inputs`); a .ts file for a run trained on a table gives its channels in data.channels' order.

Values are standardised per channel by the run's `Standardizer`, fitted on the training split only (its rows,
missing values ignored) and saved in the run as `scaler.json`; validation, test and inference data are scaled
with it and never change it. Missing values follow data.missing: `error` (the default: the first is a
UserError naming file:line and channel), `ffill`, `interpolate` (filled within the sequence) or `mask` (kept
as NaN: the front-end, grutool.modules.numeric, turns them into zeros plus an observed flag).

A sequence as text (what `infer TEXT`, `infer --file` and `grutool serve` pass to `predict`) is its `.ts` data
line, optionally after an id and a tab: `7<TAB>1.2,1.3,1.1:0.4,0.5,0.2` (2 channels, 3 steps), or a JSON array
of channels x steps: `[[1.2, 1.3, 1.1], [0.4, 0.5, 0.2]]`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

import numpy as np

from grutool.data.slices import split_slice
from grutool.data.tables import read_number
from grutool.errors import UserError, clipped, counted

if TYPE_CHECKING:
    from grutool.config import DataConfig
    from grutool.data.scaling import Standardizer

TABLE_FORMATS = ("csv", "tsv", "parquet")


@dataclass
class Sequences:
    """The sequences of one split, in file order."""

    values: list[np.ndarray]       # each (T_i, C) float32, NaN where missing
    channels: list[str]            # the C channel names (a .ts file's: c1 ... cC)
    ids: list[str]                 # each sequence's id (a .ts case's number from 1; a table's id_column value)
    labels: Optional[list]         # a str per sequence, or a list of str per step (tagging); None: unlabelled
    where: list[str]               # "file:line" of each sequence's first line, for messages
    source: str

    def __len__(self) -> int:
        return len(self.values)


def is_ts(d: "DataConfig", source: str) -> bool:
    return d.format == "ts" or (d.format == "auto" and split_slice(source)[0].lower().endswith(".ts"))


def read_sequences(d: "DataConfig", source: str, need_labels: bool = True, per_step: bool = False) -> Sequences:
    """One split's sequences (`per_step`: a label per step: a long table's label on every row, or a .ts case's
    labels separated by ',', see grutool.data.tsfile), missing values per data.missing. Read for a trained run
    (`grutool.data.loading.for_trained_run`: eval, infer, serve), whose data settings are fixed, errors offer
    fixes of the data alone.

    `source` may end in a slice, `train.ts[:80%]` and `train.ts[80%:]`: the sequences of each label (all of
    them when unlabelled) are shuffled with data.split_seed and the slice of each is kept, so validation is
    carved from the training file, class by class, the same way every time."""
    path, lo, hi = split_slice(source)
    if is_ts(d, source):
        seqs = _read_ts(path, need_labels or (lo, hi) != (0.0, 1.0), per_step)
    else:
        seqs = _read_table(d, path, need_labels, per_step)
    if (lo, hi) != (0.0, 1.0):
        seqs = _sliced(seqs, lo, hi, d.split_seed, source)
    for x, where in zip(seqs.values, seqs.where):
        if len(x) == 0:
            raise UserError(f"{where}: an empty sequence (no steps); remove it")
    return apply_missing(seqs, d.missing)


def _sliced(seqs: Sequences, lo: float, hi: float, seed: int, source: str) -> Sequences:
    """The [lo, hi) fraction of each label's sequences after a seeded shuffle (a stratified split), file order kept."""
    groups: dict[str, list[int]] = {}
    for i in range(len(seqs)):
        key = "" if seqs.labels is None or not isinstance(seqs.labels[i], str) else seqs.labels[i]
        groups.setdefault(key, []).append(i)
    rng = np.random.default_rng(seed % 2**63)
    keep: list[int] = []
    for key in sorted(groups):
        rows = groups[key]
        order = [rows[j] for j in rng.permutation(len(rows))]
        keep.extend(order[int(round(len(rows) * lo)):int(round(len(rows) * hi))])
    if not keep:
        raise UserError(f"{source}: no sequences in this slice")
    keep.sort()

    def pick(xs):
        return None if xs is None else [xs[i] for i in keep]

    return Sequences(pick(seqs.values), seqs.channels, pick(seqs.ids), pick(seqs.labels), pick(seqs.where), source)


def _read_ts(source: str, need_labels: bool, per_step: bool = False) -> Sequences:
    from grutool.data.loading import read_text
    from grutool.data.tsfile import read_ts

    f = read_ts(source, read_text(source, "name a .ts file"), need_labels, per_step)
    channels = [f"c{i + 1}" for i in range(f.values[0].shape[1])]
    return Sequences(f.values, channels, f.ids, f.labels, [f"{source}:{n}" for n in f.lines], source)


def _read_table(d: "DataConfig", source: str, need_labels: bool, per_step: bool) -> Sequences:
    """A long table: rows grouped by data.id_column (in order of first appearance), each group in file order
    or ordered by data.time_column."""
    from grutool.data.loading import trained_run
    from grutool.data.tables import read_table

    if not d.channels:
        if trained_run():  # a run trained on .ts files: its settings are fixed, and a table has no label column it knows
            raise UserError(f"{source}: this run was trained on .ts files, so eval reads its sequences and labels "
                            f"from a .ts file; give one (infer --file reads a table of the columns id, c1 ... too)")
        raise UserError(f"{source}: numeric sequences in a table need data.channels (the value columns) and "
                        f"data.id_column; or give a .ts file")
    fmt = d.format if d.format in ("csv", "tsv", "parquet") else "auto"
    table = read_table(source, fmt, header=d.header, column_names=d.column_names)
    order = rows_by_id(table, table.column(d.id_column, "data.id_column"), "data.id_column", "sequence")
    # Missing cells stay NaN (unless data.missing is error): filled per sequence below, never across sequences.
    with np.errstate(over="ignore"):  # a value float32 cannot hold is inf here (1e39): refused just below
        values = np.stack([table.numeric(table.column(c, "data.channels"), d.missing, "data.channels")
                           for c in d.channels], axis=1).astype(np.float32)  # (N, C)
    if np.isinf(values).any():
        row, c = (int(i) for i in np.argwhere(np.isinf(values))[0])
        raise UserError(f"{table.location(row, d.channels[c])}: {d.channels[c]!r} holds a value beyond what float32 "
                        f"holds (about ±3.4e38); write a smaller number")
    times = table.numeric(table.column(d.time_column, "data.time_column"), "error", "data.time_column", fills=()) \
        if d.time_column else None
    labels_raw = [_label_text(v) for v in table.strings(table.column(d.label_column, "data.label_column"))] \
        if need_labels else None
    out_values, out_labels, where = [], [], []
    for key, rows in order.items():
        if times is not None:
            rows = sorted(rows, key=lambda r: times[r])
            dup = np.flatnonzero(np.diff(times[rows]) == 0)
            if len(dup):
                raise UserError(f"{table.location(rows[dup[0] + 1], d.time_column)}: sequence {clipped(key, 40)!r} "
                                f"has two rows at {d.time_column} {times[rows[dup[0]]]:g}; one row per step")
        x = values[rows]  # (T, C)
        if d.time_delta:  # one more channel: the time since the previous step (0 at the first)
            x = np.concatenate([x, np.diff(times[rows], prepend=times[rows[0]])[:, None].astype(np.float32)], axis=1)
        out_values.append(x)
        where.append(table.location(rows[0]))
        if labels_raw is not None:
            seq_labels = [labels_raw[r] for r in rows]
            if per_step:
                out_labels.append(seq_labels)
                continue
            odd = next((r for r in rows if labels_raw[r] != seq_labels[0]), None)
            if odd is not None:
                first = "step" if times is not None else "row"  # rows ordered by data.time_column: not the file's
                raise UserError(f"{table.location(odd, d.label_column)}: sequence {clipped(key, 40)!r} has label "
                                f"{clipped(labels_raw[odd], 40)!r} here but {clipped(seq_labels[0], 40)!r} on "
                                f"{table.place(rows[0])}, its first {first}; a sequence has one label: write it on "
                                f"every row"
                                + ("" if trained_run() else " (a label per step: task tagger for classes, "
                                   "data.per_step: true for a regressor's numbers)"))
            out_labels.append(seq_labels[0])
    channels = list(d.channels) + ([f"delta_{d.time_column}"] if d.time_delta else [])
    return Sequences(out_values, channels, list(order), out_labels if need_labels else None, where, source)


NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)")


def rows_by_id(table, id_column: str, setting: str, what: str) -> dict[str, list[int]]:
    """The rows of each id in column `id_column` of a long table (`setting`: the config field naming it, such as
    data.id_column or data.series_column; `what`: what an id names, sequence or series), ids in order of first
    appearance, each id's rows in file order. The one reading of ids: surrounding spaces dropped ('s1 ' is 's1':
    spaces around a cell are never meant), a row without an id refused (it would be one of its own, named '' or
    'nan'), one number written two ways refused (`_check_one_way`)."""
    ids = [i.strip() for i in table.strings(id_column)]
    absent = table.frame[id_column].isna().to_numpy() | np.array([not i for i in ids], dtype=bool)
    if absent.any():
        raise UserError(f"{table.location(int(np.flatnonzero(absent)[0]), id_column)}: no id in column "
                        f"{id_column!r} ({setting}); write the id of the {what} this row belongs to")
    order: dict[str, list[int]] = {}
    for row, key in enumerate(ids):
        order.setdefault(key, []).append(row)
    _check_one_way(table, id_column, order, setting, what)
    return order


def _check_one_way(table, id_column: str, order: dict[str, list[int]], setting: str, what: str) -> None:
    """Ids are compared as text, so one number written two ways ('1' and '01', '7' and '7.0') would be two
    sequences (series), each with part of the rows: refused, naming both, rather than guessed either way (a code
    such as '007' may be meant as written)."""
    from decimal import Decimal

    seen: dict[Decimal, str] = {}
    for key, rows in order.items():  # in order of first appearance
        if NUMBER.fullmatch(key):
            first = seen.setdefault(Decimal(key), key)
            if first != key:
                raise UserError(f"{table.location(rows[0], id_column)}: ids {clipped(key, 40)!r} (here) and "
                                f"{clipped(first, 40)!r} ({table.place(order[first][0])}) are one number written "
                                f"two ways; {setting} {id_column!r} is compared as text, so they would be two "
                                f"{what if what.endswith('s') else what + 's'}: write each id one way")


def _label_text(v: str) -> str:
    """A label cell as its class name: surrounding spaces dropped, '3.0' (a float column) the class '3'."""
    v = v.strip()
    try:
        f = read_number(v)
    except ValueError:
        return v
    return str(int(f)) if f.is_integer() and "." in v else v


def apply_missing(seqs: Sequences, policy: str) -> Sequences:
    """Missing values (NaN) per data.missing: an error naming the first, filled within each sequence, or kept (mask).
    For a trained run (`for_trained_run`), whose data.missing is fixed, the fix offered is the data's."""
    from grutool.data.loading import trained_run

    if policy == "mask":
        return seqs
    for i, x in enumerate(seqs.values):
        holes = np.argwhere(np.isnan(x))
        if not len(holes):
            continue
        if policy == "error":
            t, c = holes[0]
            fix = ("the run was trained with data.missing: error; fill the value" if trained_run() else
                   "data.missing is error; set data.missing (ffill, interpolate or mask) or fill the data")
            raise UserError(f"{seqs.where[i]}: a missing value in channel {seqs.channels[c]} at step {t + 1} of "
                            f"sequence {clipped(seqs.ids[i], 40)!r}, and {fix}")
        from grutool.data.tables import fill_missing

        filled = fill_missing(x, policy)
        if np.isnan(filled).any():
            c = int(np.argwhere(np.isnan(filled))[0][1])
            fix = "give it at least one value" if trained_run() else "set data.missing: mask or fill the data"
            raise UserError(f"{seqs.where[i]}: channel {seqs.channels[c]} of sequence {clipped(seqs.ids[i], 40)!r} "
                            f"has no value to fill from ({policy}); {fix}")
        seqs.values[i] = filled.astype(np.float32)
    return seqs


def read_inputs(d: "DataConfig", source: str, scaler: Optional["Standardizer"] = None) -> Sequences:
    """`infer --file`: the unlabelled sequences of `source`, read with the run's data settings `d`. A table for
    a run trained on .ts files (no data.channels) is read by the channel names of the run's `scaler`; a table
    without them is refused with one line naming the columns it needs."""
    if not is_ts(d, source) and not d.channels and scaler is not None:
        from grutool.data.tables import read_table

        fmt = d.format if d.format in TABLE_FORMATS else "auto"
        columns = read_table(split_slice(source)[0], fmt, header=d.header, column_names=d.column_names).columns
        wanted = [d.id_column, *scaler.names]
        missing = [c for c in wanted if c not in columns]
        if missing:
            raise UserError(f"{source}: no column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing[:5]))}"
                            f"{' ...' if len(missing) > 5 else ''}; this run was trained on .ts files of "
                            f"{counted(len(scaler), 'channel')}, so a table for it has the columns {', '.join(wanted[:13])}"
                            f"{' ...' if len(wanted) > 13 else ''} (a row per step, the channels in the .ts "
                            f"order; has: {clipped(', '.join(columns), 120)})")
        d = d.model_copy(update={"channels": list(scaler.names)})
    return read_sequences(d, source, need_labels=False)


def saved_scaler(vocabs: Any) -> Optional["Standardizer"]:
    """A run's scaler from its saved vocabularies (`SavedRun`; every numeric family names it `scaler`), or None."""
    return vocabs.extra.get("scaler") if vocabs is not None else None


def fit_scaler(seqs: Sequences) -> "Standardizer":
    """Per-channel mean and standard deviation of the training split's steps (missing values ignored)."""
    from grutool.data.scaling import Standardizer

    values = np.concatenate(seqs.values, axis=0)  # (N, C)
    empty = np.flatnonzero(np.isnan(values).all(axis=0))
    if len(empty):  # data.missing: mask keeps NaN; a channel with no value at all has nothing to scale it by
        name = seqs.channels[int(empty[0])]
        fix = ("drop that channel from every case" if split_slice(seqs.source)[0].lower().endswith(".ts")
               else "leave it out of data.channels")
        raise UserError(f"{seqs.source}: channel {name} has no value in the training split (every one missing), so "
                        f"nothing to standardise it by; give it values, or {fix}")
    return Standardizer.fit(seqs.channels, values)


def check_channels(scaler: "Standardizer", seqs: Sequences) -> None:
    """A split must have the channels the model was trained on (their number; a .ts file names none)."""
    if seqs.values and seqs.values[0].shape[1] != len(scaler):
        raise UserError(f"{seqs.where[0]}: {counted(seqs.values[0].shape[1], 'channel')}, but the model was trained on "
                        f"{len(scaler)}; give the channels the training data had")


def longest(d: "DataConfig") -> Optional[int]:
    """The most steps of a training sequence (what `bench --config` times as T), or None when the file cannot be
    read."""
    try:
        return max((len(v) for v in read_sequences(d, d.train, need_labels=False).values), default=None)
    except (UserError, OSError):
        return None


SYNTHETIC_CHANNELS = 8  # `bench --config` of numeric sequences whose training file cannot be read


def synthetic(d: "DataConfig", lengths: list[int], generator) -> tuple["Standardizer", list]:
    """`bench --config`: an identity scaler and standard-normal (T_i, C) values, C the training file's channel
    count (SYNTHETIC_CHANNELS when it cannot be read)."""
    import torch

    from grutool.data.scaling import Standardizer

    try:
        channels = len(read_sequences(d, d.train, need_labels=False).channels)
    except UserError:
        channels = SYNTHETIC_CHANNELS
    scaler = Standardizer([f"c{i + 1}" for i in range(channels)], [0.0] * channels, [1.0] * channels)
    return scaler, [torch.randn(int(n), channels, generator=generator) for n in lengths]  # each (T_i, C)


def tensors(seqs: Sequences, scaler: "Standardizer") -> list:
    """Standardised float tensors, each (T_i, C): what EncodedSplit.ids holds for numeric data. A value whose
    z-score float32 cannot hold (1e39; or 3e38 over a standard deviation below 1) is refused, naming it: it was
    inf, and the answer NaN (null in --jsonl, exit 0; 200 from serve)."""
    import torch

    out = []
    for x, where in zip(seqs.values, seqs.where):
        with np.errstate(over="ignore"):  # the overflow is said below, once, by the value
            z = np.ascontiguousarray(scaler.transform(x), dtype=np.float32)
        if np.isinf(z).any():
            step, c = (int(i) for i in np.argwhere(np.isinf(z))[0])
            value = float(x[step, c])
            said = f"{value:g}" if np.isfinite(value) else "a value over float32's largest, 3.4e38,"
            raise UserError(f"{where}: channel {seqs.channels[c]}, step {step + 1}: {said} is beyond what the "
                            f"model's float32 inputs hold once standardised (about ±3.4e38); check the value")
        out.append(torch.from_numpy(z))
    return out


def parse_text(text: str, channels: int, where: str = "input") -> tuple[Optional[str], np.ndarray]:
    """One sequence as text (see the module docstring) -> (its id or None, (T, C) values)."""
    from grutool.data.tsfile import parse_case

    seq_id, body = None, text.strip()
    if body.startswith("["):
        try:
            rows = json.loads(body)
        except ValueError as e:
            raise UserError(f"{where}: not a JSON array of channels x steps ({e})") from None
        if not (isinstance(rows, list) and rows and all(isinstance(r, list) for r in rows)):
            raise UserError(f"{where}: expected a JSON array of {counted(channels, 'channel')}, each an array of "
                            f"values per step")
        if len(rows) != channels:
            raise UserError(f"{where}: {counted(len(rows), 'channel')}, but the model reads {channels}; one array "
                            f"per channel")
        body = ":".join(",".join("?" if v is None else str(v) for v in r) for r in rows)
    elif "\t" in body:
        seq_id, body = body.split("\t", 1)
        seq_id = seq_id.strip()  # as a table's ids are read
    return seq_id, parse_case(body, channels, where)


def from_texts(texts: list[str], scaler: "Standardizer", missing: str,
               name: Callable[[int], str] = lambda k: f"input {k + 1}",
               position: Callable[[int], int] = lambda k: k) -> tuple[list[str], list]:
    """Sequences as text (infer, serve) -> their ids (given, or the position from 1: `position(k)`, its place in
    its own request, `Predictor.position`) and standardised (T_i, C) tensors; errors name text k (0-based) as
    `name(k)` (`Predictor.input_name`: `input K`, or serve's `texts[k]`), and missing values follow `missing`
    (data.missing) as in training."""
    ids, values = [], []
    for k, text in enumerate(texts):
        seq_id, x = parse_text(text, len(scaler), where=name(k))
        ids.append(seq_id if seq_id is not None else str(position(k) + 1))
        values.append(x)
    where = [name(k) for k in range(len(ids))]
    seqs = apply_missing(Sequences(values, list(scaler.names), ids, None, where, "input"), missing)
    return ids, tensors(seqs, scaler)


def as_texts(seqs: Sequences) -> list[str]:
    """Each sequence as `id<TAB>values` (what `infer --file` passes to predict)."""
    return [format_text(i, x) for i, x in zip(seqs.ids, seqs.values)]


def format_text(seq_id: Optional[str], x: np.ndarray) -> str:
    """The text `parse_text` reads back: `id<TAB>` (when given) and the `.ts` data line of (T, C) values."""
    from grutool.data.tsfile import format_case

    return (f"{seq_id}\t" if seq_id is not None else "") + format_case(x)


def data_file(path: str) -> bool:
    """Whether `infer --file` should read `path` as numeric data (.ts, or a table with data.channels)."""
    return Path(path).suffix.lower() in (".ts", ".csv", ".tsv", ".parquet")
