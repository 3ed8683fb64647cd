"""CRF against brute force: every tag path enumerated on tiny cases."""

from __future__ import annotations

import itertools

import pytest
import torch

from grutool.families.tagger import schemes
from grutool.families.tagger.crf import CRF

TAGS = ["B-X", "I-X", "O"]


def make_crf(constrained: bool, seed: int = 0) -> CRF:
    torch.manual_seed(seed)
    crf = CRF(len(TAGS), *(schemes.allowed_transitions(TAGS, "iob2") if constrained else ()))
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_()
    return crf


@torch.no_grad()
def brute_force(crf: CRF, emissions: torch.Tensor, n: int) -> tuple[torch.Tensor, tuple]:
    """(log-partition, best path) of one sequence's first n steps, by enumerating all C**n paths."""
    trans, start, end = crf.scores()
    scores = {}
    for path in itertools.product(range(len(TAGS)), repeat=n):
        s = start[path[0]] + end[path[-1]] + sum(emissions[t, y] for t, y in enumerate(path))
        s = s + sum(trans[a, b] for a, b in zip(path, path[1:]))
        scores[path] = s
    values = torch.stack(list(scores.values()))
    return torch.logsumexp(values, 0), max(scores, key=lambda p: float(scores[p]))


def batch(lengths: list[int], seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    T = max(lengths)
    emissions = torch.randn(len(lengths), T, len(TAGS), generator=g) * 2  # (B, T, C)
    mask = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]  # (B, T)
    return emissions, mask


@pytest.mark.parametrize("constrained", [False, True], ids=["free", "iob2-constrained"])
def test_log_partition_and_viterbi_equal_brute_force(constrained):
    crf = make_crf(constrained)
    lengths = [5, 3, 1, 0, 4]
    emissions, mask = batch(lengths)
    with torch.no_grad():
        log_z = crf.log_partition(emissions, mask)
        paths = crf.viterbi(emissions, mask)
    for b, n in enumerate(lengths):
        if n == 0:
            assert float(log_z[b]) == 0.0 and paths[b].tolist() == [0] * mask.shape[1]
            continue
        ref_z, ref_path = brute_force(crf, emissions[b], n)
        torch.testing.assert_close(log_z[b], ref_z, rtol=1e-5, atol=1e-5)
        assert tuple(paths[b, :n].tolist()) == ref_path
        assert paths[b, n:].eq(0).all()


def test_constrained_viterbi_never_returns_a_forbidden_path():
    crf = make_crf(True, seed=3)
    emissions, mask = batch([6] * 50, seed=4)
    emissions[:, :, TAGS.index("I-X")] += 3  # tempt it with I-X everywhere
    for path in crf.viterbi(emissions, mask).tolist():
        tags = [TAGS[i] for i in path]
        assert schemes.convert(tags, "iob2") == tags, tags


def test_nll_is_a_proper_negative_log_likelihood():
    crf = make_crf(False)
    n = 3
    emissions, mask = batch([n])
    paths = torch.tensor(list(itertools.product(range(len(TAGS)), repeat=n)))  # (C**n, n)
    nll = crf.nll(emissions.expand(len(paths), -1, -1), paths, mask.expand(len(paths), -1))
    assert (nll > 0).all()
    torch.testing.assert_close(torch.exp(-nll).sum(), torch.tensor(1.0))  # probabilities of all paths sum to 1
    # Padding steps do not count, whatever tags they hold.
    padded = torch.cat([emissions, torch.randn(1, 2, len(TAGS))], 1)
    pmask = torch.cat([mask, torch.zeros(1, 2, dtype=torch.bool)], 1)
    tags = torch.cat([paths[:1], torch.tensor([[2, -100]])], 1)
    torch.testing.assert_close(crf.nll(padded, tags, pmask), nll[:1])


def test_gradients_reach_transitions_start_and_end():
    crf = make_crf(True)
    emissions, mask = batch([4, 2])
    emissions.requires_grad_(True)
    crf.nll(emissions, torch.tensor([[0, 1, 2, 0], [2, 0, 0, 0]]), mask).sum().backward()
    for name, p in crf.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert emissions.grad[1, 2:].eq(0).all(), "padding gets no gradient"
