"""Numeric tables (grutool.data.tables) and the train-fitted standardizer (grutool.data.scaling)."""

import numpy as np
import pytest
import torch

from grutool.data.scaling import Standardizer
from grutool.data.tables import fill_missing, read_table
from grutool.errors import UserError


def write(tmp_path, text, name="t.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_numeric_columns_and_times(tmp_path):
    t = read_table(write(tmp_path, "date,x,y\n2020-01-01 00:00,1.5,-2\n2020-01-01 01:00,2.5,1e3\n"))
    assert t.columns == ["date", "x", "y"] and len(t) == 2
    np.testing.assert_array_equal(t.numeric("y"), [-2.0, 1000.0])
    assert (np.diff(t.times("date")) == np.timedelta64(3600, "s")).all()


def test_tsv_and_parquet_read_alike(tmp_path):
    import pandas as pd

    tsv = read_table(write(tmp_path, "a\tb\n1\t2\n3\t4\n", "t.tsv"))
    pd.DataFrame({"a": [1.0, 3.0], "b": [2.0, 4.0]}).to_parquet(tmp_path / "t.parquet")
    pq = read_table(tmp_path / "t.parquet")
    for name in "ab":
        np.testing.assert_array_equal(tsv.numeric(name), pq.numeric(name))


@pytest.mark.parametrize("text, call, message", [
    ("date,x\n2020-01-01,1\n2020-01-02,abc\n", lambda t: t.numeric("x"), r"t\.csv:3:2: 'abc' in column 'x' is not a finite"),
    ("date,x\n2020-01-01,1\n2020-01-02,inf\n", lambda t: t.numeric("x"), r"t\.csv:3:2: 'inf'"),
    ("date,x\n2020-01-01,\n2020-01-02,2\n", lambda t: t.numeric("x"), r"t\.csv:2:2: missing value in column 'x' \(1 in all\); "
                                                                         r"fill it, or set data.missing"),
    ("date,value\n2020-01-01,1\n", lambda t: t.numeric("valeu", option="data.targets"),
     r"data.targets: .*no column 'valeu' \(did you mean 'value'\?\)"),
    ("date,x\n2020-01-01,1\n2020-01-01,2\n", lambda t: t.times("date"), r"t\.csv:3:1: timestamp '2020-01-01' repeats the one on line 2"),
    ("date,x\n2020-01-02,1\n2020-01-01,2\n", lambda t: t.times("date"), r"t\.csv:3:1: .* is earlier than the one on line 2"),
    ("date,x\n2020-01-01,1\nsoon,2\n", lambda t: t.times("date"), r"t\.csv:3:1: 'soon' is not a date or time"),
])
def test_bad_cells_are_named_by_line_and_column(tmp_path, text, call, message):
    with pytest.raises(UserError, match=message):
        call(read_table(write(tmp_path, text)))


def test_missing_cells_under_a_policy_are_nan_then_filled(tmp_path):
    t = read_table(write(tmp_path, "x\n\n1\nNaN\n3\n?\n".replace("\n\n", "\n \n")))
    x = t.numeric("x", missing="ffill")
    assert np.isnan(x[[0, 2, 4]]).all()
    np.testing.assert_array_equal(fill_missing(x, "ffill"), [1, 1, 1, 3, 3])
    np.testing.assert_array_equal(fill_missing(x, "interpolate"), [1, 1, 2, 3, 3])
    assert np.isnan(fill_missing(x, "mask")[0])


def test_a_row_with_a_cell_too_many_is_named_by_its_line(tmp_path):
    # It said pandas' own "Error tokenizing data. C error: Expected 3 fields in line 4, saw 4".
    with pytest.raises(UserError, match=r"^.*t\.csv:4: 4 cells, the header has 3; every row needs one cell per "
                                        r"column \(quote a value that holds the separator\)$"):
        read_table(write(tmp_path, "a,b,c\n1,2,3\n\n4,5,6,7\n8,9,1\n"))
    with pytest.raises(UserError, match=r"t\.tsv:3: 3 cells, the header has 2"):
        read_table(write(tmp_path, "a\tb\n1\t2\n3\t4\t5\n", "t.tsv"))


def test_unreadable_files(tmp_path):
    with pytest.raises(UserError, match="not found"):
        read_table(tmp_path / "nope.csv")
    with pytest.raises(UserError, match="the file is empty"):
        read_table(write(tmp_path, ""))
    with pytest.raises(UserError, match="no data rows below the header"):
        read_table(write(tmp_path, "a,b\n"))
    with pytest.raises(UserError, match="cannot tell the format"):
        read_table(write(tmp_path, "a\n1\n", "t.xlsx"))


def test_standardizer_matches_numpy_and_ignores_nan():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, (50, 3))
    s = Standardizer.fit(["a", "b", "c"], x)
    np.testing.assert_allclose(s.mean, x.mean(axis=0))
    np.testing.assert_allclose(s.std, x.std(axis=0))  # population deviation, as the published protocol's scaler
    holed = x.copy()
    holed[7, 1] = np.nan
    t = Standardizer.fit(["a", "b", "c"], holed)
    np.testing.assert_allclose(t.mean[1], np.delete(x[:, 1], 7).mean())
    z = s.transform(torch.tensor(x, dtype=torch.float64))
    torch.testing.assert_close(z.mean(0), torch.zeros(3, dtype=torch.float64))
    np.testing.assert_allclose(s.transform(x[:, [2]], columns=[2]), s.transform(x)[:, [2]])  # a subset of columns


def test_constant_column_is_shifted_not_divided_by_zero():
    s = Standardizer.fit(["k"], np.full((4, 1), 7.0))
    assert s.std == [1.0]
    np.testing.assert_array_equal(s.transform(np.full((2, 1), 7.0)), 0.0)


@pytest.mark.parametrize("magnitude", [1e-13, 1e-200, 1e160, 1e300])
def test_standardizer_scales_columns_of_any_magnitude(magnitude):
    """Values of 1e-13 were left unscaled (std below an absolute 1e-12: ~0 to the model); past 1e154 the variance
    overflowed to inf, the column zeroed and the saved scaler unreadable. A constant column still keeps std 1."""
    rng = np.random.default_rng(1)
    base = rng.normal(3.0, 2.0, (40, 1))
    s = Standardizer.fit(["a", "k"], np.concatenate([base * magnitude, np.full((40, 1), 7.0 * magnitude)], 1))
    np.testing.assert_allclose(s.mean[0] / magnitude, base.mean(), rtol=1e-12)
    np.testing.assert_allclose(s.std[0] / magnitude, base.std(), rtol=1e-12)
    assert s.std[1] == 1.0 and all(np.isfinite(s.mean + s.std))
    np.testing.assert_allclose(s.transform(base * magnitude, columns=[0]), (base - base.mean()) / base.std(), atol=1e-9)


def test_standardizer_save_load_and_damage(tmp_path):
    s = Standardizer.fit(["a", "b"], np.array([[1.0, 2.0], [3.0, 6.0]]))
    s.save(tmp_path / "scaler.json")
    assert Standardizer.load(tmp_path / "scaler.json") == s and len(s) == 2
    (tmp_path / "bad.json").write_text('{"format": "grutool.standardizer/1", "names": ["a"], "mean": [0], "std": [0]}')
    with pytest.raises(UserError, match="damaged standardizer"):
        Standardizer.load(tmp_path / "bad.json")
    with pytest.raises(UserError, match=r"^x.csv: column 'b' has no value in the training rows to scale by \(every "
                                        r"cell missing\); fill them, or leave the column out of the config$"):
        Standardizer.fit(["a", "b"], np.array([[1.0, np.nan]]), "x.csv")


def test_reading_for_a_trained_run_is_said_one_way(tmp_path):
    """`for_trained_run` is the one way a reader learns that it reads for a trained run, whose data settings are
    fixed: the table and sequence readers also took an `inference` flag (`inference = inference or trained_run()`),
    two names for one idea. The context alone now decides what a bad cell's error offers."""
    import dataclasses
    import inspect

    from grutool.data import numeric, tables
    from grutool.data.loading import for_trained_run

    for reader in (tables.read_table, tables.time_fix, numeric.read_sequences, numeric.apply_missing):
        assert "inference" not in inspect.signature(reader).parameters, reader.__name__
    assert "inference" not in {f.name for f in dataclasses.fields(tables.Table)}
    t = read_table(write(tmp_path, "x,y\nabc,\n"))
    with pytest.raises(UserError, match="fix the cell or leave the column out of the config$"):
        t.numeric("x")
    with pytest.raises(UserError, match=r"fill it, or set data.missing to"):
        t.numeric("y")
    with for_trained_run():
        with pytest.raises(UserError, match="; fix the cell$"):
            t.numeric("x")
        with pytest.raises(UserError, match=r"the run was trained with data.missing: error"):
            t.numeric("y")


@pytest.mark.parametrize("first_day, fmt", [(13, "%d/%m/%Y"), (1, "%d/%m/%Y"), (13, "%d.%m.%Y"), (1, "%m/%d/%Y")])
def test_day_and_month_first_dates_read_as_the_whole_column_reads(tmp_path, first_day, fmt):
    """pandas read `01/02/2024` as 2 January in a day-first file: a file in time order was refused as out of order,
    and, with data.timestamps: sort, put out of it. The column's cells decide day first or month first."""
    import pandas as pd

    days = pd.date_range(f"2024-01-{first_day:02d}", periods=40, freq="D")
    path = write(tmp_path, "date,v\n" + "".join(f"{d.strftime(fmt)},{i}\n" for i, d in enumerate(days)))
    t = read_table(path)
    assert (t.stamps("date") == days.to_numpy()).all()
    assert t.time_texts("date") == [d.strftime("%Y-%m-%d") for d in days]  # one reading for seasons and next times


def test_dates_that_read_day_first_and_month_first_alike_are_refused(tmp_path):
    """Monthly data on the 1st, day first (`01/02/2020` ... `01/12/2020`), was read as 12 days of January."""
    path = write(tmp_path, "date,v\n" + "".join(f"01/{m:02d}/2020,{m}\n" for m in range(1, 13)))
    with pytest.raises(UserError, match=r"t.csv:2:1: '01/01/2020': every date in data.time_column 'date' reads day "
                                        r"first and month first .* write the dates year first"):
        read_table(path).stamps("date")
    # year first, slashes or not, reads one way: exchange_rate's `1990/1/2 0:00`
    year_first = read_table(write(tmp_path, "date,v\n1990/1/1 0:00,1\n1990/1/2 0:00,2\n", "y.csv"))
    assert str(year_first.stamps("date")[1])[:10] == "1990-01-02" and year_first.day_month("date") is None
