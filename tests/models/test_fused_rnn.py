"""grutool's fused RNN (tanh and relu) against nn.RNN: same outputs, states and gradients."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pack_sequence

from grutool.modules.rnn import rnn
from grutool.modules.rnn.rnn import RNN

I, H, B, T = 5, 4, 4, 6
LENGTHS = torch.tensor([6, 1, 3, 6])


def _run(module, x, h0, packed, batch_first):
    x = x.clone().requires_grad_()
    h0 = h0.clone().requires_grad_() if h0 is not None else None
    inp = pack_padded_sequence(x, LENGTHS, batch_first=batch_first, enforce_sorted=False) if packed else x
    out, h = module(inp, h0)
    out = out.data if packed else out
    g = torch.Generator().manual_seed(1)
    ((out * torch.randn(out.shape, generator=g, dtype=out.dtype)).sum()
     + (h * torch.randn(h.shape, generator=g, dtype=h.dtype)).sum()).backward()
    return [out, h, x.grad] + ([h0.grad] if h0 is not None else []) + [p.grad for p in module.parameters()]


@pytest.mark.parametrize("nonlinearity,layers,bidirectional,packed,with_h0",
                         list(itertools.product(("tanh", "relu"), (1, 2), (False, True), (False, True), (False, True))),
                         ids=str)
def test_float64_equals_nn_rnn(nonlinearity, layers, bidirectional, packed, with_h0):
    torch.manual_seed(0)
    kw = dict(nonlinearity=nonlinearity, batch_first=True, bidirectional=bidirectional)
    ref = nn.RNN(I, H, layers, **kw).double()
    fused = RNN(I, H, layers, kernel="fused", **kw).double()
    fused.load_state_dict(ref.state_dict())
    x = torch.randn(B, T, I, dtype=torch.float64)
    h0 = torch.randn(layers * (2 if bidirectional else 1), B, H, dtype=torch.float64) if with_h0 else None
    for a, b in zip(_run(ref, x, h0, packed, True), _run(fused, x, h0, packed, True), strict=True):
        assert a.shape == b.shape and (a - b).abs().max().item() < 1e-10


def test_gradcheck_on_a_tiny_case():
    torch.manual_seed(0)
    w = [torch.randn(3, 2, dtype=torch.float64, requires_grad=True), torch.randn(3, 3, dtype=torch.float64, requires_grad=True),
         torch.randn(3, dtype=torch.float64, requires_grad=True), torch.randn(3, dtype=torch.float64, requires_grad=True)]
    x = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    for reverse, tanh in itertools.product((False, True), (False, True)):
        assert torch.autograd.gradcheck(
            lambda x, h0, *w: rnn.rnn_direction(x, h0, *w, [2, 2, 1], reverse, tanh), (x, h0, *w))


def test_auto_is_fused_for_packed_training_only():
    layer = RNN(I, H, kernel="auto")
    packed = pack_sequence([torch.randn(2, I), torch.randn(1, I)])
    assert layer.path(packed) == "fused"
    with torch.no_grad():
        assert layer.path(packed) == "native"
    assert layer.path(torch.randn(T, B, I)) == "native"
