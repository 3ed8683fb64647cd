"""Forecasting data: a table of time-ordered rows cut into splits by row borders or fractions, and the
sliding windows (input_length rows in, horizon rows out) each split is scored on.

The protocol of the long-horizon literature (data/timeseries/SOURCE.md): validation and test windows may take
their input from the rows before their split, but every predicted row lies inside it; the z-score is fitted on
the training rows alone; every window of a split is scored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
import torch

from grutool.data.batching import EncodedSplit
from grutool.errors import UserError, counted

log = logging.getLogger("grutool")

SPLITS = ("train", "validation", "test")


@dataclass
class Series:
    """One file's rows in time order: values (T, C) of `columns`, and the raw time stamps (None without a
    time column). Long form (data.series_column): the rows of each series together, in time order, `parts`
    giving each one's rows [lo, hi) and `ids` its name; wide form: one part, every row."""

    path: str
    columns: list[str]
    values: np.ndarray                 # (T, C) float64
    times: Optional[list[str]] = None  # (T,) as written in the file
    parts: Optional[list[tuple[int, int]]] = None
    ids: Optional[list[str]] = None

    def __post_init__(self):
        if self.parts is None:
            self.parts = [(0, len(self.values))]


def split_rows(cfg, n: int, series: Optional[str] = None) -> dict[str, tuple[int, int]]:
    """Row ranges [lo, hi) of train, validation and test in a file of `n` rows: data.borders (the ends of the
    three splits), or data.fractions (train and test rounded down, validation between them)."""
    d = cfg.data
    if d.borders is not None:
        ends = list(d.borders) + [None] * (3 - len(d.borders))
    else:
        f = list(d.fractions)
        train, test = int(n * f[0]), int(n * f[2]) if len(f) > 2 else 0
        ends = [train, n - test if len(f) > 2 else train + int(n * f[1]), n if len(f) > 2 else None]
    rows, lo = {}, 0
    for name, hi in zip(SPLITS, ends):
        if hi is None:
            continue
        if hi > n:
            whose = (f"series {series!r} of {d.train} has {n} rows (data.borders count each series' own rows)"
                     if series is not None else f"{d.train} has {n} rows")
            raise UserError(f"data.borders: the {name} split ends at row {hi}, but {whose}; lower the border")
        rows[name] = (lo, hi)
        lo = hi
    return rows


def window_starts(rows: tuple[int, int], input_length: int, horizon: int, context: bool, floor: int = 0) -> list[int]:
    """First rows of every window whose predicted rows [s+L, s+L+H) lie in rows [lo, hi); with `context` the
    inputs may reach back up to `input_length` rows before lo (validation and test), never before `floor` (the
    series' first row), else not (train)."""
    lo, hi = rows
    first = max(floor, lo - input_length) if context else lo
    return list(range(first, hi - input_length - horizon + 1))


class Rows(Sequence):
    """Row s of `table` (T, ...) for each start s: what a window reads once (its series' static values, its
    series' id)."""

    def __init__(self, table: torch.Tensor, starts: list[int]):
        self.table, self.starts = table, starts

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.table[self.starts[i]]


class Windows(Sequence):
    """Rows [s + offset, s + offset + length) of `series` (T, C) for each start s, as views: one window's
    input (offset 0) or target (offset L, the target columns)."""

    def __init__(self, series: torch.Tensor, starts: list[int], offset: int, length: int,
                 columns: Optional[torch.Tensor] = None):
        self.series, self.starts, self.offset, self.length, self.columns = series, starts, offset, length, columns

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> torch.Tensor:
        s = self.starts[i] + self.offset
        rows = self.series[s:s + self.length]  # (length, C)
        return rows if self.columns is None else rows[:, self.columns]


@dataclass
class WindowSplit(EncodedSplit):
    """A forecasting split: `ids` are the input windows (L, C), `targets` the target windows (H, T), both views
    of one z-scored series; what the metrics need (baselines, original units) travels with it."""

    series: Optional[torch.Tensor] = None      # (T_rows, C) float32, z-scored
    starts: list[int] = field(default_factory=list)
    input_length: int = 0
    horizon: int = 0
    target_index: list[int] = field(default_factory=list)  # target columns among the inputs
    target_names: list[str] = field(default_factory=list)
    mean: Optional[np.ndarray] = None          # (T,) the scaler's mean and std of the target columns
    std: Optional[np.ndarray] = None
    season: int = 1
    scale: Optional[np.ndarray] = None         # (T,) MASE denominators: mean |y_t - y_{t-season}| before the split
    times: Optional[list[str]] = None
    source: str = ""
    quantiles: list[float] = field(default_factory=list)  # the model's quantile levels (model.quantiles), if any
    covers: str = ""  # the rows the windows read, in words (eval's `scored` line)
    window_series: Optional[list[str]] = None  # long form: each window's series name (eval --plot's panels)

    def lengths(self) -> list[int]:
        return [self.input_length] * len(self.starts)


def make_split(series: Series, z: np.ndarray, ranges: list[tuple[int, int, int]], name: str, cfg,
               target_index: list[int], mean: np.ndarray, std: np.ndarray, season: int, context: bool,
               covariates: Optional[dict[str, np.ndarray]] = None, whole: bool = False) -> WindowSplit:
    """The windows of one split of `series` (z: its z-scored channels (T, C)): `ranges` (first row of the
    series, lo, hi) per series, windows never crossing from one series into another. A series without a window
    is skipped (counted in a warning); none left is an error. `covariates`: per-row arrays by the model's
    keyword (past (T, P), future (T, F), static (T, S), series (T,) ids), read by each window as the model
    does: past over its input rows, future over its input and horizon rows, static and series at its first.
    `whole`: the ranges are the whole file (a file of its own, or `eval --data`), not a split cut from it."""
    d = cfg.data
    L, H = d.input_length, d.horizon
    starts, skipped, diffs, names = [], [], [], []
    ids = series.ids or [str(k) for k in range(len(ranges))]
    for k, (first, lo, hi) in enumerate(ranges):
        found = window_starts((lo, hi), L, H, context, floor=first)
        if not found:
            skipped.append(ids[k])
        starts += found
        names += [ids[k]] * len(found)
        # MASE's scale: the series' seasonal differences before the split (its own rows when none come before).
        before = z[first:lo, target_index] if lo - first > season else z[lo:hi, target_index]
        if len(before) > season:
            diffs.append(np.abs(before[season:] - before[:-season]))
    window = f"one window, data.input_length + data.horizon = {L} + {H} = {L + H} rows"
    if not starts and whole:
        where = f"{counted(ranges[0][2] - ranges[0][1], 'row')}, shorter than" if len(ranges) == 1 else \
            f"each of its {len(ranges)} series is shorter than"
        raise UserError(f"{series.path}: {where} {window}; give a longer file")
    if not starts:
        first, lo, hi = ranges[0]
        have = counted(hi - lo, "row") + (f" and {lo - max(first, lo - L)} of context before them" if context else "")
        where = f"the {name} split (rows {lo}-{hi}: {have})" if len(ranges) == 1 else \
            f"every series' {name} split ({len(ranges)} series)"
        raise UserError(f"{series.path}: {where} is shorter than {window}; lower them or move data.borders / "
                        f"data.fractions")
    if skipped:
        log.warning("%s: %d of %d series have no %swindow (shorter than data.input_length + data.horizon = %d "
                    "rows there), skipped: %s", series.path, len(skipped), len(ranges), "" if whole else name + " ",
                    L + H, ", ".join(repr(i) for i in skipped[:5]) + (", ..." if len(skipped) > 5 else ""))
    tensor = torch.from_numpy(z.astype(np.float32))  # (T_rows, C)
    cols = torch.tensor(target_index, dtype=torch.long)
    diffs = np.concatenate(diffs) if diffs else np.ones((1, len(target_index)))
    scale = np.nanmean(diffs, axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    inputs = None
    if covariates:
        inputs = {}
        for key, rows in covariates.items():
            table = torch.from_numpy(rows.astype(np.int64 if key == "series" else np.float32))
            length = {"past": L, "future": L + H}.get(key)
            inputs[key] = Windows(table, starts, 0, length) if length else Rows(table, starts)
    return WindowSplit(Windows(tensor, starts, 0, L), Windows(tensor, starts, L, H, cols),
                       texts=[str(s) for s in starts], series=tensor, starts=starts, input_length=L, horizon=H,
                       target_index=list(target_index), target_names=[series.columns[i] for i in target_index],
                       mean=np.asarray(mean, dtype=np.float64), std=np.asarray(std, dtype=np.float64),
                       season=season, scale=scale, times=series.times, source=series.path,
                       quantiles=list(cfg.model.quantiles or []), inputs=inputs,
                       window_series=names if series.ids else None,
                       covers=_covers(series.path, ranges, name, L, context, whole, len(skipped)))


def _covers(path: str, ranges: list[tuple[int, int, int]], name: str, input_length: int, context: bool,
            whole: bool, skipped: int = 0) -> str:
    """The rows a split's windows read, in words: `over rows 392-480 of sines.csv: the validation split (rows
    420-480) and the 28 rows before it as input` (rows from 0, the end excluded, as data.borders counts them)."""
    if len(ranges) > 1:
        scored = f"{len(ranges) - skipped} of {len(ranges)}" if skipped else f"{len(ranges)}"
        return f"of {scored} series in {path}: " + ("every row of each" if whole else
                                                          f"the {name} split of each" +
                                                          (" and the rows before it as input" if context else ""))
    first, lo, hi = ranges[0]
    start = max(first, lo - input_length) if context else lo
    if whole:
        return f"over rows {lo}-{hi} of {path}: the whole file"
    if lo == start:
        return f"over rows {lo}-{hi} of {path}: the {name} split"
    return (f"over rows {start}-{hi} of {path}: the {name} split (rows {lo}-{hi}) and the {lo - start} rows "
            f"before it as input")


PERIODS = {3600: 24, 900: 96, 1800: 48, 600: 144, 300: 288, 60: 1440, 86400: 7, 7 * 86400: 52}


def step_seconds(times: Optional[list[str]]) -> Optional[float]:
    """The time column's usual step (the median of the first differences), in seconds; None when unknown."""
    if not times or len(times) < 2:
        return None
    from grutool.data.tables import instants

    t = instants(times[:1000])
    if t.isna().any():
        return None
    return float(t.diff().dropna().dt.total_seconds().median())


# A calendar frequency's season: business days a week, weeks a year, months and quarters a year. Every other
# frequency (hours, days, minutes ...) is a fixed step, whose season PERIODS gives.
CALENDAR_SEASONS = {"B": 5, "W": 52, "ME": 12, "MS": 12, "BME": 12, "BMS": 12, "SME": 24, "SMS": 24,
                    "QE": 4, "QS": 4, "BQE": 4, "BQS": 4, "YE": 1, "YS": 1, "BYE": 1, "BYS": 1}


def calendar_frequency(times) -> Optional[str]:
    """The pandas frequency the times keep (`pd.infer_freq`: 'B' business days, 'ME' month ends, 'QS-JAN'
    quarter starts, 'h' ...), from the last 1,000 of them (times with UTC offsets as instants in UTC); None where
    they keep none (gaps, irregular times, fewer than 3). A fixed step (the median one) cannot tell a month's end
    from the 28th, nor Friday -> Monday from a gap: forecasts of month-end rows fell on the 28th, business days'
    on weekends."""
    if times is None or len(times) < 3:
        return None
    from grutool.data.tables import instants

    t = instants([str(c).strip() for c in list(times)[-1000:]])  # with UTC offsets: instants, in UTC
    return None if t.isna().any() else stamp_frequency(t.to_numpy(dtype="datetime64[ns]"))


def stamp_frequency(stamps: np.ndarray) -> Optional[str]:
    """`calendar_frequency` of times already read: `stamps` (N,) datetime64 in time order, the last 1,000."""
    if len(stamps) < 3:
        return None
    import warnings

    import pandas as pd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return pd.infer_freq(pd.DatetimeIndex(stamps[-1000:]))
        except (ValueError, TypeError):
            return None


def monthly(step: Optional[float]) -> bool:
    """Whether a usual step of `step` seconds is a calendar month (28 to 31 days)."""
    return step is not None and 28 * 86400 <= step <= 31 * 86400


def first_gap(stamps: np.ndarray) -> Optional[tuple[int, float, float, int]]:
    """Where the steps between `stamps` (N,) datetime64, in time order, leave the usual one: (the first row
    whose step from the row before is not the usual one, that step and the usual one in seconds, how many steps
    differ), or None when every step is the usual one. A step of a day or more may differ by an hour (a DST
    change between local midnights), a month's by 3 days (28 to 31)."""
    if len(stamps) < 3:
        return None
    steps = np.diff(stamps).astype("timedelta64[ns]").astype(np.int64) / 1e9  # (N-1,) seconds
    usual = float(np.median(steps))
    slack = 3 * 86400 if usual >= 28 * 86400 else 3600 if usual >= 86400 else 0
    off = np.flatnonzero(np.abs(steps - usual) > slack)
    if not len(off):
        return None
    return int(off[0]) + 1, float(steps[off[0]]), usual, len(off)


def infer_season(times: Optional[list[str]]) -> int:
    """The seasonal period the time column's frequency suggests: hourly 24, daily 7, every 15 minutes 96 ... (1:
    none known)."""
    freq = calendar_frequency(times)
    if freq is not None and freq.split("-")[0] in CALENDAR_SEASONS:
        return CALENDAR_SEASONS[freq.split("-")[0]]
    step = step_seconds(times)
    if step is None:
        return 1
    if monthly(step):
        return 12
    return PERIODS.get(int(round(step)), 1)


def next_times(times: Optional[list[str]], horizon: int) -> Optional[list[str]]:
    """The `horizon` time stamps after the last of `times`: at the calendar frequency the times keep
    (`calendar_frequency`: month ends stay month ends, business days skip weekends), else at the column's usual
    step (None without one; a monthly column's by calendar months), written with the last time's UTC offset when
    it has one."""
    step = step_seconds(times)
    if step is None:
        return None
    import pandas as pd

    last = pd.Timestamp(str(times[-1]).strip())
    freq = calendar_frequency(times) if last.tzinfo is None else None
    if freq is not None:  # the calendar's next times: month ends, business days, quarter starts
        out = list(pd.date_range(last, periods=horizon + 1, freq=freq)[1:])
    elif monthly(step):
        out = [last + pd.DateOffset(months=k + 1) for k in range(horizon)]
    else:
        out = [last + pd.Timedelta(seconds=step * (k + 1)) for k in range(horizon)]
    if last.tzinfo is not None:
        return [t.isoformat(sep=" ") for t in out]
    fmt = "%Y-%m-%d" if step % 86400 == 0 and last == last.normalize() else "%Y-%m-%d %H:%M:%S"
    return [t.strftime(fmt) for t in out]
