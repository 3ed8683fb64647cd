"""grutool's fused and compiled LSTM against nn.LSTM: same outputs, states and gradients; the compiled kernel's own
paths (brgemm and BLAS step GEMMs, both directions side by side) against each other."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pack_sequence

from grutool.cells import get_cell
from grutool.modules.rnn import compiled, gemm, lstm
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


def _needs_build(kernel):
    if kernel == "compiled" and compiled._why_not():
        pytest.skip(f"kernel compiled cannot be built here: {compiled._why_not()}")


@pytest.mark.parametrize("kernel", ["fused", "compiled"])
@pytest.mark.parametrize("layers,bidirectional,batch_first,packed,with_state",
                         list(itertools.product((1, 2), (False, True), (False, True), (False, True), (False, True))),
                         ids=str)
def test_float64_equals_nn_lstm(layers, bidirectional, batch_first, packed, with_state, kernel):
    _needs_build(kernel)
    torch.manual_seed(0)
    ref = nn.LSTM(I, H, layers, batch_first=batch_first, bidirectional=bidirectional).double()
    fused = LSTM(I, H, layers, batch_first=batch_first, bidirectional=bidirectional, kernel=kernel).double()
    fused.load_state_dict(ref.state_dict())
    x = torch.randn((B, T, I) if batch_first else (T, B, I), dtype=torch.float64)
    n = layers * (2 if bidirectional else 1)
    state = (torch.randn(n, B, H, dtype=torch.float64), torch.randn(n, B, H, dtype=torch.float64)) if with_state else None
    for a, b in zip(_run(ref, x, state, packed, batch_first), _run(fused, x, state, packed, batch_first), strict=True):
        assert a.shape == b.shape and (a - b).abs().max().item() < 1e-10


@pytest.mark.parametrize("kernel,backend", [("fused", "blas"), ("fused", "onednn"), ("compiled", "blas"),
                                            ("compiled", "brgemm")])
def test_float32_equals_nn_lstm_on_every_gemm_path(kernel, backend):
    _needs_build(kernel)
    if backend == "onednn" and not gemm._onednn_available():
        pytest.skip("this torch build has no oneDNN linear ops")
    if backend == "brgemm" and not compiled.brgemm_ok():
        pytest.skip("oneDNN's brgemm micro-kernel does not run on this CPU / torch build")
    torch.manual_seed(0)
    ref = nn.LSTM(I, H, 2, batch_first=True, bidirectional=True, bias=False)
    fused = LSTM(I, H, 2, batch_first=True, bidirectional=True, bias=False, kernel=kernel)
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


def test_auto_never_runs_grutool_s_kernels_with_projections_and_keeps_onednn_for_dense_inference():
    # The rest of the table, with and without the build: tests/models/test_kernel_policy.py.
    layer = get_cell("lstm").build(I, H, kernel="auto")
    assert isinstance(layer, LSTM)
    packed = pack_sequence([torch.randn(2, I), torch.randn(1, I)])
    assert layer.path(packed) in ("compiled", "fused")
    with torch.no_grad():  # a one-direction layer: no side-by-side directions, whatever the threads
        assert layer.path(torch.randn(B, T, I)) == "native", "dense inference keeps oneDNN's LSTM"
    for kernel in ("auto", "fused", "compiled"):
        assert LSTM(I, H, proj_size=2, kernel=kernel).path(packed) == "native"
    with pytest.raises(ValueError, match="GRU-only"):
        LSTM(I, H, 2, layer_norm=True)


def test_checkpoint_keys_are_nn_lstm_s():
    assert list(LSTM(I, H, 2, bidirectional=True).state_dict()) == list(nn.LSTM(I, H, 2, bidirectional=True).state_dict())


# --- the compiled kernel's own paths ------------------------------------------------------------------------------


def _grads(layer, x, lengths=None):
    x = x.clone().requires_grad_()
    layer.zero_grad()
    inp = pack_padded_sequence(x, lengths, enforce_sorted=False) if lengths is not None else x
    out, (h, c) = layer(inp)
    out = out.data if lengths is not None else out
    g = torch.Generator().manual_seed(3)
    loss = sum((t * torch.randn(t.shape, generator=g)).sum() for t in (out, h, c))
    loss.backward()
    return [out, h, c, x.grad] + [p.grad.clone() for p in layer.parameters()]


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("rows,hidden,steps", [(100, 16, 6), (5, 200, 3), (7, 300, 4)])
def test_compiled_brgemm_step_gemms_equal_blas(rows, hidden, steps, bidirectional):
    # 100 sequences: row chunks of 64. H 16: W_hh in one panel; H 200 and 300 in panels of 32 columns, the last
    # one partial in the backward (200 and 300 columns); at H 300 the backward's inner dimension 4H = 1200 goes
    # in chunks of 512. Ragged lengths: every row count appears.
    _needs_build("compiled")
    if not compiled.brgemm_ok():
        pytest.skip("oneDNN's brgemm micro-kernel does not run on this CPU / torch build")
    torch.manual_seed(0)
    layer = LSTM(8, hidden, 2, bidirectional=bidirectional, kernel="compiled")
    x = torch.randn(steps, rows, 8)
    lengths = torch.randint(1, steps + 1, (rows,))
    results = {}
    for backend in ("brgemm", "blas"):
        with use_gemm_backend(backend):
            results[backend] = _grads(layer, x, lengths)
    for a, b in zip(results["brgemm"], results["blas"], strict=True):
        assert (a - b).abs().max().item() < 1e-4 * max(1.0, b.abs().max().item())


def test_compiled_gives_the_same_bits_on_one_thread_and_on_two():
    # Two threads: a bidirectional layer's directions run side by side; the arithmetic of each is unchanged.
    _needs_build("compiled")
    torch.manual_seed(0)
    layer = LSTM(6, 24, 2, bidirectional=True, kernel="compiled")
    x = torch.randn(9, 11, 6)
    lengths = torch.randint(1, 10, (11,))
    before = torch.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results.append(_grads(layer, x, lengths))
    finally:
        torch.set_num_threads(before)
    for a, b in zip(*results, strict=True):
        assert torch.equal(a, b)


def test_compiled_gradcheck_on_a_tiny_case():
    _needs_build("compiled")
    torch.manual_seed(0)
    layer = LSTM(2, 3, 1, bidirectional=True, kernel="compiled").double()
    x = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 2, 3, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(2, 2, 3, dtype=torch.float64, requires_grad=True)

    def f(x, h0, c0, *w):
        for p, v in zip(layer.parameters(), w):
            p.data = v
        lengths = torch.tensor([4, 2])
        out, (h, c) = layer(pack_padded_sequence(x, lengths, enforce_sorted=False), (h0, c0))
        return out.data, h, c

    weights = [p.detach().clone().requires_grad_() for p in layer.parameters()]
    assert layer.path(x) == "compiled"
    assert torch.autograd.gradcheck(lambda x, h0, c0: f(x, h0, c0, *weights), (x, h0, c0))


@pytest.mark.parametrize("saved_with,loaded_with", [("native", "compiled"), ("compiled", "fused"),
                                                    ("fused", "compiled")])
def test_a_checkpoint_of_any_kernel_predicts_the_same_with_the_compiled_one(tmp_path, saved_with, loaded_with):
    _needs_build("compiled")
    torch.manual_seed(0)
    saved = LSTM(I, H, 2, bidirectional=True, kernel=saved_with)
    torch.save(saved.state_dict(), tmp_path / "lstm.pt")
    loaded = LSTM(I, H, 2, bidirectional=True, kernel=loaded_with)
    loaded.load_state_dict(torch.load(tmp_path / "lstm.pt"))
    x = torch.randn(B, T, I)
    packed = pack_padded_sequence(x, LENGTHS, batch_first=True, enforce_sorted=False)
    with torch.no_grad():
        for inp in (x, packed):
            (a, (ha, ca)), (b, (hb, cb)) = saved(inp), loaded(inp)
            a, b = (a.data, b.data) if inp is packed else (a, b)
            for u, v in ((a, b), (ha, hb), (ca, cb)):
                assert (u - v).abs().max().item() < 1e-5
