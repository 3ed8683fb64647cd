"""grutool's fused GRU against nn.GRU: same outputs, states and gradients, every layout it accepts."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from grutool.cells import CELLS, get_cell
from grutool.kernels import AUTO
from grutool.modules.rnn import compiled, gemm, gru
from grutool.modules.rnn.gemm import gemm_backend, use_gemm_backend
from grutool.modules.rnn.gru import GRU

I, H, B, T = 5, 4, 4, 6
LENGTHS = torch.tensor([6, 1, 3, 6])  # ragged, with a length-1 sequence, unsorted


def _pair(layers, bidirectional, batch_first, bias=True, dtype=torch.float64, seed=0, kernel="fused"):
    """nn.GRU and grutool's GRU with `kernel` (fused here, compiled in test_compiled_gru.py) on the same weights."""
    torch.manual_seed(seed)
    ref = nn.GRU(I, H, layers, batch_first=batch_first, bidirectional=bidirectional, bias=bias).to(dtype)
    mine = GRU(I, H, layers, batch_first=batch_first, bidirectional=bidirectional, bias=bias,
               kernel=kernel).to(dtype)
    mine.load_state_dict(ref.state_dict())
    return ref, mine


def _run(module, x, h0, packed, batch_first):
    """Outputs, h_n and the gradients of a fixed random loss w.r.t. input, h0 and every parameter."""
    x = x.clone().requires_grad_()
    h = h0.clone().requires_grad_() if h0 is not None else None
    inp = pack_padded_sequence(x, LENGTHS, batch_first=batch_first, enforce_sorted=False) if packed else x
    if isinstance(module, GRU) and module.kernel == "compiled":
        assert module.path(inp) == "compiled", "the compiled loop ran (not its fallback)"
    out, h_n = module(inp, h)
    out = out.data if packed else out
    g = torch.Generator().manual_seed(1)
    loss = (out * torch.randn(out.shape, generator=g, dtype=out.dtype)).sum() \
        + (h_n * torch.randn(h_n.shape, generator=g, dtype=h_n.dtype)).sum()
    loss.backward()
    grads = [x.grad] + ([h.grad] if h is not None else []) + [p.grad for p in module.parameters()]
    return [out, h_n] + grads


GRID = list(itertools.product((1, 2), (False, True), (False, True), (False, True), (False, True)))


def _needs(kernel: str) -> None:
    """Kernel `compiled` needs its C++ build (a compiler and ninja): skipped, saying why, where it cannot build."""
    if kernel == "compiled" and compiled._why_not():
        pytest.skip(f"kernel compiled cannot be built here: {compiled._why_not()}")


@pytest.mark.parametrize("kernel", ["fused", "compiled"])
@pytest.mark.parametrize("layers,bidirectional,batch_first,packed,with_h0", GRID,
                         ids=lambda v: str(v))
def test_float64_equals_nn_gru(layers, bidirectional, batch_first, packed, with_h0, kernel):
    _needs(kernel)
    ref, fused = _pair(layers, bidirectional, batch_first, kernel=kernel)
    torch.manual_seed(2)
    x = torch.randn((B, T, I) if batch_first else (T, B, I), dtype=torch.float64)
    h0 = torch.randn(layers * (2 if bidirectional else 1), B, H, dtype=torch.float64) if with_h0 else None
    for a, b in zip(_run(ref, x, h0, packed, batch_first), _run(fused, x, h0, packed, batch_first), strict=True):
        assert a.shape == b.shape
        assert (a - b).abs().max().item() < 1e-10


@pytest.mark.parametrize("kernel,backend", [("fused", "blas"), ("fused", "onednn"), ("compiled", "blas"),
                                            ("compiled", "onednn"), ("compiled", "brgemm")])  # brgemm: compiled only
@pytest.mark.parametrize("packed", [False, True])
def test_float32_equals_nn_gru_on_every_gemm_path(backend, packed, kernel):
    _needs(kernel)
    if backend == "onednn" and not gemm._onednn_available():
        pytest.skip("this torch build has no oneDNN linear ops")
    if backend == "brgemm" and not compiled.brgemm_ok():
        pytest.skip("oneDNN's brgemm micro-kernel does not run on this CPU / torch build")
    ref, fused = _pair(2, True, True, dtype=torch.float32, kernel=kernel)
    x = torch.randn(B, T, I)
    h0 = torch.randn(4, B, H)
    with use_gemm_backend(backend):
        got = _run(fused, x, h0, packed, True)
    for a, b in zip(_run(ref, x, h0, packed, True), got, strict=True):
        assert (a - b).abs().max().item() < (1e-5 if kernel == "compiled" else 1e-4)


def test_onednn_and_blas_paths_agree_at_a_size_where_auto_picks_onednn():
    if not gemm._onednn_available():
        pytest.skip("this torch build has no oneDNN linear ops")
    torch.manual_seed(0)
    layer = GRU(32, 128, batch_first=True, bidirectional=True, kernel="fused")
    x = torch.randn(32, 7, 32)
    assert gemm_backend(torch.float32, 32, 128) == "onednn"
    results = {}
    for backend in ("onednn", "blas"):
        layer.zero_grad()
        with use_gemm_backend(backend):
            out, h = layer(x)
            (out.square().sum() + h.sum()).backward()
        results[backend] = [out, h] + [p.grad.clone() for p in layer.parameters()]
    for a, b in zip(results["onednn"], results["blas"], strict=True):
        assert (a - b).abs().max().item() < 1e-3 * max(1.0, a.abs().max().item())


def test_no_bias_and_unbatched_input():
    ref, fused = _pair(2, True, False, bias=False)
    x = torch.randn(T, I, dtype=torch.float64)  # (T, I): nn.GRU's unbatched form
    h0 = torch.randn(4, H, dtype=torch.float64)
    for a, b in zip(ref(x, h0), fused(x, h0), strict=True):
        assert a.shape == b.shape and (a - b).abs().max().item() < 1e-10


def test_gradcheck_on_a_tiny_case():
    torch.manual_seed(0)
    w = [torch.randn(9, 2, dtype=torch.float64, requires_grad=True), torch.randn(9, 3, dtype=torch.float64, requires_grad=True),
         torch.randn(9, dtype=torch.float64, requires_grad=True), torch.randn(9, dtype=torch.float64, requires_grad=True)]
    x = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)  # packed rows of lengths 3, 2
    h0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    for reverse in (False, True):
        def f(x, h0, *w):
            out, h_n = gru.gru_direction(x, h0, *w, [2, 2, 1], reverse)
            return out, h_n
        assert torch.autograd.gradcheck(f, (x, h0, *w))


def test_dropout_between_layers_only_in_training():
    torch.manual_seed(0)
    layer = GRU(I, H, 3, dropout=0.5, kernel="fused").double()
    ref = nn.GRU(I, H, 3, dropout=0.5).double()
    ref.load_state_dict(layer.state_dict())
    x = torch.randn(T, B, I, dtype=torch.float64)
    layer.eval(), ref.eval()
    assert torch.allclose(layer(x)[0], ref(x)[0], atol=1e-10)
    assert torch.equal(layer(x)[0], layer(x)[0]), "no randomness in eval mode"
    layer.train()
    a, b = layer(x)[0], layer(x)[0]
    assert not torch.allclose(a, b), "dropout between layers is active in training"
    one = GRU(I, H, 1, dropout=0.0, kernel="fused").double().train()
    assert torch.equal(one(x)[0], one(x)[0]), "a single layer has no dropout to apply"


@pytest.mark.parametrize("kernel", ["fused", "compiled"])
def test_runs_are_deterministic(kernel):
    _needs(kernel)
    torch.manual_seed(0)
    layer = GRU(16, 32, 2, batch_first=True, bidirectional=True, kernel=kernel)
    x = torch.randn(8, 9, 16)
    lengths = torch.tensor([9, 3, 5, 9, 1, 2, 7, 8])
    runs = []
    for _ in range(2):
        layer.zero_grad()
        out, h = layer(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
        (out.data.sum() + h.square().sum()).backward()
        runs.append([out.data, h] + [p.grad.clone() for p in layer.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*runs, strict=True))


def test_weights_updated_in_place_by_a_fused_optimizer_are_seen_at_the_next_call():
    # torch's fused Adam changes parameters without bumping their version counters: nothing may be
    # cached on those counters (an early version did, and trained on stale weights).
    torch.manual_seed(0)
    layer = GRU(I, H, kernel="fused")
    ref = nn.GRU(I, H)
    x = torch.randn(T, B, I)
    kwargs = {"fused": True} if "fused" in torch.optim.Adam.__init__.__code__.co_varnames else {}
    opt = torch.optim.Adam(layer.parameters(), lr=0.1, **kwargs)
    for _ in range(3):
        with torch.no_grad():
            ref.load_state_dict(layer.state_dict())
            assert torch.allclose(layer(x)[0], ref(x)[0], atol=1e-5)
        layer(x)[0].sum().backward()
        opt.step()
        opt.zero_grad()


@pytest.mark.parametrize("layer_norm,residual", [(True, False), (False, True), (True, True)])
def test_layer_norm_and_residual_are_the_same_with_either_kernel(layer_norm, residual):
    torch.manual_seed(0)
    kw = dict(input_size=2 * H, hidden_size=H, num_layers=3, bidirectional=True, batch_first=True,
              layer_norm=layer_norm, residual=residual)
    fused, native = GRU(kernel="fused", **kw).double(), GRU(kernel="native", **kw).double()
    native.load_state_dict(fused.state_dict())
    x = torch.randn(B, T, 2 * H, dtype=torch.float64)
    for packed in (False, True):
        a, b = _run(fused, x, None, packed, True), _run(native, x, None, packed, True)
        for u, v in zip(a, b, strict=True):
            assert (u - v).abs().max().item() < 1e-10
    # And they do change the function: a stack without them gives other outputs.
    plain = nn.GRU(2 * H, H, 3, bidirectional=True, batch_first=True).double()
    plain.load_state_dict({k: v for k, v in fused.state_dict().items() if k.startswith(("weight", "bias"))})
    assert not torch.allclose(plain(x)[0], fused(x)[0])


def test_layer_norm_is_applied_between_layers():
    torch.manual_seed(0)
    layer = GRU(I, H, 2, layer_norm=True, kernel="fused").double()
    assert len(layer.layer_norms) == 1
    assert "layer_norms.0.weight" in layer.state_dict()


def test_checkpoint_of_one_kernel_loads_into_the_other_and_predicts_the_same(tmp_path):
    torch.manual_seed(0)
    native = get_cell("gru").build(I, H, num_layers=2, bidirectional=True, kernel="native").double()
    path = tmp_path / "gru.pt"
    torch.save(native.state_dict(), path)
    fused = get_cell("gru").build(I, H, num_layers=2, bidirectional=True, kernel="fused").double()
    fused.load_state_dict(torch.load(path, weights_only=True))
    x = torch.randn(B, T, I, dtype=torch.float64)
    native.eval(), fused.eval()
    with torch.no_grad():
        assert torch.allclose(native(x)[0], fused(x)[0], atol=1e-10)
    assert list(native.state_dict()) == list(fused.state_dict()) == list(nn.GRU(I, H, 2, bidirectional=True).state_dict())


def test_without_the_compiled_build_auto_uses_the_fused_kernel_except_for_short_dense_calls():
    # (with the compiled kernel built: tests/models/test_kernel_policy.py)
    layer = GRU(I, H, batch_first=True, kernel="auto")
    layer.compiled_step = dataclasses.replace(layer.compiled_step, ready=lambda: False)
    assert layer.path(torch.randn(B, AUTO["gru"].dense_from_steps, I)) == "fused"
    assert layer.path(torch.randn(B, 1, I)) == "native"
    assert layer.path(torch.randn(B, AUTO["gru"].dense_from_steps - 1, I)) == "native"
    assert GRU(I, H, batch_first=True, kernel="fused").path(torch.randn(B, 1, I)) == "fused"
    assert layer.path(pack_padded_sequence(torch.randn(B, T, I), LENGTHS, batch_first=True, enforce_sorted=False)) \
        == "fused"
    assert layer.path(torch.randn(B, T, I, dtype=torch.bfloat16)) == "native"
    assert GRU(I, H, kernel="native").path(torch.randn(T, B, I)) == "native"


def test_registry_declares_capabilities():
    assert CELLS["gru"].kernels == ("auto", "native", "fused", "compiled") and CELLS["gru"].stacks
    assert "fused" in CELLS["lstm"].kernels and not CELLS["lstm"].stacks and CELLS["lstm"].cell_state
    assert "fused" in CELLS["rnn"].kernels and not CELLS["rnn"].stacks
    with pytest.raises(ValueError, match="has no kernel 'fast'"):
        CELLS["rnn"].build(I, H, kernel="fast")
    with pytest.raises(ValueError, match="layer_norm and residual"):
        CELLS["rnn"].build(I, H, num_layers=2, residual=True)
    lstm = CELLS["lstm"].build(I, H)
    h0 = torch.zeros(1, B, H)
    out, state = lstm(torch.randn(B, T, I), CELLS["lstm"].initial_state(h0))
    assert CELLS["lstm"].hidden(state).shape == (1, B, H)


# Checkpoints across kernels (native, fused and compiled, every pair): tests/models/test_compiled_gru.py.


def test_the_kernel_draws_nothing_from_the_global_rng():
    # The oneDNN probe once used torch.randn: it shifted every dropout mask after the first call, and the
    # default job trained to another result than with nn.GRU. Training must see the same random stream.
    gemm._ONEDNN_OK = None  # probe again, as a fresh process does
    layer = GRU(I, H, batch_first=True, bidirectional=True, kernel="fused")
    x = torch.randn(B, T, I, requires_grad=True)
    torch.manual_seed(123)
    layer(pack_padded_sequence(x, LENGTHS, batch_first=True, enforce_sorted=False))[0].data.sum().backward()
    after = torch.rand(3)
    torch.manual_seed(123)
    assert torch.equal(after, torch.rand(3))



def test_ragged_batches_send_onednn_a_bounded_set_of_shapes(monkeypatch):
    """oneDNN builds and caches a primitive (~0.6 MB) for every GEMM shape it meets (issue 24): the fused
    kernel's all-rows GEMMs (a row count per batch) are BLAS's, and oneDNN gets only the step GEMMs of
    ragged batches of at most ONEDNN_MAX_RAGGED_ROWS rows, a batch size's worth of shapes."""
    if not gemm._onednn_available():
        pytest.skip("this torch build has no oneDNN linear ops")
    shapes = set()
    call = gemm.Linear.__call__

    def recording(self, x, b=None):
        if self.backend == "onednn":
            shapes.add(tuple(x.shape))
        return call(self, x, b)

    monkeypatch.setattr(gemm.Linear, "__call__", recording)
    torch.manual_seed(0)
    layer = GRU(16, gemm.ONEDNN_RAGGED_MIN_HIDDEN, bidirectional=True, kernel="fused")
    cap = gemm.ONEDNN_MAX_RAGGED_ROWS
    for B in (24, 40, cap + 40, cap + 72):  # two batches under the cap, two over it
        lengths = torch.randint(1, 9, (B,))
        lengths[0] = 9  # ragged: at least two lengths
        packed = pack_padded_sequence(torch.randn(B, 9, 16), lengths, batch_first=True, enforce_sorted=False)
        out, h = layer(packed)
        (out.data.square().sum() + h.sum()).backward()
    assert shapes and max(rows for rows, _ in shapes) <= 40  # the batches over the cap stepped through BLAS
    h = gemm.ONEDNN_RAGGED_MIN_HIDDEN
    assert gemm_backend(torch.float32, cap + 1, h, ragged=True) == "blas"
    assert gemm_backend(torch.float32, 64, h // 2, ragged=True) == "blas"  # where oneDNN gains little
    assert gemm_backend(torch.float32, cap + 1, h // 2, ragged=False) == "onednn"  # dense: one shape a batch
