"""Day-to-day wiring (issue 17): infer's input formats, help examples, --version, paths beside the config,
runs/compare/plot/init, eval --split train. One tiny run is trained for the module."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import assert_user_error, invoke, tiny_config


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("daily")
    raw = tiny_config(root, epochs=2, device="cpu")
    (root / "tiny.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    result = invoke("train", root / "tiny.yaml", "-q")
    assert result.exit_code == 0, result.output
    return root / "run"


# --- infer --file ----------------------------------------------------------------------------------


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
    assert_user_error(invoke("infer", run, "--file", "x.txt", "--format", "csv"), "--format", "auto, lines, data")


def test_every_family_reads_its_inputs_from_a_data_file(tmp_path):
    from grutool.config_file import load_config
    from grutool.inputs import read_data_inputs
    from grutool.tasks import get_task

    root = Path(__file__).resolve().parents[2]
    tagging = load_config(root / "configs" / "tagging.yaml")
    sentences = read_data_inputs(get_task("tagger"), tagging, str(root / "data/tagging/ner/test.conll"))
    assert sentences[0] == "Tobias Abara moved from Santa Fe to Nairobi in May ."  # -DOCSTART- skipped
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("source\ttarget\n123\t321\n45\t54\n")
    reverse = load_config(root / "configs" / "reverse.yaml")
    assert read_data_inputs(get_task("seq2seq"), reverse, str(pairs)) == ["123", "45"]
