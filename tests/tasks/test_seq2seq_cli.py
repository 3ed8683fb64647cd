"""Seq2seq end to end: the toy task (configs/reverse.yaml) learned in seconds, eval and infer through the CLI,
save -> load identical outputs, and bad inputs as exit code 2 with nothing written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from grutool.config_file import load_config
from grutool.predict import Predictor
from grutool.training.callbacks import Callback
from grutool.training.loop import train

from conftest import assert_user_error, invoke

ROOT = Path(__file__).resolve().parents[2]
REVERSE = ROOT / "configs" / "reverse.yaml"
SOURCES = ["12345", "9081726354", "7", "000111"]


class Recorder(Callback):
    """The in-memory model's outputs for SOURCES whenever best.pt is written."""

    def __init__(self):
        self.best = None

    def on_epoch_end(self, tr, metrics):
        if tr.state.improved:  # the Checkpointer, earlier in the list, just saved these weights
            task = tr.task
            sources = task.source_tokens(tr.cfg, SOURCES, "input")
            split = task.encode(tr.cfg, tr.data.vocab, tr.data.labels, sources, texts=SOURCES)
            from grutool.data.batching import collate

            b = collate(split, list(range(len(SOURCES))))
            tr.model.eval()
            with torch.no_grad():
                out, _ = tr.model(b.ids, b.lengths)
            tr.model.train()
            names = tr.data.labels.itos
            self.best = (["".join(names[i] for i in t) for t in out.hypotheses.tokens], out.hypotheses.scores)


@pytest.fixture(scope="module")
def reverse_run(tmp_path_factory):
    """configs/reverse.yaml, the README example, trained through the library (as `grutool train` does)."""
    run = tmp_path_factory.mktemp("reverse") / "run"
    rec = Recorder()
    summary = train(load_config(REVERSE, [f"output_dir={run}", "train.device=cpu"]), callbacks=[rec])
    return run, summary, rec


def test_toy_task_is_learned(reverse_run):
    run, summary, _ = reverse_run
    assert summary["validation"]["exact_match"] >= 0.95, summary["validation"]
    for name in ("config.yaml", "vocab.json", "target_vocab.json", "best.pt", "last.pt", "summary.json"):
        assert (run / name).is_file(), name
    assert not (run / "labels.json").exists()
    target = json.loads((run / "target_vocab.json").read_text())["tokens"]
    assert target[:4] == ["<pad>", "<unk>", "<bos>", "<eos>"]


def test_eval_json_and_table(reverse_run):
    run = reverse_run[0]
    result = invoke("eval", run, "--split", "test", "--json")
    assert result.exit_code == 0, result.output
    m = json.loads(result.stdout)
    assert {"n", "bleu", "bleu_tok", "chrf", "exact_match", "wer", "cer", "perplexity", "loss", "samples",
            "bleu_signature", "source"} <= set(m)
    assert m["n"] == 200 and m["exact_match"] >= 0.95 and m["wer"] <= 0.05 and 1 <= m["perplexity"] < 1.5
    result = invoke("eval", run)
    assert result.exit_code == 0, result.output
    assert "exact match" in result.stdout and "reference" in result.stdout
    result = invoke("eval", run, "--split", "test", "--json", "--beam", "3")
    beam = json.loads(result.stdout)
    assert beam["beam_size"] == 3 and m["beam_size"] == 1 and beam["exact_match"] >= 0.95
    assert_user_error(invoke("eval", run, "--beam", "0"), "--beam: must be 1 to 256 (got 0)")
    assert_user_error(invoke("eval", run, "--beam", "100000"), "--beam: must be 1 to 256")  # was a traceback (memory)


def test_character_targets_lead_with_character_scores_not_bleu(reverse_run):
    from grutool.families.seq2seq.render import summary_line

    run, summary, _ = reverse_run
    m = json.loads(invoke("eval", run, "--split", "test", "--json").stdout)
    assert m["char_level"] is True and "bleu" in m, "BLEU stays in the record"
    line = summary_line(m)
    assert line.startswith("exact match") and "chrF" in line and "CER" in line and "BLEU" not in line
    assert "BLEU" not in invoke("eval", run).stdout.split("\n")[0]
    assert "val_char_level" not in (run / "metrics.jsonl").read_text()


def test_the_sacrebleu_signature_line_carries_its_score(reverse_run):
    # Before, text eval printed `sacreBLEU nrefs:1|...` alone: on character targets the BLEU value is not in
    # the headline, so the signature stood beside no score at all.
    run = reverse_run[0]
    m = json.loads(invoke("eval", run, "--json").stdout)
    lines = [l for l in invoke("eval", run).stdout.splitlines() if m["bleu_signature"] in l]
    assert len(lines) == 1 and lines[0].startswith(f"sacreBLEU BLEU = {m['bleu']:.2f}  {m['bleu_signature']}"), lines
    assert "character targets" in lines[0]


def test_save_load_gives_identical_outputs(reverse_run):
    run, _, rec = reverse_run
    got = Predictor(run, "cpu").predict(SOURCES)
    assert [r["output"] for r in got] == rec.best[0]
    assert [r["score"] for r in got] == pytest.approx(rec.best[1], abs=1e-5)
    assert got[0]["output"] == "54321"


def test_batched_outputs_equal_one_by_one(reverse_run):
    p = Predictor(reverse_run[0], "cpu")
    for beam in (1, 3):
        one = p.predict(SOURCES, batch_size=1, beam=beam)
        many = p.predict(SOURCES, batch_size=64, beam=beam)
        assert [r["output"] for r in one] == [r["output"] for r in many]
        assert [r["score"] for r in one] == pytest.approx([r["score"] for r in many], abs=1e-5)


def test_infer_lines_jsonl_beam_and_attention(reverse_run, tmp_path):
    run = reverse_run[0]
    result = invoke("infer", run, *SOURCES, "--beam", "3")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 4 and lines[0].split("\t")[0] == "54321" and lines[0].split("\t")[2] == "12345"
    result = invoke("infer", run, "--file", "-", "--jsonl", "--attention-weights", input="4321\n")
    row = json.loads(result.stdout)
    assert set(row) == {"source", "output", "score", "attention"} and row["output"] == "1234"
    a = row["attention"]
    assert a["source_tokens"] == list("4321") and a["output_tokens"] == list("1234") + ["<eos>"]
    assert len(a["weights"]) == 5 and all(len(w) == 4 and abs(sum(w) - 1) < 1e-3 for w in a["weights"])
    png = tmp_path / "att.png"
    result = invoke("infer", run, "42", "--attention", png)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert_user_error(result, "--attention needs matplotlib", "-e '.[plot]'")
    else:
        assert result.exit_code == 0, result.output
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        # said on stderr (it wrote them silently), stdout the results alone
        assert f"wrote {png}" in result.stderr and "wrote" not in result.stdout
        two = invoke("infer", run, "42", "123", "--attention", png)
        assert two.exit_code == 0, two.output
        assert f"wrote {tmp_path / 'att-1.png'}, {tmp_path / 'att-2.png'}" in two.stderr


def test_infer_counts_characters_outside_the_vocabulary_and_truncates(reverse_run):
    result = invoke("infer", reverse_run[0], "12a4b", "1" * 25)
    assert result.exit_code == 0, result.output
    assert "2 source token(s) are not in the vocabulary" in result.stderr and "'a' (1)" in result.stderr
    assert "1 source(s) longer than data.max_length=20" in result.stderr
    assert len(result.stdout.splitlines()) == 2


def test_beam_below_one_exits_2(reverse_run):
    assert_user_error(invoke("infer", reverse_run[0], "12", "--beam", "0"), "--beam: must be 1 to 256 (got 0)")


def test_empty_target_vocabulary_exits_2(reverse_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(reverse_run[0], run)
    (run / "target_vocab.json").write_text('{"tokens": []}', encoding="utf-8")
    for args in (["infer", run, "12"], ["eval", run]):  # an IndexError from the target embedding before
        assert_user_error(invoke(*args), "target_vocab.json: expected", '"<pad>", "<unk>"', "found none")


def test_seq2seq_options_on_a_classifier_run_exit_2(tmp_path, tiny):
    from conftest import tiny_config

    raw = tiny_config(tmp_path, epochs=1)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert invoke("train", cfg, "-q").exit_code == 0
    assert_user_error(invoke("infer", tmp_path / "run", "good", "--beam", "2"), "seq2seq runs only")


def test_bench_times_seq2seq(tmp_path):
    """bench --config times every family (it used to refuse seq2seq): its real train step and generation."""
    from grutool.bench import report as reports

    out = tmp_path / "b.json"
    result = invoke("bench", "--config", REVERSE, "--repeats", "1", "--warmup", "0", "--min-sample-ms", "1",
                    "--threads", "1", "--seq-len", "8", "--batch-size", "4", "-q", "-o", out)
    assert result.exit_code == 0, result.output
    assert {r["mode"] for r in reports.read_report(out)["rows"]} == {"infer", "train"}


# --- bad input ------------------------------------------------------------------------------------------


def config(tmp: Path, train_spec, **data) -> Path:
    raw = {"task": "seq2seq",
           "data": {"train": train_spec, "format": "parallel_text", "source": "src", "target": "tgt",
                    "tokenizer": "char", **data},
           "model": {"embedding_dim": 8, "hidden_size": 8},
           "train": {"epochs": 1, "batch_size": 4, "device": "cpu", "monitor": "loss"},
           "output_dir": str(tmp / "out")}
    path = tmp / "s.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def write_pair(tmp: Path, source: str, target: str, name: str = "train") -> str:
    (tmp / f"{name}.src").write_text(source, encoding="utf-8")
    (tmp / f"{name}.tgt").write_text(target, encoding="utf-8")
    return str(tmp / name)


BAD = {
    # name: (source file, target file, expected pieces of the message)
    "different-lengths": ("12\n34\n56\n", "21\n43\n", ["train.src has 3 lines", "train.tgt has 2", "line-aligned"]),
    "empty-target-line": ("12\n34\n56\n", "21\n\n65\n", ["train.tgt:2", "empty target", "train.src:2"]),
    "empty-source-line": ("12\n \n56\n", "21\n43\n65\n", ["train.src:2", "empty source"]),
    "nothing-but-blank": ("\n \n", "\n\n", ["no pairs"]),
    "not-utf8": (b"12\n\xff\n", "21\n43\n", ["train.src:2", "not valid UTF-8"]),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_pairs_exit_2_and_write_nothing(tmp_path, name):
    src, tgt, expected = BAD[name]
    if isinstance(src, bytes):
        (tmp_path / "train.src").write_bytes(src)
        (tmp_path / "train.tgt").write_text(tgt, encoding="utf-8")
        spec = str(tmp_path / "train")
    else:
        spec = write_pair(tmp_path, src, tgt)
    assert_user_error(invoke("train", config(tmp_path, spec)), *expected)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("row, expected", [("34\t\n", "empty target"), ("\t43\n", "empty source")])
def test_a_table_row_empty_on_one_side_is_named_by_file_and_line_once(tmp_path, row, expected):
    """The row of a TSV is one place: `p.tsv:3: empty target; ...`, not `p.tsv line 3: empty target for the
    source at p.tsv line 3; ...`."""
    (tmp_path / "p.tsv").write_text("source\ttarget\n12\t21\n" + row + "56\t65\n", encoding="utf-8")
    result = invoke("train", config(tmp_path, str(tmp_path / "p.tsv"), format="tsv"))
    assert_user_error(result, f"p.tsv:3: {expected};")
    assert "line 3" not in result.output and not (tmp_path / "out").exists()


def test_missing_target_file_exits_2(tmp_path):
    (tmp_path / "train.src").write_text("12\n", encoding="utf-8")
    assert_user_error(invoke("train", config(tmp_path, str(tmp_path / "train"))), "train.tgt", "not found")


def test_explicit_paths_tsv_and_jsonl_pairs_train(tmp_path):
    rows = [("123", "321"), ("45", "54"), ("6789", "9876"), ("1", "1")] * 3
    (tmp_path / "a.de").write_text("".join(s + "\n" for s, _ in rows), encoding="utf-8")
    (tmp_path / "b.en").write_text("".join(t + "\n" for _, t in rows), encoding="utf-8")
    (tmp_path / "p.tsv").write_text("src\ttgt\n" + "".join(f"{s}\t{t}\n" for s, t in rows), encoding="utf-8")
    (tmp_path / "p.jsonl").write_text("".join(json.dumps({"source": s, "target": t}) + "\n" for s, t in rows),
                                      encoding="utf-8")
    cases = [([str(tmp_path / "a.de"), str(tmp_path / "b.en")], {}),
             (str(tmp_path / "p.tsv"), {"format": "tsv", "source_column": "src", "target_column": "tgt"}),
             (str(tmp_path / "p.jsonl"), {"format": "jsonl"})]
    for spec, fields in cases:
        path = config(tmp_path, spec, **fields)
        result = invoke("train", path, "-q", "--overwrite")
        assert result.exit_code == 0, (spec, result.output)
        assert json.loads((tmp_path / "out" / "summary.json").read_text())["examples"]["train"] == 12


def test_blank_pairs_are_skipped_and_long_sources_truncated_with_counted_warnings(tmp_path):
    spec = write_pair(tmp_path, "12\n\n3456789\n55\n", "21\n\n9876543\n55\n")
    result = invoke("train", config(tmp_path, spec, max_length=4), "-q")
    assert result.exit_code == 0, result.output
    assert "1 line(s) empty on both sides are skipped" in result.stderr
    assert "1 source(s) longer than data.max_length=4 tokens are truncated" in result.stderr
    assert "1 target(s) longer than data.max_length=4" in result.stderr
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["examples"]["train"] == 3


def test_shared_vocabulary_and_resume(tmp_path):
    spec = write_pair(tmp_path, "12\n345\n6\n78\n" * 3, "21\n543\n6\n87\n" * 3)
    path = config(tmp_path, spec, shared_vocab=True)
    assert invoke("train", path, "-q").exit_code == 0
    run = tmp_path / "out"
    assert (run / "vocab.json").read_text() == (run / "target_vocab.json").read_text()
    result = invoke("train", path, "-q", "--resume", "--set", "train.epochs=2")
    assert result.exit_code == 0, result.output
    assert json.loads((run / "summary.json").read_text())["epochs"] == 2
    assert Predictor(run, "cpu").predict(["12"])[0]["output"].isdigit()


class SourceRowsAtStart(Callback):
    def on_train_begin(self, tr):
        vocab, weight = tr.data.vocab, tr.model.token_embedding().weight
        self.rows = {t: weight[vocab.stoi[t]].tolist() for t in ("1", "2")}


def test_pretrained_vectors_initialise_the_source_embedding(tmp_path):
    """data.vectors with seq2seq: the source-side embedding starts from the file (the issue's command line)."""
    spec = write_pair(tmp_path, "12\n345\n6\n78\n" * 3, "21\n543\n6\n87\n" * 3)
    path = config(tmp_path, spec)
    vec = tmp_path / "vec.txt"
    vec.write_text("1 " + " ".join(["0.25"] * 8) + "\n2 " + " ".join(["-0.5"] * 8) + "\n", encoding="utf-8")
    result = invoke("train", path, "--set", f"data.vectors={vec}", "--output-dir", tmp_path / "x", "-q")
    assert result.exit_code == 0, result.output

    seen = SourceRowsAtStart()
    train(load_config(path, [f"data.vectors={vec}", f"output_dir={tmp_path / 'y'}"]), callbacks=[seen])
    assert seen.rows == {"1": [0.25] * 8, "2": [-0.5] * 8}

    vec.write_text("1 0.5 0.5\n", encoding="utf-8")
    assert_user_error(invoke("train", path, "--set", f"data.vectors={vec}", "--output-dir", tmp_path / "z"),
                      "dimension 2", "model.embedding_dim: 2")
    assert not (tmp_path / "z").exists()


def test_attention_options_name_the_flag_given_and_the_weights_need_jsonl(reverse_run, tmp_path):
    # --attention-weights without --jsonl was dropped without a word; on a run without attention it was refused as
    # `--attention: ...`, a flag not given; --prompt (an lm's text to continue) was read as one more input
    run = reverse_run[0]
    assert_user_error(invoke("infer", run, "12", "--attention-weights"),
                      "--attention-weights: adds the weights to the --jsonl objects; add --jsonl")
    assert_user_error(invoke("infer", run, "12", "--prompt", "34"), "--prompt: for lm runs only", "TEXT arguments")
    plain = tmp_path / "plain"
    train(load_config(REVERSE, [f"output_dir={plain}", "train.device=cpu", "model.attention=none",
                                "train.max_steps=2"]))
    assert_user_error(invoke("infer", plain, "12", "--attention-weights", "--jsonl"),
                      "--attention-weights: ", "has no attention (model.attention: none)", "remove the option")
    assert_user_error(invoke("infer", plain, "12", "--attention", tmp_path / "a.png"), "--attention: ")
