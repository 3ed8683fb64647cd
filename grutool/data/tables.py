"""Tables of numbers: CSV, TSV and parquet files read as columns, every bad cell named by file:line:column.

The numeric families (forecasting, numeric sequences) read their data through here. A table is read once
with every cell kept as written (text files: as strings, so nothing is silently turned into NaN); a column is
then asked for by name (`column`: unknown names get a did-you-mean), as numbers (`numeric`: a non-numeric
cell or, under `data.missing: error`, an empty one is a UserError naming its line and column), or as times
(`times`: unparseable, duplicated or unsorted timestamps named likewise; `time_order` applies a
`data.timestamps` policy instead). `fill_missing` applies the
`data.missing` policies.

Line numbers count the file's lines from 1, header included; columns count from 1. A parquet file has no
lines: its cells are named by row (from 1) and column name. A table of some of a file's rows (`Table.subset`)
still names them by their place in the file. `read_table("-")` reads stdin (named `stdin`).

A table read for a trained run (inside `grutool.data.loading.for_trained_run`: eval, infer, serve) cannot change
the run's data settings, so a bad cell's fix is the cell alone; training errors offer the config's fixes too.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from grutool.errors import UserError, clipped, either

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

FORMATS = {".csv": "csv", ".tsv": "tsv", ".txt": "tsv", ".parquet": "parquet"}
MISSING = frozenset({"", "nan", "na", "n/a", "null", "none", "?"})
"""Cells read as missing values (case-insensitive, surrounding spaces ignored); `?` is the UEA .ts marker."""


def table_format(path: str | Path, declared: str = "auto") -> str:
    """csv, tsv or parquet: `declared` unless auto, else by the file's extension."""
    if declared in ("csv", "tsv", "parquet"):
        return declared
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise UserError(f"{path}: cannot tell the format from the extension; set data.format to csv, tsv or parquet")
    return fmt


@dataclass
class Table:
    """The cells of one file, by column name, as read (strings for csv/tsv)."""

    path: str
    frame: "pd.DataFrame"
    text: bool
    """csv/tsv (cells named by line:column) rather than parquet (by row and column name)."""
    first_line: int = 2
    """The file line of the first data row (2 below a header, 1 without one)."""
    rows: Optional["np.ndarray"] = None
    """The file row (from 0) of each of the frame's rows, for a table of some of a file's rows (`subset`);
    None: the frame holds the file's rows in order."""
    doubled: Optional[dict[str, list[int]]] = None
    """Header names written more than once, with their columns (from 1): pandas keeps the first as the name and
    calls the others 'name.1', ..., so a setting that names one of them is refused (`column`), never read from
    the first alone."""

    @property
    def columns(self) -> list[str]:
        return [str(c) for c in self.frame.columns]

    def __len__(self) -> int:
        return len(self.frame)

    def subset(self, rows) -> "Table":
        """The table of rows `rows` (positions in this table, in the order given), its cells still named by their
        place in the file."""
        import numpy as np

        rows = np.asarray(rows, dtype=np.int64)
        return Table(self.path, self.frame.iloc[rows].reset_index(drop=True), self.text, self.first_line,
                     rows if self.rows is None else self.rows[rows], self.doubled)

    def file_row(self, row: int) -> int:
        """The file row (from 0) of data row `row` of this table."""
        return int(self.rows[row]) if self.rows is not None else row

    def location(self, row: int, column: Optional[str] = None) -> str:
        """Where data row `row` (from 0) is: `path:line:column` (text), `path: row r, column 'c'` (parquet)."""
        if self.text:
            where = f"{self.path}:{self.first_line + self.file_row(row)}"
            return where + (f":{self.columns.index(column) + 1}" if column is not None else "")
        return f"{self.path}: row {self.file_row(row) + 1}" + (f", column {column!r}" if column is not None else "")

    def place(self, row: int) -> str:
        """`line N` (text) or `row N` (parquet) of data row `row` (from 0), for naming a second row in a message."""
        return f"line {self.first_line + self.file_row(row)}" if self.text else f"row {self.file_row(row) + 1}"

    def column(self, name: str, option: str = "column") -> str:
        """`name` when the table has it, else a UserError naming `option` (a config field) with a did-you-mean;
        a name the header writes twice is a UserError too."""
        if self.doubled and name in self.doubled:
            where = " and ".join(str(c) for c in self.doubled[name])
            raise UserError(f"{option}: {self.path}:1: the header names {len(self.doubled[name])} columns {name!r} "
                            f"(columns {where}); rename all but the one {option} should read", option)
        if name in self.columns:
            return name
        close = difflib.get_close_matches(str(name), self.columns, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserError(f"{option}: {self.path} has no column {name!r}{hint}; its columns: "
                        f"{clipped(', '.join(self.columns), 300)}", option)

    def numeric(self, name: str, missing: str = "error", option: str = "column",
                fills: Sequence[str] = ("ffill", "interpolate", "mask")) -> "np.ndarray":
        """Column `name` as float64 (N,); missing cells are NaN unless `missing` is error (then the first one is
        a UserError offering the data.missing policies `fills`, those the reading family accepts; none: a column
        no policy fills, such as a time column). Any other
        cell that is not a finite number is a UserError naming its place. For a trained run (`for_trained_run`)
        the fix offered is the cell's alone."""
        import numpy as np
        import pandas as pd

        from grutool.data.loading import trained_run

        series = self.frame[self.column(name, option)]
        if not self.text and pd.api.types.is_numeric_dtype(series.dtype):
            values = series.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
            absent = np.isnan(values)
            bad = np.isinf(values)
        else:
            cells = series.astype("string").fillna("")
            absent = cells.str.strip().str.lower().isin(MISSING).to_numpy(dtype=bool)
            values = pd.to_numeric(cells.where(~absent, None), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            bad = (np.isnan(values) & ~absent) | np.isinf(values)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            fix = ("fix the cell" if trained_run()
                   else "fix the cell, or set data.columns to the columns to read, without it" if option == "data.columns"
                   else f"fix the cell, or leave the column out of {option}" if option.startswith("data.")
                   else "fix the cell or leave the column out of the config")
            if option == "data.time_column":  # numeric sequences order their rows by numbers, not dates
                fix = time_fix(str(series.iloc[row]))
            elif option == "data.columns" and not trained_run() and _a_time(str(series.iloc[row])):
                # a forecast's date column read as values: the setting that names it is the fix
                fix = f"it reads as a time: set data.time_column: {name} (or {fix})"
            raise UserError(f"{self.location(row, name)}: {clipped(str(series.iloc[row]), 60)!r} in column {name!r} "
                            f"is not a finite number; {fix}")
        if missing == "error" and absent.any():
            row = int(np.flatnonzero(absent)[0])
            fix = ("fill it (the run was trained with data.missing: error, so its inputs need every value)"
                   if trained_run() and fills else f"fill it, or set data.missing to {either(fills)}" if fills
                   else "fill it (data.missing fills values, never this column)")
            raise UserError(f"{self.location(row, name)}: missing value in column {name!r} ({int(absent.sum())} in "
                            f"all); {fix}")
        values[absent] = np.nan
        return values

    def strings(self, name: str, option: str = "column") -> list[str]:
        """Column `name` as strings (ids, labels), surrounding spaces kept."""
        series = self.frame[self.column(name, option)]
        return ["" if v is None else str(v) for v in series.tolist()]

    def times(self, name: str, option: str = "data.time_column") -> "np.ndarray":
        """Column `name` as datetime64[ns] (N,), strictly increasing: an unparseable, duplicated or earlier
        timestamp is a UserError naming its line (and the line it repeats or goes back before)."""
        stamps = self.stamps(name, option)
        _, _, _, bad = time_order(stamps, "error")
        if bad is not None:
            self.refuse_order(name, stamps, bad, order_fix("error"))
        return stamps

    def day_month(self, name: str, option: str = "data.time_column") -> Optional[str]:
        """The strftime format of a time column written day and month first (`13/01/2024`, `01.02.2024 13:00`):
        the one of day-first and month-first that reads every cell, None for any other column (ISO, year first,
        datetimes). pandas read such cells month-first whatever the column held (`01/02/2024` as 2 January in a
        day-first file), so a file in time order was refused as out of order, or, sorted, was put out of it; a
        column every cell of which reads both ways is a UserError: its dates cannot be told apart."""
        import pandas as pd

        series = self.frame[self.column(name, option)]
        if not pd.api.types.is_string_dtype(series.dtype) or not len(series):
            return None
        first = str(series.iloc[0]).strip()
        shape = _time_format(first)
        if shape is None or not shape.startswith(("%d", "%m")) or "%d" not in shape or "%m" not in shape:
            return None
        other = shape.replace("%d", "\0").replace("%m", "%d").replace("\0", "%m")
        cells = series.astype(str).str.strip()
        fits = [f for f in (shape, other) if pd.to_datetime(cells, errors="coerce", format=f).notna().all()]
        if len(fits) == 2:
            raise UserError(f"{self.location(0, name)}: {clipped(first, 40)!r}: every date in {option} {name!r} "
                            f"reads day first and month first ({shape} and {other}), so they cannot be told apart; "
                            f"write the dates year first (2024-02-01)")
        return fits[0] if fits else None  # neither: `stamps` names the first cell written otherwise

    def time_texts(self, name: str, option: str = "data.time_column") -> list[str]:
        """Column `name`'s times as text that reads one way: as written, or, in a column written day and month
        first (`day_month`), year first (`2024-01-13`, `2024-01-13 14:00:00`), so every later reading of them
        (steps, seasons, calendar features, the times after the last) takes them as the column meant."""
        fmt = self.day_month(name, option)
        cells = self.strings(name, option)
        if fmt is None:
            return cells
        import pandas as pd

        parsed = pd.to_datetime(pd.Series(cells).str.strip(), format=fmt)
        out = "%Y-%m-%d %H:%M:%S" if any(c in fmt for c in "HIMS") else "%Y-%m-%d"
        return [t.strftime(out) for t in parsed]

    def stamps(self, name: str, option: str = "data.time_column") -> "np.ndarray":
        """Column `name` as datetime64[ns] (N,), in file order; an unparseable cell is a UserError naming it."""
        import numpy as np
        import pandas as pd

        series = self.frame[self.column(name, option)]
        fmt = self.day_month(name, option)
        if fmt is not None:  # day and month first: read as the whole column reads, not month first
            return pd.to_datetime(series.astype(str).str.strip(), format=fmt).to_numpy(dtype="datetime64[ns]")
        parsed = instants(series)
        bad = parsed.isna().to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            cell = str(series.iloc[row]).strip()
            if is_number(cell):  # `1704067200` and `1704067200.0` alike
                raise UserError(f"{self.location(row, name)}: {clipped(cell, 60)!r} in {option} {name!r} is a number, "
                                f"not a date or time; write timestamps (2024-01-31 13:00), or remove {option} "
                                f"to read the rows in file order")
            raise UserError(f"{self.location(row, name)}: {clipped(cell, 60)!r} is not a date or time; fix the "
                            f"cell, or set {option} to the table's time column")
        if pd.api.types.is_string_dtype(series.dtype) and len(series):
            shape = _time_format(str(series.iloc[0]).strip())
            if shape is not None:  # every cell written as the first: '01/02/2024' beside '2024-01-31' is ambiguous
                alike = pd.to_datetime(series, errors="coerce", format=shape, utc=True).isna().to_numpy()
                if alike.any():
                    row = int(np.flatnonzero(alike)[0])
                    raise UserError(f"{self.location(row, name)}: {clipped(str(series.iloc[row]), 60)!r} is written "
                                    f"unlike the first timestamp, {str(series.iloc[0]).strip()!r}; write every "
                                    f"timestamp in one format (2024-01-31 13:00)")
        return parsed.to_numpy(dtype="datetime64[ns]")

    def refuse_order(self, name: str, stamps: "np.ndarray", bad: tuple[int, int], fix: str, what: str = ""):
        """The UserError for row bad[0] repeating or going back before row bad[1] (`what`: e.g. ` of series 'a'`)."""
        row, prev = bad
        cell = str(self.frame[name].iloc[row])
        verb = "repeats" if stamps[row] == stamps[prev] else "is earlier than"
        raise UserError(f"{self.location(row, name)}: timestamp {cell!r}{what} {verb} the one on "
                        f"{self.place(prev)}; {fix}")


def time_fix(cell: str) -> str:
    """The fix for a cell of a numeric-sequence table's data.time_column that is no finite number: the values the
    column takes, with the cell in seconds when it is a date (forecasts read dates there; these tables do not);
    for a trained run (`for_trained_run`), whose time column cannot be removed, that alone."""
    import re

    import pandas as pd

    from grutool.data.loading import trained_run

    cell = cell.strip()
    stamp = instants([cell]).iloc[0] if re.search(r"\d{4}", cell) else pd.NaT  # a year: '12:30' is no date
    example = (f"{clipped(cell, 40)!r} is {int(stamp.timestamp())} seconds since 1970" if not pd.isna(stamp)
               else "2024-01-01 is 1704067200 seconds since 1970")
    other = "" if trained_run() else ", or remove data.time_column to read the rows in file order"
    return (f"data.time_column of numeric sequences holds numbers that order each sequence's rows (a step index "
            f"1, 2, 3, or seconds), not dates: write the times as numbers ({example}){other}")


def instants(cells) -> "pd.Series":
    """Time cells (a sequence or Series of strings, or datetimes) as datetime64 instants, NaT where a cell is no
    date or time. Cells with UTC offsets are compared as instants (in UTC, offset dropped), so the hour a DST
    change skips or repeats ('2024-03-31 01:00+01:00', '03:00+02:00') is one step, as it was; naive cells are
    read as written."""
    import pandas as pd

    cells = cells if isinstance(cells, pd.Series) else pd.Series(list(cells))
    if pd.api.types.is_datetime64_any_dtype(cells.dtype):  # parquet: already times
        return cells.dt.tz_convert(None) if getattr(cells.dt, "tz", None) is not None else cells
    # utc=True: naive cells stay as written, cells with offsets (one or several) become UTC instants.
    import warnings

    with warnings.catch_warnings():  # pandas' dayfirst notice: a day-first column is read by `Table.day_month`
        warnings.simplefilter("ignore")
        return pd.to_datetime(cells, errors="coerce", format="mixed", utc=True).dt.tz_convert(None)


def _time_format(cell: str) -> Optional[str]:
    """The strftime format of one time cell as pandas guesses it (ISO 8601 in any of its forms), None when it
    cannot tell."""
    import warnings

    from pandas.tseries.api import guess_datetime_format

    with warnings.catch_warnings():  # "Parsing dates in %d/%m/%Y format when dayfirst=False": `day_month` decides
        warnings.simplefilter("ignore")
        shape = guess_datetime_format(cell)
    return "ISO8601" if shape is not None and shape.startswith(("%Y-%m-%d", "%Y%m%d")) else shape


def time_order(stamps: "np.ndarray", policy: str) -> tuple["np.ndarray", int, int, Optional[tuple[int, int]]]:
    """The rows of `stamps` (N,) datetime64 in time order by a data.timestamps `policy`: (row order, rows out of
    order (earlier than a row above them), rows dropped, the first (row, earlier row) that breaks the policy or None). `error`: file order, broken by
    any row not after the one before it; `sort`: a stable sort, broken by a repeated timestamp;
    `drop_duplicates`: a stable sort keeping the last row of each timestamp."""
    import numpy as np

    n = len(stamps)
    if policy == "error":
        back = np.flatnonzero(stamps[1:] <= stamps[:-1])
        return np.arange(n), 0, 0, ((int(back[0]) + 1, int(back[0])) if len(back) else None)
    order = np.argsort(stamps, kind="stable")
    moved = int((stamps[1:] < np.maximum.accumulate(stamps)[:-1]).sum()) if n else 0  # rows going back in time
    ordered = stamps[order]
    same = np.flatnonzero(ordered[1:] == ordered[:-1])
    if policy == "sort":
        return order, moved, 0, ((int(order[same[0] + 1]), int(order[same[0]])) if len(same) else None)
    keep = np.ones(n, dtype=bool)
    keep[same] = False  # of each run of equal timestamps the last (in file order) stays
    return order[keep], moved, int(n - keep.sum()), None


def read_table(path: str | Path, fmt: str = "auto", *, header: bool = True,
               column_names: Optional[Sequence[str]] = None) -> Table:
    """Every cell of a csv, tsv or parquet file (`-`: stdin, its format `fmt` or sniffed). `header`: the first
    line names the columns (else `column_names` does, or 0, 1, ...). For a trained run (`for_trained_run`) a
    file whose extension names no format is sniffed, as stdin is, since the run's data.format cannot change."""
    import io

    import pandas as pd

    from grutool.data.loading import data_not_found, read_stdin, trained_run

    if str(path) == "-":
        raw = read_stdin()
        if not raw.strip():
            raise UserError("stdin: no input; pipe a table into --file - (a header line, then rows)")
        name, source = "stdin", io.BytesIO(raw)
        kind = fmt if fmt in ("csv", "tsv", "parquet") else sniff_format(raw)
    else:
        p = Path(path)
        if p.is_dir():
            raise UserError(f"{path}: is a directory; name a data file")
        if not p.is_file():
            raise data_not_found(path)
        name, source = str(path), p
        if trained_run() and fmt not in ("csv", "tsv", "parquet") and p.suffix.lower() not in FORMATS:
            with p.open("rb") as f:
                kind = sniff_format(f.read(65536))
        else:
            kind = table_format(p, fmt)
    try:
        if kind == "parquet":
            frame = pd.read_parquet(source)
            if column_names:
                frame.columns = list(column_names)
            return Table(name, frame, text=False)
        names = list(column_names) if column_names else None
        frame = pd.read_csv(source, sep="," if kind == "csv" else "\t", dtype=str, keep_default_na=False,
                            header=0 if header else None, names=names, quoting=0 if kind == "csv" else 3,
                            skip_blank_lines=False, encoding="utf-8")
        if names is None and not header:
            frame.columns = [str(c) for c in frame.columns]
        doubled = None
        if header and names is None:
            if isinstance(source, io.BytesIO):
                source.seek(0)
            first = pd.read_csv(source, sep="," if kind == "csv" else "\t", dtype=str, keep_default_na=False,
                                header=None, nrows=1, quoting=0 if kind == "csv" else 3, encoding="utf-8")
            heads = [str(c) for c in first.iloc[0].tolist()] if len(first) else []
            doubled = {h: [i + 1 for i, g in enumerate(heads) if g == h] for h in heads if heads.count(h) > 1} or None
    except UnicodeDecodeError as exc:
        raise UserError(f"{name}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except pd.errors.EmptyDataError:
        raise UserError(f"{name}: the file is empty") from None
    except pd.errors.ParserError as exc:
        raise UserError(ragged_row(name, str(exc), header)) from None
    except (OSError, ValueError, ImportError) as exc:
        raise UserError(f"{name}: cannot read it as {kind} ({clipped(str(exc), 200)})") from None
    if len(frame) == 0:
        raise UserError(f"{name}: no data rows" + (" below the header" if header else ""))
    return Table(name, frame, text=True, first_line=2 if header else 1, doubled=doubled)


ORDER_FIX = {"error": "rows must be in time order without duplicates (sort the file, drop the duplicate, or set "
                      "data.timestamps: sort or drop_duplicates)",
             "sort": "data.timestamps: sort keeps every row; drop the duplicate, or set data.timestamps: "
                     "drop_duplicates"}


def order_fix(policy: str) -> str:
    """The fix for rows out of time order under data.timestamps `policy`; for a trained run (eval, infer, serve:
    its data.timestamps is fixed) the file's alone."""
    from grutool.data.loading import trained_run

    if trained_run():
        return "rows must be in time order without duplicates (sort the file, or drop the duplicate)"
    return ORDER_FIX[policy]


def read_number(text: str) -> float:
    """A number as data files write it: `float(text)` (`1`, ` -2.5e3 `, `nan`, `inf`) for ASCII text without '_'.
    Python's `float` also reads '1_0' as 10 and other scripts' digits ('١٢', '１２') as 12; pandas reads neither as
    a number, so the .ts reader and a table's label cells refuse them too (ValueError), as the table's channels do."""
    if not text.isascii() or "_" in text:
        raise ValueError(f"not a number: {text!r}")
    return float(text)


def is_number(cell: str) -> bool:
    """Whether a cell's text reads as a number (`read_number` takes it: `1`, `-2.5e3`, `nan`, `inf`)."""
    try:
        read_number(cell)
    except ValueError:
        return False
    return True


def ragged_row(name: str, said: str, header: bool) -> str:
    """pandas' "Error tokenizing data. C error: Expected 4 fields in line 102, saw 5" as grutool's data errors
    read: file:line, what the row has against the first row, and the fix."""
    import re

    m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", said)
    if m is None:
        return f"{name}: {clipped(said.strip(), 200)}; every row needs one cell per column"
    expected, line, saw = (int(g) for g in m.groups())
    first = "the header has" if header else "the first row has"
    return (f"{name}:{line}: {saw} cells, {first} {expected}; every row needs one cell per column (quote a value "
            f"that holds the separator)")


def sniff_format(head: bytes) -> str:
    """parquet (its magic bytes), tsv (a tab in the first line) or csv: the format of a table without a name."""
    if head.startswith(b"PAR1"):
        return "parquet"
    return "tsv" if b"\t" in head.split(b"\n", 1)[0] else "csv"


def fill_missing(values: "np.ndarray", policy: str) -> "np.ndarray":
    """`values` (N,) or (N, C) with NaN for missing cells, filled along axis 0 by the `data.missing` policy:
    ffill (the value before; at the start, the first value after), interpolate (linear between neighbours;
    the ends take the nearest value). `error` and `mask` leave the NaNs. A column with no value stays NaN."""
    import numpy as np

    if policy not in ("ffill", "interpolate"):
        return values
    out = np.array(values, dtype=np.float64, copy=True)
    flat = out[:, None] if out.ndim == 1 else out
    index = np.arange(len(flat))
    for c in range(flat.shape[1]):
        col = flat[:, c]
        known = ~np.isnan(col)
        if known.all() or not known.any():
            continue
        if policy == "interpolate":
            col[~known] = np.interp(index[~known], index[known], col[known])
        else:
            last = np.where(known, index, -1)
            np.maximum.accumulate(last, out=last)
            first_known = int(np.flatnonzero(known)[0])
            last[last < 0] = first_known
            col[:] = col[last]
    return out


def _a_time(cell: str) -> bool:
    """Whether a cell reads as a date or time (2024-01-01, 2016-07-01 00:00:00), not as a mistyped number."""
    import pandas as pd

    if not any(c in cell for c in "-/:") or is_number(cell):
        return False
    try:
        pd.Timestamp(cell.strip())
    except (ValueError, TypeError, OverflowError):
        return False
    return True
