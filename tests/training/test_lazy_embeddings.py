"""train.lazy_embeddings: the token embedding's sparse gradients and RowAdam, against dense Adam."""

import pytest
import torch
import yaml

from grutool import rundir
from grutool.checkpoint import load_checkpoint
from grutool.config_file import parse_config
from grutool.errors import TrainingInterrupted
from grutool.training.callbacks import Callback
from grutool.training.loop import train
from grutool.training.optim import RowAdam, clip_grad_norm, grad_norm, param_grad_norm

from conftest import InterruptAt, invoke, tiny_config

V, E = 40, 3


def _three_optimizers(rows_at, steps, lr_at=lambda step: 0.01):
    """One table (float64) under dense Adam, RowAdam (flushed at the end) and torch's SparseAdam, fed the same
    gradients: random values in the rows `rows_at(step)` gives, zero elsewhere. Returns w0 and the three."""
    torch.manual_seed(0)
    w0 = torch.randn(V, E, dtype=torch.float64)
    ps = [torch.nn.Parameter(w0.clone()) for _ in range(3)]
    opts = [torch.optim.Adam([ps[0]], lr=lr_at(0)), RowAdam([ps[1]], lr=lr_at(0)),
            torch.optim.SparseAdam([ps[2]], lr=lr_at(0))]
    for step in range(steps):
        rows = torch.tensor(rows_at(step), dtype=torch.long)
        g = torch.randn(len(rows), E, dtype=torch.float64)
        dense = torch.zeros(V, E, dtype=torch.float64)
        dense[rows] = g
        ps[0].grad = dense
        for p in ps[1:]:
            p.grad = torch.sparse_coo_tensor(rows[None], g, (V, E), check_invariants=True)
        for o in opts:
            o.param_groups[0]["lr"] = lr_at(step)
            o.step()
    opts[1].flush()
    return w0, [p.detach() for p in ps]


def test_rows_in_every_batch_follow_adam_and_untouched_rows_stay():
    """Rows with a gradient every step take Adam's update exactly (no step missed); rows never in a batch
    keep their initial weights, as under dense Adam (zero moments move nothing)."""
    w0, (adam, row, _) = _three_optimizers(lambda step: [0, 1, 2, 3], 50, lambda s: 0.01 * (1 - s / 60))
    assert torch.allclose(row[:4], adam[:4], rtol=0, atol=1e-12)
    assert not torch.equal(row[:4], w0[:4])
    assert torch.equal(row[4:], w0[4:]) and torch.equal(adam[4:], w0[4:])


@pytest.mark.parametrize("start", [0, 300])
def test_missed_steps_are_caught_up_where_sparse_adam_drops_them(start):
    """Rows seen now and then: after flush, RowAdam's weights are within 2 % of dense Adam's total move (the
    approximation: the learning rate and bias corrections of a row's last update held over the steps it
    missed), where SparseAdam, which drops those steps, is off by far more."""
    def rows_at(step):  # rows 0-3 every step; 4-39 in turns, each every ~9th step from `start` on
        return [0, 1, 2, 3] + ([4 + (step * 7 + k) % 36 for k in range(4)] if step >= start else [])
    w0, (adam, row, sparse) = _three_optimizers(rows_at, start + 400, lambda s: 0.01 * (1 - s / 1000))
    moved = (adam - w0).abs().max()
    assert float((row - adam).abs().max()) < 0.02 * float(moved)
    assert float((sparse - adam).abs().max()) > 0.2 * float(moved)


def _tiny_model(sparse: bool):
    torch.manual_seed(1)
    emb = torch.nn.Embedding(V, E, sparse=sparse)
    lin = torch.nn.Linear(E, 2)
    return emb, lin


@pytest.mark.parametrize("max_norm", [1e-3, 1e3])  # clipping, and a norm within bounds
def test_clipping_sparse_gradients_equals_clipping_dense_ones(max_norm):
    ids = torch.tensor([[1, 5, 5, 9], [2, 9, 0, 7]])  # repeated rows: coalescing adds them
    grads = {}
    for sparse in (False, True):
        emb, lin = _tiny_model(sparse)
        lin(emb(ids)).square().sum().backward()
        params = [emb.weight, lin.weight, lin.bias]
        per_parameter = [param_grad_norm(p) for p in params]  # what TensorBoard runs log
        assert per_parameter == pytest.approx([float(p.grad.to_dense().norm()) for p in params], rel=1e-6)
        assert float(grad_norm(params)) == pytest.approx(float(clip_grad_norm(params, max_norm)), rel=1e-6)
        grads[sparse] = [p.grad.to_dense() for p in params]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads[sparse]]))
        assert float(norm) <= max_norm * (1 + 1e-5) or max_norm > 1
    for a, b in zip(grads[False], grads[True]):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-9)


class SparseSeen(Callback):
    def __init__(self):
        self.sparse = []

    def on_step_end(self, tr, loss, tokens):
        self.sparse.append(tr.model.token_embedding().weight.grad.is_sparse)


def test_a_run_with_lazy_embeddings_learns_with_sparse_gradients(tmp_path):
    seen = SparseSeen()
    summary = train(parse_config(tiny_config(tmp_path, epochs=15, lazy_embeddings=True)), callbacks=[seen])
    assert seen.sparse and all(seen.sparse)
    assert summary["validation"]["accuracy"] >= 0.9


@pytest.mark.parametrize("stop_at", [3, 8])  # mid-epoch (rows still owe missed steps), at an epoch boundary
def test_resume_with_lazy_embeddings_equals_uninterrupted(tmp_path, stop_at):
    raw = tiny_config(tmp_path / "a", epochs=3, schedule="linear", warmup_steps=2, ema_decay=0.9,
                      lazy_embeddings=True)
    raw["model"].update(embedding_dropout=0.3, token_dropout=0.1)
    train(parse_config(raw))
    reference = load_checkpoint(tmp_path / "a" / "run" / rundir.LAST)

    raw["output_dir"] = str(tmp_path / "b")
    with pytest.raises(TrainingInterrupted):
        train(parse_config(raw), callbacks=[InterruptAt(stop_at)])
    train(parse_config(raw), resume=True)
    resumed = load_checkpoint(tmp_path / "b" / rundir.LAST)
    for k in reference["model"]:
        assert torch.equal(resumed["model"][k], reference["model"][k]), k
    ref_rows, res_rows = (c["optimizer"]["sparse"]["state"][0] for c in (reference, resumed))
    for k in ("exp_avg", "exp_avg_sq", "last", "last_lr"):
        assert torch.equal(res_rows[k], ref_rows[k]), k
    assert res_rows["last"].dtype == torch.long


def test_nproc_is_refused_in_one_line(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tmp_path, lazy_embeddings=True)), encoding="utf-8")
    result = invoke("train", config, "--nproc", "2", "-q")
    assert result.exit_code == 2
    lines = [l for l in result.output.splitlines() if l.strip()]
    assert len(lines) == 1 and "train.lazy_embeddings: sparse gradients are not averaged" in lines[0], result.output
    assert not (tmp_path / "run").exists()


def test_step_with_a_closure_recomputes_the_loss_with_gradients():
    """torch's optimizer protocol: step(closure) calls it with gradients on and returns its loss."""
    emb = torch.nn.Embedding(V, E, sparse=True)
    opt = RowAdam(emb.parameters(), lr=0.1)
    ids = torch.tensor([1, 2, 2])
    before = emb.weight.detach().clone()

    def closure():
        opt.zero_grad()
        loss = emb(ids).square().sum()
        loss.backward()
        return loss

    with torch.no_grad():
        loss = opt.step(closure)
    assert float(loss.detach()) == pytest.approx(float(before[ids].square().sum()))
    assert not torch.equal(emb.weight[1:3], before[1:3]) and torch.equal(emb.weight[3:], before[3:])
