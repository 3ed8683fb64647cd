"""Classifier invariants: batching does not change predictions, every parameter learns."""

import pytest
import torch

from grutool.config import Config, ModelConfig
from grutool.families.classifier.model import Classifier


def make(pooling: str, cell: str = "gru", layers: int = 2, chars: bool = False) -> Classifier:
    torch.manual_seed(0)
    cfg = ModelConfig(embedding_dim=8, hidden_size=6, num_layers=layers, bidirectional=True,
                      cell=cell, pooling=pooling, dropout=0.1 if layers > 1 else 0.0,
                      char_features=chars, char_embedding_dim=4, char_hidden_size=3)
    return Classifier.from_config(Config.model_construct(model=cfg), vocab_size=30, num_outputs=3,
                                  num_chars=12 if chars else 0)


def chars_of(ids: torch.Tensor) -> torch.Tensor:
    """(B, T) -> (B, T, W) made-up spellings: token id k is spelled with 1 + k % 4 characters, 0 for padding."""
    W = 4
    pos = torch.arange(W)[None, None, :]
    spelled = (pos < (1 + ids % W)[..., None]) & (ids != 0)[..., None]  # (B, T, W)
    return torch.where(spelled, 2 + (ids[..., None] + pos) % 10, 0)


def batch_of(seqs):
    lengths = torch.tensor([len(s) for s in seqs])
    ids = torch.zeros(len(seqs), max(lengths.max().item(), 1), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s, dtype=torch.long)
    return ids, lengths


SEQS = [[2, 5, 7, 9, 11], [3], [4, 4, 8], [12, 13, 14, 15, 16, 17, 18], []]


@pytest.mark.parametrize("pooling", ["last", "mean", "max", "attention"])
@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
def test_batched_equals_one_by_one(pooling, cell):
    model = make(pooling, cell).eval()
    ids, lengths = batch_of(SEQS)
    batched, _ = model(ids, lengths)
    for i, s in enumerate(SEQS):
        one, _ = model(*batch_of([s]))
        torch.testing.assert_close(batched[i:i + 1], one, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pooling", ["last", "mean", "max", "attention"])
def test_char_features_batched_equals_one_by_one(pooling):
    model = make(pooling, chars=True).eval()
    ids, lengths = batch_of(SEQS)
    batched, _ = model(ids, lengths, chars=chars_of(ids))
    for i, s in enumerate(SEQS):
        one_ids, one_len = batch_of([s])
        one, _ = model(one_ids, one_len, chars=chars_of(one_ids))
        torch.testing.assert_close(batched[i:i + 1], one, rtol=1e-5, atol=1e-6)


def test_char_features_change_the_prediction_and_are_required():
    model = make("max", chars=True).eval()
    ids, lengths = batch_of(SEQS[:3])
    chars = chars_of(ids)
    a, _ = model(ids, lengths, chars=chars)
    b, _ = model(ids, lengths, chars=torch.where(chars > 0, 13 - chars, 0))  # other spellings, same words
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="reads characters"):
        model(ids, lengths)


@pytest.mark.parametrize("pooling,chars", [("last", False), ("mean", False), ("max", False),
                                           ("attention", False), ("max", True)])
def test_every_parameter_gets_a_gradient(pooling, chars):
    model = make(pooling, chars=chars).train()
    ids, lengths = batch_of(SEQS[:4])
    extra = {"chars": chars_of(ids)} if chars else {}
    _, loss = model(ids, lengths, torch.tensor([0, 1, 2, 1]), **extra)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, f"{name} got an all-zero gradient"


def test_unseen_label_ids_are_left_out_of_the_loss():
    model = make("last").eval()
    ids, lengths = batch_of(SEQS[:2])
    logits, both = model(ids, lengths, torch.tensor([1, 7]))  # 7: a label the model never saw
    _, first = model(ids[:1], lengths[:1], torch.tensor([1]))
    torch.testing.assert_close(both, first)
    _, none = model(ids, lengths, torch.tensor([7, 9]))
    assert float(none.detach()) == 0.0


def test_label_smoothing_in_the_training_loss_only():
    """train.label_smoothing: in train mode the loss is cross-entropy against (1 - e) one-hot + e / C, written out
    here; in eval mode (validation's loss) it is the plain negative log-likelihood; an unseen label (id >= C) is
    left out of both."""
    from grutool.config import TrainConfig

    torch.manual_seed(0)
    cfg = Config.model_construct(model=ModelConfig(embedding_dim=8, hidden_size=6, head_dropout=0.0),
                                 train=TrainConfig(label_smoothing=0.2))
    model = Classifier.from_config(cfg, vocab_size=30, num_outputs=3)
    ids, lengths = batch_of(SEQS[:4])
    targets = torch.tensor([0, 2, 1, 7])  # 7: a label the model never saw
    model.train()
    logits, loss = model(ids, lengths, targets)
    logp = torch.log_softmax(logits.float()[:3], -1)  # the three known labels
    soft = torch.full((3, 3), 0.2 / 3) + 0.8 * torch.nn.functional.one_hot(targets[:3], 3)
    torch.testing.assert_close(loss, -(soft * logp).sum(-1).mean())
    model.eval()
    logits, loss = model(ids, lengths, targets)
    nll = -torch.log_softmax(logits.float()[:3], -1).gather(1, targets[:3, None]).mean()
    torch.testing.assert_close(loss, nll)
    assert Classifier.from_config(Config.model_construct(model=cfg.model, train=TrainConfig()), vocab_size=30,
                                  num_outputs=3).label_smoothing == 0.0


@pytest.mark.parametrize("smoothing, classes", [(0.1, 9), (0.2, 2)])
def test_train_says_the_smoothed_loss_s_floor_that_the_loss_reaches(smoothing, classes):
    """train's start-up note gives the lowest training loss label smoothing allows: the smoothed cross-entropy of
    logits that predict the smoothed target itself, which no other logits undercut."""
    import re
    from types import SimpleNamespace

    from grutool.config import TrainConfig
    from grutool.families.classifier.task import ClassifierTask

    cfg = Config.model_construct(model=ModelConfig(), train=TrainConfig(label_smoothing=smoothing))
    note = ClassifierTask().figures_note(cfg, SimpleNamespace(labels=list(range(classes)), splits={"train": []}))
    floor = float(re.search(r"at best (\d\.\d{4})", note).group(1))
    target = torch.tensor([0])
    best = torch.full((1, classes), smoothing / classes)
    best[0, 0] += 1 - smoothing
    loss = torch.nn.functional.cross_entropy(best.log(), target, label_smoothing=smoothing)
    assert abs(float(loss) - floor) < 1e-4 and "val loss" not in note
    worse = torch.nn.functional.cross_entropy(best.log() + torch.randn(1, classes), target, label_smoothing=smoothing)
    assert float(worse) >= float(loss)
    assert ClassifierTask().figures_note(Config.model_construct(model=ModelConfig(), train=TrainConfig()),
                                         SimpleNamespace(labels=list(range(classes)), splits={})) is None
