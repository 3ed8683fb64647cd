"""Issue 24: Hub datasets for every family that reads text (classifier, tagger/joint, seq2seq, lm), and
configs/hub/*.yaml, the online twins of the shipped real-data configs.

Everything here runs offline: `datasets.load_dataset` is replaced by a fake Hub that serves small in-memory
`datasets.Dataset`s with the splits, columns and feature types each dataset card documents (URLs in
docs/data.md), and `datasets`' own split syntax (`train[:4478]`) applied by `datasets.ReadInstruction`. Each
shipped Hub config validates, keeps its local twin's settings, and trains and evaluates through the CLI on
its fake; bad input is one line and exit 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, assert_user_error, invoke

HUB_CONFIGS = sorted((ROOT / "configs" / "hub").glob("*.yaml"))
SHAKESPEARE = "".join(f"{who}:\nline {i} of the play, said slowly.\n\n" for i, who in
                      enumerate(["ROMEO", "JULIET", "NURSE", "FRIAR"] * 12))


def _cards() -> dict:
    """Dataset name -> (features, {split: columns}), as each card documents them; a handful of rows each."""
    import datasets as d

    words = ["a", "fine", "film", "dull", "plot", "great", "cast", "bad"]
    sst2 = d.Features({"idx": d.Value("int32"), "sentence": d.Value("string"),
                       "label": d.ClassLabel(names=["negative", "positive"])})

    def sst2_split(n, hidden=False):  # the Hub's test split has every label -1
        return {"idx": list(range(n)), "sentence": [" ".join(words[(i + k) % 8] for k in range(4)) for i in range(n)],
                "label": [-1] * n if hidden else [i % 2 for i in range(n)]}

    pairs = d.Features({"en": d.Value("string"), "de": d.Value("string")})

    def m30k(n):
        return {"en": [f"a man rides {i} horses ." for i in range(n)], "de": [f"ein mann reitet {i} pferde ." for i in range(n)]}

    atis = d.Features({"id": d.Value("int64"), "intent": d.Value("string"), "text": d.Value("string"),
                       "slots": d.Value("string")})

    def atis_split(n):
        cities = ["boston", "denver", "dallas", "atlanta"]
        return {"id": list(range(n)), "intent": ["flight" if i % 3 else "airfare" for i in range(n)],
                "text": [f"flights from {cities[i % 4]} to {cities[(i + 1) % 4]}" for i in range(n)],
                "slots": ["O O B-fromloc.city_name O B-toloc.city_name"] * n}

    text = d.Features({"text": d.Value("string")})
    return {
        "stanfordnlp/sst2": (sst2, {"train": sst2_split(24), "validation": sst2_split(8), "test": sst2_split(8, True)}),
        "bentrevett/multi30k": (pairs, {"train": m30k(16), "validation": m30k(6), "test": m30k(6)}),
        "tuetschek/atis": (atis, {"train": atis_split(4478 + 12), "test": atis_split(10)}),
        "SamPIngram/tinyshakespeare": (text, {"train": {"text": SHAKESPEARE.split("\n")[:-1]}}),  # the text builder
    }


@pytest.fixture
def hub(monkeypatch):
    """A fake Hub: `datasets.load_dataset(name, config, split=...)` answers from `hub.cards` (name -> (features,
    {split: columns})); calls are recorded in `hub.calls`. HF_HUB_OFFLINE=1: no network probe."""
    import datasets

    real = datasets.load_dataset

    class Hub:
        cards = _cards()
        calls: list[tuple] = []

        def load_dataset(self, path, name=None, split=None, **kwargs):
            if path in ("csv", "json", "parquet"):  # a local file, read by `datasets`' own builders
                return real(path, name, split=split, **kwargs)
            self.calls.append((path, name, split))
            if path not in self.cards:
                raise FileNotFoundError(f"Dataset '{path}' doesn't exist on the Hub or cannot be accessed.")
            features, splits = self.cards[path]
            (instruction,) = datasets.ReadInstruction.from_spec(split).to_absolute(
                {k: len(next(iter(v.values()))) for k, v in splits.items()})
            if instruction.splitname not in splits:
                raise ValueError(f'Unknown split "{instruction.splitname}". Should be one of {list(splits)}.')
            ds = datasets.Dataset.from_dict(splits[instruction.splitname], features=features)
            return ds.select(range(instruction.from_, instruction.to))

    fake = Hub()
    monkeypatch.setattr(datasets, "load_dataset", fake.load_dataset)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return fake


def small(path: Path, tmp: Path, **data) -> Path:
    """A Hub config with small layers, two steps, its run under `tmp`; `data` overrides data fields."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw["data"].update(data)
    model = raw.setdefault("model", {})
    for size in ("embedding_dim", "hidden_size", "char_hidden_size", "char_embedding_dim"):
        if size in model:
            model[size] = 8
    raw["train"].update(max_steps=2, epochs=1, device="cpu", batch_size=4, ema_decay=None, warmup_steps=0)
    raw["output_dir"] = str(tmp / "run")
    out = tmp / path.name
    out.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return out


# --- the shipped Hub configs -----------------------------------------------------------------------------


def test_the_hub_configs_are_the_four_with_a_hub_copy():
    assert [p.stem for p in HUB_CONFIGS] == ["atis", "multi30k", "shakespeare", "sst2"]


@pytest.mark.parametrize("path", HUB_CONFIGS, ids=lambda p: p.stem)
def test_a_hub_config_validates_offline_and_keeps_its_local_twins_settings(path):
    from grutool.config_file import load_config

    cfg = load_config(path)  # the schema and the task's rules, no data read
    twin = ROOT / "configs" / path.name
    local = load_config(twin)
    assert cfg.data.dataset and local.data.dataset is None
    assert cfg.task == local.task
    for section in ("model", "train", "decoding"):
        assert getattr(cfg, section) == getattr(local, section), section
    same = ("tokenizer", "lowercase", "max_length", "min_freq", "max_size", "scheme", "target_tokenizer",
            "target_lowercase", "condition_column")
    assert {k: getattr(cfg.data, k) for k in same} == {k: getattr(local.data, k) for k in same}
    header = path.read_text(encoding="utf-8").split("\ntask:")[0]
    assert f"configs/{path.name}" in header and "first use" in header and "differs" in header
    assert f"`configs/hub/{path.name}`" in (ROOT / "docs" / "data.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("path", HUB_CONFIGS, ids=lambda p: p.stem)
def test_a_hub_config_trains_and_evaluates_on_its_card_layout(path, hub, tmp_path):
    data = {"train": "train[:4466]", "validation": "train[4466:]"} if path.stem == "atis" else {}
    cfg = small(path, tmp_path, **data)
    dry = invoke("train", cfg, "--dry-run")
    assert dry.exit_code == 0, dry.output
    result = invoke("train", cfg, "-q")
    assert result.exit_code == 0, result.output
    name = yaml.safe_load(path.read_text())["data"]["dataset"]
    assert {call[0] for call in hub.calls} == {name}
    split = "test" if yaml.safe_load(path.read_text())["data"].get("test") else "validation"
    scored = invoke("eval", tmp_path / "run", "--split", split, "--json")
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.stdout)["source"] in ("test", "validation", "train[4466:]", "train[90%:]")


def test_sst2_labels_are_the_class_label_names(hub, tmp_path):
    assert invoke("train", small(ROOT / "configs" / "hub" / "sst2.yaml", tmp_path), "-q").exit_code == 0
    assert json.loads((tmp_path / "run" / "labels.json").read_text()) == {"labels": ["negative", "positive"]}


def test_a_hub_run_scores_and_reads_local_files(hub, tmp_path):
    """`eval --data` and `infer --file` name local files, even for a run trained on a Hub dataset."""
    assert invoke("train", small(ROOT / "configs" / "hub" / "sst2.yaml", tmp_path), "-q").exit_code == 0
    local = tmp_path / "mine.tsv"
    local.write_text("sentence\tlabel\na fine film\tpositive\na dull plot\tnegative\n", encoding="utf-8")
    hub.calls.clear()
    scored = invoke("eval", tmp_path / "run", "--data", local, "--json")
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.stdout)["n"] == 2
    inferred = invoke("infer", tmp_path / "run", "--file", local)
    assert inferred.exit_code == 0, inferred.output
    assert len([l for l in inferred.stdout.splitlines() if l.strip()]) >= 2
    assert hub.calls == []


def test_the_hidden_sst2_test_labels_are_one_line(hub, tmp_path):
    cfg = small(ROOT / "configs" / "hub" / "sst2.yaml", tmp_path, test="test")
    assert_user_error(invoke("train", cfg, "--dry-run"), "split 'test'", "row 0", "-1", "hidden")


def test_the_hub_stream_is_the_text_file_and_its_slices_cut_characters(hub):
    from grutool.config_file import load_config
    from grutool.families.lm.data import read_stream

    cfg = load_config(ROOT / "configs" / "hub" / "shakespeare.yaml")
    n = len(SHAKESPEARE)
    assert read_stream(cfg, "train") == SHAKESPEARE
    assert read_stream(cfg, "train[:90%]") == SHAKESPEARE[: int(n * 0.9)]
    assert read_stream(cfg, "train[90%:]") == SHAKESPEARE[int(n * 0.9):]
    assert {call[2] for call in hub.calls} == {"train"}  # grutool slices the stream, not `datasets` the rows


# --- the layouts the families read ---------------------------------------------------------------------


def _write(tmp: Path, task: str, data: dict, **sections) -> Path:
    raw = {"task": task, "data": {"train": "train", "validation": "validation", **data},
           "model": {"embedding_dim": 8, "hidden_size": 8, **sections.pop("model", {})},
           "train": {"max_steps": 2, "epochs": 1, "batch_size": 4, "device": "cpu", **sections.pop("train", {})},
           "output_dir": str(tmp / "run"), **sections}
    path = tmp / "hub.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def test_tagger_reads_token_lists_and_class_label_tags(hub, tmp_path):
    import datasets as d

    upos = ["NOUN", "VERB", "DET"]
    rows = {"tokens": [["the", "dog", "runs"], ["a", "cat", "sleeps"]] * 4, "upos": [[2, 0, 1]] * 8}
    hub.cards["someone/ud"] = (d.Features({"tokens": d.List(d.Value("string")),
                                           "upos": d.List(d.ClassLabel(names=upos))}),
                               {"train": rows, "validation": rows})
    cfg = _write(tmp_path, "tagger", {"dataset": "someone/ud", "text_column": "tokens", "tag_column": "upos"},
                 train={"monitor": "token_accuracy"})
    result = invoke("train", cfg, "-q")
    assert result.exit_code == 0, result.output
    assert sorted(json.loads((tmp_path / "run" / "labels.json").read_text())["labels"]) == sorted(upos)


def test_seq2seq_reads_a_translation_column(hub, tmp_path):
    import datasets as d

    rows = {"translation": [{"de": f"hallo {i}", "en": f"hello {i}"} for i in range(8)]}
    hub.cards["someone/wmt"] = (d.Features({"translation": d.Translation(languages=["de", "en"])}),
                                {"train": rows, "validation": rows})
    cfg = _write(tmp_path, "seq2seq", {"dataset": "someone/wmt", "source": "de", "target": "en"},
                 train={"monitor": "exact_match"})
    result = invoke("train", cfg, "-q")
    assert result.exit_code == 0, result.output
    wrong = _write(tmp_path, "seq2seq", {"dataset": "someone/wmt", "source": "de", "target": "fr"},
                   train={"monitor": "exact_match"})
    assert_user_error(invoke("train", wrong, "--dry-run", "-o", str(tmp_path / "wrong")), "row 0", "no 'fr'", "'translation'")


def test_lm_reads_lines_with_a_class_label_condition(hub, tmp_path):
    import datasets as d

    rows = {"name": ["Ana", "Bo", "Cruz", "Dag"] * 3, "lang": [0, 1, 0, 1] * 3}
    hub.cards["someone/names"] = (d.Features({"name": d.Value("string"), "lang": d.ClassLabel(names=["es", "sv"])}),
                                  {"train": rows, "validation": rows})
    cfg = _write(tmp_path, "lm", {"dataset": "someone/names", "text_column": "name", "condition_column": "lang",
                                  "tokenizer": "char"}, model={"bidirectional": False}, train={"monitor": "loss"})
    result = invoke("train", cfg, "-q")
    assert result.exit_code == 0, result.output
    assert "sv" in (tmp_path / "run" / "conditions.json").read_text()


# --- bad input: one line, exit 2 -----------------------------------------------------------------------


@pytest.mark.parametrize("path, column", [("sst2", "sentence"), ("atis", "slots"), ("multi30k", "de"),
                                          ("shakespeare", "text")])
def test_a_missing_column_lists_the_columns_found(hub, tmp_path, path, column):
    name = yaml.safe_load((ROOT / "configs" / "hub" / f"{path}.yaml").read_text())["data"]["dataset"]
    features, splits = hub.cards[name]
    renamed = {split: {("other" if k == column else k): v for k, v in cols.items()} for split, cols in splits.items()}
    hub.cards[name] = (features.__class__({("other" if k == column else k): v for k, v in features.items()}), renamed)
    result = invoke("train", small(ROOT / "configs" / "hub" / f"{path}.yaml", tmp_path), "--dry-run")
    assert_user_error(result, f"data.dataset '{name}'", f"no column '{column}'", "columns found", "'other'")


def test_an_unreachable_hub_says_how_to_use_the_local_twin(tmp_path, monkeypatch):
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    for path in HUB_CONFIGS:
        result = invoke("train", small(path, tmp_path), "--dry-run")
        assert_user_error(result, "cannot reach the Hugging Face Hub", "local files", "configs/hub/NAME.yaml",
                          "configs/NAME.yaml", "HF_HUB_OFFLINE=1")


@pytest.mark.parametrize("task, data, message", [
    ("tagger", {"format": "conllu"}, "data.format: a Hub dataset"),
    ("tagger", {"tag_column": 3}, "data.tag_column: a Hub dataset's tags are a column"),
    ("seq2seq", {"format": "parallel_text", "source": "de", "target": "en"}, "data.format: a Hub dataset"),
    ("seq2seq", {"source": "de"}, "data.source, data.target: with data.dataset, both"),
    ("lm", {"format": "text"}, "data.format: a Hub dataset"),
])
def test_hub_config_rules(tmp_path, task, data, message):
    extra = {"train": {"monitor": "loss"}, **({"model": {"bidirectional": False}} if task == "lm" else {})}
    cfg = _write(tmp_path, task, {"dataset": "someone/x", **data}, **extra)
    assert_user_error(invoke("train", cfg, "--dry-run"), message)


@pytest.mark.parametrize("setting", ["HF_HUB_OFFLINE=1", "HF_HUB_OFFLINE=true", "HF_DATASETS_OFFLINE=1"])
def test_offline_with_an_empty_cache_says_it_is_not_cached(tmp_path, setting):
    # HF_HUB_OFFLINE=1 and nothing cached: the line quoted `datasets`' "Couldn't reach ... (OfflineModeIsEnabled)".
    # HF_DATASETS_OFFLINE=1 was answered with HF_HUB_OFFLINE=1, a variable the user had not set, and
    # HF_HUB_OFFLINE=true (offline for `datasets`) with a network probe: "cannot reach the Hugging Face Hub"
    import os
    import subprocess
    import sys

    name, value = setting.split("=")
    env = {**{k: v for k, v in os.environ.items() if not k.endswith("_OFFLINE")}, name: value,
           "HF_HOME": str(tmp_path / "hf"), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "grutool", "train", str(ROOT / "configs" / "hub" / "sst2.yaml"),
                           "--dry-run", "-o", str(tmp_path / "run")], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert f"not in the local Hugging Face cache, and {setting} keeps grutool off the Hub" in line, line
    assert "OfflineModeIsEnabled" not in line and "configs/NAME.yaml" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("env, said", [
    ({}, None), ({"HF_HUB_OFFLINE": "1"}, "HF_HUB_OFFLINE=1"), ({"HF_HUB_OFFLINE": "ON"}, "HF_HUB_OFFLINE=ON"),
    ({"HF_HUB_OFFLINE": "0"}, None), ({"TRANSFORMERS_OFFLINE": "yes"}, "TRANSFORMERS_OFFLINE=yes"),
    ({"HF_DATASETS_OFFLINE": "true"}, "HF_DATASETS_OFFLINE=true"),
    ({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "0"}, None),  # datasets' own variable wins: online
])
def test_offline_is_read_as_datasets_reads_it(monkeypatch, env, said):
    from grutool.data.loading import hub_offline

    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert hub_offline() == said
