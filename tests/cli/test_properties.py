"""Property-based: whatever the config tree, data bytes or CLI arguments, `grutool` exits 0 with valid output
or 2 with one line `error: ...` and nothing written; never a traceback.

CI runs a fast subset; the full run (>= 10,000 cases) is
`GRUTOOL_PROPERTY_EXAMPLES=3400 OMP_NUM_THREADS=1 python -m pytest tests/cli/test_properties.py`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import invoke
from grutool.config_file import load_config
from grutool.errors import UserError

EXAMPLES = int(os.environ.get("GRUTOOL_PROPERTY_EXAMPLES", "60"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))

KEYS = ["data", "model", "train", "decoding", "task", "output_dir", "train", "hidden_size", "lr", "epochs",
        "embedding_dim", "cell", "monitor", "text_column", "nonfinite", "batch_size", "dropout", "tokenizer"]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))
TREES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)), max_leaves=12)


def _one_line_error(result) -> None:
    assert "Traceback" not in result.output, result.output
    assert result.exit_code in (0, 2), (result.exit_code, result.output, result.exception)
    if result.exit_code == 2:
        # Warnings logged on the way (skipped empty examples, say) may come first; the error is one line.
        lines = [l for l in result.output.splitlines() if l.strip()]
        assert lines and lines[-1].startswith("error: "), result.output
        assert sum(l.startswith("error") for l in lines) == 1, result.output


@SETTINGS
@given(tree=TREES)
def test_any_config_tree_loads_or_is_one_user_error(tree, tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "c.yaml"
    path.write_text(yaml.safe_dump(tree), encoding="utf-8")
    try:
        load_config(path)
    except UserError as exc:
        assert str(exc) and "\n" not in str(exc), str(exc)


@SETTINGS
@given(data=st.binary(max_size=200))
def test_any_config_bytes_load_or_are_one_user_error(data, tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "c.yaml"
    path.write_bytes(b"data:\n  train: x.tsv\n" + data)
    try:
        load_config(path)
    except UserError as exc:
        assert "\n" not in str(exc), str(exc)


ROW = st.lists(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=8), min_size=0, max_size=4)


@settings(max_examples=max(EXAMPLES // 6, 8), deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(rows=st.lists(ROW, max_size=8), ending=st.sampled_from(["\n", "\r\n", "\r"]),
       encoding=st.sampled_from(["utf-8", "utf-16", "latin-1"]), raw=st.binary(max_size=40))
def test_any_data_file_trains_or_is_one_user_error(rows, ending, encoding, raw, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("data")
    body = ending.join("\t".join(r) for r in [["text", "label"]] + rows)
    try:
        data = body.encode(encoding) + raw
    except UnicodeEncodeError:
        data = body.encode("utf-8") + raw
    (tmp / "train.tsv").write_bytes(data)
    cfg = {"data": {"train": str(tmp / "train.tsv")}, "model": {"embedding_dim": 4, "hidden_size": 4},
           "train": {"epochs": 1, "device": "cpu"}, "output_dir": str(tmp / "run")}
    (tmp / "c.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    result = invoke("train", tmp / "c.yaml", "-q", "--dry-run")
    _one_line_error(result)
    assert not (tmp / "run").exists(), "--dry-run writes nothing"


OPTIONS = st.lists(st.one_of(st.sampled_from(["--set", "--output-dir", "--seed", "--device", "--resume", "--overwrite",
                                              "--dry-run", "--beam", "--json", "--file", "-o", "--split", "x=1",
                                              "model.hidden_size=0", "train.lr=.inf", "/dev/null/x", "-"]),
                             st.text(max_size=10)), max_size=5)


@settings(max_examples=max(EXAMPLES // 6, 8), deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(command=st.sampled_from(["train", "eval", "infer", "shapes"]), args=OPTIONS)
def test_any_cli_arguments_answer_in_one_line(command, args, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    cwd = os.getcwd()
    os.chdir(tmp)
    try:
        result = invoke(command, *args)
    finally:
        os.chdir(cwd)
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    _one_line_error(result)  # click's usage errors (unknown options, bad values) included
