"""The task contract: every registered family trains, saves, loads, predicts and renders the same way."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import invoke
from grutool.families import TASKS

ROOT = Path(__file__).resolve().parents[2]

# One toy config per family, from the data shipped in data/ (joint: the travel intents + slots set).
TOY = {
    "classifier": ("configs/sentiment.yaml", {}),
    "tagger": ("configs/tagging.yaml", {}),
    "joint": ("configs/tagging.yaml", {"task": "joint", "data": {
        "train": "data/tagging/travel/train", "validation": "data/tagging/travel/validation",
        "test": "data/tagging/travel/test", "format": "parallel", "tag_column": None},
        "train": {"monitor": "sentence_accuracy"}}),
    "seq2seq": ("configs/reverse.yaml", {}),
    # Prompts of any text: a word model (unknown words read as <unk>), unconditioned.
    "lm": ("configs/lm.yaml", {"data": {"condition_column": None, "tokenizer": "word", "lowercase": True},
                               "train": {"monitor": "perplexity"}}),
    "regressor": ("configs/numeric_regression.yaml", {}),
    "forecast": ("configs/sines.yaml", {}),
}
# What each family predicts from (default: TEXTS): a forecaster reads a table's last rows; a regressor (numeric
# sequences) .ts data lines of 2 channels.
TEXTS = ["12345", "Mirela flies to Paris tomorrow ."]
_SINES = (ROOT / "data/sines/sines.csv").read_text(encoding="utf-8").splitlines()
INPUTS = {"forecast": ["\n".join(_SINES[:1] + _SINES[-40:]), "\n".join(_SINES[:1] + _SINES[-90:-30])],
          "regressor": ["0.1,0.5,0.9:3.1,3.3,3.4", "1,-1,1,-1,1:2.5,2.6,2.5,2.6,2.5"]}


def test_every_registered_task_has_toy_data():
    assert set(TOY) == set(TASKS)


def _config(tmp_path: Path, name: str) -> Path:
    path, changes = TOY[name]
    raw = yaml.safe_load((ROOT / path).read_text(encoding="utf-8"))
    for key, value in changes.items():
        if isinstance(value, dict):
            raw[key].update(value)
        else:
            raw[key] = value
    for split in ("train", "validation", "test"):
        raw["data"][split] = str(ROOT / raw["data"][split])
    raw["train"].update({"epochs": 1, "seed": 1})
    raw["output_dir"] = str(tmp_path / "run")
    out = tmp_path / f"{name}.yaml"
    out.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return out


@pytest.mark.parametrize("name", list(TASKS))
def test_round_trip_train_save_load_predict_render(tmp_path, name):
    from grutool.predict import Predictor

    cfg = _config(tmp_path, name)
    r = invoke("train", cfg, "-q")
    assert r.exit_code == 0, r.output
    run = tmp_path / "run"
    predictor = Predictor(run, "cpu")  # load: config, vocabularies and best.pt rebuild the model
    assert predictor.task.name == name
    texts = INPUTS.get(name, TEXTS)
    first = predictor.predict(texts)
    assert len(first) == 2 and all(first)
    assert Predictor(run, "cpu").predict(texts) == first  # a second load predicts the same
    r = invoke("eval", run, "--split", "test")
    assert r.exit_code == 0 and r.output.strip(), r.output
    r = invoke("infer", run, *texts)
    from grutool.cli.render import renderer

    lines = sum(len(renderer(predictor.task).line(x).splitlines()) for x in first)  # a forecast is a table
    assert r.exit_code == 0 and len(r.stdout.strip().splitlines()) == lines, r.output


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_family_declares_its_outputs_renderer_exporter_and_example(name):
    """The base Task defaults none of these: a family that forgot one would silently borrow another's."""
    from grutool.families.base import Task

    cls = TASKS[name]
    for attr in ("outputs", "renderer", "exporter", "example"):
        assert attr not in vars(Task) and hasattr(cls, attr), f"task {name}: declare {attr}"
