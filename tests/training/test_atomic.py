"""Atomic writes (grutool.atomic): whole file or the previous one, no torch needed."""

from __future__ import annotations

import json

import pytest

from grutool.atomic import write_atomic, write_json_atomic, write_text_atomic
from grutool.data.vocab import LabelVocab, Vocab


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "report.md"
    write_text_atomic("before", path)

    def broken(f):
        f.write(b"half a fi")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, broken)
    assert path.read_text(encoding="utf-8") == "before"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_json_and_vocabularies_round_trip_through_atomic_writes(tmp_path, monkeypatch):
    write_json_atomic({"ä": [1, 2]}, tmp_path / "x.json", ensure_ascii=False)
    assert json.loads((tmp_path / "x.json").read_text(encoding="utf-8")) == {"ä": [1, 2]}

    written = []
    import grutool.data.vocab as vocab_module

    real = vocab_module.write_json_atomic
    monkeypatch.setattr(vocab_module, "write_json_atomic",
                        lambda obj, path, **kw: (written.append(path.name), real(obj, path, **kw)))
    Vocab(["<pad>", "<unk>", "ü"]).save(tmp_path / "vocab.json")
    LabelVocab(["neg", "pos"]).save(tmp_path / "labels.json")
    assert written == ["vocab.json", "labels.json"]
    assert Vocab.load(tmp_path / "vocab.json").itos == ["<pad>", "<unk>", "ü"]
    assert LabelVocab.load(tmp_path / "labels.json").itos == ["neg", "pos"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.json", "vocab.json", "x.json"]

