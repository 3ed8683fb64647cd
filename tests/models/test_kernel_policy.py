"""`grutool.kernels.AUTO` is the one statement of where kernel `auto` runs a fused kernel: every cell with one has
a rule, the modules follow it, and the help texts print it."""

from __future__ import annotations

import itertools

import pytest
import torch

from grutool.cells import CELLS
from grutool.kernels import AUTO, describe_auto


def test_every_cell_with_a_fused_kernel_has_an_auto_rule():
    assert {name for name, cell in CELLS.items() if cell.fused} == set(AUTO)
    assert all(CELLS[name].auto is AUTO[name] for name in AUTO)


@pytest.mark.parametrize("name", sorted(AUTO))
def test_the_module_follows_the_table(name):
    for hidden, steps, packed, grad in itertools.product((4, 256), (1, 7, 8, 30), (False, True), (False, True)):
        layer = CELLS[name].build(3, hidden, kernel="auto")
        x = torch.randn(steps, 3) if packed else torch.randn(2, steps, 3)
        with torch.set_grad_enabled(grad):
            got = layer._fusable(x, packed=packed)
        assert got == AUTO[name].fused(packed=packed, training=grad, hidden_size=hidden, steps=steps), \
            (name, hidden, steps, packed, grad)
        assert CELLS[name].build(3, hidden, kernel="fused")._fusable(x, packed=packed)
        assert not CELLS[name].build(3, hidden, kernel="native")._fusable(x, packed=packed)


def test_the_help_texts_print_the_table():
    import inspect

    from grutool.cli.bench_cmd import bench
    from grutool.cli.shapes_cmd import shapes

    line = describe_auto()
    assert line == ("gru: packed batches and dense ones of 8+ steps; lstm: packed training and packed "
                    "inference from hidden_size 256; rnn: packed training")
    for command, option in ((bench, "kernels"), (shapes, "kernel")):
        assert line in inspect.signature(command).parameters[option].default.help
