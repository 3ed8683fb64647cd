"""model.embedding_init (issue 24): each init's statistics on a large table, the padding row zero, every word,
char and target embedding drawn by it, and `normal` (the default) the very tensors nn.Embedding gave before."""

from __future__ import annotations

import math
import sys
import typing
from pathlib import Path

import pytest
import torch
from torch import nn

from grutool.config import ModelConfig
from grutool.modules import char_encoder, embedder
from grutool.families.seq2seq import model as seq2seq_model
from grutool.modules.embedding import EMBEDDING_INITS, make_embedding

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
sys.path.insert(0, str(FIXTURES))
from make_models_v1 import CASES, build  # noqa: E402

V, D = 20_000, 256  # 5.1M values: the sample std is within 0.1 % of the true one


def test_the_names_are_the_schemas():
    assert set(EMBEDDING_INITS) == set(typing.get_args(ModelConfig.model_fields["embedding_init"].annotation))
    assert ModelConfig().embedding_init == "normal"


@pytest.mark.parametrize("init", sorted(EMBEDDING_INITS))
def test_each_init_has_its_statistics_and_a_zero_padding_row(init):
    torch.manual_seed(0)
    w = make_embedding(V, D, init, padding_idx=0).weight.detach()
    assert torch.equal(w[0], torch.zeros(D))
    rest = w[1:]
    assert abs(rest.mean().item()) < 0.01 * rest.std().item()
    if init == "normal":
        assert rest.std().item() == pytest.approx(1.0, rel=2e-3)
    elif init == "scaled_normal":
        assert rest.std().item() == pytest.approx(math.sqrt(1 / D), rel=2e-3)
    else:
        bound = math.sqrt(6 / (V + D))  # Glorot: fan_in = D, fan_out = V
        assert rest.abs().max().item() <= bound
        assert rest.abs().max().item() == pytest.approx(bound, rel=1e-3)  # the whole range is used
        assert rest.std().item() == pytest.approx(bound / math.sqrt(3), rel=2e-3)  # U(-b, b)


@pytest.mark.parametrize("init", sorted(EMBEDDING_INITS))
def test_the_padding_row_gets_no_gradient(init):
    e = make_embedding(10, 4, init, padding_idx=0)
    e(torch.tensor([[0, 3, 0]])).sum().backward()
    assert torch.equal(e.weight.grad[0], torch.zeros(4)) and e.weight.grad[3].abs().sum() > 0


def _bare(num_embeddings, embedding_dim, init="normal", padding_idx=None):
    """What the code before model.embedding_init built: nn.Embedding's defaults."""
    return nn.Embedding(num_embeddings, embedding_dim, padding_idx=padding_idx)


@pytest.mark.filterwarnings("ignore:Initializing zero-element")  # lm_adaptive: a 0-wide tail cluster
@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("spelled", [False, True])
def test_normal_gives_the_tensors_nn_embedding_gave(name, spelled, monkeypatch):
    family, model, train, keywords = CASES[name]
    model = {**model, "embedding_init": "normal"} if spelled else model  # the default, or written out
    got = build(family, model, train, keywords).state_dict()  # under torch.manual_seed(0)
    for module in (embedder, char_encoder, seq2seq_model):
        monkeypatch.setattr(module, "make_embedding", _bare)
    want = build(family, model, train, keywords).state_dict()
    assert list(got) == list(want)
    for key in want:
        assert torch.equal(got[key], want[key]), key


# The tables each family draws with model.embedding_init; an lm's condition embedding is not one of them.
DRAWN = ("embedding.weight", "chars.embedding.weight", "source_embedding.weight", "target_embedding.weight")


@pytest.mark.filterwarnings("ignore:Initializing zero-element")
@pytest.mark.parametrize("name", sorted(CASES))
def test_xavier_reaches_every_word_char_and_target_embedding(name):
    family, model, train, keywords = CASES[name]
    state = build(family, {**model, "embedding_init": "xavier_uniform"}, train, keywords).state_dict()
    tables = [k for k in state if k in DRAWN]
    assert tables, "every text family has a token embedding"
    if "char_features" in model:
        assert "chars.embedding.weight" in tables
    if family == "seq2seq":
        assert {"source_embedding.weight", "target_embedding.weight"} <= set(tables)
    for key in tables:
        w = state[key]
        bound = math.sqrt(6 / sum(w.shape))
        assert w.abs().max().item() <= bound, f"{key}: drawn by nn.Embedding's N(0, 1), not xavier"
        assert torch.equal(w[0], torch.zeros(w.shape[1])), f"{key}: padding row"
    if "condition_embedding.weight" in state:  # N(0, 1) as before: some value beyond any xavier bound
        assert state["condition_embedding.weight"].abs().max().item() > 1
