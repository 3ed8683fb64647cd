"""Time-series forecasting: a table of numeric columns in time order -> the next `horizon` rows.

What the run directory holds: labels.json (the predicted columns), scaler.json (the input columns in order,
with the z-score fitted on their training rows; `grutool.data.scaling.Standardizer`); vocab.json has no
tokens (only <pad> and <unk>: a forecaster reads numbers). Every input of
`predict` (`infer --file`, a `serve` request's text) is a table as text: a header line naming the run's
columns (and its time column), then at least `input_length` rows; the forecast is the `horizon` rows after
its last one, with their times when the table has a time column.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from grutool.errors import UserError
from grutool.families.base import Prepared, Task

if TYPE_CHECKING:
    from grutool.config import Config

FORMATS = ("auto", "csv", "tsv", "parquet")


def read_series(cfg: "Config", path: str, columns: Optional[list[str]] = None, table=None):
    """The input columns of one file (or of a `table` already read) as a `Series`, missing values handled by
    data.missing; `columns`: the run's input columns (default: data.columns, else every column but the time
    column)."""
    import numpy as np

    from grutool.data.tables import fill_missing, read_table
    from grutool.families.forecast.data import Series

    d = cfg.data
    if table is None:
        table = read_table(path, d.format, header=d.header, column_names=d.column_names)
    names = columns or d.columns or [c for c in table.columns if c not in (d.time_column, d.series_column)]
    option = "data.columns" if d.columns else "data.targets"
    values = np.stack([table.numeric(n, d.missing, option) for n in names], 1)  # (T, C)
    if d.series_column is not None:
        return _long_form(cfg, table, list(names), values)
    times = None
    if d.time_column is not None:
        table.times(d.time_column)  # parsed and checked: sorted, no duplicates
        times = table.strings(d.time_column)
    return Series(str(path), list(names), fill_missing(values, d.missing), times)


def _long_form(cfg: "Config", table, names: list[str], values):
    """Long form: the rows of each series (data.series_column) gathered in order of first appearance, each in
    time order (checked per series) and filled by data.missing on its own."""
    import numpy as np

    from grutool.data.tables import fill_missing
    from grutool.families.forecast.data import Series

    d = cfg.data
    ids = table.strings(table.column(d.series_column, "data.series_column"))
    groups: dict[str, list[int]] = {}
    for row, name in enumerate(ids):
        groups.setdefault(name, []).append(row)
    times = table.strings(d.time_column) if d.time_column is not None else None
    if times is not None:
        import pandas as pd

        stamps = pd.to_datetime(pd.Series(times), errors="coerce", format="mixed")
        for name, rows in groups.items():
            bad = [r for r in rows if pd.isna(stamps[r])]
            if bad:
                table.times(d.time_column)  # names the unparseable cell
            order = stamps[rows].to_numpy()
            back = np.flatnonzero(order[1:] <= order[:-1])
            if len(back):
                r, prev = rows[back[0] + 1], rows[back[0]]
                raise UserError(f"{table.location(r, d.time_column)}: timestamp {times[r]!r} of series {name!r} "
                                f"{'repeats' if order[back[0] + 1] == order[back[0]] else 'is earlier than'} "
                                f"its row on {table.location(prev)}; each series' rows must be in time order "
                                f"without duplicates")
    order = [r for rows in groups.values() for r in rows]
    parts, at = [], 0
    for rows in groups.values():
        parts.append((at, at + len(rows)))
        at += len(rows)
    filled = np.concatenate([fill_missing(values[rows], d.missing) for rows in groups.values()])
    return Series(str(table.path), names, filled, [times[r] for r in order] if times else None, parts, list(groups))


def resolve_columns(cfg: "Config", series) -> tuple[list[str], list[str]]:
    """(input columns, target columns) of the data.setting."""
    d = cfg.data
    names = list(series.columns)
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
    name = "forecast"
    monitors = ("mse", "mae", "rmse", "r2", "loss")
    owns = {"data": ("input_length", "horizon", "setting", "targets", "columns", "borders", "fractions", "season",
                     "series_column"),
            "model": ("segment_length", "decoder", "channel_independent", "normalization", "loss", "quantiles")}
    outputs = "targets"
    renderer = "forecast"
    exporter = "forecast"
    traces_real_examples = True
    example = {"data": {"train": "data/sines/sines.csv", "validation": "data/sines/sines.csv",
                        "test": "data/sines/sines.csv", "time_column": "date", "fractions": [0.7, 0.1, 0.2],
                        "input_length": 48, "horizon": 24},
               "model": {"hidden_size": 32, "bidirectional": False, "segment_length": 12, "decoder": "parallel",
                         "channel_independent": True, "normalization": "last"},
               "train": {"monitor": "mse", "epochs": 5, "batch_size": 64}}

    # --- config -------------------------------------------------------------------------------

    def check_task(self, cfg: "Config") -> None:
        d, m = cfg.data, cfg.model
        if d.format not in FORMATS:
            raise ValueError(f"data.format: a forecast reads a table: {', '.join(FORMATS)} (got '{d.format}')")
        if d.missing == "mask":
            raise ValueError("data.missing: mask is for numeric sequences; a forecast takes error, ffill or "
                             "interpolate")
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
        if d.borders is not None or d.fractions is not None:
            for name in ("validation", "test"):
                value = getattr(d, name)
                if value is not None and value != d.train:
                    raise ValueError(f"data.{name}: with data.borders or data.fractions every split is cut from "
                                     f"data.train ({d.train}); set it to that file or remove it")
        if d.setting == "M" and d.targets is not None:
            raise ValueError("data.targets: setting M predicts every input column; set data.setting to MS or S, "
                             "or remove data.targets")
        if d.input_length % m.segment_length:
            raise ValueError(f"model.segment_length: {m.segment_length} does not divide data.input_length "
                             f"{d.input_length}; pick a divisor (e.g. {_divisor(d.input_length, m.segment_length)})")
        if m.quantiles is not None:
            q = m.quantiles
            if not q or any(not 0 < x < 1 for x in q) or any(b <= a for a, b in zip(q, q[1:])):
                raise ValueError(f"model.quantiles: increasing levels, each between 0 and 1 (e.g. [0.1, 0.5, 0.9]); "
                                 f"got {q}")
        if m.bidirectional:
            raise ValueError("model.bidirectional: a forecaster reads the past forwards; set it to false")
        if m.decoder == "autoregressive" and not m.channel_independent and d.setting == "MS":
            raise ValueError("model.decoder: autoregressive feeds each prediction back as the next input, and "
                             "setting MS predicts fewer columns than it reads; set model.channel_independent: "
                             "true or data.setting M or S")

    # --- data ---------------------------------------------------------------------------------

    def prepare(self, cfg: "Config", saved: Any = None) -> Prepared:
        import numpy as np

        from grutool.data.scaling import Standardizer
        from grutool.data.vocab import PAD, UNK, LabelVocab, Vocab

        d = cfg.data
        columns = list(saved.extra["scaler"].names) if saved else None
        series = read_series(cfg, d.train, columns)
        if saved:
            inputs, targets = columns, list(saved.labels.itos)
        else:
            inputs, targets = resolve_columns(cfg, series)
            series = _select(series, inputs)
        train = np.concatenate([series.values[lo:hi] for _, lo, hi in _ranges(cfg, series, "train")])
        scaler = saved.extra["scaler"] if saved else Standardizer.fit(inputs, train)  # training rows only
        prepared = Prepared(Vocab([PAD, UNK]), LabelVocab(targets), extra={"scaler": scaler})
        prepared.splits["train"] = self._split(cfg, prepared, series, "train")
        for name in ("validation", "test"):
            source = getattr(d, name)
            if source is None:
                continue
            if _one_file(cfg):
                prepared.splits[name] = self._split(cfg, prepared, series, name)
            else:
                prepared.splits[name] = self.encode_split(cfg, prepared, source, name)
        return prepared

    def _split(self, cfg: "Config", vocabs: Any, series, name: str):
        """The windows of split `name` of `series` (the run's input columns): its rows by data.borders /
        data.fractions, or the whole file."""
        from grutool.families.forecast.data import infer_season, make_split

        d = cfg.data
        scaler = vocabs.extra["scaler"]
        z = scaler.transform(series.values)  # (T, C)
        context = _one_file(cfg) and series.path == str(d.train) and name != "train"
        index = [scaler.names.index(t) for t in vocabs.labels.itos]
        lo, hi = series.parts[0]
        season = d.season or infer_season(series.times[lo:hi] if series.times else None)
        return make_split(series, z, _ranges(cfg, series, name), name, cfg, index, [scaler.mean[i] for i in index],
                          [scaler.std[i] for i in index], season, context)

    def encode_split(self, cfg: "Config", vocabs: Any, source: Any, name: str):
        series = read_series(cfg, source, list(vocabs.extra["scaler"].names))
        return self._split(cfg, vocabs, series, name)

    def vocabularies(self, cfg: "Config") -> dict[str, tuple[str, type]]:
        from grutool.data.scaling import Standardizer
        from grutool.data.vocab import LabelVocab

        return {"labels": ("labels.json", LabelVocab), "scaler": ("scaler.json", Standardizer)}

    def synthetic(self, cfg: "Config", lengths: list[int], vocab_size: int, num_classes: int, generator,
                  num_chars: int = 0):
        """`bench --config`: `vocab_size` columns of random values (the last `num_classes` predicted), one
        window per entry of `lengths` (each of data.input_length rows: a window's length is fixed)."""
        import torch

        from grutool.data.scaling import Standardizer
        from grutool.data.vocab import PAD, UNK, LabelVocab, Vocab
        from grutool.families.forecast.data import Series, make_split

        d = cfg.data
        c = max(1, vocab_size)
        k = min(c, max(1, num_classes)) if d.setting != "M" else c
        names = [f"c{i}" for i in range(c)]
        vocabs = Prepared(Vocab([PAD, UNK]), LabelVocab(names[c - k:]), extra={"scaler": Standardizer(names, [0.0] * c,
                                                                                                  [1.0] * c)})
        rows = len(lengths) + d.input_length + d.horizon - 1
        values = torch.randn(rows, c, generator=generator).double().numpy()
        series = Series("synthetic", names, values)
        split = make_split(series, values, [(0, 0, rows)], "train", cfg, list(range(c - k, c)), [0.0] * k,
                           [1.0] * k, 1, False)
        return vocabs, split

    # --- model --------------------------------------------------------------------------------

    def build_model(self, cfg: "Config", vocabs: Any):
        from grutool.families.forecast.model import Forecaster

        inputs = list(vocabs.extra["scaler"].names)
        return Forecaster.from_config(cfg, len(inputs), [inputs.index(t) for t in vocabs.labels.itos])

    def metrics(self, split):
        from grutool.families.forecast.metrics import ForecastMetrics

        return ForecastMetrics(split)

    def served_labels(self, run) -> Optional[list[str]]:
        return list(run.labels.itos)

    # --- prediction ---------------------------------------------------------------------------

    def infer_batch(self, model, batch, **options):
        return model(batch.ids, batch.lengths)[0].float().cpu()  # (B, H, T) z-scored ((B, H, T, Q): quantiles)

    def read_inputs(self, cfg: "Config", source: str, vocabs: Any = None) -> list[str]:
        """`infer --file`: the table's last input_length rows as one input (csv text with its header); long form
        (data.series_column), one input per series, each its own last rows."""
        from grutool.data.tables import read_table

        d = cfg.data
        table = read_table(source, d.format, header=d.header, column_names=d.column_names)
        frame, L = table.frame, d.input_length
        if d.series_column is None:
            return [frame.iloc[-L:].to_csv(index=False)]
        groups = frame.groupby(table.column(d.series_column, "data.series_column"), sort=False).indices
        return [frame.iloc[rows[-L:]].to_csv(index=False) for rows in groups.values()]

    def predict(self, predictor, texts: list[str], batch_size: int = 64, **options) -> list[dict]:
        """One forecast per table text: the next `horizon` rows of the target columns, in their own units."""
        import numpy as np
        import torch

        run, cfg = predictor.run, predictor.cfg
        scaler, targets = run.extra["scaler"], list(run.labels.itos)
        inputs = list(scaler.names)
        L = cfg.data.input_length
        windows, stamps, names = [], [], []
        for k, text in enumerate(texts):
            table = _text_table(cfg, text, f"input {k + 1}")
            series = read_series(cfg, f"input {k + 1}", inputs, table=table)
            if len(series.parts) > 1:
                raise UserError(f"input {k + 1}: rows of {len(series.parts)} series ({', '.join(series.ids[:5])}); "
                                f"give the rows of one series per input")
            if len(series.values) < L:
                raise UserError(f"input {k + 1}: {len(series.values)} rows, but the model reads the last "
                                f"{L} (data.input_length); give at least {L} rows")
            windows.append(torch.from_numpy(scaler.transform(series.values[-L:])).float())  # (L, C)
            from grutool.families.forecast.data import next_times

            stamps.append(next_times(series.times, cfg.data.horizon))
            names.append(series.ids[0] if series.ids else None)
        index = [inputs.index(t) for t in targets]
        results = []
        with torch.no_grad():
            for j in range(0, len(windows), batch_size):
                x = torch.stack(windows[j:j + batch_size]).to(predictor.device)  # (B, L, C)
                lengths = torch.full((len(x),), L, dtype=torch.long)
                z = predictor.model(x, lengths)[0].float().cpu().double().numpy()  # (B, H, T[, Q])
                levels = cfg.model.quantiles
                bands = None
                if levels:  # (B, H, T, Q): the point forecast is the quantile nearest 0.5
                    bands = np.stack([scaler.inverse(z[..., i], index) for i in range(len(levels))], -1)
                    z = z[..., min(range(len(levels)), key=lambda i: abs(levels[i] - 0.5))]
                y = scaler.inverse(z, index)  # (B, H, T) in the columns' units
                for b, rows in enumerate(y):
                    r = {"time_column": cfg.data.time_column, "columns": targets, "times": stamps[j + b],
                         "forecast": _rounded(rows)}
                    if names[j + b] is not None:  # long form: which series
                        r["series"] = names[j + b]
                    if bands is not None:
                        r["quantiles"] = {f"{q:g}": _rounded(bands[b, ..., i]) for i, q in enumerate(levels)}
                    results.append(r)
        return results


def _rounded(rows) -> list[list[float]]:
    return [[round(float(v), 6) for v in r] for r in rows]


def _ranges(cfg: "Config", series, name: str) -> list[tuple[int, int, int]]:
    """(first row, lo, hi) of split `name` in each series of `series`: its rows by data.borders / data.fractions
    (counted within each series) when the file is the one split, else every row."""
    from grutool.families.forecast.data import split_rows

    d = cfg.data
    out = []
    for first, last in series.parts:
        if _one_file(cfg) and series.path == str(d.train):
            rows = split_rows(cfg, last - first)
            if name not in rows:
                raise UserError(f"data.{'borders' if d.borders else 'fractions'}: no {name} split; give its end")
            out.append((first, first + rows[name][0], first + rows[name][1]))
        else:
            out.append((first, first, last))
    return out


def _one_file(cfg: "Config") -> bool:
    return cfg.data.borders is not None or cfg.data.fractions is not None


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
