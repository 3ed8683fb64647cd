"""grutool's fused and compiled RNN (tanh and relu) against nn.RNN: same outputs, states and gradients; the compiled
kernel's brgemm and BLAS step GEMMs against each other."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pack_sequence

from grutool.modules.rnn import compiled, rnn
from grutool.modules.rnn.gemm import use_gemm_backend
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


def _needs_build(kernel):
    if kernel == "compiled" and compiled._why_not():
        pytest.skip(f"kernel compiled cannot be built here: {compiled._why_not()}")


@pytest.mark.parametrize("kernel", ["fused", "compiled"])
@pytest.mark.parametrize("nonlinearity,layers,bidirectional,packed,with_h0",
                         list(itertools.product(("tanh", "relu"), (1, 2), (False, True), (False, True), (False, True))),
                         ids=str)
def test_float64_equals_nn_rnn(nonlinearity, layers, bidirectional, packed, with_h0, kernel):
    _needs_build(kernel)
    torch.manual_seed(0)
    kw = dict(nonlinearity=nonlinearity, batch_first=True, bidirectional=bidirectional)
    ref = nn.RNN(I, H, layers, **kw).double()
    fused = RNN(I, H, layers, kernel=kernel, **kw).double()
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


def test_auto_keeps_nn_rnn_for_short_calls():
    # Short calls stay on nn.RNN's own loop, built or not; the rest of the table: tests/models/test_kernel_policy.py.
    layer = RNN(I, H, kernel="auto")
    packed = pack_sequence([torch.randn(2, I), torch.randn(1, I)])
    assert layer.path(packed) in ("fused", "native")
    with torch.no_grad():
        assert layer.path(packed) == "native"
    assert layer.path(torch.randn(2, B, I)) == "native"


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("bias", [True, False])
def test_compiled_float32_and_its_brgemm_step_gemms_equal_nn_rnn(nonlinearity, bias):
    # H 200: W_hh in panels of 32 columns, the last one partial; 100 ragged sequences: row chunks of 64.
    _needs_build("compiled")
    if not compiled.brgemm_ok():
        pytest.skip("oneDNN's brgemm micro-kernel does not run on this CPU / torch build")
    torch.manual_seed(0)
    kw = dict(nonlinearity=nonlinearity, bias=bias, bidirectional=True)
    ref = nn.RNN(8, 200, 2, **kw)
    ours = RNN(8, 200, 2, kernel="compiled", **kw)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(5, 100, 8)
    lengths = torch.randint(1, 6, (100,))
    lengths[0] = 5

    def run(module):
        xx = x.clone().requires_grad_()
        out, h = module(pack_padded_sequence(xx, lengths, enforce_sorted=False))
        g = torch.Generator().manual_seed(2)
        ((out.data * torch.randn(out.data.shape, generator=g)).sum() + h.sum()).backward()
        return [out.data, h, xx.grad] + [p.grad for p in module.parameters()]

    want = run(ref)
    for backend in ("brgemm", "blas"):
        ours.zero_grad()
        with use_gemm_backend(backend):
            got = run(ours)
        for a, b in zip(want, got, strict=True):
            assert (a - b).abs().max().item() < 1e-4 * max(1.0, a.abs().max().item()), backend
