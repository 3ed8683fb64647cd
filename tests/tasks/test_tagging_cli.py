"""Tagger and joint runs end to end: train -> eval -> infer through the CLI, save -> load identical tags,
unseen tags and intents at eval, and every bad input as exit code 2 with nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from grutool.config_file import parse_config
from grutool.predict import Predictor
from grutool.training.callbacks import Callback
from grutool.training.loop import train

from conftest import assert_user_error, invoke

ROOT = Path(__file__).resolve().parents[2]
TRAVEL = ROOT / "data" / "tagging" / "travel"
TINY_MODEL = {"embedding_dim": 16, "hidden_size": 16, "crf": True, "char_features": True,
              "char_embedding_dim": 8, "char_hidden_size": 8, "token_dropout": 0.1}
TEXTS = ["show me flights from boston to las vegas on friday", "", "does delta fly to miami",
         "what ground transportation is available in tucson"]


def joint_config(tmp: Path, **train_fields) -> dict:
    t = {"batch_size": 16, "epochs": 3, "lr": 0.01, "seed": 3, "device": "cpu", "monitor": "sentence_accuracy",
         "patience": None}
    t.update(train_fields)
    return {"task": "joint",
            "data": {"train": str(TRAVEL / "train"), "validation": str(TRAVEL / "validation"),
                     "test": str(TRAVEL / "test"), "format": "parallel", "scheme": "bio", "tokenizer": "whitespace"},
            "model": dict(TINY_MODEL, pooling="max"), "train": t, "output_dir": str(tmp / "run")}


def write_yaml(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tagger_run(tmp_path_factory) -> Path:
    """configs/tagging.yaml (the README example), two epochs."""
    run = tmp_path_factory.mktemp("tagger") / "run"
    result = invoke("train", ROOT / "configs" / "tagging.yaml", "--set", "train.epochs=2", "--output-dir", run,
                    "--device", "cpu", "--quiet")
    assert result.exit_code == 0, result.output
    assert "token accuracy" in result.stdout and "span F1" in result.stdout
    return run


@pytest.fixture(scope="module")
def joint_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("joint")
    result = invoke("train", write_yaml(tmp / "joint.yaml", joint_config(tmp)), "--quiet")
    assert result.exit_code == 0, result.output
    for name in ("config.yaml", "vocab.json", "labels.json", "intents.json", "chars.json", "best.pt", "last.pt"):
        assert (tmp / "run" / name).is_file(), name
    return tmp / "run"


# --- eval and infer ---------------------------------------------------------------------------


def test_tagger_eval_json(tagger_run):
    result = invoke("eval", tagger_run, "--split", "test", "--json")
    assert result.exit_code == 0, result.output
    m = json.loads(result.stdout)
    assert {"n", "tokens", "token_accuracy", "span_precision", "span_recall", "span_f1", "sentence_accuracy",
            "per_type", "per_tag", "confusion", "unseen_labels", "loss"} <= set(m)
    assert "intent_accuracy" not in m
    assert m["n"] == 60 and sum(map(sum, m["confusion"]["matrix"])) == m["tokens"]
    assert set(m["per_type"]) <= {"PER", "LOC", "ORG"}
    assert 0 <= m["span_f1"] <= 1 and 0 <= m["token_accuracy"] <= 1


def test_joint_eval_json(joint_run):
    result = invoke("eval", joint_run, "--split", "test", "--json")
    assert result.exit_code == 0, result.output
    m = json.loads(result.stdout)
    assert {"token_accuracy", "span_f1", "intent_accuracy", "sentence_accuracy", "intent_confusion",
            "unseen_labels", "unseen_intents"} <= set(m)
    assert m["unseen_intents"] == {} and m["sentence_accuracy"] <= min(m["intent_accuracy"], m["token_accuracy"])


@pytest.mark.parametrize("which", ["tagger_run", "joint_run"])
def test_eval_tables(which, request):
    result = invoke("eval", request.getfixturevalue(which))
    assert result.exit_code == 0, result.output
    assert "token accuracy" in result.stdout and "span type" in result.stdout
    # joint: the intents' confusion too, counting every sentence (the text showed only their accuracy)
    assert ("intent confusion (rows: gold, columns: predicted)" in result.stdout) == (which == "joint_run")


def test_joint_eval_text_confusion_of_intents_counts_the_sentences(joint_run):
    from grutool.families.tagger.render import tables

    m = json.loads(invoke("eval", joint_run, "--split", "test", "--json").stdout)
    shown = tables(m)
    intents = [t for t in shown if "intent confusion" in str(getattr(getattr(t, "table", None), "title", ""))]
    assert len(intents) == 1 and sum(map(sum, m["intent_confusion"]["matrix"])) == m["n"]
    many = dict(m, intent_confusion={"labels": [f"i{k}" for k in range(30)], "matrix": [[0] * 30] * 30})
    assert "intent confusion: 30 x 30, in `grutool eval --json`" in tables(many)


def test_infer_lines_and_jsonl(joint_run):
    result = invoke("infer", joint_run, *TEXTS)
    assert result.exit_code == 0, result.output
    lines = result.stdout.split("\n")[:-1]
    assert len(lines) == len(TEXTS)
    intent, prob, tagged, spans = lines[0].split("\t")
    assert float(prob) <= 1 and tagged.startswith("show/") and len(tagged.split()) == 10
    result = invoke("infer", joint_run, *TEXTS, "--jsonl")
    rows = [json.loads(l) for l in result.stdout.splitlines()]
    assert [r["text"] for r in rows] == TEXTS
    for r in rows:
        assert set(r) == {"text", "tokens", "tags", "spans", "intent", "intent_prob"}
        assert len(r["tags"]) == len(r["tokens"]) == len(r["text"].split())
        for s in r["spans"]:
            assert r["tags"][s["start"]].endswith(s["type"]) and s["text"] == " ".join(r["tokens"][s["start"]:s["end"]])
    assert rows[1]["tokens"] == [] and rows[1]["spans"] == [] and rows[1]["intent"]  # empty text: intent prior


def test_infer_file_reads_a_split_folder_as_eval_does_under_format_auto(joint_run, tmp_path):
    """README: a split in the run's own folder format is read as training reads it; data.format auto resolves a
    folder of seq.in/seq.out/label to parallel, for `infer --file` as for `eval --data`."""
    import shutil

    run = tmp_path / "auto"
    shutil.copytree(joint_run, run)
    raw = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    raw["data"]["format"] = "auto"
    write_yaml(run / "config.yaml", raw)
    assert invoke("eval", run, "--data", TRAVEL / "test").exit_code == 0
    expected = (TRAVEL / "test" / "seq.in").read_text(encoding="utf-8").split("\n")
    expected = [" ".join(line.split()) for line in expected if line.strip()]
    for extra in ([], ["--format", "data"]):
        result = invoke("infer", run, "--file", TRAVEL / "test", "--jsonl", *extra)
        assert result.exit_code == 0, result.output
        assert [" ".join(json.loads(l)["tokens"]) for l in result.stdout.splitlines()] == expected


def test_infer_file_tags_a_data_files_tokens_as_the_file_splits_them(tagger_run, tmp_path):
    """`infer --file x.conll` reads the file as training reads it: one tag per token of the file, even where
    data.tokenizer (word) would split a token (`U.S.`, `e-mail`) of raw text into several."""
    f = tmp_path / "x.conll"
    f.write_text("Anna B-PER\nmoved O\nto O\nthe O\nU.S. B-LOC\n\nher O\ne-mail O\nbounced O\n", encoding="utf-8")
    result = invoke("infer", tagger_run, "--file", f, "--jsonl")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["tokens"] for r in rows] == [["Anna", "moved", "to", "the", "U.S."], ["her", "e-mail", "bounced"]]
    assert [len(r["tags"]) for r in rows] == [5, 3]


@pytest.mark.parametrize("family", ["tagger", "joint"])
def test_infer_file_reads_bio_and_iob_files_as_conll_and_txt_as_lines(family, tmp_path):
    """docs/tagging.md: .bio and .iob are CoNLL files, as training reads them; `infer --file x.bio` read each
    line as a sentence and tagged its POS and tag columns as words. A .txt stays one input per line.
    (runs_v1: a conll tagger and a parallel joint run, so the file's extension overrides the run's format.)"""
    run = ROOT / "tests" / "fixtures" / "runs_v1" / family
    conll = "Anna NNP B-PER\nvisited VBD O\n\nBen NNP B-PER\n"
    for name in ("x.bio", "x.IOB"):
        (tmp_path / name).write_text(conll, encoding="utf-8")
        result = invoke("infer", run, "--file", tmp_path / name, "--jsonl")
        assert result.exit_code == 0, result.output
        assert [json.loads(l)["tokens"] for l in result.stdout.splitlines()] == [["Anna", "visited"], ["Ben"]]
    (tmp_path / "x.txt").write_text("Anna visited Rome\nBen left\n", encoding="utf-8")
    result = invoke("infer", run, "--file", tmp_path / "x.txt", "--jsonl")
    assert [json.loads(l)["text"] for l in result.stdout.splitlines()] == ["Anna visited Rome", "Ben left"]


def test_tagger_infer_keeps_case_and_splits_punctuation(tagger_run):
    result = invoke("infer", tagger_run, "Anna Rossi visited Paris.", "--jsonl")
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)
    assert row["tokens"] == ["Anna", "Rossi", "visited", "Paris", "."] and "intent" not in row


def test_batched_predictions_equal_one_by_one(joint_run):
    p = Predictor(joint_run, "cpu")
    one = p.predict(TEXTS, batch_size=1)
    batched = p.predict(TEXTS, batch_size=64)
    for a, b in zip(one, batched):
        assert a["tags"] == b["tags"] and a["spans"] == b["spans"] and a["intent"] == b["intent"]
        assert a["intent_prob"] == pytest.approx(b["intent_prob"], abs=1e-5)


# --- training ----------------------------------------------------------------------------------


class Recorder(Callback):
    """Step losses, and the in-memory model's predictions whenever best.pt is written."""

    def __init__(self):
        self.losses, self.best = [], None

    def on_step_end(self, tr, loss, tokens):
        self.losses.append(loss)

    def on_epoch_end(self, tr, metrics):
        if tr.state.improved:  # the Checkpointer, earlier in the list, just saved these weights
            tokens = [t.split() for t in TEXTS]
            split = tr.task.encode(tr.cfg, tr.data.vocab, tokens, chars=tr.data.extra.get("chars"))
            from grutool.data.batching import collate

            b = collate(split, list(range(len(TEXTS))))
            tr.model.eval()
            with torch.no_grad():
                out, _ = tr.model(b.ids, b.lengths, **b.extra_inputs())
            tr.model.train()
            self.best = ([[tr.data.labels.itos[i] for i in row[:len(t)]] for row, t in zip(out.tags.tolist(), tokens)],
                         [tr.data.extra.get("intents").itos[i] for i in out.intent.argmax(-1).tolist()])


def test_loss_falls_and_save_load_gives_identical_tags(tmp_path):
    rec = Recorder()
    summary = train(parse_config(joint_config(tmp_path, epochs=6)), callbacks=[rec])
    first, last = sum(rec.losses[:5]) / 5, sum(rec.losses[-5:]) / 5
    assert last < 0.3 * first, (first, last)
    assert summary["validation"]["intent_accuracy"] >= 0.9 and summary["validation"]["span_f1"] >= 0.8
    got = Predictor(tmp_path / "run", "cpu").predict(TEXTS)
    assert [r["tags"] for r in got] == rec.best[0]
    assert [r["intent"] for r in got] == rec.best[1]


def test_resume_continues_a_joint_run(tmp_path):
    raw = joint_config(tmp_path, epochs=1)
    cfg = write_yaml(tmp_path / "joint.yaml", raw)
    assert invoke("train", cfg, "-q").exit_code == 0
    result = invoke("train", cfg, "-q", "--resume", "--set", "train.epochs=2")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["epochs"] == 2


# --- unseen labels at eval -------------------------------------------------------------------


def write_parallel(root: Path, rows: list[tuple[str, str, str]], newline: str = "\n") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, column in (("seq.in", 0), ("seq.out", 1), ("label", 2)):
        (root / name).write_bytes("".join(r[column] + newline for r in rows).encode("utf-8"))
    return root


def test_unseen_tags_and_intents_at_eval_are_counted_with_a_warning(joint_run, tmp_path):
    rows = [("show me flights from boston to denver", "O O O O B-fromloc.city_name O B-toloc.city_name", "flight"),
            ("i want breakfast", "O O B-meal", "meal"), ("breakfast please", "B-meal O", "meal")]
    result = invoke("eval", joint_run, "--data", write_parallel(tmp_path / "unseen", rows), "--json")
    assert result.exit_code == 0, result.output
    m = json.loads(result.stdout)
    assert m["unseen_labels"] == {"B-meal": 2} and m["unseen_intents"] == {"meal": 2}
    assert m["intent_accuracy"] <= 1 / 3 + 1e-9 and m["sentence_accuracy"] <= 1 / 3 + 1e-9
    assert m["token_accuracy"] <= 10 / 12 + 1e-9 and m["span_recall"] <= 2 / 4 + 1e-9
    for text in ("B-meal", "meal", "never seen in training", "counted as errors"):
        assert text in result.stderr


def test_eval_where_no_tag_was_seen_in_training(joint_run, tmp_path):
    root = write_parallel(tmp_path / "other", [("a b", "B-x I-x", "flight")])
    assert_user_error(invoke("eval", joint_run, "--data", root), "none of its tags", "B-x")


# --- bad input -------------------------------------------------------------------------------


def tagger_config(tmp: Path, train_file: Path, **data_fields) -> Path:
    raw = {"task": "tagger", "data": {"train": str(train_file), "scheme": "bio", **data_fields},
           "model": {"embedding_dim": 8, "hidden_size": 8},
           "train": {"epochs": 1, "batch_size": 4, "device": "cpu", "monitor": "token_accuracy"},
           "output_dir": str(tmp / "out")}
    return write_yaml(tmp / "tiny.yaml", raw)


BAD = {
    # name: (file name, bytes, data fields, expected pieces of the message)
    "tag-count-mismatch": ("t.conll", b"a O\nb B-x\n\nc O\nd\n", {}, ["t.conll:5:", "expected a token and a tag"]),
    "jsonl-mismatch": ("t.jsonl", b'{"text": ["a", "b"], "tags": ["O", "B-x"]}\n{"text": ["c", "d"], "tags": ["O"]}\n',
                       {}, ["t.jsonl:2:", "1 tag(s) for 2 token(s)"]),
    "non-bio-tags": ("t.conll", b"a O\nb B-x\n\nc NN\n", {}, ["t.conll:4:", "'NN'", "not a tag of data.scheme bio", "data.scheme"]),
    "only-empty-sentences": ("t.jsonl", b'{"text": [], "tags": []}\n{"text": "", "tags": []}\n', {},
                             ["t.jsonl", "every sentence is empty"]),
    "one-tag-only": ("t.conll", b"a O\nb O\n", {}, ["t.conll", "only one tag"]),
    "conllu-as-bio": ("t.conllu", b"1\ta\ta\tNOUN\tNN\t_\t0\troot\t_\t_\n", {}, ["t.conllu:1:", "'NOUN'", "not a tag of data.scheme bio"]),
    "classifier-format": ("t.tsv", b"text\tlabel\na\tb\n", {"format": "tsv"}, ["data.format", "'tsv'", "conllu"]),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_training_data_exits_2_and_writes_nothing(tmp_path, name):
    filename, content, fields, expected = BAD[name]
    (tmp_path / filename).write_bytes(content)
    result = invoke("train", tagger_config(tmp_path, tmp_path / filename, **fields))
    assert_user_error(result, *expected)
    assert not (tmp_path / "out").exists()


def test_parallel_mismatch_exits_2_and_writes_nothing(tmp_path):
    root = write_parallel(tmp_path / "train", [("a b", "O B-x", "i"), ("c d e", "O O", "i")])
    raw = joint_config(tmp_path)
    raw["data"] = {"train": str(root), "format": "parallel", "scheme": "bio"}
    raw["train"]["monitor"] = "loss"
    result = invoke("train", write_yaml(tmp_path / "bad.yaml", raw))
    assert_user_error(result, "seq.out:2:", "2 tag(s) for 3 token(s)", "seq.in:2")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("fields, expected", [
    ({"train": {"monitor": "accuracy"}}, ["train.monitor", "'accuracy'", "token_accuracy"]),
    ({"train": {"monitor": "span_f1"}, "data": {"scheme": "plain"}}, ["train.monitor", "'span_f1'", "plain"]),
    ({"train": {"monitor": "intent_accuracy"}}, ["train.monitor", "'intent_accuracy'", "task tagger"]),
    ({"data": {"tag_column": "upos", "format": "conll"}}, ["data.tag_column", "column number"]),
])
def test_config_mistakes_for_tagging(tmp_path, fields, expected):
    (tmp_path / "t.conll").write_text("a O\nb B-x\n", encoding="utf-8")
    path = tagger_config(tmp_path, tmp_path / "t.conll")
    raw = yaml.safe_load(path.read_text())
    for section, values in fields.items():
        raw[section].update(values)
    result = invoke("train", write_yaml(path, raw))
    assert_user_error(result, "tiny.yaml", *expected)
    assert not (tmp_path / "out").exists()


def test_crlf_trailing_spaces_blank_lines_and_an_empty_sentence_are_tolerated(tmp_path):
    rows = [("show flights to boston", "O O O B-city", "flight"), ("", "", "flight"),
            ("fares to denver", "O O B-city", "airfare")] * 4
    root = write_parallel(tmp_path / "train", [(a + "  ", b + " \t", c + " ") for a, b, c in rows], newline="\r\n")
    for name in ("seq.in", "seq.out", "label"):
        with open(root / name, "ab") as f:
            f.write(b"\r\n \r\n")
    raw = joint_config(tmp_path, epochs=1)
    raw["data"] = {"train": str(root), "format": "parallel", "scheme": "bio"}
    raw["train"]["monitor"] = "loss"
    result = invoke("train", write_yaml(tmp_path / "messy.yaml", raw))
    assert result.exit_code == 0, result.output
    assert "4 empty sentence(s)" in result.stderr and "seq.in:2" in result.stderr
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["examples"]["train"] == 8


def test_tag_confusion_at_80_columns_shows_whole_labels_or_says_where_it_is():
    # B-city_name and B-cost_relative both read `B-c…`: a matrix too wide is one line now.
    from rich.console import Console

    from grutool.families.tagger.render import tables

    labels = ["O", "B-city_name", "B-cost_relative", "B-airline_name", "I-city_name", "B-depart_date.day_name",
              "I-airline_name", "B-fromloc.city_name", "B-toloc.city_name", "I-toloc.city_name"]
    for tags in (labels[:4], labels):
        m = {"source": "test", "n": 1, "tokens": 1, "token_accuracy": 1.0, "sentence_accuracy": 1.0, "per_tag": {},
             "confusion": {"labels": tags, "matrix": [[1] * len(tags) for _ in tags]}}
        console = Console(width=80, record=True, file=open("/dev/null", "w"))
        for t in tables(m):
            console.print(t)
        text = console.export_text()
        assert "…" not in text, text
        if tags == labels:
            assert "tag confusion: 10 x 10" in text and "--json" in text and "--plot" in text, text
        else:
            assert all(tag in text for tag in tags) and "gold \\ pred" in text, text


def test_eval_title_counts_read_as_people_write_them():
    # `2077 sentences, 25094 tokens` beside train's `14,909 tokens`, and `1 sentences`.
    from grutool.families.tagger.render import tables

    def title(n, tokens):
        m = {"source": "test", "n": n, "tokens": tokens, "token_accuracy": 1.0, "sentence_accuracy": 1.0,
             "per_tag": {}, "confusion": {"labels": ["O"], "matrix": [[1]]}}
        return tables(m)[0].title

    assert title(2077, 25094).startswith("test: 2,077 sentences, 25,094 tokens;")
    assert title(1, 1).startswith("test: 1 sentence, 1 token;")


def test_an_infer_line_has_a_spans_column_exactly_under_a_span_scheme():
    """A plain scheme's results carry no spans (no key), so no column; a span scheme's line keeps its column, an
    empty one for an input without spans, so every line of one run has as many columns (text and numeric alike)."""
    from grutool.families.tagger.render import line

    steps = {"id": "s0", "tags": ["B-up", "I-up", "O"]}
    assert line({**steps, "spans": [{"type": "up", "start": 0, "end": 2}]}) == "s0\tB-up I-up O\tup=0:2"
    assert line({**steps, "spans": []}) == "s0\tB-up I-up O\t"
    assert line(steps) == "s0\tB-up I-up O"
    words = {"text": "Anna ran", "tokens": ["Anna", "ran"], "tags": ["B-PER", "O"]}
    assert line({**words, "spans": [{"type": "PER", "start": 0, "end": 1, "text": "Anna"}]}) == \
        'Anna/B-PER ran/O\tPER="Anna"'
    assert line({**words, "spans": []}) == "Anna/B-PER ran/O\t"
    assert line({**words, "tags": ["NOUN", "VERB"]}) == "Anna/NOUN ran/VERB"
    assert line({**words, "intent": "greet", "intent_prob": 0.5, "spans": []}) == "greet\t0.5000\tAnna/B-PER ran/O\t"


def test_a_plain_scheme_tagger_prints_no_spans_column_nor_key(tmp_path):
    """POS-like tags (data.scheme: plain) mark no spans: infer printed every line with a tab and an empty spans
    column, and --jsonl and serve answered `"spans": []`; now neither the column nor the key is there."""
    raw = {"task": "tagger", "output_dir": str(tmp_path / "run"),
           "data": {"train": str(ROOT / "data/tagging/ner/train.conll"),
                    "validation": str(ROOT / "data/tagging/ner/validation.conll"), "format": "conll",
                    "scheme": "plain", "tokenizer": "word"},
           "model": {"embedding_dim": 8, "hidden_size": 8},
           "train": {"batch_size": 32, "epochs": 1, "patience": None, "monitor": "token_accuracy", "device": "cpu"}}
    train(parse_config(raw), progress=False)
    texts = ["Anna Rossi visited Paris.", "nothing here"]
    result = invoke("infer", tmp_path / "run", *texts)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and all("\t" not in line for line in lines), lines
    result = invoke("infer", tmp_path / "run", *texts, "--jsonl")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [set(r) for r in rows] == [{"text", "tokens", "tags"}] * 2, rows
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from grutool.serve import Limits, build_app

    with TestClient(build_app(Predictor(tmp_path / "run", "cpu"), Limits())) as client:
        answer = client.post("/predict", json={"texts": texts})
        assert answer.status_code == 200, answer.text
        assert answer.json()["results"] == rows


def test_a_span_scheme_tagger_keeps_its_spans_column_on_every_line(tagger_run):
    result = invoke("infer", tagger_run, "Anna Rossi visited Paris.", "", "the the the")
    assert result.exit_code == 0, result.output
    assert [len(line.split("\t")) for line in result.stdout.splitlines()] == [2, 2, 2], result.stdout
    rows = [json.loads(l) for l in invoke("infer", tagger_run, "Anna Rossi visited Paris.", "--jsonl").stdout.splitlines()]
    assert "spans" in rows[0]
