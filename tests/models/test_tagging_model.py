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


@pytest.mark.parametrize("variant", ["softmax", "crf"])
def test_label_smoothing_in_the_training_loss_only(variant):
    """train.label_smoothing on a joint model: in train mode the softmax tag loss and the intent loss are
    cross-entropies against (1 - e) one-hot + e / C, written out here (a CRF's tag loss stays its path NLL); in
    eval mode (validation's loss) both are the plain negative log-likelihoods. Unseen tags and intents are left
    out of both."""
    from grutool.config import TrainConfig

    e = 0.2
    m = ModelConfig(embedding_dim=8, hidden_size=6, head_dropout=0.0, **VARIANTS[variant])
    constraints = schemes.allowed_transitions(TAGS, "iob2") if m.crf else None
    torch.manual_seed(0)
    model = Tagger.from_config(Config.model_construct(model=m, train=TrainConfig(label_smoothing=e)), vocab_size=30,
                               num_outputs=len(TAGS), constraints=constraints, num_intents=3)
    split = split_of(SEQS[:4])
    valid = [0, 2, 4, 1, 3, 4, 4]  # B-A I-A O B-B I-B O O: a path the CRF's IOB2 constraints allow
    split.targets = [torch.tensor(valid[:len(t)]) for t in split.targets]
    split.targets[0][1] = len(TAGS)      # a tag the model never saw: out of the softmax tag loss
    split.intents[3] = torch.tensor(3)   # an intent it never saw: out of the intent loss
    b = collate(split, [0, 1, 2, 3])
    mask = b.targets["tags"] != -100

    def smoothed(logits, gold, classes, eps):  # mean over the known rows of -sum(target * log p)
        keep = gold < classes
        soft = torch.full((int(keep.sum()), classes), eps / classes)
        soft += (1 - eps) * torch.nn.functional.one_hot(gold[keep], classes)
        return -(soft * torch.log_softmax(logits.float()[keep], -1)).sum(-1).mean()

    for mode, eps in (("train", e), ("eval", 0.0)):
        getattr(model, mode)()
        torch.manual_seed(1)
        out, loss = model(b.ids, b.lengths, b.targets)
        if model.crf is None:
            tag_loss = smoothed(out.emissions[mask], b.targets["tags"][mask], len(TAGS), eps)
        else:
            keep = (b.targets["tags"] >= 0) & ~(b.targets["tags"] >= len(TAGS)).any(1, keepdim=True)
            tag_loss = model.crf.nll(out.emissions, b.targets["tags"].clamp(0, len(TAGS) - 1), keep).sum() / keep.sum()
        intent_loss = smoothed(out.intent, b.targets["intent"], 3, eps)
        torch.testing.assert_close(loss, tag_loss + intent_loss)


@pytest.mark.parametrize("joint, crf, expect", [
    (True, False, "train loss with label smoothing 0.1 on the tag and intent losses; val loss without it"),
    (True, True, "train loss with label smoothing 0.1 on the intent loss; val loss without it"),
    (False, False, "train loss with label smoothing 0.1 on the tag loss; val loss without it"),
])
def test_train_says_which_losses_are_smoothed(joint, crf, expect):
    """train's start-up line names the losses train.label_smoothing smooths (a CRF's is not one of them) and
    says that `val loss` is measured without it; nothing without the setting."""
    from types import SimpleNamespace

    from grutool.config import TrainConfig
    from grutool.families.tagger.task import JointTask, TaggerTask

    task = JointTask() if joint else TaggerTask()
    splits = SimpleNamespace(splits={"train": [], "validation": []})
    cfg = Config.model_construct(model=ModelConfig(crf=crf), train=TrainConfig(label_smoothing=0.1))
    assert task.figures_note(cfg, splits) == expect
    assert task.figures_note(cfg, SimpleNamespace(splits={"train": []})) == expect.split(";")[0]
    assert task.figures_note(Config.model_construct(model=ModelConfig(crf=crf), train=TrainConfig()), splits) is None
