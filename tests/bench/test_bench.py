"""`grutool bench`: the timing harness against known costs, report round trips, --compare arithmetic,
bad grids, --smoke, and --config timing the production model."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from grutool.bench import grid as grids
from grutool.bench import report as reports
from grutool.bench import workloads
from grutool.bench.timing import Case, Stats, WallClock, time_interleaved
from grutool.cli.app import app
from grutool.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


# --- the harness ------------------------------------------------------------------


class FakeTime:
    """A clock that only moves when a fake workload says it spent time."""

    def __init__(self):
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def spend(self, seconds: float):
        def fn():
            self.t += seconds
        return fn


def test_harness_reports_known_costs_exactly_and_calibrates_calls_per_sample():
    ft = FakeTime()
    a, b = Case("a", ft.spend(0.010)), Case("b", ft.spend(0.002))
    sa, sb = time_interleaved([a, b], repeats=5, warmup=1, min_sample_s=0.05, clock=WallClock(now=ft.now))
    assert sa.median == pytest.approx(0.010) and sb.median == pytest.approx(0.002)
    assert (sa.number, sb.number) == (5, 25), "a sample lasts at least min_sample_s"
    assert len(sa.samples) == len(sb.samples) == 5
    assert (sa.min, sa.max) == pytest.approx((0.010, 0.010)) and sa.spread == pytest.approx(0.0, abs=1e-9)
    assert not sa.noisy


def test_a_slow_first_call_does_not_set_the_calls_per_sample():
    """A case whose first calls are slow (allocation, a JIT's first shapes): the count came from the last warm-up
    call alone, so a 0.1 s first call gave one call a sample, each sample 2 ms where at least 50 ms was said."""
    ft = FakeTime()
    costs = iter([0.100])

    def first_slow():
        ft.t += next(costs, 0.002)

    [s] = time_interleaved([Case("a", first_slow)], repeats=3, warmup=1, min_sample_s=0.05,
                           clock=WallClock(now=ft.now))
    assert s.number == 25 and s.median == pytest.approx(0.002)
    assert s.number * s.min >= 0.05, "every sample lasts at least min_sample_s"


def test_harness_on_real_sleeps():
    cases = [Case("5ms", lambda: time.sleep(0.005)), Case("1ms", lambda: time.sleep(0.001))]
    slow, fast = time_interleaved(cases, repeats=5, warmup=1, number=1)
    # sleep() never returns early; a loaded machine can make it late by any amount (a 5 ms sleep measured
    # 15 ms at load 8), so no upper bound: the harness must keep the cases apart and in order.
    assert slow.median >= 0.005 and fast.median >= 0.001
    assert slow.min >= 0.005 and fast.median < slow.median
    assert slow.min <= slow.q1 <= slow.median <= slow.q3 <= slow.max


def test_harness_interleaves_cases_a_b_a_b_and_enters_context_per_sample():
    log = []

    def case(name):
        class Ctx:
            def __enter__(self): log.append(f"[{name}")
            def __exit__(self, *exc): log.append(f"{name}]")
        return Case(name, lambda: log.append(name), Ctx)

    time_interleaved([case("A"), case("B")], repeats=3, warmup=1, number=2)
    calls = [x for x in log if x in ("A", "B")]
    assert calls == ["A", "B"] + ["A", "A", "B", "B"] * 3, "warm-up A B, then rounds of A's sample, B's sample"
    assert log[:6] == ["[A", "A", "A]", "[B", "B", "B]"]
    assert log.count("[A") == 4 and log.count("A]") == 4


def test_stats_quartiles_and_noise_flag():
    s = Stats([0.010, 0.011, 0.012, 0.013, 0.030], number=1)
    assert (s.median, s.min, s.max) == (0.012, 0.010, 0.030)
    assert (s.q1, s.q3) == pytest.approx((0.011, 0.013))
    assert s.spread == pytest.approx(0.002 / 0.012) and s.noisy, "IQR 17% of the median is too wide"
    assert not Stats([0.010, 0.0101, 0.0102], number=3).noisy


# --- reports ----------------------------------------------------------------------


def make_row(cell="gru", hidden=64, median=10.0, kernel="native", kernels="default", params=None, **extra) -> dict:
    row = {"workload": "layer", "cell": cell, "mode": "train", "lengths": "padded", "kernels": kernels,
           "device": "cpu", "dtype": "float32", "batch_size": 32, "seq_len": 100, "input_size": 128,
           "hidden_size": hidden, "num_layers": 1, "bidirectional": False, "config": None, "vocab_size": None,
           "num_classes": None, "kernel": kernel,
           "params": params if params is not None else {"gru": 3, "lstm": 4, "rnn": 1}[cell] * hidden * 194,
           "tokens": 3200, "repeats": 3, "number": 1, "median_ms": median, "q1_ms": median * 0.99,
           "q3_ms": median * 1.01, "min_ms": median * 0.98, "max_ms": median * 1.1, "spread": 0.02,
           "noisy": False, "tokens_per_s": 3200 / (median / 1000) if median else 0.0, "vs_lstm": None, "peak_mem_mb": 1.5,
           "rss_growth_mb": 2.0, "samples_ms": [median * 0.99, median, median * 1.01]}
    row.update(extra)
    return row


def make_report(rows, torch_version="2.13.0") -> dict:
    env = {"date": "2026-01-01T00:00:00+00:00", "grutool": "0.1.0", "torch": torch_version, "python": "3.11",
           "platform": "Linux", "cpu": "Test CPU", "cpu_count": 2, "torch_threads": 2, "interop_threads": 2,
           "cpu_capability": "AVX2", "mkldnn_available": True, "mkldnn_enabled": True, "onednn_version": "3.1",
           "device": "cpu", "cuda": None, "cudnn": None, "gpu": None, "loadavg": [0.1, 0.1, 0.1]}
    settings = {"repeats": 3, "warmup": 1, "min_sample_ms": 50.0, "seed": 0, "threads": None, "smoke": False,
                "config": None, "memory": "test", "noisy_spread": 0.1}
    return {"schema": reports.SCHEMA, "version": reports.VERSION, "env": env, "settings": settings,
            "duration_s": 1.0, "rows": rows, "warnings": []}


def test_json_report_round_trips_and_csv_markdown_hold_every_row(tmp_path):
    rows = [make_row("gru", 64, 12.5), make_row("lstm", 64, 10.0, kernel="onednn"),
            make_row("gru", 256, 40.0, kernels="native"), make_row("lstm", 256, 50.0, kernels="native")]
    reports.add_ratios(rows)
    report = make_report(rows)
    for name in ("r.json", "r.csv", "r.md"):
        reports.write(report, tmp_path / name)

    back = reports.read_report(tmp_path / "r.json")
    assert back == report and back["rows"] == rows

    with open(tmp_path / "r.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(rows) and list(table[0]) == reports.CSV_FIELDS
    for line, row in zip(table, rows):
        assert (line["cell"], int(line["hidden_size"]), float(line["median_ms"])) == \
            (row["cell"], row["hidden_size"], row["median_ms"])

    md = (tmp_path / "r.md").read_text()
    table_lines = [line for line in md.splitlines() if line.startswith("| ") and "ms/batch" not in line]
    assert len(table_lines) == len(rows)
    for line, row in zip(table_lines, rows):
        assert f"| {row['cell']} |" in line and f"{row['median_ms']:.1f}" in line
    assert "onednn" in md and "native*" in md and "Test CPU" in md and "torch 2.13.0" in md


def test_reading_and_writing_reports_imports_no_torch(tmp_path):
    """Comparing or rewriting a report (markdown for a PR, say) does not pay for torch."""
    rows = [make_row("gru", 64, 12.5), make_row("lstm", 64, 10.0)]
    reports.add_ratios(rows)
    reports.write(make_report(rows), tmp_path / "r.json")
    code = ("import sys\nfrom grutool.bench import report\n"
            f"r = report.read_report({str(tmp_path / 'r.json')!r})\n"
            f"report.write(r, {str(tmp_path / 'r.md')!r})\n"
            "assert 'torch' not in sys.modules, 'grutool.bench.report imported torch'\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "| gru |" in (tmp_path / "r.md").read_text(encoding="utf-8")


def test_vs_lstm_is_time_over_the_matching_lstm_row():
    rows = [make_row("gru", 64, 12.0), make_row("lstm", 64, 10.0), make_row("rnn", 64, 4.0),
            make_row("gru", 64, 7.5, kernels="native"), make_row("lstm", 64, 10.0, kernels="native"),
            make_row("gru", 128, 1.0)]
    reports.add_ratios(rows)
    assert [r["vs_lstm"] for r in rows[:-1]] == pytest.approx([1.2, 1.0, 0.4, 0.75, 1.0])
    assert rows[-1]["vs_lstm"] is None, "no LSTM row with H=128"


def test_compare_ratios_on_hand_made_reports():
    old = make_report([make_row("gru", 64, 10.0), make_row("lstm", 64, 4.0), make_row("rnn", 64, 1.0)])
    new = make_report([make_row("gru", 64, 5.0), make_row("lstm", 64, 6.0),
                       make_row("gru", 512, 80.0)], torch_version="2.14.0")
    result = reports.compare(new, old)
    ratios = {m["key"]["cell"]: m["ratio"] for m in result["rows"]}
    assert ratios == pytest.approx({"gru": 0.5, "lstm": 1.5})
    assert (result["only_new"], result["only_old"]) == (1, 1)
    assert result["env_changes"] == ["torch: 2.13.0 -> 2.14.0"]
    assert [(m["old_ms"], m["new_ms"]) for m in result["rows"]] == [(10.0, 5.0), (4.0, 6.0)]


def test_reading_something_that_is_not_a_report_is_a_user_error(tmp_path):
    (tmp_path / "a.json").write_text('{"rows": []}')
    with pytest.raises(UserError, match="not a grutool bench report"):
        reports.read_report(tmp_path / "a.json")
    (tmp_path / "b.json").write_text(json.dumps({**make_report([]), "version": 99}))
    with pytest.raises(UserError, match="version 99"):
        reports.read_report(tmp_path / "b.json")


# --- grids ------------------------------------------------------------------------


def test_configs_bench_yaml_is_the_default_grid():
    assert grids.load_grid(ROOT / "configs" / "bench.yaml") == grids.DEFAULT


def test_command_line_lists_are_checked_and_deduplicated():
    g = grids.from_options(cells="GRU, lstm,gru", hidden_size="64,256", bidirectional=True, repeats=3)
    assert g.cells == ("gru", "lstm") and g.hidden_size == (64, 256) and g.bidirectional == (True,)
    assert grids.merge(grids.DEFAULT, g).batch_size == grids.DEFAULT.batch_size


BAD_GRIDS = [
    (["--hidden-size", ""], "--hidden-size: empty list"),
    (["--hidden-size", "64,0"], "--hidden-size: 0: must be > 0"),
    (["--batch=-4"], "--batch: -4: must be > 0"),
    (["--seq-len", "50,,100"], "--seq-len: empty item"),
    (["--layers", "two"], "--layers: 'two' is not an integer"),
    (["--cells", "gru,lstn"], "did you mean 'lstm'"),
    (["--mode", "training"], "--mode: 'training' is not one of infer, train"),
    (["--repeats", "0"], "--repeats: 0: must be > 0"),
    (["--threads", "0"], "--threads: 0: must be > 0"),
    (["--device", "cpu", "--dtype", "float16"], "--dtype float16: not supported for CPU"),
    (["--output", "report.txt"], "unknown format"),
    (["--plot", "report.svg"], "give a .png file name"),
    (["--config", "configs/sentiment.yaml", "--dtype", "bfloat16"], "--dtype: does not apply with --config"),
    (["--config", "configs/sentiment.yaml", "--lengths", "padded"], "packs its batches of mixed lengths and runs "
                                                                      "those of one length dense"),
    (["--config", "configs/lm_stream.yaml", "--lengths", "packed"],
     "--lengths: every chunk of a stream (train.bptt) has the same length (T=32)"),
    (["--config", "no/such.yaml"], "config file not found"),
    (["--config", "configs/sentiment.yaml", "--set", "model.hiden_size=8"],
     "--set model.hiden_size: unknown key; did you mean 'hidden_size'?"),
    (["--config", "configs/sentiment.yaml", "--set", "model.hidden_size=0"], "model.hidden_size"),
    (["--set", "model.hidden_size=8"], "--set model.hidden_size=8: sets a field of a model config, and none is given"),
    (["configs/sentiment.yaml"], "this is a model config"),
    (["--compare", "no/such.json"], "report not found"),
]


def assert_user_error(result, expected: str) -> None:
    assert result.exit_code == 2, f"exit {result.exit_code}:\n{result.output}\n{result.exception!r}"
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert expected in lines[0], lines[0]


@pytest.mark.parametrize("args,expected", BAD_GRIDS, ids=[" ".join(a) or "empty" for a, _ in BAD_GRIDS])
def test_bad_grids_exit_2_with_one_line(args, expected, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert_user_error(runner.invoke(app, ["bench", "--smoke", *args]), expected)


def test_a_report_that_is_not_json_names_its_line_and_column(tmp_path):
    # it said `x.json: not a JSON bench report (Expecting ...: line 2 column 1 (char 2))`
    bad = tmp_path / "x.json"
    bad.write_text('{"schema": "grutool-bench",\n  rows: []}\n')
    assert_user_error(runner.invoke(app, ["bench", str(bad)]), f"{bad}:2:3: not a JSON bench report (Expecting "
                      "property name enclosed in double quotes); write one with grutool bench --output")


@pytest.mark.parametrize("suffix, kind", [(".md", "markdown"), (".csv", "csv")])
def test_a_report_bench_wrote_for_reading_is_named_as_such(tmp_path, suffix, kind):
    # Given as the positional (or second of a --compare), it was read as a grid: "YAML syntax error: mapping
    # values are not allowed here".
    report = tmp_path / f"r{suffix}"
    report.write_text("| cell | mode |\n|---|---|\n| gru: x | train |\n")
    said = f"a {kind} report is for reading; bench reads back the .json one it writes beside it (-o report.json)"
    assert_user_error(runner.invoke(app, ["bench", str(report)]), f"{report}: {said}")
    assert_user_error(runner.invoke(app, ["bench", "--compare", str(tmp_path / "old.json"), str(report)]),
                      f"{report}: {said}")


def test_cuda_without_cuda_is_a_user_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    assert_user_error(runner.invoke(app, ["bench", "--smoke", "--device", "cuda"]), "CUDA is not available")
    # the line names the option typed (it said `train.device:`, a config key bench has no file for)
    result = runner.invoke(app, ["bench", "--smoke", "--device", "cuda"])
    assert result.output.startswith("error: --device: 'cuda' requested"), result.output
    result = runner.invoke(app, ["bench", "--config", str(ROOT / "configs/sentiment.yaml"), "--device", "cuda"])
    assert result.output.startswith("error: --device: 'cuda' requested"), result.output


@pytest.mark.parametrize("text,expected", [
    ("hidden_size: []\n", "bench.yaml:1:1: hidden_size: empty list"),
    ("cells: [gru]\nhiden_size: [64]\n", "bench.yaml:2:1: hiden_size: unknown key; did you mean 'hidden_size'?"),
    ("repeats: [3, 4]\n", "bench.yaml:1:1: repeats: expected a single value"),
    ("dtype: float64\n", "'float64' is not one of float32, bfloat16, float16"),
    ("- gru\n", "top level must be a mapping"),
    ("{repeats: 3,  cells: []}\n", "bench.yaml:1:15: cells: empty list"),  # the column tells a line's keys apart
    (b"cells: [gru]\n# caf\xe9\n", "bench.yaml:2:6: not UTF-8 text (byte 18)"),
])
def test_bad_grid_files_name_the_line(tmp_path, text, expected):
    path = tmp_path / "bench.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    assert_user_error(runner.invoke(app, ["bench", str(path)]), expected)


# --- running ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke")
    result = runner.invoke(app, ["bench", "--smoke", "-q", "-o", str(out / "s.json"), "-o", str(out / "s.md"),
                                 "-o", str(out / "s.csv")])
    return result, out


def test_smoke_runs_checks_itself_and_writes_reports(smoke):
    result, out = smoke
    assert result.exit_code == 0, result.output
    assert "smoke: ok" in result.stdout
    report = reports.read_report(out / "s.json")
    rows = report["rows"]
    assert len(rows) == 3 * 2 * 2 * 2, "cells x modes x lengths x kernel paths"
    assert all(r["median_ms"] > 0 and r["params"] > 0 for r in rows)
    assert len(list(csv.DictReader(open(out / "s.csv")))) == len(rows)
    assert report["env"]["torch"] and report["settings"]["smoke"] is True


def test_smoke_rows_say_which_kernel_ran(smoke):
    import torch

    rows = reports.read_report(smoke[1] / "s.json")["rows"]
    kernel = {(r["cell"], r["mode"], r["lengths"], r["kernels"]): r["kernel"] for r in rows}
    # grutool's default GRU on CPU (kernel auto) at the smoke's T = 6 (the packed batch's longest too): its
    # compiled kernel, where it builds; where not, the fused rule: fused on packed batches, and nn.GRU's own
    # loop on dense batches shorter than dense_from_steps. --kernels native is PyTorch's.
    from grutool.kernels import AUTO
    from grutool.modules.rnn import compiled

    rule = AUTO["gru"]
    assert rule.dense_from_steps > 6 and max(rule.compiled_training_from, rule.compiled_inference_from) <= 6
    built = compiled.available()
    for r in rows:
        cell, mode, lengths, kernels, k = r["cell"], r["mode"], r["lengths"], r["kernels"], r["kernel"]
        if cell == "gru" and kernels == "default":
            assert k == ("compiled" if built else "fused" if lengths == "packed" else "native"), (mode, lengths)
        if kernels == "native":
            assert k == "native", (cell, mode, lengths, kernels)
        if cell != "gru" and kernels == "default":  # LSTM, RNN: what their rule says at the smoke's size
            expected = AUTO[cell].pick(packed=lengths == "packed", training=mode == "train",
                                       hidden_size=r["hidden_size"], steps=r["seq_len"], compiled_ready=lambda: built)
            if expected == "native" and cell == "lstm" and lengths == "padded" and torch.backends.mkldnn.is_available():
                expected = "onednn"  # nn.LSTM on a dense batch
            assert k == expected, (cell, mode, lengths, k)
    # A PackedSequence of different lengths never reaches oneDNN: grutool's default runs the encoder's
    # LSTM through its compiled (or fused) kernel there, PyTorch's (--kernels native) through the native loop.
    assert kernel[("lstm", "train", "packed", "default")] == ("compiled" if built else "fused")
    assert kernel[("lstm", "train", "packed", "native")] == "native"
    if torch.backends.mkldnn.is_available():
        assert kernel[("lstm", "infer", "padded", "default")] == "onednn"
        assert kernel[("lstm", "train", "padded", "default")] == ("compiled" if built else "onednn")


def test_smoke_fails_with_exit_1_when_a_check_fails(monkeypatch):
    from grutool.bench import runner as bench_runner

    bad = make_report([make_row("gru", 8, 0.0, params=100), make_row("lstm", 8, 1.0, params=100)])
    monkeypatch.setattr(bench_runner, "run", lambda grid, smoke=False, progress=None, overrides=(): bad)
    result = runner.invoke(app, ["bench", "--smoke", "-q"])
    assert result.exit_code == 1
    assert "non-positive time" in result.output and "expected exactly 3/4" in result.output


def test_compare_against_an_earlier_report_prints_ratios(smoke):
    old = smoke[1] / "s.json"
    result = runner.invoke(app, ["bench", "--smoke", "-q", "--cells", "gru,lstm", "--mode", "infer",
                                 "--lengths", "padded", "--kernels", "default", "--compare", str(old)])
    assert result.exit_code == 0, result.output
    assert "new / old" in result.stdout and "×" in result.stdout
    assert "only in" in result.stdout, "the earlier report has rows this run did not time"


def test_config_times_the_production_model_with_its_parameter_count(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "c.json"
    result = runner.invoke(app, ["bench", "--config", "configs/sentiment.yaml", "--cells", "gru,lstm",
                                 "--repeats", "2", "--warmup", "1", "--min-sample-ms", "1", "--threads", "1",
                                 "--seq-len", "16", "--lengths", "packed", "-q", "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = reports.read_report(out)["rows"]
    assert {(r["cell"], r["mode"]) for r in rows} == {(c, m) for c in ("gru", "lstm") for m in ("infer", "train")}

    from grutool.config_file import load_config
    from grutool.families import get_task

    from grutool.modules.rnn import compiled

    cfg = load_config("configs/sentiment.yaml")
    prepared = get_task(cfg.task).prepare(cfg)
    for cell in ("gru", "lstm"):
        variant = cfg.model_copy(update={"model": cfg.model.model_copy(update={"cell": cell})})
        expected = sum(p.numel() for p in get_task(variant.task).build_model(variant, prepared).parameters())
        for r in rows:
            if r["cell"] == cell:
                assert r["params"] == expected, (cell, r["mode"])
                assert r["workload"] == "model" and r["config"] == "configs/sentiment.yaml"
                assert (r["vocab_size"], r["num_classes"]) == (len(prepared.vocab), len(prepared.labels))
                assert (r["batch_size"], r["seq_len"], r["input_size"]) == (16, 16, 64), "the config's own shape"
                # Packed batches of different lengths never reach oneDNN, not even the LSTM's: both
                # cells run grutool's kernels there (model.kernel auto on CPU: their compiled ones where they
                # build); without the build, small-LSTM inference runs nn.LSTM's own packed loop, as fast.
                built = compiled.available()
                ran = "compiled" if built else "fused" if cell == "gru" or r["mode"] == "train" else "native"
                assert r["median_ms"] > 0 and r["kernel"] == ran, (cell, r["mode"])


def test_set_overrides_the_config_s_field_as_train_s_does(tmp_path, monkeypatch):
    # Before, `bench` had no --set: a size not on the grid's axes (or any other field) needed a copy of the config.
    monkeypatch.chdir(ROOT)
    from grutool.config_file import load_config
    from grutool.families import get_task

    overrides = ["model.hidden_size=24", "model.num_layers=2"]
    cfg = load_config("configs/sentiment.yaml", overrides)  # as `train --set` reads it
    prepared = get_task(cfg.task).prepare(cfg)
    expected = sum(p.numel() for p in get_task(cfg.task).build_model(cfg, prepared).parameters())
    plain = load_config("configs/sentiment.yaml")
    assert expected != sum(p.numel() for p in get_task(plain.task).build_model(plain, prepared).parameters())
    out = tmp_path / "s.json"
    result = runner.invoke(app, ["bench", "--smoke", "-q", "--config", "configs/sentiment.yaml", "--cells", "gru",
                                 "--mode", "infer", *[a for o in overrides for a in ("--set", o)], "-o", str(out)])
    assert result.exit_code == 0, result.output
    report = reports.read_report(out)
    assert [(r["hidden_size"], r["num_layers"], r["params"]) for r in report["rows"]] == [(24, 2, expected)]
    assert report["settings"]["set"] == overrides, "the report records what the config was read with"


def test_a_numeric_config_is_timed_in_steps_per_second_as_train_counts_them(tmp_path, monkeypatch):
    # numeric sequences' lengths are time steps: train's epoch line says `steps/s`, and bench said `tokens/s`
    # of the same count
    monkeypatch.chdir(ROOT)
    out = tmp_path / "n.json"
    result = runner.invoke(app, ["bench", "--config", "configs/numeric.yaml", "--cells", "gru", "--batch", "4",
                                 "--repeats", "1", "--warmup", "0", "--min-sample-ms", "1", "--threads", "1",
                                 "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "steps/s" in result.output and "tokens/s" not in result.output, result.output
    rows = reports.read_report(out)["rows"]
    assert {r["unit"] for r in rows} == {"steps"} and reports.unit(rows) == "steps"


def test_a_forecast_config_is_timed_in_windows_per_second_on_its_real_columns(tmp_path, monkeypatch):
    # A forecast window is always data.input_length rows: its rate is windows/s (a batch's windows over its
    # time), and the synthetic windows have the data's columns (vocab.json holds no tokens to count).
    monkeypatch.chdir(ROOT)
    out, md = tmp_path / "f.json", tmp_path / "f.md"
    result = runner.invoke(app, ["bench", "--config", "configs/sines.yaml", "--cells", "gru,lstm", "--repeats", "2",
                                 "--warmup", "1", "--min-sample-ms", "1", "--threads", "1", "-o", str(out),
                                 "-o", str(md)])
    assert result.exit_code == 0, result.output
    assert "windows/s" in result.output and "tokens/s" not in result.output

    from grutool.config_file import load_config
    from grutool.families import get_task

    cfg = load_config("configs/sines.yaml")
    prepared = get_task(cfg.task).prepare(cfg)
    columns = len(prepared.extra["scaler"].names)
    rows = reports.read_report(out)["rows"]
    assert {(r["cell"], r["mode"]) for r in rows} == {(c, m) for c in ("gru", "lstm") for m in ("infer", "train")}
    for r in rows:
        variant = cfg.model_copy(update={"model": cfg.model.model_copy(update={"cell": r["cell"]})})
        assert r["params"] == sum(p.numel() for p in get_task(cfg.task).build_model(variant, prepared).parameters())
        assert (r["vocab_size"], r["num_classes"]) == (columns, columns) == (3, 3)
        assert r["seq_len"] == cfg.data.input_length, "T: the rows a window holds"
        assert r["unit"] == "windows" and r["tokens"] == r["batch_size"] == cfg.train.batch_size
        assert r["tokens_per_s"] == pytest.approx(r["batch_size"] / (r["median_ms"] / 1000))
        assert r["input_size"] == r["hidden_size"], "I: each segment is projected to the hidden size"
    assert "windows/s" in md.read_text() and reports.unit(rows) == "windows"
    assert reports.unit([{"tokens": 5}]) == "tokens", "reports written before rows had a unit: tokens"
    refused = runner.invoke(app, ["bench", "--config", "configs/sines.yaml", "--input-size", "64"])
    assert refused.exit_code == 2 and "--input-size: task forecast feeds its recurrent layer" in refused.output


def test_a_forecast_config_says_its_windows_have_equal_lengths(tmp_path, monkeypatch):
    """Its rows said `lengths=bucketed` (train.batching's sampler), though every window is data.input_length rows:
    they now say `equal`, and --lengths, which has nothing to vary there, is refused."""
    monkeypatch.chdir(ROOT)
    out = tmp_path / "f.json"
    result = runner.invoke(app, ["bench", "--config", "configs/sines.yaml", "--mode", "infer", "--repeats", "2",
                                 "--warmup", "1", "--min-sample-ms", "1", "--threads", "1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "lengths=equal" in result.output and "bucketed" not in result.output, result.output
    assert [r["lengths"] for r in reports.read_report(out)["rows"]] == ["equal"]
    refused = runner.invoke(app, ["bench", "--config", "configs/sines.yaml", "--lengths", "packed"])
    assert refused.exit_code == 2 and "--lengths: every example of a task forecast has the same length" \
        in refused.output, refused.output
    # --seq-len was taken and ignored: rows labelled T=700 timed windows of 28 rows, as fast as T=28's.
    refused = runner.invoke(app, ["bench", "--config", "configs/sines.yaml", "--seq-len", "28,700"])
    assert refused.exit_code == 2 and "--seq-len: every example of a task forecast has data.input_length steps " \
        "(T=28); vary it with --set data.input_length=N" in refused.output, refused.output


def test_a_conditioned_lm_config_is_timed_with_its_own_conditions(tmp_path, monkeypatch):
    # Before: the lm's class count was its vocabulary (an lm's labels are its tokens), so `bench --config
    # configs/lm.yaml` built a condition embedding of 28 rows for 3 languages: 19,772 parameters against the
    # 19,572 `train` reports. Now the conditions are counted, and the parameter count is the model's own.
    monkeypatch.chdir(ROOT)
    out = tmp_path / "lm.json"
    result = runner.invoke(app, ["bench", "--config", "configs/lm.yaml", "--repeats", "1", "--warmup", "0",
                                 "--min-sample-ms", "1", "--threads", "1", "--seq-len", "8", "-q", "-o", str(out)])
    assert result.exit_code == 0, result.output
    from grutool.config_file import load_config
    from grutool.families import get_task

    cfg = load_config("configs/lm.yaml")
    prepared = get_task(cfg.task).prepare(cfg)
    expected = sum(p.numel() for p in get_task(cfg.task).build_model(cfg, prepared).parameters())
    rows = reports.read_report(out)["rows"]
    assert rows and all(r["params"] == expected for r in rows), ([r["params"] for r in rows], expected)
    assert {r["num_classes"] for r in rows} == {len(prepared.extra["conditions"])}


def _joint_config(tmp_path: Path, **model) -> Path:
    travel = ROOT / "data" / "tagging" / "travel"
    raw = {"task": "joint",
           "data": {"train": str(travel / "train"), "validation": str(travel / "validation"), "format": "parallel",
                    "scheme": "bio", "tokenizer": "whitespace"},
           "model": {"embedding_dim": 8, "hidden_size": 8, "pooling": "max", **model},
           "train": {"batch_size": 8, "monitor": "sentence_accuracy"}, "output_dir": str(tmp_path / "run")}
    path = tmp_path / "joint.yaml"
    path.write_text(json.dumps(raw), encoding="utf-8")  # JSON is YAML
    return path


@pytest.mark.parametrize("which", ["joint", "chars", "sines_covariates"])
def test_a_config_is_timed_with_the_sizes_train_reads_from_its_data(which, tmp_path, monkeypatch):
    # Before: the joint model got as many intents as tags, and a forecaster with a series embedding one series
    # (configs/sines_covariates.yaml: 8,203 parameters against the 8,211 `train` reports for its three sites);
    # with model.char_features, a char embedding of 64 made-up characters whatever the data held; and text
    # batches as long as data.max_length (ATIS, unset: 200 steps against its longest sentence's 46).
    # Now the task's other sizes are read from the data too (Task.synthetic_sizes, Task.synthetic_length).
    monkeypatch.chdir(ROOT)
    config = {"joint": lambda: str(_joint_config(tmp_path)),
              "chars": lambda: str(_joint_config(tmp_path, char_features=True, char_embedding_dim=4,
                                                 char_hidden_size=4)),
              "sines_covariates": lambda: "configs/sines_covariates.yaml"}[which]()
    out = tmp_path / "b.json"
    result = runner.invoke(app, ["bench", "--config", config, "--mode", "infer", "--repeats", "1", "--warmup", "0",
                                 "--min-sample-ms", "1", "--threads", "1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    from grutool.config_file import load_config
    from grutool.families import get_task

    cfg = load_config(config)
    prepared = get_task(cfg.task).prepare(cfg)
    expected = sum(p.numel() for p in get_task(cfg.task).build_model(cfg, prepared).parameters())
    rows = reports.read_report(out)["rows"]
    assert rows and all(r["params"] == expected for r in rows), ([r["params"] for r in rows], expected)
    if which != "sines_covariates":
        # T: the longest training sentence (as encoded), not data.max_length (or 200 when unset), the batches'
        # length whatever the data held.
        longest = max(len(x) for x in prepared.splits["train"].ids)
        assert longest < (cfg.data.max_length or 200) and {r["seq_len"] for r in rows} == {longest}
        assert f"from {cfg.data.train}; batches up to T={longest} steps" in result.output
    if which == "chars":
        chars = len(prepared.extra["chars"])
        assert chars != workloads.SYNTHETIC_CHARS, "a data set whose char vocabulary the old default would miss"
        assert f"{chars} characters from {cfg.data.train}" in result.output


def test_a_config_is_sized_by_its_training_split_without_the_other_splits_warnings(tmp_path, monkeypatch):
    # Before: bench read every split to size the model, so `bench --config configs/atis.yaml` printed the
    # validation and test splits' "intents never seen in training" warnings, noise for a timing run. Now it reads
    # the training split alone; its own warnings still show, and `train` still warns about the other splits.
    import shutil

    monkeypatch.chdir(ROOT)
    travel = ROOT / "data" / "tagging" / "travel"
    config = _joint_config(tmp_path)
    for split, (words, tags, intent) in {"train": ("", "", "flight"),  # an empty sentence: train's own warning
                                         "validation": ("fly me to the moon", "O O O O B-moon", "moon_trip")}.items():
        shutil.copytree(travel / split, tmp_path / split)
        for name, line in (("seq.in", words), ("seq.out", tags), ("label", intent)):  # a first line
            path = tmp_path / split / name
            path.write_text(line + "\n" + path.read_text(encoding="utf-8"), encoding="utf-8")
    paths = [f"data.train={tmp_path / 'train'}", f"data.validation={tmp_path / 'validation'}"]
    bench = runner.invoke(app, ["bench", "--config", str(config), *[a for p in paths for a in ("--set", p)],
                                "--mode", "infer", "--repeats", "1", "--warmup", "0", "--min-sample-ms", "1",
                                "--threads", "1", "--batch", "4"])
    assert bench.exit_code == 0, bench.output
    assert "empty sentence" in bench.output and "never seen in training" not in bench.output
    trained = runner.invoke(app, ["train", str(config), *[a for p in paths for a in ("--set", p)],
                                  "--set", "train.epochs=1"])
    assert trained.exit_code == 0, trained.output
    assert "validation: 1 sentence(s) have intents never seen in training" in trained.output


@pytest.mark.parametrize("data", ["absent", "readable"])
def test_a_config_whose_data_is_not_read_says_every_size_it_assumed(data, tmp_path, monkeypatch):
    # With --vocab-size and --num-classes (or no data file) the data is not read: a joint model's intents, a
    # forecaster's series and the characters fall back to made-up counts, and the line named the characters only.
    monkeypatch.chdir(ROOT)
    args = ["--mode", "infer", "--repeats", "1", "--warmup", "0", "--min-sample-ms", "1", "--threads", "1",
            "--vocab-size", "3", "--num-classes", "3"]
    absent = ["--set", f"data.train={tmp_path / 'absent.csv'}"] if data == "absent" else []
    joint = _joint_config(tmp_path, char_features=True, char_embedding_dim=4, char_hidden_size=4)
    result = runner.invoke(app, ["bench", "--config", str(joint), *absent, *args])
    assert result.exit_code == 0, result.output
    assert f"data not read: vocabulary 3 and 3 classes (set with --vocab-size / --num-classes); " \
           f"{workloads.SYNTHETIC_CHARS} characters, 3 intents assumed" in result.output
    absent += [a for split in ("validation", "test") for a in ("--set", f"data.{split}={tmp_path / 'absent.csv'}")
               if data == "absent"]  # with data.fractions every split names the one file
    result = runner.invoke(app, ["bench", "--config", "configs/sines_covariates.yaml", *absent, *args])
    assert result.exit_code == 0, result.output
    assert "data not read: 3 columns in and 3 targets (set with --vocab-size / --num-classes); 1 series assumed" \
           in result.output


def test_a_numeric_config_is_timed_on_sequences_as_long_as_its_longest(tmp_path, monkeypatch):
    # data.max_length (200) does not cut numeric sequences: T is the training file's longest sequence.
    monkeypatch.chdir(ROOT)
    out = tmp_path / "n.json"
    result = runner.invoke(app, ["bench", "--config", "configs/numeric.yaml", "--mode", "infer", "--repeats", "1",
                                 "--warmup", "0", "--min-sample-ms", "1", "--threads", "1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    from grutool.config_file import load_config
    from grutool.data.numeric import read_sequences

    d = load_config("configs/numeric.yaml").data
    longest = max(len(v) for v in read_sequences(d, d.train, need_labels=False).values)
    assert {r["seq_len"] for r in reports.read_report(out)["rows"]} == {longest} and longest < d.max_length


def test_a_config_of_numbers_whose_data_cannot_be_read(tmp_path, monkeypatch):
    """Without its data (not fetched yet, or run from another folder), `bench --config` of a forecaster took the
    text default, 20,000 columns, and ended in a traceback (out of memory); a numeric classifier's line spoke of a
    vocabulary of 20,000 it never has. Now: one line naming the file and the sizes to give, and the channels."""
    import yaml

    monkeypatch.chdir(tmp_path)  # the configs' relative data paths are not here
    for name in ("sines.yaml", "numeric.yaml"):
        raw = yaml.safe_load((ROOT / "configs" / name).read_text())
        raw["data"].update(train="absent/train.csv" if name == "sines.yaml" else "absent/train.ts",
                           validation=None, test=None)
        (tmp_path / name).write_text(yaml.safe_dump(raw))
    assert_user_error(runner.invoke(app, ["bench", "--config", "sines.yaml", "--mode", "infer"]),
                      "--config: absent/train.csv: data file not found, and a forecaster's model is sized by its "
                      "columns; point data.train at the file (docs/data.md), or give --vocab-size")
    args = ["--mode", "infer", "--repeats", "1", "--warmup", "0", "--min-sample-ms", "1", "--threads", "1"]
    sized = runner.invoke(app, ["bench", "--config", "sines.yaml", "--vocab-size", "3", "--num-classes", "3", *args])
    assert sized.exit_code == 0, sized.output
    numeric = runner.invoke(app, ["bench", "--config", "numeric.yaml", *args])
    assert numeric.exit_code == 0, numeric.output
    assert "data not read: 8 channels per step" in numeric.output and "vocabulary" not in numeric.output


def test_plot_writes_a_png_or_explains_the_missing_extra(tmp_path):
    import importlib.util

    png = tmp_path / "p.png"
    args = ["bench", "--smoke", "-q", "--cells", "gru,lstm", "--lengths", "padded", "--kernels", "default",
            "--plot", str(png)]
    result = runner.invoke(app, args)
    if importlib.util.find_spec("matplotlib") is None:
        assert_user_error(result, "python -m pip install -c constraints.txt -e '.[plot]'")
    else:
        assert result.exit_code == 0, result.output
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_config_with_char_features_times_the_model_with_its_char_encoder(tmp_path, monkeypatch):
    import yaml

    from grutool.bench.workloads import SYNTHETIC_CHARS, spell
    from grutool.config_file import load_config
    from grutool.families.base import synthetic_vocabs
    from grutool.families import get_task

    monkeypatch.chdir(ROOT)
    raw = yaml.safe_load((ROOT / "configs" / "sentiment.yaml").read_text())
    raw["model"]["char_features"] = True
    path = tmp_path / "chars.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = tmp_path / "c.json"
    result = runner.invoke(app, ["bench", "--config", str(path), "--repeats", "2", "--warmup", "1",
                                 "--min-sample-ms", "1", "--threads", "1", "--seq-len", "12", "-q", "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = reports.read_report(out)["rows"]
    cfg = load_config(path)
    # The data's own character vocabulary (it was once SYNTHETIC_CHARS whatever the data held).
    prepared = get_task(cfg.task).prepare(cfg)
    vocabs = synthetic_vocabs(rows[0]["vocab_size"], rows[0]["num_classes"], len(prepared.extra["chars"]))
    expected = sum(p.numel() for p in get_task(cfg.task).build_model(cfg, vocabs).parameters())
    assert {r["mode"] for r in rows} == {"infer", "train"} and all(r["params"] == expected for r in rows)

    import torch
    ids = torch.tensor([5, 9, 5, 16])
    chars = spell(ids)  # (T, 8): same token, same spelling; lengths 1 + id % 8; ids inside the vocabulary
    assert torch.equal(chars[0], chars[2]) and (chars != 0).sum(1).tolist() == [6, 2, 6, 1]
    assert int(chars.max()) < SYNTHETIC_CHARS


# --- saved reports: shown, compared, plotted, converted without measuring ----------------------


@pytest.fixture
def no_measuring(monkeypatch):
    from grutool.bench import runner as bench_runner

    def refuse(*a, **k):
        raise AssertionError("a saved report was measured again")

    monkeypatch.setattr(bench_runner, "run", refuse)


def test_compare_two_saved_reports_measures_nothing(smoke, no_measuring, tmp_path):
    old = smoke[1] / "s.json"
    result = runner.invoke(app, ["bench", "--compare", str(old), str(old), "-o", str(tmp_path / "again.md")])
    assert result.exit_code == 0, result.output
    assert "new / old" in result.stdout and "1.00×" in result.stdout
    assert (tmp_path / "again.md").read_text().startswith("#")


def test_compare_without_anything_new_is_refused_not_a_default_grid_run(no_measuring, tmp_path, monkeypatch):
    import json as _json

    monkeypatch.chdir(tmp_path)
    (tmp_path / "old.json").write_text(_json.dumps(make_report([make_row()])))
    assert_user_error(runner.invoke(app, ["bench", "--compare", "old.json"]),
                      "--compare old.json: nothing to compare it with; give the newer saved report")


def test_a_saved_report_refuses_options_that_set_what_to_measure(smoke, no_measuring):
    assert_user_error(runner.invoke(app, ["bench", str(smoke[1] / "s.json"), "--cells", "gru"]),
                      "--cells: set what to measure, but")


def test_plot_from_a_saved_report(smoke, no_measuring, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "saved.png"
    result = runner.invoke(app, ["bench", str(smoke[1] / "s.json"), "--plot", str(png), "-q"])
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pair_parts_splits_each_call_into_the_compiled_pair_calls_and_the_rest(monkeypatch, capsys):
    # benchmarks/pair_parts.py: the time inside the extension's *_pair calls is a real part of each call (more
    # than nothing, less than the whole), for both cells and both directions of the pass.
    import importlib.util

    import torch

    from grutool.modules.rnn import compiled

    why = compiled._why_not()
    if why:
        pytest.skip(f"kernel compiled cannot be built here: {why}")
    monkeypatch.setattr(compiled, "extension", compiled.extension)  # the script wraps it; put it back after
    threads = torch.get_num_threads()
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # as `python benchmarks/pair_parts.py` has it
    spec = importlib.util.spec_from_file_location("pair_parts", ROOT / "benchmarks" / "pair_parts.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    try:
        assert script.main(["--hidden", "8", "--lengths", "padded,packed", "--threads", "1", "--rounds", "2",
                            "--batch", "4", "--seq-len", "6", "--input-size", "5"]) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith(("gru ", "lstm "))]
    assert [r[0] for r in rows] == ["gru", "lstm"] * 2
    for r in rows:
        total, fwd, bwd, pair, pair_fwd, pair_bwd, rest = (float(v) for v in (r[1], r[2], r[3], r[5], r[6], r[7], r[9]))
        assert 0 < pair_fwd < fwd and 0 < pair_bwd < bwd
        assert math.isclose(pair + rest, total, abs_tol=0.011)  # printed to 2 and 3 decimals
    assert out.count("GRU / LSTM") == 2


HELP_WITHOUT_TORCH = """
import io, runpy, sys, contextlib
from pathlib import Path
heavy, empty = [], []
for path in sorted(Path("benchmarks").glob("*.py")):
    if path.name in ("script_args.py", "plain_pytorch.py"):  # modules the scripts import, no command line
        continue
    sys.argv, out = [str(path), "--help"], io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_path(str(path), run_name="__main__")
    except SystemExit:
        pass
    if "usage:" not in out.getvalue():
        empty.append(path.name)
    if "torch" in sys.modules:  # the first that imports it: the scripts after it cannot be judged here
        heavy.append(path.name)
        break
print(heavy, empty)
"""


def test_benchmark_scripts_answer_help_without_importing_torch():
    # `python benchmarks/X.py --help` took seconds, and a bad argument was reported only after them: the scripts
    # imported torch and grutool's modules on it before parsing their arguments. One interpreter for all of them,
    # benchmarks/ first on its path as `python benchmarks/X.py` has it; torch imported by none.
    import os

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "benchmarks"), str(ROOT)])}
    done = subprocess.run([sys.executable, "-c", HELP_WITHOUT_TORCH], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[] []", done.stdout + done.stderr  # (imported torch, printed no usage)


BAD_SCRIPT_ARGS = [
    ("kernel_calls.py", ["--repeats", "0"], "argument --repeats: must be > 0 (got 0)"),
    ("step_gemm.py", ["--hidden", "64,0"], "argument --hidden: must be > 0 (got 0)"),
    ("packing_ab.py", ["--cells", "gru,lstn"], "argument --cells: 'lstn' is not one of gru, lstm, rnn"),
    ("omp_wait.py", ["--policies", "default,sleepy"], "argument --policies: 'sleepy' is not one of default, passive"),
    ("japanese_vowels.py", ["--holdout-percent", "95"], "argument --holdout-percent: '95' is not a whole percent"),
    ("japanese_vowels.py", ["--no-test", "--no-holdout"], "--no-test with --no-holdout leaves nothing to run"),
]


@pytest.mark.parametrize("script,args,expected", BAD_SCRIPT_ARGS, ids=[s for s, _, _ in BAD_SCRIPT_ARGS])
def test_benchmark_scripts_refuse_bad_arguments_without_a_traceback(script, args, expected, monkeypatch, capsys):
    # `--repeats 0` was a StatisticsError traceback after the timing loop, `--hidden 0` torch's ValueError,
    # an unknown cell a ValueError: now argparse's error, exit 2, before anything runs.
    # Run as `python benchmarks/SCRIPT ARGS` from the repository root runs it (its __main__ block, its folder
    # first on sys.path), in this process: a new interpreter cost a torch import (~3 s) per script. An uncaught
    # exception, which the interpreter would print as a traceback, fails the test here.
    import runpy

    path = str(ROOT / "benchmarks" / script)
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    monkeypatch.setattr(sys, "argv", [path, *args])
    with pytest.raises(SystemExit) as exited:
        runpy.run_path(path, run_name="__main__")
    out, err = capsys.readouterr()
    assert exited.value.code == 2, err
    assert "Traceback" not in err and expected in err.splitlines()[-1], err
    assert out == ""


def test_benchmark_scripts_print_a_user_error_as_one_line(monkeypatch, capsys, tmp_path):
    # A run directory not found, data not in place, a missing --base file: one `error:` line and exit 2.
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import script_args

    def missing_run():
        raise UserError(f"{tmp_path}: run directory not found")

    def missing_file():
        open(tmp_path / "gru.cpp")

    assert script_args.run(missing_run) == 2 and script_args.run(missing_file) == 2
    assert script_args.run(lambda: None) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == [f"error: {tmp_path}: run directory not found", f"error: {tmp_path / 'gru.cpp'}: file not found"]


def test_japanese_vowels_screening_counts_each_seed_s_held_out_errors(monkeypatch, capsys, tmp_path):
    """`--no-test --holdout-percent P --holdout-seeds ...`: per seed, a run on P % of TRAIN scored on the rest;
    the errors printed per seed are those of each run's last epoch, and the table sums them. Run on the toy
    numeric data (named as the script reads it), as the bad-argument test runs a script."""
    import runpy
    import shutil

    data = tmp_path / "jv"
    data.mkdir()
    shutil.copy(ROOT / "data/numeric/train.ts", data / "JapaneseVowels_TRAIN.ts")
    out_json = tmp_path / "screen.json"
    path = str(ROOT / "benchmarks" / "japanese_vowels.py")
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    monkeypatch.setattr(sys, "argv", [path, "--config", str(ROOT / "configs/numeric.yaml"), "--data", str(data),
                                      "--cells", "gru", "--no-test", "--holdout-percent", "50",
                                      "--holdout-seeds", "3", "4", "--set", "train.epochs=1", "--json",
                                      str(out_json)])
    with pytest.raises(SystemExit) as exited:
        runpy.run_path(path, run_name="__main__")
    assert exited.value.code == 0
    held = json.loads(out_json.read_text(encoding="utf-8"))["holdouts"]
    assert [h["seed"] for h in held] == [3, 4]
    for h in held:  # half of each class held out; the errors are the last epoch's
        assert h["holdout_n"] > 0 and h["holdout_errors"] == round((1 - h["holdout_accuracy"]) * h["holdout_n"])
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| gru"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == " ".join(str(h["holdout_errors"]) for h in held)
    assert cells[2] == f"**{sum(h['holdout_errors'] for h in held)}**" and cells[3] == str(sum(h["holdout_n"] for h in held))


MISSING_DATA_SCRIPTS = [("forecast_latency.py", "etth1.yaml")]


@pytest.mark.parametrize("script,config", MISSING_DATA_SCRIPTS, ids=[s for s, _ in MISSING_DATA_SCRIPTS])
def test_benchmark_scripts_name_missing_data_in_one_line(script, config, monkeypatch, capsys, tmp_path):
    # forecast_latency.py printed grutool's line, then a CalledProcessError traceback of its own `grutool train`:
    # now one `error:` line naming the missing file and exit 2, before anything trains (run as the bad-argument
    # test above runs a script: as __main__, in this process)
    import runpy

    raw = yaml.safe_load((ROOT / "configs" / config).read_text(encoding="utf-8"))
    missing = tmp_path / "nowhere" / "data.csv"
    raw["data"].update(train=str(missing), validation=str(missing), test=str(missing))
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    path = str(ROOT / "benchmarks" / script)
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    monkeypatch.setattr(sys, "argv", [path, "--config", str(tmp_path / "c.yaml")])
    with pytest.raises(SystemExit) as exited:
        runpy.run_path(path, run_name="__main__")
    out, err = capsys.readouterr()
    assert exited.value.code == 2 and out == "", (out, err)
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {missing}: data file not found"), err


def test_terminal_table_at_80_columns_shows_every_value_whole(smoke):
    # Ten columns at 80: batch size 128 read `1…` and parameter counts `20,…`; now the table splits in two.
    from rich.console import Console

    report = json.loads((smoke[1] / "s.json").read_text())
    report["rows"] = [dict(r, batch_size=128, params=r["params"] + 1_000_000) for r in report["rows"]]
    console = Console(width=80, record=True, file=open("/dev/null", "w"))
    parts = reports.rich_tables(report, lambda t: console.measure(
        t, options=console.options.update_width(10_000)).maximum <= 80)
    for part in parts:
        console.print(part)
    tables = [p for p in parts if hasattr(p, "columns")]
    assert len(tables) >= 2  # split: the whole table does not fit 80 columns
    for t in tables:  # each part tells its rows apart: cell, lengths, B and kernel in every one
        assert {"cell", "kernel"} <= {c.header for c in t.columns}, [c.header for c in t.columns]
    text = console.export_text()
    assert "…" not in text, text
    assert all(len(line) <= 80 for line in text.splitlines())
    for r in report["rows"]:
        assert f"{r['params']:,}" in text and f"{r['tokens_per_s']:,.0f}" in text
    assert "128" in text and "grutool bench" in text and "median time per batch" in text


def test_plot_title_stays_inside_a_narrow_figure(smoke, tmp_path, monkeypatch):
    # One long suptitle line ran past both edges of a 6-inch figure; it wraps now.
    pytest.importorskip("matplotlib")
    from grutool.bench import plot as plots

    seen = {}

    def check(fig, path, dpi):
        fig.canvas.draw()
        box = fig._suptitle.get_window_extent(fig.canvas.get_renderer())
        seen["inside"] = box.x0 >= 0 and box.x1 <= fig.bbox.width and box.y1 <= fig.bbox.height
        seen["text"] = fig._suptitle.get_text()

    monkeypatch.setattr(plots, "save_png", check)
    report = json.loads((smoke[1] / "s.json").read_text())
    report["rows"] = report["rows"][:2]
    report["env"] = dict(report["env"], cpu="Intel(R) Xeon(R) Platinum 8480+ Processor with a long name")
    plots.plot(report, tmp_path / "b.png")
    assert seen["inside"], seen
    assert "interquartile range" in seen["text"].replace("\n", " ")


def test_plot_gives_each_kernels_choice_its_own_bars(smoke, tmp_path, monkeypatch):
    # `--kernels default,native,fused,compiled`: every choice but native was labelled "default kernels", so the
    # default, fused and compiled bars of a cell stood at one x, on top of each other.
    pytest.importorskip("matplotlib")
    from grutool.bench import plot as plots

    seen = {}

    def check(fig, path, dpi):
        ax = fig.axes[0]
        seen["x"] = sorted(round(b.get_x(), 6) for b in ax.patches)
        seen["labels"] = [t.get_text() for t in ax.get_xticklabels()]

    monkeypatch.setattr(plots, "save_png", check)
    report = json.loads((smoke[1] / "s.json").read_text())
    one = next(r for r in report["rows"] if r["cell"] == "gru" and r["mode"] == "infer" and r["lengths"] == "padded")
    report["rows"] = [dict(one, kernels=k, kernel={"default": "compiled", "native": "native"}.get(k, k))
                      for k in ("default", "native", "fused", "compiled")]
    plots.plot(report, tmp_path / "k.png")
    assert len(seen["x"]) == 4 and len(set(seen["x"])) == 4, seen
    assert seen["labels"] == ["default kernels", "oneDNN off", "fused", "compiled"]


def test_a_default_row_says_so_where_a_report_has_several_kernels_choices(smoke):
    # `--kernels default,compiled`: both rows read `compiled`, told apart only by their order.
    report = json.loads((smoke[1] / "s.json").read_text())
    rows = [r for r in report["rows"] if r["cell"] == "gru" and r["mode"] == "infer" and r["lengths"] == "padded"]
    both = dict(report, rows=[dict(rows[0], kernels="default", kernel="compiled"),
                              dict(rows[0], kernels="compiled", kernel="compiled")])
    lines = [line for line in reports.to_markdown(both).splitlines() if line.startswith("| gru")]
    assert len(lines) == 2 and "| compiled (default) |" in lines[0] and "| compiled |" in lines[1], lines
    one = dict(report, rows=[dict(rows[0], kernels="default", kernel="compiled")])
    assert "(default)" not in reports.to_markdown(one)


def test_a_stream_config_is_timed_on_chunks_of_its_bptt_steps(tmp_path, monkeypatch):
    # A stream (train.bptt) trains on chunks of bptt steps; bench timed batches of data.max_length or 200 steps
    # (configs/lm_stream.yaml: T=200 against its 32), and said "2 classes" of an lm without conditions.
    monkeypatch.chdir(ROOT)
    out = tmp_path / "s.json"
    result = runner.invoke(app, ["bench", "--config", "configs/lm_stream.yaml", "--set", "train.bptt=12", "--mode",
                                 "infer", "--repeats", "1", "--warmup", "0", "--min-sample-ms", "1", "--threads",
                                 "1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = reports.read_report(out)["rows"]
    assert {r["seq_len"] for r in rows} == {12}
    # each chunk exactly bptt steps, run dense as training runs it: it was timed `bucketed`, on packed batches of
    # varied lengths (253 tokens in B 8 x T 32)
    assert {r["lengths"] for r in rows} == {"equal"} and {r["tokens"] for r in rows} == {12 * rows[0]["batch_size"]}
    assert "chunks of T=12 steps (train.bptt)" in result.output and "classes" not in result.output.split("\n")[0]


def test_how_threads_wait_is_recorded_shown_and_compared():
    # A busy machine's timings depend on it (OMP_WAIT_POLICY, grutool/threads.py): a report says it beside the
    # thread count, and comparing reports made under two policies says they differ.
    old = make_report([make_row("gru", 64, 10.0)])
    new = make_report([make_row("gru", 64, 5.0)])
    old["env"]["thread_wait"], new["env"]["thread_wait"] = "libgomp default", "OMP_WAIT_POLICY=PASSIVE"
    assert "2 torch threads (OMP_WAIT_POLICY=PASSIVE);" in reports.environment_lines(new)[1]
    assert reports.compare(new, old)["env_changes"] == ["thread_wait: libgomp default -> OMP_WAIT_POLICY=PASSIVE"]
    from grutool.threads import thread_wait

    assert thread_wait({}) == "libgomp default"
    assert thread_wait({"GOMP_SPINCOUNT": "1k", "OMP_WAIT_POLICY": "passive"}) == \
        "OMP_WAIT_POLICY=passive, GOMP_SPINCOUNT=1k"


def test_counts_of_one_are_singular():
    # `1 targets from data/numeric/train.csv` (bench --config on a regressor), `median of 1 samples`.
    from grutool.errors import counted_plural

    assert [counted_plural(n, w) for n, w in ((1, "classes"), (3, "classes"), (1, "targets"), (1, "tags"))] == \
        ["1 class", "3 classes", "1 target", "1 tag"]
    result = runner.invoke(app, ["bench", "--cells", "gru", "--hidden-size", "8", "--batch", "2", "--seq-len", "3",
                                 "--mode", "infer", "--lengths", "padded", "--kernels", "native", "--repeats", "1",
                                 "--warmup", "0", "--min-sample-ms", "1", "--threads", "1"])
    assert result.exit_code == 0 and "median of 1 sample after 0 warm-up" in result.output, result.output


def test_compare_marks_the_rows_whose_kernel_default_picked(tmp_path, no_measuring):
    """Beside a row that named the compiled kernel, the row `default` ran it on read `compiled` too: which of
    the two was compared could not be told (the report's own table says `compiled (default)`)."""
    import json as _json

    old = make_report([make_row(kernel="compiled", kernels="default", median=10.0)])
    new = make_report([make_row(kernel="compiled", kernels="default", median=5.0),
                       make_row(kernel="compiled", kernels="compiled", median=6.0)])
    for name, report in (("old", old), ("new", new)):
        (tmp_path / f"{name}.json").write_text(_json.dumps(report))
    result = runner.invoke(app, ["bench", "--compare", str(tmp_path / "old.json"), str(tmp_path / "new.json")],
                           terminal_width=200)
    assert result.exit_code == 0, result.output
    [row] = [line for line in result.stdout.splitlines() if "0.50×" in line]
    assert "compiled (default)" in row, result.stdout


def test_progress_lines_into_a_pipe_end_at_every_row(tmp_path):
    """Into a file or pipe, one line per group as it starts: the count stopped at the last group's start
    (`[6/8]`), never saying all rows were timed."""
    import re

    r = runner.invoke(app, ["bench", "--smoke", "--cells", "gru", "-o", str(tmp_path / "s.json")])
    assert r.exit_code == 0, r.output
    counts = re.findall(r"^\[(\d+)/(\d+)\] ", r.output, flags=re.M)
    assert counts[0][0] == "0" and counts[-1][0] == counts[-1][1] and f"[{counts[-1][1]}/{counts[-1][1]}] done" in r.output
