"""`grutool shapes`: every reported shape and count against what PyTorch produces, and checks that can fail."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from typer.testing import CliRunner

from grutool import shapes
from grutool.cli.app import app
from grutool.shapes import LayerSpec, layer_report
from grutool.shapes import reference as reference_cells

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()
I, H, B, T = 4, 6, 3, 5
LENGTHS = (5, 2, 4)  # unsorted, with padding
GATES = {"gru": 3, "lstm": 4, "rnn": 1}
CELLS = {"gru": nn.GRU, "lstm": nn.LSTM, "rnn": nn.RNN}  # PyTorch's own modules: the reference


def reference(cell, layers, bidirectional, batch_first, lengths, proj_size=0, bias=True):
    """What PyTorch itself produces for these settings, computed here without grutool.shapes."""
    kwargs = {"proj_size": proj_size} if proj_size else {}
    m = CELLS[cell](I, H, layers, bias=bias, batch_first=batch_first, bidirectional=bidirectional, **kwargs)
    x = torch.randn((B, T, I) if batch_first else (T, B, I))
    ref = {"input": list(x.shape)}
    if lengths:
        packed = pack_padded_sequence(x, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=False)
        out, state = m(packed)
        ref["packed_input"] = list(packed.data.shape)
        ref["batch_sizes"] = packed.batch_sizes.tolist()
        ref["packed_output"] = list(out.data.shape)
        out, _ = pad_packed_sequence(out, batch_first=batch_first, total_length=T)
    else:
        out, state = m(x)
    h_n, c_n = state if cell == "lstm" else (state, None)
    ref.update(output=list(out.shape), h_n=list(h_n.shape), h0=list(h_n.shape))
    if c_n is not None:
        ref.update(c_n=list(c_n.shape), c0=list(c_n.shape))
    ref["params"] = [(n, list(p.shape)) for n, p in m.named_parameters()]
    ref["total"] = sum(p.numel() for p in m.parameters())
    ref["per_layer"] = [sum(p.numel() for n, p in m.named_parameters() if n.endswith((f"_l{k}", f"_l{k}_reverse")))
                        for k in range(layers)]
    ref["by_cell"] = {c: sum(p.numel() for p in cls(I, H, layers, bias=bias, bidirectional=bidirectional).parameters())
                      for c, cls in CELLS.items()}
    return ref


def assert_report_matches(report, ref, cell):
    tensors = {t["name"]: t for t in report["tensors"]}
    expected = {"input", "h0", "output", "h_n"} | ({"c0", "c_n"} if cell == "lstm" else set())
    assert set(tensors) == expected
    for name in expected:
        assert tensors[name]["shape"] == ref[name], name
        assert tensors[name]["matches_formula"], name
    if "batch_sizes" in ref:
        p = report["packed"]
        assert p["input_data"]["shape"] == ref["packed_input"]
        assert p["batch_sizes"]["values"] == ref["batch_sizes"]
        assert p["output_data"]["shape"] == ref["packed_output"]
        assert p["padding_mask"] == [[t >= n for t in range(T)] for n in LENGTHS]
    else:
        assert report["packed"] is None
    params = report["parameters"]
    assert [(r["name"], r["shape"]) for r in params["tensors"]] == ref["params"]
    for r in params["tensors"]:
        assert r["matches_formula"], r["name"]
        if r["gates"] is not None:  # the rows split into H-row blocks, PyTorch's gate order
            assert len(r["gates"]) == GATES[cell] and r["gates"][-1]["rows"][1] == r["shape"][0]
    assert params["total"] == ref["total"]
    assert [r["total"] for r in params["per_layer"]] == ref["per_layer"]
    assert {r["cell"]: r["parameters"] for r in params["by_cell"]} == ref["by_cell"]
    failed = [c for c in report["identities"] if not c["passed"]]
    assert not failed, failed
    assert report["all_passed"]


GRID = list(itertools.product(["gru", "lstm", "rnn"], [1, 2], [False, True], [False, True], [None, LENGTHS]))


@pytest.mark.parametrize("cell,layers,bidirectional,batch_first,lengths", GRID)
def test_grid_matches_pytorch(cell, layers, bidirectional, batch_first, lengths):
    spec = LayerSpec(cell=cell, input_size=I, hidden_size=H, num_layers=layers, bidirectional=bidirectional,
                     batch_first=batch_first, batch=B, seq_len=T, lengths=lengths)
    report = layer_report(spec)
    assert_report_matches(report, reference(cell, layers, bidirectional, batch_first, lengths), cell)
    names = {c["name"] for c in report["identities"]}
    assert ("last_layer_backward_final" in names) == bidirectional
    assert ("padding_is_zero" in names) == (lengths is not None)


@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, True)])
def test_lstm_projection(layers, bidirectional):
    report = layer_report(LayerSpec(cell="lstm", input_size=I, hidden_size=H, num_layers=layers,
                                    bidirectional=bidirectional, lengths=LENGTHS, seq_len=T, proj_size=2),
                          want_explain=True)
    ref = reference("lstm", layers, bidirectional, False, LENGTHS, proj_size=2)
    assert_report_matches(report, ref, "lstm")
    D = 2 if bidirectional else 1
    t = {r["name"]: r["shape"] for r in report["tensors"]}
    assert t["h_n"] == [layers * D, B, 2] and t["output"][-1] == D * 2 and t["c_n"] == [layers * D, B, H]
    assert any(r["name"] == "weight_hr_l0" and r["shape"] == [2, H] for r in report["parameters"]["tensors"])
    assert report["explain"]["step"]["passed"]
    # a direction's half of output is P wide, not H: the claims said output[..., :H] and output[..., H:]
    halves = [c["claim"] for c in report["identities"] if "half" in c["claim"]]
    assert len(halves) == (2 if bidirectional else 0) and all("output[..., :P]" in c or "output[..., P:]" in c for c in halves), halves


def test_no_bias_has_no_bias_tensors_and_the_ratios_hold():
    report = layer_report(LayerSpec(cell="gru", input_size=I, hidden_size=H, num_layers=2, bias=False),
                          want_explain=True)
    assert_report_matches(report, reference("gru", 2, False, False, None, bias=False), "gru")
    assert not any(r["name"].startswith("bias") for r in report["parameters"]["tensors"])
    by_cell = {r["cell"]: r["parameters"] for r in report["parameters"]["by_cell"]}
    assert 4 * by_cell["gru"] == 3 * by_cell["lstm"] and 4 * by_cell["rnn"] == by_cell["lstm"]
    assert report["explain"]["step"]["passed"]


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
def test_explain_equations_and_from_scratch_step(cell):
    report = layer_report(LayerSpec(cell=cell, num_layers=2, bidirectional=True, batch_first=True), want_explain=True)
    ex = report["explain"]
    assert ex["step"]["passed"] and ex["step"]["max_abs_diff"] <= shapes.TOL
    assert ex["gate_order"] == {"gru": "r|z|n", "lstm": "i|f|g|o", "rnn": "h"}[cell]
    assert "weight_ih_l0" in ex["step"]["weights_used"] and "weight_hh_l1_reverse" in ex["step"]["weights_used"]
    text = "\n".join(ex["equations"])
    if cell == "gru":
        assert "r_t ⊙ (W_hn h_{t-1} + b_hn)" in text
    elif cell == "lstm":
        assert "c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t" in text
    else:
        assert "tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)" in text


# --- the checks can fail -------------------------------------------------------------------------------


@pytest.fixture
def bidir_run():
    torch.manual_seed(0)
    m = torch.nn.GRU(I, H, 1, bidirectional=True).double()
    x = torch.randn(T, B, I, dtype=torch.float64)
    out, h_n = m(x)
    return out, h_n


def test_a_wrong_claim_is_reported_as_failure(bidir_run):
    out, h_n = bidir_run
    # Wrong: h_n[-1] is the backward direction, not the forward half at the last step.
    wrong = shapes.compare("wrong", "h_n[-1] equals output[-1, :, :H]", h_n[-1], out[-1, :, :H])
    assert not wrong["passed"] and wrong["max_abs_diff"] > 1e-3
    right = shapes.compare("right", "h_n[-2] equals output[-1, :, :H]", h_n[-2], out[-1, :, :H])
    assert right["passed"] and right["max_abs_diff"] <= shapes.TOL
    mismatch = shapes.compare("shape", "h_n equals output", h_n, out)
    assert not mismatch["passed"] and "shapes differ" in mismatch["detail"]


def test_identity_functions_fail_on_wrong_tensors(bidir_run):
    out, h_n = bidir_run
    full = torch.full((B,), T)
    assert shapes.last_forward_identity(out, h_n, full, 2)["passed"]
    assert not shapes.last_forward_identity(out, h_n[[1, 0]], full, 2)["passed"]  # directions swapped
    assert shapes.first_backward_identity(out, h_n)["passed"]
    assert not shapes.first_backward_identity(out, h_n[[1, 0]])["passed"]
    # Claiming every sequence ends at T-1 when they are shorter is wrong too.
    assert not shapes.last_forward_identity(out, h_n, torch.tensor([5, 2, 4]), 2)["passed"]
    per_layer = h_n.view(1, 2, B, H)
    assert shapes.layout_identity(h_n, per_layer, 1)["passed"]
    assert not shapes.layout_identity(h_n, per_layer.flip(1), 1)["passed"]
    assert not shapes.padding_identity(out, torch.tensor([5, 2, 4]))["passed"]  # unpacked run: no zeros


def test_gru_reset_placement_matters():
    """The paper's r ⊙ (W_hn h) without b_hn inside differs from nn.GRU: the step check would catch it."""
    torch.manual_seed(1)
    m = torch.nn.GRU(I, H).double()
    x, h = torch.randn(B, I, dtype=torch.float64), torch.randn(B, H, dtype=torch.float64)
    w = (m.weight_ih_l0, m.weight_hh_l0, m.bias_ih_l0, m.bias_hh_l0)
    _, h_n = m(x[None], h[None])
    assert shapes.compare("ok", "", shapes.gru_step(x, h, *w), h_n[0])["passed"]

    def wrong_step(x, h, w_ih, w_hh, b_ih, b_hh):
        i_r, i_z, i_n = (x @ w_ih.T + b_ih).chunk(3, -1)
        h_r, h_z, h_n = (h @ w_hh.T).chunk(3, -1)
        b_r, b_z, b_n = b_hh.chunk(3)
        r, z = torch.sigmoid(i_r + h_r + b_r), torch.sigmoid(i_z + h_z + b_z)
        return (1 - z) * torch.tanh(i_n + r * h_n + b_n) + z * h  # b_hn outside the reset

    assert not shapes.compare("wrong", "", wrong_step(x, h, *w), h_n[0])["passed"]


def test_a_failing_check_fails_the_command(monkeypatch):
    monkeypatch.setattr(reference_cells, "gru_step", lambda x, h, *w: h)  # a from-scratch step that is wrong
    report = layer_report(LayerSpec(), want_explain=True)
    assert not report["explain"]["step"]["passed"] and not report["all_passed"]
    r = runner.invoke(app, ["shapes", "--explain"])
    assert r.exit_code == 1 and "✗" in r.stdout and "check failed" in r.stderr


# --- the command -------------------------------------------------------------------------------------


def test_cli_json_is_one_object_and_matches_pytorch():
    args = ["shapes", "--cell", "lstm", "--layers", "2", "--bidirectional", "--batch-first",
            "--input-size", str(I), "--hidden-size", str(H), "--lengths", ",".join(map(str, LENGTHS)),
            "--seq-len", str(T), "--json"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert len(r.stdout.strip().splitlines()) == 1
    report = json.loads(r.stdout)
    assert report["settings"]["batch"] == B  # from the number of lengths
    assert_report_matches(report, reference("lstm", 2, True, True, LENGTHS), "lstm")


def test_cli_defaults_and_tables():
    r = runner.invoke(app, ["shapes", "--layers", "2", "--bidirectional", "--explain"])
    assert r.exit_code == 0, r.output
    for text in ("tensors", "(L·D, B, H)", "(4, 3, 20)", "weight_hh_l1_reverse", "r|z|n", "identities",
                 "h_n[-2]", "r_t ⊙ (W_hn h_{t-1} + b_hn)", "[forward | backward]"):
        assert text in r.stdout, text
    assert "✓" in r.stdout and "✗" not in r.stdout
    r = runner.invoke(app, ["shapes", "--lengths", "5,3,2", "--seq-len", "6"])
    assert r.exit_code == 0 and "batch_sizes = [3, 3, 2, 1, 1]" in r.stdout and "■■■···" in r.stdout


def test_shapes_help():
    r = runner.invoke(app, ["shapes", "--help"])
    assert r.exit_code == 0
    for option in ("--cell", "--lengths", "--proj-size", "--config", "--explain", "--json"):
        assert option in r.stdout


def test_a_layer_report_skips_datasets_and_the_config_schema():
    """A layer report reads no data: neither datasets nor the config schema is imported (--help: tests/cli)."""
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom grutool.cli.app import app\n"
            "r = CliRunner().invoke(app, ['shapes', '--json'])\nassert r.exit_code == 0, r.output\n"
            "heavy = [m for m in ('datasets', 'pandas', 'grutool.config') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


BAD = [
    (["--hidden-size", "0"], "--hidden-size: must be > 0"),
    (["--input-size", "-3"], "--input-size: must be > 0"),
    (["--layers", "0"], "--layers: must be > 0"),
    (["--batch", "0"], "--batch: must be > 0"),
    (["--seq-len", "0"], "--seq-len: must be > 0"),
    (["--lengths", "5,0,2"], "--lengths: length 0 at position 2"),
    (["--lengths", "6,3,2", "--seq-len", "5"], "longer than --seq-len 5"),
    (["--lengths", "5,3", "--batch", "3"], "2 length(s) for --batch 3"),
    (["--lengths", "5,x"], "comma-separated integers"),
    (["--proj-size", "3"], "--proj-size: only nn.LSTM has a projection"),
    (["--cell", "rnn", "--proj-size", "3"], "--proj-size: only nn.LSTM"),
    (["--cell", "lstm", "--proj-size", "20"], "smaller than --hidden-size 20"),
    # it said `only nn.LSTM has a projection` to a user who had asked for --cell lstm
    (["--cell", "lstm", "--proj-size", "4", "--kernel", "fused"], "--proj-size: grutool's fused LSTM kernel has no "
                                                                   "projection (PyTorch's nn.LSTM has); use --kernel native"),
    (["--cell", "lstm", "--proj-size", "4", "--kernel", "compiled"], "grutool's compiled LSTM kernel has no projection"),
    (["--dropout", "1.5"], "--dropout: must be in [0, 1)"),
    (["--config", "configs/sentiment.yaml", "--cell", "lstm"], "--cell: not used with --config"),
    (["--config", "no/such.yaml"], "config file not found"),
    (["--config", "configs/sentiment.yaml", "--set", "model.hiden_size=32"], "did you mean 'hidden_size'"),
    (["--set", "model.hidden_size=32"], "--set model.hidden_size=32: sets a field of a config; give it with --config"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_exits_2_with_one_line(args, message):
    r = runner.invoke(app, ["shapes", *args])
    assert r.exit_code == 2, r.output
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], r.stderr
    assert "Traceback" not in r.output


def test_dropout_with_one_layer_warns_and_runs():
    r = runner.invoke(app, ["shapes", "--dropout", "0.5", "--json"])
    assert r.exit_code == 0, r.output
    assert "warning:" in r.stderr and "no effect with --layers 1" in r.stderr
    report = json.loads(r.stdout)
    assert report["warnings"] and report["all_passed"]
    with pytest.warns(UserWarning, match="no effect"):
        layer_report(LayerSpec(dropout=0.5))
    r = runner.invoke(app, ["shapes", "--dropout", "0.5", "--layers", "2", "--json"])
    assert r.exit_code == 0 and r.stderr == "" and json.loads(r.stdout)["settings"]["dropout"] == 0.5


def test_config_agrees_with_the_model_train_builds(monkeypatch):
    from grutool.config_file import load_config
    from grutool.families import get_task

    monkeypatch.chdir(ROOT)  # the config's data paths are relative to the repository
    r = runner.invoke(app, ["shapes", "--config", "configs/sentiment.yaml", "--lengths", "5,3,2", "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)

    cfg = load_config("configs/sentiment.yaml")
    prepared = get_task(cfg.task).prepare(cfg)
    model = get_task(cfg.task).build_model(cfg, prepared)
    assert report["parameters"]["total"] == sum(p.numel() for p in model.parameters())
    assert report["vocab_size"] == len(prepared.vocab) and report["num_classes"] == len(prepared.labels)
    assert {m["module"]: m["parameters"] for m in report["parameters"]["by_module"]} == \
        {n: sum(p.numel() for p in c.parameters()) for n, c in model.named_children()}

    trace = {row["module"]: row for row in report["trace"]}
    order = [row["module"] for row in report["trace"]]
    assert order.index("embedding") < order.index("encoder") < order.index("pooling") < order.index("head")
    E, Hm, C = cfg.model.embedding_dim, cfg.model.hidden_size, len(prepared.labels)
    assert trace["embedding"]["output"] == [3, 5, E]
    assert trace["encoder"]["output"] == {"outputs": [3, 5, 2 * Hm], "final": [3, 2 * Hm], "h_n": [2, 3, Hm],
                                         "state": [2, 3, Hm]}
    assert trace["encoder.rnn"]["input"]["packed_data"] == [10, E]
    # inputs by the forward's parameter names, a recurrent layer's outputs by PyTorch's (they were unnamed)
    assert trace["encoder"]["input"] == {"x": [3, 5, E], "lengths": [3], "state": None}
    assert trace["encoder.rnn"]["output"] == {"output": {"packed_data": [10, 2 * Hm], "batch_sizes": [3, 3, 2, 1, 1]},
                                             "h_n": [2, 3, Hm]}
    assert trace["pooling"]["input"] == {**trace["encoder"]["output"], "mask": [3, 5]}
    assert trace["pooling"]["output"] == [3, 2 * Hm] and trace["head"]["output"] == [3, C]
    assert report["logits"] == [3, C]
    assert all(c["passed"] for c in report["checks"]) and report["all_passed"]
    enc = report["encoder"]
    assert enc["parameters"]["total"] == sum(p.numel() for p in model.encoder.rnn.parameters())
    assert enc["settings"]["batch_first"] and enc["settings"]["lengths"] == [5, 3, 2]


def _traced_config(path, batch: int) -> dict:
    """`shapes --config PATH --batch N --json`, checked to pass and to count the parameters of the model train builds."""
    from grutool.config_file import load_config
    from grutool.families import get_task

    r = runner.invoke(app, ["shapes", "--config", str(path), "--batch", str(batch), "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["all_passed"]
    cfg = load_config(path)
    prepared = get_task(cfg.task).prepare(cfg)
    model = get_task(cfg.task).build_model(cfg, prepared)
    assert report["parameters"]["total"] == sum(p.numel() for p in model.parameters())
    return report


@pytest.mark.parametrize("name", ["tagging", "reverse"])
def test_config_traces_tagger_and_seq2seq_models_as_train_builds_them(name):
    """Tagger (chars + CRF) and seq2seq (encoder, bridge, attention, decoder): the production model,
    traced on the first training examples; counts equal the model `train` builds."""
    report = _traced_config(f"configs/{name}.yaml", 3)
    traced = {row["module"] for row in report["trace"]}
    assert {"embedding", "encoder", "encoder.rnn"} <= traced or {"source_embedding", "encoder", "decoder"} <= traced
    if name == "reverse":
        assert {"bridge", "attention", "decoder"} <= traced
        # the training pass, teacher-forced: one decoder call over the whole target; eval mode generated each
        # output too, the decoder rows repeated 13 times
        assert [row["module"] for row in report["trace"]].count("decoder") == 1
    assert report["batch"]["ids"][0] == 3


def test_config_traces_a_char_feature_classifier_on_real_examples(tmp_path, monkeypatch):
    """A classifier that reads characters is traced on its first training examples (not random ids),
    with the char encoder's shapes; --lengths cannot describe its input and is refused."""
    import yaml

    from grutool.config_file import load_config

    monkeypatch.chdir(ROOT)
    raw = yaml.safe_load((ROOT / "configs" / "sentiment.yaml").read_text())
    raw["model"].update(char_features=True, char_embedding_dim=8, char_hidden_size=5)
    path = tmp_path / "chars.yaml"
    path.write_text(yaml.safe_dump(raw))
    report = _traced_config(path, 4)
    cfg = load_config(path)
    trace = {row["module"]: row for row in report["trace"]}
    B, T = report["batch"]["ids"]
    assert B == 4 and trace["chars"]["output"] == [4, T, 10]
    assert trace["encoder.rnn"]["input"]["packed_data"][1] == cfg.model.embedding_dim + 10

    r = runner.invoke(app, ["shapes", "--config", str(path), "--lengths", "5,3"])
    assert r.exit_code == 2 and "without char features" in r.output


@pytest.mark.parametrize("kernel", ["auto", "native", "fused"])
def test_every_check_holds_on_the_module_each_kernel_builds(kernel):
    result = runner.invoke(app, ["shapes", "--layers", "2", "--bidirectional", "--lengths", "5,2,4",
                                 "--kernel", kernel, "--explain", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["all_passed"] and report["settings"]["kernel"] == kernel
    assert ("grutool.modules.rnn.gru.GRU" in report["module"]) and f"kernel {kernel}" in report["module"]
    assert sum(report["paths"].values()) > 1 and report["path"] in report["paths"]


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
@pytest.mark.parametrize("kernel", ["native", "fused"])
def test_the_header_names_the_module_that_ran(cell, kernel):
    result = runner.invoke(app, ["shapes", "--cell", cell, "--kernel", kernel, "--lengths", "5,2,4"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())  # rich may wrap the header line
    pytorch, own = f"nn.{cell.upper()}", f"grutool.modules.rnn.{cell}.{cell.upper()}"
    if kernel == "native":  # grutool's class hands the call to PyTorch's forward: PyTorch's module ran
        assert text.startswith(f"{pytorch} (PyTorch's kernel: {own} with kernel native calls {pytorch}.forward)")
    else:
        assert text.startswith(f"{own} (grutool's fused CPU kernel, kernel fused; {pytorch}'s parameters and results)")
    assert not any(f"nn.{other.upper()}" in text.split(" L=1")[0] for other in {"gru", "lstm", "rnn"} - {cell})
    assert "picks per call" not in text  # one kernel ran every call
    report = json.loads(runner.invoke(app, ["shapes", "--cell", cell, "--kernel", kernel, "--lengths", "5,2,4",
                                            "--explain", "--json"]).stdout)
    assert report["all_passed"] and set(report["paths"]) == {kernel}
    assert ("fused CPU kernel" if kernel == "fused" else "PyTorch's kernel") in report["explain"]["step"]["claim"]


def test_kernel_auto_says_which_kernel_each_call_ran():
    # Calls of 2 steps run PyTorch's GRU under auto (with the compiled kernel built or not); packed ones of 5
    # steps with gradients run grutool's compiled kernel (its fused one where that cannot be built), and the
    # identities' shorter calls PyTorch's.
    from grutool.modules.rnn import compiled

    dense = json.loads(runner.invoke(app, ["shapes", "--seq-len", "2", "--json"]).stdout)
    assert dense["module"].startswith("nn.GRU (PyTorch's kernel") and set(dense["paths"]) == {"native"}
    result = runner.invoke(app, ["shapes", "--lengths", "5,2,4"])
    text = " ".join(result.stdout.split())
    ran = "compiled C++" if compiled.available() else "fused"
    assert text.startswith(f"grutool.modules.rnn.gru.GRU (grutool's {ran} CPU kernel, kernel auto;")
    assert "kernel auto picks per call (grutool.kernels.AUTO); this report's" in text
    assert f"on grutool's {ran} CPU kernel" in text and "on PyTorch's kernel" in text


def test_unknown_kernel_is_a_usage_error():
    result = runner.invoke(app, ["shapes", "--cell", "rnn", "--kernel", "fast"])
    assert result.exit_code == 2
    assert "--kernel: unknown kernel 'fast'" in result.output


def test_config_with_layer_norm_and_residual_is_traced_and_proved(tmp_path):
    cfg = tmp_path / "deep.yaml"
    cfg.write_text(f"data:\n  train: {ROOT}/data/sentiment/train.tsv\nmodel:\n  embedding_dim: 32\n  hidden_size: 16\n"
                   "  num_layers: 3\n  layer_norm: true\n  residual: true\n", encoding="utf-8")
    result = runner.invoke(app, ["shapes", "--config", str(cfg), "--lengths", "5,2,4", "--explain", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["all_passed"]
    layer = report["encoder"]
    assert layer["settings"]["layer_norm"] and layer["settings"]["residual"]
    names = [t["name"] for t in layer["parameters"]["tensors"]]
    assert "layer_norms.0.weight" in names and "layer_norms.1.bias" in names
    # With a residual on the last layer, the final-state claims are about its recurrent output, and say so.
    assert any("residual" in c["claim"] for c in layer["identities"])


@pytest.mark.parametrize("cell", ["lstm", "rnn"])
def test_fused_lstm_and_rnn_prove_their_identities_on_packed_input(cell):
    result = runner.invoke(app, ["shapes", "--cell", cell, "--layers", "2", "--bidirectional", "--lengths", "5,2,4",
                                 "--kernel", "fused", "--explain", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["all_passed"] and f"grutool.modules.rnn.{cell}." in report["module"]


def test_config_trace_says_dense_for_equal_lengths_and_fits_80_columns():
    """The layer section explains the call the encoder made: dense for equal lengths, packed for mixed ones."""
    import os
    import subprocess
    import sys

    from grutool.shapes import config_report

    root = Path(__file__).resolve().parents[2]
    dense = config_report(root / "configs" / "sentiment.yaml")
    assert len(set(dense["batch"]["lengths"])) == 1 and not dense["encoder"]["packed"]
    assert "packed" not in dense["encoder"]["tensors"][0]["meaning"]
    packed = config_report(root / "configs" / "sentiment.yaml", lengths=[5, 3, 2])
    assert packed["encoder"]["packed"] and "packed before the call" in packed["encoder"]["tensors"][0]["meaning"]
    env = {**os.environ, "COLUMNS": "80", "PYTHONPATH": str(root)}
    proc = subprocess.run([sys.executable, "-m", "grutool", "shapes", "--config", "configs/sentiment.yaml"],
                          cwd=root, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout.split("trace (forward hooks, call order)")[1].split("logits")[0]
    assert max(len(l) for l in table.splitlines()) <= 80
    assert "embedding_dropout" in table and "(3,5,128)" in table


@pytest.mark.parametrize("args", [["configs/tagging.yaml", "--set", "model.char_features=true"],
                                  ["configs/sentiment.yaml", "--set", "model.num_layers=2", "--set",
                                   "model.layer_norm=true", "--lengths", "5,3,2"]])
def test_config_trace_keeps_every_name_and_shape_whole_at_80_columns(args):
    """Wider traces were cut at 80 columns, a real terminal's too: `output packed (64,32…` for (64,328),
    `chars.encoder.r…`, `paramete…`. Now a narrower table where it fits, else whole lines the terminal wraps."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "COLUMNS": "80", "PYTHONPATH": str(root)}
    run = [sys.executable, "-m", "grutool", "shapes", "--config", *args]
    proc = subprocess.run(run, cwd=root, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout.split("trace (forward hooks, call order)")[1].split("\nlogits")[0]
    report = json.loads(subprocess.run(run + ["--json"], cwd=root, env=env, capture_output=True, text=True).stdout)
    from grutool.cli.shapes_cmd import _shape_lines

    assert "…" not in table, table
    for row in report["trace"]:
        assert row["module"] in table and f"{row['parameters']:,}" in table
        for shape in (_shape_lines(row["input"]) + "\n" + _shape_lines(row["output"])).splitlines():
            assert shape in table, (shape, table)


def test_config_header_counts_one_channel_in_the_singular(monkeypatch):
    """`shapes --config configs/sines_covariates.yaml` (one target, setting S) said '1 channels per step'."""
    monkeypatch.chdir(ROOT)
    result = runner.invoke(app, ["shapes", "--config", "configs/sines_covariates.yaml"])
    assert result.exit_code == 0, result.output
    assert "1 channel per step, 1 target;" in result.output.splitlines()[0]


def test_config_header_shows_the_inputs_beside_the_values(monkeypatch):
    """A forecaster with covariates read '1 channel per step ... values (3, 28, 1)', as if the covariates were not
    read at all: they come beside the values, and the header now names each of those inputs with its shape."""
    monkeypatch.chdir(ROOT)
    result = runner.invoke(app, ["shapes", "--config", "configs/sines_covariates.yaml", "--json"])
    assert result.exit_code == 0, result.output
    inputs = json.loads(result.output)["batch"]["inputs"]
    assert {"past", "future", "static"} <= set(inputs), inputs
    assert inputs["past"][:2] == inputs["future"][:1] + [28] and inputs["future"][1] == 28 + 14, inputs
    header = runner.invoke(app, ["shapes", "--config", "configs/sines_covariates.yaml"]).output.splitlines()[0]
    for name, shape in inputs.items():
        assert f"{name} {tuple(shape)}" in header, header
    plain = runner.invoke(app, ["shapes", "--config", "configs/sines.yaml"]).output.splitlines()[0]
    assert "values (3, 28, 3), lengths" in plain, plain  # no covariates: nothing beside the values


def test_set_changes_the_config_s_model_as_train_s_set_does(monkeypatch):
    """`shapes --config C --set KEY=VALUE` traces the model `train C --set KEY=VALUE` builds (bench and every other
    config command had --set; shapes had none)."""
    from grutool.config_file import load_config
    from grutool.families import get_task

    monkeypatch.chdir(ROOT)
    reports = {}
    for hidden in (None, 24):
        extra = ["--set", f"model.hidden_size={hidden}"] if hidden else []
        r = runner.invoke(app, ["shapes", "--config", "configs/sentiment.yaml", "--json", *extra])
        assert r.exit_code == 0, r.output
        reports[hidden] = json.loads(r.stdout)
    assert reports[24]["symbols"]["H"] == 24 != reports[None]["symbols"]["H"]
    cfg = load_config(ROOT / "configs/sentiment.yaml", ["model.hidden_size=24"])
    task = get_task(cfg.task)
    prepared = task.prepare(cfg)
    model = task.build_model(cfg, prepared)
    assert reports[24]["parameters"]["total"] == sum(p.numel() for p in model.parameters())


def test_config_logits_line_names_only_the_outputs_the_model_has(monkeypatch):
    """A plain tagger's logits line read `emissions (3, 10, 7), tags (3, 10), intent -`: a joint model's output it
    does not have. The line names what it returns; --json keeps the field, null."""
    monkeypatch.chdir(ROOT)
    result = runner.invoke(app, ["shapes", "--config", "configs/tagging.yaml"])
    assert result.exit_code == 0, result.output
    [line] = [l for l in result.output.splitlines() if l.startswith("logits ")]
    assert line.startswith("logits emissions (3, 10, 7), tags (3, 10); parameters"), line
    report = json.loads(runner.invoke(app, ["shapes", "--config", "configs/tagging.yaml", "--json"]).output)
    assert report["logits"]["intent"] is None


def test_a_kernel_that_cannot_be_built_is_a_labelled_warning_line(fresh):
    # shapes set up no logging, so the compiled kernel's fallback reached stderr bare, without the `warning: ` of
    # train and bench; the trace runs (on the other kernels) and says which kernel ran.
    fresh.setenv("CXX", "no-such-compiler-here")
    fresh.chdir(ROOT)
    result = runner.invoke(app, ["shapes", "--config", "configs/sentiment.yaml", "--lengths", "5,4,3"])
    assert result.exit_code == 0, result.output
    said = [line for line in result.output.splitlines() if "kernel compiled" in line]
    assert len(said) == 1 and said[0].startswith("warning: kernel compiled: not available (no C++ compiler"), said
    assert "running the other kernels instead" in said[0]


def test_trace_names_an_lstm_s_states_and_leaves_a_plain_tuple_alone():
    from grutool.shapes.model import trace_model

    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(4, 6, batch_first=True)
            self.pair = Pair()

        def forward(self, x):
            out, _ = self.lstm(x)
            return self.pair(out, x)

    class Pair(nn.Module):
        def forward(self, a, b):
            return a.sum(-1), b.sum(-1)  # a plain tuple, not a recurrent layer's: its shapes, unnamed

    rows, _ = trace_model(Two(), torch.randn(2, 3, 4))
    row = {r["module"]: r for r in rows}
    assert row["lstm"]["output"] == {"output": [2, 3, 6], "h_n": [1, 2, 6], "c_n": [1, 2, 6]}
    assert row["pair"]["input"] == {"a": [2, 3, 6], "b": [2, 3, 4]} and row["pair"]["output"] == [[2, 3], [2, 3]]


def test_the_equal_lengths_hint_offers_only_what_shapes_accepts(monkeypatch):
    """A stream's chunks are all bptt steps (no hint), a tagger's batch is real examples (--batch, not --lengths,
    which shapes refuses there); only a random batch is offered --lengths, which then runs."""
    import re

    from conftest import invoke

    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    r = invoke("shapes", "--config", "configs/lm_stream.yaml")
    assert r.exit_code == 0 and "equal lengths" not in r.stdout and "--lengths" not in r.stdout, r.output
    r = invoke("shapes", "--config", "configs/sentiment.yaml")
    [offered] = re.findall(r"see them with --lengths ([\d,]+)", r.stdout)
    assert invoke("shapes", "--config", "configs/sentiment.yaml", "--lengths", offered).exit_code == 0


def test_a_tied_output_layer_is_marked_and_the_footer_says_what_the_rows_leave_out(monkeypatch):
    """configs/lm_stream.yaml ties its output layer to the embedding: the rows summed to 17,708 against a total of
    17,260, while a check said the counts add up (it counted a tied tensor once, the table twice); the footer
    read `logits logits (...)`."""
    from conftest import invoke

    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    report = json.loads(invoke("shapes", "--config", "configs/lm_stream.yaml", "--json").stdout)
    top = [r for r in report["trace"] if r["depth"] == 0]
    assert sum(r["parameters"] - r["tied_parameters"] for r in top) == report["parameters"]["total"]
    [out] = [r for r in top if r["module"] == "out"]
    [emb] = [r for r in top if r["module"] == "embedding"]
    assert out["tied_parameters"] == emb["parameters"] > 0 and emb["tied_parameters"] == 0
    text = invoke("shapes", "--config", "configs/lm_stream.yaml").stdout
    assert f"{emb['parameters']:,} tied" in text and "a tied tensor counted once" in text
    assert "logits logits" not in text and "outputs logits (3, 32, 28)" in text


def test_a_batch_past_the_data_or_the_cap_is_said(monkeypatch):
    """`--batch 100000` traced every training example (each also run alone) for minutes without a word; a batch
    larger than the training data was cut to it silently."""
    from conftest import assert_user_error, invoke

    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    assert_user_error(invoke("shapes", "--config", "configs/numeric.yaml", "--batch", "100000"),
                      "--batch: at most 256 examples are traced with --config (got 100,000)")
    r = invoke("shapes", "--config", "configs/numeric.yaml", "--batch", "200")
    assert r.exit_code == 0 and "--batch 200: the training data has 150 examples; all are traced" in r.stderr
    assert json.loads(invoke("shapes", "--config", "configs/numeric.yaml", "--batch", "200", "--json")
                      .stdout)["symbols"]["B"] == 150


def test_a_joint_config_s_header_counts_its_intents(tmp_path, monkeypatch):
    """`task joint, 869 tokens, 120 classes`: the intent head's classes were not said."""
    from conftest import invoke

    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    (tmp_path / "j.yaml").write_text(
        "task: joint\ndata: {train: data/tagging/travel/train, validation: data/tagging/travel/validation, "
        "format: parallel}\nmodel: {embedding_dim: 8, hidden_size: 8}\n", encoding="utf-8")
    report = json.loads(invoke("shapes", "--config", tmp_path / "j.yaml", "--json").stdout)
    assert report["num_intents"] == report["logits"]["intent"][-1] > 1
    header = invoke("shapes", "--config", tmp_path / "j.yaml").stdout.splitlines()[0]
    assert f"{report['num_classes']} classes, {report['num_intents']} intents;" in header, header


@pytest.mark.parametrize("config,said", [("numeric_regression.yaml", "predictions (3,);"),
                                         ("sines.yaml", "predictions (3, "), ("sentiment.yaml", "logits (3, 2);")])
def test_the_footer_names_a_regressor_s_and_a_forecaster_s_outputs_predictions(monkeypatch, config, said):
    """`shapes --config` of a regressor said `logits (3,)` and of a forecaster `logits (3, 14, 3)`: their outputs
    are the predicted values, not scores to softmax."""
    from conftest import invoke

    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    result = invoke("shapes", "--config", f"configs/{config}")
    assert result.exit_code == 0, result.output
    assert any(line.startswith(said) for line in result.stdout.splitlines()), result.stdout
    report = json.loads(invoke("shapes", "--config", f"configs/{config}", "--json").stdout)
    assert report["output_name"] == ("logits" if config == "sentiment.yaml" else "predictions")
