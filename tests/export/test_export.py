"""grutool export: every family to ONNX and TorchScript, checked against the original on the validation
split; infer --backend runs the export with the same pre- and post-processing; int8; bad inputs exit 2
(or 1 for a failed parity check) with nothing written."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
import yaml

from conftest import assert_user_error, invoke, shipped_config, tiny_config
from grutool.config_file import load_config, parse_config
from grutool.export.encoder import ExportEncoder
from grutool.modules.encoder import RecurrentEncoder
from grutool.training.loop import train

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "tasks"))
from test_tagging_cli import joint_config  # noqa: E402

pytest.importorskip("onnxruntime", reason="the onnx extra: pip install -e '.[onnx]'")


def _train(raw: dict, name: str) -> Path:
    train(parse_config(raw, name), progress=False)
    return Path(raw["output_dir"])


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory) -> Path:
    """The tiny bidirectional classifier, char features on (the SST-2 shape)."""
    tmp = tmp_path_factory.mktemp("cls")
    raw = tiny_config(tmp)
    raw["model"].update({"char_features": True, "char_embedding_dim": 8, "char_hidden_size": 8, "pooling": "max"})
    return _train(raw, "cls")


@pytest.fixture(scope="module")
def joint_run(tmp_path_factory) -> Path:
    """Joint intent + slots with a CRF and char features (the ATIS shape)."""
    tmp = tmp_path_factory.mktemp("joint")
    raw = joint_config(tmp, epochs=2)
    raw["model"]["pooling"] = "attention"
    return _train(raw, "joint")


@pytest.fixture(scope="module")
def seq2seq_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("s2s") / "run"
    train(load_config(ROOT / "configs" / "reverse.yaml", [f"output_dir={run}", "train.epochs=3",
                                                          "model.input_feeding=true"]), progress=False)
    return run


def export_ok(*args) -> dict:
    result = invoke("export", *args, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["parity"]["ok"]
    return report


# --- the export encoder -----------------------------------------------------------------------


@pytest.mark.parametrize("layers,bidirectional,extra", [
    (1, True, {}), (2, True, {}), (2, False, {}),
    (3, True, {"layer_norm": True, "residual": True, "kernel": "fused"}),
])
def test_export_encoder_equals_the_packed_encoder(layers, bidirectional, extra):
    """Padding never reaches a real step: equal to RecurrentEncoder's packed path, empty rows included."""
    torch.manual_seed(0)
    enc = RecurrentEncoder(8, 8, layers, bidirectional, **extra).eval()
    x, lengths = torch.randn(4, 7, 8), torch.tensor([7, 3, 0, 5])
    with torch.no_grad():
        ref, got = enc(x, lengths), ExportEncoder(enc)(x, lengths)
        for a, b in zip(ref, got):
            torch.testing.assert_close(b, a, atol=2e-6, rtol=0)
        if not bidirectional:
            h0 = torch.randn(layers, 4, 8)
            for a, b in zip(enc(x, lengths, h0), ExportEncoder(enc)(x, lengths, h0)):
                torch.testing.assert_close(b, a, atol=2e-6, rtol=0)


# --- every family -------------------------------------------------------------------------------


def test_classifier_onnx_dynamo_export_and_infer_backend(classifier_run):
    """The default exporter (dynamo); infer --backend onnx gives infer's own output."""
    report = export_ok(classifier_run)
    assert report["exporter"] == "dynamo" and report["parity"]["max_abs_diff"]["logits"] < 1e-4
    model, meta_file = classifier_run / "model.onnx", classifier_run / "model.onnx.json"
    assert model.is_file() and meta_file.is_file()
    meta = json.loads(meta_file.read_text())
    assert meta["task"] == "classifier" and meta["vocabularies"]["labels"] == ["neg", "pos"]
    assert meta["graphs"]["model"]["inputs"]["ids"]["shape"] == ["batch", "time"]
    assert set(meta["graphs"]["model"]["inputs"]) == {"ids", "lengths", "chars"}
    # Before: every node carried dynamo's debugging metadata (the stack that made it, with this machine's source
    # paths and lines): a file twice the legacy exporter's. The graph and weights are all it holds now.
    import onnx

    import grutool

    assert str(Path(grutool.__file__).parent).encode() not in model.read_bytes()
    assert not [n.op_type for n in onnx.load(str(model)).graph.node if n.metadata_props]
    texts = ["a good film", "really awful and dull service", "", "superb"]
    torch_out = invoke("infer", classifier_run, *texts, "--jsonl")
    onnx_out = invoke("infer", classifier_run, *texts, "--jsonl", "--backend", "onnx")
    assert onnx_out.exit_code == 0, onnx_out.output
    assert onnx_out.stdout == torch_out.stdout


def test_a_dynamo_export_after_another_keeps_its_axes_dynamic(classifier_run, tmp_path):
    """Two dynamo exports in one process: after a forecaster's, the classifier's char axis stays dynamic (it
    came out fixed at its example's width, 4, and ONNX Runtime refused longer words) and so does `time`."""
    import onnx

    from conftest import shipped_config
    from grutool.export import export

    forecaster = _train(shipped_config("sines.yaml", tmp_path / "sines", train={"epochs": 1}), "sines")
    assert export(forecaster, "onnx", tmp_path / "f.onnx")["parity"]["ok"]
    report = export_ok(classifier_run, "-o", tmp_path / "c.onnx")
    assert report["exporter"] == "dynamo"
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
            for i in onnx.load(str(tmp_path / "c.onnx")).graph.input}
    assert all(isinstance(d, str) for d in dims["chars"] + dims["ids"]), dims  # named axes, no fixed sizes
    long_words = ["an extraordinarily overwhelming masterpiece"]  # words far longer than the traced example's
    onnx_out = invoke("infer", classifier_run, *long_words, "--jsonl", "--backend", "onnx",
                      "--model", tmp_path / "c.onnx")
    assert onnx_out.exit_code == 0, onnx_out.output
    assert onnx_out.stdout == invoke("infer", classifier_run, *long_words, "--jsonl").stdout


def test_classifier_torchscript_and_int8(classifier_run, tmp_path):
    report = export_ok(classifier_run, "--format", "torchscript", "-o", tmp_path / "m.pt")
    assert report["parity"]["max_abs_diff"]["logits"] < 1e-4
    texts = ["a good film", "really awful and dull service"]
    ts = invoke("infer", classifier_run, *texts, "--jsonl", "--backend", "torchscript", "--model", tmp_path / "m.pt")
    assert ts.stdout == invoke("infer", classifier_run, *texts, "--jsonl").stdout
    q = export_ok(classifier_run, "--format", "torchscript", "--int8", "-o", tmp_path / "q.pt")
    assert q["int8"] and q["parity"]["agreement"] >= 0.97
    q = export_ok(classifier_run, "--int8", "--exporter", "legacy", "-o", tmp_path / "q.onnx")
    assert q["float_ops"] == ["GRU"]  # ONNX Runtime's quantizer has no int8 GRU


def test_an_onnx_exporter_given_for_torchscript_is_said_to_be_ignored(classifier_run, tmp_path):
    # It was taken and ignored without a word; it is not refused (scripts loop over both formats with one set of
    # flags), and left at its default it says nothing.
    given = invoke("export", classifier_run, "--format", "torchscript", "--exporter", "legacy", "-o", tmp_path / "a.pt")
    assert given.exit_code == 0, given.output
    assert "warning: --exporter legacy: how ONNX graphs are made; a TorchScript export ignores it" in given.stderr
    plain = invoke("export", classifier_run, "--format", "torchscript", "-o", tmp_path / "b.pt")
    assert plain.exit_code == 0 and "--exporter" not in plain.stderr, plain.output


def test_loading_an_int8_torchscript_export_prints_no_torch_deprecation_warning(classifier_run, tmp_path):
    # torch's C++ printed its quantized-tensor deprecation (five lines on a terminal) to stderr on every
    # `infer --backend torchscript` and `serve` of an int8 export: a new process, as a user's.
    import os
    import subprocess

    export_ok(classifier_run, "--format", "torchscript", "--int8", "-o", tmp_path / "q.pt")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    said = subprocess.run([sys.executable, "-m", "grutool", "infer", str(classifier_run), "a good film",
                           "--backend", "torchscript", "--model", str(tmp_path / "q.pt")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert said.returncode == 0, said.stderr
    assert said.stdout.count("\t") == 2
    assert "deprecated" not in said.stderr and "Quantizer" not in said.stderr, said.stderr


def test_only_torch_s_quantized_tensor_warning_is_filtered_and_only_while_it_is_used_up():
    import warnings

    from grutool.export.graph import say_quantized_deprecation_quietly

    before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        say_quantized_deprecation_quietly()
        assert warnings.filters[0][0] == "always", "the caller's filters stand after it"
        warnings.warn("another warning")
    assert [str(w.message) for w in caught] == ["another warning"]
    assert warnings.filters == before


def test_joint_with_crf_and_chars(joint_run, tmp_path):
    """Emissions and intent in the graph; Viterbi outside it (NumPy, from the JSON's CRF scores) gives the same tags."""
    for fmt, name in (("onnx", "m.onnx"), ("torchscript", "m.pt")):
        report = export_ok(joint_run, "--format", fmt, "--exporter", "legacy", "-o", tmp_path / name)
        assert report["parity"]["agreement"] == 1.0 and report["parity"]["total"] > 100
        assert report["parity"]["unit"] == "tags and intents"
        meta = json.loads((tmp_path / f"{name}.json").read_text())
        assert set(meta["crf"]) >= {"transitions", "start", "end"} and meta["vocabularies"]["intents"]
        texts = ["show me flights from boston to denver on friday", "", "what ground transportation is available"]
        got = invoke("infer", joint_run, *texts, "--jsonl", "--backend", fmt, "--model", tmp_path / name)
        assert got.exit_code == 0, got.output
        assert got.stdout == invoke("infer", joint_run, *texts, "--jsonl").stdout


def test_parity_names_what_a_tagger_and_a_joint_run_predict(joint_run, tmp_path):
    # Before, both said "tags (and intents) agree", though a plain tagger has no intents.
    run = tmp_path / "tagger"
    train(load_config(ROOT / "configs" / "tagging.yaml", [f"output_dir={run}", "train.epochs=1"]), progress=False)
    result = invoke("export", run, "--exporter", "legacy", "-o", tmp_path / "t.onnx")
    assert result.exit_code == 0, result.output
    assert "; tags agree " in result.stdout and "intents" not in result.stdout
    result = invoke("export", joint_run, "--exporter", "legacy", "-o", tmp_path / "j.onnx")
    assert result.exit_code == 0, result.output
    assert "; tags and intents agree " in result.stdout


def test_seq2seq_encoder_and_one_step_decoder(seq2seq_run, tmp_path):
    """Two graphs; grutool's greedy and beam search run on them unchanged."""
    report = export_ok(seq2seq_run, "--exporter", "legacy", "-o", tmp_path / "m.onnx")
    assert set(report["files"]) == {"encoder", "decoder"}
    assert (tmp_path / "m.decoder.onnx").is_file()
    meta = json.loads((tmp_path / "m.onnx.json").read_text())
    assert {"y", "hidden", "feed", "memory", "keys", "mask"} == set(meta["graphs"]["decoder"]["inputs"])
    for beam in ("1", "3"):
        args = ("12345", "9081726354", "7", "--jsonl", "--beam", beam)
        got = invoke("infer", seq2seq_run, *args, "--backend", "onnx", "--model", tmp_path / "m.onnx")
        assert got.exit_code == 0, got.output
        want = [json.loads(line) for line in invoke("infer", seq2seq_run, *args).stdout.splitlines()]
        got = [json.loads(line) for line in got.stdout.splitlines()]
        assert [r["output"] for r in got] == [r["output"] for r in want]
        assert all(abs(a["score"] - b["score"]) < 1e-4 for a, b in zip(got, want))
    # A family's own metadata edited away (issue 20: a KeyError traceback): one line naming the file.
    meta.pop("decoding")
    (tmp_path / "m.onnx.json").write_text(json.dumps(meta))
    from conftest import assert_user_error

    assert_user_error(invoke("infer", seq2seq_run, "7", "--backend", "onnx", "--model", tmp_path / "m.onnx"),
                      "m.onnx.json", "incomplete", "'decoding'", "grutool export")


# --- refusals -----------------------------------------------------------------------------------


def test_parity_beyond_tolerance_exits_1_and_writes_nothing(classifier_run, tmp_path):
    result = invoke("export", classifier_run, "--exporter", "legacy", "--atol", "1e-12", "-o", tmp_path / "m.onnx")
    assert result.exit_code == 1, result.output
    assert "export refused, nothing written" in result.output and "FAILED" in result.output
    assert "to accept these differences: --atol " in result.output and "--min-agreement" not in result.output
    assert len([l for l in result.output.splitlines() if l.strip()]) == 1
    assert list(tmp_path.iterdir()) == []


def test_bad_inputs_exit_2_and_write_nothing(classifier_run, tmp_path):
    assert_user_error(invoke("export", classifier_run, "-o", tmp_path / "missing" / "m.onnx"),
                      "--output", "does not exist")
    run = tmp_path / "run"
    shutil.copytree(classifier_run, run, ignore=shutil.ignore_patterns("model*"))
    (run / "best.pt").write_bytes(b"not a checkpoint")
    before = sorted(p.name for p in run.iterdir())
    assert_user_error(invoke("export", run, "--exporter", "legacy"), "best.pt", "corrupt")
    (run / "best.pt").unlink()
    assert_user_error(invoke("export", run, "--exporter", "legacy"), "best.pt", "not found")
    assert sorted(p.name for p in run.iterdir()) == [n for n in before if n != "best.pt"]
    assert_user_error(invoke("infer", classifier_run, "hi", "--backend", "onnx", "--model", tmp_path / "none.onnx"),
                      "no export here", f"grutool export {classifier_run} --format onnx -o {tmp_path / 'none.onnx'}`")


def test_an_export_of_the_other_format_or_another_run_names_the_fix(classifier_run, joint_run, tmp_path):
    # Before: "a torchscript export of a classifier model, not a onnx export of this classifier run", no fix.
    export_ok(classifier_run, "--format", "torchscript", "-o", tmp_path / "c.pt")
    export_ok(joint_run, "--exporter", "legacy", "-o", tmp_path / "j.onnx")
    assert_user_error(invoke("infer", classifier_run, "hi", "--backend", "onnx", "--model", tmp_path / "c.pt"),
                      "c.pt: a torchscript export, not an onnx one; use --backend torchscript for it")
    assert_user_error(invoke("serve", classifier_run, "--backend", "onnx", "--model", tmp_path / "c.pt"),
                      "use --backend torchscript for it")
    assert_user_error(invoke("infer", classifier_run, "hi", "--backend", "onnx", "--model", tmp_path / "j.onnx"),
                      "j.onnx: an export of a joint model, not of this classifier run; give this run's export as "
                      "--model, or write one with `grutool export")


def test_an_export_made_from_other_weights_is_refused(tmp_path):
    # Two numeric runs (no tokens: the vocabulary check passes any pair) and a run trained on after its export
    # (`train --resume` rewrote best.pt; the export stayed): each export ran other weights, silently (one value
    # per step for a run of one per sequence, epoch-1 probabilities) or with a traceback (a forecaster's KeyError).
    # An export names the checkpoint it came from by its bytes.
    raw = shipped_config("numeric_regression.yaml", tmp_path / "a", train={"epochs": 1})
    a = _train(raw, "a")
    b = _train({**raw, "output_dir": str(tmp_path / "b"), "train": {**raw["train"], "seed": 7}}, "b")
    export_ok(a, "--format", "torchscript")
    export_ok(b, "--format", "torchscript")
    assert_user_error(invoke("infer", b, "--backend", "torchscript", "--model", a / "model.pt", "0.1,0.2:1,2"),
                      "model.pt: not made from", "give this run's export as --model, or write one with "
                      "`grutool export")
    ok = invoke("infer", b, "--backend", "torchscript", "0.1,0.2:1,2")
    assert ok.exit_code == 0, ok.output
    raw["train"]["epochs"] = 2
    before = (a / "best.pt").read_bytes()
    train(parse_config(raw, "a"), resume=True, progress=False)
    assert (a / "best.pt").read_bytes() != before, "the premise: epoch 2 improved on validation, a new best.pt"
    assert_user_error(invoke("infer", a, "--backend", "torchscript", "0.1,0.2:1,2"),
                      "model.pt: made from the run's best.pt as it was before it trained on", "export it again")
    export_ok(a, "--format", "torchscript")
    ok = invoke("infer", a, "--backend", "torchscript", "0.1,0.2:1,2")
    assert ok.exit_code == 0, ok.output


def test_a_file_that_is_no_export_gets_a_fix_that_export_takes(seq2seq_run, classifier_run, tmp_path):
    # Each said "no export here (...); write one with `grutool export RUN --format onnx -o PATH`", which export
    # then refused (`exists and is not an earlier export`, or `a .pt name for an onnx export`).
    run = tmp_path / "s2s"
    shutil.copytree(seq2seq_run, run, ignore=shutil.ignore_patterns("model*"))
    export_ok(run, "--exporter", "legacy")
    assert_user_error(invoke("infer", run, "12", "--backend", "onnx", "--model", run / "model.decoder.onnx"),
                      f"model.decoder.onnx: one graph of the export {run / 'model.onnx'} (its decoder); give "
                      f"{run / 'model.onnx'} as --model")
    assert_user_error(invoke("infer", classifier_run, "hi", "--backend", "onnx", "--model", tmp_path / "m.int8.pt"),
                      "m.int8.pt: no export here; an onnx export is a .onnx file: write one with `grutool export")
    assert_user_error(invoke("infer", classifier_run, "hi", "--backend", "onnx", "--model",
                             classifier_run / "config.yaml"),
                      "config.yaml: no export (no config.yaml.json beside it: grutool did not write it)")


def test_export_replaces_only_an_earlier_export(classifier_run, tmp_path):
    # Before: `-o RUN/config.yaml` wrote the ONNX graph over the run's config (the run could no longer be read),
    # `-o RUN/vocab` its metadata over vocab.json, and `-o m.pt` an ONNX graph under a TorchScript name.
    run = tmp_path / "run"
    shutil.copytree(classifier_run, run, ignore=shutil.ignore_patterns("model*"))
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    assert_user_error(invoke("export", run, "--exporter", "legacy", "-o", run / "config.yaml"),
                      "config.yaml: exists and is not an earlier export", "choose another --output")
    assert_user_error(invoke("export", run, "--exporter", "legacy", "-o", run / "vocab"),
                      "vocab.json exists and is not an export's", "choose another --output")
    assert_user_error(invoke("export", run, "--exporter", "legacy", "-o", tmp_path / "m.pt"),
                      "a .pt name for an onnx export; name it m.onnx, or pass --format torchscript")
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before and not list(tmp_path.glob("m.*"))
    for _ in range(2):  # an earlier export is replaced
        export_ok(run, "--exporter", "legacy", "-o", tmp_path / "m.onnx")
    export_ok(run, "--exporter", "legacy")
    export_ok(run, "--exporter", "legacy")


def test_a_bad_split_lists_the_splits_the_run_has(classifier_run, tmp_path):
    # Before: "the run has no nope split (data.nope)", as if `nope` could be configured.
    assert_user_error(invoke("export", classifier_run, "--split", "nope", "-o", tmp_path / "m.onnx"),
                      "--split: 'nope' is not a split; the parity check runs on train, validation or test")
    run = tmp_path / "run"
    shutil.copytree(classifier_run, run, ignore=shutil.ignore_patterns("model*"))
    raw = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    del raw["data"]["test"]
    (run / "config.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    assert_user_error(invoke("export", run, "--split", "test"),
                      "the run has no test split (data.test); the parity check runs on train or validation")
    assert not list(tmp_path.glob("m.onnx*")) and not list(run.glob("model*"))


def test_torchscript_int8_of_a_numeric_run_quantizes_its_front_end(tmp_path):
    # Before: a traceback ("Cannot insert a Tensor that requires grad as a constant"): the quantizer swapped the
    # numeric front-end's projection on the model, and the front-end kept calling the float one.
    run = _train(shipped_config("numeric_regression.yaml", tmp_path / "run", train={"epochs": 1}), "regressor")
    # --min-agreement 0 is no longer needed: int8 predictions (z-scores) agree within INT8_CLOSE of the target's
    # std, not the fp32 tolerance of 1e-3 (which refused 29 % agreement here).
    q = export_ok(run, "--format", "torchscript", "--int8", "-o", tmp_path / "q.pt")
    assert q["int8"] and q["parity"]["agreement"] >= 0.97 and q["parity"]["unit"] == "predictions within 0.05 std"
    module = torch.jit.load(str(tmp_path / "q.pt"))
    assert any("quantized" in n.kind() for n in module.inlined_graph.nodes())  # the projection ran in int8
    r = invoke("infer", run, "--backend", "torchscript", "--model", tmp_path / "q.pt", "0.1,0.2,0.3:1,2,3")
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("config,ids", [("numeric_regression.yaml", "standardised values"),
                                        ("numeric.yaml", "standardised values"), ("sentiment.yaml", "token ids")])
def test_export_notes_name_the_vocabularies_the_metadata_holds(tmp_path, config, ids):
    """The regressor's notes said to un-z-score with `vocabularies.target`, a key the metadata never had (the
    target's scaler is `vocabularies.labels`), and a numeric classifier's said its lengths were "tokens per row"."""
    import re

    family = {"numeric_regression.yaml": "regressor"}.get(config, "classifier")
    run = _train(shipped_config(config, tmp_path / "run", train={"epochs": 1}), family)
    export_ok(run, "--format", "torchscript", "-o", tmp_path / "m.pt")
    meta = json.loads((tmp_path / "m.pt.json").read_text())
    notes = meta["graphs"]["model"]["notes"]
    named = set(re.findall(r"vocabularies\.(\w+)", " ".join(notes.values())))
    assert named and named <= set(meta["vocabularies"]), (named, list(meta["vocabularies"]))
    assert ids in notes["ids"], notes
    assert notes["lengths"] == ("tokens per row" if ids == "token ids" else "steps per row"), notes


def test_a_run_whose_only_export_is_int8_is_pointed_to_it(classifier_run, tmp_path):
    """`infer RUN --backend torchscript` with model.int8.pt alone in the run said only `missing model.pt; write
    one`: the int8 file beside it went unmentioned."""
    run = tmp_path / "run"
    shutil.copytree(classifier_run, run)
    export_ok(run, "--format", "torchscript", "--int8")
    assert (run / "model.int8.pt").is_file() and not (run / "model.pt").exists()
    assert_user_error(invoke("infer", run, "--backend", "torchscript", "a good film"),
                      "missing model.pt; the run has model.int8.pt: give it as --model")
    result = invoke("infer", run, "--backend", "torchscript", "--model", run / "model.int8.pt", "a good film")
    assert result.exit_code == 0, result.output


def test_export_of_an_interrupted_run_says_so(classifier_run, tmp_path):
    """An interrupted run (Ctrl-C at epoch 55 of 300) was exported without a word: its best.pt is the best epoch
    so far, which may not be the model meant."""
    run = tmp_path / "run"
    shutil.copytree(classifier_run, run)
    (run / "summary.json").unlink()
    result = invoke("export", run, "--format", "torchscript", "-o", tmp_path / "m.pt")
    assert result.exit_code == 0 and (tmp_path / "m.pt").is_file(), result.output
    assert "the run is interrupted (no summary.json): its best.pt is the best epoch so far" in result.output
    finished = invoke("export", classifier_run, "--format", "torchscript", "-o", tmp_path / "f.pt")
    assert finished.exit_code == 0 and "the run is" not in finished.output, finished.output


def test_int8_refuses_rnn_layers_naming_them(tmp_path):
    raw = tiny_config(tmp_path)
    raw["model"]["cell"] = "rnn"
    run = _train(raw, "rnn")
    result = invoke("export", run, "--format", "torchscript", "--int8")
    assert_user_error(result, "--int8", "RNN", "GRU, LSTM and Linear")
    assert not list(run.glob("model*"))


def test_missing_onnxruntime_names_the_pip_command(classifier_run, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime raises ImportError
    assert_user_error(invoke("export", classifier_run), "onnxruntime", "pip install", "[onnx]")
    assert_user_error(invoke("infer", classifier_run, "hi", "--backend", "onnx"), "pip install", "[onnx]")


# --- what an export leaves: self-contained files, nothing else -----------------------------------

RUN_ELSEWHERE = r"""
import json, sys
import numpy as np
import onnxruntime as ort

texts = json.loads(sys.argv[1])
meta = json.load(open("m.onnx.json", encoding="utf-8"))
vocab = {w: i for i, w in enumerate(meta["vocabularies"]["vocab"])}
rows = [[vocab.get(w, meta["specials"]["unk"]) for w in t.lower().split()] for t in texts]
ids = np.zeros((len(rows), max(map(len, rows))), dtype=np.int64)
for i, r in enumerate(rows):
    ids[i, :len(r)] = r
session = ort.InferenceSession("m.onnx", providers=["CPUExecutionProvider"])
(logits,) = session.run(["logits"], {"ids": ids, "lengths": np.array([len(r) for r in rows], dtype=np.int64)})
probs = np.exp(logits - logits.max(-1, keepdims=True))
probs /= probs.sum(-1, keepdims=True)
assert not any(name == "grutool" or name.startswith("grutool.") for name in sys.modules)
print(json.dumps([dict(zip(meta["vocabularies"]["labels"], map(float, p))) for p in probs]))
"""


def test_default_onnx_export_is_self_contained_and_runs_moved_with_onnxruntime_alone(tmp_path):
    """The dynamo exporter's default keeps weights in an external-data file named after the path it writes
    (here a temporary one): the export must hold every weight itself, leave no other file on re-export, and
    run from another folder with onnxruntime and the JSON alone."""
    import subprocess

    run = _train(tiny_config(tmp_path), "plain")  # bidirectional, no char features: inputs ids, lengths
    first = tmp_path / "first"
    first.mkdir()
    for _ in range(2):
        export_ok(run, "-o", first / "m.onnx")
        assert sorted(p.name for p in first.iterdir()) == ["m.onnx", "m.onnx.json"]
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    for name in ("m.onnx", "m.onnx.json"):
        shutil.move(first / name, moved / name)
    texts = ["a good film", "really awful and dull service", "superb", "the food was quite boring"]
    result = subprocess.run([sys.executable, "-c", RUN_ELSEWHERE, json.dumps(texts)], cwd=moved,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    want = [json.loads(line)["probs"] for line in invoke("infer", run, *texts, "--jsonl").stdout.splitlines()]
    assert len(got) == len(want) == len(texts)
    for g, w in zip(got, want):
        assert g.keys() == w.keys() and all(abs(g[k] - w[k]) < 1e-5 for k in w), (g, w)
    assert sorted(p.name for p in moved.iterdir()) == ["m.onnx", "m.onnx.json"]


@pytest.mark.parametrize("fmt,name", [("torchscript", "m.pt"), ("onnx", "m.onnx")])
def test_export_to_a_full_disk_is_one_line_and_leaves_nothing(classifier_run, tmp_path, monkeypatch, fmt, name):
    """torch.jit.save into a full disk aborted the process (SIGABRT) and left `.m.pt.*.tmp` behind; every graph
    is now serialised in memory and written through grutool.atomic (simulated as its tests do: fsync fails)."""
    import errno

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("grutool.atomic.os.fsync", full)
    exporter = ["--exporter", "legacy"] if fmt == "onnx" else []  # (torchscript would say it ignores it)
    result = invoke("export", classifier_run, "--format", fmt, *exporter, "-o", tmp_path / name)
    assert_user_error(result, f"{name}: no space left on", "needed ~", "free some space")
    assert list(tmp_path.iterdir()) == []


def test_export_into_a_read_only_folder_is_refused_before_any_work(classifier_run, tmp_path, monkeypatch):
    """-o in a read-only folder, and the default output (RUN/model.onnx) in a read-only run directory: one line
    before the model is even loaded (it was an OSError traceback after the export)."""
    import os

    run = Path(shutil.copytree(classifier_run, tmp_path / "run", ignore=shutil.ignore_patterns("model*")))
    locked = tmp_path / "locked"
    locked.mkdir()
    read_only = {locked.resolve(), run.resolve()}  # simulated: as root (CI containers) chmod does not stop writes
    access = os.access
    monkeypatch.setattr("grutool.atomic.os.access",
                        lambda p, mode, **kw: not (mode & os.W_OK and Path(p).resolve() in read_only)
                        and access(p, mode, **kw))

    def work(*args):
        raise AssertionError("the export started before its output folder was checked")

    monkeypatch.setattr("grutool.export.load_models", work)
    before = sorted(p.name for p in run.iterdir())
    assert_user_error(invoke("export", classifier_run, "-o", locked / "m.onnx"),
                      "--output", f"folder {locked} is not writable")
    assert_user_error(invoke("export", run, "--format", "torchscript"), f"folder {run} is not writable")
    assert list(locked.iterdir()) == [] and sorted(p.name for p in run.iterdir()) == before


def test_a_family_without_an_export_is_refused_up_front(tmp_path):
    """lm declares `exporter = None`: a user error before any model is loaded, not a traceback."""
    run = tmp_path / "lm"
    shutil.copytree(Path(__file__).resolve().parents[1] / "fixtures" / "runs_v1" / "lm", run)
    result = invoke("export", run, "--format", "torchscript", "--output", tmp_path / "m.pt")
    assert result.exit_code == 2, result.output
    assert "task lm: its runs cannot be exported yet" in result.output
    assert "`grutool infer` and `grutool serve` run its checkpoint" in result.output  # the way on; it said
    assert "no export module in its family" not in result.output                     # grutool's own wiring


@pytest.mark.parametrize("backend", ["onnx", "torchscript"])
def test_a_family_without_an_export_refuses_an_export_backend_without_sending_to_export(tmp_path, backend):
    """Before: `infer runs/lm --backend onnx` said 'no export here ...; write one with `grutool export ...`',
    a command that lm refuses; now the one line says the family has no export and to use --backend torch."""
    run = tmp_path / "lm"
    shutil.copytree(Path(__file__).resolve().parents[1] / "fixtures" / "runs_v1" / "lm", run)
    result = invoke("infer", run, "--backend", backend)
    assert_user_error(result, "--backend", "task lm has no", "--backend torch")
    assert "grutool export" not in result.output


def test_readme_onnxruntime_example_runs_on_a_moved_export(tmp_path):
    """The README's Export section: its Python block, run beside a copied model.onnx + model.onnx.json, needs
    neither grutool nor torch and predicts what `grutool infer` predicts."""
    import re
    import subprocess

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?)```", readme.split("## Export", 1)[1], re.S).group(1)
    run = _train(tiny_config(tmp_path), "plain")  # as configs/sentiment.yaml: no char features
    (tmp_path / "out").mkdir()
    export_ok(run, "--exporter", "legacy", "-o", tmp_path / "out" / "model.onnx")
    moved = tmp_path / "elsewhere"
    shutil.copytree(tmp_path / "out", moved)
    check = "\nimport sys\nassert not [m for m in sys.modules if m.split('.')[0] in ('grutool', 'torch')]\n"
    result = subprocess.run([sys.executable, "-c", code + check], cwd=moved, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    texts = ["What a lovely little film.", "The battery died in an hour."]
    want = [line.split("\t")[0] for line in invoke("infer", run, *texts).stdout.splitlines()]
    assert result.stdout.strip() == repr(want)
