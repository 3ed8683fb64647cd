"""benchmarks/joint_errors.py: the kinds of a joint run's wrong sentences."""

from __future__ import annotations

import json
import runpy
import sys
from collections import Counter, defaultdict
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def script(monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    return runpy.run_path(str(ROOT / "benchmarks" / "joint_errors.py"))


def sentence(words, tags, intent="flight"):
    return SimpleNamespace(words=words.split(), tags=tags.split(), intent=intent)


def test_each_wrong_sentence_gets_the_first_kind_that_fits(script):
    seen = defaultdict(Counter, {"noon": Counter({"B-depart_time.time": 5}), "at": Counter({"O": 9})})
    s = sentence("from boston at noon", "O B-city_name O B-depart_time.period_of_day")
    right = {"intent": "flight", "tags": list(s.tags)}
    intents = {"flight", "airfare"}
    kind_of = partial(script["kind_of"], intents=intents)
    assert kind_of(s, right, seen, 3) is None
    assert kind_of(s, {**right, "intent": "airfare"}, seen, 3) == "intent"
    new = sentence("from boston at noon", " ".join(s.tags), intent="day_name")  # an intent training never has
    assert kind_of(new, right, seen, 3) == "intent never in training"
    role_added = ["O", "B-fromloc.city_name", "O", "B-depart_time.period_of_day"]
    assert kind_of(s, {**right, "tags": role_added}, seen, 3) == "role added or dropped"
    never = ["O", "B-city_name", "O", "B-depart_time.time"]  # 'noon' is never period_of_day in training
    assert kind_of(s, {**right, "tags": never}, seen, 3) == "tag never on that word in training"
    assert kind_of(s, {**right, "tags": never}, seen, 6) == "other"  # seen 5 times: too rare to count
    both = ["O", "B-fromloc.city_name", "O", "B-depart_time.time"]  # a role added and a never-seen tag: neither alone
    assert kind_of(s, {**right, "tags": both}, seen, 3) == "other"
    t = sentence("from boston to denver", "O B-fromloc.city_name O B-toloc.city_name")
    swapped = ["O", "B-toloc.city_name", "O", "B-toloc.city_name"]  # a role swapped is a real error
    assert kind_of(t, {"intent": "flight", "tags": swapped}, seen, 3) == "other"


def test_the_kinds_split_the_sentences_eval_counts_wrong(tmp_path, script, monkeypatch):
    from typer.testing import CliRunner

    from grutool.cli.app import app
    from grutool.evaluate import evaluate

    runner = CliRunner()
    cfg = yaml.safe_load(runner.invoke(app, ["init", "joint"]).stdout)
    cfg["train"].update(epochs=2, seed=3)
    (tmp_path / "j.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    assert runner.invoke(app, ["train", str(tmp_path / "j.yaml"), "-o", str(tmp_path / "run")]).exit_code == 0
    monkeypatch.setattr(sys, "argv", ["joint_errors.py"])
    assert script["main"]([str(tmp_path / "run"), "--split", "validation", "--json", str(tmp_path / "k.json")]) == 0
    kinds = json.loads((tmp_path / "k.json").read_text(encoding="utf-8"))
    metrics = evaluate(str(tmp_path / "run"), "validation")
    wrong = round((1 - metrics["sentence_accuracy"]) * kinds["sentences"])
    listed = [i for ids in kinds["kinds"].values() for i in ids]
    assert 0 < wrong < kinds["sentences"]  # two epochs on the toy data: some right, some wrong
    assert kinds["wrong"] == wrong == len(listed) == len(set(listed))


def test_a_run_of_another_task_is_one_line(tmp_path, script, capsys):
    from typer.testing import CliRunner

    from grutool.cli.app import app

    runner = CliRunner()
    cfg = yaml.safe_load(runner.invoke(app, ["init", "classifier"]).stdout)
    cfg["train"].update(epochs=1)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    assert runner.invoke(app, ["train", str(tmp_path / "c.yaml"), "-o", str(tmp_path / "run")]).exit_code == 0
    assert script["main"]([str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'run'}: task classifier; this script reads joint runs (intent + slots)\n"
