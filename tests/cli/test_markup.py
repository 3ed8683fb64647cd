"""User text reaches rich tables, errors and warnings as text: labels, paths and config values in brackets are
not markup, and `:100:` in `file:100:4` is not an emoji code.

`[negative]` printed as rich markup vanishes (an unknown style), `[/pos]` is a markup error; both are
ordinary label names, and `compare` names every per-class figure `f1[label]`. Rich also reads `:100:` and
`:1234:` as emoji (💯, 🔢), which would eat the line number of an error on those lines.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from conftest import assert_user_error, invoke, shipped_config, tiny_config, write_tsv

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


def _bad_cell(folder: Path, name: str, line: int, cell: str) -> Path:
    """The toy forecast table (data/sines/sines.csv) under `name`, `cell` in its 4th column on file line `line`."""
    lines = Path(shipped_config("sines.yaml", folder)["data"]["train"]).read_text(encoding="utf-8").splitlines()
    lines += [lines[-1]] * max(0, line - len(lines))  # longer for line 1234; the bad cell comes first anyway
    row = lines[line - 1].split(",")
    row[3] = cell
    lines[line - 1] = ",".join(row)
    path = folder / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("name, line, cell, expect", [
    ("bad1.csv", 100, "n/a", "bad1.csv:100:4: missing value in column 'load'"),
    ("ex_bad.csv", 1234, "oops", "ex_bad.csv:1234:4: 'oops' in column 'load' is not a finite number"),
    ("[bold]x.csv", 100, "[nope]", "[bold]x.csv:100:4: '[nope]' in column 'load' is not a finite number"),
])
def test_errors_print_line_numbers_and_brackets_as_written(tmp_path, monkeypatch, name, line, cell, expect):
    from conftest import ROOT

    path = _bad_cell(tmp_path, name, line, cell)
    monkeypatch.chdir(ROOT)
    result = invoke("train", "configs/sines.yaml", "--dry-run", "-o", tmp_path / "r",
                    *[a for split in ("train", "validation", "test") for a in ("--set", f"data.{split}={path}")])
    assert_user_error(result, f"{path.parent}/{expect}")


def test_warnings_print_user_text_as_written(capsys):
    """The one path library warnings take to stderr (`warnings.warn` under the CLI's logging setup)."""
    import logging
    import warnings

    from grutool.cli import console

    logger = logging.getLogger("grutool")
    saved = list(logger.handlers), logger.level, logger.propagate, warnings.showwarning
    try:
        console.setup_logging(quiet=False)
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("[bold]x.csv:100:4: value [nope] at :1234:", UserWarning)
    finally:
        logger.handlers, logger.level, logger.propagate = saved[0], saved[1], saved[2]
        warnings.showwarning = saved[3]
    assert capsys.readouterr().err == "warning: [bold]x.csv:100:4: value [nope] at :1234:\n"
