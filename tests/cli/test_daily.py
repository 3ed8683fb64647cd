"""Day-to-day wiring (issue 17): infer's input formats, help examples, --version, paths beside the config,
runs/compare/plot/init, eval --split train. One tiny run is trained for the module."""

from __future__ import annotations

import json
import re
import math
from pathlib import Path

import pytest
import yaml

from conftest import assert_user_error, invoke, tiny_config, trained_tiny_run
from grutool.errors import UserError
from grutool.families import TASKS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return trained_tiny_run(tmp_path_factory.mktemp("daily"), epochs=2)


# --- infer --file ----------------------------------------------------------------------------------


def test_infer_file_gives_one_input_per_line_whatever_unicode_calls_a_line_break(run, tmp_path):
    # str.splitlines also broke lines at U+2028, \x0c, \x85 and a lone \r: 3 lines gave 6 predictions.
    path = tmp_path / "in.txt"
    path.write_bytes("good film\u2028bad film\r\nsecond\x0cline\nthird\x85x\rend\n".encode())
    result = invoke("infer", run, "--file", path, "--jsonl")
    assert result.exit_code == 0, result.output
    # each record one line for any line reader (str.splitlines too): U+2028 and U+0085 are escaped in the JSON
    texts = [json.loads(line)["text"] for line in result.stdout.splitlines()]
    assert texts == ["good film\u2028bad film", "second\x0cline", "third\x85x\rend"], texts
    path.write_bytes(b"fine\nca\xffe\n")
    assert_user_error(invoke("infer", run, "--file", path), f"{path}:2: not valid UTF-8 (byte 3 of the line)")


def test_infer_reads_a_tsv_with_the_runs_columns(run):
    data = run.parent / "data" / "test.tsv"
    rows = data.read_text().splitlines()[1:]
    result = invoke("infer", run, "--file", data, "--jsonl")
    assert result.exit_code == 0, result.output
    texts = [json.loads(l)["text"] for l in result.stdout.splitlines()]
    assert texts == [r.split("\t")[0] for r in rows], "no header line, no gold label glued to the text"


def test_infer_format_lines_reads_every_line_as_it_is(run):
    data = run.parent / "data" / "test.tsv"
    result = invoke("infer", run, "--file", data, "--format", "lines", "--jsonl")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[0])["text"] == "text\tlabel"


def test_infer_data_format_names_missing_columns_and_refuses_stdin(run, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("sentence,label\nhello,pos\n")
    assert_user_error(invoke("infer", run, "--file", bad), "text")
    assert_user_error(invoke("infer", run, "--file", "-", "--format", "data"), "--format", "stdin")
    assert_user_error(invoke("infer", run, "--file", "x.txt", "--format", "csv"),
                      "--format: 'csv' is not one of auto, lines, data; see grutool infer --help")


def test_every_family_reads_its_inputs_from_a_data_file(tmp_path):
    from grutool.config_file import load_config
    from grutool.inputs import read_data_inputs
    from grutool.families import get_task

    root = Path(__file__).resolve().parents[2]
    tagging = load_config(root / "configs" / "tagging.yaml")
    sentences = read_data_inputs(get_task("tagger"), tagging, str(root / "data/tagging/ner/test.conll"))
    assert sentences[0] == "Tobias Abara moved from Santa Fe to Nairobi in May ."  # -DOCSTART- skipped
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("source\ttarget\n123\t321\n45\t54\n")
    reverse = load_config(root / "configs" / "reverse.yaml")
    assert read_data_inputs(get_task("seq2seq"), reverse, str(pairs)) == ["123", "45"]


# --- eval --split train, --print-config, init ---------------------------------------------------


def test_eval_scores_the_training_split(run):
    result = invoke("eval", run, "--split", "train", "--json", "--device", "cpu")
    assert result.exit_code == 0, result.output
    m = json.loads(result.stdout)
    assert m["n"] == 64 and m["source"].endswith("train.tsv")


def test_eval_of_a_split_and_a_file_at_once_is_refused(run):
    # `--split train --data FILE` scored FILE and said nothing of the split asked for.
    data = run.parent / "data" / "test.tsv"
    assert_user_error(invoke("eval", run, "--split", "train", "--data", data),
                      "--split train: --data scores its file instead of a split; drop one of them")
    assert invoke("eval", run, "--data", data, "--json").exit_code == 0


def test_print_config_shows_the_resolved_config_and_writes_nothing(run, tmp_path):
    config = run.parent / "tiny.yaml"
    result = invoke("train", config, "--print-config", "--set", "train.lr=0.5", "-o", tmp_path / "never")
    assert result.exit_code == 0, result.output
    cfg = yaml.safe_load(result.stdout)
    assert cfg["train"]["lr"] == 0.5 and cfg["model"]["cell"] == "gru"
    # the fields a classifier reads: not seq2seq's decoding, a forecaster's time column or an lm's conditions
    assert "decoding" not in cfg and not {"time_column", "horizon", "condition_column"} & set(cfg["data"])
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize("name", ["sentiment", "tagging", "reverse", "lm", "lm_stream", "numeric",
                                  "numeric_regression", "sines", "sines_covariates"])
def test_print_config_shows_only_what_the_family_reads_and_trains_as_the_config_does(name, tmp_path, monkeypatch):
    """It listed every family's ~150 fields (a classifier's forecast horizon, seq2seq's decoding): what it shows
    now, saved as a config, is the same config, and a field it leaves out is one the family never reads."""
    from grutool.config_file import load_config, unread_fields

    monkeypatch.chdir(ROOT)
    result = invoke("train", f"configs/{name}.yaml", "--print-config")
    assert result.exit_code == 0, result.output
    (tmp_path / "printed.yaml").write_text(result.stdout, encoding="utf-8")
    monkeypatch.chdir(ROOT)
    again, original = load_config(tmp_path / "printed.yaml"), load_config(f"configs/{name}.yaml")
    assert again.model_dump(mode="json") == original.model_dump(mode="json")
    shown = yaml.safe_load(result.stdout)
    full = original.model_dump(mode="json")
    hidden = [f"{section}.{key}" for section, part in full.items() if isinstance(part, dict)
              for key in part if key not in shown.get(section, {})]
    assert hidden and set(hidden) <= set(unread_fields(full)), set(hidden) - set(unread_fields(full))


@pytest.mark.parametrize("task", sorted(TASKS))
def test_init_prints_a_commented_config_that_validates_and_dry_runs(task, tmp_path, monkeypatch):
    """`grutool init TASK > my.yaml && grutool train my.yaml --dry-run` for every family: the paths name data/."""
    from grutool.config_file import load_config

    result = invoke("init", task)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("# A starting config") and f"task: {task}" in result.stdout
    assert result.stdout.count("  # ") > 20, "fields carry their docstrings"
    (tmp_path / "my.yaml").write_text(result.stdout)
    monkeypatch.chdir(ROOT)  # where the data paths start
    cfg = load_config(tmp_path / "my.yaml")
    assert cfg.task == task and cfg.data.train.startswith("data/")
    written = yaml.safe_load(result.stdout)
    for section, names in TASKS[task].ignores.items():
        assert not set(names) & set(written[section]), "the template lists fields the family never reads"
    dry = invoke("train", tmp_path / "my.yaml", "--dry-run", "-o", tmp_path / "run")
    assert dry.exit_code == 0 and "(not written)" in dry.output, dry.output
    assert not (tmp_path / "run").exists()


# What model.head_dropout acts on in each family, as its model reads it.
HEAD_DROPOUT_ON = {"classifier": "the pooled vector", "regressor": "the pooled vector", "joint": "the pooled vector",
                   "tagger": "each step's output", "lm": "each step's output", "seq2seq": "each step's output",
                   "forecast": "a forecaster's recurrent state"}


def _comment_above(lines: list[str], at: int) -> str:
    """The comment lines right above line `at` (a long description, wrapped), joined into one text."""
    start = at
    while start > 0 and lines[start - 1].lstrip().startswith("#"):
        start -= 1
    return " ".join(line.lstrip().removeprefix("# ") for line in lines[start:at])


@pytest.mark.parametrize("task", sorted(TASKS))
def test_init_describes_head_dropout_as_the_family_uses_it(task):
    """`grutool init forecast` described model.head_dropout as dropout "on the pooled representation": a forecaster
    pools nothing (its head reads the recurrent state), nor do a tagger, an lm or a seq2seq decoder."""
    lines = invoke("init", task).stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.lstrip().startswith("head_dropout:"))
    doc = lines[at] if "#" in lines[at] else _comment_above(lines, at)  # beside the field, or above it when long
    assert HEAD_DROPOUT_ON[task] in doc and "pooled representation" not in doc, doc


def test_init_help_lists_every_family():
    from grutool.cli.init_cmd import FAMILIES, NUMERIC

    assert sorted(FAMILIES.replace(" or ", ", ").split(", ")) == sorted(TASKS)
    numeric = sorted(name for name, task in TASKS.items() if "numeric" in task.inputs)
    assert sorted(NUMERIC.replace(" or ", ", ").split(", ")) == numeric
    text = " ".join(invoke("init", "--help").output.split())
    assert all(name in text for name in TASKS), text


def test_init_unknown_task():
    assert_user_error(invoke("init", "regression"), "unknown task 'regression'", "classifier")
    assert_user_error(invoke("init", "classifer"), "unknown task 'classifer'; did you mean 'classifier'?")


def _template_fields(text: str) -> dict[str, tuple[object, str]]:
    """`section.name` -> (its value, its comment: beside it or the lines above it) of a template's top-level
    fields."""
    lines, section, out = text.splitlines(), None, {}
    for at, line in enumerate(lines):
        if line and not line.startswith((" ", "#")) and line.endswith(":"):
            section = line[:-1]
        elif section and line.startswith("  ") and not line.startswith("   ") and not line.lstrip().startswith("#"):
            entry, _, beside = line.partition("  # ")
            name, _, value = entry.strip().partition(":")
            out[f"{section}.{name}"] = (yaml.safe_load(value) if value.strip() else None,
                                        beside or _comment_above(lines, at))
    return out


INIT_VARIANTS = [(name, None) for name in sorted(TASKS)] + [(name, "numeric") for name in ("classifier", "tagger")]


@pytest.mark.parametrize("task,kind", INIT_VARIANTS)
def test_init_marks_every_value_that_is_not_the_default(task, kind):
    """The template said "every field it reads, with its default", but its example's values (`input_length: 48`
    where the default is 96, `decoder: parallel` where it is direct) were not marked: a user who deleted a line
    "because it is the default" changed the model. Each value other than the default now says the default;
    none that is the default does; a field of fixed values lists them; no line is wider than 100 characters."""
    from typing import get_args

    from grutool import config as schema

    text = invoke("init", task, *(["--input", kind] if kind else [])).stdout
    assert all(len(line) <= 100 for line in text.splitlines()), [l for l in text.splitlines() if len(l) > 100]
    sections = {"data": schema.DataConfig, "model": schema.ModelConfig, "train": schema.TrainConfig,
                "decoding": schema.DecodingConfig}
    fields = _template_fields(text)
    assert fields, text
    for path, (value, comment) in fields.items():
        section, name = path.split(".")
        field = sections[section].model_fields[name]
        default = TASKS[task].default(section, name, field.default)
        if path == "train.monitor":  # the family's default for this data (seq2seq on characters: exact_match)
            default = TASKS[task].default_monitor(yaml.safe_load(text)["data"])
        if isinstance(default, schema.BaseModel):
            continue  # a nested section: its own fields follow
        if value != default and not (isinstance(default, tuple) and list(default) == value):
            assert f"(default: " in comment, (path, value, default, comment)
        else:
            assert "(default: " not in comment, (path, value, default, comment)
    # What the template claims is each field's default is what a config without the field gets (seq2seq on
    # characters: exact_match, which the template marked "default: bleu", a monitor that data refuses).
    from grutool.config_file import parse_config

    raw = yaml.safe_load(text)
    for path, (value, comment) in fields.items():
        section, name = path.split(".")
        if isinstance(value, dict) or section not in raw or name not in raw[section]:
            continue
        marked = re.search(r"\(default: (.*)\)$", comment)
        claimed = yaml.safe_load(marked.group(1)) if marked else value
        without = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
        del without[section][name]
        try:
            got = getattr(getattr(parse_config(without, "t"), section), name)
        except UserError:  # a field the others need (data.train; time_column beside channels): no default to test
            continue
        if isinstance(got, schema.BaseModel):
            continue  # a nested section (data.covariates): its own fields are listed below it
        got = list(got) if isinstance(got, tuple) else got
        assert got == claimed, (path, got, claimed, comment)
    assert "One of: adam, adamw, sgd." in fields["train.optimizer"][1], fields["train.optimizer"]
    # the monitor's values are the family's own (the schema's type lists every family's: bleu for a forecaster)
    assert f"One of: {', '.join(TASKS[task].monitors)}." in fields["train.monitor"][1], fields["train.monitor"]


def test_init_and_print_config_leave_out_what_the_family_never_reads(tmp_path, monkeypatch):
    """The lm and seq2seq templates listed data.max_word_length (char features' word length: neither has
    char features), and `--print-config` of a joint config listed the tagger's numeric settings (time_column,
    channels, split_seed, input_noise, ...), which a joint config is refused."""
    from grutool.families.rules import NUMERIC_SETTINGS

    for task in ("lm", "seq2seq"):
        assert "max_word_length" not in invoke("init", task).stdout, task
    joint = tmp_path / "joint.yaml"
    joint.write_text(invoke("init", "joint").stdout, encoding="utf-8")
    monkeypatch.chdir(ROOT)  # the template's data paths are the clone's toy data
    shown = invoke("train", joint, "--print-config")
    assert shown.exit_code == 0, shown.output
    printed = yaml.safe_load(shown.stdout)
    left = [f"{s}.{n}" for s, names in NUMERIC_SETTINGS.items() for n in names if n in printed.get(s, {})]
    assert not left, left
    assert_user_error(invoke("train", joint, "--dry-run", "--set", "model.input_noise=0.1"),
                      "model.input_noise: ", "text has none")


# --- runs, compare, plot ----------------------------------------------------------------------------


def test_runs_lists_every_run_with_its_status(run, tmp_path):
    import shutil

    root = tmp_path / "runs"
    shutil.copytree(run, root / "a")
    shutil.copytree(run, root / "group" / "b")
    (root / "group" / "b" / "summary.json").unlink()          # stopped by Ctrl-C: last.pt, no summary
    (root / "c").mkdir()
    shutil.copy(run / "config.yaml", root / "c")                # died before its first checkpoint
    (root / "c" / "metrics.jsonl").write_text("")
    result = invoke("runs", root, "--json")
    assert result.exit_code == 0, result.output
    rows = {Path(r["run"]).relative_to(root).as_posix(): r for r in map(json.loads, result.stdout.splitlines())}
    assert {k: r["status"] for k, r in rows.items()} == {"a": "finished", "group/b": "interrupted", "c": "failed"}
    assert rows["a"]["task"] == "classifier" and rows["a"]["monitor"] == "accuracy" and rows["a"]["epochs"] == 2
    assert rows["group/b"]["best"] is not None, "best read back from metrics.jsonl"
    table = invoke("runs", root)
    assert table.exit_code == 0 and "finished" in table.stdout and "interrupted" in table.stdout
    # 80 columns (CliRunner's width), one line per run: figures are never wrapped onto a second line
    assert all(len(line) <= 80 for line in table.stdout.splitlines()[1:]), table.stdout  # [0]: the title, a path
    assert sum(line.startswith(("a ", "group/b ", "c ")) for line in table.stdout.splitlines()) == 3, table.stdout
    assert_user_error(invoke("runs", tmp_path / "nowhere"), "directory not found")


def test_runs_of_a_run_folder_names_the_run_and_a_file_is_said_to_be_one(run, tmp_path, monkeypatch):
    # `grutool runs runs/sentiment` listed one run named `.`; a file was "directory not found".
    import shutil

    shutil.copytree(run, tmp_path / "sentiment")
    monkeypatch.chdir(tmp_path)
    for given in ("sentiment", str(tmp_path / "sentiment")):
        lines = invoke("runs", given).stdout.splitlines()
        assert lines[0] == f"1 run(s) under {Path(given).parent}" and lines[-1].split()[0] == "sentiment", lines
    monkeypatch.chdir(tmp_path / "sentiment")
    assert invoke("runs", ".").stdout.splitlines()[-1].split()[0] == "sentiment"
    assert_user_error(invoke("runs", tmp_path / "sentiment" / "config.yaml"), "config.yaml: a file, not a directory")


def test_runs_of_a_tune_are_named_past_their_folder_one_whole_line_each(run, tmp_path):
    # The new-user walk: `grutool runs tuning` at 80 columns wrapped each trial's best figure inside its cell
    # (`accuracy` / `0.6375`) beside names `sentiment/trials/0000-seed13`. Now the trials are named past the
    # folder they share, stated once in the title, and each is one line, every cell whole: at 80 columns, and
    # at 40, where the lines run past the edge (a pipe: one line each).
    import shutil

    root = tmp_path / "tuning"
    trials = root / "sentiment" / "trials"
    for name in ("0000-seed13", "0001-seed13"):
        shutil.copytree(run, trials / name)
    best = json.loads(invoke("runs", run.parent, "--json").stdout)["best"]
    table = invoke("runs", root)
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0] == f"2 run(s) under {trials}", table.stdout
    rows = [line for line in lines if line.startswith(("0000-seed13 ", "0001-seed13 "))]
    assert len(rows) == 2 and all(len(line) <= 80 and f"accuracy {best:#.4g} " in line for line in rows), table.stdout
    from rich.console import Console

    from grutool.cli.runs_cmd import _run_names, _runs_view
    from grutool.runs import list_runs

    found = list_runs(root)
    for width in (80, 40):
        console = Console(width=width, record=True, file=open("/dev/null", "w"))
        console.print(_runs_view(found, _run_names(found, root)[1]), crop=False)  # as grutool's console prints
        text = console.export_text()
        rows = [line for line in text.splitlines() if line.startswith(("0000-", "0001-"))]
        assert len(rows) == 2 and all(f"accuracy {best:#.4g} " in r and r.rstrip().endswith("finished")
                                      for r in rows), text
    # At 40 the lines run past the edge without the spaces that padded them to the table's width (`status  `):
    # the terminal wrapped those onto lines of their own, blank.
    assert not any(line.endswith(" ") for line in text.splitlines()), text
    assert [json.loads(line)["run"] for line in invoke("runs", root, "--json").stdout.splitlines()] == [
        str(trials / "0000-seed13"), str(trials / "0001-seed13")]  # --json unchanged: the whole paths


def test_runs_of_the_project_folder_finds_the_runs_of_its_studies_and_tunes(run, tmp_path, monkeypatch):
    # `grutool runs .` in the folder where `grutool study` and `grutool tune` wrote said `no runs under .`: their
    # runs lie four folders down (studies/<study>/runs/<run>), one below where runs looked. Their whole paths
    # are too long for 80 columns: each folder is then a line of its own, its runs under it by their own names.
    import shutil

    paths = ("runs/plain", "studies/sentiment-cells/runs/gru-seed13", "studies/sentiment-cells/runs/lstm-seed13",
             "tuning/sentiment/trials/0000-seed13")
    for path in paths:
        shutil.copytree(run, tmp_path / path)
    monkeypatch.chdir(tmp_path)
    result = invoke("runs", ".")
    assert result.exit_code == 0, result.output
    lines = [line.rstrip() for line in result.stdout.splitlines()]
    assert lines[0] == "4 run(s) under ." and all(len(line) <= 80 for line in lines), result.stdout
    for path in paths:  # the run's folder, then runs of that folder down to the run's own line
        folder, name = path.rsplit("/", 1)
        start = lines.index(f"{folder}/")
        row = next(line for line in lines[start + 1:] if line.startswith(f"  {name} "))
        assert row.endswith("finished"), result.stdout
        assert all(line.startswith("  ") for line in lines[start + 1:lines.index(row)]), result.stdout


def test_runs_counts_an_epoch_max_steps_cut_short_as_the_part_trained(tmp_path):
    # A run stopped by train.max_steps 2 batches into its first epoch was listed as `1/30` epochs, as if one
    # whole epoch had been trained; now as the epochs it trained, `0.25/30` (2 of 8 batches).
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tmp_path, epochs=30, max_steps=2)), encoding="utf-8")
    root = tmp_path / "runs"
    result = invoke("train", config, "-o", root / "cut", "-q")
    assert result.exit_code == 0, result.output
    summary = json.loads((root / "cut" / "summary.json").read_text())
    batches = summary["steps_per_epoch"]
    assert summary["last_epoch_steps"] == 2 < batches and summary["epochs"] == 1, summary
    [row] = map(json.loads, invoke("runs", root, "--json").stdout.splitlines())
    assert row["partial_epoch"] == [2, batches] and row["epochs"] == 1, row
    [line] = [line for line in invoke("runs", root).stdout.splitlines() if line.startswith("cut ")]
    assert f" {round(2 / batches, 2):g}/30 " in line and " 1/30 " not in line, line
    # 3 of 1,053 batches (a real-data epoch) read `0.0/30`, as if nothing had been trained: digits enough to say it
    (root / "cut" / "summary.json").write_text(json.dumps({**summary, "last_epoch_steps": 3,
                                                           "steps_per_epoch": 1053}))
    [line] = [line for line in invoke("runs", root).stdout.splitlines() if line.startswith("cut ")]
    assert " 0.003/30 " in line, line


def _compared(text: str, label: str, runs: int) -> list[str]:
    """Each run's cell in `compare`'s row `label`: from the table, a column per run, or where that is wider than
    the terminal from its blocks (the label, then a line `  name  value` per run)."""
    lines = text.splitlines()
    rows = [line.split("│") for line in lines if line.count("│") > runs and line.split("│")[1].strip() == label]
    if rows:
        return [cell.strip() for cell in rows[0][2:2 + runs]]
    start = [line.strip() for line in lines].index(label) + 1
    return [line.split(None, 1)[1].strip() for line in lines[start:start + runs]]


def test_compare_shows_only_differing_fields_and_the_metrics(run, tmp_path):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(run, other)
    cfg = yaml.safe_load((other / "config.yaml").read_text())
    cfg["train"]["lr"] = 0.5
    (other / "config.yaml").write_text(yaml.safe_dump(cfg))
    result = invoke("compare", run, other, "--json")
    assert result.exit_code == 0, result.output
    c = json.loads(result.stdout)
    assert c["config"] == {"train.lr": [0.01, 0.5]}
    assert set(c["validation"]) >= {"accuracy", "macro_f1"}
    table = invoke("compare", run, other)
    assert "train.lr" in table.stdout and "accuracy" in table.stdout and "model.cell" not in table.stdout
    same = invoke("compare", run, run)
    assert "config: identical (output_dir aside)" in same.stdout and "field" not in same.stdout  # no empty table
    # A run saved before a field existed lacks it; at its default, it is no difference (it showed as "-").
    older = tmp_path / "older"
    shutil.copytree(run, older)
    cfg = yaml.safe_load((older / "config.yaml").read_text())
    del cfg["model"]["input_deltas"], cfg["data"]["covariates"]["static"]  # both newer than some runs
    (older / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert json.loads(invoke("compare", run, older, "--json").stdout)["config"] == {}
    # Nor is a setting its family never reads, which older grutool accepted and saved (it showed as `tags`, `-`).
    cfg["data"]["tag_column"] = "tags"
    (older / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert json.loads(invoke("compare", run, older, "--json").stdout)["config"] == {}
    assert_user_error(invoke("compare", run), "two run directories")
    # was `missing_dir: not a run directory (no config.yaml)` for a path that is not there at all
    assert_user_error(invoke("compare", run, tmp_path / "missing_dir"), f"{tmp_path / 'missing_dir'}: does not exist")
    assert_user_error(invoke("compare", run, run / "config.yaml"), "config.yaml: is a file, not a run directory")
    (tmp_path / "empty").mkdir()
    assert_user_error(invoke("compare", run, tmp_path / "empty"), "empty: not a run directory (no config.yaml)")


def test_compare_shows_how_many_processes_trained_a_run_when_one_used_several(run, tmp_path):
    # A `--nproc 2` run's steps took batch_size examples in each process; compare showed the two configs as
    # identical, the same batch_size on both sides.
    import shutil

    other = tmp_path / "two"
    shutil.copytree(run, other)
    summary = json.loads((other / "summary.json").read_text())
    (other / "summary.json").write_text(json.dumps({**summary, "world_size": 2, "rank": 0}))
    assert [s["processes"] for s in json.loads(invoke("compare", run, other, "--json").stdout)["summary"]] == [1, 2]
    assert _compared(invoke("compare", run, other).stdout, "processes", 2) == ["1", "2"]
    assert "processes" not in invoke("compare", run, run).stdout  # one process each: no row


def test_compare_writes_a_list_setting_as_config_yaml_does(run, tmp_path):
    # data.label_names read ['neg', 'pos'], Python's repr, where config.yaml and the README write [neg, pos]
    import shutil

    other = tmp_path / "other"
    shutil.copytree(run, other)
    cfg = yaml.safe_load((other / "config.yaml").read_text())
    cfg["data"]["label_names"] = ["neg", "pos, or not"]
    (other / "config.yaml").write_text(yaml.safe_dump(cfg))
    table = invoke("compare", run, other).stdout
    shown = _compared(table, "data.label_names", 2)[1]
    assert shown == "[neg, 'pos, or not']" and yaml.safe_load(shown) == ["neg", "pos, or not"], table


def test_compare_writes_numeric_settings_as_config_yaml_does(run, tmp_path):
    # train.seed read 19,530 (and an lr of 0.000123456 read 1.235e-04): copied back into --set, neither is the
    # setting the run had
    import shutil

    other = tmp_path / "other"
    shutil.copytree(run, other)
    cfg = yaml.safe_load((other / "config.yaml").read_text())
    settings = {("train", "seed"): 19530, ("train", "max_steps"): 12000, ("train", "batch_size"): 1024,
                ("data", "max_length"): 4096, ("train", "lr"): 0.000123456}
    for (section, name), value in settings.items():
        cfg[section][name] = value
    (other / "config.yaml").write_text(yaml.safe_dump(cfg))
    table = invoke("compare", run, other).stdout
    for (section, name), value in settings.items():
        shown = _compared(table, f"{section}.{name}", 2)[1]
        assert yaml.safe_load(shown) == value and shown == yaml.safe_dump(value).split("\n")[0], (shown, table)


def test_compare_of_runs_of_other_families_shows_only_what_each_family_reads(run, tmp_path):
    """The README walk-through: a classifier beside a forecaster listed `data.horizon 96 14` (the classifier's
    default of a field it never reads) among the differences. A field is now compared among the runs whose family
    reads it; the others say they do not read it: `n/a` in the table, {"not_read": true} in --json, never `-` and
    null, which a setting of null showed as too (train.patience: null)."""
    import shutil

    forecasters = []
    for name, horizon in (("f14", 14), ("f24", 24)):
        other = tmp_path / name
        shutil.copytree(run, other)  # compare reads config.yaml, summary.json, metrics.jsonl: no model
        cfg = yaml.safe_load((other / "config.yaml").read_text())
        cfg["task"] = "forecast"
        cfg["data"].update(horizon=horizon, input_length=28, time_column="date")
        cfg["model"]["embedding_dim"] = 128  # a forecaster never reads it
        cfg["train"]["patience"] = None if horizon == 14 else 3  # a setting of null, read by every family
        cfg["model"]["bidirectional"] = horizon == 24  # booleans as config.yaml writes them, not Python's True
        (other / "config.yaml").write_text(yaml.safe_dump(cfg))
        forecasters.append(other)
    pair = json.loads(invoke("compare", run, forecasters[0], "--json").stdout)["config"]
    assert pair["task"] == ["classifier", "forecast"]
    assert "data.horizon" not in pair and "data.input_length" not in pair, pair  # read by one run only
    assert "model.embedding_dim" not in pair, pair
    three = json.loads(invoke("compare", run, *forecasters, "--json").stdout)["config"]
    assert three["data.horizon"] == [{"not_read": True}, 14, 24], three  # the forecasters differ
    assert three["train.patience"][1] is None and None not in three["data.horizon"], three  # null: a setting only
    assert "data.input_length" not in three and "model.embedding_dim" not in three, three
    table = invoke("compare", run, *forecasters)
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert _compared(table.stdout, "data.horizon", 3) == ["n/a", "14", "24"], table.stdout
    assert _compared(table.stdout, "train.patience", 3)[1] == "null", table.stdout
    assert _compared(table.stdout, "model.bidirectional", 3)[1:] == ["false", "true"], table.stdout
    [note] = [line for line in lines if line.startswith("n/a: ")]  # said once, under the table, in 80 columns
    assert len(note) <= 80 and "null" in note, note
    pair = invoke("compare", forecasters[0], forecasters[1])
    assert "n/a" not in pair.stdout, pair.stdout  # every run reads every field listed: no note


def test_compare_names_runs_past_their_shared_folder_and_keeps_the_names_whole(run, tmp_path):
    # Two runs of a study at 80 columns: the whole paths were headers, folded mid-word ("…/senti" / "ment/gru-13").
    import shutil

    shared = tmp_path / "studies" / "sentiment-with-a-long-name" / "runs"
    for name in ("gru-seed13", "gru-seed14"):
        shutil.copytree(run, shared / name)
    table = invoke("compare", shared / "gru-seed13", shared / "gru-seed14")
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0] == f"runs under {shared}", table.stdout                   # the shared folder, stated once
    assert sum(str(shared) in line for line in lines) == 1, table.stdout
    assert all(len(line) <= 80 for line in lines[1:]), table.stdout
    headers = [line for line in lines if "figure" in line or "field" in line]
    assert headers and all("gru-seed13" in h and "gru-seed14" in h for h in headers), table.stdout


def test_compare_of_two_studies_keeps_every_name_and_value_whole_inside_80_columns(run, tmp_path):
    # The new-user walk: `compare` over runs of two studies at 80 columns printed a table 96 columns wide (the
    # data paths side by side), so the terminal broke its header inside a run's name (`tagging/runs/gru-se` /
    # `ed13`) and a path (`data/tagging/ner/va` / `lidation.conll`). Where the table does not fit, each field
    # is now a block: its name, then each run's name and value on a line of their own.
    import shutil

    studies = tmp_path / "studies"
    names = ["sentiment/runs/gru-seed13", "tagging/runs/gru-seed13"]
    paths = ["data/sentiment/validation.tsv", "data/tagging/ner/validation.conll"]
    for name, path in zip(names, paths):
        shutil.copytree(run, studies / name)
        cfg = yaml.safe_load((studies / name / "config.yaml").read_text())
        cfg["data"]["validation"] = path
        (studies / name / "config.yaml").write_text(yaml.safe_dump(cfg))
    before = json.loads(invoke("compare", *(studies / n for n in names), "--json").stdout)
    table = invoke("compare", *(studies / n for n in names))
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0] == f"runs under {studies}" and all(len(line) <= 80 for line in lines[1:]), table.stdout
    assert _compared(table.stdout, "data.validation", 2) == paths, table.stdout
    assert _compared(table.stdout, "accuracy", 2) == [f"{before['validation']['accuracy'][0]:#.4g}"] * 2
    for name in names:  # a line per config field that differs; the figures fit side by side, under both names
        assert sum(line.strip().startswith(f"{name} ") for line in lines) == len(before["config"]), table.stdout
    assert any(all(name in line for name in names) for line in lines), table.stdout
    # a block's label ran on in spaces to the width of the longest value (`data.validation` and 48 spaces)
    assert not [line for line in lines if line.endswith(" ")], table.stdout
    from rich.console import Console

    from grutool.cli.runs_cmd import _side_by_side

    rows = [("data.validation", *paths)]
    for width in (40, 120):  # side by side where it fits; at 40 the blocks' lines run long, each whole
        console = Console(width=width, record=True, file=open("/dev/null", "w"))
        console.print(_side_by_side("config", "field", names, rows, "left"), crop=False)
        text = console.export_text()
        assert _compared(text, "data.validation", 2) == paths and ("│" in text) == (width == 120), text


def test_compare_leaves_out_a_figure_no_run_has_in_blocks_and_table_alike(run, tmp_path, monkeypatch):
    # Two runs stopped before their first epoch, at 24 columns: the block layout gave `best epoch` and `time`
    # a line each and one more per run, every one reading `-` (the table layout a row of `-`).
    import shutil

    from grutool.cli import console

    stopped = []
    for name in ("a", "b"):
        shutil.copytree(run, tmp_path / name)
        for file in ("summary.json", "metrics.jsonl", "best.pt", "last.pt"):
            (tmp_path / name / file).unlink()
        stopped.append(tmp_path / name)
    summary = json.loads(invoke("compare", *stopped, "--json").stdout)["summary"]
    assert [(s["best_epoch"], s["time_s"]) for s in summary] == [(None, None)] * 2, summary  # --json keeps them
    for width in ("24", "80"):
        monkeypatch.setenv("COLUMNS", width)
        monkeypatch.setattr(console.out, "_console", None)  # made anew at this width, the old one back after
        text = invoke("compare", *stopped).stdout
        assert ("│" in text) == (width == "80"), text  # blocks at 24, the table at 80
        assert _compared(text, "epochs", 2) == ["0", "0"], text
        rows = text.replace("validation (best epoch)", "")  # the title names it too
        assert "best epoch" not in rows and "time" not in rows, text
        text = invoke("compare", run, stopped[0]).stdout  # a figure one run has keeps its line, `-` for the other
        assert _compared(text, "best epoch", 2)[1] == "-" and _compared(text, "time", 2)[1] == "-", text


def test_compare_writes_times_as_runs_does_and_leaves_settings_out_of_the_figures(run, tmp_path):
    # Times read `0.5400` beside `6.061` (seconds to 4 significant digits) where `runs` writes 0:01 and 0:06; a
    # forecaster's horizon, input_length, season and windows (settings it was scored with, the count of `n`)
    # were listed among the validation figures.
    import shutil

    settings = {"windows": 47, "horizon": 14, "input_length": 28, "season": 7, "beam_size": 5}
    for name, seconds in (("a", 0.54), ("b", 6.061)):
        shutil.copytree(run, tmp_path / name)
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        summary["wall_time_s"] = seconds
        summary["validation"].update(settings)
        (tmp_path / name / "summary.json").write_text(json.dumps(summary))
    table = invoke("compare", tmp_path / "a", tmp_path / "b")
    assert table.exit_code == 0, table.output
    listed = invoke("runs", tmp_path).stdout.splitlines()
    assert _compared(table.stdout, "time", 2) == ["0:01", "0:06"], table.stdout
    assert [line.split()[-2] for line in listed if line.startswith(("a ", "b "))] == ["0:01", "0:06"], listed
    compared = json.loads(invoke("compare", tmp_path / "a", tmp_path / "b", "--json").stdout)
    assert "accuracy" in compared["validation"] and not set(settings) & set(compared["validation"]), compared
    assert not any(line.split("│")[1].strip() in settings for line in table.stdout.splitlines() if "│" in line)


def test_compare_and_runs_keep_the_digits_of_small_values(run, tmp_path, monkeypatch):
    # train.lr=3e-5 showed as 0.0000 beside 0.0030, and an mse of 0.0012345 as 0.0012
    import shutil

    for name, lr, loss in (("a", 0.003, 0.5), ("b", 3e-5, 0.0012345)):
        shutil.copytree(run, tmp_path / name)
        cfg = yaml.safe_load((tmp_path / name / "config.yaml").read_text())
        cfg["train"]["lr"] = lr
        (tmp_path / name / "config.yaml").write_text(yaml.safe_dump(cfg))
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        summary["best"] = summary["validation"]["loss"] = loss
        (tmp_path / name / "summary.json").write_text(json.dumps(summary))
    monkeypatch.chdir(tmp_path)
    table = invoke("compare", "a", "b")
    assert table.exit_code == 0, table.output
    assert "runs under" not in table.stdout, "no folder in common: the names as given"
    lr_row = next(line for line in table.stdout.splitlines() if "train.lr" in line)
    assert "0.003" in lr_row and "3.0e-05" in lr_row and "0.0000" not in lr_row, table.stdout  # as config.yaml
    loss_row = next(line for line in table.stdout.splitlines() if "│ loss" in line)
    assert "0.001234" in loss_row and " 0.5000 " in loss_row, table.stdout  # trailing zeros, as `train` prints
    listed = invoke("runs", ".")
    assert "0.001234" in next(line for line in listed.stdout.splitlines() if line.startswith("b ")), listed.stdout
    assert " 0.5000 " in next(line for line in listed.stdout.splitlines() if line.startswith("a ")), listed.stdout


@pytest.mark.parametrize("monitor, values, best_epoch", [
    ("accuracy", [0.5, 0.75, 0.75], 2), ("loss", [0.5, 0.25, 0.25], 2),  # a tie: the first epoch, as best.pt's
    ("accuracy", [0.5, math.inf, 0.75], 3), ("loss", [0.5, -math.inf, 0.25], 3)])  # never a non-finite value
def test_runs_compare_and_plot_read_the_best_epoch_of_a_run_without_summary_as_training_chose_it(
        run, tmp_path, monkeypatch, monitor, values, best_epoch):
    # A run still training or killed has no summary.json: its best epoch is read back from metrics.jsonl. That
    # took max((value, epoch)), so a tie went to the latest epoch, where training keeps the first (strictly
    # better only), and an infinite accuracy (a hand-edited file) was the best; `compare` then showed that
    # epoch's figures and `plot` put its star there.
    import shutil

    import grutool.curves as curves

    stopped = tmp_path / "stopped"
    shutil.copytree(run, stopped)
    (stopped / "summary.json").unlink()
    cfg = yaml.safe_load((stopped / "config.yaml").read_text())
    cfg["train"]["monitor"] = monitor
    (stopped / "config.yaml").write_text(yaml.safe_dump(cfg))
    first = json.loads((stopped / "metrics.jsonl").read_text().splitlines()[0])
    rows = [{**first, "epoch": epoch, f"val_{monitor}": value, "val_macro_f1": epoch / 10}
            for epoch, value in enumerate(values, 1)]
    (stopped / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    [listed] = map(json.loads, invoke("runs", stopped, "--json").stdout.splitlines())
    assert (listed["best_epoch"], listed["best"]) == (best_epoch, values[best_epoch - 1]), listed
    compared = json.loads(invoke("compare", stopped, run, "--json").stdout)
    assert compared["summary"][0]["best_epoch"] == best_epoch
    assert compared["validation"]["macro_f1"][0] == best_epoch / 10, "the figures of that epoch's row"
    pytest.importorskip("matplotlib")
    drawn = {}
    monkeypatch.setattr(curves, "save_png", lambda fig, path, dpi: drawn.update(fig=fig))
    assert invoke("plot", stopped, "-o", tmp_path / "c.png").exit_code == 0
    [star] = [line for ax in drawn["fig"].axes[1:] for line in ax.lines if line.get_marker() == "*"]
    assert list(star.get_xdata()) == [best_epoch]


def test_plot_draws_curves_of_several_runs(run, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "curves.png"
    result = invoke("plot", run, run, "-o", png)
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert_user_error(invoke("plot", run, "-o", tmp_path / "x.jpg"), ".png")


def test_plot_leaves_out_a_run_whose_metrics_are_missing_or_damaged_and_says_what_is_wrong(run, tmp_path,
                                                                                         monkeypatch):
    # A finished run whose metrics.jsonl was deleted, or cut inside its first line, said `no epochs to plot yet
    # (the run has not finished an epoch)`, and the whole plot was refused. Now the reason is said, and beside
    # other runs it is left out with a warning; a damaged line is named; a last line cut by a kill mid-write is
    # left out, the rows before it drawn, as `runs` reads them.
    import shutil

    import grutool.curves as curves

    lines = (run / "metrics.jsonl").read_text().splitlines()
    damage = {"deleted": None, "cut": lines[0][:40], "garbled": "\n".join(["{oops", *lines[1:]]) + "\n",
              "killed": f"{lines[0]}\n{lines[1][:40]}"}
    for name, text in damage.items():
        shutil.copytree(run, tmp_path / name)
        if text is None:
            (tmp_path / name / "metrics.jsonl").unlink()
        else:
            (tmp_path / name / "metrics.jsonl").write_text(text)
    drawn = {}
    monkeypatch.setattr(curves, "save_png", lambda fig, path, dpi: drawn.update(fig=fig))
    result = invoke("plot", run, tmp_path / "deleted", "-o", tmp_path / "c.png")
    assert result.exit_code == 0, result.output
    assert (f"warning: {tmp_path / 'deleted' / 'metrics.jsonl'}: missing, though the run trained 2 epoch(s); left "
            f"out of the plot") in " ".join(result.output.split()), result.output
    names = [t.get_text() for t in drawn["fig"].legends[0].get_texts()]
    assert len([n for n in names if not n.endswith(" loss")]) == 1, names
    for name, says in (("deleted", "metrics.jsonl: missing, though the run trained 2 epoch(s)"),
                       ("cut", "metrics.jsonl: its only line is cut short (a kill mid-write), though the run "
                               "trained 2 epoch(s)"),
                       ("garbled", "metrics.jsonl: unreadable at line 1 (not JSON); restore the file")):
        assert_user_error(invoke("plot", tmp_path / name, "-o", tmp_path / "c.png"), f"{tmp_path / name}/", says)
    assert_user_error(invoke("plot", tmp_path / "deleted", tmp_path / "cut", "-o", tmp_path / "c.png"),
                      "no run to plot: ", "missing", "cut short")
    assert invoke("plot", tmp_path / "killed", "-o", tmp_path / "c.png").exit_code == 0
    assert [list(line.get_xdata()) for line in drawn["fig"].axes[0].lines] == [[1], [1]]  # train, validation
    (tmp_path / "killed" / "summary.json").unlink()  # as `runs` reads a run killed mid-write: epoch 1 whole
    # the legend says the run is interrupted (an interrupted run's curves read as a finished one's)
    assert invoke("plot", tmp_path / "killed", "-o", tmp_path / "c.png").exit_code == 0
    assert any(t.get_text().endswith("(interrupted)") for t in drawn["fig"].legends[0].get_texts())
    [listed] = map(json.loads, invoke("runs", tmp_path / "killed", "--json").stdout.splitlines())
    assert (listed["status"], listed["epochs"]) == ("interrupted", 1), listed
    # a finished run's figures come from its summary.json: a damaged metrics line does not make it unreadable
    [listed] = map(json.loads, invoke("runs", tmp_path / "garbled", "--json").stdout.splitlines())
    assert listed["status"] == "finished" and listed["best"] is not None, listed
    (tmp_path / "garbled" / "summary.json").unlink()  # where they come from metrics.jsonl, it does
    [listed] = map(json.loads, invoke("runs", tmp_path / "garbled", "--json").stdout.splitlines())
    assert (listed["status"], listed["reason"]) == ("unreadable", "metrics.jsonl: line 1 is not JSON"), listed


def test_plot_names_runs_past_their_folder_in_one_legend_and_gives_each_metric_its_own_panel(run, tmp_path,
                                                                                            monkeypatch):
    # Before: a study's folder was refused (`not a run directory`), though compare took it; each run's legend
    # entry was its whole path, in a legend drawn over the curves; and runs monitoring different metrics shared
    # one axis ("accuracy / loss", higher-is-better beside lower-is-better).
    pytest.importorskip("matplotlib")
    import shutil

    import grutool.curves as curves

    study = tmp_path / "studies" / "s" / "runs"
    for name in ("gru-seed13", "lstm-seed13"):
        shutil.copytree(run, study / name)
    cfg = yaml.safe_load((study / "lstm-seed13" / "config.yaml").read_text())
    cfg["train"]["monitor"] = "loss"
    (study / "lstm-seed13" / "config.yaml").write_text(yaml.safe_dump(cfg))
    summary = json.loads((study / "lstm-seed13" / "summary.json").read_text())
    summary["monitor"], summary["best"] = "loss", summary["validation"]["loss"]
    (study / "lstm-seed13" / "summary.json").write_text(json.dumps(summary))
    drawn = {}
    monkeypatch.setattr(curves, "save_png", lambda fig, path, dpi: drawn.setdefault("fig", fig))
    result = invoke("plot", tmp_path / "studies" / "s", "-o", tmp_path / "c.png")
    assert result.exit_code == 0, result.output
    fig = drawn["fig"]
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss", "accuracy", "loss"]
    assert all(ax.get_legend() is None for ax in fig.axes), "no legend over a panel's curves"
    names = [t.get_text() for t in fig.legends[0].get_texts()]
    assert names[:2] == ["gru-seed13", "lstm-seed13"], names
    assert fig._suptitle.get_text() == f"runs under {study}"


def test_plot_of_runs_without_validation_draws_no_empty_panel(run, tmp_path, monkeypatch):
    # A run without a validation split drew a "validation accuracy" panel with empty axes, and its legend named
    # a validation loss no line showed; beside a run with validation, only that run has a metric panel.
    pytest.importorskip("matplotlib")
    import shutil

    import grutool.curves as curves

    alone = tmp_path / "no-validation"
    shutil.copytree(run, alone)
    rows = [json.loads(r) for r in (alone / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    (alone / "metrics.jsonl").write_text("".join(json.dumps({k: v for k, v in r.items() if not k.startswith("val_")})
                                                 + "\n" for r in rows), encoding="utf-8")
    drawn = {}
    monkeypatch.setattr(curves, "save_png", lambda fig, path, dpi: drawn.update(fig=fig))
    assert invoke("plot", alone, "-o", tmp_path / "a.png").exit_code == 0
    fig = drawn["fig"]
    assert [ax.get_title() for ax in fig.axes] == ["training loss (no validation split)"]
    assert "validation loss" not in [t.get_text() for t in fig.legends[0].get_texts()]
    assert invoke("plot", alone, run, "-o", tmp_path / "b.png").exit_code == 0
    assert [ax.get_ylabel() for ax in drawn["fig"].axes] == ["loss", "accuracy"]
    assert len(drawn["fig"].axes[1].lines) == 2  # the validated run's curve and its star, nothing of the other


def test_plot_shows_the_loss_of_a_one_epoch_run(run, tmp_path, monkeypatch):
    """Before: the loss panel drew its curves as bare lines, so a run of one epoch had an empty loss panel
    (a legend and nothing else) beside a marked metric point, over ticks 0.96 ... 1.04; now every point of each
    curve is drawn, over the tick of its epoch."""
    pytest.importorskip("matplotlib")
    import shutil

    import grutool.curves as curves

    one = tmp_path / "one"
    shutil.copytree(run, one)
    rows = (one / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    (one / "metrics.jsonl").write_text(next(r for r in rows if '"epoch": 1' in r) + "\n", encoding="utf-8")
    drawn = {}

    def keep(fig, path, dpi):
        drawn["axes"] = fig.axes

    monkeypatch.setattr(curves, "save_png", keep)
    result = invoke("plot", one, "-o", tmp_path / "c.png")
    assert result.exit_code == 0, result.output
    loss, metric = drawn["axes"][:2]
    for ax in (loss, metric):
        points = [line for line in ax.lines if len(line.get_xdata()) == 1]
        assert points and all(line.get_marker() not in (None, "", "None", " ") for line in points), ax.get_title()
        assert all(float(t).is_integer() for t in ax.get_xticks()), "epochs are whole numbers"


# --- help ---------------------------------------------------------------------------------------------


def test_version_and_examples_in_help():
    from grutool import __version__

    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"grutool {__version__}"
    for command in ("train", "eval", "infer", "bench", "runs", "compare", "plot", "init", "shapes"):
        text = invoke(command, "--help").stdout
        assert "Examples:" in text, command
        assert "{config}" not in text and "{run_dir}" not in text, "placeholders say what to give"
        options = [l for l in text.splitlines() if l.lstrip().startswith("-")]
        assert not [l for l in options if "<list[str]>" in l or "<int range>" in l], command
    assert "--install-completion" in invoke("--help").stdout
    assert "--set KEY=VALUE" in invoke("train", "--help").stdout


# --- relative data paths ------------------------------------------------------------------------------


def test_relative_data_paths_are_found_beside_the_config(tmp_path, monkeypatch):
    from grutool.config_file import load_config

    folder = tmp_path / "project"
    raw = tiny_config(folder)
    for name in ("train", "validation", "test"):
        raw["data"][name] = f"data/{name}.tsv"        # relative to the config's folder, not to the cwd
    (folder / "my.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)
    cfg = load_config("project/my.yaml")
    assert cfg.data.train == str(Path("project") / "data" / "train.tsv")
    raw["data"]["train"] = "data/missing.tsv"
    (folder / "bad.yaml").write_text(yaml.safe_dump(raw))
    assert_user_error(invoke("train", "project/bad.yaml", "--dry-run"), "data/missing.tsv: data file not found",
                      f"relative to the working directory {tmp_path}", "config file's folder")


# --- smaller items ------------------------------------------------------------------------------------


def test_joint_dry_run_names_tags_and_counts_intents(tmp_path):
    root = Path(__file__).resolve().parents[2]
    travel = root / "data" / "tagging" / "travel"
    result = invoke("train", root / "configs" / "tagging.yaml", "--dry-run", "-o", str(tmp_path / "r"), "--set", "task=joint",
                    "--set", f"data.train={travel / 'train'}", "--set", f"data.validation={travel / 'validation'}",
                    "--set", f"data.test={travel / 'test'}", "--set", "data.format=parallel",
                    "--set", "data.tag_column=", "--set", "train.monitor=sentence_accuracy")
    assert result.exit_code == 0, result.output
    lines = {l.split()[0]: l.split()[-1] for l in result.stdout.splitlines()[1:] if l.strip()}
    assert lines["tags"] == "11" and lines["intents"] == "4" and "classes" not in lines


def test_resume_of_a_finished_run_says_it_is_complete(run, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    before = (copy / "metrics.jsonl").read_text()
    result = invoke("train", run.parent / "tiny.yaml", "--resume", "-o", copy)
    assert result.exit_code == 0, result.output
    assert "the run is complete (2 of 2 epochs" in result.output and "train.epochs" in result.output
    assert (copy / "metrics.jsonl").read_text() == before


def test_eval_device_cuda_without_cuda_says_why(run):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    assert_user_error(invoke("eval", run, "--device", "cuda"), "--device: 'cuda' requested but CUDA is not available")


def test_python_train_shows_progress_when_asked(tmp_path):
    import os
    import subprocess
    import sys

    raw = tiny_config(tmp_path, epochs=1, device="cpu")
    # One fresh interpreter (a second one cost a start-up): first a training not asked to show anything, then
    # the same run again, asked.
    code = ("from grutool import train\nfrom grutool.config_file import parse_config\nimport json, sys\n"
            "raw = json.loads(sys.argv[1])\ntrain(parse_config(raw))\n"
            "print('--- asked ---', file=sys.stderr, flush=True)\n"
            "train(parse_config(raw), overwrite=True, progress=True)\n")
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(raw)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    quiet, _, asked = proc.stderr.partition("--- asked ---\n")
    assert quiet == "", "silent unless asked"
    assert "data: 64 train" in asked and "epoch 1/1: loss" in asked


@pytest.mark.parametrize("task", ["tagger", "regressor"])
def test_init_numeric_input_of_the_other_families_trains(task, tmp_path, monkeypatch):
    """`grutool init tagger|regressor --input numeric > x.yaml && grutool train x.yaml`: it trains as printed."""
    result = invoke("init", task, "--input", "numeric")
    assert result.exit_code == 0, result.output
    (tmp_path / "my.yaml").write_text(result.stdout)
    monkeypatch.chdir(ROOT)
    done = invoke("train", tmp_path / "my.yaml", "-o", tmp_path / "run", "--set", "train.epochs=1", "-q")
    assert done.exit_code == 0, done.output
    assert (tmp_path / "run" / "best.pt").is_file()


def test_init_numeric_input_dry_runs(tmp_path, monkeypatch):
    """`grutool init classifier --input numeric`: a numeric-sequence config on data/numeric that dry-runs."""
    result = invoke("init", "classifier", "--input", "numeric")
    assert result.exit_code == 0, result.output
    (tmp_path / "my.yaml").write_text(result.stdout)
    monkeypatch.chdir(ROOT)
    dry = invoke("train", tmp_path / "my.yaml", "--dry-run", "-o", tmp_path / "run")
    assert dry.exit_code == 0 and "train 150" in dry.output, dry.output
    assert "channels    2" in dry.output and "vocab size" not in dry.output and "scaler" not in dry.output
    written = yaml.safe_load(result.stdout)["data"]
    assert "channels" in written and not {"tokenizer", "min_freq", "text_column", "vectors"} & set(written)
    assert not {"scheme", "tag_column", "convert_to"} & set(written), "the tagger's settings"
    assert_user_error(invoke("init", "lm", "--input", "numeric"), "--input: task lm reads text, not 'numeric'")
    # split_seed's comment says what it does here: it picks which sequences of a sliced .ts file validate.
    lines = result.stdout.splitlines()
    at = lines.index("  split_seed: 13")
    assert "train.ts[:80%]" in _comment_above(lines, at), lines[at - 3:at + 1]


NUMERIC_FAMILIES = sorted(name for name, task in TASKS.items() if "numeric" in task.inputs)


@pytest.mark.parametrize("task", NUMERIC_FAMILIES)
def test_init_numeric_input_leaves_every_text_setting_out(task, tmp_path, monkeypatch):
    """`grutool init TASK --input numeric` (forecast included: what it always reads) lists none of the text
    settings (grutool.families.rules.TEXT_ONLY), and the written template dry-runs."""
    from grutool.families.rules import TEXT_ONLY

    result = invoke("init", task, "--input", "numeric")
    assert result.exit_code == 0, result.output
    written = yaml.safe_load(result.stdout)
    left = [f"{section}.{name}" for section, names in TEXT_ONLY.items() for name in names
            if name in written.get(section, {})]
    assert not left, f"text settings in the numeric template: {left}"
    (tmp_path / "my.yaml").write_text(result.stdout)
    monkeypatch.chdir(ROOT)
    dry = invoke("train", tmp_path / "my.yaml", "--dry-run", "-o", tmp_path / "run")
    assert dry.exit_code == 0 and "(not written)" in dry.output, dry.output


TEXT_FAMILIES = sorted(name for name, task in TASKS.items() if task.example != task.inputs.get("numeric"))


# The numeric settings a text family reads all the same: seq2seq and lm slice their own text with data.split_seed
# (cmudict's held-out words, a text_dir's files).
READ_ON_TEXT = {"seq2seq": {"data.split_seed"}, "lm": {"data.split_seed"}}


@pytest.mark.parametrize("task", TEXT_FAMILIES)
def test_init_text_input_leaves_every_numeric_setting_out(task):
    """`grutool init joint` listed data.channels, id_column, time_column, missing and time_delta, which a joint
    config is refused for ("task joint reads text"); no text template lists the numbers' settings, but the
    seq2seq and lm templates left out data.split_seed, which both read on text."""
    from grutool.families.rules import NUMERIC_SETTINGS

    result = invoke("init", task)
    assert result.exit_code == 0, result.output
    written = yaml.safe_load(result.stdout)
    listed = {f"{section}.{name}" for section, names in NUMERIC_SETTINGS.items() for name in names
              if name in (written.get(section) or {})}
    assert listed == READ_ON_TEXT.get(task, set()), f"numeric settings in the {task} template: {listed}"


@pytest.mark.parametrize("task", ["classifier", "tagger", "regressor"])
def test_init_numeric_input_describes_the_front_end_it_builds(task):
    """The numeric template's embedding settings said only `Size of each token embedding` and `the word
    embedding with its char features`: a numeric model has no token; they size and drop its projected channels."""
    lines = invoke("init", task, "--input", "numeric").stdout.splitlines()
    for key in ("embedding_dim", "embedding_dropout"):
        k = next(i for i, line in enumerate(lines) if line.strip().startswith(f"{key}:"))
        described = lines[k] + _comment_above(lines, k)  # the comment beside the value, or the lines above it
        assert "numeric sequences" in described and "channels" in described, (key, described)


# A value other than the default for every text setting (a new one in TEXT_ONLY needs one here).
TEXT_VALUES = {"data.dataset": "x/y", "data.dataset_config": "x", "data.text_column": "t", "data.max_word_length": 8,
               "data.tokenizer": "char", "data.lowercase": "false", "data.min_freq": 2, "data.max_size": 10,
               "data.max_length": 10, "data.vectors": "v.txt", "data.convert_to": "bioes",
               "model.embedding_init": "xavier_uniform", "model.token_dropout": 0.1, "model.freeze_embeddings": "true",
               "model.char_features": "true", "model.char_embedding_dim": 8, "model.char_hidden_size": 8,
               "train.lazy_embeddings": "true"}


@pytest.mark.parametrize("task", NUMERIC_FAMILIES)
def test_a_text_setting_on_numbers_is_refused_in_one_line(task, tmp_path, monkeypatch):
    """Each text setting set on a numeric config (`init TASK --input numeric`) exits 2 with one line naming it;
    none is accepted silently."""
    from grutool.families.rules import TEXT_ONLY

    assert set(TEXT_VALUES) == {f"{s}.{n}" for s, names in TEXT_ONLY.items() for n in names}
    (tmp_path / "my.yaml").write_text(invoke("init", task, "--input", "numeric").stdout)
    monkeypatch.chdir(ROOT)
    for key, value in TEXT_VALUES.items():
        # convert_to with span tags, so that the conversion rule itself has nothing to say
        spans = ["--set", "data.scheme=iob2"] if key == "data.convert_to" else []
        result = invoke("train", tmp_path / "my.yaml", "--dry-run", "-o", tmp_path / "run", "--set",
                        f"{key}={value}", *spans)
        # a family that reads text too says what made the config numeric and the other way out
        reads_text = task in ("classifier", "tagger")  # forecast and regressor read numbers alone
        assert_user_error(result, f"{key}: for text; numeric sequences have no tokens",
                          "so this config reads them): remove it, or " if reads_text else "no tokens: remove it")
    assert not (tmp_path / "run").exists()


def test_init_forecast_reads_numeric_input():
    """`init forecast --input numeric` is `init forecast`; a family that reads numbers alone refuses text."""
    numeric = invoke("init", "forecast", "--input", "numeric")
    assert numeric.exit_code == 0 and numeric.stdout == invoke("init", "forecast").stdout, numeric.output
    assert_user_error(invoke("init", "forecast", "--input", "text"), "--input: task forecast reads numeric, "
                                                                     "not 'text'")
    assert_user_error(invoke("init", "regressor", "--input", "text"), "--input: task regressor reads numeric")
    assert_user_error(invoke("init", "classifier", "--input", "x"), "task classifier reads text or numeric")


@pytest.mark.parametrize("task", ["forecast", "regressor", "classifier"])
def test_init_monitor_comment_names_every_minimised_metric(task):
    """The comment above or beside `monitor:` says which metrics are minimised: every one in MINIMIZED_METRICS
    (an mse monitor was said to be maximised)."""
    import re

    from grutool.config import MINIMIZED_METRICS

    lines = invoke("init", task).stdout.splitlines()
    at = next(i for i, l in enumerate(lines) if l.startswith("  monitor:"))
    comment = lines[at] if "#" in lines[at] else _comment_above(lines, at)
    said = re.search(r"\(([^)]*) are minimised", comment)
    assert said, comment
    assert set(MINIMIZED_METRICS) <= set(re.findall(r"\w+", said.group(1))), comment


def test_init_writes_list_settings_as_config_yaml_does():
    """`grutool init tagger --input numeric` wrote `channels: ['a', 'b']`, Python's spelling of the list: valid YAML,
    but not how config.yaml, compare or the docs write it. Every list and mapping default reads as YAML's flow."""
    import yaml

    text = invoke("init", "tagger", "--input", "numeric").output
    assert "  channels: [a, b]\n" in text, text
    assert "['" not in text and "{'" not in text
    assert yaml.safe_load(text)["data"]["channels"] == ["a", "b"]


def test_a_text_run_of_a_family_that_reads_numbers_too_is_not_shown_their_settings(run, tmp_path):
    """`grutool init classifier` (text) listed data.channels, data.missing, data.time_column, data.split_seed,
    model.input_noise and model.input_deltas, which change nothing on text (the model's are refused when set),
    and serve's /info listed the model's two for a text run. Text templates, /info (through unread_fields) and
    compare now leave them to numeric runs; numeric templates keep them."""
    import shutil

    from grutool.config_file import unread_fields
    from grutool.families.rules import NUMERIC_SETTINGS

    numeric_settings = [f"{s}.{n}" for s, names in NUMERIC_SETTINGS.items() for n in names]
    for task in ("classifier", "tagger"):
        text = yaml.safe_load(invoke("init", task).stdout)
        numeric = yaml.safe_load(invoke("init", task, "--input", "numeric").stdout)
        for path in numeric_settings:
            section, name = path.split(".")
            assert name not in text[section], (task, path)
            assert name in numeric[section], (task, path)
    saved = yaml.safe_load((run / "config.yaml").read_text())  # a text classifier's run: every field written
    assert set(numeric_settings) <= set(unread_fields(saved)), unread_fields(saved)
    other = tmp_path / "numbers"
    shutil.copytree(run, other)
    cfg = yaml.safe_load((other / "config.yaml").read_text())
    cfg["data"].update(train="data/numeric/train.ts", validation="data/numeric/validation.ts",
                       test="data/numeric/test.ts", missing="ffill")
    (other / "config.yaml").write_text(yaml.safe_dump(cfg))
    pair = json.loads(invoke("compare", run, other, "--json").stdout)["config"]
    assert "data.missing" not in pair and "data.train" in pair, pair  # read by one of the two runs only


def test_a_config_warning_is_one_line_in_runs_and_said_once_by_infer(tmp_path):
    """`grutool runs` over a run with model.dropout and one layer printed Python's raw `UserWarning` with its
    source line (runs and compare set up no logging), and `infer` printed the same warning twice (the config is
    read for the task, then for the model)."""
    import subprocess
    import sys

    import yaml

    raw = tiny_config(tmp_path, epochs=1, device="cpu")
    raw["model"]["dropout"] = 0.3
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert invoke("train", tmp_path / "c.yaml", "-q").exit_code == 0
    run = raw["output_dir"]
    for command in (["runs", str(Path(run).parent)], ["compare", run, run], ["infer", run, "a good film"]):
        # a fresh process each: Python's own warning registry would hide a repeat inside one test process
        done = subprocess.run([sys.executable, "-m", "grutool", *command], capture_output=True, text=True,
                              cwd=ROOT, timeout=120)
        said = [line for line in done.stderr.splitlines() if "model.dropout=0.3 has no effect" in line]
        assert "UserWarning" not in done.stderr and len(said) == 1 and said[0].startswith("warning: "), done.stderr


def test_a_negative_infinity_argument_is_told_to_follow_two_dashes(monkeypatch, tmp_path):
    """`infer RUN -inf,1` is parsed as the option `-i`: the line said only `-i: no such option`."""
    from conftest import assert_user_error

    monkeypatch.setattr("sys.argv", ["grutool", "infer", str(tmp_path), "-inf,1"])
    assert_user_error(invoke("infer", tmp_path, "-inf,1"), "-i: no such option; an argument starting with '-' "
                      "(a negative number) is read as an option: put -- before the arguments")
    monkeypatch.setattr("sys.argv", ["grutool", "infer", str(tmp_path), "-i"])
    assert_user_error(invoke("infer", tmp_path, "-i"), "-i: no such option; see ")
