"""CLI wiring: train -> eval -> infer as a user runs them, and a fast --help."""

import json
import subprocess
import sys

import yaml
from typer.testing import CliRunner

from grutool.cli.app import app

from conftest import tiny_config

runner = CliRunner()


def test_python_dash_m_works():
    proc = subprocess.run([sys.executable, "-m", "grutool", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "train" in proc.stdout


def test_train_eval_infer_round_trip(tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(tmp_path, epochs=4)))
    run = tmp_path / "run"

    r = runner.invoke(app, ["train", str(cfg), "--quiet", "--set", "model.pooling=attention"])
    assert r.exit_code == 0, r.output
    assert "run directory" in r.stdout
    for name in ("config.yaml", "vocab.json", "labels.json", "best.pt", "last.pt", "metrics.jsonl", "summary.json"):
        assert (run / name).is_file(), name
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"]["pooling"] == "attention", "overrides are part of the resolved config"

    r = runner.invoke(app, ["eval", str(run), "--split", "test", "--json"])
    assert r.exit_code == 0, r.output
    metrics = json.loads(r.stdout)
    assert metrics["n"] == 24 and 0 <= metrics["accuracy"] <= 1 and "macro_f1" in metrics
    assert sum(map(sum, metrics["confusion"]["matrix"])) == 24

    r = runner.invoke(app, ["eval", str(run)])
    assert r.exit_code == 0 and "confusion" in r.stdout

    r = runner.invoke(app, ["infer", str(run), "the food was great", "awful film", "--jsonl"])
    assert r.exit_code == 0, r.output
    rows = [json.loads(l) for l in r.stdout.splitlines()]
    assert [row["text"] for row in rows] == ["the food was great", "awful film"]
    for row in rows:
        assert set(row) == {"text", "label", "probs"}
        assert abs(sum(row["probs"].values()) - 1) < 1e-4
        assert row["label"] == max(row["probs"], key=row["probs"].get)

    r = runner.invoke(app, ["infer", str(run), "--file", "-"], input="great book\n\nbad service\n")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert len(lines) == 3, "one line per input, the empty one included"
    assert lines[0].split("\t")[2] == "great book"


def test_quiet_leaves_progress_out_and_the_result_on_stdout_as_the_readme_says(tmp_path):
    # README said `-q` "shows only warnings and errors", while done:, best: and run directory: still printed
    from pathlib import Path

    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(tmp_path, epochs=1)))
    r = runner.invoke(app, ["train", str(cfg), "-q"])
    assert r.exit_code == 0, r.output
    assert r.stderr == "" and not any(w in r.stdout for w in ("epoch 1/1", "data:", "model:"))
    shown = [line.split(":")[0] for line in r.stdout.splitlines()]
    assert shown == ["done", "best", "run directory"], r.stdout
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    said = next(s for s in readme.split(". ") if s.startswith("`-q`"))
    assert "only warnings and errors" in said and all(f"`{w}: …`" in said for w in shown) and "stdout" in said


def test_resume_and_overwrite_flags(tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(tmp_path, epochs=1)))
    assert runner.invoke(app, ["train", str(cfg), "-q"]).exit_code == 0
    r = runner.invoke(app, ["train", str(cfg), "-q", "--resume", "--set", "train.epochs=2"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["epochs"] == 2
    r = runner.invoke(app, ["train", str(cfg), "-q", "--resume", "--set", "model.hidden_size=32"])
    assert r.exit_code == 2 and "model.hidden_size" in r.output
    r = runner.invoke(app, ["train", str(cfg), "-q", "--overwrite"])
    assert r.exit_code == 0


def test_ctrl_c_saves_a_resumable_checkpoint(tmp_path):
    """A real SIGINT to a real `grutool train` process: exit 130, last.pt saved, --resume finishes."""
    import os
    import signal
    import time

    raw = tiny_config(tmp_path, epochs=200, batch_size=4)
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    cmd = [sys.executable, "-m", "grutool", "train", str(cfg), "-q", "--overwrite"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.time() + 60
    while not (metrics.exists() and metrics.read_text().count("\n") >= 1) and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    # started with --overwrite: "plus --resume" led to `--resume: contradicts --overwrite`
    assert "continue with the same command with --resume in place of --overwrite" in stderr, stderr
    assert "Traceback" not in stderr
    # where it stopped and what best.pt holds, which a finished run's `best:` line says and an interrupted one did not
    import re
    assert re.search(r"^stopped (in|after) epoch \d+ of 200; best\.pt: epoch \d+, validation accuracy \d\.\d{4}$",
                     stderr, re.M), stderr
    from grutool.checkpoint import load_checkpoint
    state = load_checkpoint(tmp_path / "run" / "last.pt")["meta"]["state"]
    assert 1 <= state["epoch"] < 200
    r = runner.invoke(app, ["train", str(cfg), "-q", "--resume", "--set", f"train.epochs={state['epoch'] + 1}"])
    assert r.exit_code == 0, r.output


def test_runs_table_keeps_run_names_whole_at_80_columns(tmp_path):
    # `main/runs/senti` / `ment-api`: the name column folded while `best` had room; then the best figure
    # wrapped (`sentence_acc` / `0.7667`); now each row is one line, every cell whole.
    from rich.console import Console

    from grutool.cli.runs_cmd import _run_names, _runs_view

    names = ["main/runs/lm_stream", "main/runs/sentiment-api", "other/x"]  # 82 columns with two spaces between
    found = [{"run": str(tmp_path / n), "task": "classifier", "monitor": "sentence_accuracy", "best": 0.7667,
              "epochs": 10, "max_epochs": 10, "time_s": 61.0, "status": "interrupted"} for n in names]
    console = Console(width=80, record=True, file=open("/dev/null", "w"))
    console.print(_runs_view(found, _run_names(found, tmp_path)[1]))
    text = console.export_text()
    rows = [line for line in text.splitlines() if line.startswith(tuple(names))]
    assert len(rows) == 3 and all("sentence_acc 0.7667" in r and "interrupted" in r for r in rows), text
    assert "…" not in text and all(len(r) <= 80 for r in rows), text


def test_texts_over_max_length_are_read_truncated_with_a_counted_warning(tmp_path):
    """A classifier reads the first data.max_length tokens of a text, in train, eval and infer alike; it says so
    (it used to cut them silently), and the answer is the first tokens' answer."""
    from conftest import invoke

    raw = tiny_config(tmp_path, epochs=1)
    raw["data"]["max_length"] = 3
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    r = invoke("train", cfg, "--quiet")
    assert r.exit_code == 0, r.output
    assert "train: " in r.stderr and " longer than data.max_length=3 tokens: the model reads their first 3" in r.stderr
    run = tmp_path / "run"
    long_text, cut = "the food was great and the film awful", "the food was"
    r = invoke("infer", run, "fine", cut, long_text, long_text, "--jsonl")
    assert r.exit_code == 0, r.output
    assert ("warning: infer: 2 texts are longer than data.max_length=3 tokens: the model reads their first 3 "
            "(the first is input 3); train with data.max_length higher") in r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert rows[2]["probs"] == rows[1]["probs"] and rows[2]["text"] == long_text
    r = invoke("infer", run, cut)
    assert r.exit_code == 0 and "max_length" not in r.stderr
