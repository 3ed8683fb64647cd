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



@pytest.mark.parametrize("errno_name", ["EACCES", "EROFS"])
@pytest.mark.parametrize("where", ["mkstemp", "replace"])
def test_a_folder_refusing_the_write_is_one_user_error(tmp_path, monkeypatch, errno_name, where):
    """A folder that passed the checks can still refuse a write (ACLs, a read-only remount): issue 20 saw an
    OSError traceback; now a UserError naming the file, the previous file kept, no temporary left."""
    import errno
    import os
    import tempfile

    from grutool.errors import UserError

    target = tmp_path / "model.onnx"
    target.write_bytes(b"previous")
    code = getattr(errno, errno_name)

    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(tempfile if where == "mkstemp" else os, "mkstemp" if where == "mkstemp" else "replace", refuse)
    with pytest.raises(UserError) as caught:
        write_atomic(target, lambda f: f.write(b"new"))
    assert str(target) in str(caught.value) and "cannot write it" in str(caught.value)
    monkeypatch.undo()
    assert target.read_bytes() == b"previous" and [p.name for p in tmp_path.iterdir()] == ["model.onnx"]
