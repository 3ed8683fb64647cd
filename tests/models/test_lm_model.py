"""The language model: tied weights, conditions, state carried across calls (TBPTT, streaming), adaptive softmax."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from grutool.config import Config, ModelConfig
from grutool.data.batching import sorted_batches
from grutool.families.lm.data import encode_stream
from grutool.data.vocab import Vocab
from grutool.families.lm.metrics import LMMetrics
from grutool.families.lm.model import LanguageModel
from grutool.modules.encoder import RecurrentEncoder
from grutool.families.lm.task import LMTask
from grutool.training.evaluation import evaluate_split

V = 12


def build(vocab_size: int = V, num_conditions: int = 0, **kw) -> LanguageModel:
    """E 8, H 16, model.* from `kw`, built as the task builds it."""
    m = ModelConfig(embedding_dim=8, hidden_size=16, bidirectional=False, **kw)
    return LanguageModel.from_config(Config.model_construct(model=m), vocab_size=vocab_size,
                                     num_conditions=num_conditions)


def model(**kw) -> LanguageModel:
    torch.manual_seed(0)
    return build(**kw).eval()


def test_tied_weights_are_one_tensor():
    m = model(tie_embeddings=True)
    assert m.out.weight is m.embedding.weight
    assert m.pre_output is not None  # hidden_size 16 != embedding_dim 8: projected first
    untied = model()
    assert sum(p.numel() for p in m.parameters()) < sum(p.numel() for p in untied.parameters())


@pytest.mark.parametrize("how", ["input", "state", "both"])
def test_the_condition_changes_the_output_distribution(how):
    m = model(num_conditions=3, condition=how)
    ids = torch.randint(2, V, (1, 6)).expand(3, 6)  # one text, three conditions
    logits = m(ids, torch.full((3,), 6), condition=torch.arange(3))[0].logits
    assert not torch.allclose(logits[0], logits[1]) and not torch.allclose(logits[1], logits[2])


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_tbptt_with_carried_state_equals_the_unrolled_sequence(cell):
    """A stream cut into chunks, each starting from the previous chunk's final state, scores every token as the
    whole rows run in one call do (forward values)."""
    m = model(num_layers=2, cell=cell)
    tokens = [str(t) for t in torch.randint(2, V, (83,)).tolist()]
    vocab = Vocab(["<pad>", "<unk>"] + [str(i) for i in range(2, V)])
    split = encode_stream(tokens, vocab, bptt=7, rows=3)  # 27 steps per row: chunks 7, 7, 7, 6
    assert split.carries_state and len(split) == 4 * 3
    chunked = evaluate_split(m, LMTask(), split, torch.device("cpu"), batch_size=99)
    ids = torch.tensor(vocab.encode(tokens))
    x, y = ids[:81].view(3, 27), ids[1:82].view(3, 27)
    with torch.no_grad():
        _, loss = m(x, torch.full((3,), 27), y)
    assert chunked["tokens"] == 81
    assert chunked["loss"] == pytest.approx(float(loss), abs=1e-5)
    # Without the carried state the chunks lose their context: a different (worse-informed) loss.
    split.streams = None
    fresh = evaluate_split(m, LMTask(), split, torch.device("cpu"), batch_size=3)
    assert fresh["loss"] != pytest.approx(chunked["loss"], abs=1e-5)


@pytest.mark.parametrize("kernel", ["native", "fused"])
def test_encoder_state_is_h0_for_packed_rows_and_kept_by_empty_ones(kernel):
    torch.manual_seed(1)
    enc = RecurrentEncoder(4, 5, num_layers=2, bidirectional=False, kernel=kernel).eval()
    ref = nn.GRU(4, 5, num_layers=2, batch_first=True)
    ref.load_state_dict(enc.rnn.state_dict())
    x, h0 = torch.randn(3, 6, 4), torch.randn(2, 3, 5)
    lengths = torch.tensor([6, 0, 3])
    with torch.no_grad():
        out = enc(x, lengths, h0)
        for b, n in enumerate(lengths.tolist()):
            if n == 0:
                assert torch.equal(out.h_n[:, b], h0[:, b])  # nothing read: the state is unchanged
                continue
            o, h = ref(x[b:b + 1, :n], h0[:, b:b + 1].contiguous())
            torch.testing.assert_close(out.outputs[b, :n], o[0], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(out.h_n[:, b], h[:, 0], atol=1e-5, rtol=1e-5)


def test_adaptive_softmax_gives_normalised_log_probabilities_and_learns():
    torch.manual_seed(0)
    m = build(40, adaptive_cutoffs=[6, 20])
    ids = torch.randint(2, 40, (4, 9))
    targets = torch.roll(ids, -1, dims=1)  # learnable: the next token is the input's neighbour
    opt = torch.optim.Adam(m.parameters(), lr=0.02)
    losses = []
    for _ in range(40):
        out, loss = m(ids, torch.full((4,), 9), targets)
        assert out.logits is None  # training: only the adaptive loss is computed
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]
    m.eval()
    with torch.no_grad():
        out, loss = m(ids, torch.full((4,), 9), targets)
    torch.testing.assert_close(out.logits.logsumexp(-1), torch.zeros(4, 9), atol=1e-4, rtol=0)
    nll = -out.logits.gather(-1, targets[..., None]).mean()
    assert float(loss) == pytest.approx(float(nll), abs=1e-5)


def test_perplexity_is_exp_of_the_mean_loss_per_token():
    metrics = LMMetrics(characters=True)
    # Batch 1: 3 tokens at mean 1.0 nats; batch 2: 1 token at 3.0 nats (one padded position ignored).
    metrics.update(None, torch.tensor([[4, 5, 6]]), 1.0)
    metrics.update(None, torch.tensor([[7, -100]]), 3.0)
    out = metrics.compute()
    assert out["tokens"] == 4
    assert out["loss"] == pytest.approx(1.5)                      # (3 * 1.0 + 1 * 3.0) / 4
    assert out["perplexity"] == pytest.approx(4.4816890703)       # e ** 1.5
    assert out["bpc"] == pytest.approx(2.1640425613)               # 1.5 / ln 2
    assert "bpc" not in LMMetrics(characters=False).compute()
