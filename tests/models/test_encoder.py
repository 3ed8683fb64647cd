"""The packed encoder against nn.GRU/LSTM/RNN run one sequence at a time."""

import pytest
import torch

from grutool.modules.encoder import RecurrentEncoder
from grutool.modules.pooling import Pooling
from grutool.shapes.reference import gru_stack


def reference(enc: RecurrentEncoder, x, lengths):
    """Each sequence alone through the same nn module, no packing, no padding."""
    outs, finals = [], []
    for i, n in enumerate(lengths.tolist()):
        out, state = enc.rnn(x[i:i + 1, :n])
        h = state[0] if enc.cell == "lstm" else state
        outs.append(out[0])
        finals.append(torch.cat([h[-2, 0], h[-1, 0]]) if enc.num_directions == 2 else h[-1, 0])
    return outs, torch.stack(finals)


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (1, True), (2, True)])
def test_encoder_matches_unpacked_per_sequence(cell, layers, bidirectional):
    torch.manual_seed(0)
    enc = RecurrentEncoder(5, 7, layers, bidirectional, 0.0, cell).eval()
    lengths = torch.tensor([4, 6, 1, 3])
    x = torch.randn(4, 6, 5)
    got = enc(x, lengths)
    outs, finals = reference(enc, x, lengths)
    D = 2 if bidirectional else 1
    assert got.outputs.shape == (4, 6, D * 7)
    assert got.final.shape == (4, D * 7)
    assert got.h_n.shape == (layers * D, 4, 7)
    for i, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(got.outputs[i, :n], outs[i])
        assert torch.all(got.outputs[i, n:] == 0)
    torch.testing.assert_close(got.final, finals)


@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, True)])
def test_gru_encoder_matches_the_from_scratch_gru(layers, bidirectional):
    """The packed GRU encoder equals GRU steps written out by hand (grutool.shapes.reference), sequence by
    sequence: a reference that does not share nn.GRU's code, for any cell implementation behind the encoder."""
    torch.manual_seed(0)
    enc = RecurrentEncoder(5, 7, layers, bidirectional, 0.0, "gru").eval().double()
    lengths = torch.tensor([4, 6, 1, 3])
    x = torch.randn(4, 6, 5, dtype=torch.float64)
    with torch.no_grad():
        got = enc(x, lengths)
        params = dict(enc.rnn.named_parameters())
        for i, n in enumerate(lengths.tolist()):
            out, h_n = gru_stack(x[i, :n].unsqueeze(1), params, layers, bidirectional)  # (n, 1, D·H), (L·D, 1, H)
            torch.testing.assert_close(got.outputs[i, :n], out[:, 0], rtol=0, atol=1e-12)
            torch.testing.assert_close(got.h_n[:, i], h_n[:, 0], rtol=0, atol=1e-12)


def test_final_state_is_forward_last_step_and_backward_first_step():
    torch.manual_seed(1)
    enc = RecurrentEncoder(3, 4, 1, True).eval()
    lengths = torch.tensor([5, 2])
    got = enc(torch.randn(2, 5, 3), lengths)
    for i, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(got.final[i, :4], got.outputs[i, n - 1, :4])
        torch.testing.assert_close(got.final[i, 4:], got.outputs[i, 0, 4:])


def test_padding_changes_unpacked_bidirectional_output_but_not_packed():
    """Why packing matters: fed unpacked, the backward direction starts on padding."""
    torch.manual_seed(2)
    enc = RecurrentEncoder(3, 4, 1, True).eval()
    x = torch.randn(1, 3, 3)
    padded = torch.cat([x, torch.zeros(1, 4, 3)], dim=1)  # 4 steps of padding
    packed_short = enc(x, torch.tensor([3])).outputs[:, :3]
    packed_padded = enc(padded, torch.tensor([3])).outputs[:, :3]
    torch.testing.assert_close(packed_short, packed_padded)
    naive, _ = enc.rnn(padded)
    assert not torch.allclose(naive[:, :3], packed_short)


def test_empty_sequences_get_zero_states_and_do_not_disturb_others():
    torch.manual_seed(3)
    enc = RecurrentEncoder(3, 4, 2, True).eval()
    x = torch.randn(3, 4, 3)
    with_empty = enc(x, torch.tensor([4, 0, 2]))
    alone = enc(x[[0, 2]], torch.tensor([4, 2]))
    assert torch.all(with_empty.outputs[1] == 0) and torch.all(with_empty.final[1] == 0)
    assert torch.all(with_empty.h_n[:, 1] == 0)
    torch.testing.assert_close(with_empty.final[[0, 2]], alone.final)
    all_empty = enc(x, torch.tensor([0, 0, 0]))
    assert torch.all(all_empty.final == 0)


@pytest.mark.parametrize("kind", ["last", "mean", "max", "attention"])
def test_pooling_ignores_padding_content(kind):
    torch.manual_seed(4)
    enc = RecurrentEncoder(3, 4, 1, True).eval()
    pool = Pooling(kind, enc.get_output_dim()).eval()
    lengths = torch.tensor([5, 2, 0])
    mask = torch.arange(5)[None] < lengths[:, None]
    x = torch.randn(3, 5, 3)
    noisy = x.clone()
    noisy[~mask] = torch.randn(int((~mask).sum()), 3) * 100  # garbage at padded positions
    a = pool(enc(x, lengths), mask)
    b = pool(enc(noisy, lengths), mask)
    torch.testing.assert_close(a, b)
    assert torch.all(a[2] == 0), "an empty sequence pools to zeros"
    assert torch.isfinite(a).all()


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_equal_length_batches_take_the_dense_path_with_the_same_results(cell):
    torch.manual_seed(5)
    enc = RecurrentEncoder(5, 7, 2, True, 0.0, cell).eval()
    lengths = torch.tensor([4, 4, 4])
    x = torch.randn(3, 6, 5)  # two padded steps after the common length
    got = enc(x, lengths)
    outs, finals = reference(enc, x, lengths)
    for i in range(3):
        torch.testing.assert_close(got.outputs[i, :4], outs[i])
    assert torch.all(got.outputs[:, 4:] == 0)
    torch.testing.assert_close(got.final, finals)
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    _, state = enc.rnn(packed)
    h_n = state[0] if cell == "lstm" else state
    torch.testing.assert_close(got.h_n, h_n)


@pytest.mark.parametrize("lengths,total", [
    ([5, 2, 5, 1, 3, 2], 5),   # ties: torch.sort's order for equal lengths is the one to keep
    ([3, 7, 1], 9),            # padding after the longest sequence (total_length > max length)
    ([4], 4),
    ([1, 1, 2], 2),
])
def test_pack_and_unpack_give_torchs_packed_sequence_and_padding_bit_for_bit(lengths, total):
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from grutool.modules.encoder import pack, unpack
    torch.manual_seed(0)
    lengths = torch.tensor(lengths, dtype=torch.int32)  # any integer type, as torch's own takes
    B = len(lengths)
    x_ref = torch.randn(B, total, 3, dtype=torch.float64, requires_grad=True)
    x = x_ref.detach().clone().requires_grad_(True)
    ref = pack_padded_sequence(x_ref, lengths, batch_first=True, enforce_sorted=False)
    got, rows = pack(x, lengths)
    assert torch.equal(got.data, ref.data)
    for name in ("batch_sizes", "sorted_indices", "unsorted_indices"):
        assert torch.equal(getattr(got, name), getattr(ref, name)), name
    assert got.batch_sizes.dtype == torch.int64 and got.batch_sizes.device.type == "cpu"
    # the recurrent layer's stand-in: something per row, with a gradient back to the input
    w = torch.randn(3, 4, dtype=torch.float64)
    padded_ref, _ = pad_packed_sequence(ref._replace(data=torch.tanh(ref.data @ w)), batch_first=True,
                                        total_length=total)
    padded = unpack(torch.tanh(got.data @ w), rows, B, total)
    assert padded.shape == (B, total, 4)
    assert torch.equal(padded, padded_ref)
    g = torch.randn(B, total, 4, dtype=torch.float64)
    padded_ref.backward(g)
    padded.backward(g)
    assert torch.equal(x.grad, x_ref.grad)
    assert torch.all(x.grad[torch.arange(total)[None] >= lengths[:, None]] == 0)  # padding gets no gradient


def test_the_encoder_packs_what_torch_packs():
    """The layer sees the same PackedSequence as pack_padded_sequence would hand it (the fused and
    compiled kernels read batch_sizes and the row order), so every cell and kernel keeps its results."""
    from torch.nn.utils.rnn import pack_padded_sequence
    torch.manual_seed(1)
    enc = RecurrentEncoder(3, 4, 1, True, 0.0, "gru").eval()
    seen = []
    real = enc.rnn.forward
    enc.rnn.forward = lambda inp, *a: (seen.append(inp), real(inp, *a))[1]
    x, lengths = torch.randn(4, 6, 3), torch.tensor([2, 6, 6, 3])
    enc(x, lengths)
    ref = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    assert all(torch.equal(a, b) for a, b in zip(seen[0], ref))


@pytest.mark.parametrize("lengths", [[4, 2], [0, 2], [3, -1]])
def test_pack_refuses_lengths_outside_the_padded_steps(lengths):
    """A length past T would read the next sequence's rows (torch's own packing does not check it)."""
    from grutool.modules.encoder import pack
    with pytest.raises(ValueError, match=r"every length must be in 1\.\.3"):
        pack(torch.randn(2, 3, 4), torch.tensor(lengths))
