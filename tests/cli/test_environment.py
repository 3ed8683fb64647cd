"""grutool where users run it: home folders in config paths, symlinked run directories, pipes closed early,
non-UTF-8 terminals, narrow and dumb terminals, closed stdin, an unwritable home, signals during training."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import invoke, tiny_config, trained_tiny_run

ROOT = Path(__file__).resolve().parents[2]


# --- paths ---------------------------------------------------------------------------------------------


def test_a_tilde_in_config_paths_is_the_home_folder(tmp_path, monkeypatch):
    home = tmp_path / "home"
    raw = tiny_config(home / "project")
    for name in ("train", "validation", "test"):
        raw["data"][name] = f"~/project/data/{name}.tsv"
    raw["output_dir"] = "~/runs/tiny"
    (tmp_path / "my.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    result = invoke("train", "my.yaml", "-q", "--set", "train.epochs=1")
    assert result.exit_code == 0, result.output
    assert (home / "runs" / "tiny" / "best.pt").is_file()
    assert not (tmp_path / "~").exists(), "a folder named ~ in the working directory"
    saved = yaml.safe_load((home / "runs" / "tiny" / "config.yaml").read_text(encoding="utf-8"))
    assert saved["data"]["train"] == str(home / "project" / "data" / "train.tsv")


def test_a_run_directory_given_as_a_link_to_a_folder_not_made_yet_is_made_there(tmp_path):
    raw = tiny_config(tmp_path, epochs=1)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "exp").symlink_to(tmp_path / "scratch" / "exp")  # dangling: scratch/exp not made yet
    result = invoke("train", tmp_path / "tiny.yaml", "-q", "-o", tmp_path / "runs" / "exp")
    assert result.exit_code == 0, f"{result.output}{result.exception!r}"
    assert (tmp_path / "scratch" / "exp" / "best.pt").is_file()
    assert (tmp_path / "runs" / "exp").is_symlink()
    (tmp_path / "runs" / "loop").symlink_to(tmp_path / "runs" / "loop")
    result = invoke("train", tmp_path / "tiny.yaml", "-q", "-o", tmp_path / "runs" / "loop")
    assert result.exit_code == 2 and "a loop of links" in result.output, f"{result.output}{result.exception!r}"


def test_runs_lists_a_run_reached_through_a_symbolic_link(tmp_path):
    import json

    raw = tiny_config(tmp_path, epochs=1)
    raw["output_dir"] = str(tmp_path / "disk" / "big")
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert invoke("train", tmp_path / "tiny.yaml", "-q").exit_code == 0
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "big").symlink_to(tmp_path / "disk" / "big")
    (tmp_path / "runs" / "loop").symlink_to(tmp_path / "runs")
    result = invoke("runs", tmp_path / "runs", "--json")
    assert result.exit_code == 0, result.output
    found = [json.loads(l)["run"] for l in result.stdout.splitlines()]
    assert found == [str(tmp_path / "runs" / "big")], "listed once: the loop (runs/loop -> runs) is not followed"


# --- home, caches --------------------------------------------------------------------------------------


def test_an_unwritable_datasets_cache_reads_the_data_through_a_temporary_folder(tmp_path, monkeypatch):
    import datasets

    from grutool.data import loading

    (tmp_path / "home").write_text("a file where the home folder should be")  # unwritable, even for root
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "home" / ".cache" / "datasets")
    monkeypatch.setattr(loading, "_CACHE_WRITABLE", None, raising=False)  # probed again
    raw = tiny_config(tmp_path, epochs=1)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    result = invoke("train", tmp_path / "tiny.yaml", "-q")
    assert result.exit_code == 0, result.output  # was: error: .../train.tsv: cannot read as tsv: [Errno 20] ...
    assert "the datasets cache" in result.stderr and "set HF_DATASETS_CACHE" in result.stderr
    assert result.stderr.count("the datasets cache") == 1, "said once, not once per file"


# --- output ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return trained_tiny_run(tmp_path_factory.mktemp("env"), epochs=1)


def _grutool(*args, **popen):
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **popen.pop("env", {})}
    return subprocess.Popen([sys.executable, "-m", "grutool", *map(str, args)], env=env, **popen)


def test_a_reader_that_closes_the_pipe_early_stops_infer_with_141_and_no_message(run, tmp_path):
    import subprocess

    (tmp_path / "many.txt").write_text("the food was really good and the service was lovely\n" * 5000)
    proc = _grutool("infer", run, "--file", tmp_path / "many.txt", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline().startswith(b"pos")  # `| head -1`: one line read, then the pipe closed
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, stderr  # was 1, grutool's code for a bug
    assert stderr == ""


def test_a_full_disk_under_the_output_is_one_line_and_exit_2(run):
    import subprocess

    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    with open("/dev/full", "w") as full:
        proc = _grutool("infer", run, "a lovely film", stdout=full, stderr=subprocess.PIPE)
        stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 2, stderr
    assert stderr.strip() == "error: no space left on the device for the output; what was written of it is incomplete"


def _stdout_closed() -> None:
    import os

    os.close(1)  # `>&-`: the child starts without a descriptor 1, so sys.stdout is None


CLOSED_STDOUT = ("error: cannot write the output (stdout is closed, or open for reading only): give the command "
                 "an output to write to, e.g. > out.txt or > /dev/null\n")


@pytest.mark.parametrize("how", ["closed", "read-only"])
@pytest.mark.parametrize("command", [["infer", "{run}", "a lovely film"], ["runs", "{runs}"],
                                     ["eval", "{run}", "--split", "test", "--json"], ["--version"]])
def test_a_closed_stdout_is_one_line_and_exit_2(run, how, command):
    import subprocess

    args = [a.format(run=run, runs=run.parent) for a in command]
    with open("/dev/null") as read_only:  # `1</dev/null`: writes to descriptor 1 fail with EBADF
        popen = {"preexec_fn": _stdout_closed} if how == "closed" else {"stdout": read_only}
        proc = _grutool(*args, stderr=subprocess.PIPE, **popen)
        stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 2, stderr  # was 0, the output silently lost
    assert stderr == CLOSED_STDOUT


def test_train_with_a_closed_stdout_saves_the_run_then_says_its_result_was_not_written(tmp_path):
    import subprocess

    raw = tiny_config(tmp_path, epochs=1)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    proc = _grutool("train", tmp_path / "tiny.yaml", stderr=subprocess.PIPE, preexec_fn=_stdout_closed)
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 2, stderr
    assert stderr.endswith(CLOSED_STDOUT) and stderr.count("error:") == 1, stderr
    assert (tmp_path / "run" / "summary.json").is_file(), "the training went on to its end and was saved"


def test_a_latin_1_terminal_gets_escapes_for_the_characters_it_lacks(run, tmp_path):
    import json
    import subprocess

    (tmp_path / "in.txt").write_text("Ça a été très bien — ✓\n", encoding="utf-8")
    latin = {"env": {"PYTHONIOENCODING": "latin-1"}, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    proc = _grutool("infer", run, "--file", tmp_path / "in.txt", **latin)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr.decode()  # was a UnicodeEncodeError traceback
    assert stdout.decode("latin-1").split("\t")[2] == "Ça a été très bien \\u2014 \\u2713\n"
    proc = _grutool("infer", run, "--file", tmp_path / "in.txt", "--jsonl", **latin)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr.decode()
    assert json.loads(stdout)["text"] == "Ça a été très bien — ✓", "JSON's own escapes: the text read back whole"


def test_under_an_ascii_locale_a_text_argument_reads_as_the_same_text_from_a_file(run, tmp_path):
    # LC_ALL=C, PYTHONUTF8=0: Python kept the argument's non-ASCII bytes as lone surrogates, so the model read other
    # tokens than --file gives for the same text (another probability), and --jsonl wrote "Tr\udcc3\udca8s".
    import json
    import subprocess

    text = "Très bien — ok"
    (tmp_path / "in.txt").write_text(text + "\n", encoding="utf-8")
    ascii_ = {"env": {"LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": ""}, "stdout": subprocess.PIPE,
              "stderr": subprocess.PIPE}
    answers = []
    for args in ((text,), ("--file", tmp_path / "in.txt")):
        proc = _grutool("infer", run, *args, "--jsonl", **ascii_)
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr.decode()
        answers.append(json.loads(stdout))
    assert answers[0] == answers[1] and answers[0]["text"] == text, answers


# --- stdin ----------------------------------------------------------------------------------------------


def test_a_closed_stdin_is_one_line_and_exit_2(run):
    import os
    import subprocess

    # `<&-`: the child starts without a descriptor 0, so sys.stdin is None
    proc = _grutool("infer", run, "--file", "-", stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, preexec_fn=lambda: os.close(0))
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2, stderr.decode()  # was an AttributeError traceback
    assert stderr.decode() == "error: stdin: closed, nothing to read; pipe the input in, or give --file PATH\n"


def test_a_byte_order_mark_on_stdin_is_not_part_of_the_first_input(run):
    import json

    result = invoke("infer", run, "--file", "-", "--jsonl", input="\ufeffa lovely film\r\nawful\r\n".encode())
    assert result.exit_code == 0, result.output
    assert [json.loads(l)["text"] for l in result.stdout.splitlines()] == ["a lovely film", "awful"]


# --- narrow terminals -----------------------------------------------------------------------------------


def test_tables_wider_than_a_narrow_terminal_keep_every_name_and_figure_whole(run):
    import json
    import subprocess

    best = json.loads(invoke("runs", run.parent, "--json").stdout)["best"]
    per_class = json.loads(invoke("eval", run, "--split", "validation", "--json").stdout)["per_class"]
    for width in (40, 55):
        narrow = {"env": {"COLUMNS": str(width)}, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
        listed = _grutool("runs", run.parent, **narrow).communicate(timeout=120)[0].decode()
        # was ' task     best          ep…  …  status' / ' classi…  accuracy 0.6  1/1  …  finished': no run name
        assert sum(l.startswith("run ") for l in listed.splitlines()) == 2, listed  # the header, the run
        assert f"{best:#.4g}" in listed, listed
        table = _grutool("eval", run, "--split", "validation", **narrow).communicate(timeout=120)[0].decode()
        for label, m in per_class.items():  # was `│ nega… │ 0.73… │ 0.42… │ 0.5… │`
            assert f"{label} " in table and f"{m['precision']:.4f}" in table and f"{m['f1']:.4f}" in table, table


def test_eval_s_title_at_40_columns_breaks_between_figures_and_its_cells_stay_whole():
    # `grutool eval RUN` in a 40-column pane: rich wrapped the title to the table's width, 49 columns, which the
    # terminal wrapped again (`…/sentiment/test.t` / `sv: n=80,` / `accuracy 0.5125, macro-F1 0.50` / `31`); a
    # numeric classifier's table cut its header to `precisi…` and put `sine` / `wave` on two rows; into a pipe the
    # title was cut at 40 (`n=45, accura`).
    from rich.console import Console
    from rich.text import Text

    from grutool.cli.render.tables import Whole, title_lines
    from grutool.families.classifier import render

    labels = ["ramp up", "sine wave", "square wave"]
    metrics = {"source": "/work/project/data/numeric/test.ts", "n": 45, "accuracy": 0.8, "macro_f1": 0.7976,
               "per_class": {name: {"precision": 0.7368, "recall": 0.9333, "f1": 0.8235, "support": 15}
                             for name in labels},
               "confusion": {"labels": labels, "matrix": [[15, 0, 0], [0, 15, 0], [0, 0, 15]]}}
    title = "/work/project/data/numeric/test.ts: n=45, accuracy 0.8000, macro-F1 0.7976"
    for terminal in (True, False):  # a terminal wraps at 40; into a pipe (soft wrap) every item is one line
        console = Console(width=40, record=True, file=open("/dev/null", "w"))
        console.print(Whole(render.tables(metrics)[0]), crop=False, soft_wrap=not terminal)
        lines = console.export_text().splitlines()
        table = lines.index(next(line for line in lines if line.startswith("┏")))
        shown = lines[:table]
        assert " ".join(shown) == title, lines  # every figure there, each with its name
        assert all(len(line) <= 40 for line in shown) if terminal else len(shown) == 1, lines
        assert "…" not in "".join(lines) and "precision" in lines[table + 1], lines
        assert all(sum(f"│ {name} " in line for line in lines) == 1 for name in labels), lines
    # never inside parentheses where the part fits; a part wider than the line between its words; a path whole
    tagger = Text("/a/long/path/to/the/tagging/ner/test.conll: 60 sentences, 557 tokens; "
                  "span F1 0.7479 (P 0.9780, R 0.6054), sentence accuracy 0.3000")
    assert [t.plain for t in title_lines(tagger, 40)] == [
        "/a/long/path/to/the/tagging/ner/test.conll:", "60 sentences, 557 tokens;",
        "span F1 0.7479 (P 0.9780, R 0.6054),", "sentence accuracy 0.3000"]
    assert [t.plain for t in title_lines(tagger, 30)][2:4] == ["span F1 0.7479 (P 0.9780,", "R 0.6054),"]


def test_the_confusion_table_s_title_at_40_columns_goes_above_it_as_the_other_tables_titles_do():
    # `grutool eval RUN --split test` of a classifier in a 40-column pane: rich wrapped the confusion table's title
    # to the table's width, centred, between a name and its value (`confusion (rows: gold, columns:` /
    # `predicted)`), where every other table's title goes above it on lines that fit, broken between figures
    from rich.console import Console

    from grutool.families.classifier import render

    metrics = {"source": "/work/project/data/sentiment/test.tsv", "n": 80, "accuracy": 0.5125, "macro_f1": 0.5031,
               "per_class": {name: {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 40}
                             for name in ("negative", "positive")},
               "confusion": {"labels": ["negative", "positive"], "matrix": [[15, 25], [14, 26]]}}
    title = "confusion (rows: gold, columns: predicted)"
    for width, terminal in ((40, True), (40, False), (80, True)):  # into a pipe (soft wrap): the title one line
        console = Console(width=width, record=True, file=open("/dev/null", "w"))
        console.print(render.tables(metrics)[1], crop=False, soft_wrap=not terminal)  # as `out.print` prints it
        lines = console.export_text().splitlines()
        shown = lines[:lines.index(next(line for line in lines if line.startswith("┏")))]
        assert " ".join(shown) == title and all(line == line.lstrip() for line in shown), lines  # not centred
        assert len(shown) == (2 if terminal and width == 40 else 1), lines
        assert all(len(line) <= width for line in shown) or not terminal, lines
        assert "columns: predicted)" in shown[-1], lines
        assert any(line.startswith("│ negative ") for line in lines), lines


# --- signals during training ----------------------------------------------------------------------------


def _sighup_default() -> None:
    import signal

    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def _training(tmp_path, **popen):
    import subprocess
    import time

    raw = tiny_config(tmp_path, epochs=500, batch_size=4)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    # SIGHUP as a terminal's job has it, even where the tests themselves run under nohup (ignored, inherited)
    popen.setdefault("preexec_fn", _sighup_default)
    proc = _grutool("train", tmp_path / "tiny.yaml", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                    **popen)
    metrics, deadline = tmp_path / "run" / "metrics.jsonl", time.time() + 120
    while not (metrics.exists() and metrics.read_text().count("\n") >= 1) and time.time() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    return proc


@pytest.mark.parametrize("name, code", [("SIGTERM", 143), ("SIGHUP", 129)])
def test_sigterm_and_sighup_during_training_save_a_resumable_checkpoint(tmp_path, name, code):
    import signal

    from grutool.checkpoint import load_checkpoint

    proc = _training(tmp_path)
    proc.send_signal(getattr(signal, name))  # `kill`, `timeout`, preemption; the terminal closed
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr  # was -15 / -1: killed, the epoch's steps lost, nothing said
    assert f"{name}: stopping after this step" in stderr and "interrupted: saved" in stderr, stderr
    assert "Traceback" not in stderr
    state = load_checkpoint(tmp_path / "run" / "last.pt")["meta"]["state"]
    result = invoke("train", tmp_path / "tiny.yaml", "-q", "--resume", "--set", f"train.epochs={state['epoch'] + 1}")
    assert result.exit_code == 0, result.output


def test_sighup_under_nohup_leaves_training_running(tmp_path):
    import signal
    import time

    proc = _training(tmp_path, preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))  # as nohup runs it
    proc.send_signal(signal.SIGHUP)
    time.sleep(1.0)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130


def test_closing_the_terminal_saves_a_checkpoint_and_exits_129(tmp_path):
    import fcntl
    import os
    import pty
    import termios
    import time

    raw = tiny_config(tmp_path, epochs=500, batch_size=4)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    master, slave = pty.openpty()

    def own_terminal():  # a session of its own whose controlling terminal is the pty, as a shell's job has
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
        _sighup_default()

    proc = _grutool("train", tmp_path / "tiny.yaml", stdin=slave, stdout=slave, stderr=slave,
                    preexec_fn=own_terminal)
    os.close(slave)
    metrics, deadline = tmp_path / "run" / "metrics.jsonl", time.time() + 120
    while not (metrics.exists() and metrics.read_text().count("\n") >= 1) and time.time() < deadline:
        try:
            os.read(master, 65536)  # the bar's output, as a terminal reads it
        except OSError:
            break
    os.close(master)  # the terminal window closed: SIGHUP, and every later write to it fails (EIO)
    assert proc.wait(timeout=60) == 129  # was -1: killed, the epoch's steps lost; then 1: the closing line's EIO
    assert "interrupted" in invoke("runs", tmp_path, "--json").stdout


def test_an_infer_line_per_input_when_a_text_holds_tabs_and_line_breaks(run, tmp_path):
    quoted = 'text,label\n"a lovely\tfilm",pos\n"two\nlines, awful",neg\n'
    (tmp_path / "quoted.csv").write_text(quoted, encoding="utf-8")
    result = invoke("infer", run, "--file", tmp_path / "quoted.csv")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()  # was 3 lines, the first with 4 columns
    assert [l.split("\t")[2] for l in lines] == ["a lovely\\tfilm", "two\\nlines, awful"], lines


def test_compare_shows_the_figures_of_a_run_still_training_or_interrupted(run, tmp_path):
    import json
    import shutil

    shutil.copytree(run, tmp_path / "stopped")
    (tmp_path / "stopped" / "summary.json").unlink()  # as a run reads while training, or after a kill
    result = invoke("compare", run, tmp_path / "stopped", "--json")
    assert result.exit_code == 0, result.output
    compared = json.loads(result.stdout)
    assert compared["summary"][1]["status"] == "interrupted"
    for figure in ("accuracy", "macro_f1", "loss"):  # was [0.58, null]: the best epoch named, its figures not
        assert compared["validation"][figure][1] == pytest.approx(compared["validation"][figure][0]), figure


def test_a_run_s_config_keeps_non_ascii_paths_as_written(tmp_path):
    raw = tiny_config(tmp_path / "ü daten", epochs=1)
    raw["output_dir"] = str(tmp_path / "my runs" / "ö 1")
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    result = invoke("train", tmp_path / "tiny.yaml", "-q")
    assert result.exit_code == 0, result.output
    saved = (tmp_path / "my runs" / "ö 1" / "config.yaml").read_text(encoding="utf-8")
    assert "ü daten/data/train.tsv" in saved and "\\xFC" not in saved, saved  # was "...\xFC daten/data/train.tsv"
    assert invoke("eval", tmp_path / "my runs" / "ö 1", "--split", "test").exit_code == 0


# --- two processes, one run directory -------------------------------------------------------------------


def test_a_second_train_into_a_run_in_use_says_who_uses_it(run, tmp_path):
    import os
    import shutil

    from conftest import assert_user_error
    from grutool.rundir import RunLock

    shutil.copytree(run, tmp_path / "busy")
    with RunLock(tmp_path / "busy"):  # a training writing it now
        result = invoke("train", run.parent / "tiny.yaml", "-o", tmp_path / "busy")
    # was: 'run directory exists and is not empty; pass --overwrite to replace it, ...', which is refused too
    assert_user_error(result, "run directory is in use by pid", str(os.getpid()))


def _trained_with_relative_paths(project: Path, run: Path, monkeypatch) -> None:
    """tiny_config trained from `project` with data paths relative to it (data/train.tsv, ...) into `run`."""
    raw = tiny_config(project, epochs=1, device="cpu")
    for name in ("train", "validation", "test"):
        raw["data"][name] = f"data/{name}.tsv"
    raw["output_dir"] = str(run)
    (project / "tiny.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    monkeypatch.chdir(project)
    assert invoke("train", "tiny.yaml", "-q").exit_code == 0


def _figures(result) -> dict:
    import json

    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    return {k: v for k, v in out.items() if k != "source"}


def test_a_run_reads_its_relative_data_paths_from_the_folder_train_ran_in(tmp_path, monkeypatch):
    _trained_with_relative_paths(tmp_path / "project", tmp_path / "run", monkeypatch)
    here = _figures(invoke("eval", tmp_path / "run", "--split", "test", "--json"))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    # was: 'data/test.tsv: the run's data.test, not found from the working directory ...; ... run eval from there'
    assert _figures(invoke("eval", tmp_path / "run", "--split", "test", "--json")) == here
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text(encoding="utf-8"))
    assert saved["data"]["test"] == "data/test.tsv"  # config.yaml keeps what the user wrote
    # --resume from elsewhere, with the run's own config.yaml, reads the same files and keeps them as written
    result = invoke("train", tmp_path / "run" / "config.yaml", "--resume", "-o", tmp_path / "run", "-q",
                    "--set", "train.epochs=2")
    assert result.exit_code == 0, result.output
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text(encoding="utf-8"))
    assert saved["train"]["epochs"] == 2 and saved["data"]["train"] == "data/train.tsv"
    # and with the config it was trained from, named from elsewhere: its paths found beside it are the run's
    # (was: 'the config differs from the run's saved config in data.train, data.validation, data.test')
    result = invoke("train", tmp_path / "project" / "tiny.yaml", "--resume", "-q", "--set", "train.epochs=3")
    assert result.exit_code == 0, result.output


def test_a_run_whose_recorded_folder_is_gone_reads_its_paths_from_the_working_directory(tmp_path, monkeypatch):
    from conftest import assert_user_error

    _trained_with_relative_paths(tmp_path / "project", tmp_path / "run", monkeypatch)
    (tmp_path / "project").rename(tmp_path / "moved")  # the folder train ran in is gone (or on another machine)
    monkeypatch.chdir(tmp_path)
    assert_user_error(invoke("eval", tmp_path / "run", "--split", "test"),
                      f"data/test.tsv: the run's data.test, not found from the working directory {tmp_path}",
                      "run eval from there, or name the file with --data")
    assert invoke("eval", tmp_path / "run", "--data", tmp_path / "moved" / "data" / "test.tsv").exit_code == 0
    monkeypatch.chdir(tmp_path / "moved")  # the data beside the working directory, as before the record
    assert invoke("eval", tmp_path / "run", "--split", "test").exit_code == 0
    # a run made before the record (a marker without `folder`), its folder still there: as before, too
    (tmp_path / "moved").rename(tmp_path / "project")
    (tmp_path / "run" / ".grutool-run").write_text('{"grutool": "0.1.0", "created": "2026-01-01T00:00:00+00:00"}\n')
    monkeypatch.chdir(tmp_path)
    assert_user_error(invoke("eval", tmp_path / "run", "--split", "test"),
                      f"data/test.tsv: the run's data.test, not found from the working directory {tmp_path}")


def test_train_into_a_pipe_closed_early_finishes_the_run_and_exits_141(tmp_path):
    import subprocess

    raw = tiny_config(tmp_path, epochs=2)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    proc = _grutool("train", tmp_path / "tiny.yaml", stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout.readline().startswith(b"data: ")  # `2>&1 | head -1`
    proc.stdout.close()
    assert proc.wait(timeout=120) == 141  # was 1: rich's SystemExit(1) on the closed pipe
    assert (tmp_path / "run" / "summary.json").is_file(), "the training itself went on to its end"


# --- files of another user ------------------------------------------------------------------------------


def _denied(monkeypatch, files=(), folders=(), unlisted=()) -> None:
    """`files` and everything in `folders` answered as the OS answers a user without permission (chmod 000 of
    another user's; root reads all, so it is simulated): opening, listing and stat raise PermissionError.
    `unlisted` folders cannot be listed, but what they hold is reached by name (chmod 711)."""
    import builtins
    import os

    files, folders = {Path(f) for f in files}, {Path(f) for f in folders}
    listed_not = folders | {Path(f) for f in unlisted}

    def inside(p) -> bool:
        p = Path(os.path.abspath(p))
        return p in files or any(f in p.parents for f in folders)

    def guard(real, listing=False):
        def call(p=".", *args, **kwargs):
            if isinstance(p, (str, Path)) and (Path(os.path.abspath(p)) in listed_not if listing else inside(p)):
                raise PermissionError(13, "Permission denied", str(p))
            return real(p, *args, **kwargs)
        return call

    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", guard(real_open))
    monkeypatch.setattr(Path, "open", lambda self, *a, **k: guard(real_open)(str(self), *a, **k))
    monkeypatch.setattr(os, "stat", guard(os.stat))
    monkeypatch.setattr(os, "listdir", guard(os.listdir, listing=True))
    monkeypatch.setattr(os, "scandir", guard(os.scandir, listing=True))


def test_runs_lists_a_run_it_cannot_read_as_unreadable(run, tmp_path, monkeypatch):
    import json
    import shutil

    for name in ("mine", "summary_closed", "folder_closed"):
        shutil.copytree(run, tmp_path / "runs" / name)
    _denied(monkeypatch, files=[tmp_path / "runs" / "summary_closed" / "summary.json"],
            folders=[tmp_path / "runs" / "folder_closed"])
    result = invoke("runs", tmp_path / "runs", "--json")
    assert result.exit_code == 0, result.output
    listed = {Path(r["run"]).name: r for r in map(json.loads, result.stdout.splitlines())}
    # was: summary_closed listed as `interrupted`, folder_closed left out
    assert {name: r["status"] for name, r in listed.items()} == {
        "mine": "finished", "summary_closed": "unreadable", "folder_closed": "unreadable"}
    assert listed["summary_closed"]["reason"] == "summary.json: Permission denied"
    # its marker cannot be looked for either: it may not be a run
    assert listed["folder_closed"]["reason"] == "the folder: Permission denied; cannot tell whether it is a run"
    table = invoke("runs", tmp_path / "runs")
    assert table.exit_code == 0 and "Traceback" not in table.output
    assert "summary_closed: unreadable (summary.json: Permission denied)" in table.stdout


def test_runs_leaves_out_a_folder_it_cannot_list_that_is_not_a_run(run, tmp_path, monkeypatch):
    import json
    import shutil

    shutil.copytree(run, tmp_path / "runs" / "closed_run")
    (tmp_path / "runs" / "notes").mkdir()
    (tmp_path / "runs" / "notes" / "todo.txt").write_text("try lstm\n", encoding="utf-8")
    (tmp_path / "runs" / "notes" / "config.yaml").write_text("task: classifier\n", encoding="utf-8")
    # both listed as `unreadable` before: any folder that could not be listed was taken for a run
    _denied(monkeypatch, unlisted=[tmp_path / "runs" / "closed_run", tmp_path / "runs" / "notes"])
    result = invoke("runs", tmp_path / "runs", "--json")
    assert result.exit_code == 0, result.output
    listed = {Path(r["run"]).name: r for r in map(json.loads, result.stdout.splitlines())}
    assert set(listed) == {"closed_run"}
    assert listed["closed_run"]["status"] == "unreadable"
    assert listed["closed_run"]["reason"] == "the folder: Permission denied"


@pytest.mark.parametrize("closed", ["config.yaml", "folder"])
def test_compare_with_a_run_it_cannot_read_says_which_and_why(run, tmp_path, monkeypatch, closed):
    import shutil

    from conftest import assert_user_error

    for name in ("mine", "theirs"):
        shutil.copytree(run, tmp_path / name)
    if closed == "folder":
        _denied(monkeypatch, folders=[tmp_path / "theirs"])
    else:
        _denied(monkeypatch, files=[tmp_path / "theirs" / closed])
    # was: config.yaml: every field shown as differing from '-'; the folder: a PermissionError traceback
    reason = "the folder" if closed == "folder" else closed
    assert_user_error(invoke("compare", tmp_path / "mine", tmp_path / "theirs"),
                      f"{tmp_path / 'theirs'}: cannot read the run ({reason}: Permission denied); check its "
                      f"permissions, or leave it out")




@pytest.mark.parametrize("name, damage, reason", [
    ("summary.json", '{"epochs": 1, "best": 0.5', "summary.json: not JSON (line 1, column 26)"),
    ("summary.json", "[1, 2]", "summary.json: not a JSON object"),
    ("config.yaml", "task: classifier\ntrain: {lr: [\n", "config.yaml: not YAML (line 3)"),
    ("config.yaml", "- task\n", "config.yaml: not a mapping of settings")])
def test_runs_and_compare_say_a_run_with_a_damaged_file_is_unreadable(run, tmp_path, name, damage, reason):
    # A damaged summary.json listed a finished run as `interrupted` (pointing to --resume); a damaged config.yaml
    # as task `?` and `finished`, and `compare` showed every field of it as null ("its config sets it to null").
    import json
    import shutil

    from conftest import assert_user_error

    for run_name in ("mine", "damaged"):
        shutil.copytree(run, tmp_path / "runs" / run_name)
    (tmp_path / "runs" / "damaged" / name).write_text(damage, encoding="utf-8")
    result = invoke("runs", tmp_path / "runs", "--json")
    assert result.exit_code == 0, result.output
    listed = {Path(r["run"]).name: r for r in map(json.loads, result.stdout.splitlines())}
    assert listed["mine"]["status"] == "finished"
    assert (listed["damaged"]["status"], listed["damaged"]["reason"]) == ("unreadable", reason), listed["damaged"]
    table = invoke("runs", tmp_path / "runs")
    assert f"damaged: unreadable ({reason})" in table.stdout, table.stdout
    assert_user_error(invoke("compare", tmp_path / "runs" / "mine", tmp_path / "runs" / "damaged"),
                      f"{tmp_path / 'runs' / 'damaged'}: cannot read the run ({reason}); restore the file as "
                      f"training wrote it, or leave the run out")


def test_a_run_whose_files_cannot_be_read_says_so(run, tmp_path, monkeypatch):
    import builtins
    import shutil

    from conftest import assert_user_error

    shutil.copytree(run, tmp_path / "colleague")  # another user's run: its folder readable, these files not
    unreadable = {tmp_path / "colleague" / "config.yaml"}
    real_open = builtins.open

    def guarded_open(file, *args, **kwargs):  # as the OS answers for a file of another user's (root reads all)
        if isinstance(file, (str, Path)) and Path(file) in unreadable:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(Path, "open", lambda self, *a, **k: guarded_open(str(self), *a, **k))
    # was a PermissionError traceback (exit 1)
    assert_user_error(invoke("eval", tmp_path / "colleague"), "config.yaml: cannot read the run config file "
                      "(Permission denied); check its permissions, or copy it somewhere you can read")
    unreadable = {tmp_path / "colleague" / "best.pt"}
    # was `best.pt: checkpoint is corrupt or truncated (not a torch.save archive); restore it or train again`
    assert_user_error(invoke("eval", tmp_path / "colleague"), "best.pt: cannot read the checkpoint "
                      "(Permission denied); check its permissions, or copy the run somewhere you can read")


@pytest.mark.parametrize("closed", ["metrics.jsonl", "folder"])
def test_plot_of_a_run_whose_metrics_cannot_be_read_says_so(run, tmp_path, monkeypatch, closed):
    import builtins
    import shutil

    from conftest import assert_user_error

    shutil.copytree(run, tmp_path / "colleague")
    metrics = tmp_path / "colleague" / "metrics.jsonl"
    if closed == "folder":
        _denied(monkeypatch, folders=[tmp_path / "colleague"])
    else:  # chmod 000 of the file alone: stat answers, opening is refused
        real_open = builtins.open

        def guarded_open(file, *args, **kwargs):
            if isinstance(file, (str, Path)) and Path(file) == metrics:
                raise PermissionError(13, "Permission denied", str(file))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", guarded_open)
        monkeypatch.setattr(Path, "open", lambda self, *a, **k: guarded_open(str(self), *a, **k))
    # was: the file `no epochs in metrics.jsonl to plot yet`, the folder a PermissionError traceback
    assert_user_error(invoke("plot", tmp_path / "colleague", "-o", tmp_path / "curves.png"),
                      f"{metrics}: cannot read the run's metrics (Permission denied); check its permissions")
    assert not (tmp_path / "curves.png").exists()
