"""Models are built from built parts (issue 21): the task builds the front-end and the encoder from the config
once and hands them over; constructors stay small; the state_dict (keys, order, shapes and the initial values
drawn under one seed) is the one the models built before the change (tests/fixtures/models_v1.json)."""

from __future__ import annotations

import inspect
import json
import math
import sys
from pathlib import Path

import pytest
import torch

from grutool.models.base import Model
from grutool.modules.embedder import Embedder
from grutool.modules.encoder import RecurrentEncoder

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
sys.path.insert(0, str(FIXTURES))
from make_models_v1 import build, describe, model_class  # noqa: E402

CASES = json.loads((FIXTURES / "models_v1.json").read_text(encoding="utf-8"))
FAMILIES = ("classifier", "tagger", "seq2seq", "lm")
# What the encoder (and the front-end) own: no model constructor restates them.
PART_OPTIONS = {"vocab_size", "embedding_dim", "hidden_size", "num_layers", "bidirectional", "cell", "kernel",
                "dropout", "layer_norm", "residual", "embedding_dropout", "token_dropout", "num_chars"}


@pytest.mark.parametrize("family", FAMILIES)
def test_a_model_constructor_takes_at_most_six_parameters_and_no_encoder_options(family):
    cls = model_class(family)
    params = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    assert len(params) <= 6, f"{cls.__name__}({', '.join(params)})"
    assert not PART_OPTIONS & set(params), "the parts own these: build them with the config"
    assert issubclass(cls, Model) and {"embedder", "encoder"} <= set(params)


@pytest.mark.filterwarnings("ignore:Initializing zero-element")  # lm_adaptive: a 0-wide tail cluster, as before
@pytest.mark.parametrize("name", sorted(CASES))
def test_state_dict_keys_shapes_and_initial_values_are_as_before(name):
    case = CASES[name]
    model = build(case["family"], case["model"], case["train"], case["keywords"])
    got, want = describe(model), case["state"]
    assert [k for k, *_ in got] == [k for k, *_ in want], "the same keys, in the same order"
    assert [s for _, s, _ in got] == [s for _, s, _ in want]
    for (key, _, a), (_, _, b) in zip(got, want):
        # Same RNG draws in the same order at init: the same values, summed in float64.
        assert math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12), f"{key}: {a} != {b}"


@pytest.mark.parametrize("name", ["classifier", "joint", "seq2seq_tied", "lm_conditions"])
def test_parts_are_built_once_from_the_config_and_handed_to_the_model(name, monkeypatch):
    case = CASES[name]
    built = {"embedder": [], "encoder": []}
    for cls, key in ((Embedder, "embedder"), (RecurrentEncoder, "encoder")):
        original = cls.from_config.__func__

        def counting(c, *args, _original=original, _key=key, **kw):
            part = _original(c, *args, **kw)
            built[_key].append(part)
            return part

        monkeypatch.setattr(cls, "from_config", classmethod(counting))
    model = build(case["family"], case["model"], case["train"], case["keywords"])
    assert len(built["embedder"]) == 1 and len(built["encoder"]) == 1
    assert model.embedder is built["embedder"][0] and model.encoder is built["encoder"][0]
    # The front-end's parts are the model's own children (checkpoint keys without an `embedder.` prefix).
    children = dict(model.named_children())
    assert all(children[n] is p for n, p in model.embedder.named_children())
    assert "embedder" not in children


def test_the_front_end_follows_train_and_eval_and_token_dropout_is_off_in_eval():
    case = CASES["classifier"]
    model = build(case["family"], case["model"], case["train"], case["keywords"])
    assert model.embedder.token_dropout > 0
    model.eval()
    assert not model.embedder.training and not model.embedding_dropout.training
    ids = torch.randint(4, 30, (2, 50))
    assert torch.equal(model.embed(ids, torch.ones(2, 50, 3, dtype=torch.long)),
                       model.embed(ids, torch.ones(2, 50, 3, dtype=torch.long)))
    model.train()
    assert model.embedder.training and model.chars.training
