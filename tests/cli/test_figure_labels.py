"""What the figures of a run are called where a person reads them, per family and input (`Task.nouns`,
`Task.label`): a numeric tagger's sequences have steps and are sequences, so its token_accuracy reads `step
accuracy` and its sentence_accuracy `sequence accuracy` in train's epoch and best lines, eval's line, `runs` and
`compare`, while the keys (metrics.jsonl, summary.json, --json, train.monitor) stay the text tagger's."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, invoke

NUMERIC = {"train": "data/numeric/train.csv", "validation": "data/numeric/validation.csv",
           "test": "data/numeric/test.csv"}


def _config(tmp: Path, kind: str) -> Path:
    """configs/tagging.yaml (text), or what `grutool init tagger --input numeric` writes, its data paths made
    absolute; the monitor token_accuracy, so the epoch line names it."""
    if kind == "text":
        raw = yaml.safe_load((ROOT / "configs" / "tagging.yaml").read_text())
        for split in NUMERIC:
            raw["data"][split] = str(ROOT / raw["data"][split])
    else:
        result = invoke("init", "tagger", "--input", "numeric")
        assert result.exit_code == 0, result.output
        raw = yaml.safe_load(result.stdout)
        for split in NUMERIC:
            raw["data"][split] = str(ROOT / raw["data"][split])
    raw["train"].update(epochs=2, monitor="token_accuracy", patience=None, device="cpu")
    path = tmp / f"{kind}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


@pytest.mark.parametrize("kind, words, wrong", [
    ("text", ("token", "sentence"), ("step", "sequence")),
    ("numeric", ("step", "sequence"), ("token", "sentence")),
])
def test_a_tagger_s_figures_are_named_by_its_input_and_keyed_alike(tmp_path, monkeypatch, kind, words, wrong):
    unit, whole = words
    run = tmp_path / "runs" / kind
    result = invoke("train", _config(tmp_path, kind), "-o", run)
    assert result.exit_code == 0, result.output
    epochs = [line for line in result.output.splitlines() if re.match(r"epoch \d+/2:", line)]
    assert len(epochs) == 2, result.output
    for line in epochs:  # `val loss 0.3555, step_accuracy 0.8797` (`step_acc` where the line is long)
        assert re.search(rf"val loss [\d.]+, {unit}_acc(uracy)? [\d.]+", line), line
        assert not any(w in line for w in wrong), line
    best = result.stdout.split("best:", 1)[1].split("run directory:")[0]  # wrapped at 80 columns
    assert f"{unit} accuracy" in best and f"{whole} accuracy" in best, best
    assert not any(w in best for w in wrong), best

    result = invoke("eval", run, "--split", "test")
    assert result.exit_code == 0, result.output
    title = result.stdout.splitlines()[0]
    assert re.search(rf"\d+ {whole}s, [\d,]+ {unit}s; {unit} accuracy [\d.]+", title), title
    assert f"{whole} accuracy" in title and not any(w in title for w in wrong), title

    result = invoke("runs", tmp_path / "runs")
    assert result.exit_code == 0, result.output
    assert f"{unit}_acc " in result.stdout and not any(w in result.stdout for w in wrong), result.stdout
    result = invoke("compare", run, run)
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip() for line in result.stdout.splitlines() if line.count("│") > 2}
    assert {f"{unit}_accuracy", f"{whole}_accuracy", f"{unit}s"} <= rows, rows
    assert not any(w in r for r in rows for w in wrong), rows

    try:  # `grutool plot`: the metric panel's axis and legend
        import matplotlib  # noqa: F401
    except ImportError:
        pass
    else:
        from grutool import curves

        seen = {}
        monkeypatch.setattr(curves, "save_png", lambda fig, path, dpi: seen.setdefault("fig", fig))
        curves.plot_curves([run], tmp_path / "curves.png")
        panel = seen["fig"].axes[1]
        assert panel.get_ylabel() == f"{unit}_accuracy", panel.get_ylabel()
        assert panel.get_title().startswith(f"validation {unit}_accuracy"), panel.get_title()

    # The keys are the tagger's, whatever the input: configs and tools read them.
    figures = json.loads(invoke("eval", run, "--split", "test", "--json").stdout)
    assert {"token_accuracy", "sentence_accuracy", "tokens", "n"} <= set(figures)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["monitor"] == "token_accuracy" and "sentence_accuracy" in summary["validation"]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all("val_token_accuracy" in r and "val_sentence_accuracy" in r for r in rows)


def test_a_study_of_a_numeric_tagger_names_its_figures_in_steps_and_sequences(tmp_path):
    """The report's headers and differences: `val step_accuracy`, `test sequence_accuracy`, `steps/s` (they
    said token_accuracy, sentence_accuracy and tokens_per_s, and the markdown `tokens per second`)."""
    out = tmp_path / "study"
    result = invoke("study", _config(tmp_path, "numeric"), "--cells", "gru,lstm", "--seeds", "1", "--set",
                    "train.epochs=1", "-o", out, "--quiet")
    assert result.exit_code == 0, result.output
    report = (out / "report.md").read_text()
    for text in (result.stdout, report):
        assert "val step_accuracy" in text and "step_accuracy" in text and "steps/s" in text, text
        assert not re.search(r"\b(val|test)[ _](token|sentence)", text) and "tokens_per_s" not in text, text
    assert "steps per second" in report and "monitor `token_accuracy` (step_accuracy below)" in report
    figures = json.loads((out / "report.json").read_text())  # the keys stay
    assert figures["monitor"] == "token_accuracy" and "val_token_accuracy" in {d["metric"] for d in
                                                                             figures["comparisons"]}


def test_a_tune_of_a_numeric_tagger_names_its_monitor_in_steps(tmp_path):
    """tune's best line and best.yaml's header said `validation token_accuracy`."""
    pytest.importorskip("optuna")
    space = tmp_path / "space.yaml"
    space.write_text("train.lr: {float: [0.001, 0.01], log: true}\n")
    out = tmp_path / "tune"
    result = invoke("tune", _config(tmp_path, "numeric"), "--space", space, "--trials", "1", "--set",
                    "train.epochs=1", "-o", out, "--quiet")
    assert result.exit_code == 0, result.output
    [best] = [line for line in result.stdout.splitlines() if line.startswith("best:")]
    assert "validation step_accuracy " in best, best
    assert (out / "best.yaml").read_text().startswith("# grutool tune: trial 0, validation step_accuracy ")
    assert "token" not in best
