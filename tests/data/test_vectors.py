"""Pretrained word vectors: rows land on the right tokens, coverage is reported, bad files fail clearly."""

import pytest
import torch

from grutool.config_file import parse_config
from grutool.data.vectors import load_vectors
from grutool.data.vocab import Vocab
from grutool.errors import UserError
from grutool.training.loop import train

from conftest import tiny_config


def test_glove_and_word2vec_text(tmp_path):
    vocab = Vocab(["<pad>", "<unk>", "good", "bad", "meh"])
    glove = tmp_path / "g.txt"
    glove.write_text("good 1 2 3\nother 9 9 9\nbad -1 -2 -3\n")
    weight, coverage = load_vectors(str(glove), vocab, 3)
    assert weight[2].tolist() == [1, 2, 3] and weight[3].tolist() == [-1, -2, -3]
    assert torch.all(weight[0] == 0), "<pad> stays zero"
    assert coverage == pytest.approx(2 / 3)
    w2v = tmp_path / "w.txt"
    w2v.write_text("2 3\nmeh 0.5 0.5 0.5\ngood 1 1 1\n")
    weight, coverage = load_vectors(str(w2v), vocab, 3)
    assert weight[4].tolist() == [0.5, 0.5, 0.5] and coverage == pytest.approx(2 / 3)


def test_dimension_mismatch_names_the_fix(tmp_path):
    f = tmp_path / "g.txt"
    f.write_text("good 1 2\n")
    with pytest.raises(UserError, match="model.embedding_dim: 2"):
        load_vectors(str(f), Vocab(["<pad>", "<unk>", "good"]), 3)
    with pytest.raises(UserError, match="not found"):
        load_vectors(str(tmp_path / "missing.txt"), Vocab(["<pad>", "<unk>"]), 3)


@pytest.mark.parametrize("values,expected", [
    ("1 2 1e39", "holds 1e39, not a finite float32 number"),  # finite in Python, inf in float32
    ("1 nan 3", "holds nan, not a finite float32"),
    ("-inf 2 3", "holds -inf, not a finite float32"),
    ("1 two 3", "holds two, not a finite float32 number"),
])
def test_values_that_are_not_finite_numbers_name_the_line(tmp_path, values, expected):
    # Accepted before: training then diverged and the message blamed train.lr.
    f = tmp_path / "g.txt"
    f.write_text(f"bad 1 2 3\ngood {values}\n")
    with pytest.raises(UserError, match=rf"g.txt:2: vector for 'good' {expected}"):
        load_vectors(str(f), Vocab(["<pad>", "<unk>", "good", "bad"]), 3)


def test_training_starts_from_the_vectors(tmp_path, caplog):
    raw = tiny_config(tmp_path, epochs=1)
    vec = tmp_path / "vec.txt"
    vec.write_text("good " + " ".join(["0.25"] * 16) + "\n")
    raw["data"]["vectors"] = str(vec)
    raw["model"]["freeze_embeddings"] = True
    import logging
    logger = logging.getLogger("grutool")
    logger.addHandler(caplog.handler)  # the CLI may have set propagate=False in an earlier test
    try:
        with caplog.at_level("INFO", logger="grutool"):
            train(parse_config(raw))
    finally:
        logger.removeHandler(caplog.handler)
    assert "coverage" in caplog.text
    from grutool.checkpoint import load_checkpoint
    from grutool.rundir import open_run
    run = open_run(tmp_path / "run")
    emb = load_checkpoint(tmp_path / "run" / "last.pt")["model"]["embedding.weight"]
    assert emb[run.vocab.stoi["good"]].tolist() == [0.25] * 16, "frozen embeddings keep the vector"
