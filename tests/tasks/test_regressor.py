"""The regressor (issue 23): metrics against hand-computed values, the target scaled on train only, a batch
predicts what its sequences predict one by one, every command end to end on the toy table."""

from __future__ import annotations

import json
import math

import pytest
import torch

from conftest import ROOT, assert_user_error, invoke, shipped_config
from grutool.config_file import parse_config
from grutool.data.scaling import Standardizer
from grutool.families.regressor.metrics import RegressionMetrics
from grutool.predict import Predictor
from grutool.training.loop import train


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("regressor") / "run"
    train(parse_config(shipped_config("numeric_regression.yaml", out)), progress=False)
    return out


def test_metrics_against_hand_computed_values():
    m = RegressionMetrics((10.0, 2.0))  # z-scores -> units: z * 2 + 10
    m.update(torch.tensor([0.0, 1.0]), torch.tensor([0.5, 1.0]), loss=0.5)  # units: pred 10, 12; true 11, 12
    m.update(torch.tensor([-1.0]), torch.tensor([-0.5]), loss=2.0)          # pred 8; true 9
    out = m.compute()
    # errors -1, 0, -1; true 11, 12, 9 (mean 32/3; SS_tot = 1/9 + 16/9 + 25/9 = 42/9)
    assert out["n"] == 3
    assert out["mse"] == pytest.approx(2 / 3)
    assert out["rmse"] == pytest.approx(math.sqrt(2 / 3))
    assert out["mae"] == pytest.approx(2 / 3)
    assert out["r2"] == pytest.approx(1 - 2 / (42 / 9))
    assert out["loss"] == pytest.approx((0.5 * 2 + 2.0) / 3)
    assert out["scatter"] == {"true": [11.0, 12.0, 9.0], "predicted": [10.0, 12.0, 8.0]}


def test_r2_of_targets_far_from_zero_with_a_small_spread():
    # 1e6 ± 0.1 (a price in cents, a timestamp): summing raw squares cancelled SS_tot away and R² read 0
    gen = torch.Generator().manual_seed(0)
    true = 1e6 + 0.1 * torch.randn(200, generator=gen, dtype=torch.float64)
    pred = true + 0.01 * torch.randn(200, generator=gen, dtype=torch.float64)
    mean, std = float(true.mean()), float(true.std())
    m = RegressionMetrics((mean, std))
    m.update(((pred - mean) / std).float(), ((true - mean) / std).float())
    expected = 1 - float(((pred - true) ** 2).sum() / ((true - true.mean()) ** 2).sum())
    assert m.compute()["r2"] == pytest.approx(expected, abs=1e-3)


def test_perfect_and_constant_predictions():
    m = RegressionMetrics()
    m.update(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 2.0, 3.0]))
    assert m.compute()["r2"] == 1.0 and m.compute()["rmse"] == 0.0
    m = RegressionMetrics()
    m.update(torch.tensor([2.0, 2.0, 2.0]), torch.tensor([1.0, 2.0, 3.0]))  # the mean: R² 0
    assert m.compute()["r2"] == pytest.approx(0.0)


def test_target_is_scaled_on_train_only(run):
    from grutool.data.numeric import read_sequences

    cfg = parse_config(shipped_config("numeric_regression.yaml", run)).data
    seqs = read_sequences(cfg, str(ROOT / "data/numeric/train.csv"))
    y = torch.tensor([float(v) for v in seqs.labels], dtype=torch.float64)
    target = Standardizer.load(run / "target.json")
    assert target.mean[0] == pytest.approx(float(y.mean())) and target.std[0] == pytest.approx(float(y.std(unbiased=False)))


def test_train_eval_plot_infer_export(run, tmp_path):
    summary = json.loads((run / "summary.json").read_text())
    assert summary["monitor"] == "rmse"
    r = invoke("eval", run, "--split", "test", "--json", "--plot", tmp_path / "scatter.png")
    assert r.exit_code == 0, r.output
    metrics = json.loads(r.stdout)
    assert metrics["r2"] > 0.5 and metrics["rmse"] < 0.1 and (tmp_path / "scatter.png").stat().st_size > 0
    assert metrics["scatter"]["target"] == "freq"  # the table's target column: the picture's axes are named by it
    r = invoke("infer", run, "--file", ROOT / "data/numeric/test.csv", "--jsonl")
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(rows) == 45 and rows[0]["id"] == "s0" and 0.0 < rows[0]["prediction"] < 1.0
    r = invoke("export", run, "--format", "torchscript", "-o", tmp_path / "model.pt")
    assert r.exit_code == 0, r.output
    p = Predictor(run, "cpu")
    texts = p.task.read_inputs(p.cfg, str(ROOT / "data/numeric/test.csv"))
    exported = Predictor(run, "cpu", backend="torchscript", exported=tmp_path / "model.pt")
    for a, b in zip(p.predict(texts), exported.predict(texts)):
        assert a["prediction"] == pytest.approx(b["prediction"], abs=1e-5)


def test_eval_json_writes_the_data_s_targets_and_infer_the_model_s_predictions_exactly(run):
    # eval --json wrote the target 0.724 as 0.7240000003922312 (its float32 z-score turned back in float64);
    # infer rounded predictions to 6 decimals, which dropped digits of the model's float32 output (and would
    # write a target of 1e-7 as 0).
    import csv

    import numpy as np

    from grutool.data.batching import sorted_batches

    r = invoke("eval", run, "--split", "test", "--json")
    assert r.exit_code == 0, r.output
    true = json.loads(r.stdout)["scatter"]["true"]
    with open(ROOT / "data/numeric/test.csv", encoding="utf-8") as f:
        data = {float(row["freq"]) for row in csv.DictReader(f)}
    assert len(true) == 45 and set(true) <= data and 0.724 in true
    p = Predictor(run, "cpu")
    texts = p.task.read_inputs(p.cfg, str(ROOT / "data/numeric/test.csv"))
    written = np.array([r["prediction"] for r in p.predict(texts)])
    _, split = p.task.parse(p, texts)
    z = np.zeros(len(texts), dtype=np.float32)
    with torch.no_grad():
        for batch in sorted_batches(split, 64):
            z[batch.index] = p.task.infer_batch(p.model, batch).numpy()  # (B,) the model's float32 z-scores
    target = Standardizer.load(run / "target.json")
    assert (((written - target.mean[0]) / target.std[0]).astype(np.float32) == z).all()


def test_epoch_line_best_line_and_eval_read_alike_with_their_units(run, tmp_path):
    # The epoch line said `rmse 0.1970`, the best line `RMSE 0.197` (one figure, two spellings), eval `RMSE`,
    # `MSE 0.03041`, and nothing said that the loss is on z-scores while rmse is in the target's units.
    import re

    import yaml

    raw = shipped_config("numeric_regression.yaml", tmp_path / "run", train={"epochs": 1})
    (tmp_path / "x.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    r = invoke("train", tmp_path / "x.yaml")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    [note] = [line for line in lines if line.startswith("target 'freq': mean ")]
    assert note.endswith("; the loss is on its z-scores, rmse and mae in its units (mse in their square)")
    [epoch] = [line for line in lines if line.startswith("epoch 1/1: ")]
    rmse = re.search(r", rmse (\d\.\d{4}) \|", epoch)[1]
    [best] = [line for line in lines if line.startswith("best: ")]
    assert re.fullmatch(rf"best: epoch 1, rmse {rmse}, mae \d\.\d{{4}} \(both in the target's units\), "
                        rf"R² -?\d\.\d{{4}}", best), best
    r = invoke("eval", run, "--split", "test")
    assert r.exit_code == 0, r.output
    assert re.search(r": n=45; rmse \d\.\d{4}, mae \d\.\d{4} \(both in the target's units\), R² -?\d\.\d{4}; "
                     r"mse \d\.\d{4} \(squared units\)", r.stdout), r.stdout


def test_small_errors_keep_their_digits_in_both_lines():
    # in small units an error of 0.0001234 read `0.0000` in the epoch line (its 4 decimals)
    from grutool.families.regressor.render import summary_line
    from grutool.training.progress import epoch_line

    metrics = {"rmse": 0.0001234, "mae": 0.00009876, "r2": 0.5}
    assert summary_line(metrics).startswith("rmse 0.0001234, mae 9.876e-05 ")
    assert ", rmse 0.0001234 |" in epoch_line(1, 1, {"train_loss": 0.5, "val_loss": 0.4, "val_rmse": 0.0001234,
                                                      "tokens_per_s": 10.0}, "rmse")


def test_batch_predicts_as_one_by_one(run):
    p = Predictor(run, "cpu")
    texts = p.task.read_inputs(p.cfg, str(ROOT / "data/numeric/test.csv"))[:10]
    together = [r["prediction"] for r in p.predict(texts)]
    alone = [p.predict([t])[0]["prediction"] for t in texts]
    assert together == pytest.approx(alone, abs=1e-5)


@pytest.mark.parametrize("loss", ["mae", "huber"])
def test_losses_train(tmp_path, loss):
    raw = shipped_config("numeric_regression.yaml", tmp_path / loss, model={"loss": loss}, train={"epochs": 2})
    summary = train(parse_config(raw), progress=False)
    assert math.isfinite(summary["best"])


def test_a_target_that_is_not_a_number(tmp_path):
    (tmp_path / "x.csv").write_text("id,a,y\ns1,1.0,0.5\ns1,2.0,0.5\ns2,1.5,big\n", encoding="utf-8")
    (tmp_path / "x.yaml").write_text("task: regressor\ndata: {train: x.csv, channels: [a], label_column: y}\n"
                                     "train: {monitor: rmse, epochs: 1}\n", encoding="utf-8")
    assert_user_error(invoke("train", tmp_path / "x.yaml", "-o", tmp_path / "new"),
                      "x.csv:4: the target of sequence 's2' is 'big', not a number")
    assert not (tmp_path / "new").exists()
    # '1_0' is 10 to Python's float(), text to pandas (and so to the channels beside it): refused the same way
    (tmp_path / "x.csv").write_text("id,a,y\ns1,1.0,0.5\ns1,2.0,0.5\ns2,1.5,1_0\n", encoding="utf-8")
    assert_user_error(invoke("train", tmp_path / "x.yaml", "-o", tmp_path / "new"),
                      "x.csv:4: the target of sequence 's2' is '1_0', not a number")
    assert not (tmp_path / "new").exists()


def test_a_target_per_step(tmp_path):
    """N -> N: data.per_step reads a real target on every row (the clean signal under channel a)."""
    raw = shipped_config("numeric_regression.yaml", tmp_path / "run", train={"epochs": 6})
    raw["data"].update(label_column="clean", per_step=True)
    raw["model"].pop("pooling")
    summary = train(parse_config(raw), progress=False)
    assert summary["best"] < 0.3, summary  # validation RMSE, channel a's values lie in [-1.3, 1.3]
    p = Predictor(tmp_path / "run", "cpu")
    texts = p.task.read_inputs(p.cfg, str(ROOT / "data/numeric/test.csv"))[:6]
    rows = p.predict(texts)
    from grutool.data.numeric import parse_text

    assert [len(r["predictions"]) for r in rows] == [len(parse_text(t, 2)[1]) for t in texts]
    for r, t in zip(rows, texts):
        assert r["predictions"] == pytest.approx(p.predict([t])[0]["predictions"], abs=1e-5)  # batch = one by one
    # export parity counts real steps, as eval does, not the padding up to the longest sequence
    r = invoke("export", tmp_path / "run", "--format", "torchscript", "-o", tmp_path / "model.pt")
    assert r.exit_code == 0, r.output
    n = json.loads(invoke("eval", tmp_path / "run", "--split", "validation", "--json").stdout)["n"]
    parity = json.loads((tmp_path / "model.pt.json").read_text())["parity"]
    assert parity["total"] == n and f"agree {n}/{n}" in r.output
    m = RegressionMetrics()
    m.update(torch.tensor([[1.0, 2.0, 9.0]]), torch.tensor([[1.0, 3.0, -100.0]]))  # the last step is padding
    assert m.compute()["n"] == 2 and m.compute()["mse"] == pytest.approx(0.5)
    m.update(torch.tensor([[0.0, 0.0, 0.0]]), torch.tensor([[0.0, 0.0, 0.0]]))
    assert (m.compute()["n"], m.compute()["sequences"]) == (5, 2)
    # eval said `n=535` for the steps, where a numeric tagger says "45 sequences, 535 steps"
    shown = invoke("eval", tmp_path / "run", "--split", "test")
    test = json.loads(invoke("eval", tmp_path / "run", "--split", "test", "--json").stdout)
    assert f": {test['sequences']} sequences, {test['n']} steps; rmse" in shown.stdout, shown.stdout
    assert test["sequences"] == 45 and "sequences" not in RegressionMetrics().compute()


def test_a_target_per_step_from_a_ts_file(tmp_path):
    """A .ts case may end in one target per step, separated by ',' (grutool.data.tsfile), read with data.per_step."""
    from grutool.errors import UserError
    from grutool.families import get_task

    head = "@dimensions 1\n@equalLength false\n@targetLabel true\n@data\n"
    (tmp_path / "x.ts").write_text(head + "1,2,3:0.5,0.7,0.2\n4,5:1.5,-2\n", encoding="utf-8")
    raw = shipped_config("numeric_regression.yaml", tmp_path / "run")
    raw["data"] = {"train": str(tmp_path / "x.ts"), "per_step": True}
    raw["model"].pop("pooling")
    cfg = parse_config(raw)
    seqs, targets = get_task("regressor").read(cfg, str(tmp_path / "x.ts"))
    assert [t.tolist() for t in targets] == [[0.5, 0.7, 0.2], [1.5, -2.0]] and [len(x) for x in seqs.values] == [3, 2]
    (tmp_path / "x.ts").write_text(head + "1,2,3:0.5,up,0.2\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"x.ts:5: target 'up' \(step 2\) is not a number"):
        get_task("regressor").read(cfg, str(tmp_path / "x.ts"))


def test_a_target_that_changes_within_a_sequence_offers_the_regressor_s_per_step_setting(tmp_path):
    """Was: '... a sequence has one label (write it on every row, or per step with task tagger)': a tagger
    predicts classes; a regressor reads a number per step with data.per_step."""
    (tmp_path / "x.csv").write_text("id,a,y\ns1,1.0,0.5\ns1,2.0,0.7\ns2,1.5,0.1\n", encoding="utf-8")
    (tmp_path / "x.yaml").write_text("task: regressor\ndata: {train: x.csv, channels: [a], label_column: y}\n"
                                     "train: {monitor: rmse, epochs: 1}\n", encoding="utf-8")
    assert_user_error(invoke("train", tmp_path / "x.yaml", "-o", tmp_path / "new"),
                      "x.csv:3:3: sequence 's1' has label '0.7' here but '0.5'", "data.per_step: true")
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("target, axes", [("freq", ("true freq", "predicted freq")), (None, ("true", "predicted"))])
def test_the_scatter_s_axes_name_the_target_column(tmp_path, monkeypatch, target, axes):
    """They said `true` and `predicted` alone, whatever the regressor predicts; a .ts file's target has no name."""
    import grutool.scatter as scatter

    drawn = {}
    monkeypatch.setattr(scatter, "save_png", lambda fig, path, dpi: drawn.update(
        x=fig.axes[0].get_xlabel(), y=fig.axes[0].get_ylabel()))
    m = RegressionMetrics((10.0, 2.0), target)
    m.update(torch.tensor([0.0, 1.0]), torch.tensor([0.5, 1.0]))
    scatter.plot_scatter(m.compute(), tmp_path / "s.png")
    assert (drawn["x"], drawn["y"]) == axes
