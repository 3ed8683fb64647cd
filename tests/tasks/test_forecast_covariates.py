"""Forecast covariates (data.covariates) and the timestamp policy (data.timestamps): a model without
covariates is the model it was; covariate windows stay in their split and are scaled by training rows only;
past covariates are never read beyond the input window, known-future ones are read over the horizon; calendar
features match hand-computed values; every decoder reads them deterministically; exports keep parity; infer
and serve take the known-future rows and refuse inputs without them; the timestamp policies sort, drop and warn."""

from __future__ import annotations

import datetime
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from grutool.config_file import parse_config
from grutool.families import get_task
from grutool.training.loop import train

from conftest import assert_user_error, invoke, shipped_config

TASK = get_task("forecast")


def table(tmp: Path, rows: int = 160, name: str = "x.csv") -> Path:
    """A daily wide table: `load` driven by the weekday, `temp` (observed) and `promo` (planned) beside it."""
    rng = np.random.default_rng(3)
    start = datetime.date(2024, 1, 1)
    lines = ["date,temp,promo,load"]
    for t in range(rows):
        day = start + datetime.timedelta(days=t)
        temp, promo = rng.normal(), float(t % 5 == 0)
        load = 10 + 2 * (day.weekday() >= 5) + 0.5 * promo + 0.1 * rng.normal()
        lines.append(f"{day.isoformat()},{temp:.4f},{promo:g},{load:.4f}")
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def config(tmp: Path, path: Path, covariates=None, **model) -> dict:
    raw = {"task": "forecast",
           "data": {"train": str(path), "validation": str(path), "test": str(path), "time_column": "date",
                    "fractions": [0.6, 0.2, 0.2], "setting": "S", "targets": ["load"], "input_length": 14,
                    "horizon": 7,
                    "covariates": covariates if covariates is not None else
                    {"past": ["temp"], "future": ["promo"], "calendar": ["weekday"]}},
           "model": {"hidden_size": 8, "bidirectional": False, "segment_length": 7, "decoder": "parallel",
                     **model},
           "train": {"epochs": 1, "batch_size": 16, "device": "cpu", "monitor": "mse", "seed": 5},
           "output_dir": str(tmp / "run")}
    return raw


# --- without covariates nothing changes ------------------------------------------------------------------------


def test_a_model_without_covariates_has_no_new_parameters(tmp_path):
    from grutool.families.forecast.model import Forecaster

    raw = shipped_config("sines.yaml", tmp_path / "run")
    cfg = parse_config(raw)
    assert not cfg.data.covariates.any
    prepared = TASK.prepare(cfg)
    assert set(prepared.extra) == {"scaler"} and prepared.splits["train"].inputs is None
    torch.manual_seed(0)
    built = TASK.build_model(cfg, prepared)
    m = cfg.model
    torch.manual_seed(0)  # the constructor as it was before covariates: the same parameters, drawn alike
    plain = Forecaster(3, [0, 1, 2], cfg.data.input_length, cfg.data.horizon, m.hidden_size, cell=m.cell,
                       segment_length=m.segment_length, decoder=m.decoder, channel_independent=True,
                       normalization=m.normalization)
    a, b = built.state_dict(), plain.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not any(k.startswith(("side", "ahead", "series_embedding")) for k in a)
    assert built.covariate_inputs() == {}


def test_a_run_saved_before_covariates_forecasts_alike(tmp_path):
    """A run directory written before data.covariates and data.timestamps existed (its config.yaml lacks them)."""
    import yaml

    from grutool import rundir
    from grutool.predict import Predictor

    raw = shipped_config("sines.yaml", tmp_path / "run", train={"epochs": 1, "device": "cpu"})
    train(parse_config(raw))
    lines = Path(raw["data"]["train"]).read_text().splitlines()
    text = "\n".join(lines[:1] + lines[-40:]) + "\n"
    before = Predictor(tmp_path / "run", "cpu").predict([text])
    path = tmp_path / "run" / rundir.CONFIG
    saved = yaml.safe_load(path.read_text())
    del saved["data"]["covariates"], saved["data"]["timestamps"]
    path.write_text(yaml.safe_dump(saved))
    assert Predictor(tmp_path / "run", "cpu").predict([text]) == before


# --- calendar features ---------------------------------------------------------------------------------------


def test_calendar_features_on_hand_checked_timestamps():
    from grutool.families.forecast.covariates import calendar

    names = ["minute", "hour", "weekday", "day", "dayofyear", "month"]
    f = calendar(["2024-01-01", "2024-03-15 18:30:00"], names)  # a Monday at midnight; a Friday evening
    assert f.shape == (2, 12)
    assert np.allclose(f[0], [0, 1] * 6)  # every phase 0: sin 0, cos 1
    phases = [30 / 60, 18 / 24, 4 / 7, 14 / 31, (31 + 29 + 14) / 366, 2 / 12]  # 2024 is a leap year
    expected = [v for p in phases for v in (math.sin(2 * math.pi * p), math.cos(2 * math.pi * p))]
    assert np.allclose(f[1], expected)
    assert np.allclose(f[1, 2:4], [-1, 0], atol=1e-12)  # 18 h is three quarters of the day


# --- windows, scaling, what is read where --------------------------------------------------------------------


def test_covariate_windows_stay_in_their_split_and_are_scaled_by_training_rows(tmp_path):
    from grutool.families.forecast.covariates import calendar
    from grutool.families.forecast.data import split_rows

    path = table(tmp_path)
    cfg = parse_config(config(tmp_path, path))
    prepared = TASK.prepare(cfg)
    scaler = prepared.extra["scaler"]
    assert scaler.names == ["load", "temp", "promo"]  # channels, past, future
    raw = np.genfromtxt(path, delimiter=",", skip_header=1, usecols=(1, 2, 3))  # temp, promo, load
    rows = split_rows(cfg, len(raw))
    lo, hi = rows["train"]
    assert np.allclose(scaler.mean, raw[lo:hi][:, [2, 0, 1]].mean(0))  # training rows only
    dates = [line.split(",")[0] for line in path.read_text().splitlines()[1:]]
    week = calendar(dates, ["weekday"])
    L, H = cfg.data.input_length, cfg.data.horizon
    for name, split in prepared.splits.items():
        lo, hi = rows[name]
        assert set(split.inputs) == {"past", "future"}
        for i, s in enumerate(split.starts):
            assert s + L + H <= hi and (name == "train" and s >= lo or s >= lo - L)
            past, future = split.inputs["past"][i], split.inputs["future"][i]
            assert past.shape == (L, 1) and future.shape == (L + H, 3)
            z = (raw[s:s + L + H] - [scaler.mean[1], scaler.mean[2], scaler.mean[0]]) / \
                [scaler.std[1], scaler.std[2], scaler.std[0]]
            assert np.allclose(past.numpy()[:, 0], z[:L, 0], atol=1e-5)
            assert np.allclose(future.numpy()[:, 0], z[:, 1], atol=1e-5)
            assert np.allclose(future.numpy()[:, 1:], week[s:s + L + H], atol=1e-6)


def _forecast(cfg, prepared, name: str, i: int) -> torch.Tensor:
    from grutool.data.batching import collate

    torch.manual_seed(0)
    model = TASK.build_model(cfg, prepared).eval()
    batch = collate(prepared.splits[name], [i])
    with torch.no_grad():
        return model(batch.ids, batch.lengths, **batch.extra_inputs())[0]


@pytest.mark.parametrize("decoder", ["direct", "parallel", "autoregressive"])
def test_past_covariates_stop_at_the_input_window_future_ones_do_not(tmp_path, decoder):
    path = table(tmp_path)
    raw = config(tmp_path, path, decoder=decoder)
    cfg = parse_config(raw)
    prepared = TASK.prepare(cfg)
    split = prepared.splits["test"]
    i = len(split) // 2
    s, L = split.starts[i], cfg.data.input_length
    before = _forecast(cfg, prepared, "test", i)
    lines = path.read_text().splitlines()

    def edited(column: int, rows: range) -> Path:
        out = lines[:]
        for r in rows:  # file line r + 1 holds row r
            cells = out[r + 1].split(",")
            cells[column] = str(float(cells[column]) + 3.0)
            out[r + 1] = ",".join(cells)
        p = tmp_path / f"edit{column}.csv"
        p.write_text("\n".join(out) + "\n")
        return p

    # Past temperature after the window's input rows (test rows only: the scaler stays the same): no change.
    on = lambda p: parse_config({**raw, "data": {**raw["data"], **{k: str(p) for k in ("train", "validation",
                                                                                      "test")}}})
    changed = on(edited(1, range(s + L, len(lines) - 1)))
    again = TASK.prepare(changed)
    assert again.extra["scaler"] == prepared.extra["scaler"]
    assert torch.equal(again.splits["test"].inputs["past"][i], split.inputs["past"][i])
    assert torch.equal(_forecast(changed, again, "test", i), before)
    # A planned promotion inside the horizon: the forecast reads it.
    changed = on(edited(2, range(s + L + 1, s + L + 2)))
    again = TASK.prepare(changed)
    assert not torch.equal(_forecast(changed, again, "test", i), before)


# --- the model ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("ci", [False, True])
def test_every_decoder_reads_covariates_deterministically(cell, ci):
    from grutool.families.forecast.model import Forecaster

    g = torch.Generator().manual_seed(0)
    x, past = torch.randn(4, 12, 2, generator=g), torch.randn(4, 12, 1, generator=g)
    future, static = torch.randn(4, 12 + 7, 3, generator=g), torch.randn(4, 2, generator=g)
    series = torch.tensor([0, 2, 1, 0])
    inputs = dict(past=past, future=future, static=static, series=series)
    for decoder in ("direct", "parallel", "autoregressive"):
        outs = []
        for _ in range(2):
            torch.manual_seed(1)
            m = Forecaster(2, [0, 1], 12, 7, 8, cell=cell, segment_length=4, decoder=decoder, channel_independent=ci,
                           normalization="last", past=1, future=3, static=2, num_series=3, series_dim=2).eval()
            with torch.no_grad():
                outs.append(m(x, None, **inputs)[0])
        assert outs[0].shape == (4, 7, 2) and torch.equal(outs[0], outs[1]), decoder
        with torch.no_grad():  # one window alone gets what it gets in the batch
            one = m(x[1:2], None, **{k: v[1:2] for k, v in inputs.items()})[0]
            assert torch.allclose(one, outs[0][1:2], atol=1e-5), decoder
            for key in inputs:  # each covariate is read: changing it changes the forecast
                other = dict(inputs)
                other[key] = (inputs[key] + 1) % 3 if key == "series" else inputs[key] + 1.0
                if key == "future":  # only the horizon rows
                    other[key] = torch.cat([future[:, :12], future[:, 12:] + 1.0], 1)
                assert not torch.allclose(m(x, None, **other)[0], outs[0]), (decoder, key)
        # Every parameter gets a gradient, the covariates' included.
        m.train()
        m(x, None, targets=torch.randn(4, 7, 2), **inputs)[1].backward()
        assert all(p.grad is not None for n, p in m.named_parameters() if not n.startswith("channel")), decoder


def test_a_model_with_covariates_refuses_a_call_without_them():
    from grutool.families.forecast.model import Forecaster

    m = Forecaster(1, [0], 8, 4, 8, future=2)
    with pytest.raises(ValueError, match="'future'"):
        m(torch.zeros(1, 8, 1), None)


# --- runs: train, export, infer, serve ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("covariates")
    train(parse_config(config(tmp, table(tmp))))
    return tmp / "run"


def recent(run: Path, future: bool = True) -> str:
    """The last 20 rows of the run's data as history, then 7 rows with only the date and promo filled."""
    from grutool import rundir

    lines = Path(rundir.open_run(run).config.data.train).read_text().splitlines()
    last = datetime.date.fromisoformat(lines[-1].split(",")[0])
    ahead = [f"{last + datetime.timedelta(days=k + 1)},,{float(k % 2):g}," for k in range(7)]
    return "\n".join(lines[:1] + lines[-20:] + (ahead if future else [])) + "\n"


def test_infer_reads_the_future_rows_and_their_times(run, tmp_path):
    from grutool.predict import Predictor

    p = Predictor(run, "cpu")
    [r] = p.predict([recent(run)])
    assert r["times"] == [line.split(",")[0] for line in recent(run).splitlines()[-7:]]
    assert r["columns"] == ["load"] and len(r["forecast"]) == 7
    # A planned promotion changes the forecast.
    text = recent(run).replace(",,0,", ",,1,")
    assert p.predict([text])[0]["forecast"] != r["forecast"]
    path = tmp_path / "recent.csv"
    path.write_text(recent(run))
    result = invoke("infer", run, "--file", path, "--jsonl")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["forecast"] == r["forecast"]


def test_infer_without_the_future_rows_is_refused(run, tmp_path):
    path = tmp_path / "history.csv"
    path.write_text(recent(run, future=False))
    assert_user_error(invoke("infer", run, "--file", path), f"{path}: ", "data.covariates.future (promo)",
                      "end the table with those 7 rows")
    lines = recent(run).splitlines()
    lines[-2] = lines[-2].rsplit(",", 2)[0] + ",,"  # a planned value missing
    path.write_text("\n".join(lines) + "\n")
    # infer --file reads the last input_length + horizon rows; the cell is named by its line in the file.
    assert_user_error(invoke("infer", run, "--file", path), f"{path}:{len(lines) - 1}:3: missing value in column "
                      "'promo', a known-future column, in the rows to forecast")


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_parity_with_covariates(run, tmp_path, fmt):
    pytest.importorskip("onnxruntime") if fmt == "onnx" else None
    from grutool.export import export
    from grutool.predict import Predictor

    out = tmp_path / ("m.onnx" if fmt == "onnx" else "m.pt")
    report = export(run, fmt, out, exporter="legacy") if fmt == "onnx" else export(run, fmt, out)
    assert report["parity"]["ok"] and report["parity"]["max_abs_diff"]["forecast"] < 1e-4
    meta = json.loads(Path(report["metadata"]).read_text())
    assert list(meta["graphs"]["model"]["inputs"]) == ["window", "past", "future"]
    assert meta["forecast"]["covariates"] == {"past": [14, 1], "future": [21, 3]}
    ref = Predictor(run, "cpu").predict([recent(run)])[0]["forecast"]
    got = Predictor(run, backend=fmt, exported=out).predict([recent(run)])[0]["forecast"]
    assert np.allclose(ref, got, atol=1e-4)


def test_serve_takes_the_future_rows(run):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from grutool.predict import Predictor
    from grutool.serve import Limits, build_app

    p = Predictor(run, "cpu")
    with TestClient(build_app(p, Limits(max_chars=100_000)), raise_server_exceptions=False) as client:
        r = client.post("/predict", json={"texts": [recent(run)]})
        assert r.status_code == 200, r.text
        assert r.json()["results"][0]["forecast"] == p.predict([recent(run)])[0]["forecast"]
        bad = client.post("/predict", json={"texts": [recent(run, future=False)]})
        assert bad.status_code in (400, 422) and "data.covariates.future" in bad.text, bad.text


def test_long_form_static_columns_and_series_embedding(tmp_path):
    """The shipped example: past, calendar, static and a series embedding; an unknown series is refused."""
    from grutool.predict import Predictor

    raw = shipped_config("sines_covariates.yaml", tmp_path / "run", train={"epochs": 1, "device": "cpu"})
    train(parse_config(raw))
    run = tmp_path / "run"
    assert json.loads((run / "series.json").read_text())["labels"] == ["north", "south", "east"]
    lines = Path(raw["data"]["train"]).read_text().splitlines()
    east = [lines[0]] + [line for line in lines if ",east," in line][-28:]
    [r] = Predictor(run, "cpu").predict(["\n".join(east) + "\n"])
    assert r["series"] == "east" and len(r["forecast"]) == 14 and r["times"][0] == "2025-02-04"
    path = tmp_path / "west.csv"
    path.write_text("\n".join(line.replace(",east,", ",west,") for line in east) + "\n")
    # named by the file it came from (it said `input 1`)
    assert_user_error(invoke("infer", run, "--file", path), f"{path}: series 'west'", "series embedding")
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from grutool.serve import Limits, build_app

    with TestClient(build_app(Predictor(run, "cpu"), Limits()), raise_server_exceptions=False) as client:
        # Before: the answer to a misshapen entry named the header 'date,load,temp,capacity', and a table
        # written so was refused for its missing 'site'; /info did not say the table is in long form.
        form = client.post("/predict", json={"texts": [[[0.1]]]}).json()["error"]
        header = form.split("a header line ('")[1].split("')")[0]
        assert header.split(",")[:2] == ["date", "site"] and set(header.split(",")) == set(lines[0].split(","))
        assert client.get("/info").json()["data"]["series_column"] == "site"
        # and which columns a table holds (covariates too), in the order the run reads them: it did not say
        assert client.get("/info").json()["data"]["columns"] == header.split(",")[2:]
        # and the series the embedding knows, the only ones a request may name (it listed none: 'west' above)
        assert client.get("/info").json()["series"] == ["north", "south", "east"]
        rows = [dict(zip(lines[0].split(","), line.split(","))) for line in east]  # the header's row too
        text = "\n".join(",".join(row[c] for c in header.split(",")) for row in rows)  # written as the form says
        r = client.post("/predict", json={"texts": [text]})
        assert r.status_code == 200 and r.json()["results"][0]["series"] == "east", r.text
    changing = [line.replace(",10,", f",{10 + k},") for k, line in enumerate(east)]
    path.write_text("\n".join(changing) + "\n")
    # a trained run's roles are fixed: the file is what can change (it said `input 1` and "move it to past or
    # future", a training setting)
    refused = invoke("infer", run, "--file", path)
    assert_user_error(refused, f"{path}: column 'capacity' changes within series 'east'", "give each series' rows "
                      "one value of it")
    assert "move it" not in refused.output


# --- the timestamp policy -----------------------------------------------------------------------------------


def shuffled(tmp: Path) -> Path:
    """The table with two rows swapped and one row repeated (a later correction of the same day)."""
    lines = table(tmp).read_text().splitlines()
    lines[5], lines[6] = lines[6], lines[5]
    fixed = lines[10].rsplit(",", 1)[0] + ",99.0"
    lines.insert(20, fixed)
    path = tmp / "shuffled.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_timestamp_policies(tmp_path, caplog):
    from grutool.errors import UserError
    from grutool.families.forecast.task import read_series

    path = shuffled(tmp_path)
    raw = config(tmp_path, path, covariates={})
    with pytest.raises(UserError, match=r"shuffled.csv:7:1: timestamp '2024-01-05' is earlier than the one on line 6"):
        read_series(parse_config(raw), str(path))
    raw["data"]["timestamps"] = "sort"
    with pytest.raises(UserError, match=r"shuffled.csv:21:1: timestamp '2024-01-10' repeats the one on line 11; "
                                        r"data.timestamps: sort keeps every row"):
        read_series(parse_config(raw), str(path))
    raw["data"]["timestamps"] = "drop_duplicates"
    with caplog.at_level("WARNING", logger="grutool"):
        series = read_series(parse_config(raw), str(path))
    assert series.times == sorted(series.times) and len(set(series.times)) == len(series.times) == 160
    assert series.values[series.times.index("2024-01-10"), -1] == 99.0  # the last of the repeated rows kept
    [message] = [r.getMessage() for r in caplog.records]
    assert message.endswith("shuffled.csv: sorted 2 rows that came out of time order and dropped 1 row repeating a "
                            "timestamp (the last of each kept) (data.timestamps: drop_duplicates)"), message
    caplog.clear()
    lines = path.read_text().splitlines()
    del lines[20]
    path.write_text("\n".join(lines) + "\n")
    raw["data"]["timestamps"] = "sort"
    with caplog.at_level("WARNING", logger="grutool"):
        series = read_series(parse_config(raw), str(path))
    assert series.times == sorted(series.times) and len(series.times) == 160
    assert "sorted 1 row that came out of time order (data.timestamps: sort)" in caplog.records[0].getMessage()
    # infer --file follows the policy: the last rows in time order.
    assert TASK.read_inputs(parse_config(raw), str(path))[0].splitlines()[-1].startswith("2024-06-08")


def rewritten(tmp: Path, times: list[str], name: str = "t.csv") -> Path:
    """The table with its date column replaced by `times` (as many rows)."""
    lines = table(tmp, rows=len(times)).read_text().splitlines()
    path = tmp / name
    path.write_text("\n".join(["time," + lines[0].split(",", 1)[1]] +
                              [f"{t},{line.split(',', 1)[1]}" for t, line in zip(times, lines[1:])]) + "\n")
    return path


def test_a_gap_in_the_time_column_is_warned_once_naming_its_line(tmp_path, caplog):
    from grutool.families.forecast.task import read_series

    path = table(tmp_path)
    raw = config(tmp_path, path, covariates={})
    with caplog.at_level("WARNING", logger="grutool"):
        read_series(parse_config(raw), str(path))
    assert not caplog.records  # every step a day: nothing to say
    lines = path.read_text().splitlines()
    del lines[30], lines[50]  # two missing days: rows 2024-01-30 and 2024-02-20 (lines 31 and 52 of the file)
    path.write_text("\n".join(lines) + "\n")
    with caplog.at_level("WARNING", logger="grutool"):
        series = read_series(parse_config(raw), str(path))
    assert len(series.values) == 158  # read as they are
    [message] = [r.getMessage() for r in caplog.records]
    assert message.startswith(f"{path}:31:1: '2024-01-31' is 2 days after the row before, the usual step 1 day "
                              f"(2 of 157 steps differ); rows are read as consecutive steps"), message
    caplog.clear()
    monthly = [f"{2000 + m // 12}-{m % 12 + 1:02d}-01" for m in range(60)]  # 28 to 31 days: every step a month
    with caplog.at_level("WARNING", logger="grutool"):
        read_series(parse_config({**raw, "data": {**raw["data"], "time_column": "time"}}),
                    str(rewritten(tmp_path, monthly)))
    assert not caplog.records


def test_the_gap_warning_reaches_the_terminal_labelled_as_every_warning(tmp_path):
    """The README walk-through: `train --dry-run` printed the gap warning bare, where grutool's other warnings
    (config, shapes, bench) read `warning: ...`; every record the library logs as a warning now carries it."""
    import yaml

    lines = table(tmp_path).read_text().splitlines()
    del lines[30]  # a missing day
    path = tmp_path / "gap.csv"
    path.write_text("\n".join(lines) + "\n")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config(tmp_path, path, covariates={})))
    result = invoke("train", tmp_path / "c.yaml", "--dry-run")
    assert result.exit_code == 0, result.output
    [said] = [line for line in result.stderr.splitlines() if "usual step" in line]
    assert said.startswith(f"warning: {path}:31:1: "), said


def test_times_across_a_dst_change_are_instants_one_hour_apart(tmp_path, caplog):
    from grutool.families.forecast.covariates import calendar
    from grutool.families.forecast.data import infer_season, next_times
    from grutool.families.forecast.task import read_series

    # Paris, 2024-03-31: 01:00+01:00 is followed by 03:00+02:00, one hour later.
    times = [f"2024-03-30T{h:02d}:00:00+01:00" for h in range(24)] + \
        [f"2024-03-31T{h:02d}:00:00+01:00" for h in range(2)] + \
        [f"2024-03-31T{h:02d}:00:00+02:00" for h in range(3, 24)] + \
        [f"2024-04-{d:02d}T{h:02d}:00:00+02:00" for d in range(1, 6) for h in range(24)]
    path = rewritten(tmp_path, times)
    raw = config(tmp_path, path, covariates={"calendar": ["hour"]})
    raw["data"]["time_column"] = "time"
    with caplog.at_level("WARNING", logger="grutool"):
        series = read_series(parse_config(raw), str(path))
    assert not caplog.records  # no gap: the missing 02:00 never existed
    assert infer_season(series.times) == 24
    assert next_times(series.times, 2) == ["2024-04-06 00:00:00+02:00", "2024-04-06 01:00:00+02:00"]
    hours = calendar(times[25:27], ["hour"])  # 01:00 and 03:00 of the wall clock
    assert np.allclose(hours[:, 0], [math.sin(2 * math.pi * 1 / 24), math.sin(2 * math.pi * 3 / 24)])
    TASK.prepare(parse_config(raw))  # windows and calendar features of the whole file


def test_a_monthly_forecast_is_dated_by_calendar_months():
    import pandas as pd

    from grutool.families.forecast.data import infer_season, next_times

    firsts = [f"{2020 + m // 12}-{m % 12 + 1:02d}-01" for m in range(36)]
    assert infer_season(firsts) == 12
    assert next_times(firsts, 3) == ["2023-01-01", "2023-02-01", "2023-03-01"]  # not 31 days apart
    ends = [str(t.date()) for t in pd.date_range("2021-01-31", periods=36, freq="ME")]  # ... 2023-12-31
    assert next_times(ends, 3) == ["2024-01-31", "2024-02-29", "2024-03-31"]
    # ending in a shorter month, month ends stay month ends: they fell on the 28th (Feb 28 + 1 month)
    assert next_times(ends[:-10], 3) == ["2023-03-31", "2023-04-30", "2023-05-31"]


@pytest.mark.parametrize("freq, start, season, after", [
    ("B", "2024-01-01", 5, ["2024-07-29", "2024-07-30"]),           # ends Friday 2024-07-26: then Monday, not Saturday
    ("QS", "2022-01-01", 4, ["2026-01-01", "2026-04-01"]),          # not 91.5 days on (2025-12-31), not season 1
    ("W", "2024-01-07", 52, ["2026-11-15", "2026-11-22"]),          # Sundays, ending 2026-11-08
])
def test_calendar_frequencies_give_their_season_and_next_times(freq, start, season, after):
    import pandas as pd

    from grutool.families.forecast.data import infer_season, next_times

    times = [str(t.date()) for t in pd.date_range(start, periods={"B": 150, "QS": 16, "W": 149}[freq], freq=freq)]
    assert infer_season(times) == season
    assert next_times(times, 2) == after


def test_business_days_are_no_gaps(tmp_path, caplog):
    """Weekdays only: `3 days after the row before ... (29 of 149 steps differ); add the missing rows`, which
    would have put made-up weekends into the data."""
    import logging

    import pandas as pd

    days = pd.date_range("2024-01-01", periods=150, freq="B")
    (tmp_path / "b.csv").write_text("date,v\n" + "".join(f"{d.date()},{i % 7}\n" for i, d in enumerate(days)))
    raw = {"task": "forecast", "data": {"train": str(tmp_path / "b.csv"), "validation": str(tmp_path / "b.csv"),
                                        "test": str(tmp_path / "b.csv"), "time_column": "date",
                                        "fractions": [0.7, 0.1, 0.2], "input_length": 8, "horizon": 4},
           "model": {"hidden_size": 4, "segment_length": 4}, "train": {"epochs": 1}}
    with caplog.at_level(logging.WARNING, logger="grutool"):
        TASK.prepare(parse_config(raw))
    assert not [r for r in caplog.records if "after the row before" in r.getMessage()], caplog.text


@pytest.mark.parametrize("cells, expect", [
    (["2024-01-01", "2024-01-02", "01/03/2024"], r"t.csv:4:1: '01/03/2024' is written unlike the first timestamp, "
                                                r"'2024-01-01'; write every timestamp in one format"),
    (["0", "1", "2"], r"t.csv:2:1: '0' in data.time_column 'time' is a number, not a date or time; write "
                      r"timestamps \(2024-01-31 13:00\), or remove data.time_column"),
    (["1704067200.0", "1704070800.0", "1704074400.0"], r"t.csv:2:1: '1704067200.0' in data.time_column 'time' is a "
                                                       r"number, not a date or time"),  # was: is not a date or time
])
def test_time_cells_that_cannot_be_read_alike_are_refused_naming_the_first(tmp_path, cells, expect):
    from grutool.errors import UserError
    from grutool.families.forecast.task import read_series

    path = rewritten(tmp_path, cells * 40 if cells[0] == "0" else cells + [f"01/{d:02d}/2024" for d in range(4, 60)
                                                                          if d <= 31])
    raw = config(tmp_path, path, covariates={})
    raw["data"]["time_column"] = "time"
    with pytest.raises(UserError, match=expect):
        read_series(parse_config(raw), str(path))


@pytest.mark.parametrize("policy", ["interpolate", "ffill"])
def test_missing_cells_are_filled_within_their_split_from_earlier_rows_only(tmp_path, policy):
    """data.missing: interpolate filled a gap among the last training rows from the first validation value,
    which the scaler and the training windows then saw. Now no later split reaches an earlier one."""
    from grutool.data.tables import fill_missing
    from grutool.families.forecast.data import split_rows
    from grutool.families.forecast.task import read_series

    path = table(tmp_path)  # 160 rows: train [0, 96), validation [96, 128), test [128, 160)
    raw = config(tmp_path, path, covariates={})
    raw["data"]["missing"] = policy
    cfg = parse_config(raw)
    rows = split_rows(cfg, 160)
    assert rows["train"] == (0, 96) and rows["validation"] == (96, 128)
    lines = path.read_text().splitlines()
    cells = [line.split(",") for line in lines]
    for r in (94, 95, 96, 97, 127, 128):  # the last two rows of train and the first two of validation and test
        cells[r + 1][3] = ""
    path.write_text("\n".join(",".join(c) for c in cells) + "\n")
    load = read_series(cfg, str(path)).values[:, -1]

    for r in (100, 140):  # a different validation / test value changes nothing before its split
        cells[r + 1][3] = "1000"
    path.write_text("\n".join(",".join(c) for c in cells) + "\n")
    changed = read_series(cfg, str(path)).values[:, -1]
    np.testing.assert_array_equal(changed[:96], load[:96])
    raw_load = np.array([float(c[3]) if c[3] else np.nan for c in cells[1:]])
    # train: filled from train rows alone (its last rows take the last known training value)
    np.testing.assert_allclose(changed[:96], fill_missing(raw_load[:96], policy))
    assert changed[94] == changed[95] == raw_load[93]
    # validation: filled knowing train and validation, not test
    np.testing.assert_allclose(changed[96:128], fill_missing(raw_load[:128], policy)[96:128])
    assert not np.isnan(changed).any()


def test_a_one_step_horizon_is_said_in_the_singular(tmp_path):
    """data.horizon 1 (a one-step-ahead forecast) with a planned column: refusals said `over the 1 rows it
    forecasts: end the table with those 1 rows, their time ...`, `its last 1 rows have values` and `give each of
    the 1 rows its value`; /info's form `then the 1 rows to forecast`."""
    from grutool.errors import UserError
    from grutool.predict import Predictor

    raw = config(tmp_path, table(tmp_path))
    raw["data"]["horizon"] = 1
    train(parse_config(raw))
    p = Predictor(tmp_path / "run", "cpu")
    lines = Path(raw["data"]["train"]).read_text().splitlines()
    history = "\n".join(lines[:1] + lines[-20:])
    said = []
    for text in (history + "\n",  # no row to forecast: its load is filled
                 history + "\n2099-01-01,,,\n"):  # the row to forecast without its promo
        with pytest.raises(UserError) as e:
            p.predict([text])
        said.append(str(e.value))
    assert "over the 1 row it forecasts: end the table with that row, its time and promo filled" in said[0], said
    assert "its last row has values in 'load'" in said[0], said
    assert "in the rows to forecast; give the row its value" in said[1], said
    assert "then the 1 row to forecast" in p.task.served_form(p.run), p.task.served_form(p.run)
    assert not any(re.search(r"\b1 rows\b|those 1\b", s) for s in said), said


def test_train_counts_the_channels_the_model_reads_and_the_covariates_apart(tmp_path):
    """configs/sines_covariates.yaml reads load (1 channel) with temp and capacity beside it: train's data line
    and the dry run said `channels 3` (the scaler's columns), where shapes says `1 channel per step`."""
    raw = shipped_config("sines_covariates.yaml", tmp_path / "run")
    path = tmp_path / "covariates.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    result = invoke("train", path, "--dry-run")
    assert result.exit_code == 0, result.output
    [data] = [line for line in result.output.splitlines() if line.startswith("data:")]
    assert "; channels 1, covariates 2 (" in data, data
    assert re.search(r"^  channels +1$", result.stdout, re.M) and re.search(r"^  covariates +2$", result.stdout, re.M)
    shapes = invoke("shapes", "--config", path)
    assert shapes.exit_code == 0, shapes.output
    assert "1 channel per step" in shapes.stdout.splitlines()[0], shapes.stdout
