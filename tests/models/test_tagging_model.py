"""Tagger and joint model invariants: batching does not change predictions, every parameter learns,
unseen tags stay out of the loss, the char encoder ignores padding."""

from __future__ import annotations

import pytest
import torch

from grutool.config import Config, ModelConfig
from grutool.families.tagger import schemes
from grutool.data.batching import EncodedSplit, collate
from grutool.families.tagger.model import Tagger
from grutool.modules.char_encoder import CharEncoder

TAGS = ["B-A", "B-B", "I-A", "I-B", "O"]
SEQS = [[2, 5, 7, 9, 11], [3], [4, 4, 8], [12, 13, 14, 15, 16, 17, 18], []]
VARIANTS = {
    "softmax": dict(),
    "crf": dict(crf=True, pooling="max"),  # max pooling over a batch of only empty sentences, too
    "chars+crf+joint": dict(crf=True, char_features=True, pooling="attention"),
    "chars+joint-lstm-2layers": dict(char_features=True, cell="lstm", num_layers=2, dropout=0.1, pooling="mean"),
}


def make(variant: str, joint: bool) -> Tagger:
    torch.manual_seed(0)
    m = ModelConfig(embedding_dim=8, hidden_size=6, char_embedding_dim=4, char_hidden_size=3, **VARIANTS[variant])
    constraints = schemes.allowed_transitions(TAGS, "iob2") if m.crf else None
    return Tagger.from_config(Config.model_construct(model=m), vocab_size=30, num_outputs=len(TAGS),
                              constraints=constraints, num_chars=12,
                              num_intents=3 if joint else 0)


def split_of(seqs, joint=True) -> EncodedSplit:
    g = torch.Generator().manual_seed(1)
    ids = [torch.tensor(s, dtype=torch.long) for s in seqs]
    # Char ids per token: lengths 1..4, 0-padded.
    chars = []
    for s in seqs:
        m = torch.zeros(len(s), 4, dtype=torch.long)
        for i, w in enumerate(s):
            m[i, : 1 + w % 4] = torch.randint(2, 12, (1 + w % 4,), generator=g)
        chars.append(m)
    targets = [torch.tensor([w % len(TAGS) for w in s], dtype=torch.long) for s in seqs]
    intents = [torch.tensor(i % 3) for i in range(len(seqs))] if joint else None
    return EncodedSplit(ids, targets, [""] * len(seqs), list(TAGS), chars=chars, intents=intents)


def run(model, split, index):
    b = collate(split, index)
    return model(b.ids, b.lengths, b.targets, **({"chars": b.chars} if model.chars else {}))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_batched_equals_one_by_one(variant):
    model = make(variant, joint=True).eval()
    split = split_of(SEQS)
    with torch.no_grad():
        batched, _ = run(model, split, list(range(len(SEQS))))
        for i, s in enumerate(SEQS):
            one, _ = run(model, split, [i])
            n = len(s)
            assert batched.tags[i, :n].tolist() == one.tags[0, :n].tolist()
            torch.testing.assert_close(batched.emissions[i, :n], one.emissions[0, :n], rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(batched.intent[i], one.intent[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_parameter_gets_a_gradient(variant):
    model = make(variant, joint=True).train()
    _, loss = run(model, split_of(SEQS[:4]), [0, 1, 2, 3])
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, f"{name} got an all-zero gradient"


@pytest.mark.parametrize("variant", ["softmax", "crf"])
def test_unseen_tags_and_intents_are_left_out_of_the_loss(variant):
    model = make(variant, joint=True).eval()
    split = split_of(SEQS[:2])
    with torch.no_grad():
        _, reference = run(model, split, [0])
        split.targets[1] = torch.tensor([7])      # a tag id past the model's tags: never seen in training
        split.intents[1] = torch.tensor(5)        # an intent never seen either
        _, both = run(model, split, [0, 1])
    torch.testing.assert_close(both, reference)


def test_tagger_without_intents_returns_no_intent():
    model = make("crf", joint=False).eval()
    out, loss = run(model, split_of(SEQS, joint=False), [0, 2])
    assert out.intent is None and out.tags.shape == (2, 5) and loss.dim() == 0


def test_char_encoder_gives_padding_tokens_zero_and_words_their_own_vector():
    torch.manual_seed(0)
    enc = CharEncoder(num_chars=10, embedding_dim=4, hidden_size=3)
    chars = torch.tensor([[[2, 3, 0], [4, 0, 0], [0, 0, 0]],
                          [[4, 0, 0], [0, 0, 0], [0, 0, 0]]])  # (B=2, T=3, W=3)
    out = enc(chars)  # (2, 3, 6)
    assert out.shape == (2, 3, 6)
    assert out[0, 2].eq(0).all() and out[1, 1:].eq(0).all()
    torch.testing.assert_close(out[0, 1], out[1, 0])  # the same spelling, the same vector
    alone = enc(torch.tensor([[[2, 3]]]))
    torch.testing.assert_close(out[0, 0], alone[0, 0], rtol=1e-5, atol=1e-6)
