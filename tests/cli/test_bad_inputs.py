"""Every bad input the CLI can meet: exit code 2, one clear line, no traceback, nothing written.

One tiny model is trained once for the module; tests that damage a run work on a copy.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import zipfile
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from grutool.cli.app import app
from grutool.errors import UserError

POS = ["good film", "great fun", "loved it", "really good", "nice story",
       "great acting", "good fun", "loved the cast", "nice and warm", "really great"]
NEG = ["bad film", "awful plot", "hated it", "really bad", "dull story",
       "awful acting", "bad fun", "hated the cast", "dull and cold", "really awful"]
LABELS = {"pos", "neg"}


def tsv(path: Path, rows: list[tuple[str, str]], header: str = "text\tlabel") -> Path:
    path.write_text("\n".join([header] + [f"{t}\t{l}" for t, l in rows]) + "\n", encoding="utf-8")
    return path


def write_config(path: Path, data: dict, **sections) -> Path:
    """A tiny-model config: embedding_dim 8, hidden_size 8, 1 epoch, batch 4, CPU."""
    cfg = {
        "data": data,
        "model": {"embedding_dim": 8, "hidden_size": 8},
        "train": {"epochs": 1, "batch_size": 4, "device": "cpu", "seed": 1},
    }
    for name, values in sections.items():
        cfg.setdefault(name, {}).update(values)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def snapshot(root: Path) -> dict:
    """Every file under `root` with its content hash and mtime: equal snapshots mean untouched."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def assert_user_error(result, *expected: str) -> str:
    """Exit 2, no traceback, exactly one line of output: `error: ...` containing each `expected`."""
    output = result.output
    assert result.exit_code == 2, f"exit {result.exit_code}:\n{output}\n{result.exception!r}"
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got:\n{output}"
    line = lines[0]
    assert line.startswith("error: "), line
    assert result.stdout.strip() == "", "errors belong on stderr"
    for text in expected:
        assert text in line, f"{text!r} not in {line!r}"
    return line


# --- fixtures -------------------------------------------------------------------------


class _CurrentStderr(logging.StreamHandler):
    """A StreamHandler that writes to whatever sys.stderr is at the time of the record."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


@pytest.fixture(scope="module", autouse=True)
def isolated_logging():
    # `datasets` binds its log handler to sys.stderr once, at import. In a real process that
    # is the terminal; under CliRunner it would be the stream of whichever invoke imported
    # it first (closed later). Following the current stderr shows each invoke what a user
    # would see in the terminal.
    import datasets  # noqa: F401

    ds, ours = logging.getLogger("datasets"), logging.getLogger("grutool")
    saved = list(ds.handlers), list(ours.handlers), ours.level, ours.propagate
    ds.handlers = [_CurrentStderr()]
    yield
    # The CLI points the grutool logger at CliRunner's stream; leave no trace for other modules.
    ds.handlers, ours.handlers, ours.level, ours.propagate = list(saved[0]), list(saved[1]), saved[2], saved[3]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("data")
    train = [(t, "pos") for t in POS] + [(t, "neg") for t in NEG]
    val = [(t, "pos") for t in POS[:3]] + [(t, "neg") for t in NEG[:3]]
    return {"root": root, "train": tsv(root / "train.tsv", train), "validation": tsv(root / "validation.tsv", val)}


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory) -> Path:
    """A run directory from one real (tiny) training run, shared read-only by the module."""
    root = tmp_path_factory.mktemp("trained")
    cfg = write_config(root / "tiny.yaml", {"train": str(data["train"]), "validation": str(data["validation"])})
    run = root / "run"
    result = invoke("train", cfg, "--output-dir", run, "--quiet")
    assert result.exit_code == 0, result.output
    assert (run / "best.pt").is_file()
    return run


@pytest.fixture
def run_copy(trained, tmp_path) -> Path:
    """A private copy of the trained run, free to damage."""
    return Path(shutil.copytree(trained, tmp_path / "run"))


@pytest.fixture
def cwd(tmp_path, monkeypatch) -> Path:
    # A default run directory (runs/<config name>) would land here, never in the repository.
    monkeypatch.chdir(tmp_path)
    return tmp_path


def config_for(tmp_path: Path, data: dict, **data_overrides) -> Path:
    return write_config(tmp_path / "tiny.yaml", {"train": str(data["train"]), **data_overrides})


# --- config problems ----------------------------------------------------------------------


def test_missing_config_file(cwd):
    result = invoke("train", cwd / "nope.yaml", "--output-dir", cwd / "out")
    assert_user_error(result, "nope.yaml", "config file not found")
    assert not (cwd / "out").exists() and not (cwd / "runs").exists()


@pytest.mark.parametrize("text, expected", [
    pytest.param("data:\n  train: x.tsv\n  column_names: [text, label\nmodel:\n  hidden_size: 8\n",
                 ["bad.yaml:4:6:", "YAML syntax error"], id="yaml-syntax"),
    pytest.param("data:\n  train: x.tsv\nmodel:\n  hiden_size: 8\n",
                 ["bad.yaml:4:", "model.hiden_size: unknown key; did you mean 'hidden_size'?"], id="unknown-key"),
    pytest.param("data:\n  train: x.tsv\nmodel:\n  hidden_size: eight\n",
                 ["bad.yaml:4:", "model.hidden_size: input should be a valid integer"], id="wrong-type"),
    pytest.param("data:\n  train: x.tsv\ntrain:\n  lr: -1\n",
                 ["bad.yaml:4:", "train.lr: input should be greater than 0"], id="out-of-range"),
    # The message carries brackets; they must be printed as written, not read as markup.
    pytest.param("data:\n  train: x.tsv\n  header: false\n",
                 ["data.column_names: required when data.header is false (e.g. [text, label])"],
                 id="message-with-brackets"),
])
def test_config_errors(cwd, text, expected):
    (cwd / "bad.yaml").write_text(text, encoding="utf-8")
    result = invoke("train", cwd / "bad.yaml", "--output-dir", cwd / "out")
    assert_user_error(result, *expected)
    assert not (cwd / "out").exists() and not (cwd / "runs").exists()


def test_set_wrong_type(cwd, data):
    cfg = config_for(cwd, data)
    result = invoke("train", cfg, "--set", "model.hidden_size=abc", "--output-dir", cwd / "out")
    assert_user_error(result, "--set model.hidden_size=abc", "model.hidden_size")
    assert not (cwd / "out").exists()


def test_seed_option_error_names_the_option_typed(cwd, data):
    # `--seed N` is applied as train.seed=N; the message names what the user typed, not `--set`.
    cfg = config_for(cwd, data)
    result = invoke("train", cfg, "--seed", "99999999999999999999999", "--output-dir", cwd / "out")
    line = assert_user_error(result, "--seed 99999999999999999999999: train.seed")
    assert "--set" not in line
    assert not (cwd / "out").exists()


def test_set_value_with_markup_characters_is_printed_verbatim(cwd, data):
    # A user-supplied value echoed in the message must not be parsed as rich markup
    # (a stray closing tag would crash the error printer itself).
    cfg = config_for(cwd, data)
    result = invoke("train", cfg, "--set", "data.tokenizer=a[/b]", "--output-dir", cwd / "out")
    assert_user_error(result, "data.tokenizer", "a[/b]")
    assert not (cwd / "out").exists()


# --- data problems ------------------------------------------------------------------------

NON_UTF8 = "café".encode("latin-1")


@pytest.mark.parametrize("name, content, data_overrides, expected", [
    pytest.param("absent.tsv", None, {}, ["absent.tsv", "data file not found"], id="missing-data-file"),
    pytest.param("sentences.tsv", b"sentence\tlabel\ngood\tpos\nbad\tneg\n", {},
                 ["sentences.tsv", "no column 'text'", "data.text_column", "['sentence', 'label']"],
                 id="missing-text-column"),
    pytest.param("categories.jsonl", b'{"text": "good", "category": "pos"}\n{"text": "bad", "category": "neg"}\n', {},
                 ["categories.jsonl", "no column 'label'", "data.label_column", "['text', 'category']"],
                 id="missing-label-column"),
    pytest.param("empty.tsv", b"text\tlabel\n", {}, ["empty.tsv", "no examples"], id="empty-split-header-only"),
    pytest.param("nulls.csv", b"text,label\ngood film,pos\nbad film,\nnice one,pos\nawful,neg\n", {},
                 ["nulls.csv", "label column 'label' is empty on 1 row(s)", "line 3"], id="null-label"),
    pytest.param("latin1.tsv", b"text\tlabel\n" + NON_UTF8 + b" film\tpos\nbad\tneg\n", {},
                 ["latin1.tsv", "UTF-8"], id="non-utf8-tsv"),
    pytest.param("latin1.csv", b"text,label\n" + NON_UTF8 + b" film,pos\nbad,neg\n", {},
                 ["latin1.csv", "UTF-8"], id="non-utf8-csv"),
    pytest.param("latin1.jsonl", b'{"text": "good", "label": "pos"}\n{"text": "' + NON_UTF8 + b'", "label": "neg"}\n', {},
                 ["latin1.jsonl", "UTF-8"], id="non-utf8-jsonl"),
    pytest.param("unknown.xlsx", b"whatever", {}, ["unknown.xlsx", "data.format"], id="unknown-extension"),
    pytest.param("notext.jsonl", b'{"text": "good", "label": "pos"}\n{"label": "neg"}\n', {},
                 ["notext.jsonl:2:", 'no "text" field', "data.text_column"], id="jsonl-line-without-text"),
    pytest.param("nulltext.jsonl", b'{"text": "good", "label": "pos"}\n{"text": null, "label": "neg"}\n', {},
                 ["nulltext.jsonl:2:", '"text" is null'], id="jsonl-null-text"),
    pytest.param("numtext.jsonl", b'{"sentence": "good", "label": "pos"}\n{"sentence": 5, "label": "neg"}\n',
                 {"text_column": "sentence"}, ["numtext.jsonl:2:", '"sentence" is a number (5), not a string'],
                 id="jsonl-number-text"),
])
def test_bad_training_data(cwd, data, name, content, data_overrides, expected):
    path = cwd / name
    if content is not None:
        path.write_bytes(content)
    cfg = write_config(cwd / "tiny.yaml", {"train": str(path), **data_overrides})
    result = invoke("train", cfg, "--output-dir", cwd / "out")
    assert_user_error(result, *expected)
    assert not (cwd / "out").exists() and not (cwd / "runs").exists()


def test_bad_validation_file_fails_before_anything_is_written(cwd, data):
    cfg = config_for(cwd, data, validation=str(cwd / "missing-validation.tsv"))
    result = invoke("train", cfg, "--output-dir", cwd / "out")
    assert_user_error(result, "missing-validation.tsv", "data file not found")
    assert not (cwd / "out").exists()


def test_hub_dataset_without_network_fails_fast(cwd, monkeypatch):
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    cfg = write_config(cwd / "hub.yaml", {"dataset": "someone/some_dataset", "train": "train"})
    start = time.perf_counter()
    result = invoke("train", cfg, "--output-dir", cwd / "out")
    elapsed = time.perf_counter() - start
    assert_user_error(result, "data.dataset", "someone/some_dataset", "local files")
    # a hang guard, not a speed target: datasets' own retries against an unreachable host take minutes; 10 s
    # here failed at 11.5 s on a 2-core machine at load 11 (importing datasets is most of it)
    assert elapsed < 60, f"took {elapsed:.1f}s"
    assert not (cwd / "out").exists()


def test_unreachable_hub_endpoint_fails_fast(cwd, monkeypatch):
    # Same, but independent of whether this machine has a network: nothing listens on port 9.
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    from grutool.data import loading

    def never():  # the point of the probe: datasets' retries (minutes) never start
        raise AssertionError("datasets was asked for an unreachable Hub")

    monkeypatch.setattr(loading, "_quiet_datasets", never)
    cfg = write_config(cwd / "hub.yaml", {"dataset": "someone/some_dataset", "train": "train"})
    start = time.perf_counter()
    result = invoke("train", cfg, "--output-dir", cwd / "out")
    assert_user_error(result, "cannot reach the Hugging Face Hub", "local files")
    assert time.perf_counter() - start < 60  # a hang guard, not a speed target
    assert not (cwd / "out").exists()


# --- run directories ----------------------------------------------------------------------


def test_existing_run_directory_is_not_overwritten(cwd, data, run_copy):
    cfg = config_for(cwd, data)
    before = snapshot(run_copy)
    result = invoke("train", cfg, "--output-dir", run_copy)
    assert_user_error(result, str(run_copy), "--overwrite")
    assert snapshot(run_copy) == before


def test_run_directory_errors_name_cli_options_in_the_cli_and_arguments_in_python(cwd, data, run_copy):
    """The library says `overwrite` / `output_dir`; the CLI prints the options a user types, word for word."""
    from grutool import rundir

    with pytest.raises(UserError) as caught:
        rundir.prepare_new(run_copy, overwrite=False)
    assert "--" not in str(caught.value) and "`overwrite`" in str(caught.value)
    (cwd / "notes").mkdir()
    (cwd / "notes" / "todo.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(UserError) as caught:
        rundir.prepare_new(cwd / "notes", overwrite=True)
    assert "--" not in str(caught.value) and "`output_dir`" in str(caught.value)

    cfg = config_for(cwd, data)
    line = assert_user_error(invoke("train", cfg, "--output-dir", run_copy))
    assert line == (f"error: {run_copy}: run directory exists and is not empty; pass --overwrite to replace it, "
                    f"--resume to continue it, or --output-dir to choose another")
    line = assert_user_error(invoke("train", cfg, "--output-dir", cwd / "notes", "--overwrite"))
    assert line == (f"error: {cwd / 'notes'}: exists, is not empty and is not a grutool run directory "
                    f"(no .grutool-run); grutool writes a run only into a new or empty folder or a run of its "
                    f"own, so it leaves this one alone: choose another --output-dir (e.g. runs/NAME)")
    assert (cwd / "notes" / "todo.txt").read_text(encoding="utf-8") == "keep me"


def test_overwrite_replaces_an_existing_run(cwd, data, run_copy):
    """grutool's files are replaced; a file the user put there is theirs and stays."""
    cfg = config_for(cwd, data)
    (run_copy / "notes.txt").write_text("mine", encoding="utf-8")
    (run_copy / "metrics.jsonl").write_text('{"epoch": 99, "stale": true}\n', encoding="utf-8")
    (run_copy / "best.pt").write_bytes(b"the old run's weights")
    result = invoke("train", cfg, "--output-dir", run_copy, "--overwrite", "--quiet")
    assert result.exit_code == 0, result.output
    assert (run_copy / "notes.txt").read_text(encoding="utf-8") == "mine"
    assert "stale" not in (run_copy / "metrics.jsonl").read_text(encoding="utf-8"), "metrics.jsonl not replaced"
    assert zipfile.is_zipfile(run_copy / "best.pt"), "best.pt not replaced"
    assert (run_copy / "best.pt").is_file() and (run_copy / "config.yaml").is_file()


def test_eval_missing_run_directory(cwd):
    result = invoke("eval", cwd / "no-such-run")
    assert_user_error(result, "no-such-run", "run directory not found")
    assert not (cwd / "no-such-run").exists()


def test_infer_missing_run_directory(cwd):
    result = invoke("infer", cwd / "no-such-run", "good film")
    assert_user_error(result, "no-such-run", "run directory not found")


def test_plot_says_what_is_wrong_with_the_run_directory(cwd):
    # Before, each of these said "no epochs in metrics.jsonl to plot (is it a run directory?)".
    assert_user_error(invoke("plot", cwd / "no-such-run"), "no-such-run: run directory not found")
    (cwd / "folder").mkdir()
    assert_user_error(invoke("plot", cwd / "folder"), "folder: not a run directory (no metrics.jsonl)")
    (cwd / "folder" / "config.yaml").write_text("task: classifier\n", encoding="utf-8")  # `runs` lists it
    assert_user_error(invoke("plot", cwd / "folder"), "folder: no epochs to plot yet (the run has not finished an epoch)")
    (cwd / "folder" / "metrics.jsonl").write_text("", encoding="utf-8")
    assert_user_error(invoke("plot", cwd / "folder"), "folder: no epochs in metrics.jsonl to plot yet")
    assert not (cwd / "curves.png").exists()


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garble(path: Path) -> None:
    path.write_bytes(b"this is not a checkpoint\n" * 10)


def _empty(path: Path) -> None:
    path.write_bytes(b"")


@pytest.mark.parametrize("damage", [_truncate, _garble, _empty], ids=["truncated", "garbage", "empty"])
@pytest.mark.parametrize("command", [["eval"], ["eval", "--json"], ["infer", "RUN", "good film"]],
                         ids=["eval", "eval-json", "infer"])
def test_corrupt_checkpoint(run_copy, damage, command):
    damage(run_copy / "best.pt")
    before = snapshot(run_copy)
    args = [a if a != "RUN" else run_copy for a in command]
    if args[0] == "eval":
        args.insert(1, run_copy)
    result = invoke(*args)
    assert_user_error(result, "best.pt", "corrupt or truncated")
    assert snapshot(run_copy) == before


def test_missing_checkpoint(run_copy):
    (run_copy / "best.pt").unlink()
    result = invoke("eval", run_copy)
    assert_user_error(result, "best.pt", "checkpoint not found")


# --- eval and infer on awkward inputs -------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   "], ids=["empty", "blank"])
def test_infer_empty_text_has_a_defined_output(trained, text):
    result = invoke("infer", trained, text)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    label, prob, echoed = lines[0].split("\t")
    assert label in LABELS
    assert 0.0 <= float(prob) <= 1.0
    assert echoed == text
    # Deterministic: an empty input always gets the same answer.
    assert invoke("infer", trained, text).stdout == result.stdout


def test_infer_empty_text_jsonl(trained):
    result = invoke("infer", trained, "", "good film", "--jsonl")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in rows] == ["", "good film"]
    for r in rows:
        assert r["label"] in LABELS
        assert set(r["probs"]) == LABELS
        assert sum(r["probs"].values()) == pytest.approx(1.0, abs=1e-4)


def test_infer_file_not_utf8(trained, tmp_path):
    path = tmp_path / "inputs.txt"
    path.write_bytes(b"good film\n" + NON_UTF8 + b"\n")
    result = invoke("infer", trained, "--file", path)
    assert_user_error(result, "inputs.txt", "not valid UTF-8")


def test_infer_without_inputs(trained):
    result = invoke("infer", trained)
    assert_user_error(result, "--file")


def test_infer_empty_file_or_stdin_is_a_user_error(trained, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    assert_user_error(invoke("infer", trained, "--file", empty), "empty.txt", "no inputs", "empty file")
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n", encoding="utf-8")
    assert_user_error(invoke("infer", trained, "--file", blank), "blank.txt", "no inputs", "only blank lines")
    result = CliRunner().invoke(app, ["infer", str(trained), "--file", "-"], input="")
    assert_user_error(result, "stdin", "no inputs")


@pytest.mark.parametrize("line, expected", [
    ('{"label": "neg"}', ['no "text" field', "data.text_column"]),
    ('{"text": null}', ['"text" is null']),
    ('{"text": 5}', ['"text" is a number (5), not a string']),
], ids=["missing", "null", "number"])
@pytest.mark.parametrize("command", ["infer", "eval"])
def test_jsonl_line_without_a_text_string_is_named(trained, tmp_path, line, expected, command):
    path = tmp_path / "inputs.jsonl"
    path.write_text('{"text": "good film", "label": "pos"}\n' + line + "\n", encoding="utf-8")
    args = ["--file", path] if command == "infer" else ["--data", path]
    assert_user_error(invoke(command, trained, *args), "inputs.jsonl:2:", *expected)


def test_eval_json_output(trained):
    result = invoke("eval", trained, "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)  # stdout is the JSON object and nothing else
    assert {"accuracy", "macro_f1", "n"} <= set(metrics)
    assert metrics["n"] == 6
    assert 0.0 <= metrics["accuracy"] <= 1.0 and 0.0 <= metrics["macro_f1"] <= 1.0
    assert metrics["unseen_labels"] == {}


def test_eval_with_unseen_labels_counts_them_as_errors(trained, tmp_path):
    rows = [(t, "pos") for t in POS[:4]] + [(t, "neg") for t in NEG[:4]] + [("so so", "neutral")] * 3
    path = tsv(tmp_path / "unseen.tsv", rows)
    before = snapshot(trained)
    result = invoke("eval", trained, "--data", path, "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["n"] == 11
    assert metrics["unseen_labels"] == {"neutral": 3}
    # The three can never be right, so at most 8 of 11 are.
    assert metrics["accuracy"] <= 8 / 11 + 1e-9
    warning = result.stderr
    assert "neutral" in warning and "3" in warning and "never seen in training" in warning
    assert "Traceback" not in result.output
    assert snapshot(trained) == before


def test_eval_with_unseen_labels_table(trained, tmp_path):
    path = tsv(tmp_path / "unseen.tsv", [("good film", "pos"), ("bad film", "neg"), ("meh", "neutral")])
    result = invoke("eval", trained, "--data", path)
    assert result.exit_code == 0, result.output
    assert "neutral" in result.stderr
    assert "accuracy" in result.stdout


def test_eval_with_no_seen_labels_is_a_user_error(trained, tmp_path):
    path = tsv(tmp_path / "other.tsv", [("good film", "positive"), ("bad film", "negative")])
    before = snapshot(trained)
    result = invoke("eval", trained, "--data", path)
    assert_user_error(result, "other.tsv", "none of its labels", "negative", "positive")
    assert snapshot(trained) == before


def test_eval_missing_data_file(trained, tmp_path):
    result = invoke("eval", trained, "--data", tmp_path / "absent.tsv")
    assert_user_error(result, "absent.tsv", "data file not found")


def test_eval_split_not_configured(trained):
    result = invoke("eval", trained, "--split", "test")
    assert_user_error(result, "data.test", "--data")


# --- dry run --------------------------------------------------------------------------------


def test_dry_run_writes_nothing_and_prints_the_parameter_count(cwd, data, trained):
    cfg = write_config(cwd / "tiny.yaml", {"train": str(data["train"]), "validation": str(data["validation"])})
    before = sorted(p.name for p in cwd.iterdir())
    result = invoke("train", cfg, "--dry-run", "--output-dir", cwd / "out")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in cwd.iterdir()) == before
    m = re.search(r"parameters\s+([\d,]+)", result.stdout)
    assert m, result.stdout
    # The same config and data as the module's trained run: the same model.
    summary = json.loads((trained / "summary.json").read_text(encoding="utf-8"))
    assert int(m.group(1).replace(",", "")) == summary["parameters"] > 0
    assert "not written" in result.stdout


def test_dry_run_still_reports_bad_data(cwd):
    cfg = write_config(cwd / "tiny.yaml", {"train": str(cwd / "absent.tsv")})
    result = invoke("train", cfg, "--dry-run", "--output-dir", cwd / "out")
    assert_user_error(result, "absent.tsv", "data file not found")
