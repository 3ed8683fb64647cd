"""Flat id storage (`Ragged`, `Tokenized`) gives the examples and batches the per-example lists gave."""

from collections import Counter

import pytest
import torch

from grutool.config import Config
from grutool.data.batching import EncodedSplit, collate, sorted_batches, training_batches
from grutool.data.ragged import Ragged, Tokenized
from grutool.data.tokenize import get_tokenizer
from grutool.data.vocab import LabelVocab, Vocab
from grutool.families import get_task
from conftest import make_rows, write_tsv

# Empty after tokenization (skipped), longer than max_length (cut), punctuation, case, apostrophes, non-ASCII,
# final sigma (lower-casing depends on the neighbours), a token seen once (min_freq drops it).
ODD = [("", "pos"), ("...", "neg"), (" ".join(f"w{i % 9}" for i in range(30)), "pos"), ("   ", "neg"),
       ("Don't STOP — naïve café's ΟΔΟΣ!!", "neg"), ("once-only zzyzx", "pos")]


def reference(cfg: Config, train: list[tuple[str, str]], other: list[tuple[str, str]]):
    """The representation before flat storage: token lists, one tensor per example and per label."""
    d = cfg.data
    tok = get_tokenizer(d.tokenizer, d.lowercase)
    rows = [(t, l) for t, l in train if tok(t)[:d.max_length]]
    tokens = [tok(t)[:d.max_length] for t, _ in rows]
    vocab = Vocab.build(tokens, d.min_freq, d.max_size)
    labels = LabelVocab.build([l for _, l in rows])
    chars = Vocab.build([list(t[:d.max_word_length]) for s in tokens for t in s])

    def encode(rows):
        index = {name: i for i, name in enumerate(labels.itos)}
        toks = [tok(t)[:d.max_length] for t, _ in rows]
        split = EncodedSplit([torch.tensor(vocab.encode(s), dtype=torch.long) for s in toks],
                             [torch.tensor(index[l]) for _, l in rows], [t for t, _ in rows])
        if cfg.model.char_features:
            split.chars = [chars.encode_chars(s, d.max_word_length) for s in toks]
        return split

    return vocab, labels, chars, encode(rows), encode(other)


def same_batches(a: EncodedSplit, b: EncodedSplit) -> None:
    for epoch in (0, 1):
        order = training_batches(a, 4, "bucketed", 7, epoch)
        assert order == training_batches(b, 4, "bucketed", 7, epoch)
        for index in order:
            x, y = collate(a, index), collate(b, index)
            assert x.ids.dtype == y.ids.dtype == torch.long and torch.equal(x.ids, y.ids)
            assert torch.equal(x.lengths, y.lengths) and torch.equal(x.targets, y.targets)
            assert (x.chars is None) == (y.chars is None)
            if x.chars is not None:
                assert torch.equal(x.chars, y.chars)
    for x, y in zip(sorted_batches(a, 5), sorted_batches(b, 5), strict=True):
        assert x.index == y.index and torch.equal(x.ids, y.ids) and torch.equal(x.targets, y.targets)


@pytest.mark.parametrize("model", [{}, {"char_features": True}])
@pytest.mark.parametrize("data", [{"min_freq": 1}, {"min_freq": 2, "max_size": 12, "max_length": 6, "max_word_length": 3},
                                  {"tokenizer": "whitespace", "lowercase": False}])
def test_prepare_gives_the_examples_and_batches_of_per_example_tensors(tmp_path, data, model):
    train = make_rows(80, 0) + ODD
    validation = make_rows(20, 1) + [("", "pos"), ("Unseen WORDS here", "neg")]
    cfg = Config.model_validate({
        "data": {"train": str(write_tsv(tmp_path / "train.tsv", train)),
                 "validation": str(write_tsv(tmp_path / "validation.tsv", validation)), **data},
        "model": {"embedding_dim": 8, "hidden_size": 8, **model}})
    prepared = get_task("classifier").prepare(cfg)
    vocab, labels, chars, ref_train, ref_val = reference(cfg, train, validation)
    assert prepared.vocab.itos == vocab.itos and prepared.labels.itos == labels.itos
    if cfg.model.char_features:
        assert prepared.extra["chars"].itos == chars.itos
    for name, ref in (("train", ref_train), ("validation", ref_val)):
        split = prepared.splits[name]
        assert isinstance(split.ids, Ragged) and len(split) == len(ref)
        assert split.lengths() == ref.lengths() and split.texts == ref.texts
        for i in range(len(ref)):
            assert torch.equal(split.ids[i], ref.ids[i]) and torch.equal(split.targets[i], ref.targets[i])
        same_batches(split, ref)


def test_tokenized_counts_ids_and_rows():
    t = Tokenized.from_lists([["b", "a", "b"], [], ["c", "a"]])
    assert t.distinct == ["b", "a", "c"] and t.lengths() == [3, 0, 2]
    assert t.counts() == Counter({"b": 2, "a": 2, "c": 1})
    assert [t.tokens(i) for i in range(3)] == [["b", "a", "b"], [], ["c", "a"]]
    ids = t.ids({"a": 5, "b": 6}, 1)
    assert [x.tolist() for x in ids] == [[6, 5, 6], [], [1, 5]] and ids.flat.dtype == torch.long
    keep, kept = t.nonempty()
    assert keep == [0, 2] and [kept.tokens(i) for i in range(2)] == [["b", "a", "b"], ["c", "a"]]
    assert len(Tokenized.from_lists([])) == 0 and Tokenized.from_lists([[]]).lengths() == [0]


def test_ragged_rows_are_views_of_one_tensor():
    r = Ragged(torch.arange(6), [2, 0, 4])
    assert len(r) == 3 and r.lengths() == [2, 0, 4]
    assert [x.tolist() for x in r] == [[0, 1], [], [2, 3, 4, 5]]
    assert r[2].data_ptr() == r.flat[2:].data_ptr()
    with pytest.raises(ValueError):
        Ragged(torch.arange(5), [2, 2])
