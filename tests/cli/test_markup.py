"""User text reaches rich tables as text: labels, paths and config values in brackets are not markup.

`[negative]` printed as rich markup vanishes (an unknown style), `[/pos]` is a markup error; both are
ordinary label names, and `compare` names every per-class figure `f1[label]`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from conftest import invoke, tiny_config, write_tsv

NAMES = {0: "[negative]", 1: "[/pos]"}


@pytest.fixture(scope="module")
def bracket_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("markup")
    raw = tiny_config(root, epochs=1, device="cpu")
    for name in ("train", "validation", "test"):
        path = root / "data" / f"{name}.tsv"
        rows = [line.split("\t") for line in path.read_text().splitlines()[1:]]
        write_tsv(path, [(t, "1" if l == "pos" else "0") for t, l in rows])
    raw["data"]["label_names"] = NAMES
    raw["output_dir"] = str(root / "runs" / "a")
    path = root / "brackets.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    result = invoke("train", path, "-q")
    assert result.exit_code == 0, result.output
    return root / "runs" / "a"


def test_eval_tables_show_bracket_labels(bracket_run):
    result = invoke("eval", bracket_run, "--split", "test")
    assert result.exit_code == 0, result.output
    rows = result.stdout.splitlines()
    for label in NAMES.values():
        # the per-class row and the confusion table's row both start with the label
        assert sum(line.lstrip("│┃ ").startswith(label) for line in rows) == 2, (label, result.stdout)


def test_compare_and_runs_show_bracket_labels_paths_and_values(bracket_run, monkeypatch):
    runs = bracket_run.parent
    other = runs / "[b]"
    shutil.copytree(bracket_run, other)
    cfg = yaml.safe_load((other / "config.yaml").read_text())
    cfg["data"]["label_names"] = {0: "[neg]", 1: "[/pos]"}
    (other / "config.yaml").write_text(yaml.safe_dump(cfg))
    monkeypatch.chdir(runs)

    result = invoke("compare", "a", "[b]")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "f1[[negative]]" in text and "f1[[/pos]]" in text, text
    assert "[negative]" in text and "[neg]" in text, "config values"
    assert "[b]" in text, "a run directory in brackets names its column"

    listed = invoke("runs", ".")
    assert listed.exit_code == 0, listed.output
    assert "[b]" in listed.stdout and "finished" in listed.stdout, listed.stdout
