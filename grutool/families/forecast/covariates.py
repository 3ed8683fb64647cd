"""Forecast covariates (data.covariates): which column plays which role, the calendar features of the time
column, and the checks that need the data. No torch at import.

Roles: the *columns* are the model's channels (read over the input window; the targets are among them);
*past* columns are read over the input window alone; *future* columns and *calendar* features are known
ahead, read over the input window and the horizon; *static* columns hold one value per series, read once per
window, beside an optional learned embedding of the series' name. Every numeric column is z-scored by the one
scaler, whose names list them in that order: columns, past, future, static (`Roles.numeric`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from grutool.errors import UserError

if TYPE_CHECKING:
    import numpy as np

    from grutool.config import Config

# The phase of each calendar feature in [0, 1), from a pandas DatetimeIndex: sin and cos of 2π·phase are its two
# inputs, so 23 h sits next to 0 h and December next to January.
PHASES = {
    "minute": lambda t: t.minute / 60.0,
    "hour": lambda t: t.hour / 24.0,
    "weekday": lambda t: t.day_of_week / 7.0,                       # Monday 0
    "day": lambda t: (t.day - 1) / t.days_in_month,
    "dayofyear": lambda t: (t.day_of_year - 1) / (365.0 + t.is_leap_year),
    "month": lambda t: (t.month - 1) / 12.0,
}


@dataclass
class Roles:
    """The columns of a forecast run by role (see the module docstring)."""

    columns: list[str]
    past: list[str]
    future: list[str]
    calendar: list[str]
    static: list[str]
    series_embedding: int = 0

    @classmethod
    def of(cls, cfg: "Config", numeric: list[str]) -> "Roles":
        """The roles of a run whose numeric columns (its scaler's names) are `numeric`."""
        cov = cfg.data.covariates
        taken = set(cov.past) | set(cov.future) | set(cov.static)
        return cls([n for n in numeric if n not in taken], list(cov.past), list(cov.future), list(cov.calendar),
                   list(cov.static), cov.series_embedding)

    @property
    def numeric(self) -> list[str]:
        """Every column read as numbers, in the scaler's order."""
        return self.columns + self.past + self.future + self.static

    @property
    def any(self) -> bool:
        return bool(self.past or self.future or self.calendar or self.static or self.series_embedding)

    @property
    def known_width(self) -> int:
        """Values per row of the known-future input: each future column, then sin and cos per calendar feature."""
        return len(self.future) + 2 * len(self.calendar)

    def index(self, names: list[str]) -> list[int]:
        where = {n: i for i, n in enumerate(self.numeric)}
        return [where[n] for n in names]


def check_config(cfg: "Config") -> None:
    """The covariate rules a config alone decides (ValueError, one line each)."""
    d = cfg.data
    cov = d.covariates
    seen: dict[str, str] = {}
    for role, cols in cov.columns().items():
        for c in cols:
            where = f"data.covariates.{role}"
            if c in seen:
                same = "twice" if seen[c] == where else f"and {seen[c]}"
                raise ValueError(f"{where}: column {c!r} is in {where} {same}; give each column one role")
            seen[c] = where
    fixed = {d.time_column: "data.time_column", d.series_column: "data.series_column"}
    for c, where in seen.items():
        if c in fixed:
            raise ValueError(f"{where}: {c!r} is {fixed[c]}; it cannot be a covariate too")
        for field in ("targets", "columns"):
            if c in (getattr(d, field) or []):
                raise ValueError(f"{where}: column {c!r} is in data.{field} too; a covariate is read, never "
                                 f"predicted: give it one role")
    if len(set(cov.calendar)) != len(cov.calendar):
        raise ValueError(f"data.covariates.calendar: a feature listed twice ({', '.join(cov.calendar)})")
    if cov.calendar and d.time_column is None:
        raise ValueError("data.covariates.calendar: calendar features come from the time column, and "
                         "data.time_column is not set; set it or remove the calendar features")
    if (cov.static or cov.series_embedding) and d.series_column is None:
        what = "data.covariates.static" if cov.static else "data.covariates.series_embedding"
        raise ValueError(f"{what}: describes each series of a long-form table, and data.series_column is not "
                         f"set (one series); set it or remove {what.rsplit('.', 1)[1]}")


def calendar(times: list[str], names: list[str]) -> "np.ndarray":
    """(T, 2K) float64: sin and cos of each feature's phase at each of `times` (K = len(names))."""
    import numpy as np
    import pandas as pd

    if not names:
        return np.zeros((len(times), 0))
    try:
        t = pd.DatetimeIndex(pd.to_datetime(pd.Series(times), format="mixed"))
    except ValueError:  # several UTC offsets (a DST change): each time's own wall clock, as the offset says
        t = pd.DatetimeIndex([pd.Timestamp(str(x).strip()).tz_localize(None) for x in times])
    cols = []
    for name in names:
        phase = 2 * math.pi * np.asarray(PHASES[name](t), dtype=np.float64)
        cols += [np.sin(phase), np.cos(phase)]
    return np.stack(cols, 1)


def check_calendar(features: "np.ndarray", names: list[str], path: str, step: Optional[float]) -> None:
    """A calendar feature that has one value on every training row (hour on daily data) is refused: it could
    tell the model nothing."""
    import numpy as np

    for k, name in enumerate(names):
        block = features[:, 2 * k:2 * k + 2]
        if len(block) and np.allclose(block, block[:1], atol=1e-9):
            every = f" (the time column steps {_duration(step)})" if step else ""
            raise UserError(f"data.covariates.calendar: {name!r} is the same on every training row of "
                            f"{path}{every}; remove it", "data.covariates.calendar")


def check_static(values: "np.ndarray", names: list[str], parts: list[tuple[int, int]], ids: list[str],
                 path: str) -> None:
    """Each static column holds one value per series."""
    import numpy as np

    for k, name in enumerate(names):
        for (lo, hi), sid in zip(parts, ids):
            col = values[lo:hi, k]
            if len(col) and not np.allclose(col, col[0], equal_nan=True):
                from grutool.data.loading import trained_run

                if trained_run():  # the run's roles are fixed: the input is what can change
                    raise UserError(f"{path}: column {name!r} changes within series {sid!r}; the run reads it as a "
                                    f"static covariate (data.covariates.static), one value per series: give each "
                                    f"series' rows one value of it")
                raise UserError(f"data.covariates.static: column {name!r} changes within series {sid!r} of {path}; "
                                f"a static covariate holds one value per series (move it to past or future)",
                                "data.covariates.static")


def _duration(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds:g} s"
