"""Tag schemes and span scoring: hand-computed conlleval results, conlleval.pl's own counting loop
as a reference on random (often malformed) sequences, and IOB1 <-> IOB2 <-> BIOES round trips."""

from __future__ import annotations

import random

import pytest
import torch

from grutool.families.tagger import schemes
from grutool.families.tagger.metrics import TaggingMetrics, conlleval
from grutool.families.tagger.model import TaggerOutput

# --- conlleval.pl, transliterated: its two chunk functions and its counting loop ------------


def _pl_end(prev: str, tag: str, prev_type: str, kind: str) -> bool:
    end = False
    for a, b in (("B", "B"), ("B", "O"), ("I", "B"), ("I", "O"), ("E", "E"), ("E", "I"), ("E", "O")):
        if prev == a and tag == b:
            end = True
    if prev != "O" and prev != "." and prev_type != kind:
        end = True
    return end or prev in ("]", "[")


def _pl_start(prev: str, tag: str, prev_type: str, kind: str) -> bool:
    start = False
    for a, b in (("B", "B"), ("I", "B"), ("O", "B"), ("O", "I"), ("E", "E"), ("E", "I"), ("O", "E")):
        if prev == a and tag == b:
            start = True
    if tag != "O" and tag != "." and prev_type != kind:
        start = True
    return start or tag in ("[", "]")


def conlleval_pl(gold: list[list[str]], pred: list[list[str]]) -> tuple[int, int, int]:
    """(correct, found in gold, found in predictions), counted exactly as conlleval.pl's main loop does."""
    correct = found_correct = found_guessed = 0
    in_correct = False
    last_c, last_g, last_ct, last_gt = "O", "O", "", ""
    lines: list = []
    for g, p in zip(gold, pred):
        lines += list(zip(g, p)) + [None]  # None: the sentence boundary, read as O O
    for item in lines:
        c, ct = schemes.split_tag(item[0]) if item else ("O", "")
        gg, gt = schemes.split_tag(item[1]) if item else ("O", "")
        if in_correct:
            ec, eg = _pl_end(last_c, c, last_ct, ct), _pl_end(last_g, gg, last_gt, gt)
            if ec and eg and last_gt == last_ct:
                in_correct = False
                correct += 1
            elif ec != eg or gt != ct:
                in_correct = False
        sc, sg = _pl_start(last_c, c, last_ct, ct), _pl_start(last_g, gg, last_gt, gt)
        if sc and sg and gt == ct:
            in_correct = True
        found_correct += sc
        found_guessed += sg
        last_c, last_g, last_ct, last_gt = c, gg, ct, gt
    if in_correct:
        correct += 1
    return correct, found_correct, found_guessed


# --- hand-computed --------------------------------------------------------------------------

# Five sentences; the spans conlleval reads are noted beside each.
GOLD = [
    ["B-PER", "I-PER", "O", "B-LOC"],   # PER(0,2) LOC(3,4)
    ["B-LOC", "I-LOC", "O"],            # LOC(0,2)
    ["O", "B-PER", "I-PER", "I-PER"],   # PER(1,4)
    ["B-ORG", "I-ORG"],                 # ORG(0,2)
    ["O", "O"],                         # -
]
PRED = [
    ["B-PER", "I-PER", "O", "B-ORG"],   # PER(0,2) ok, ORG(3,4) wrong type
    ["I-LOC", "I-LOC", "O"],            # I- without B- starts a span: LOC(0,2) ok
    ["O", "I-PER", "B-PER", "I-PER"],   # PER(1,2) PER(2,4): both wrong
    ["B-ORG", "I-LOC"],                 # the type change ends ORG(0,1) and starts LOC(1,2): both wrong
    ["O", "I-MISC"],                    # MISC(1,2): wrong
]
# gold 5 spans (PER 2, LOC 2, ORG 1); predicted 8 (PER 3, ORG 2, LOC 2, MISC 1); correct 2 (PER, LOC)


def test_span_scores_match_hand_computed_conlleval():
    got = conlleval(GOLD, PRED)
    assert got["spans"] == {"gold": 5, "predicted": 8, "correct": 2}
    assert got["span_precision"] == pytest.approx(2 / 8)
    assert got["span_recall"] == pytest.approx(2 / 5)
    assert got["span_f1"] == pytest.approx(2 * 0.25 * 0.4 / 0.65)  # 0.3077
    per = got["per_type"]
    assert per["PER"]["precision"] == pytest.approx(1 / 3) and per["PER"]["recall"] == pytest.approx(1 / 2)
    assert per["PER"]["f1"] == pytest.approx(0.4)
    assert per["LOC"]["f1"] == pytest.approx(0.5)
    assert per["ORG"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1, "predicted": 2}
    assert per["MISC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0, "predicted": 1}
    assert conlleval_pl(GOLD, PRED) == (2, 5, 8)


def test_token_and_sentence_accuracy_of_the_metrics_object():
    tags = sorted({t for s in GOLD + PRED for t in s})
    index = {t: i for i, t in enumerate(tags)}
    T = max(map(len, GOLD))
    gold = torch.full((len(GOLD), T), -100)
    pred = torch.zeros(len(GOLD), T, dtype=torch.long)
    for b, (g, p) in enumerate(zip(GOLD, PRED)):
        gold[b, :len(g)] = torch.tensor([index[t] for t in g])
        pred[b, :len(p)] = torch.tensor([index[t] for t in p])
    m = TaggingMetrics(tags, "iob2")
    m.update(TaggerOutput(torch.zeros(0), pred, None), gold)
    out = m.compute()
    assert out["tokens"] == 15 and out["token_accuracy"] == pytest.approx(9 / 15)  # as conlleval's accuracy
    assert out["sentence_accuracy"] == 0.0  # every sentence has at least one wrong tag
    assert out["span_f1"] == pytest.approx(conlleval(GOLD, PRED)["span_f1"])
    assert sum(map(sum, out["confusion"]["matrix"])) == 15


@pytest.mark.parametrize("joint", [False, True])
def test_sentence_accuracy_leaves_empty_sentences_out_for_the_tagger_only(joint):
    """An empty sentence (a CoNLL-U sentence of comments only) has no tag to get right: the tagger counted it
    right (empty, right, wrong: 2/3); the joint model keeps it, as its intent is scored."""
    tags = ["O", "B-X"]
    gold = torch.tensor([[-100, -100], [0, 1], [0, 1]])  # (B, T): empty, then two sentences of two tokens
    pred = torch.tensor([[0, 0], [0, 1], [0, 0]])  # the third sentence's second tag is wrong
    m = TaggingMetrics(tags, "iob2", ["a", "b"] if joint else None)
    intents = torch.tensor([[5.0, 0.0]] * 3)  # (B, K) every intent predicted "a", and right
    m.update(TaggerOutput(torch.zeros(0), pred, intents if joint else None),
             {"tags": gold, "intent": torch.zeros(3, dtype=torch.long)} if joint else gold)
    out = m.compute()
    assert out["n"] == 3 and out["tokens"] == 4
    assert out["sentence_accuracy"] == pytest.approx(2 / 3 if joint else 1 / 2)
    if joint:
        assert out["intent_accuracy"] == 1.0


def test_bioes_spans():
    gold = [["S-PER", "O", "B-LOC", "I-LOC", "E-LOC", "S-ORG", "S-ORG"]]
    assert schemes.spans(gold[0]) == [("PER", 0, 1), ("LOC", 2, 5), ("ORG", 5, 6), ("ORG", 6, 7)]
    # A B- never closed by E- still ends where the O (or the sentence) begins.
    assert schemes.spans(["B-PER", "O", "B-LOC", "I-LOC"]) == [("PER", 0, 1), ("LOC", 2, 4)]
    assert schemes.spans(["E-X", "E-X", "I-X", "E-X"]) == [("X", 0, 1), ("X", 1, 2), ("X", 2, 4)]


def _random_tags(rng: random.Random, n: int, prefixes: str) -> list[str]:
    pool = ["O"] + [f"{p}-{k}" for p in prefixes for k in ("A", "B-C")]  # a type with a hyphen, too
    return [rng.choice(pool) for _ in range(n)]


def test_spans_equal_conlleval_pl_on_random_malformed_sequences():
    rng = random.Random(0)
    for _ in range(300):
        lengths = [rng.randint(0, 7) for _ in range(rng.randint(1, 4))]
        gold = [_random_tags(rng, n, "BI") for n in lengths]
        pred = [_random_tags(rng, n, "BI") for n in lengths]
        got = conlleval(gold, pred)["spans"]
        assert (got["correct"], got["gold"], got["predicted"]) == conlleval_pl(gold, pred), (gold, pred)


# --- conversion ---------------------------------------------------------------------------


def _random_spans(rng: random.Random, n: int) -> list[tuple[str, int, int]]:
    spans, i = [], 0
    while i < n:
        if rng.random() < 0.5:
            end = rng.randint(i + 1, n)
            spans.append((rng.choice(["PER", "LOC"]), i, end))
            i = end
        else:
            i += 1
    return spans


@pytest.mark.parametrize("scheme", ["iob1", "iob2", "bioes"])
def test_tags_of_spans_read_back_as_the_same_spans(scheme):
    rng = random.Random(1)
    for _ in range(300):
        n = rng.randint(0, 9)
        found = _random_spans(rng, n)
        tags = schemes.to_tags(found, n, scheme)
        assert all(schemes.is_valid_tag(t, scheme) for t in tags)
        assert schemes.spans(tags) == found, tags


def test_round_trips_between_schemes():
    rng = random.Random(2)
    for _ in range(300):
        n = rng.randint(0, 9)
        iob1 = schemes.to_tags(_random_spans(rng, n), n, "iob1")
        iob2 = schemes.convert(iob1, "iob2")
        bioes = schemes.convert(iob2, "bioes")
        assert schemes.convert(bioes, "iob1") == iob1
        assert schemes.convert(bioes, "iob2") == iob2
        assert schemes.convert(iob1, "bioes") == bioes


def test_known_conversions():
    iob1 = ["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG"]
    assert schemes.convert(iob1, "iob2") == ["B-PER", "I-PER", "B-PER", "O", "B-LOC", "B-ORG"]
    assert schemes.convert(iob1, "bioes") == ["B-PER", "E-PER", "S-PER", "O", "S-LOC", "S-ORG"]
    # Malformed IOB2 (I- after O) is repaired the way conlleval reads it.
    assert schemes.convert(["O", "I-LOC", "I-LOC"], "bio") == ["O", "B-LOC", "I-LOC"]


@pytest.mark.parametrize("scheme", ["iob1", "iob2", "bioes"])
def test_written_sequences_obey_the_crf_constraints(scheme):
    rng = random.Random(3)
    tags = sorted({t for _ in range(50) for t in schemes.to_tags(_random_spans(rng, 6), 6, scheme)})
    allowed, start, end = schemes.allowed_transitions(tags, scheme)
    index = {t: i for i, t in enumerate(tags)}
    forbidden = sum(not a for row in allowed for a in row)
    assert forbidden > 0, "a span scheme forbids some transitions"
    for _ in range(300):
        seq = [index[t] for t in schemes.to_tags(_random_spans(rng, 6), 6, scheme)]
        assert start[seq[0]] and end[seq[-1]]
        assert all(allowed[a][b] for a, b in zip(seq, seq[1:]))


def test_tag_validity():
    assert schemes.is_valid_tag("B-PER", "bio") and schemes.is_valid_tag("O", "iob1")
    assert not schemes.is_valid_tag("NN", "bio")
    assert not schemes.is_valid_tag("S-PER", "iob2") and schemes.is_valid_tag("S-PER", "bioes")
    assert not schemes.is_valid_tag("B-", "iob2") and not schemes.is_valid_tag("BX-PER", "iob2")
    assert schemes.is_valid_tag("-LRB-", "plain")
