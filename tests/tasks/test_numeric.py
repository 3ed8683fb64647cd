"""Numeric sequences (issue 23): the .ts reader on hand-written files, standardisation fitted on train only,
a batch predicts what its examples predict one by one (packing), long tables equal .ts files, every command
end to end on the toy data (train, eval, infer --file, export parity, serve), resume bit-exact."""

from __future__ import annotations

import json
import re
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import InterruptAt, ROOT, assert_user_error, invoke, shipped_config
from grutool import rundir
from grutool.checkpoint import load_checkpoint
from grutool.config_file import parse_config
from grutool.data.numeric import format_text, parse_text, read_sequences
from grutool.data.scaling import Standardizer
from grutool.data.tsfile import read_ts
from grutool.errors import TrainingInterrupted, UserError
from grutool.predict import Predictor
from grutool.training.loop import train

HEADER = "@problemName t\n@missing true\n@dimensions 2\n@equalLength false\n@classLabel true \"big dog\" cat\n@data\n"


def toy(out: Path, **sections) -> dict:
    return shipped_config("numeric.yaml", out, **sections)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("numeric") / "run"
    train(parse_config(toy(out)), progress=False)
    return out


# --- the .ts reader -------------------------------------------------------------------------------


def test_ts_reader_variable_length_missing_values_and_labels_with_spaces():
    text = "# comment\n" + HEADER + "1,2,3:4,5,6:big dog\n\n7,?:8,9:cat\n"
    f = read_ts("x.ts", text)
    assert [x.shape for x in f.values] == [(3, 2), (2, 2)]  # (T, C): steps x channels
    assert f.values[0][:, 1].tolist() == [4, 5, 6]
    assert math.isnan(f.values[1][1, 0]) and f.values[1][1, 1] == 9
    assert f.labels == ["big dog", "cat"] and f.lines == [8, 10] and f.ids == ["1", "2"]


@pytest.mark.parametrize("body, expect", [
    ("1,2:3,4:5,6:cat\n", "x.ts:8: 3 channels, but @dimensions is 2"),
    ("1,2:3,4,5:cat\n", "x.ts:8: channel 2 has 3 values but channel 1 has 2 (ragged steps)"),
    ("1,2:3:cat\n", "x.ts:8: channel 2 has 1 value but channel 1 has 2 (ragged steps)"),  # was `1 values`
    ("1,2:3,x:cat\n", "x.ts:8: channel 2 value 2 is not a number ('x')"),
    # Python's float() reads these as 10 and 12; pandas, and so a table's channels, do not
    ("1,2:3,1_0:cat\n", "x.ts:8: channel 2 value 2 is not a number ('1_0')"),
    ("1,\u0661\u0662:3,4:cat\n", "x.ts:8: channel 1 value 2 is not a number ('\u0661\u0662')"),
    ("1,2:3,\uff11\uff12:cat\n", "x.ts:8: channel 2 value 2 is not a number ('\uff11\uff12')"),
    ("1,2:3,4:dog\n", "x.ts:8: label 'dog' is not among @classLabel's"),
    (":3,4:cat\n", "x.ts:8: channel 1 is empty (an empty sequence)"),
    ("(0,1),(1,2):(0,3),(1,4):cat\n", "x.ts:8: channel 1 holds timestamped values ('(0,1),(1,2)'), which are not read"),
    ("1,2:3,4\n", "x.ts:8: 2 channels and no label after them (@dimensions is 2)"),  # a case cut short
])
def test_ts_reader_errors_name_file_and_line(body, expect):
    with pytest.raises(UserError) as e:
        read_ts("x.ts", "\n" + HEADER + body)
    assert str(e.value).startswith(expect), str(e.value)


def test_ts_header_keys_univariate_and_tabs():
    with pytest.raises(UserError, match=r"^x.ts:2: @univariate true, but @dimensions is 2 \(line 1\); fix the header"):
        read_ts("x.ts", "@dimensions 2\n@univariate true\n@classLabel true a b\n@data\n1,2:3,4:a\n")
    with pytest.raises(UserError, match=r"^x.ts:4: 2 channels, but @dimensions is 1 \(line 1\); give every case 1 channel or"):
        read_ts("x.ts", "@univariate true\n@classLabel true a b\n@data\n1,2:3,4:a\n")
    # a tab between a key and its value reads as a space: the labels are declared, never read as a channel
    f = read_ts("x.ts", "@univariate\ttrue\n@classLabel\ttrue\ta b\n@data\n1,2:a\n")
    assert f.header.class_labels == ["a", "b"] and f.labels == ["a"] and f.values[0].shape == (2, 1)


def test_ts_header_mistakes_are_named_with_their_fix():
    # A typo of @data said only "data before the @data line"; a label the header never announced said
    # "3 channels, but @dimensions is 2"; a file without cases had no fix.
    with pytest.raises(UserError, match=r"^x.ts:4: data before the @data line \(line 3: @dat, meant as @data\?\)"):
        read_ts("x.ts", "@dimensions 2\n@classLabel true a b\n@dat\n1,2:3,4:a\n")
    with pytest.raises(UserError, match=r"^x.ts:3: 3 channels, but @dimensions is 2 \(line 1\); a label after the last "
                                        r"':' needs @classLabel true \(or @targetLabel true\) in the header"):
        read_ts("x.ts", "@dimensions 2\n@data\n1,2:3,4:a\n")
    with pytest.raises(UserError, match=r"^x.ts: no cases after @data; write one case a line after it"):
        read_ts("x.ts", "@dimensions 2\n@classLabel true a b\n@data\n")


def test_ts_case_without_its_label():
    # without @dimensions the first case says how many channels a case has
    no_dims = HEADER.replace("@dimensions 2\n", "")
    with pytest.raises(UserError, match=r"^x.ts:7: 2 channels and no label after them \(the case on line 6 "
                                        r"has 2\), but the header declares @classLabel true"):
        read_ts("x.ts", no_dims + "1,2:3,4:cat\n5,6:7,8\n")
    target = HEADER.replace('@classLabel true "big dog" cat', "@targetLabel true")
    with pytest.raises(UserError, match=r"^x.ts:7: 2 channels and no label .*@targetLabel true"):
        read_ts("x.ts", target + "1,2:3,4\n")
    # infer reads cases with or without their labels: a case's channels are never taken for its label
    f = read_ts("x.ts", HEADER + "1,2:3,4\n5,6:7,8:cat\n", need_labels=False)
    assert [x.tolist() for x in f.values] == [[[1, 3], [2, 4]], [[5, 7], [6, 8]]] and f.labels is None


def test_ts_header_disagreeing_with_data():
    equal = HEADER.replace("@equalLength false", "@equalLength true")
    with pytest.raises(UserError, match=r"x.ts:8: 3 steps, but the case on line 7 has 2 .*@equalLength true"):
        read_ts("x.ts", equal + "1,2:3,4:cat\n1,2,3:4,5,6:cat\n")
    no_missing = HEADER.replace("@missing true", "@missing false")
    with pytest.raises(UserError, match=r"x.ts:7: a missing value \('\?'\), but the header declares @missing false"):
        read_ts("x.ts", no_missing + "1,?:3,4:cat\n")


def test_missing_values_follow_data_missing(tmp_path):
    path = tmp_path / "m.ts"
    path.write_text(HEADER + "1,?,3:4,5,6:cat\n", encoding="utf-8")
    cfg = parse_config(toy(tmp_path / "r")).data
    with pytest.raises(UserError, match=r"m.ts:7: a missing value in channel c1 at step 2 .*set data.missing"):
        read_sequences(cfg, str(path))
    filled = read_sequences(cfg.model_copy(update={"missing": "interpolate"}), str(path)).values[0]
    assert filled[:, 0].tolist() == [1, 2, 3]
    kept = read_sequences(cfg.model_copy(update={"missing": "mask"}), str(path)).values[0]
    assert math.isnan(kept[1, 0])


def test_text_form_round_trips():
    x = np.array([[1.5, -2.25], [3.0, float("nan")], [0.1, 7.0]], dtype=np.float32)  # (T=3, C=2)
    seq_id, y = parse_text(format_text("a7", x), 2)
    assert seq_id == "a7" and np.array_equal(np.isnan(y), np.isnan(x)) and np.allclose(np.nan_to_num(y), np.nan_to_num(x))
    _, z = parse_text("[[1.5, 3, 0.1], [-2.25, null, 7]]", 2)  # JSON: channels x steps
    assert np.array_equal(np.nan_to_num(z), np.nan_to_num(x))
    with pytest.raises(UserError, match="3 channel"):
        parse_text("1:2:3", 2)


# --- scaling fitted on train only ------------------------------------------------------------------


def test_scaler_is_fitted_on_train_only(tmp_path, run):
    """The saved scaler is train's statistics; changing validation and test leaves it as it was."""
    train_values = np.concatenate(read_sequences(parse_config(toy(tmp_path)).data, str(ROOT / "data/numeric/train.ts")).values)
    saved = Standardizer.load(run / "scaler.json")
    assert np.allclose(saved.mean, train_values.mean(axis=0), atol=1e-5)
    assert np.allclose(saved.std, train_values.std(axis=0), atol=1e-5)
    raw = toy(tmp_path / "other", train={"epochs": 1})
    raw["data"]["validation"] = raw["data"]["test"] = str(ROOT / "data/numeric/train.ts")
    train(parse_config(raw), progress=False)
    assert Standardizer.load(tmp_path / "other" / "scaler.json") == saved


def test_validation_slices_are_disjoint_and_stratified(tmp_path):
    cfg = parse_config(toy(tmp_path)).data
    path = str(ROOT / "data/numeric/train.ts")
    a, b = read_sequences(cfg, path + "[:80%]"), read_sequences(cfg, path + "[80%:]")
    assert not set(a.ids) & set(b.ids) and len(a) + len(b) == 150
    assert sorted(set(b.labels)) == ["ramp up", "sine wave", "square wave"]
    assert {b.labels.count(c) for c in set(b.labels)} == {10}  # 20% of each class's 50


def test_split_seed_picks_which_sequences_validate(tmp_path):
    """data.split_seed is the numeric families' own setting: another seed validates other sequences, still
    disjoint from training and 10 of each class; the same seed gives the same split every time."""
    path = str(ROOT / "data/numeric/train.ts")
    seeds = {}
    for seed in (13, 14):
        cfg = parse_config(toy(tmp_path, data={"split_seed": seed})).data
        a, b = read_sequences(cfg, path + "[:80%]"), read_sequences(cfg, path + "[80%:]")
        assert not set(a.ids) & set(b.ids) and {b.labels.count(c) for c in set(b.labels)} == {10}
        seeds[seed] = set(b.ids)
        assert set(read_sequences(cfg, path + "[80%:]").ids) == seeds[seed]
    assert seeds[13] != seeds[14]


@pytest.mark.parametrize("config, sets, expect", [
    ("sst2.yaml", {"model": {"input_noise": 0.1}}, "model.input_noise: noise is added to numeric sequences"),
    ("sst2.yaml", {"data": {"split_seed": 3}}, "data.split_seed: picks which sequences a sliced numeric file"),
    ("tagging.yaml", {"model": {"input_noise": 0.1}}, "model.input_noise: noise is added to numeric sequences"),
    ("etth1.yaml", {"model": {"input_noise": 0.1}}, "model.input_noise: only for task"),
    ("sst2.yaml", {"model": {"input_offset_noise": 0.1}}, "model.input_offset_noise: an offset is added to numeric"),
    ("etth1.yaml", {"model": {"input_offset_noise": 0.1}}, "model.input_offset_noise: only for task"),
    ("sst2.yaml", {"model": {"input_deltas": True}}, "model.input_deltas: the change of each numeric channel"),
    ("etth1.yaml", {"model": {"input_deltas": True}}, "model.input_deltas: only for task"),
    ("numeric_regression.yaml", {"train": {"label_smoothing": 0.1}},
     "train.label_smoothing: only for task classifier or tagger or joint or seq2seq (task is regressor"),
    ("tagging.yaml", {"train": {"label_smoothing": 0.1}}, "train.label_smoothing: a CRF's loss scores whole tag paths"),
    ("numeric_regression.yaml", {"data": {"tokenizer": "char"}}, "data.tokenizer: for text; numeric sequences"),
    ("numeric_regression.yaml", {"data": {"scheme": "iob2"}}, "data.scheme: task regressor does not read it"),
    ("numeric.yaml", {"data": {"min_freq": 2}}, "data.min_freq: for text; numeric sequences have no tokens"),
    ("numeric.yaml", {"data": {"lowercase": False}}, "data.lowercase: for text; numeric sequences have no tokens"),
    ("numeric.yaml", {"train": {"lazy_embeddings": True}}, "train.lazy_embeddings: for text; numeric sequences"),
    ("numeric_regression.yaml", {"train": {"lazy_embeddings": True}}, "train.lazy_embeddings: for text; numeric"),
    ("numeric.yaml", {"model": {"char_hidden_size": 8}}, "model.char_hidden_size: for text; numeric sequences"),
    ("numeric.yaml", {"data": {"scheme": "iob2"}}, "data.scheme: only for task tagger or joint"),
    # a text config given channels: the text setting it rightly keeps is named, and so is what made it numeric
    ("tagging.yaml", {"data": {"channels": ["a"]}}, "model.token_dropout: for text; numeric sequences have no tokens "
     "(data.channels is set, so this config reads them): remove it, or remove data.channels to read text"),
    ("sst2.yaml", {"data": {"format": "ts"}}, "(data.format is ts, so this config reads them): remove it, or change "
     "data.format to read text"),
])
def test_numeric_settings_on_text_are_refused(tmp_path, config, sets, expect):
    with pytest.raises(UserError, match=re.escape(expect)):
        parse_config(shipped_config(config, tmp_path / "run", **sets))


def test_input_noise_only_while_training():
    """model.input_noise perturbs the standardised values in train mode, with the given spread, and never in
    eval mode (evaluation, inference and export see the model as without it)."""
    from grutool.modules.numeric import NumericEmbedder

    torch.manual_seed(0)
    plain, noisy = NumericEmbedder(3, 5), NumericEmbedder(3, 5, noise=0.5)
    noisy.load_state_dict(plain.state_dict())
    x = torch.randn(4, 7, 3)  # (B, T, C)
    noisy.eval()
    assert torch.equal(noisy(x), plain.eval()(x))
    noisy.train()
    seen = []
    noisy.projection.register_forward_hook(lambda mod, args, out: seen.append(args[0]))
    noisy(x)
    delta = seen[0] - x  # the noise the projection read
    assert 0.4 < float(delta.std()) < 0.6 and abs(float(delta.mean())) < 0.1
    assert not torch.equal(noisy(x), noisy(x))  # fresh noise each call


def test_input_offset_noise_is_one_shift_per_sequence_and_channel_while_training():
    """model.input_offset_noise adds, in train mode only, one Gaussian value per sequence and channel to every step
    of it: constant along time, different between sequences and channels, of the given spread."""
    from grutool.modules.numeric import NumericEmbedder

    torch.manual_seed(0)
    plain, shifted = NumericEmbedder(3, 5), NumericEmbedder(3, 5, offset_noise=0.5)
    shifted.load_state_dict(plain.state_dict())
    x = torch.randn(400, 6, 3)  # (B, T, C)
    assert torch.equal(shifted.eval()(x), plain.eval()(x))
    seen = []
    shifted.train().projection.register_forward_hook(lambda mod, args, out: seen.append(args[0]))
    shifted(x)
    delta = seen[0] - x  # (B, T, C): what was added
    torch.testing.assert_close(delta, delta[:, :1].expand_as(delta))  # the same at every step
    per_sequence = delta[:, 0]  # (B, C)
    assert 0.45 < float(per_sequence.std()) < 0.55 and abs(float(per_sequence.mean())) < 0.06
    assert not torch.equal(per_sequence[:, 0], per_sequence[:, 1])  # each channel its own


# --- the model ------------------------------------------------------------------------------------


def test_batch_predicts_as_one_by_one(run):
    """Packing: each sequence in a padded batch of mixed lengths gets the logits it gets alone."""
    from grutool.data.batching import collate

    p = Predictor(run, "cpu")
    split = p.task.encode_split(p.cfg, p.run, p.cfg.data.test, "test")
    index = list(range(12))
    batch = collate(split, index)
    assert batch.ids.dtype == torch.float32 and batch.ids.shape[2] == 2  # (B, T, C)
    assert len(set(batch.lengths.tolist())) > 1 and batch.lengths.device.type == "cpu"
    with torch.no_grad():
        together, _ = p.model(batch.ids, batch.lengths)
        alone = torch.cat([p.model(split.ids[i][None], torch.tensor([len(split.ids[i])]))[0] for i in index])
    assert torch.allclose(together, alone, atol=1e-5)
    assert (batch.ids[batch.lengths.argmin(), int(batch.lengths.min()):] == 0).all()  # padded with 0.0


def test_missing_mask_front_end(tmp_path):
    from grutool.modules.numeric import NumericEmbedder

    front = NumericEmbedder(2, 4, mask=True)
    x = torch.tensor([[[1.0, float("nan")], [0.5, 2.0]]])  # (1, 2, 2)
    out = front(x)
    assert out.shape == (1, 2, 4) and torch.isfinite(out).all()
    manual = front.projection(torch.tensor([[[1.0, 0.0, 1.0, 0.0], [0.5, 2.0, 1.0, 1.0]]]))
    assert torch.allclose(out, manual)


def test_input_deltas_are_each_channel_s_change_since_the_step_before():
    from grutool.modules.numeric import NumericEmbedder

    front = NumericEmbedder(2, 4, mask=True, deltas=True)
    x = torch.tensor([[[1.0, float("nan")], [0.5, 2.0], [0.5, 3.0]]])  # (1, 3, 2); missing reads as 0 under mask
    manual = torch.tensor([[[1.0, 0.0, 1.0, 0.0, 0.0, 0.0],
                            [0.5, 2.0, 1.0, 1.0, -0.5, 2.0],
                            [0.5, 3.0, 1.0, 1.0, 0.0, 1.0]]])  # values, observed flags, deltas
    assert torch.allclose(front(x), front.projection(manual))
    plain = NumericEmbedder(2, 4, deltas=True)
    assert plain.projection.in_features == 4
    y = torch.tensor([[[1.0, 2.0], [4.0, 0.0]]])
    assert torch.allclose(plain(y), plain.projection(torch.tensor([[[1.0, 2.0, 0.0, 0.0], [4.0, 0.0, 3.0, -2.0]]])))


def test_input_deltas_train_pack_and_export(tmp_path):
    """With deltas, padding after a sequence still changes nothing it predicts (a delta looks back only), and
    the exported graph computes them as the model does."""
    pytest.importorskip("onnxruntime")
    from grutool.data.batching import collate

    train(parse_config(toy(tmp_path / "run", model={"input_deltas": True}, train={"epochs": 2})), progress=False)
    p = Predictor(tmp_path / "run", "cpu")
    assert p.model.projection.in_features == 4  # 2 channels + their 2 deltas
    split = p.task.encode_split(p.cfg, p.run, p.cfg.data.test, "test")
    index = list(range(12))
    batch = collate(split, index)
    assert len(set(batch.lengths.tolist())) > 1
    with torch.no_grad():
        together, _ = p.model(batch.ids, batch.lengths)
        alone = torch.cat([p.model(split.ids[i][None], torch.tensor([len(split.ids[i])]))[0] for i in index])
    assert torch.allclose(together, alone, atol=1e-5)
    r = invoke("export", tmp_path / "run", "--format", "onnx")
    assert r.exit_code == 0, r.output
    texts = p.task.read_inputs(p.cfg, str(ROOT / "data/numeric/test.ts"))
    got = Predictor(tmp_path / "run", "cpu", backend="onnx").predict(texts)
    want = p.predict(texts)
    assert [g["label"] for g in got] == [w["label"] for w in want]
    assert max(abs(g["probs"][k] - w["probs"][k]) for g, w in zip(got, want) for k in w["probs"]) < 1e-4


# --- commands end to end --------------------------------------------------------------------------


def test_an_onnx_export_read_by_its_metadata_alone_answers_as_infer(run, tmp_path):
    """The export's JSON described token ids (tokenizer, <pad>/<unk>) and not the scaling: a user feeding raw values
    got other probabilities than `infer`. Its `preprocessing` now says how to make the graph's input, and doing only
    what it says (numpy, onnxruntime) gives infer's probabilities."""
    ort = pytest.importorskip("onnxruntime")
    out = tmp_path / "model.onnx"
    assert invoke("export", run, "--format", "onnx", "-o", out).exit_code == 0
    meta = json.loads(Path(f"{out}.json").read_text())
    pre = meta["preprocessing"]
    assert "specials" not in meta and "tokenizer" not in pre and "(x - mean) / std" in pre["ids"]
    assert "data.missing: error" in pre["missing"]
    typed = "0.1,0.9,1.4,0.3,-0.5:3.2,2.8,3.1,3.3,2.9"  # channel c1's steps : channel c2's
    want = Predictor(run, "cpu").predict([typed])[0]["probs"]
    scaler = meta["vocabularies"]["scaler"]
    raw = np.array([[float(v) for v in c.split(",")] for c in typed.split(":")], dtype=np.float32).T  # (T, C)
    x = ((raw - np.array(scaler["mean"], dtype=np.float32)) / np.array(scaler["std"], dtype=np.float32))[None]
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    logits = session.run(["logits"], {"ids": x, "lengths": np.array([raw.shape[0]], dtype=np.int64)})[0][0]
    probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    got = dict(zip(meta["vocabularies"]["labels"], probs.tolist()))
    assert max(abs(got[k] - want[k]) for k in want) < 1e-4, (got, want)


def test_train_eval_infer(run, tmp_path):
    r = invoke("eval", run, "--split", "test", "--plot", tmp_path / "cm.png")
    assert r.exit_code == 0, r.output
    assert "accuracy" in r.output and (tmp_path / "cm.png").stat().st_size > 0
    r = invoke("infer", run, "--file", ROOT / "data/numeric/test.ts", "--jsonl")
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(rows) == 45 and [row["id"] for row in rows[:3]] == ["1", "2", "3"]
    assert rows[0]["label"] in ("sine wave", "square wave", "ramp up")
    metrics = json.loads((run / "summary.json").read_text())
    assert metrics["monitor"] == "accuracy" and metrics["best"] > 0.8, metrics


def test_long_table_equals_ts(run, tmp_path):
    """The same sequences as a long csv (rows shuffled, ordered by data.time_column) train the same model."""
    raw = toy(tmp_path / "csv")
    for split in ("train", "validation", "test"):
        raw["data"][split] = str(ROOT / f"data/numeric/{split}.csv")
    raw["data"].update(channels=["a", "b"], label_column="shape", time_column="step")
    train(parse_config(raw), progress=False)
    a = load_checkpoint(run / rundir.BEST)["model"]
    b = load_checkpoint(tmp_path / "csv" / rundir.BEST)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    p = Predictor(tmp_path / "csv", "cpu")
    rows = p.predict(p.task.read_inputs(p.cfg, str(ROOT / "data/numeric/test.csv"))[:2])
    assert [r["id"] for r in rows] == ["s0", "s1"]


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_export_parity(run, tmp_path, fmt):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    out = tmp_path / f"model.{'pt' if fmt == 'torchscript' else 'onnx'}"
    r = invoke("export", run, "--format", fmt, "-o", out)
    assert r.exit_code == 0, r.output
    meta = json.loads(Path(f"{out}.json").read_text())
    assert meta["parity"]["ok"] and meta["vocabularies"]["scaler"]["names"] == ["c1", "c2"]
    texts = Predictor(run, "cpu").task.read_inputs(Predictor(run, "cpu").cfg, str(ROOT / "data/numeric/test.ts"))
    want = [r["label"] for r in Predictor(run, "cpu").predict(texts)]
    got = [r["label"] for r in Predictor(run, "cpu", backend=fmt, exported=out).predict(texts)]
    assert got == want


def test_resume_is_bit_exact(tmp_path):
    raw = toy(tmp_path / "a", train={"epochs": 3})
    raw["model"].update(embedding_dropout=0.2, head_dropout=0.2)  # dropout draws from the RNG: resume restores it
    train(parse_config(raw), progress=False)
    reference = load_checkpoint(tmp_path / "a" / rundir.LAST)["model"]
    raw["output_dir"] = str(tmp_path / "b")
    with pytest.raises(TrainingInterrupted):
        train(parse_config(raw), callbacks=[InterruptAt(13)], progress=False)
    train(parse_config(raw), resume=True, progress=False)
    resumed = load_checkpoint(tmp_path / "b" / rundir.LAST)["model"]
    assert all(torch.equal(resumed[k], reference[k]) for k in reference)


def test_a_numeric_run_calls_its_optimizer_steps_updates_as_its_speed_counts_time_steps(tmp_path):
    """The epoch lines' `steps/s` counts a numeric sequence's time steps; the closing line said `20 steps` of the
    optimizer beside them. Text keeps `steps` (its speed is tok/s); numbers and a forecaster's rows say `updates`."""
    import yaml

    from grutool.families import get_task

    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(toy(tmp_path / "run", train={"epochs": 2})), encoding="utf-8")
    r = invoke("train", cfg)
    assert r.exit_code == 0, r.output
    assert re.search(r"epoch 2/2: .* [\d,]+ steps/s", r.output), r.output
    [done] = [line for line in r.stdout.splitlines() if line.startswith("done:")]
    assert re.match(r"done: 2 epoch\(s\), [\d,]+ updates, ", done) and "steps" not in done, done
    r = invoke("train", cfg, "--resume")
    assert r.exit_code == 0 and re.search(r"complete \(2 of 2 epochs, [\d,]+ updates\)", r.output), r.output
    r = invoke("train", cfg, "--overwrite", "--set", "train.max_steps=3")
    [done] = [line for line in r.stdout.splitlines() if line.startswith("done:")]
    assert done.startswith("done: 3 updates (train.max_steps), epoch 1 stopped at 3 of "), done
    configs = {name: parse_config(shipped_config(name + ".yaml", tmp_path))
               for name in ("sentiment", "tagging", "numeric", "numeric_regression", "sines")}
    words = {name: get_task(c.task).update_name(c) for name, c in configs.items()}
    assert words == {"sentiment": "step", "tagging": "step", "numeric": "update", "numeric_regression": "update",
                     "sines": "update"}, words


def test_a_numeric_run_s_resume_and_divergence_lines_say_update_as_its_other_lines_do(tmp_path):
    # `resuming at epoch 1, step 3` and `training diverged at epoch 1, step 2` beside `update 3/40` and `steps/s`
    import yaml

    cfg = tmp_path / "c.yaml"
    raw = toy(tmp_path / "run", train={"epochs": 1})
    cfg.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(TrainingInterrupted):
        train(parse_config(raw), callbacks=[InterruptAt(3)], progress=False)
    r = invoke("train", cfg, "--resume")
    assert r.exit_code == 0 and "resuming at epoch 1, update 3" in r.output, r.output
    raw = toy(tmp_path / "diverged", train={"lr": 1e38, "clip_grad_norm": None})
    cfg.write_text(yaml.safe_dump(raw), encoding="utf-8")
    r = invoke("train", cfg)
    assert r.exit_code != 0 and "training diverged at epoch 1, update 2:" in r.output, r.output


def test_bad_data_exits_2_with_one_line(tmp_path):
    bad = tmp_path / "bad.ts"
    bad.write_text(HEADER.replace('"big dog" cat', "a b") + "1,2:3,4:a\n1,2,3:4,5:b\n", encoding="utf-8")
    raw = toy(tmp_path / "r")
    raw["data"]["train"] = str(bad)
    cfg = tmp_path / "c.yaml"
    import yaml

    cfg.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert_user_error(invoke("train", cfg), f"{bad}:8: channel 2 has 2 values but channel 1 has 3")
    assert not (tmp_path / "r").exists()


def test_serve_takes_channels_by_steps(run):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from grutool.serve import build_app

    p = Predictor(run, "cpu")
    x = [[0.1, 0.5, 0.9, 1.0, 0.6, 0.1], [3.4, 3.2, 3.0, 2.8, 2.6, 2.5]]  # 2 channels x 6 steps
    line = ":".join(",".join(str(v) for v in channel) for channel in x)
    with TestClient(build_app(p)) as client:
        # a client learns the channels a sequence holds, in order (it could not: no count, no names)
        assert client.get("/info").json()["data"] == {"numeric": True, "missing": "error", "columns": ["c1", "c2"]}
        r = client.post("/predict", json={"texts": [x, line]})
        assert r.status_code == 200, r.text
        got = r.json()["results"]
        assert [g["label"] for g in got] == [w["label"] for w in p.predict([line, line])]
        # an input the model refuses: 400, in either form (README's one rule)
        r = client.post("/predict", json={"texts": [[[0.1, None], [3.4, 3.2]]]})
        assert r.status_code == 400 and "trained with data.missing: error; fill the value" in r.json()["error"]
        r = client.post("/predict", json={"texts": [[[0.1, 0.2]]]})
        assert r.status_code == 400 and "1 channel, but the model reads 2" in r.json()["error"]
        for text in ("0.1,zz:3,4", "0.1,0.2:3", [[0.1, 0.2], [3.4]]):
            r = client.post("/predict", json={"texts": [text]})
            assert r.status_code == 400 and set(r.json()) == {"error"}, r.text
        # 1e400 overflows to inf: not a finite number, not a missing value
        r = client.post("/predict", content=b'{"texts": [[[0.1, 1e400], [3.4, 1]]]}',
                        headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["error"].startswith(
            "texts[0]: channel 1 value 2 is not a finite number"), r.text
        # a refused entry is named as the body's own: texts[2], 0-based as JSON (it said `input 3`, infer's word)
        for bad in ([[0.1, 0.2]], "0.1,zz:3,4", "0.1,?:3,4"):
            r = client.post("/predict", json={"texts": [line, x, bad]})
            assert r.status_code == 400 and r.json()["error"].startswith("texts[2]: "), r.text
        # a misshapen body: 422, saying what a sequence is in this run
        # (true and "1" were read as 1.0, false as 0.0: a JSON boolean or string is no channel's value)
        for entry in ([[0.1, "x"], [3.4, 1]], [0.1, 0.2], 5, [[0.1, True], [3.4, 1]], [[0.1, "1"], [3.4, 1]],
                      [[False, False], [False, False]]):
            r = client.post("/predict", json={"texts": [line, entry]})
            assert r.status_code == 422, r.text
            assert r.json()["error"].startswith("texts[1]: a sequence is channels x steps: a JSON array of 2 lists"), r.text
            assert "'a,b:c,d'" in r.json()["error"]


def test_serve_numbers_each_requests_sequences_in_that_request_whatever_it_shares_a_call_with(run):
    # Requests waiting together are answered in one model call; a sequence without an id was numbered by its place
    # in that call, so a client's only sequence came back as "id": "3", by the load of the moment.
    pytest.importorskip("fastapi")
    import asyncio

    from grutool.serve import Limits, build_app

    line = "0.1,0.5,0.9,1.0:3.4,3.2,3.0,2.8"

    async def requests(app) -> list:
        import httpx

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            answers = await asyncio.gather(*(client.post("/predict", json={"texts": [line] * n}) for n in (1, 2, 1, 3)))
        return [[r["id"] for r in a.json()["results"]] for a in answers]

    app = build_app(Predictor(run, "cpu"), Limits(window_ms=200))
    from fastapi.testclient import TestClient

    with TestClient(app):  # the app's startup and shutdown around the requests
        ids = asyncio.run(requests(app))
    assert ids == [["1"], ["1", "2"], ["1"], ["1", "2", "3"]], ids


def test_readme_serve_example_is_what_the_shipped_run_answers(run):
    """README's numeric `serve` example: the request, sent to the run of configs/numeric.yaml (the `run` fixture
    trains it unchanged), gets the answer README shows, and that answer is the case's true label."""
    pytest.importorskip("fastapi")
    import re

    from fastapi.testclient import TestClient

    from grutool.serve import build_app

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Numeric sequences"):]
    block = section[section.index("```bash\ncurl"):]
    block = block[:block.index("\n```\n")]
    request = json.loads(re.search(r"--json '(.*?)'", block, re.S).group(1))
    shown = json.loads(re.search(r"^# (\{.*\})$", block, re.M).group(1))
    with TestClient(build_app(Predictor(run, "cpu"))) as client:
        r = client.post("/predict", json=request)
    assert r.status_code == 200, r.text
    got, want = r.json()["results"][0], shown["results"][0]
    assert got["label"] == want["label"] and got["probs"] == pytest.approx(want["probs"], abs=1e-3), (got, want)
    first = next(line for line in (ROOT / "data/numeric/test.ts").read_text().splitlines()
                 if line.strip() and not line.startswith(("@", "#")))
    *channels, label = first.split(":")
    assert request["texts"][0] == [[float(v) for v in c.split(",")] for c in channels] and want["label"] == label


def test_missing_mask_trains_and_exports(tmp_path):
    """data.missing: mask on a .ts file with '?' values: the observed flags reach the model, and the exported
    graph (which sees NaN and replaces it itself) matches the model."""
    pytest.importorskip("onnxruntime")
    for split in ("train", "validation"):
        out = []
        for k, line in enumerate((ROOT / f"data/numeric/{split}.ts").read_text().split("\n")):
            if line and not line.startswith(("@", "#")) and k % 3 == 0:
                *channels, label = line.split(":")  # a missing second step in every channel of every third case
                line = ":".join([c.replace(",", ",?,", 1) for c in channels] + [label])
            out.append(line.replace("@missing false", "@missing true"))
        (tmp_path / f"{split}.ts").write_text("\n".join(out))
    raw = toy(tmp_path / "run", train={"epochs": 1})
    raw["data"].update(train=str(tmp_path / "train.ts"), validation=str(tmp_path / "validation.ts"), missing="mask")
    train(parse_config(raw), progress=False)
    p = Predictor(tmp_path / "run", "cpu")
    assert p.model.projection.in_features == 4  # 2 channels + 2 observed flags
    r = invoke("export", tmp_path / "run", "--format", "onnx")
    assert r.exit_code == 0, r.output
    texts = p.task.read_inputs(p.cfg, str(tmp_path / "validation.ts"))
    assert any("?" in t for t in texts)
    got = Predictor(tmp_path / "run", "cpu", backend="onnx").predict(texts)
    assert [g["label"] for g in got] == [w["label"] for w in p.predict(texts)]


def test_tagger_labels_every_step(tmp_path):
    """N -> N: task tagger on a long table with a label per row (rising/falling), through the same front-end."""
    raw = {"task": "tagger", "output_dir": str(tmp_path / "run"),
           "data": {**{s: str(ROOT / f"data/numeric/{s}.csv") for s in ("train", "validation", "test")},
                    "channels": ["a", "b"], "time_column": "step", "label_column": "phase"},
           "model": {"embedding_dim": 16, "hidden_size": 16},
           "train": {"batch_size": 16, "epochs": 6, "lr": 0.01, "patience": None, "monitor": "token_accuracy"}}
    summary = train(parse_config(raw), progress=False)
    assert summary["best"] > 0.85, summary
    p = Predictor(tmp_path / "run", "cpu")
    texts = p.task.read_inputs(p.cfg, str(ROOT / "data/numeric/test.csv"))[:8]
    rows = p.predict(texts)
    lengths = [len(parse_text(t, 2)[1]) for t in texts]
    assert [len(r["tags"]) for r in rows] == lengths and rows[0]["id"] == "s0"
    assert [r["tags"] for r in rows] == [p.predict([t])[0]["tags"] for t in texts]  # batch = one by one
    r = invoke("export", tmp_path / "run", "--format", "torchscript")
    assert r.exit_code == 0, r.output
    tokens = json.loads(invoke("eval", tmp_path / "run", "--split", "validation", "--json").stdout)["tokens"]
    assert f"agree {tokens}/{tokens}" in r.output  # real steps only, not the padding up to the longest


def test_a_numeric_tagger_s_eval_and_infer_read_in_sequences_and_steps(tmp_path):
    """The README walk-through: a numeric tagger's eval said `45 sentences, 535 tokens` and each infer line ended
    in an empty column (a text tagger's spans); numbers are sequences of steps, and a plain scheme has no spans."""
    raw = {"task": "tagger", "output_dir": str(tmp_path / "run"),
           "data": {**{s: str(ROOT / f"data/numeric/{s}.csv") for s in ("train", "validation", "test")},
                    "channels": ["a", "b"], "id_column": "id", "time_column": "step", "label_column": "phase"},
           "model": {"embedding_dim": 8, "hidden_size": 8},
           "train": {"batch_size": 32, "epochs": 1, "patience": None, "monitor": "token_accuracy", "device": "cpu"}}
    train(parse_config(raw), progress=False)
    result = invoke("eval", tmp_path / "run", "--split", "test")
    assert result.exit_code == 0, result.output
    metrics = json.loads(invoke("eval", tmp_path / "run", "--split", "test", "--json").stdout)
    title = result.stdout.splitlines()[0]
    assert f"{metrics['n']} sequences, {metrics['tokens']} steps;" in title, title
    assert "sentence" not in title.split(";")[0] and "token" not in title.split(";")[0], title
    result = invoke("infer", tmp_path / "run", "--file", ROOT / "data/numeric/test.csv")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == metrics["n"]
    for line in lines:
        cells = line.split("\t")
        assert len(cells) == 2 and all(cells), repr(line)  # id, a tag per step; no empty spans column


def test_time_delta_is_one_more_channel(tmp_path):
    (tmp_path / "x.csv").write_text("id,t,a,label\ns1,0,1.0,up\ns1,5,2.0,up\ns1,6,3.0,up\ns2,2,1.5,down\n"
                                    "s2,0,0.5,down\n", encoding="utf-8")
    raw = toy(tmp_path / "r")
    raw["data"].update(train=str(tmp_path / "x.csv"), channels=["a"], time_column="t", time_delta=True)
    seqs = read_sequences(parse_config(raw).data, str(tmp_path / "x.csv"))
    assert seqs.channels == ["a", "delta_t"]
    assert seqs.values[0].tolist() == [[1.0, 0.0], [2.0, 5.0], [3.0, 1.0]]
    assert seqs.values[1].tolist() == [[0.5, 0.0], [1.5, 2.0]]  # ordered by t
    raw["data"].pop("time_column")
    with pytest.raises(UserError, match="data.time_delta: the time between steps"):
        parse_config(raw)


@pytest.mark.parametrize("cell", ["", "  "])
def test_a_row_without_an_id_is_refused_not_a_sequence_of_its_own(tmp_path, cell):
    (tmp_path / "x.csv").write_text(f"id,a,label\ns1,1.0,up\n{cell},2.0,up\ns1,3.0,up\n", encoding="utf-8")
    raw = toy(tmp_path / "r")
    raw["data"].update(train=str(tmp_path / "x.csv"), channels=["a"])
    with pytest.raises(UserError) as e:
        read_sequences(parse_config(raw).data, str(tmp_path / "x.csv"))
    assert str(e.value).startswith(f"{tmp_path / 'x.csv'}:3:1: no id in column 'id' (data.id_column)")


def test_ids_are_read_without_surrounding_spaces(tmp_path):
    # 's1' and 's1 ' were two sequences, each with part of the rows
    (tmp_path / "x.csv").write_text("id,a,label\ns1,1.0,up\ns2,5.0,down\ns1 ,2.0,up\n s1,3.0,up\n", encoding="utf-8")
    raw = toy(tmp_path / "r")
    raw["data"].update(train=str(tmp_path / "x.csv"), channels=["a"])
    seqs = read_sequences(parse_config(raw).data, str(tmp_path / "x.csv"))
    assert seqs.ids == ["s1", "s2"] and seqs.values[0][:, 0].tolist() == [1.0, 2.0, 3.0]
    assert parse_text("s1 \t1,2", 1)[0] == "s1"  # an id typed to infer or serve, likewise


@pytest.mark.parametrize("first, second", [("1", "01"), ("7", "7.0"), ("007", "7")])
def test_one_number_written_two_ways_as_ids_is_refused(tmp_path, first, second):
    # '1' and '01' were two sequences; merging them would be a guess ('007' may be a code), so both are named
    (tmp_path / "x.csv").write_text(f"id,a,label\n{first},1.0,up\n{second},2.0,up\n", encoding="utf-8")
    raw = toy(tmp_path / "r")
    raw["data"].update(train=str(tmp_path / "x.csv"), channels=["a"])
    with pytest.raises(UserError) as e:
        read_sequences(parse_config(raw).data, str(tmp_path / "x.csv"))
    assert str(e.value) == (f"{tmp_path / 'x.csv'}:3:1: ids {second!r} (here) and {first!r} (line 2) are one number "
                            f"written two ways; data.id_column 'id' is compared as text, so they would be two "
                            f"sequences: write each id one way")


def test_ids_that_are_different_text_and_not_numbers_stay_apart(tmp_path):
    (tmp_path / "x.csv").write_text("id,a,label\nS1,1.0,up\ns1,2.0,up\n1,3.0,up\n2,4.0,up\n", encoding="utf-8")
    raw = toy(tmp_path / "r")
    raw["data"].update(train=str(tmp_path / "x.csv"), channels=["a"])
    assert read_sequences(parse_config(raw).data, str(tmp_path / "x.csv")).ids == ["S1", "s1", "1", "2"]


def test_a_parquet_row_without_an_id_is_refused(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    pd.DataFrame({"id": [1.0, None, 2.0], "a": [1.0, 2.0, 3.0], "label": ["up", "up", "down"]}).to_parquet(
        tmp_path / "x.parquet")
    raw = toy(tmp_path / "r")
    raw["data"].update(train=str(tmp_path / "x.parquet"), channels=["a"])
    with pytest.raises(UserError, match=r"x.parquet: row 2, column 'id': no id in column 'id'"):
        read_sequences(parse_config(raw).data, str(tmp_path / "x.parquet"))


def test_an_all_missing_channel_is_named_with_its_file_and_a_fix_for_its_format(tmp_path):
    (tmp_path / "m.ts").write_text(HEADER + "1,2:?,?:cat\n3,4,5:?,?,?:big dog\n", encoding="utf-8")
    (tmp_path / "m.csv").write_text("id,a,b,label\ns1,1.0,,up\ns2,2.0,,down\n", encoding="utf-8")
    for name, sets, fix in [("m.ts", {}, "drop that channel from every case"),
                            ("m.csv", {"channels": ["a", "b"]}, "leave it out of data.channels")]:
        raw = toy(tmp_path / "r")
        raw["data"].update(train=str(tmp_path / name), validation=None, test=None, missing="mask", **sets)
        with pytest.raises(UserError) as e:
            train(parse_config(raw), progress=False)
        assert str(e.value).startswith(f"{tmp_path / name}: channel {'c2' if name == 'm.ts' else 'b'} has no value "
                                       f"in the training split"), str(e.value)
        assert fix in str(e.value) and "config" not in str(e.value).replace("data.channels", "")
        assert not (tmp_path / "r").exists()  # refused before the run directory is made


def test_a_missing_time_is_not_offered_to_data_missing(tmp_path):
    # data.missing fills channels, never data.time_column: offering it sent the user round in a circle
    (tmp_path / "x.csv").write_text("id,t,a,label\ns1,0,1.0,up\ns1,,2.0,up\n", encoding="utf-8")
    raw = toy(tmp_path / "r")
    raw["data"].update(train=str(tmp_path / "x.csv"), channels=["a"], time_column="t", missing="ffill")
    with pytest.raises(UserError) as e:
        read_sequences(parse_config(raw).data, str(tmp_path / "x.csv"))
    assert str(e.value).startswith(f"{tmp_path / 'x.csv'}:3:2: missing value in column 't'")
    assert "set data.missing" not in str(e.value) and "never this column" in str(e.value)


def test_a_date_in_the_time_column_says_the_column_holds_numbers(tmp_path):
    # it said "... is not a finite number; fix the cell or leave the column out of the config"
    (tmp_path / "x.csv").write_text("id,t,a,label\ns1,2024-01-01,1.0,up\ns1,2024-01-02,2.0,up\n", encoding="utf-8")
    raw = toy(tmp_path / "r")
    raw["data"].update(train=str(tmp_path / "x.csv"), channels=["a"], time_column="t")
    with pytest.raises(UserError) as e:
        read_sequences(parse_config(raw).data, str(tmp_path / "x.csv"))
    assert str(e.value).startswith(f"{tmp_path / 'x.csv'}:2:2: '2024-01-01' in column 't' is not a finite number")
    assert "holds numbers" in str(e.value) and "out of the config" not in str(e.value)
    # which values it takes, the date in them, and the other way out (it said only 'write the times as numbers')
    assert "(a step index 1, 2, 3, or seconds), not dates" in str(e.value)
    assert "'2024-01-01' is 1704067200 seconds since 1970" in str(e.value)
    assert str(e.value).endswith("or remove data.time_column to read the rows in file order")
    from grutool.data.loading import for_trained_run

    with for_trained_run(), pytest.raises(UserError) as e:  # a trained run's input: its time column stays
        read_sequences(parse_config(raw).data, str(tmp_path / "x.csv"), need_labels=False)
    assert str(e.value).endswith("write the times as numbers ('2024-01-01' is 1704067200 seconds since 1970)")


@pytest.mark.parametrize("name, channels", [("numeric.yaml", 2), ("sines.yaml", 3)])
def test_the_data_line_counts_channels_not_a_vocabulary(name, channels, tmp_path):
    """A model of numbers reads channels: the start-up line says how many (a token vocabulary would be <pad>, <unk>)."""
    r = invoke("train", ROOT / "configs" / name, "--dry-run", "-o", str(tmp_path / "r"))
    assert r.exit_code == 0, r.output
    line = next(l for l in r.output.splitlines() if l.startswith("data:"))
    assert f"; channels {channels} (" in line and "vocabulary" not in line, line


# --- per-step labels from .ts files; infer --file across layouts ---------------------------------


STEP_HEADER = "@dimensions 2\n@equalLength false\n@classLabel true low high\n@data\n"


def test_ts_step_labels_one_per_step():
    f = read_ts("x.ts", STEP_HEADER + "1,2,3:4,5,6:low,high,high\n1,2:3,4: low , low\n", per_step=True)
    assert f.labels == [["low", "high", "high"], ["low", "low"]] and [len(x) for x in f.values] == [3, 2]
    assert read_ts("x.ts", STEP_HEADER + "1,2,3:4,5,6:low\n".replace("low", "high"), per_step=False).labels == ["high"]


@pytest.mark.parametrize("body, expect", [
    ("1,2,3:4,5,6:low,high\n", "x.ts:5: 2 step label(s) after the last ':', but the case has 3 steps"),
    ("1,2,3:4,5,6:low,mid,high\n", "x.ts:5: label 'mid' (step 2) is not among @classLabel's (low, high)"),
    ("1,2,3:4,5,6:low,,high\n", "x.ts:5: step 2's label is empty"),
])
def test_ts_step_label_errors_name_file_and_line(body, expect):
    with pytest.raises(UserError) as e:
        read_ts("x.ts", STEP_HEADER + body, per_step=True)
    assert str(e.value).startswith(expect), str(e.value)


def ts_from_csv(csv: Path, out: Path, label: str = "phase") -> list[str]:
    """A long table (id, step, a, b, label per row) as a .ts file whose cases end in a label per step; its ids."""
    import pandas as pd

    frame = pd.read_csv(csv)
    lines, ids = [], []
    for seq_id, rows in frame.groupby("id", sort=False):
        rows = rows.sort_values("step")
        lines.append(":".join(",".join(f"{v:.9g}" for v in rows[c]) for c in ("a", "b")) + ":"
                     + ",".join(rows[label]))
        ids.append(str(seq_id))
    tags = " ".join(sorted(frame[label].unique()))
    out.write_text(f"@problemName steps\n@dimensions 2\n@equalLength false\n@classLabel true {tags}\n@data\n"
                   + "\n".join(lines) + "\n", encoding="utf-8")
    return ids


def test_tagger_reads_step_labels_from_ts_as_from_a_long_table(tmp_path):
    """The same sequences and tags as .ts files train the weights the long table trains; batch = one by one."""
    splits = ("train", "validation", "test")
    for s in splits:
        ts_from_csv(ROOT / f"data/numeric/{s}.csv", tmp_path / f"{s}.ts")
    raw = {"task": "tagger", "output_dir": str(tmp_path / "csv"),
           "data": {**{s: str(ROOT / f"data/numeric/{s}.csv") for s in splits},
                    "channels": ["a", "b"], "time_column": "step", "label_column": "phase"},
           "model": {"embedding_dim": 16, "hidden_size": 16},
           "train": {"batch_size": 16, "epochs": 3, "lr": 0.01, "patience": None, "monitor": "token_accuracy"}}
    table = train(parse_config(raw), progress=False)
    raw["output_dir"] = str(tmp_path / "ts")
    raw["data"] = {s: str(tmp_path / f"{s}.ts") for s in splits}
    steps = train(parse_config(raw), progress=False)
    assert steps["best"] == table["best"]
    a = load_checkpoint(tmp_path / "csv" / rundir.BEST)["model"]
    b = load_checkpoint(tmp_path / "ts" / rundir.BEST)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    r = invoke("eval", tmp_path / "ts", "--split", "test", "--json")
    assert r.exit_code == 0, r.output
    p = Predictor(tmp_path / "ts", "cpu")
    texts = p.task.read_inputs(p.cfg, str(tmp_path / "test.ts"), p.run)
    rows = p.predict(texts)
    assert [r["id"] for r in rows[:2]] == ["1", "2"]
    assert [len(r["tags"]) for r in rows] == [len(parse_text(t, 2)[1]) for t in texts]
    assert [r["tags"] for r in rows] == [p.predict([t])[0]["tags"] for t in texts]  # batch = one by one


def long_csv(ts: Path, out: Path, columns=("c1", "c2")) -> None:
    """A .ts file's cases as a long table: id, step, the channels, one row per step (and a column to ignore)."""
    f = read_ts(str(ts), ts.read_text(encoding="utf-8"), need_labels=False)
    rows = [f"id,step,{','.join(columns)},note"]
    for seq_id, x in zip(f.ids, f.values):
        rows += [f"{seq_id},{t},{','.join(f'{v:.9g}' for v in step)},x" for t, step in enumerate(x)]
    out.write_text("\n".join(rows) + "\n", encoding="utf-8")


def test_infer_file_csv_on_a_run_trained_on_ts(run, tmp_path):
    """A long csv of the channels c1, c2 (as the run's scaler.json names them) predicts what the .ts file does."""
    long_csv(ROOT / "data/numeric/test.ts", tmp_path / "new.csv")
    from_ts = invoke("infer", run, "--file", ROOT / "data/numeric/test.ts", "--jsonl")
    from_csv = invoke("infer", run, "--file", tmp_path / "new.csv", "--jsonl")
    assert from_ts.exit_code == 0 and from_csv.exit_code == 0, from_csv.output
    assert from_csv.stdout == from_ts.stdout and len(from_csv.stdout.splitlines()) == 45
    p = Predictor(run, "cpu")
    texts = p.task.read_inputs(p.cfg, str(tmp_path / "new.csv"), p.run)
    assert [r["label"] for r in p.predict(texts)] == [p.predict([t])[0]["label"] for t in texts]


def test_infer_file_csv_without_the_trained_channels_is_one_line(run, tmp_path):
    long_csv(ROOT / "data/numeric/test.ts", tmp_path / "new.csv", columns=("x", "c2"))
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    r = invoke("infer", run, "--file", tmp_path / "new.csv")
    assert_user_error(r, "new.csv: no column 'c1';", "trained on .ts files of 2 channels",
                      "the columns id, c1, c2", "has: id, step, x, c2, note")
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    # Several missing: one plural list (it said `has no column 'id', 'c1', 'c2'`).
    long_csv(ROOT / "data/numeric/test.ts", tmp_path / "other.csv", columns=("x", "y"))
    text = (tmp_path / "other.csv").read_text()
    (tmp_path / "other.csv").write_text(text.replace("id,", "key,", 1))
    assert_user_error(invoke("infer", run, "--file", tmp_path / "other.csv"),
                      "other.csv: no columns 'id', 'c1', 'c2';")


def test_infer_errors_offer_fixes_of_the_data_not_of_the_config(run, tmp_path):
    """A trained run's channels and data.missing are fixed: a bad or missing value at infer is fixed in the data
    (training's own message offers the config's policies)."""
    long_csv(ROOT / "data/numeric/test.ts", tmp_path / "new.csv")
    lines = (tmp_path / "new.csv").read_text().splitlines()
    cells = lines[4].split(",")
    for cell, expect in (("abc", "'abc' in column 'c1' is not a finite number; fix the cell"),
                         ("", "missing value in column 'c1' (1 in all); fill it")):
        lines[4] = ",".join(cells[:2] + [cell] + cells[3:])
        (tmp_path / "new.csv").write_text("\n".join(lines) + "\n")
        result = invoke("infer", run, "--file", tmp_path / "new.csv")
        assert_user_error(result, f"new.csv:5:3: {expect}")
        assert "config" not in result.output and "data.missing to" not in result.output
    result = invoke("infer", run, "0.1,?,0.9:3.4,3.2,3.0")
    assert_user_error(result, "input 1: a missing value in channel c1 at step 2", "fill the value")
    assert "set data.missing" not in result.output


def test_a_data_file_piped_in_is_named_as_one(run):
    """`cat test.ts | grutool infer RUN --file -` said 'input 1: 1 channel, but the model reads 2' about the file's
    comment line, and a csv's header row the same: stdin is one typed sequence a line; such a line now says what it
    is and that a data file is given by name. A mistyped value among numbers keeps its own message."""
    ts = (ROOT / "data/numeric/test.ts").read_text()
    assert_user_error(invoke("infer", run, "--file", "-", input=ts), "input 1: ",
                      "is a .ts file's header or comment line", "give a .ts or .csv data file by name, --file PATH")
    assert_user_error(invoke("infer", run, "--file", "-", input="id,step,c1,c2\ns0,0,0.1,3.0\n"),
                      "input 1: 'id,step,c1,c2' is a table's header row", "--file PATH")
    assert_user_error(invoke("infer", run, "--file", "-", input="@dimensions 2\n"), "a .ts file's header")
    assert_user_error(invoke("infer", run, "0.1,abc,0.3:3,3,3"), "channel 1 value 2 is not a number ('abc')")
    # a .ts data line pasted with its label: its last field is said to be one (it said "3 channels" alone)
    assert_user_error(invoke("infer", run, "1,2,3:4,5,6:sine wave"), "input 1: 3 channels, but the model reads 2; "
                      "its last field 'sine wave' reads as a .ts line's class label: leave it out")
    three = invoke("infer", run, "1,2,3:4,5,6:7,8,9")  # a third channel of numbers is no label
    assert three.exit_code == 2 and "class label" not in three.output, three.output


def test_a_run_saved_with_channels_beside_a_ts_file_still_reads(run, tmp_path):
    """data.channels beside a .ts training file is refused now (it selected nothing); a run trained before, whose
    config.yaml has it, still evaluates, the list read as the nothing it was (`unread_to_defaults`)."""
    import shutil

    old = tmp_path / "old"
    shutil.copytree(run, old)
    raw = yaml.safe_load((old / "config.yaml").read_text())
    raw["data"]["channels"] = ["a", "zz"]
    (old / "config.yaml").write_text(yaml.safe_dump(raw))
    assert invoke("eval", old, "--split", "test", "--json").exit_code == 0
    fresh = tmp_path / "fresh.yaml"
    fresh.write_text(yaml.safe_dump({**raw, "output_dir": str(tmp_path / "new")}))
    assert_user_error(invoke("train", fresh), "data.channels: lists a long table's value columns")


def test_an_empty_input_is_called_empty_not_one_channel(run):
    """Before: `infer RUN ""` (and serve's `{"texts": [""]}`) said '1 channel(s), but the model reads 2', about a
    text with no values at all; now it says the input is empty and how a sequence is written."""
    for text in ("", "   "):
        assert_user_error(invoke("infer", run, "0.1,0.2:3,4", text), "input 2: empty", "2 channels", "':'")


def test_shapes_names_channels_not_a_vocabulary(run):
    result = invoke("shapes", "--config", run / "config.yaml")
    assert result.exit_code == 0, result.output
    head = " ".join(result.stdout.split()[:40])
    assert "2 channels per step, 3 classes; first training examples: values (3," in head, head
    assert "tokens" not in head and "V=" not in head and "F=2" in head and "E=" in head


def test_a_numeric_run_saved_with_token_settings_still_opens(run, tmp_path):
    # Runs trained before token settings on numbers were refused may hold one (it changed nothing).
    import shutil

    import yaml

    from grutool.evaluate import evaluate

    old = tmp_path / "old"
    shutil.copytree(run, old)
    cfg = yaml.safe_load((old / "config.yaml").read_text())
    cfg["data"]["min_freq"], cfg["data"]["lowercase"] = 3, False
    (old / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert evaluate(str(old), "test", device="cpu")["accuracy"] == evaluate(str(run), "test", device="cpu")["accuracy"]


def test_eval_data_with_a_missing_value_offers_a_fix_of_the_file_not_of_the_run(run, tmp_path):
    text = (ROOT / "data" / "numeric" / "test.ts").read_text(encoding="utf-8")
    text = text.replace("@missing false", "@missing true")
    head, _, rest = text.partition("@data\n")
    first, _, others = rest.partition("\n")
    (tmp_path / "holes.ts").write_text(f"{head}@data\n?{first[first.index(','):]}\n{others}", encoding="utf-8")
    # was: '... and data.missing is error; set data.missing (ffill, interpolate or mask) or fill the data', a
    # setting a trained run cannot take
    result = invoke("eval", run, "--data", tmp_path / "holes.ts")
    assert_user_error(result, "a missing value in channel c1 at step 1", "the run was trained with data.missing: "
                      "error; fill the value")
    assert "set data.missing" not in result.output


def test_eval_data_table_on_a_run_trained_on_ts_says_to_give_a_ts_file(run, tmp_path):
    """Was: 'numeric sequences in a table need data.channels (the value columns) and data.id_column; or give a
    .ts file', settings a trained run cannot take; now it says eval of this run reads a .ts file."""
    long_csv(ROOT / "data/numeric/test.ts", tmp_path / "new.csv")
    result = invoke("eval", run, "--data", tmp_path / "new.csv")
    assert_user_error(result, "new.csv: this run was trained on .ts files", "give one")
    assert "data.channels" not in result.output and "data.id_column" not in result.output


def test_a_seq2seq_option_on_a_numeric_run_names_only_the_option_given(run):
    """`infer RUN --beam 5` said '--beam, --attention, --attention-weights: for seq2seq runs only'."""
    result = invoke("infer", run, "--beam", "5", "0.1,0.5,0.9:3.4,3.2,3.0")
    assert_user_error(result, "--beam: for seq2seq runs only", "is task classifier")
    assert "--attention" not in result.output


def test_a_one_channel_run_counts_its_channel_in_the_singular(tmp_path):
    """A univariate run's refusals said `a JSON array of 1 channels`, `1 lists` and `the sequence's 1 channel(s)
    separated by ':'` (there is nothing to separate); a count is singular for one, plural else. A sequence over
    serve's bound is sent with fewer steps, not as `a shorter text`."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from grutool.serve import Limits, build_app

    raw = shipped_config("numeric_regression.yaml", tmp_path / "run", data={"channels": ["a"]},
                         train={"epochs": 1, "device": "cpu"})
    train(parse_config(raw), progress=False)
    run = tmp_path / "run"
    assert_user_error(invoke("infer", run, ""), "input 1: empty; write the sequence's values separated by ','")
    assert_user_error(invoke("infer", run, "0.1,0.2:0.3,0.4"), "input 1: 2 channels, but the model reads 1")
    with TestClient(build_app(Predictor(run, "cpu"))) as client:
        said = {}
        for body in ([], [["a"]], [[0.1], [0.2]], ""):
            r = client.post("/predict", json={"texts": [body]})
            assert r.status_code in (400, 422), r.text
            said[json.dumps(body)] = r.json()["error"]
    assert said["[]"].startswith("texts[0]: expected a JSON array of 1 channel, each"), said
    assert "a JSON array of 1 list, one per channel" in said['[["a"]]'], said
    assert said["[[0.1], [0.2]]"].startswith("texts[0]: 2 channels, but the model reads 1"), said
    assert not any(re.search(r"\b1 (channels|lists)|\(s\)", m) for m in said.values()), said
    with TestClient(build_app(Predictor(run, "cpu"), Limits(max_chars=20))) as client:  # over the bound: 413
        r = client.post("/predict", json={"texts": [[[0.1] * 10]]})
    # a sequence, not a text: it said `send a shorter text` of an array
    assert r.status_code == 413 and r.json()["error"].endswith("; send a sequence of fewer steps (an array is "
                                                                "counted as its text form 'a,b:c,d')"), r.text


def test_a_numeric_tagger_refuses_a_span_scheme_its_labels_are_not_written_in(tmp_path, monkeypatch):
    # Accepted before: span F1 stayed 0 for every epoch, so monitor span_f1 kept the first epoch as best. The
    # text tagger refuses the same mistake, naming the tag.
    monkeypatch.chdir(ROOT)
    config = tmp_path / "t.yaml"
    config.write_text(invoke("init", "tagger", "--input", "numeric").stdout, encoding="utf-8")
    result = invoke("train", config, "--set", "data.scheme=iob2", "--set", "train.monitor=span_f1", "--dry-run")
    assert_user_error(result, "is not a tag of data.scheme iob2 (expected O, B-TYPE or I-TYPE); for labels without spans set "
                              "data.scheme: plain")


@pytest.mark.parametrize("value", ["1e39", "3e38"])
def test_a_value_float32_cannot_hold_once_standardised_is_refused_not_answered_nan(run, value):
    # 1e39 is finite to Python and inf as float32; 3e38 fits float32 but not its z-score. Both answered NaN
    # probabilities (null in --jsonl), exit 0, and a 200 from serve.
    said = {"1e39": "input 1: channel 1 value 1 is 1e39, beyond what float32 holds (about ±3.4e38)",
            "3e38": "input 1: channel c1, step 1: 3e+38 is beyond what the model's float32 inputs hold once "
                    "standardised"}[value]
    assert_user_error(invoke("infer", run, "--jsonl", f"{value},0.5,0.9:3.4,3.2,3.0"), said)
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from grutool.serve import build_app

    with TestClient(build_app(Predictor(run, "cpu"))) as client:
        r = client.post("/predict", json={"texts": [f"{value},0.5,0.9:3.4,3.2,3.0"]})
        assert r.status_code == 400 and r.json()["error"].startswith(said.replace("input 1", "texts[0]")), r.text
