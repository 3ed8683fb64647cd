"""Language models end to end: learning, resume with carried state, streaming, sampling, scoring, bad inputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from conftest import InterruptAt, assert_user_error, invoke
from conftest import shipped_config as raw_config
from grutool import rundir
from grutool.checkpoint import load_checkpoint
from grutool.config_file import parse_config
from grutool.errors import TrainingInterrupted
from grutool.training.callbacks import Callback
from grutool.training.loop import train

ROOT = Path(__file__).resolve().parents[2]
STREAM_TEXT = (ROOT / "data/lm/stream.txt").read_text(encoding="utf-8")


class Losses(Callback):
    def __init__(self):
        self.losses = []

    def on_step_end(self, tr, loss, tokens):
        self.losses.append(loss)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A conditional line model (configs/lm.yaml) and a stream model (configs/lm_stream.yaml), trained briefly."""
    root = tmp_path_factory.mktemp("lm")
    train(parse_config(raw_config("lm.yaml", root / "cond", train={"epochs": 3})))
    train(parse_config(raw_config("lm_stream.yaml", root / "stream", train={"epochs": 2})))
    return {"cond": root / "cond", "stream": root / "stream"}


def test_loss_falls_on_a_learnable_toy(tmp_path):
    rec = Losses()
    summary = train(parse_config(raw_config("lm.yaml", tmp_path / "run", train={"epochs": 4})), callbacks=[rec])
    first, last = sum(rec.losses[:5]) / 5, sum(rec.losses[-5:]) / 5
    assert last < 0.5 * first
    v = summary["validation"]
    assert v["perplexity"] == pytest.approx(torch.tensor(v["loss"]).exp().item(), rel=1e-6)
    assert v["bpc"] < 2.0  # 27 letters would be log2(27) = 4.75 bits guessed blindly


def test_resume_with_carried_state_equals_uninterrupted(tmp_path):
    sets = {"model": {"embedding_dropout": 0.2}, "train": {"epochs": 2, "schedule": "linear"}}
    train(parse_config(raw_config("lm_stream.yaml", tmp_path / "a", **sets)))
    reference = load_checkpoint(tmp_path / "a" / rundir.LAST)["model"]
    raw = raw_config("lm_stream.yaml", tmp_path / "b", **sets)
    with pytest.raises(TrainingInterrupted):
        train(parse_config(raw), callbacks=[InterruptAt(10)])  # mid-epoch: the carried state matters
    saved = load_checkpoint(tmp_path / "b" / rundir.LAST)
    assert saved["meta"]["state"]["batch_in_epoch"] == 10 and saved["carry"] is not None
    train(parse_config(raw), resume=True)
    resumed = load_checkpoint(tmp_path / "b" / rundir.LAST)["model"]
    for k in reference:
        assert torch.equal(resumed[k], reference[k]), k


@pytest.mark.parametrize("kind,condition", [("stream", None), ("cond", "zuri")])
def test_chunked_stateful_prediction_equals_the_whole_text(runs, kind, condition):
    from grutool.predict import Predictor

    p = Predictor(runs[kind], "cpu")
    text = STREAM_TEXT[:150] if kind == "stream" else "Zurixuni"
    whole = p.stream(condition=condition).feed(text)
    s = p.stream(condition=condition)
    parts = [s.feed(text[a:b]) for a, b in ((0, 1), (1, 17), (17, 18), (18, 60), (60, None))]
    assert [t for r in parts for t in r["tokens"]] == whole["tokens"] == list(text)
    chunked = [x for r in parts for x in r["logprobs"]]
    assert (chunked[0] is None) == (whole["logprobs"][0] is None) == (kind == "stream")
    start = 1 if kind == "stream" else 0
    torch.testing.assert_close(torch.tensor(chunked[start:]), torch.tensor(whole["logprobs"][start:]),
                               atol=1e-5, rtol=0)
    # --score reads the same way (line models add the <eos> that ends the text).
    scored = p.predict([text], score=True, condition=condition)[0]
    assert scored["tokens"][: len(text)] == list(text)
    if kind == "cond":
        assert scored["tokens"][-1] == "<eos>"
        torch.testing.assert_close(torch.tensor(scored["logprobs"][:-1]), torch.tensor(whole["logprobs"]),
                                   atol=1e-5, rtol=0)


def test_sampling_is_reproducible_by_seed_and_top_k_1_is_greedy(runs):
    from grutool.predict import Predictor

    p = Predictor(runs["cond"], "cpu")
    a = p.predict([], num=6, seed=5, condition="kalo")
    assert a == p.predict([], num=6, seed=5, condition="kalo")
    assert a != p.predict([], num=6, seed=6, condition="kalo")
    assert len({r["text"] for r in a}) > 1
    greedy = p.predict(["K"], greedy=True, condition="pelt")
    top1 = p.predict(["K"], top_k=1, condition="pelt", num=2, seed=9)  # any seed: the same text
    assert [r["text"] for r in top1] == [greedy[0]["text"]] * 2
    assert all(r["logprob"] == pytest.approx(greedy[0]["logprob"], abs=1e-5) for r in top1)  # batch of 2 vs 1
    assert greedy[0]["text"].startswith("K")
    s = Predictor(runs["stream"], "cpu").predict(["the "], num=2, max_length=30, temperature=0.7, top_p=0.9)
    assert all(r["text"].startswith("the ") and len(r["text"]) == 34 and not r["finished"] for r in s)


def test_a_word_model_reads_unknown_prompt_words_as_unk_with_a_warning(tmp_path):
    import logging

    from grutool.predict import Predictor

    raw = raw_config("lm_stream.yaml", tmp_path / "run", train={"epochs": 1, "monitor": "loss"})
    raw["data"].update(tokenizer="word")
    raw["model"].update(adaptive_cutoffs=[8], tie_embeddings=False)  # words: the adaptive softmax option
    train(parse_config(raw))
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # whatever other tests did to the logger's own handlers
    logger = logging.getLogger("grutool")
    saved = logger.handlers[:]
    logger.handlers = [handler]
    try:
        out = Predictor(tmp_path / "run", "cpu").predict(["the zebra"], max_length=5)
    finally:
        logger.handlers = saved
    assert any("'zebra'" in r.getMessage() for r in records) and len(out) == 1
    r = invoke("eval", tmp_path / "run", "--json")
    assert r.exit_code == 0 and '"perplexity"' in r.stdout and '"bpc"' not in r.stdout, r.output


@pytest.mark.parametrize("args,expected", [
    (["--condition", "klingon"], "--condition: unknown 'klingon'; known: kalo, pelt, zuri"),
    ([], "--condition: "),
    (["--condition", "zuri", "--temperature", "0"], "--temperature: must be > 0"),
    (["--condition", "zuri", "--temperature", "inf"], "--temperature: must be > 0 and finite"),
    (["--condition", "zuri", "--temperature", "1e300"], "1e-20 to 1e+20 (got 1e+300)"),  # inf in float32
    (["--condition", "zuri", "--temperature", "1e-50"], "1e-20 to 1e+20 (got 1e-50)"),  # 0 in float32
    (["--condition", "zuri", "--top-p", "0"], "--top-p: must be in (0, 1]"),
    (["--condition", "zuri", "--top-p", "1.5"], "--top-p: must be in (0, 1]"),
    (["--condition", "zuri", "--top-k", "0"], "--top-k: must be at least 1"),
    (["--condition", "zuri", "--prompt", "Zé"], "error: prompt: characters the model never saw in training: 'é'"),
    # a TEXT argument's error said `--prompt:`, a flag not given: the prompt is named, from wherever it came
    (["--condition", "zuri", "Zé"], "error: prompt: characters the model never saw in training: 'é'"),
    # of several prompts, the one at fault is named by its place
    (["--condition", "zuri", "--prompt", "Ka", "--prompt", "Zé"],
     "error: prompt 2 of 2 ('Zé'): characters the model never saw in training: 'é'"),
    (["--condition", "zuri", "Ka", "Zé"], "error: prompt 2 of 2 ('Zé'): characters the model never saw in training"),
    # settings that would change nothing were accepted and dropped: sampling's beside --greedy, any beside --score
    (["--condition", "zuri", "--greedy", "--temperature", "0.5"],
     "--temperature: --greedy always takes the most likely token, so this would change nothing; remove "
     "--temperature, or --greedy to sample"),
    (["--condition", "zuri", "--greedy", "--top-k", "3", "--top-p", "0.5"], "remove --top-k, --top-p, or --greedy"),
    (["--condition", "zuri", "--greedy", "--num", "3"], "--num: --greedy gives the same text every time"),
    (["--condition", "zuri", "--score", "Kalo", "--num", "3"],
     "--num: --score scores the texts given and generates nothing, so this would change nothing; remove --num"),
    (["--condition", "zuri", "--score", "Kalo", "--temperature", "0.5", "--seed", "3"],
     "remove --temperature, --seed"),
])
def test_bad_generation_options(runs, args, expected):
    assert_user_error(invoke("infer", runs["cond"], *args), expected)


def test_a_scored_text_with_unseen_characters_is_named_by_its_place(runs):
    # it said `text: characters the model never saw ...`, naming neither --score nor which text
    assert_user_error(invoke("infer", runs["stream"], "--score", "the cat", "the éa"),
                      "--score: text 2 of 2 ('the éa'): characters the model never saw in training: 'é' (1)")


def test_a_condition_for_an_unconditioned_model(runs):
    assert_user_error(invoke("infer", runs["stream"], "--condition", "zuri"), "unconditioned model")


@pytest.mark.parametrize("train_text,sets,expected", [
    ("", {}, "empty corpus"),
    ("a few characters only\n", {"bptt": 16}, "less than one train.bptt chunk (16)"),
])
def test_bad_corpora_fail_before_anything_is_written(tmp_path, train_text, sets, expected):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(train_text, encoding="utf-8")
    raw = raw_config("lm_stream.yaml", tmp_path / "run", train=sets)
    raw["data"].update(train=str(corpus), validation=None)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert_user_error(invoke("train", cfg), expected)
    assert not (tmp_path / "run").exists()


def test_infer_cli_generates_and_scores(runs):
    import json

    r = invoke("infer", runs["cond"], "--condition", "kalo", "--num", "3", "--seed", "1", "--jsonl")
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert r.exit_code == 0 and len(rows) == 3 and all(x["condition"] == "kalo" for x in rows), r.output
    r = invoke("infer", runs["cond"], "--condition", "kalo", "--score", "Kalo", "Zuri")
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == 2, r.output


def test_infer_file_scores_the_text_column_of_the_runs_own_data_file(runs, tmp_path):
    """README: `--file` reads a csv/tsv/jsonl through the run's text column (header skipped, the condition column
    ignored: --condition gives it), the same scores as the texts given one by one."""
    import csv

    with open(ROOT / "data/lm/test.tsv", encoding="utf-8") as f:
        texts = [row["text"] for row in csv.DictReader(f, delimiter="\t")]
    r = invoke("infer", runs["cond"], "--condition", "zuri", "--score", "--file", ROOT / "data/lm/test.tsv")
    assert r.exit_code == 0, r.output
    assert r.stdout == invoke("infer", runs["cond"], "--condition", "zuri", "--score", *texts).stdout
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text("".join(f'{{"text": "{t}"}}\n' for t in texts[:3]), encoding="utf-8")
    r = invoke("infer", runs["cond"], "--condition", "zuri", "--score", "--file", jsonl)
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == 3, r.output


def test_infer_prints_each_samples_log_probability_on_a_stream_model(tmp_path):
    """README: one sample per line, text<TAB>log-probability; a stream's sample spanning lines keeps it too."""
    import json

    train(parse_config(raw_config("lm_stream.yaml", tmp_path / "run", train={"max_steps": 3})))
    for prompt in ("the cat", "the cat.\nthe dog"):  # the second spans lines whatever the model samples
        args = ("infer", tmp_path / "run", "--prompt", prompt, "--num", "2", "--max-length", "12", "--seed", "3")
        plain, rows = invoke(*args), invoke(*args, "--jsonl")
        assert plain.exit_code == 0 and rows.exit_code == 0, plain.output + rows.output
        samples = [json.loads(x) for x in rows.stdout.splitlines()]
        assert len(samples) == 2 and all(s["text"].startswith(prompt) and s["logprob"] < 0 for s in samples)
        assert plain.stdout == "".join(f"{s['text']}\t{s['logprob']:.4f}\n" + ("\n" if "\n" in s["text"] else "")
                                       for s in samples)


def test_a_character_stream_never_samples_eos(tmp_path):
    # A character stream holds no <eos> (stream_tokens: every character, no line-end token), yet a barely trained
    # model gives it some probability, and a hot sample wrote a literal `<eos>` into the text, which `--score`
    # then refused (characters the model never saw). A word stream's <eos> is its line end and stays.
    import json

    train(parse_config(raw_config("lm_stream.yaml", tmp_path / "run", train={"max_steps": 3})))
    r = invoke("infer", tmp_path / "run", "--num", "20", "--max-length", "60", "--temperature", "4", "--seed", "1",
               "--jsonl")
    assert r.exit_code == 0, r.output
    texts = [json.loads(line)["text"] for line in r.stdout.splitlines()]
    assert len(texts) == 20 and not any("<eos>" in t for t in texts), [t for t in texts if "<eos>" in t][:3]
    scored = invoke("infer", tmp_path / "run", "--score", *texts[:3])
    assert scored.exit_code == 0, scored.output  # what it samples, it can score


def test_lm_lines_carry_the_log_probability():
    from grutool.families.lm.render import line

    assert line({"text": "the cat sees", "logprob": -3.14159}) == "the cat sees\t-3.1416"
    assert line({"text": "the cat.\nthe dog", "logprob": -7.0}) == "the cat.\nthe dog\t-7.0000\n"
    assert line({"text": "Kalo", "tokens": ["K"], "logprob": -2.0, "perplexity": 1.5}) == "-2.0000\t1.500\tKalo"


@pytest.mark.parametrize("config", ["lm.yaml", "lm_stream.yaml"])
def test_shapes_and_bench_run_the_lm(config, monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    r = invoke("shapes", "--config", f"configs/{config}", "--json")
    assert r.exit_code == 0, r.output
    assert json_field(r.stdout, "all_passed") is True
    out = tmp_path / "b.json"
    # a stream's chunks are train.bptt steps: its T is set there (--seq-len is refused, as for a forecaster)
    length = ["--set", "train.bptt=8"] if "stream" in config else ["--seq-len", "8"]
    r = invoke("bench", "--config", f"configs/{config}", "--repeats", "1", "--warmup", "0", "--min-sample-ms", "1",
               "--threads", "1", *length, "--batch", "4", "-q", "-o", out)
    assert r.exit_code == 0, r.output


def json_field(text: str, key: str):
    import json

    return json.loads(text)[key]


def test_a_top_p_below_float32s_smallest_number_keeps_the_most_likely_token():
    # top_p 1e-46 reads as 0 in float32: every token was dropped, and sampling from none raised (a traceback in
    # infer, a 500 in serve). The nucleus always holds the most likely token; greater top_p are unchanged.
    from grutool.families.lm.generation import filtered

    logp = torch.log_softmax(torch.tensor([[0.1, 2.0, -1.0, 0.5], [3.0, 0.0, 0.0, 0.0]]), -1)
    for top_p in (1e-46, 1e-30):
        kept = torch.isfinite(filtered(logp, 1.0, None, top_p))
        assert kept.tolist() == [[False, True, False, False], [True, False, False, False]]
    assert torch.isfinite(filtered(logp, 1.0, None, 0.9)).sum(-1).tolist() == [3, 2]


def test_a_decomposed_prompt_is_read_as_the_composed_lines_were(tmp_path):
    """A character line model reads its lines in NFC (get_tokenizer); prompts and --score texts were read as typed,
    so a decomposed 'é' (e + U+0301, as macOS writes it) was refused as a character the model never saw."""
    import unicodedata

    from grutool.predict import Predictor

    corpus = tmp_path / "words.txt"
    corpus.write_text("café\nthé\nbébé\nclé\nété\n" * 4, encoding="utf-8")
    raw = {"task": "lm", "data": {"train": str(corpus), "tokenizer": "char"},
           "model": {"embedding_dim": 8, "hidden_size": 8}, "train": {"epochs": 1, "device": "cpu"},
           "output_dir": str(tmp_path / "run")}
    train(parse_config(raw), progress=False)
    predictor = Predictor(tmp_path / "run", "cpu")
    composed, decomposed = "café", unicodedata.normalize("NFD", "café")
    assert composed != decomposed
    a, b = predictor.predict([composed, decomposed], score=True)
    assert a["logprob"] == b["logprob"] and a["tokens"] == b["tokens"]
