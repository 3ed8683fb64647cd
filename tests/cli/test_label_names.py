"""Integer labels named by data.label_names (eval tables, infer, compare) and eval's confusion matrix PNG."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import assert_user_error, invoke, tiny_config, write_tsv

PNG = b"\x89PNG\r\n\x1a\n"


def integer_labels(root: Path) -> None:
    """Rewrite the tiny data's pos/neg labels as 1/0, as many public datasets ship them."""
    for name in ("train", "validation", "test"):
        path = root / "data" / f"{name}.tsv"
        rows = [line.split("\t") for line in path.read_text().splitlines()[1:]]
        write_tsv(path, [(t, "1" if l == "pos" else "0") for t, l in rows])


def config(root: Path, label_names) -> Path:
    raw = tiny_config(root, epochs=2, device="cpu")
    integer_labels(root)
    raw["data"]["label_names"] = label_names
    path = root / "named.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def named_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("named")
    result = invoke("train", config(root, {0: "negative", 1: "positive"}), "-q")
    assert result.exit_code == 0, result.output
    return root / "run"


def test_names_reach_labels_eval_infer_and_compare(named_run, tmp_path):
    assert sorted(json.loads((named_run / "labels.json").read_text())["labels"]) == ["negative", "positive"]
    result = invoke("eval", named_run, "--split", "test", "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert set(metrics["per_class"]) == {"negative", "positive"}
    assert metrics["unseen_labels"] == {}, "gold 0/1 in the test file are renamed as in training"
    table = invoke("eval", named_run, "--split", "test")
    assert "negative" in table.stdout and "positive" in table.stdout
    infer = invoke("infer", named_run, "a lovely film", "--jsonl")
    row = json.loads(infer.stdout.splitlines()[0])
    assert row["label"] in ("negative", "positive") and set(row["probs"]) == {"negative", "positive"}

    other = tmp_path / "other"
    shutil.copytree(named_run, other)
    cfg = yaml.safe_load((other / "config.yaml").read_text())
    cfg["data"]["label_names"] = {0: "neg", 1: "pos"}
    (other / "config.yaml").write_text(yaml.safe_dump(cfg))
    c = json.loads(invoke("compare", named_run, other, "--json").stdout)
    assert c["config"]["data.label_names.0"] == ["negative", "neg"]
    assert {"f1[negative]", "f1[positive]"} <= set(c["validation"])


def test_saved_config_reloads_its_label_names(named_run):
    from grutool.config_file import load_config

    assert load_config(named_run / "config.yaml").data.label_names == {0: "negative", 1: "positive"}


@pytest.mark.parametrize("names, expected", [
    (["negative"], ["data.label_names: no name for label(s) ['1']"]),
    ({0: "negative", 1: "positive", 2: "neutral"}, ["data.label_names: label id(s) ['2'] never occur"]),
    ({0: "negative", 1: "negative"}, ["data.label_names: 'negative' names both label 0 and label 1"]),
])
def test_label_names_that_do_not_fit_the_data(tmp_path, names, expected):
    assert_user_error(invoke("train", config(tmp_path, names), "-q"), *expected)
    assert not (tmp_path / "run").exists()


# --- eval --plot -----------------------------------------------------------------------------------


def test_eval_plot_draws_the_confusion_matrix(named_run, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "cm.png"
    result = invoke("eval", named_run, "--split", "test", "--plot", png, "--json")
    assert result.exit_code == 0, result.output
    json.loads(result.stdout)  # stdout stays one JSON object; "wrote" goes to stderr
    assert png.read_bytes()[:8] == PNG
    assert_user_error(invoke("eval", named_run, "--plot", tmp_path / "cm.jpg"), "--plot", ".png")
    assert_user_error(invoke("eval", named_run, "--plot", tmp_path / "nowhere" / "cm.png"), "does not exist")


@pytest.mark.parametrize("flags", [[], ["--json"]])
def test_eval_plot_says_wrote_after_the_result(named_run, tmp_path, flags):
    """`wrote cm.png` (stderr) came before the tables (stdout) on a terminal: it now follows the result, which
    stays alone on stdout."""
    pytest.importorskip("matplotlib")
    png = tmp_path / "cm.png"
    result = invoke("eval", named_run, "--split", "test", "--plot", png, *flags)
    assert result.exit_code == 0, result.output
    assert "wrote" not in result.stdout and result.stderr.strip() == f"wrote {png}", result.output
    lines = result.output.strip().splitlines()  # stdout and stderr as written, one after the other
    assert lines[-1] == f"wrote {png}" and len(lines) > 1, result.output
    if flags:
        json.loads(result.stdout)


@pytest.mark.parametrize("family", ["seq2seq", "lm"])
def test_eval_plot_of_a_family_with_nothing_to_draw_is_refused_before_evaluating(family, tmp_path, monkeypatch):
    """Before: `eval --plot` of a seq2seq or lm run evaluated the whole split, then said it had 'no confusion
    matrix (classifiers, taggers and joint models have one)', forgetting regressors and forecasters; now it is
    refused up front, naming every family --plot draws for."""
    import importlib

    def evaluate(*args, **kwargs):
        raise AssertionError("evaluated before --plot was checked")

    monkeypatch.setattr(importlib.import_module("grutool.evaluate"), "evaluate", evaluate)
    run = Path(__file__).resolve().parents[1] / "fixtures" / "runs_v1" / family
    assert_user_error(invoke("eval", run, "--plot", tmp_path / "x.png"),
                      f"--plot: a task {family} evaluation has nothing to draw", "regressor", "forecast",
                      "drop --plot")
    assert list(tmp_path.iterdir()) == []


def test_confusion_panels_for_tags_and_intents(tmp_path):
    pytest.importorskip("matplotlib")
    from grutool.confusion import matrices, plot_confusion

    metrics = {"token_accuracy": 0.9,
               "confusion": {"labels": ["O", "B-PER", "I-PER"], "matrix": [[90, 2, 1], [3, 7, 0], [0, 1, 5]]},
               "intent_confusion": {"labels": ["book", "cancel"], "matrix": [[4, 1], [0, 5]]}}
    assert [title for title, _, _ in matrices(metrics)] == ["confusion", "intent confusion"]
    assert Path(plot_confusion(metrics, tmp_path / "tags.png")).read_bytes()[:8] == PNG
    assert_user_error_like = pytest.raises(Exception, match="no confusion matrix")
    with assert_user_error_like:
        plot_confusion({"bleu": 1.0}, tmp_path / "none.png")
