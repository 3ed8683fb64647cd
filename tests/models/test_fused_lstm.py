"""grutool's fused LSTM (packed batches) against nn.LSTM: same outputs, states and gradients."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pack_sequence

from grutool.cells import get_cell
from grutool.modules.rnn import gemm, lstm
from grutool.modules.rnn.gemm import use_gemm_backend
from grutool.modules.rnn.lstm import LSTM

I, H, B, T = 5, 4, 4, 6
LENGTHS = torch.tensor([6, 1, 3, 6])


def _run(module, x, state, packed, batch_first):
    x = x.clone().requires_grad_()
    state = tuple(s.clone().requires_grad_() for s in state) if state is not None else None
    inp = pack_padded_sequence(x, LENGTHS, batch_first=batch_first, enforce_sorted=False) if packed else x
    out, (h, c) = module(inp, state)
    out = out.data if packed else out
    g = torch.Generator().manual_seed(1)
    loss = sum((t * torch.randn(t.shape, generator=g, dtype=t.dtype)).sum() for t in (out, h, c))
    loss.backward()
    return [out, h, c, x.grad] + ([s.grad for s in state] if state else []) + [p.grad for p in module.parameters()]


@pytest.mark.parametrize("layers,bidirectional,batch_first,packed,with_state",
                         list(itertools.product((1, 2), (False, True), (False, True), (False, True), (False, True))),
                         ids=str)
def test_float64_equals_nn_lstm(layers, bidirectional, batch_first, packed, with_state):
    torch.manual_seed(0)
    ref = nn.LSTM(I, H, layers, batch_first=batch_first, bidirectional=bidirectional).double()
    fused = LSTM(I, H, layers, batch_first=batch_first, bidirectional=bidirectional, kernel="fused").double()
    fused.load_state_dict(ref.state_dict())
    x = torch.randn((B, T, I) if batch_first else (T, B, I), dtype=torch.float64)
    n = layers * (2 if bidirectional else 1)
    state = (torch.randn(n, B, H, dtype=torch.float64), torch.randn(n, B, H, dtype=torch.float64)) if with_state else None
    for a, b in zip(_run(ref, x, state, packed, batch_first), _run(fused, x, state, packed, batch_first), strict=True):
        assert a.shape == b.shape and (a - b).abs().max().item() < 1e-10


@pytest.mark.parametrize("backend", ["blas", "onednn"])
def test_float32_equals_nn_lstm_on_both_gemm_paths(backend):
    if backend == "onednn" and not gemm._onednn_available():
        pytest.skip("this torch build has no oneDNN linear ops")
    torch.manual_seed(0)
    ref = nn.LSTM(I, H, 2, batch_first=True, bidirectional=True, bias=False)
    fused = LSTM(I, H, 2, batch_first=True, bidirectional=True, bias=False, kernel="fused")
    fused.load_state_dict(ref.state_dict())
    x = torch.randn(B, T, I)
    with use_gemm_backend(backend):
        got = _run(fused, x, None, True, True)
    for a, b in zip(_run(ref, x, None, True, True), got, strict=True):
        assert (a - b).abs().max().item() < 1e-4


def test_gradcheck_on_a_tiny_case():
    torch.manual_seed(0)
    w = [torch.randn(12, 2, dtype=torch.float64, requires_grad=True),
         torch.randn(12, 3, dtype=torch.float64, requires_grad=True),
         torch.randn(12, dtype=torch.float64, requires_grad=True), torch.randn(12, dtype=torch.float64, requires_grad=True)]
    x = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    for reverse in (False, True):
        assert torch.autograd.gradcheck(
            lambda x, h0, c0, *w: lstm.lstm_direction(x, h0, c0, *w, [2, 2, 1], reverse), (x, h0, c0, *w))


def test_auto_is_fused_for_packed_input_only_and_never_with_projections():
    layer = get_cell("lstm").build(I, H, kernel="auto")
    assert isinstance(layer, LSTM)
    packed = pack_sequence([torch.randn(2, I), torch.randn(1, I)])
    assert layer.path(packed) == "fused"
    assert layer.path(torch.randn(B, T, I)) == "native", "dense input keeps oneDNN's LSTM"
    assert LSTM(I, H, proj_size=2, kernel="fused").path(packed) == "native"
    with pytest.raises(ValueError, match="GRU-only"):
        LSTM(I, H, 2, layer_norm=True)


def test_checkpoint_keys_are_nn_lstm_s():
    assert list(LSTM(I, H, 2, bidirectional=True).state_dict()) == list(nn.LSTM(I, H, 2, bidirectional=True).state_dict())
