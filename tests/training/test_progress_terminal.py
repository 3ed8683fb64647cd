"""What a person sees while training: a real pseudo-terminal (80 and 160 columns), and a log file.

The terminal output is replayed through a small screen model (carriage return, newline, erase to end of
line, wrapping at the width), so a bar left behind, or a log line written through the bar, shows up as
the garbled screen line a person would see.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import run_in_terminal, tiny_config

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^(data: |model: |epoch \d+/\d+: loss |done: |best: |  [a-z]|run directory: )")  # "  ": best: goes on


def screen(raw: str, width: int) -> list[str]:
    """The lines a terminal of `width` columns shows after `raw` (scrollback included)."""
    lines, row, col = [[]], 0, 0
    i = 0
    while i < len(raw):
        ch = raw[i]
        if raw.startswith("\x1b[K", i):
            del lines[row][col:]
            i += 3
            continue
        if raw.startswith("\x1b[A", i):
            row = max(row - 1, 0)
            i += 3
            continue
        if ch == "\x1b":  # other escapes (colours): skip to the final letter
            m = re.match(r"\x1b\[[0-9;?]*[A-Za-z]", raw[i:])
            i += m.end() if m else 1
            continue
        i += 1
        if ch == "\r":
            col = 0
        elif ch == "\n":
            row, col = row + 1, 0
        else:
            if col >= width:
                row, col = row + 1, 0
            while len(lines) <= row:
                lines.append([])
            line = lines[row]
            line.extend(" " * (col - len(line) + 1)) if len(line) <= col else None
            line[col] = ch
            col += 1
        while len(lines) <= row:
            lines.append([])
    return ["".join(l).rstrip() for l in lines if "".join(l).strip()]


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("progress")
    raw = tiny_config(root, epochs=3, device="cpu")
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


@pytest.mark.parametrize("width", [80, 160])
def test_terminal_shows_clean_lines_and_no_bar_left_behind(config, width, tmp_path):
    raw = run_in_terminal(["train", str(config), "--output-dir", "run"], width, cwd=tmp_path)
    assert "%|" in raw, "a progress bar was drawn"
    shown = screen(raw, width)
    assert [l for l in shown if not LINE.match(l)] == [], "\n".join(shown)
    assert [l.split(":")[0] for l in shown if l.startswith("epoch")] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert all(len(l) <= 80 for l in shown if l.startswith("epoch")), "epoch lines fit 80 columns"


def test_a_dumb_terminal_gets_the_log_file_s_lines_and_no_escape_codes(config, tmp_path, monkeypatch):
    monkeypatch.setenv("TERM", "dumb")  # Emacs' shell, an IDE's console: no cursor movement, no erase
    raw = run_in_terminal(["train", str(config), "--output-dir", "run"], 80, cwd=tmp_path)
    assert "\x1b" not in raw and "%|" not in raw, raw  # was `reading data …^[[Kdata: ...` and a bar
    assert [l.split(":")[0] for l in raw.splitlines() if l.startswith("epoch")] == ["epoch 1/3", "epoch 2/3",
                                                                                   "epoch 3/3"]


def test_log_file_gets_plain_lines_without_bar(config, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "grutool", "train", str(config), "--output-dir",
                           str(tmp_path / "run")], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr and "%|" not in proc.stderr
    assert re.search(r"^epoch 1/3: loss \d\.\d{4} \| val loss \d\.\d{4}, accuracy \d\.\d{4} \| [\d,]+ tok/s",
                     proc.stderr, re.M), proc.stderr
    assert "e+0" not in proc.stderr


def test_line_mode_reports_steps_with_eta():
    import io
    import logging

    from grutool.training.progress import Progress, duration, number

    class Trainer:
        class state:
            step, epoch = 0, 0
        class cfg:
            class train:
                epochs = 2
        total_steps = 10

        class task:
            rate_unit = staticmethod(lambda cfg: "tok")
            update_name = staticmethod(lambda cfg: "step")

    p = Progress("lines", every_s=0.0)
    trainer = Trainer()
    log, text = logging.getLogger("grutool"), io.StringIO()
    handler, level = logging.StreamHandler(text), log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        p.on_train_begin(trainer)
        p.on_epoch_begin(trainer)
        trainer.state.step = 4
        p.on_step_end(trainer, 0.5, 1200)
        p.on_epoch_begin(trainer)  # a loss below 0.001 keeps 4 significant digits, as the epoch lines write it
        trainer.state.step = 5
        p.on_step_end(trainer, 0.0007948, 1200)
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    assert re.search(r"step 4/10 \(40%\), epoch 1/2: loss 0\.5000, [\d,]+ tok/s, 0:00 elapsed, ~0:00 left",
                     text.getvalue()), text.getvalue()
    assert re.search(r"step 5/10 \(50%\), epoch 1/2: loss 0\.0007948, ", text.getvalue()), text.getvalue()
    assert (number(23480.4), number(0.43121), number(7), duration(3725)) == ("23,480", "0.4312", "7", "1:02:05")


def test_bench_bar_in_a_terminal_is_training_s_bar_and_is_erased(tmp_path):
    # One progress library (tqdm, grutool.training.progress.TerminalBar) for train and bench; bench's former
    # rich bar failed in a terminal (its lazy console is no context manager: "lost sys.stderr").
    raw = run_in_terminal(["bench", "--smoke"], 80, cwd=tmp_path)
    assert "%|" in raw, "a progress bar was drawn"
    shown = screen(raw, 80)
    assert not [l for l in shown if "%|" in l], "\n".join(shown)
    assert shown[-1].startswith("smoke: ok"), "\n".join(shown)


def _monitors():
    from grutool.families import TASKS

    return sorted({(name, m) for name, task in TASKS.items() for m in task.monitors})


@pytest.mark.parametrize("task, monitor", _monitors())
def test_epoch_line_of_every_monitor_fits_80_columns(task, monitor):
    """Tagger and joint monitors (`sentence_accuracy`) made a 99-epoch line 83 columns: it wrapped."""
    from grutool.training.progress import epoch_line

    metrics = {"train_loss": 0.3468, "val_loss": 0.3239, "tokens_per_s": 123_851.0}
    metrics.setdefault(f"val_{monitor}", 0.678)
    line = epoch_line(99, 100, metrics, monitor)
    assert len(line) <= 80, line
    assert line.startswith("epoch 99/100: loss 0.3468 | val loss 0.3239") and line.endswith("123,851 tok/s")
    assert monitor == "loss" or "0.6780" in line, line


@pytest.mark.parametrize("task, monitor", _monitors())
@pytest.mark.parametrize("partial", [(3, 25), (3_000, 25_000), (30_000, 250_000)])
def test_an_epoch_cut_short_says_so_within_80_columns(task, monitor, partial):
    """train.max_steps below an epoch printed `epoch 1/30: ...` as if the epoch had been trained whole."""
    from grutool.training.progress import epoch_line

    metrics = {"train_loss": 0.3468, "val_loss": 0.3239, "tokens_per_s": 123_851.0}
    metrics.setdefault(f"val_{monitor}", 0.678)
    line = epoch_line(99, 100, metrics, monitor, partial=partial)
    assert len(line) <= 80, line
    assert re.match(rf"epoch 99/100 \(({partial[0]:,} of {partial[1]:,} steps|{partial[0]:,}/{partial[1]:,} "
                    rf"steps|partial)\): loss 0.3468 \| val loss 0.3239", line), line
    assert "(3 of 25 steps)" in epoch_line(1, 30, {"train_loss": 0.5}, None, partial=(3, 25))
    # numbers call an optimizer step an update (their steps are in time); under --nproc a step is a batch per process
    assert "(3 of 25 updates)" in epoch_line(1, 30, {"train_loss": 0.5}, None, partial=(3, 25), step="update")


def test_epoch_line_keeps_the_full_name_when_it_fits():
    from grutool.training.progress import epoch_line

    metrics = {"train_loss": 0.5, "val_loss": 0.4, "val_sentence_accuracy": 0.8, "tokens_per_s": 3773.0}
    assert epoch_line(1, 2, metrics, "sentence_accuracy") == \
        "epoch 1/2: loss 0.5000 | val loss 0.4000, sentence_accuracy 0.8000 | 3,773 tok/s"
    assert "sentence_acc 0.8000" in epoch_line(10, 40, {**metrics, "tokens_per_s": 13_851.0}, "sentence_accuracy")


def test_a_validation_loss_that_is_the_monitored_figure_is_said_once():
    """A forecaster trained on the mse and monitoring it said `val loss 0.9107, mse 0.9107` on every line."""
    from grutool.training.progress import epoch_line

    same = {"train_loss": 0.5, "val_loss": 0.9107, "val_mse": 0.9107, "tokens_per_s": 100.0}
    assert epoch_line(1, 2, same, "mse", "windows") == "epoch 1/2: loss 0.5000 | val mse 0.9107 | 100 windows/s"
    other = {**same, "val_loss": 0.6}  # an mae loss beside the mse monitor: both said
    assert "val loss 0.6000, mse 0.9107" in epoch_line(1, 2, other, "mse", "windows")


@pytest.mark.parametrize("name, unit", [("sines.yaml", "windows"), ("numeric.yaml", "steps"),
                                        ("sentiment.yaml", "tok")])
def test_the_epoch_line_names_what_its_speed_counts(tmp_path, caplog, name, unit):
    """A forecaster's epoch line said `| 1,718 tok/s` (its windows' input rows) and a numeric run's counted its
    steps as tokens: the speed is now named by what it counts, the task's `rate_unit`. A forecaster's counted
    its windows' input rows (`252,538 rows/s` of a 420-row split): it counts windows, as `bench --config` does."""
    from conftest import shipped_config
    from grutool.config_file import parse_config
    from grutool.training.loop import train

    raw = shipped_config(name, tmp_path / "run", train={"epochs": 1})
    with caplog.at_level("INFO", logger="grutool"):
        train(parse_config(raw))
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch 1/1:")]
    assert re.search(rf"\| [\d,]+ {unit}/s$", line), line
    if unit == "windows":  # the speed times the epoch's seconds is the training split's windows
        import json

        row = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
        windows = json.loads((tmp_path / "run" / "summary.json").read_text())["examples"]["train"]
        assert round(row["tokens_per_s"] * row["epoch_time_s"]) == windows, (row, windows)


def test_tagger_training_in_80_columns_shows_unwrapped_lines(tmp_path):
    import shutil

    shutil.copytree(ROOT / "data" / "tagging", tmp_path / "data" / "tagging")
    shutil.copy(ROOT / "configs" / "tagging.yaml", tmp_path / "tagging.yaml")
    raw = run_in_terminal(["train", "tagging.yaml", "--output-dir", "run", "--set", "train.epochs=2"], 80,
                          cwd=tmp_path)
    shown = screen(raw, 80)
    assert [l for l in shown if not LINE.match(l)] == [], "\n".join(shown)


def test_a_warning_while_reading_data_gets_its_own_line():
    """ATIS: `reading data …validation: 1 token(s) have tags never seen ...` on one line; now the warning is
    written on a clean line and `reading data …` drawn again below it, then erased."""
    import io
    import logging

    from grutool.training.progress import Progress

    stream = io.StringIO()
    log, handler = logging.getLogger("grutool"), logging.StreamHandler(stream)
    log.addHandler(handler)
    try:
        with Progress("bar", stream=stream).stage("reading data"):
            log.warning("validation: 1 token(s) have tags never seen in training")
    finally:
        log.removeHandler(handler)
    assert screen(stream.getvalue(), 80) == ["validation: 1 token(s) have tags never seen in training"]
    assert "\r\x1b[Kvalidation:" in stream.getvalue() and "\nreading data …" in stream.getvalue()


@pytest.mark.parametrize("tty", [True, False])
def test_a_long_log_record_wraps_at_words_on_a_terminal_only(tty, monkeypatch):
    """ATIS eval in 80 columns: the terminal broke `... counted as errors: 'I-r` / `eturn_date...'` mid-word.
    On a terminal the grutool logger's records now wrap at word boundaries; into a pipe a record stays one line."""
    import io
    import logging

    from grutool.cli.console import setup_logging

    class Stream(io.StringIO):
        def isatty(self):
            return tty

    stream = Stream()
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("NO_COLOR", "1")  # words only here; the label's colour: test_a_logged_warning_s_label_*
    log = logging.getLogger("grutool")
    level, handlers = log.level, list(log.handlers)
    try:
        setup_logging(quiet=False)
        tags = ", ".join(f"'I-return_date.day_name_{i}' ({i})" for i in range(8))
        log.warning("test: 11 token(s) have tags never seen in training, counted as errors: %s", tags)
    finally:
        log.handlers[:] = handlers
        log.setLevel(level)
    lines = stream.getvalue().splitlines()
    words = " ".join(lines).split()
    assert words == ("warning: test: 11 token(s) have tags never seen in training, counted as errors: " + tags).split()
    if tty:
        assert len(lines) > 1 and all(len(l) < 80 for l in lines), lines
        assert all("'I-return_date.day_name_" in l for l in lines[1:]), "each tag kept whole on its line"
    else:
        assert len(lines) == 1


@pytest.mark.parametrize("terminal, env, coloured", [
    (True, {}, True), (False, {}, False), (True, {"NO_COLOR": "1"}, False), (True, {"TERM": "dumb"}, False)])
def test_a_logged_warning_s_label_is_coloured_as_the_cli_s_own_warnings(terminal, env, coloured, monkeypatch):
    """A logged warning's `warning:` was never coloured, while `warning()`'s is yellow on a colour terminal: now
    the formatter writes the label as that console prints `warning()`'s, plain wherever rich prints no colour."""
    import io
    import logging

    from rich.console import Console

    from grutool.cli.console import WARNING, Wrapping, _labelled

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("COLUMNS", "200")
    console = Console(file=io.StringIO(), force_terminal=terminal, highlight=False, emoji=False)
    record = logging.LogRecord("grutool", logging.WARNING, __file__, 1, "odd value %s", ("[x]",), None)
    logged = Wrapping(console).format(record)
    monkeypatch.setattr("grutool.cli.console.err", console)
    _labelled(WARNING, "yellow", "odd value [x]")  # what `warning()` prints through that console
    assert logged + "\n" == console.file.getvalue()
    assert ("\x1b[" in logged) is coloured and logged.endswith(" odd value [x]"), repr(logged)
    notice = logging.LogRecord("grutool", logging.INFO, __file__, 1, "done", (), None)
    assert Wrapping(console).format(notice) == "done"


@pytest.mark.parametrize("quiet", [False, True])
def test_the_kernel_build_notice_shows_under_quiet_without_a_warning_label(quiet, monkeypatch):
    """The compiled kernel's one-time build line is a notice: shown even under -q, as it explains a pause of
    20-60 s, but nothing is wrong, so it is not labelled `warning:` as a real warning beside it is."""
    import io
    import logging

    from grutool.cli.console import NOTICE, setup_logging

    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    log = logging.getLogger("grutool")
    level, handlers = log.level, list(log.handlers)
    try:
        setup_logging(quiet=quiet)
        logging.getLogger("grutool.modules.rnn.compiled").warning("kernel compiled: building it into %s", "/c",
                                                                  extra={NOTICE: True})
        log.warning("a real warning")
    finally:
        log.handlers[:] = handlers
        log.setLevel(level)
    assert stream.getvalue().splitlines() == ["kernel compiled: building it into /c", "warning: a real warning"]


def test_the_kernel_build_line_is_logged_as_a_notice(monkeypatch, tmp_path, caplog):
    """compiled.build says the build through the notice path (the key console.NOTICE reads)."""
    import logging

    from grutool.cli.console import NOTICE
    from grutool.modules.rnn import compiled

    if compiled._why_not():
        pytest.skip(f"no build tools here: {compiled._why_not()}")
    monkeypatch.setattr(compiled, "_will_build", lambda *a: True)
    # The build itself is not this test's: neither its child process (`apart.run`, which a patched load would not
    # reach: it compiled for real, ~25 s) nor the load after it.
    monkeypatch.setattr("grutool.modules.rnn.apart.run", lambda *a: None)
    monkeypatch.setattr("torch.utils.cpp_extension.load", lambda **k: None)
    with caplog.at_level(logging.WARNING, logger="grutool"):
        compiled.build(tmp_path / "ext")
    said = [r for r in caplog.records if "kernel compiled: building it" in r.getMessage()]
    assert len(said) == 1 and getattr(said[0], NOTICE, False) is True


def test_a_shortened_monitor_name_stays_short_for_the_rest_of_the_run():
    """The epoch line's name of the monitored figure switched between `sentence_accuracy` and `sentence_acc` from
    epoch to epoch, as the speed figure grew or shrank by a digit: once shortened, it now stays short."""
    from grutool.training.progress import EpochLines, epoch_line

    fast = {"train_loss": 0.3468, "val_loss": 0.3239, "val_sentence_accuracy": 0.678, "tokens_per_s": 123_851.0}
    slow = {**fast, "tokens_per_s": 98.0}
    assert "sentence_accuracy 0.6780" in epoch_line(99, 100, slow, "sentence_accuracy")  # fits alone
    assert "sentence_acc 0.6780" in epoch_line(99, 100, fast, "sentence_accuracy")      # does not
    lines = EpochLines("sentence_accuracy")
    shown = [lines(e, 100, m) for e, m in ((97, slow), (98, fast), (99, slow))]
    assert "sentence_accuracy 0.6780" in shown[0], shown
    assert all("sentence_acc 0.6780" in line and len(line) <= 80 for line in shown[1:]), shown
