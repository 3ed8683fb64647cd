"""Time-series forecasting: a table of numeric columns in time order -> the next `horizon` rows.

What the run directory holds: labels.json (the predicted columns), scaler.json (the input columns in order,
with the z-score fitted on their training rows; `grutool.data.scaling.Standardizer`); vocab.json has no
tokens (only <pad> and <unk>: a forecaster reads numbers). Every input of
`predict` (`infer --file`, a `serve` request's text) is a table as text: a header line naming the run's
columns (and its time column), then at least `input_length` rows; the forecast is the `horizon` rows after
its last one, with their times when the table has a time column.

Covariates (data.covariates, grutool.families.forecast.covariates) are more columns of the same scaler, read
never predicted; the windows carry them as the model's keyword inputs (`WindowSplit.inputs`). A model with
known-future columns needs their values over the horizon: an input table then ends with those `horizon` rows,
their time and future columns filled, the other columns empty (`_future_rows`). Calendar features are computed
from the times, the forecast's included. series.json (data.covariates.series_embedding) names the series the
embedding knows.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from grutool.errors import UserError, clipped, counted, either
from grutool.families.base import Prepared, Task
from grutool.families.rules import TEXT_ONLY, check_text_only

log = logging.getLogger("grutool")

if TYPE_CHECKING:
    import numpy as np

    from grutool.config import Config

FORMATS = ("auto", "csv", "tsv", "parquet")
FILLS = ("ffill", "interpolate")  # the data.missing policies a forecast takes besides error


def read_series(cfg: "Config", path: str, columns: Optional[list[str]] = None, table=None):
    """The numeric columns of one file (or of a `table` already read) as a `Series`, in time order by
    data.timestamps, missing values handled by data.missing; `columns`: the run's numeric columns (its scaler's
    names; default: data.columns, else every column but the time, series and covariate columns, then the
    covariates' columns: past, future, static)."""
    import numpy as np

    from grutool.data.tables import order_fix, read_table, time_order
    from grutool.families.forecast.data import Series

    d = cfg.data
    cov = d.covariates
    if table is None:
        table = read_table(path, d.format, header=d.header, column_names=d.column_names)
    for key in ("time_column", "series_column"):  # checked first: else a missing time column's cells read as numbers
        if getattr(d, key) is not None:
            table.column(getattr(d, key), f"data.{key}")
    role = {c: f"data.covariates.{r}" for r, cols in cov.columns().items() for c in cols}
    names = columns or (d.columns or [c for c in table.columns if c not in (d.time_column, d.series_column)
                                      and c not in role]) + cov.past + cov.future + cov.static
    option = "data.columns"  # the columns read (all but the time, series and covariate ones, unless it lists them)
    values = np.stack([table.numeric(n, d.missing, role.get(n, option), FILLS) for n in names], 1)  # (T, C)
    if d.series_column is not None:
        return _long_form(cfg, table, list(names), values)
    times = None
    if d.time_column is not None:
        stamps = table.stamps(d.time_column)
        order, moved, dropped, bad = time_order(stamps, d.timestamps)
        if bad is not None:
            table.refuse_order(d.time_column, stamps, bad, order_fix(d.timestamps))
        _report_order(table.path, d.timestamps, moved, dropped)
        _report_gaps(table, d.time_column, stamps, [order])
        raw = table.time_texts(d.time_column)
        times = [raw[r] for r in order]
        values = values[order]
    return Series(str(path), list(names), _fill(cfg, str(path), values), times)


FEW_VALIDATION_WINDOWS = 10  # fewer: the validation figures that choose the best epoch are a handful of windows



def _report_order(path: str, policy: str, moved: int, dropped: int) -> None:
    """The data.timestamps warning: how many rows the policy moved and dropped."""
    if moved or dropped:
        rows = lambda n: f"{n} row{'s' if n != 1 else ''}"
        done = [f"sorted {rows(moved)} that came out of time order"] if moved else []
        done += [f"dropped {rows(dropped)} repeating a timestamp (the last of each kept)"] if dropped else []
        log.warning("%s: %s (data.timestamps: %s)", path, " and ".join(done), policy)


def _report_gaps(table, column: str, stamps, series: list) -> None:
    """One warning when the time column's steps are not all the usual one (a missing hour in hourly rows,
    irregular times), naming the first place: the model reads rows as consecutive steps, gaps unfilled.
    `series`: each series' rows in time order (wide form: one)."""
    from grutool.data.loading import trained_run
    from grutool.families.forecast.data import first_gap, stamp_frequency

    # a calendar frequency's steps differ and leave no gap: business days' Friday -> Monday, months' 28-31 days
    found = [(rows, gap) for rows in series if (gap := first_gap(stamps[rows])) is not None
             and stamp_frequency(stamps[rows]) is None]
    if not found:
        return
    rows, (at, step, usual, _) = found[0]
    count = sum(gap[3] for _, gap in found)
    row = int(rows[at])
    steps = sum(max(len(r) - 1, 0) for r in series)
    fix = "add the missing rows" + ("" if trained_run() else ", their cells empty, and set data.missing")
    log.warning("%s: %r is %s after the row before, the usual step %s (%d of %d steps differ); rows are read as "
                "consecutive steps, gaps unfilled: %s", table.location(row, column), table.strings(column)[row],
                _duration(step), _duration(usual), count, steps, fix)


def _duration(seconds: float) -> str:
    from grutool.families.forecast.covariates import _duration as duration

    return duration(seconds) if seconds > 0 else f"{seconds:g} s"


def _long_form(cfg: "Config", table, names: list[str], values):
    """Long form: the rows of each series (data.series_column) gathered in order of first appearance, each in
    time order (by data.timestamps, per series) and filled by data.missing on its own."""
    import numpy as np

    from grutool.data.numeric import rows_by_id
    from grutool.data.tables import order_fix, time_order
    from grutool.families.forecast.data import Series

    d = cfg.data
    groups = rows_by_id(table, table.column(d.series_column, "data.series_column"), "data.series_column", "series")
    times = table.time_texts(d.time_column) if d.time_column is not None else None
    if times is not None:
        stamps = table.stamps(d.time_column)
        moved = dropped = 0
        for name, rows in groups.items():
            order, m, k, bad = time_order(stamps[rows], d.timestamps)
            if bad is not None:
                table.refuse_order(d.time_column, stamps, (rows[bad[0]], rows[bad[1]]),
                                   order_fix(d.timestamps).replace("rows must", "each series' rows must"),
                                   f" of series {name!r}")
            groups[name] = [rows[i] for i in order]
            moved, dropped = moved + m, dropped + k
        _report_order(table.path, d.timestamps, moved, dropped)
        _report_gaps(table, d.time_column, stamps, list(groups.values()))
    order = [r for rows in groups.values() for r in rows]
    parts, at = [], 0
    for rows in groups.values():
        parts.append((at, at + len(rows)))
        at += len(rows)
    filled = np.concatenate([_fill(cfg, str(table.path), values[rows], name) for name, rows in groups.items()])
    return Series(str(table.path), names, filled, [times[r] for r in order] if times else None, parts, list(groups))


def _fill(cfg: "Config", path: str, values, series: Optional[str] = None):
    """`values` (T, C) of one series filled by data.missing. In the file data.borders / data.fractions cut into
    splits, each split's rows are filled from its own rows and the earlier ones only: an `interpolate` (or, at a
    split's start, an `ffill`) would otherwise fill the last training rows from validation values, which the
    scaler and the training windows would then see."""
    import numpy as np

    from grutool.data.tables import fill_missing
    from grutool.families.forecast.data import split_rows

    d = cfg.data
    if d.missing not in ("ffill", "interpolate") or not (_one_file(cfg) and _same_file(path, d.train)):
        return fill_missing(values, d.missing)
    ends = sorted({hi for _, hi in split_rows(cfg, len(values), series).values()} | {len(values)})
    parts, lo = [], 0
    for hi in ends:
        if hi > lo:  # rows [lo, hi), filled knowing rows [0, hi) only
            parts.append(fill_missing(values[:hi], d.missing)[lo:hi])
        lo = hi
    return np.concatenate(parts) if parts else fill_missing(values, d.missing)


def resolve_columns(cfg: "Config", series) -> tuple[list[str], list[str]]:
    """(input columns, target columns) of the data.setting."""
    d = cfg.data
    cov = d.covariates
    taken = set(cov.past) | set(cov.future) | set(cov.static)
    names = [c for c in series.columns if c not in taken]  # the channels: covariates are never predicted
    targets = d.targets or [names[-1]]
    for t in targets:
        if t not in names:
            import difflib

            close = difflib.get_close_matches(t, names, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UserError(f"data.targets: {series.path} has no column {t!r}{hint} among the input columns "
                            f"{', '.join(names)}", "data.targets")
    if d.setting == "M":
        return names, names
    if d.setting == "S":
        return list(targets), list(targets)
    return names, list(targets)


class ForecastTask(Task):
    scored = {**Task.scored,
              "data.horizon": "how many rows each window forecasts",
              "data.borders": "where the validation rows lie",
              "data.fractions": "where the validation rows lie",
              "data.setting": "which columns are forecast",
              "data.targets": "which columns are forecast",
              "data.train": "the file the validation rows are cut from"}
    name = "forecast"
    monitors = ("mse", "mae", "rmse", "r2", "loss")
    owns = {"data": ("input_length", "horizon", "setting", "targets", "columns", "borders", "fractions", "season",
                     "series_column", "covariates", "timestamps"),
            "model": ("segment_length", "decoder", "channel_independent", "normalization", "loss", "quantiles")}
    # A forecaster reads numeric columns straight into its segment projection: no text, no token embedding.
    ignores = {"data": (*TEXT_ONLY["data"], "label_column", "tag_column", "scheme", "channels", "id_column",
                        "time_delta"),
               "model": (*TEXT_ONLY["model"], "embedding_dim", "embedding_dropout", "layer_norm", "residual"),
               "train": TEXT_ONLY["train"]}
    defaults = {"model": {"bidirectional": False}}  # the past is read forwards, to its last row
    length_setting = "data.input_length"  # every window is that many rows
    outputs = "targets"
    model_outputs = "predictions"  # values, not scores to softmax (`shapes` names them so)
    file_inputs = "data"  # every input is a table: `infer --file` reads any file, and stdin, as one
    renderer = "forecast"
    exporter = "forecast"
    traces_real_examples = True
    example = {"data": {"train": "data/sines/sines.csv", "validation": "data/sines/sines.csv",
                        "test": "data/sines/sines.csv", "time_column": "date", "fractions": [0.7, 0.1, 0.2],
                        "input_length": 48, "horizon": 24},
               "model": {"hidden_size": 32, "segment_length": 12, "decoder": "parallel",
                         "channel_independent": True, "normalization": "last"},
               "train": {"monitor": "mse", "epochs": 5, "batch_size": 64}}
    inputs = {"numeric": example}  # what a forecaster always reads: `init forecast --input numeric` is this

    # --- config -------------------------------------------------------------------------------

    def check_task(self, cfg: "Config") -> None:
        d, m = cfg.data, cfg.model
        check_text_only(cfg)  # before `ignores`' message: these are refused alike on every numeric family
        if d.format not in FORMATS:
            raise ValueError(f"data.format: a forecast reads a table: {', '.join(FORMATS)} (got '{d.format}')")
        if d.missing == "mask":
            raise ValueError(f"data.missing: mask is for numeric sequences; a forecast takes {either(('error', *FILLS))}")
        for name in ("train", "validation", "test"):
            if isinstance(getattr(d, name), list):
                raise ValueError(f"data.{name}: one file")
        if d.borders is not None and d.fractions is not None:
            raise ValueError("data.borders: contradicts data.fractions; split by one of them")
        if d.borders is not None:
            if not 1 <= len(d.borders) <= 3 or any(b <= a for a, b in zip([0] + d.borders, d.borders)):
                raise ValueError(f"data.borders: the rows where train, validation and test end, increasing "
                                 f"(e.g. [8640, 11520, 14400]); got {d.borders}")
        if d.fractions is not None:
            if not 2 <= len(d.fractions) <= 3 or any(f <= 0 for f in d.fractions) or sum(d.fractions) > 1 + 1e-9:
                raise ValueError(f"data.fractions: [train, validation, test] fractions, each > 0, summing to at "
                                 f"most 1 (e.g. [0.7, 0.1, 0.2]); got {d.fractions}")
            if len(d.fractions) == 3 and abs(sum(d.fractions) - 1) > 1e-6:
                # validation is the rows between train and test (the published loaders' rounding): [0.6, 0.1, 0.1]
                # gave it 0.3 of the file, not the 0.1 asked for
                raise ValueError(f"data.fractions: three fractions cut the whole file (train and test rounded down, "
                                 f"validation the rows between them), so they sum to 1; got {d.fractions} (sum "
                                 f"{sum(d.fractions):.4g}); to leave rows out, give data.borders (row numbers)")
        if d.borders is not None or d.fractions is not None:
            key, cuts = ("data.borders", d.borders) if d.borders is not None else ("data.fractions", d.fractions)
            for k, name in enumerate(("validation", "test"), 2):
                if getattr(d, name) is not None and len(cuts) < k:
                    example = "[8640, 11520, 14400]" if d.borders is not None else "[0.7, 0.1, 0.2]"
                    raise ValueError(f"{key}: {cuts} cuts no {name} split, and data.{name} is set; give {k} "
                                     f"{'borders' if d.borders is not None else 'fractions'} (e.g. {example}) or "
                                     f"remove data.{name}")
            for name in ("validation", "test"):
                value = getattr(d, name)
                if value is not None and not _same_file(value, d.train):
                    raise ValueError(f"data.{name}: with data.borders or data.fractions every split is cut from "
                                     f"data.train ({d.train}); set it to that file or remove it")
        if d.setting == "M" and d.targets is not None:
            raise ValueError("data.targets: setting M predicts every input column; set data.setting to MS or S, "
                             "or remove data.targets")
        if d.input_length % m.segment_length:
            raise ValueError(f"model.segment_length: {m.segment_length} does not divide data.input_length "
                             f"{d.input_length}; pick a divisor (e.g. {_divisor(d.input_length, m.segment_length)})")
        if d.season is not None and d.season > d.input_length:  # the baseline was dropped, and MASE was MAE
            raise ValueError(f"data.season: {d.season} rows, longer than data.input_length ({d.input_length}); the "
                             f"seasonal naive baseline repeats the input's last season, and MASE scales by it: "
                             f"lower data.season, or raise data.input_length to at least {d.season}")
        if m.quantiles is not None:
            q = m.quantiles
            if not q or any(not 0 < x < 1 for x in q) or any(b <= a for a, b in zip(q, q[1:])):
                raise ValueError(f"model.quantiles: increasing levels, each between 0 and 1 (e.g. [0.1, 0.5, 0.9]); "
                                 f"got {q}")
        if m.bidirectional:
            raise ValueError("model.bidirectional: a forecaster reads the past forwards; set it to false")
        from grutool.families.forecast.covariates import check_config

        check_config(cfg)
        if m.decoder == "autoregressive" and not m.channel_independent and d.setting == "MS":
            raise ValueError("model.decoder: autoregressive feeds each prediction back as the next input, and "
                             "setting MS predicts fewer columns than it reads; set model.channel_independent: "
                             "true or data.setting M or S")

    # --- data ---------------------------------------------------------------------------------

    def prepare(self, cfg: "Config", saved: Any = None) -> Prepared:
        import numpy as np

        from grutool.data.scaling import Standardizer
        from grutool.data.vocab import PAD, UNK, LabelVocab, Vocab

        from grutool.families.forecast.covariates import Roles, calendar, check_calendar

        d = cfg.data
        columns = list(saved.extra["scaler"].names) if saved else None
        series = read_series(cfg, d.train, columns)
        if saved:
            targets = list(saved.labels.itos)
        else:
            inputs, targets = resolve_columns(cfg, series)
            series = _select(series, Roles.of(cfg, inputs).numeric)
        roles = Roles.of(cfg, series.columns)
        ranges = _ranges(cfg, series, "train")
        train = np.concatenate([series.values[lo:hi] for _, lo, hi in ranges])
        # Every numeric column, covariates included, scaled by the training rows alone.
        scaler = saved.extra["scaler"] if saved else Standardizer.fit(series.columns, train, series.path)
        extra = {"scaler": scaler}
        if roles.series_embedding:
            extra["series"] = saved.extra["series"] if saved else LabelVocab(series.ids)
        if roles.calendar and not saved:
            rows = [r for _, lo, hi in ranges for r in range(lo, hi)]
            from grutool.families.forecast.data import step_seconds

            check_calendar(calendar([series.times[r] for r in rows], roles.calendar), roles.calendar, series.path,
                           step_seconds(series.times[series.parts[0][0]:series.parts[0][1]]))
        prepared = Prepared(Vocab([PAD, UNK]), LabelVocab(targets), extra=extra)
        prepared.splits["train"] = self._split(cfg, prepared, series, "train")
        for name in ("validation", "test"):
            source = getattr(d, name)
            if source is None:
                continue
            if _one_file(cfg):
                prepared.splits[name] = self._split(cfg, prepared, series, name)
            else:
                prepared.splits[name] = self.encode_split(cfg, prepared, source, name)
        few = len(prepared.splits["validation"]) if "validation" in prepared.splits else None
        if few is not None and few < FEW_VALIDATION_WINDOWS:
            log.warning("validation: %d window%s: the best epoch and early stopping rest on %s; give the split "
                        "more rows (data.borders or data.fractions) or shorten data.horizon or data.input_length",
                        few, "" if few == 1 else "s", "it" if few == 1 else "them")
        return prepared

    def _split(self, cfg: "Config", vocabs: Any, series, name: str):
        """The windows of split `name` of `series` (the run's input columns): its rows by data.borders /
        data.fractions when `series` is the one file they cut, else every row (`_is_split`)."""
        from grutool.families.forecast.data import infer_season, make_split

        from grutool.families.forecast.covariates import Roles

        d = cfg.data
        scaler = vocabs.extra["scaler"]
        z = scaler.transform(series.values)  # (T, C + covariate columns)
        cut = _is_split(cfg, series, name)
        context = cut and name != "train"
        index = [scaler.names.index(t) for t in vocabs.labels.itos]
        lo, hi = series.parts[0]
        season = d.season or infer_season(series.times[lo:hi] if series.times else None)
        roles = Roles.of(cfg, scaler.names)
        covariates = _covariates(roles, series, z, vocabs.extra.get("series"))
        channels = z[:, :len(roles.columns)] if roles.any else z  # (T, C)
        return make_split(series, channels, _ranges(cfg, series, name), name, cfg, index,
                          [scaler.mean[i] for i in index], [scaler.std[i] for i in index], season, context,
                          covariates, whole=not cut)

    def encode_split(self, cfg: "Config", vocabs: Any, source: Any, name: str):
        """Split `name`'s windows of `source`: with data.borders / data.fractions, the rows they give that split;
        a `name` that is no split (`eval --data FILE` passes the file) scores every window of the whole file."""
        series = read_series(cfg, source, list(vocabs.extra["scaler"].names))
        return self._split(cfg, vocabs, series, name)

    def vocabularies(self, cfg: "Config") -> dict[str, tuple[str, type]]:
        from grutool.data.scaling import Standardizer
        from grutool.data.vocab import LabelVocab

        files = {"labels": ("labels.json", LabelVocab), "scaler": ("scaler.json", Standardizer)}
        if cfg.data.covariates.series_embedding:
            files["series"] = ("series.json", LabelVocab)  # the series the embedding knows, by name
        return files

    def served_vocabularies(self, run) -> dict[str, list[str]]:
        """A series embedding's series, by name: the only ones a request's table may hold (another is refused)."""
        series = run.extra.get("series")
        return {"series": list(series.itos)} if series is not None else {}

    throughput_unit = "windows"  # every window is data.input_length rows: tokens would only scale windows

    def rate_count(self, batch) -> int:
        return len(batch.lengths)  # its windows: every one data.input_length rows, so rows only scaled them

    def rate_unit(self, cfg: "Config") -> str:
        # train's speed in windows, as `bench --config` counts them (it said rows/s: the windows' input rows,
        # 252,538 rows/s for a training split of 420 rows)
        return "windows"

    def synthetic_sizes(self, cfg: "Config", prepared: Prepared) -> dict[str, int]:
        """The input columns (covariates aside: `synthetic` adds the config's own) and the predicted ones (the
        vocabulary has no tokens to count); with a series embedding, the series it has a row for."""
        from grutool.families.forecast.covariates import Roles

        sizes = {"vocab_size": len(Roles.of(cfg, list(prepared.extra["scaler"].names)).columns),
                 "num_classes": len(prepared.labels)}
        series = prepared.extra.get("series")
        if series is not None:
            sizes["num_series"] = len(series)
        return sizes

    def synthetic_length(self, cfg: "Config", prepared: Optional[Prepared] = None) -> int:
        return cfg.data.input_length

    def served_input(self, cfg: "Config") -> dict:
        d = cfg.data
        return {"time_column": d.time_column, "series_column": d.series_column, "input_length": d.input_length,
                "horizon": d.horizon, "setting": d.setting, "quantiles": cfg.model.quantiles}

    def input_sizes(self, cfg: "Config", prepared: Prepared) -> dict[str, int]:
        """The channels the windows hold and, apart, the covariate columns read beside them (sines_covariates:
        channels 1, covariates 2; the scaler holds all 3)."""
        from grutool.families.forecast.covariates import Roles

        scaler = prepared.vocabulary("scaler")
        roles = Roles.of(cfg, list(scaler.names))
        sizes = {"channels": len(roles.columns)}
        if len(scaler) > len(roles.columns):
            sizes["covariates"] = len(scaler) - len(roles.columns)
        return sizes

    def served_form(self, run) -> str:
        """One csv table per text: its header and how many rows the model reads."""
        d = run.config.data
        # the order infer reads a table's columns in (read_inputs): the time, the series (long form), then the values
        header = ",".join([c for c in (d.time_column, d.series_column) if c] + list(run.extra["scaler"].names))
        rows = f"at least its last {counted(d.input_length, 'row')} (data.input_length)"
        if d.covariates.future:
            rows += f", then the {counted(d.horizon, 'row')} to forecast with {', '.join(d.covariates.future)} filled"
        return f"a forecaster reads one csv table per text, as one JSON string: a header line ('{header}') and {rows}"

    def served_shorter(self, run) -> str:
        """A table longer than the bound: the model reads only its last input_length rows (of each series)."""
        d = run.config.data
        rows = (f"its last {counted(d.input_length, 'row')}{' of each series' if d.series_column else ''} "
                f"(data.input_length)")
        if d.covariates.future:
            rows += f", then the {counted(d.horizon, 'row')} to forecast"
        return f"send the table's header line and {rows}: the model reads no earlier row"

    def served_chars(self, run) -> int:
        """A csv text of one input window: its rows (with the known-future ones of the horizon: input_length +
        horizon) and a header, the time and every column the run scales, each up to 24 characters, plus room
        for a few columns it ignores (ETTh1's 720 rows of 8 columns take ~106,000 characters)."""
        d = run.config.data
        rows = d.input_length + d.horizon + 1
        return rows * 24 * (len(run.extra["scaler"].names) + 1) + 1_000

    def synthetic(self, cfg: "Config", lengths: list[int], vocab_size: int, num_classes: int, generator,
                  num_chars: int = 0, num_series: int = 1):
        """`bench --config`: `vocab_size` columns of random values (the last `num_classes` predicted), one
        window per entry of `lengths` (each of data.input_length rows: a window's length is fixed), all of
        one series (a series embedding still gets `num_series` rows)."""
        import torch

        from grutool.data.scaling import Standardizer
        from grutool.data.vocab import PAD, UNK, LabelVocab, Vocab
        from grutool.families.forecast.data import Series, make_split

        from grutool.families.forecast.covariates import Roles

        d = cfg.data
        c = max(1, vocab_size)
        k = min(c, max(1, num_classes)) if d.setting != "M" else c
        cov = d.covariates  # each covariate column random too, the static ones constant
        roles = Roles.of(cfg, [f"c{i}" for i in range(c)] + cov.past + cov.future + cov.static)
        names = roles.numeric
        extra = {"scaler": Standardizer(names, [0.0] * len(names), [1.0] * len(names))}
        if roles.series_embedding:
            extra["series"] = LabelVocab([f"s{i}" for i in range(max(1, num_series))])
        vocabs = Prepared(Vocab([PAD, UNK]), LabelVocab(roles.columns[c - k:]), extra=extra)
        rows = len(lengths) + d.input_length + d.horizon - 1
        values = torch.randn(rows, len(names), generator=generator).double().numpy()
        times = None
        if roles.calendar:  # hourly rows: every calendar feature varies
            import pandas as pd

            times = [str(t) for t in pd.date_range("2024-01-01", periods=rows, freq="h")]
        values[:, roles.index(roles.static)] = values[:1, roles.index(roles.static)]  # one value per series
        series = Series("synthetic", names, values, times, ids=["s0"])
        covariates = _covariates(roles, series, values, extra.get("series"))
        split = make_split(series, values[:, :c], [(0, 0, rows)], "train", cfg, list(range(c - k, c)), [0.0] * k,
                           [1.0] * k, 1, False, covariates)
        return vocabs, split

    # --- model --------------------------------------------------------------------------------

    def build_model(self, cfg: "Config", vocabs: Any):
        from grutool.families.forecast.covariates import Roles
        from grutool.families.forecast.model import Forecaster

        roles = Roles.of(cfg, list(vocabs.extra["scaler"].names))
        inputs = roles.columns
        series = vocabs.extra.get("series")
        return Forecaster.from_config(cfg, len(inputs), [inputs.index(t) for t in vocabs.labels.itos], roles,
                                      len(series) if series is not None else 0)

    def metrics(self, split):
        from grutool.families.forecast.metrics import ForecastMetrics

        return ForecastMetrics(split)

    def served_labels(self, run) -> Optional[list[str]]:
        return list(run.labels.itos)

    # --- prediction ---------------------------------------------------------------------------

    def infer_batch(self, model, batch, **options):
        # (B, H, T) z-scored ((B, H, T, Q): quantiles); the covariates ride in the batch's extra inputs.
        return model(batch.ids, batch.lengths, **batch.extra_inputs())[0].float().cpu()

    def read_inputs(self, cfg: "Config", source: str, vocabs: Any = None) -> list[str]:
        """`infer --file` (`-`: stdin): the table's last input_length rows as one input (csv text with its header),
        in time order by data.timestamps; long form (data.series_column), one input per series, each its own
        last rows. With data.covariates.future the table ends with the `horizon` rows to forecast (their future
        columns filled, the others empty): the last input_length + horizon rows (with data.missing ffill or
        interpolate, back to each column's last value before them, which fills a gap at their start). Every row's
        time is checked in order by data.timestamps, not only those kept. With the run's saved
        vocabularies (`vocabs`) the rows kept are read as `predict` reads them, so a bad cell is named by its
        place in the file (`recent.csv:31:2`), not in the text handed on."""
        import numpy as np

        from grutool.data.tables import order_fix, read_table, time_order

        from grutool.families.forecast.covariates import Roles

        d = cfg.data
        table = read_table(source, d.format, header=d.header, column_names=d.column_names)
        columns = list(vocabs.extra["scaler"].names) if vocabs is not None else None
        roles = Roles.of(cfg, columns) if columns is not None else None
        _check_header(cfg, table, columns)
        frame = table.frame
        keep = d.input_length + (d.horizon if d.covariates.future else 0)
        groups = {None: np.arange(len(frame))}
        if d.series_column is not None:  # series as training reads them ('s1 ' is 's1')
            from grutool.data.numeric import rows_by_id

            groups = {key: np.array(rows) for key, rows in rows_by_id(
                table, table.column(d.series_column, "data.series_column"), "data.series_column", "series").items()}
        texts = []
        for key, rows in groups.items():
            if d.time_column is not None:  # every row, not only those kept: else the last rows need not be the latest
                stamps = table.stamps(d.time_column)[rows]
                order, _, _, bad = time_order(stamps, d.timestamps)
                if bad is not None:
                    what = "" if key is None else f" of series {key!r}"
                    table.subset(rows).refuse_order(d.time_column, stamps, bad, order_fix(d.timestamps), what)
                if d.timestamps != "error" and not d.covariates.future:
                    rows = rows[order]
            kept = rows[-keep:]
            if columns is not None:
                name = table.path if key is None else f"{table.path}, series {key!r}"
                kept = rows[_fill_start(cfg, table.subset(rows), columns, len(rows) - len(kept)):]
                _read_input(cfg, roles, columns, table.subset(kept), name)
            texts.append(frame.iloc[kept].to_csv(index=False))
        return texts

    def predict(self, predictor, texts: list[str], batch_size: int = 64, **options) -> list[dict]:
        """One forecast per table text: the next `horizon` rows of the target columns, in their own units."""
        import numpy as np
        import torch

        from grutool.families.forecast.covariates import Roles, calendar
        from grutool.families.forecast.data import next_times
        from grutool.jsonsafe import float32_values

        run, cfg = predictor.run, predictor.cfg
        scaler, targets = run.extra["scaler"], list(run.labels.itos)
        inputs = list(scaler.names)
        roles = Roles.of(cfg, inputs)
        L, H = cfg.data.input_length, cfg.data.horizon
        windows, stamps, names, extras = [], [], [], []
        for k, text in enumerate(texts):
            name = predictor.input_name(k)
            # a file's rows (`sources`) were read and said by `read_inputs`, by the file's own lines: their warnings
            # again here would name the lines of this text (a gap said twice, the second time at the wrong line)
            with _warned_before(bool(predictor.sources and k < len(predictor.sources) and predictor.sources[k])):
                table = _text_table(cfg, text, name)
                _check_header(cfg, table, inputs)
                series, ahead = _read_input(cfg, roles, inputs, table, name)
            z = scaler.transform(series.values)  # (T, C + covariate columns)
            _fits_float32(z, series, scaler.names, name)
            windows.append(torch.from_numpy(z[-L:, :len(roles.columns)]).float())  # (L, C)
            times = ahead.times if ahead is not None else next_times(series.times, H)
            stamps.append(times)
            names.append(series.ids[0] if series.ids else None)
            covs = _covariates(roles, series, z, run.extra.get("series")) or {}
            extra = {}
            if "past" in covs:
                extra["past"] = covs["past"][-L:]  # (L, P)
            if "future" in covs:
                if roles.calendar and times is None:
                    raise UserError(f"{name}: the model reads calendar features of the forecast's times, and "
                                    f"rows without times ({counted(len(series.values), 'row')}) give no time step "
                                    f"to extend; give rows with times")
                user = scaler.transform(ahead.values, roles.index(roles.future)) if roles.future else \
                    np.zeros((H, 0))
                later = np.concatenate([user, calendar(times or [], roles.calendar)], 1)  # (H, F)
                extra["future"] = np.concatenate([covs["future"][-L:], later], 0)  # (L + H, F)
            for key in ("static", "series"):
                if key in covs:
                    extra[key] = covs[key][-1]  # one per series: the last row's
            extras.append({key: torch.from_numpy(np.asarray(v, dtype=np.int64 if key == "series" else np.float32))
                           for key, v in extra.items()})
        index = [inputs.index(t) for t in targets]
        mean, std = np.asarray(scaler.mean)[index], np.asarray(scaler.std)[index]  # (T,) each
        results = []
        with torch.no_grad():
            for j in range(0, len(windows), batch_size):
                x = torch.stack(windows[j:j + batch_size]).to(predictor.device)  # (B, L, C)
                lengths = torch.full((len(x),), L, dtype=torch.long)
                covariates = {key: torch.stack([e[key] for e in extras[j:j + batch_size]]).to(predictor.device)
                              for key in extras[j]}  # past (B, L, P), future (B, L + H, F), static, series
                z = predictor.model(x, lengths, **covariates)[0].float().cpu().numpy()  # (B, H, T[, Q]) z-scores
                levels = cfg.model.quantiles
                bands = None
                if levels:  # (B, H, T, Q): the point forecast is the quantile nearest 0.5
                    bands = z
                    z = z[..., min(range(len(levels)), key=lambda i: abs(levels[i] - 0.5))]
                y = float32_values(z, mean, std)  # [B][H][T] in the columns' units, float32's digits
                # Every band of the batch in one call ([Q][B][H][T]): one vectorised search, not one per quantile
                # and window; each value is found on its own, so the bands are the same.
                qs = float32_values(np.moveaxis(bands, -1, 0), mean, std) if bands is not None else None
                for b, rows in enumerate(y):
                    r = {"time_column": cfg.data.time_column, "columns": targets, "times": stamps[j + b],
                         "forecast": rows}
                    if names[j + b] is not None:  # long form: which series
                        r["series"] = names[j + b]
                    if qs is not None:
                        r["quantiles"] = {f"{q:g}": qs[i][b] for i, q in enumerate(levels)}
                    results.append(r)
        return results


def _read_input(cfg: "Config", roles, columns: list[str], table, name: str):
    """(its `Series`, its `Ahead` or None) of one input table (`name`: how errors call it), read as training
    reads its files: its rows of one series, at least input_length of them."""
    L = cfg.data.input_length
    table, ahead = _future_rows(cfg, roles, table, name) if roles.future else (table, None)
    series = read_series(cfg, name, columns, table=table) if len(table) else None
    if series is not None and len(series.parts) > 1:
        raise UserError(f"{name}: rows of {len(series.parts)} series ({', '.join(series.ids[:5])}); "
                        f"give the rows of one series per input")
    if series is None or len(series.values) < L:
        rows = 0 if series is None else len(series.values)
        raise UserError(f"{name}: {rows} row{'' if rows == 1 else 's'}, but the model reads the last "
                        f"{L} (data.input_length); give at least {counted(L, 'row')}")
    if cfg.data.missing in FILLS:  # a column with no value at all stays NaN: the forecast would be NaN, exit 0
        import numpy as np

        empty = [c for c, col in zip(series.columns, series.values.T) if np.isnan(col).all()]
        if empty:
            raise UserError(f"{name}: column {empty[0]!r} has no value in any of its {len(series.values)} rows, so "
                            f"the run's data.missing {cfg.data.missing} has nothing to fill it from; give it at "
                            f"least one value")
    return series, ahead


@contextlib.contextmanager
def _warned_before(yes: bool):
    """While reading an input whose warnings were given already (`yes`), none again."""
    def quiet(record: logging.LogRecord) -> bool:  # a logger takes a plain callable as a filter
        return record.levelno < logging.WARNING

    if yes:
        log.addFilter(quiet)
    try:
        yield
    finally:
        log.removeFilter(quiet)


def _fits_float32(z, series, names: list[str], name: str) -> None:
    """A value whose z-score float32 cannot hold (1e39, or 1e300 in any column), refused by its row and column:
    it became inf in the model's input, and the forecast NaN (null in --jsonl, exit 0; 200 from serve)."""
    import numpy as np

    beyond = np.abs(z) > np.finfo(np.float32).max
    if beyond.any():
        row, c = (int(i) for i in np.argwhere(beyond)[0])
        at = f"at {series.times[row]}" if series.times else f"in row {row + 1} of the {counted(len(z), 'row')} read"
        raise UserError(f"{name}: column {names[c]!r} {at}: {float(series.values[row, c]):g} is beyond what the "
                        f"model's float32 inputs hold once standardised (about ±3.4e38); check the value")


def _fill_start(cfg: "Config", table, columns: list[str], start: int) -> int:
    """The first row of `table` (one series, in time order) that `infer --file` hands on, for the window that
    starts at row `start`: `start` itself, or with data.missing ffill / interpolate and a column missing from the
    window's first row on, the row of that column's last value before it, so the cell is filled from the file's
    earlier rows as training (and `serve`, given the whole table) fills it, not from the window's later rows."""
    import numpy as np

    if cfg.data.missing not in FILLS or start <= 0:
        return start
    first = start
    for name in columns:
        if name not in table.columns:
            continue  # _read_input names the missing column
        if not np.isnan(table.subset([start]).numeric(name, cfg.data.missing, fills=FILLS)[0]):
            continue
        known = np.flatnonzero(~np.isnan(table.subset(np.arange(start)).numeric(name, cfg.data.missing,
                                                                               fills=FILLS)))
        first = min(first, int(known[-1]) if len(known) else 0)
    return first


def _check_header(cfg: "Config", table, columns: Optional[list[str]]) -> None:
    """An input table of a trained run (infer's file, text or stdin, serve's `texts[i]`) without a column the
    run reads, refused with one line naming the input, what it lacks and every column the run reads: a table
    whose first line holds values (`tail` drops the header line) is told the header line it needs, any other
    the columns it lacks, never a `data.*` setting, which a trained run's input cannot change."""
    d = cfg.data
    if not d.header or columns is None:
        return
    wanted = [c for c in (d.time_column, d.series_column) if c is not None] + list(columns)
    if all(c in table.columns for c in wanted):
        return

    from grutool.data.tables import is_number

    if any(is_number(c) for c in table.columns):
        first = clipped(",".join(table.columns), 60)
        raise UserError(f"{table.path}: no header line: the first line ({first!r}) holds values, and the run reads "
                        f"its columns by name; start the table with the line {','.join(wanted)!r} (tail drops it: "
                        f"(head -n 1 FILE; tail -n N FILE) keeps it)")
    import difflib

    missing = [c for c in wanted if c not in table.columns]
    close = difflib.get_close_matches(missing[0], [c for c in table.columns if c not in wanted], n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    lacks = f"no column {missing[0]!r}" if len(missing) == 1 else f"no columns {', '.join(map(repr, missing))}"
    raise UserError(f"{table.path}: {lacks}{hint}; the run reads the columns {', '.join(wanted)} "
                    f"(the table has {clipped(', '.join(table.columns), 300)})")


def _covariates(roles, series, z, names=None) -> "Optional[dict]":
    """The per-row covariate arrays of `series` (z: its z-scored numeric columns) by the model's keyword: past
    (T, P), future (T, F: future columns, then sin and cos of each calendar feature), static (T, S), series (T,)
    ids by `names` (the run's series vocabulary); None without covariates."""
    import numpy as np

    from grutool.families.forecast.covariates import calendar, check_static

    if not roles.any:
        return None
    out = {}
    if roles.past:
        out["past"] = z[:, roles.index(roles.past)]
    if roles.known_width:
        out["future"] = np.concatenate([z[:, roles.index(roles.future)], calendar(series.times or [],
                                                                                    roles.calendar)], 1)
    if roles.static:
        at = roles.index(roles.static)
        check_static(series.values[:, at], roles.static, series.parts, series.ids, series.path)
        out["static"] = z[:, at]
    if roles.series_embedding:
        ids = np.zeros(len(z), dtype=np.int64)
        for (lo, hi), name in zip(series.parts, series.ids):
            if name not in names.stoi:
                known = ", ".join(names.itos[:5]) + (" ..." if len(names) > 5 else "")
                raise UserError(f"{series.path}: series {name!r} is not one the model's series embedding knows "
                                f"(data.covariates.series_embedding: {known}); forecast a series it was trained on")
            ids[lo:hi] = names.stoi[name]
        out["series"] = ids
    return out


@dataclass
class Ahead:
    """The rows after an input's history that a model with known-future columns needs: their times (None
    without a time column) and values (H, F) of data.covariates.future."""

    times: Optional[list[str]]
    values: "np.ndarray"


def _future_rows(cfg: "Config", roles, table, name: str):
    """(the history, its `Ahead`): the last `horizon` rows of an input table, which hold the future columns'
    values for the rows to forecast, every other numeric column empty. Refused (one line) when they are not so."""
    import numpy as np

    from grutool.data.tables import MISSING

    d = cfg.data
    H, frame = d.horizon, table.frame
    cols = ", ".join(roles.future)
    those = "that row, its" if H == 1 else f"those {H} rows, their"
    need = (f"the model reads data.covariates.future ({cols}) over the {counted(H, 'row')} it forecasts: end the "
            f"table with {those} time and {cols} filled, the other columns empty")
    unknown = roles.columns + roles.past
    for c in unknown + roles.future:
        table.column(c, "data.covariates.future" if c in roles.future else "data.columns")
    if len(frame) <= H:
        raise UserError(f"{name}: {counted(len(frame), 'row')}; {need}")
    tail = frame.iloc[-H:]
    filled = [c for c in unknown if not tail[c].astype(str).str.strip().str.lower().isin(MISSING).all()]
    if filled:
        last = "row has" if H == 1 else f"{H} rows have"
        raise UserError(f"{name}: its last {last} values in {filled[0]!r}; {need}")
    later = table.subset(range(len(frame) - H, len(frame)))
    for c in roles.future:  # data.missing fills history, never the plans for the rows to forecast
        empty = later.frame[c].astype(str).str.strip().str.lower().isin(MISSING).to_numpy()
        if empty.any():
            row = int(empty.argmax())
            raise UserError(f"{later.location(row, c)}: missing value in column {c!r}, a known-future column, in "
                            f"the rows to forecast; give {'the row' if H == 1 else f'each of the {H} rows'} its value")
    values = np.stack([later.numeric(c, "error", "data.covariates.future") for c in roles.future], 1)  # (H, F)
    # read as the whole table's times are: a few rows alone may read day first and month first alike
    times = table.time_texts(d.time_column)[len(frame) - H:] if d.time_column is not None else None
    return table.subset(range(len(frame) - H)), Ahead(times, values)


def _ranges(cfg: "Config", series, name: str) -> list[tuple[int, int, int]]:
    """(first row, lo, hi) of split `name` in each series of `series`: its rows by data.borders / data.fractions
    (counted within each series) when the file is the one they cut (`_is_split`), else every row."""
    from grutool.families.forecast.data import split_rows

    d = cfg.data
    out = []
    long = cfg.data.series_column is not None
    for k, (first, last) in enumerate(series.parts):
        if _is_split(cfg, series, name):
            rows = split_rows(cfg, last - first, series.ids[k] if long and series.ids else None)
            if name not in rows:
                raise UserError(f"data.{'borders' if d.borders else 'fractions'}: no {name} split; give its end")
            out.append((first, first + rows[name][0], first + rows[name][1]))
        else:
            out.append((first, first, last))
    return out


def _one_file(cfg: "Config") -> bool:
    return cfg.data.borders is not None or cfg.data.fractions is not None


def _is_split(cfg: "Config", series, name: str) -> bool:
    """Whether split `name` of `series` is a part of it: data.borders / data.fractions cut the configured file into
    train, validation and test. Any other file, or a name that is no split (`eval --data`), is read whole."""
    from grutool.families.forecast.data import SPLITS

    return _one_file(cfg) and name in SPLITS and _same_file(series.path, cfg.data.train)


def _same_file(a, b) -> bool:
    """Two data paths naming one file as written (`./data/x.csv` and `data/x.csv`: `--set data.test=./...` was
    refused as another file than data.train's)."""
    import os

    return os.path.normpath(str(a)) == os.path.normpath(str(b))


def _select(series, names: list[str]):
    from grutool.families.forecast.data import Series

    index = [series.columns.index(n) for n in names]
    return Series(series.path, list(names), series.values[:, index], series.times, series.parts, series.ids)


def _divisor(n: int, near: int) -> int:
    return min((k for k in range(1, n + 1) if n % k == 0), key=lambda k: abs(k - near))


def _text_table(cfg: "Config", text: str, name: str):
    """A table given as text (infer, serve): comma- or tab-separated by its header line."""
    import io

    import pandas as pd

    from grutool.data.tables import Table

    header = text.split("\n", 1)[0]
    sep = "\t" if "\t" in header else ","
    try:
        frame = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise UserError(f"{name}: not a table ({str(exc).strip()[:200]}); give a header line and rows") from None
    return Table(name, frame, text=True)
