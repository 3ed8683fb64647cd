"""Streaming: a unidirectional model fed chunk by chunk (h_n carried into the next h0) answers exactly
what it answers for the whole input, on the checkpoint and on its ONNX export; bidirectional models refuse."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from conftest import shipped_config, tiny_config
from grutool.config_file import parse_config
from grutool.errors import UserError
from grutool.export import export
from grutool.predict import Predictor
from grutool.training.loop import train

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "tasks"))
from test_tagging_cli import joint_config  # noqa: E402

TEXT = "the film was really good and the food was quite boring but the service superb"


def chunks(text: str, size: int) -> list[str]:
    words = text.split()
    return [" ".join(words[i:i + size]) for i in range(0, len(words), size)]


@pytest.fixture(scope="module")
def unidirectional_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("uni")
    raw = tiny_config(tmp)
    raw["model"].update({"bidirectional": False, "pooling": "last", "num_layers": 2, "char_features": True,
                         "char_embedding_dim": 8, "char_hidden_size": 8})
    raw["data"]["max_length"] = 100
    train(parse_config(raw, "uni"), progress=False)
    return Path(raw["output_dir"])


@pytest.mark.parametrize("size", [1, 3, 100])
def test_chunked_equals_whole(unidirectional_run, size):
    predictor = Predictor(unidirectional_run, "cpu")
    whole = predictor.predict([TEXT])[0]
    stream = predictor.stream()
    for chunk in chunks(TEXT, size):
        result = stream.feed(chunk)
    assert result["label"] == whole["label"] and result["text"] == TEXT
    for name, p in whole["probs"].items():
        assert abs(result["probs"][name] - p) < 1e-5
    assert stream.state.shape == (2, 1, 16)


def test_a_chunk_that_is_not_a_str_is_named(unidirectional_run):
    stream = Predictor(unidirectional_run, "cpu").stream()
    with pytest.raises(UserError, match=r"^text: None, not a str; feed one chunk of text at a time$"):
        stream.feed(None)  # a TypeError deep in data/tokenize.py before


def test_onnx_export_carries_the_state(unidirectional_run, tmp_path):
    pytest.importorskip("onnxruntime")
    export(unidirectional_run, "onnx", tmp_path / "m.onnx", exporter="legacy")
    whole = Predictor(unidirectional_run, "cpu").predict([TEXT])[0]
    stream = Predictor(unidirectional_run, backend="onnx", exported=tmp_path / "m.onnx").stream()
    for chunk in chunks(TEXT, 4):
        result = stream.feed(chunk)
    for name, p in whole["probs"].items():
        assert abs(result["probs"][name] - p) < 1e-5


def test_tagger_streams_tags_token_by_token(tmp_path):
    raw = joint_config(tmp_path, epochs=1)
    raw["task"] = "tagger"
    raw["model"].update({"bidirectional": False, "crf": False})
    del raw["model"]["pooling"]
    train(parse_config(raw, "tagger"), progress=False)
    predictor = Predictor(tmp_path / "run", "cpu")
    text = "show me flights from boston to denver on friday"
    whole = predictor.predict([text])[0]["tags"]
    stream = predictor.stream()
    tags = [t for chunk in chunks(text, 2) for t in stream.feed(chunk)["tags"]]
    assert tags == whole


def test_bidirectional_models_say_why_they_cannot_stream(tmp_path):
    raw = tiny_config(tmp_path)
    train(parse_config(raw, "bi"), progress=False)
    with pytest.raises(UserError, match="bidirectional: its backward direction starts at the input's last token"):
        Predictor(raw["output_dir"], "cpu").stream()


def test_a_numeric_classifier_refuses_in_one_line(tmp_path):
    # it streamed, then its first chunk of text died inside the numeric front-end's projection
    raw = shipped_config("numeric.yaml", tmp_path / "run", model={"bidirectional": False, "pooling": "last"},
                         train={"epochs": 1})
    train(parse_config(raw, "numeric"), progress=False)
    with pytest.raises(UserError, match="numeric sequences are read whole"):
        Predictor(raw["output_dir"], "cpu").stream()


def test_every_reason_is_named_at_once_with_its_setting(tmp_path):
    # tagging.yaml is bidirectional and has a CRF: a user who retrained for the first reason met the second
    raw = shipped_config("tagging.yaml", tmp_path / "run", train={"epochs": 1})
    raw["model"]["char_features"] = False
    train(parse_config(raw, "tagging"), progress=False)
    with pytest.raises(UserError) as e:
        Predictor(raw["output_dir"], "cpu").stream()
    assert "model.bidirectional: false" in str(e.value) and "model.crf: false" in str(e.value)
    assert "\n" not in str(e.value)
