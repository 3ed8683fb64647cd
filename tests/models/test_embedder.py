"""The shared embedder: the models keep the state_dict keys and attributes they had before it (run directories
written then load and predict the same), and `embedding_dropout` acts on the word vector with its char vector."""

from __future__ import annotations

import pytest
import torch

from grutool.config import Config, ModelConfig
from grutool.families.classifier.model import Classifier
from grutool.families.lm.model import LanguageModel
from grutool.families.tagger.model import Tagger
from grutool.modules.masking import length_mask

CHARS = ["chars.embedding.weight"] + [f"chars.encoder.rnn.{w}_l0{d}" for d in ("", "_reverse")
                                      for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
ENCODER = [f"encoder.rnn.{w}_l0{d}" for d in ("", "_reverse") for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
# The keys, in order, that the models wrote before the embedder existed (grutool 1dd7317).
OLD_KEYS = {
    "classifier": ["embedding.weight", *CHARS, *ENCODER, "head.weight", "head.bias"],
    "tagger": ["embedding.weight", *CHARS, *ENCODER, "head.weight", "head.bias", "crf.transitions", "crf.start",
               "crf.end", "intent_head.weight", "intent_head.bias"],
    "lm": ["embedding.weight", *ENCODER[:4], "out.weight", "out.bias"],
}


def build(family: str, seed: int):
    torch.manual_seed(seed)
    m = ModelConfig(embedding_dim=8, hidden_size=6, char_features=True, char_embedding_dim=4, char_hidden_size=3,
                    embedding_dropout=0.3, token_dropout=0.2, crf=True, pooling="max")
    cfg = Config.model_construct(model=m)
    if family == "classifier":
        return Classifier.from_config(cfg, vocab_size=30, num_outputs=3, num_chars=12)
    if family == "tagger":
        return Tagger.from_config(cfg, vocab_size=30, num_outputs=5, num_chars=12, num_intents=3)
    lm = ModelConfig(embedding_dim=8, hidden_size=6, bidirectional=False, embedding_dropout=0.3)
    return LanguageModel.from_config(Config.model_construct(model=lm), vocab_size=30)


def inputs():
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(1, 30, (4, 6), generator=g)
    lengths = torch.tensor([6, 4, 6, 2])
    ids = ids.masked_fill(~length_mask(lengths, 6, ids.device), 0)
    chars = torch.randint(1, 12, (4, 6, 3), generator=g) * (ids != 0)[..., None]  # (B, T, W)
    return ids, lengths, chars


def old_scores(model, ids, lengths, chars):
    """What the classifier and tagger computed in eval mode before the embedder, through the same attributes."""
    x = model.chars.append(model.embedding(ids), chars)  # (B, T, E + 2c)
    return model.encoder(x, lengths)


@pytest.mark.parametrize("family", list(OLD_KEYS))
def test_old_state_dict_loads_and_predicts_the_same(family):
    ids, lengths, chars = inputs()
    donor = build(family, seed=1).state_dict()
    old = {key: donor[key].clone() for key in OLD_KEYS[family]}  # a checkpoint keyed as before
    model = build(family, seed=0)
    assert list(model.state_dict()) == OLD_KEYS[family]
    model.load_state_dict(old, strict=True)
    model.eval()
    assert model.token_embedding() is model.embedding
    with torch.no_grad():
        if family == "lm":
            ref = build(family, seed=1).eval()
            torch.testing.assert_close(model(ids, lengths)[0].logits, ref(ids, lengths)[0].logits, rtol=0, atol=0)
            return
        enc = old_scores(model, ids, lengths, chars)
        if family == "tagger":
            expected, got = model.head(enc.outputs), model.scores(ids, lengths, chars)[0]  # (B, T, C) emissions
        else:
            mask = length_mask(lengths, ids.shape[1], ids.device)  # (B, T)
            expected, got = model.head(model.pooling(enc, mask)), model(ids, lengths, chars=chars)[0]  # (B, C)
        torch.testing.assert_close(got, expected, rtol=0, atol=0)


@pytest.mark.parametrize("family", ["classifier", "tagger"])
def test_embedding_dropout_acts_on_word_and_char_vectors(family):
    model = build(family, seed=0).train()
    model.embedder.token_dropout = 0.0
    ids, lengths, chars = inputs()
    seen = {}
    model.encoder.register_forward_pre_hook(lambda mod, args: seen.update(x=args[0]))
    model.scores(ids, lengths, chars)
    x = seen["x"]  # (B, T, E + 2c)
    E = model.embedding.embedding_dim
    real = (ids != 0)[..., None]
    # Dropout zeroes entries in both parts: the char vector is regularised like the word vector.
    assert ((x[..., :E] == 0) & real).any() and ((x[..., E:] == 0) & real).any()


def test_seq2seq_embeds_its_source_through_the_shared_embedder_under_its_old_key():
    from grutool.modules.embedder import Embedder
    from grutool.families.seq2seq.model import Seq2Seq

    torch.manual_seed(0)
    m = ModelConfig(embedding_dim=6, hidden_size=8, embedding_dropout=0.5, token_dropout=0.5)
    model = Seq2Seq.from_config(Config.model_construct(model=m), vocab_size=11, num_outputs=9)
    assert isinstance(model.embedder, Embedder) and model.token_embedding() is model.source_embedding
    keys = list(model.state_dict())
    assert keys[:2] == ["source_embedding.weight", "target_embedding.weight"], "checkpoint keys as before"
    ids = torch.randint(1, 11, (3, 5))
    model.eval()
    assert torch.equal(model.embed(ids), model.source_embedding(ids)), "no dropout in eval"
    model.train()
    x = model.embed(ids)
    assert (x == 0).any(), "embedding_dropout acts on the source in training"
