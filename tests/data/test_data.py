"""Tokenizers, vocabularies, batching."""

import pytest
import torch

from grutool.data.batching import EncodedSplit, collate, epoch_batches, sorted_batches
from grutool.data.tokenize import get_tokenizer
from grutool.data.vocab import LabelVocab, Vocab


def test_decomposed_text_is_the_same_tokens_as_composed_and_marks_stay_in_their_word():
    # The word tokenizer's \w holds no combining mark: a decomposed "Köln" (o + U+0308) was "Ko", "̈", "ln", with
    # another answer than the composed one (sentiment 0.68 against 0.56), and a Devanagari vowel sign split its word.
    import unicodedata

    text = "Zoë visited Köln, très naïve कि don't"
    for name in ("word", "whitespace", "char"):
        split = get_tokenizer(name, lowercase=False)
        assert split(unicodedata.normalize("NFD", text)) == split(text), name
    assert get_tokenizer("word", False)(text) == ["Zoë", "visited", "Köln", ",", "très", "naïve", "कि", "don't"]
    assert get_tokenizer("word", True)(unicodedata.normalize("NFD", "ÉTÉ")) == ["été"]


def test_tokenizers():
    assert get_tokenizer("whitespace", False)("It's  GOOD, ok") == ["It's", "GOOD,", "ok"]
    assert get_tokenizer("word", True)("It's GOOD, ok!") == ["it's", "good", ",", "ok", "!"]
    assert get_tokenizer("char", False)(" ab c ") == ["a", "b", " ", "c"]


def test_vocab_min_freq_max_size_and_specials(tmp_path):
    seqs = [["a", "b", "a"], ["c", "a", "b"], ["d"]]
    v = Vocab.build(seqs, min_freq=2)
    assert v.itos == ["<pad>", "<unk>", "a", "b"]
    assert v.encode(["a", "zzz", "b"]) == [2, 1, 3]
    assert Vocab.build(seqs, max_size=1).itos == ["<pad>", "<unk>", "a"]
    v.save(tmp_path / "v.json")
    assert Vocab.load(tmp_path / "v.json").itos == v.itos


def test_label_vocab_orders_integers_numerically():
    assert LabelVocab.build(["10", "2", "1"]).itos == ["1", "2", "10"]
    assert LabelVocab.build(["pos", "neg"]).itos == ["neg", "pos"]


def test_bucketed_batches_cover_every_example_once_and_group_lengths():
    lengths = [(i * 37) % 50 + 1 for i in range(1000)]
    batches = epoch_batches(lengths, 16, "bucketed", seed=1, epoch=0)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(1000))
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    random_spread = [max(lengths[i] for i in b) - min(lengths[i] for i in b)
                     for b in epoch_batches(lengths, 16, "random", seed=1, epoch=0)]
    assert spread < 0.2 * (sum(random_spread) / len(random_spread))


def test_epoch_batches_are_a_function_of_seed_and_epoch():
    lengths = list(range(1, 101))
    assert epoch_batches(lengths, 8, "bucketed", 5, 2) == epoch_batches(lengths, 8, "bucketed", 5, 2)
    assert epoch_batches(lengths, 8, "bucketed", 5, 2) != epoch_batches(lengths, 8, "bucketed", 5, 3)


def test_collate_pads_and_keeps_lengths_on_cpu():
    split = EncodedSplit([torch.tensor([5, 6, 7]), torch.tensor([8])], [torch.tensor(1), torch.tensor(0)], ["x", "y"])
    b = collate(split, [1, 0])
    assert b.ids.tolist() == [[8, 0, 0], [5, 6, 7]]
    assert b.lengths.tolist() == [1, 3] and b.lengths.device.type == "cpu"
    assert b.targets.tolist() == [0, 1]
    order = [i for batch in sorted_batches(split, 1) for i in batch.index]
    assert order == [1, 0]


@pytest.mark.parametrize("family", ["table", "tagger", "lm", "seq2seq"])
def test_a_format_its_name_does_not_tell_is_fixed_by_the_file_s_name_for_a_trained_run(tmp_path, family):
    from types import SimpleNamespace

    from grutool.data.loading import file_format, for_trained_run
    from grutool.errors import UserError
    from grutool.families.lm.data import line_format
    from grutool.families.seq2seq.data import pair_format
    from grutool.families.tagger.data import tagging_format

    path = tmp_path / "other.dat"
    path.write_text("good film\tpos\n", encoding="utf-8")
    tell = {"table": lambda: file_format(str(path), "auto"), "tagger": lambda: tagging_format(str(path), "auto"),
            "lm": lambda: line_format(SimpleNamespace(data=SimpleNamespace(format="auto")), str(path)),
            "seq2seq": lambda: pair_format(str(path), "auto")}[family]
    with pytest.raises(UserError, match="set data.format"):  # a config: its data.format is the fix
        tell()
    with for_trained_run(), pytest.raises(UserError) as e:  # a trained run's data.format is fixed
        tell()
    # was: '... set data.format to ...' for eval --data and infer --file too
    assert "data.format" not in str(e.value) and "the run reads a file's format from its extension: name it ." \
        in str(e.value)
