"""`grutool.kernels.AUTO` is the one statement of what kernel `auto` runs: every cell with a fused kernel has a
rule, the table picks what it says case by case, the modules follow it (with the compiled GRU and LSTM built, and
where they cannot be built), `auto` computes what `native` computes, and the help texts print the table."""

from __future__ import annotations

import dataclasses
import itertools
import logging

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

from grutool.cells import CELLS
from grutool.kernels import AUTO, describe_auto
from grutool.modules.rnn import compiled
from grutool.modules.rnn.gru import GRU


def test_every_cell_with_a_fused_kernel_has_an_auto_rule():
    assert {name for name, cell in CELLS.items() if cell.fused} == set(AUTO)
    assert all(CELLS[name].auto is AUTO[name] for name in AUTO)
    assert all(AUTO[name].compiled_training_from is None for name in AUTO if not CELLS[name].compiled), \
        "a compiled rule only where the cell has a compiled kernel"


# (cell, packed, training, hidden_size, steps, compiled built) -> what auto runs. The numbers behind them:
# docs/benchmarks.md, "`kernel: auto` with the compiled GRU" (benchmarks/kernel_calls.py).
CASES = [
    # GRU, compiled built: from 3 steps in training, 5 without gradients; below, nn.GRU's own loop.
    ("gru", False, True, 256, 1, True, "native"),      # one-step decoding while training (teacher forcing off)
    ("gru", False, True, 256, 2, True, "native"),
    ("gru", False, True, 256, 3, True, "compiled"),
    ("gru", False, True, 256, 8, True, "compiled"),    # names: dense batches of 5-12 characters at H 256
    ("gru", False, False, 64, 1, True, "native"),      # one-step generation (lm, seq2seq)
    ("gru", False, False, 64, 4, True, "native"),
    ("gru", False, False, 64, 5, True, "compiled"),
    ("gru", True, True, 64, 2, True, "native"),        # a packed batch of one- and two-character words
    ("gru", True, True, 64, 3, True, "compiled"),
    ("gru", True, False, 512, 4, True, "native"),
    ("gru", True, False, 512, 40, True, "compiled"),
    # GRU, compiled not built: the fused rule. Packed always; dense from 16 steps, without gradients from H 512.
    ("gru", True, True, 64, 2, False, "fused"),
    ("gru", True, False, 64, 2, False, "fused"),
    ("gru", False, True, 256, 12, False, "native"),    # names' batches
    ("gru", False, True, 256, 16, False, "fused"),
    ("gru", False, False, 256, 100, False, "native"),
    ("gru", False, False, 512, 15, False, "native"),
    ("gru", False, False, 512, 16, False, "fused"),
    ("gru", False, False, 64, 1, False, "native"),
    # LSTM, compiled built: every call in training; without gradients packed calls from 8 steps; dense inference
    # keeps oneDNN's LSTM.
    ("lstm", False, True, 256, 1, True, "compiled"),
    ("lstm", True, True, 64, 5, True, "compiled"),
    ("lstm", True, False, 256, 7, True, "native"),
    ("lstm", True, False, 256, 8, True, "compiled"),
    ("lstm", False, False, 512, 100, True, "native"),  # oneDNN's dense LSTM
    # LSTM, compiled not built: the fused rule.
    ("lstm", True, True, 64, 5, False, "fused"),
    ("lstm", True, False, 128, 5, False, "native"),
    ("lstm", True, False, 256, 5, False, "fused"),
    ("lstm", False, True, 512, 50, False, "native"),   # oneDNN's dense LSTM
    # RNN, compiled built: from 5 steps in training, 16 without gradients; below, nn.RNN's own loop.
    ("rnn", True, True, 64, 4, True, "native"),
    ("rnn", True, True, 64, 5, True, "compiled"),
    ("rnn", False, False, 512, 15, True, "native"),
    ("rnn", False, False, 512, 16, True, "compiled"),
    # RNN, compiled not built: the fused rule.
    ("rnn", True, True, 64, 5, False, "fused"),
    ("rnn", True, False, 512, 50, False, "native"),
    ("rnn", False, True, 64, 50, False, "native"),
]


@pytest.mark.parametrize("name,packed,training,hidden,steps,built,expected", CASES)
def test_the_table_picks(name, packed, training, hidden, steps, built, expected):
    asked = []

    def ready():
        asked.append(True)
        return built

    got = AUTO[name].pick(packed=packed, training=training, hidden_size=hidden, steps=steps, compiled_ready=ready)
    assert got == expected
    assert bool(asked) == CELLS[name].compiled, "only a cell with a compiled kernel asks for its build"


def _as_built(layer, built: bool):
    """The layer with its compiled kernel's build answered (`ready()`), without building anything."""
    if layer.compiled_step is not None:
        layer.compiled_step = dataclasses.replace(layer.compiled_step, ready=lambda: built)
    return layer


@pytest.mark.parametrize("name", sorted(AUTO))
@pytest.mark.parametrize("built", [True, False])
def test_the_module_follows_the_table(name, built):
    for hidden, steps, packed, grad in itertools.product((4, 512), (1, 2, 3, 4, 5, 15, 16, 30), (False, True),
                                                         (False, True)):
        layer = _as_built(CELLS[name].build(3, hidden, kernel="auto"), built)
        x = torch.randn(2, steps, 3)
        inp = pack_padded_sequence(x, torch.tensor([steps, 1]), batch_first=True, enforce_sorted=False) if packed \
            else x
        with torch.set_grad_enabled(grad):
            got = layer.path(inp)
        assert got == AUTO[name].pick(packed=packed, training=grad, hidden_size=hidden, steps=steps,
                                      compiled_ready=lambda: built), (name, hidden, steps, packed, grad)
        assert CELLS[name].build(3, hidden, kernel="fused").path(inp) == "fused"
        assert CELLS[name].build(3, hidden, kernel="native").path(inp) == "native"


def test_auto_runs_native_for_a_dtype_the_kernels_lack():
    layer = _as_built(GRU(3, 4, batch_first=True, kernel="auto"), True)
    assert layer.path(torch.randn(2, 30, 3)) == "compiled"
    assert layer.path(torch.randn(2, 30, 3, dtype=torch.bfloat16)) == "native"


def test_where_the_build_fails_auto_follows_the_fused_rule_and_says_why_once(fresh, caplog):
    fresh.setenv("CXX", "no-such-compiler-here")
    torch.manual_seed(0)
    layer = GRU(3, 8, batch_first=True, kernel="auto")
    x = torch.randn(4, 30, 3)
    packed = pack_padded_sequence(x, torch.tensor([30, 2, 9, 30]), batch_first=True, enforce_sorted=False)
    with caplog.at_level(logging.WARNING, logger="grutool"):
        assert layer.path(x) == "fused" and layer.path(packed) == "fused"  # dense of 16+ steps, packed
        assert layer.path(x[:, :15]) == "native"                           # dense below 16 steps
        layer(x)[0].sum().backward()
    lines = [r for r in caplog.records if "kernel compiled" in r.getMessage()]
    assert len(lines) == 1, "said once per process"
    message = lines[0].getMessage()
    assert "no C++ compiler" in message and "running the other kernels instead (fused, or PyTorch's where " \
        "`kernel: auto` picks it)" in message
    assert "\n" not in message and lines[0].exc_info is None, "one line, no traceback"


@pytest.mark.parametrize("built", [True, False])
@pytest.mark.parametrize("packed", [False, True])
def test_auto_computes_what_native_computes(packed, built, request):
    if built and compiled._why_not():
        pytest.skip(f"kernel compiled cannot be built here: {compiled._why_not()}")
    if not built:  # (built: the session's cache, built once for all tests)
        request.getfixturevalue("fresh").setenv("CXX", "no-such-compiler-here")
    torch.manual_seed(0)
    native = GRU(5, 8, 2, batch_first=True, bidirectional=True, kernel="native")
    auto = GRU(5, 8, 2, batch_first=True, bidirectional=True, kernel="auto")
    auto.load_state_dict(native.state_dict())
    x = torch.randn(4, 16, 5)  # dense: 16 steps, where the fused rule runs fused in training too
    lengths = torch.tensor([16, 2, 5, 16])
    results = []
    for layer in (native, auto):
        xi = x.clone().requires_grad_()
        inp = pack_padded_sequence(xi, lengths, batch_first=True, enforce_sorted=False) if packed else xi
        if layer is auto:
            assert layer.path(inp) == ("compiled" if built else "fused")
        out, h = layer(inp)
        out = out.data if packed else out
        (out.square().sum() + h.sum()).backward()
        with torch.no_grad():  # inference: compiled (built) or the fused rule (native when dense)
            inference = layer(inp)[0]
        results.append([out, h, xi.grad, inference.data if packed else inference]
                       + [p.grad for p in layer.parameters()])
    for a, b in zip(*results, strict=True):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)


def test_the_help_texts_print_the_table():
    import inspect

    from grutool.cli.bench_cmd import bench
    from grutool.cli.shapes_cmd import shapes

    line = describe_auto()
    assert line == ("gru: compiled for calls of 3+ steps in training and 5+ without gradients, else native; where "
                    "compiled cannot be built, fused for packed batches and dense ones of 16+ steps (without "
                    "gradients from hidden_size 512); lstm: compiled for calls of 1+ steps in training and 8+ "
                    "without gradients (packed ones, and dense ones of bidirectional layers with 2+ threads), else "
                    "native; where compiled cannot be built, fused for packed "
                    "training and packed inference from hidden_size 256; rnn: compiled for calls of 5+ steps in "
                    "training and 16+ without gradients, else native; where compiled cannot be built, fused for "
                    "packed training")
    for command, option in ((bench, "kernels"), (shapes, "kernel")):
        assert line in inspect.signature(command).parameters[option].default.help


def test_lstm_dense_inference_goes_compiled_only_where_its_directions_run_side_by_side():
    rule = AUTO["lstm"]
    ready = lambda: True  # noqa: E731
    common = dict(packed=False, training=False, hidden_size=256, steps=100, compiled_ready=ready)
    assert rule.pick(**common) == "native"                              # oneDNN's dense LSTM
    assert rule.pick(**common, side_by_side=True) == "compiled"
    assert rule.pick(**{**common, "steps": 7}, side_by_side=True) == "native"
    assert AUTO["gru"].pick(**common, side_by_side=False) == "compiled"  # the GRU's rule does not look at it
    before = torch.get_num_threads()
    try:
        for threads, bidirectional, expected in ((1, True, "native"), (2, True, "compiled"), (2, False, "native")):
            torch.set_num_threads(threads)
            layer = _as_built(CELLS["lstm"].build(3, 8, bidirectional=bidirectional, kernel="auto"), True)
            with torch.no_grad():
                assert layer.path(torch.randn(2, 30, 3)) == expected, (threads, bidirectional)
    finally:
        torch.set_num_threads(before)
