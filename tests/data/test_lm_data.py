"""Language-model data: line files with conditions, slices, text_dir (dedupe, stratified seeded split), streams."""

from __future__ import annotations

import json

import pytest

from grutool.config_file import parse_config
from grutool.data.slices import split_slice
from grutool.families.lm.data import read_lines, read_stream
from grutool.errors import UserError
from grutool.families.lm.task import LMTask


def config(train: str, **data):
    return parse_config({"task": "lm", "data": {"train": train, "tokenizer": "char", **data},
                         "model": {"bidirectional": False}, "train": {"monitor": "loss"}})


def test_slices_are_fractions_of_the_stream():
    assert split_slice("a/b.txt[:90%]") == ("a/b.txt", 0.0, 0.9)
    assert split_slice("a/b.txt[80%:90%]") == ("a/b.txt", 0.8, 0.9)
    assert split_slice("a/b.txt") == ("a/b.txt", 0.0, 1.0)
    with pytest.raises(UserError, match="lo < hi"):
        split_slice("a[90%:10%]")


def test_stream_split_is_the_first_and_last_characters(tmp_path):
    f = tmp_path / "s.txt"
    f.write_text("abcdefghij", encoding="utf-8")
    cfg = config(str(f))
    assert read_stream(cfg, f"{f}[:90%]") + read_stream(cfg, f"{f}[90%:]") == "abcdefghij"
    assert read_stream(cfg, f"{f}[90%:]") == "j"


@pytest.mark.parametrize("fmt", ["tsv", "csv", "jsonl"])
def test_line_files_with_a_condition_column(tmp_path, fmt):
    rows = [("Ana", "es"), ("Bo", "sv"), ("Cruz", "es")]
    f = tmp_path / f"t.{fmt}"
    if fmt == "jsonl":
        f.write_text("".join(json.dumps({"text": t, "lang": c}) + "\n" for t, c in rows), encoding="utf-8")
    else:
        sep = "\t" if fmt == "tsv" else ","
        f.write_text(f"text{sep}lang\n" + "".join(f"{t}{sep}{c}\n" for t, c in rows), encoding="utf-8")
    prepared = LMTask().prepare(config(str(f), condition_column="lang"))
    assert prepared.extra["conditions"].itos == ["es", "sv"]
    split = prepared.splits["train"]
    assert [int(c) for c in split.conditions] == [0, 1, 0]
    assert split.ids[1].tolist()[0] == 2 and split.targets[1].tolist()[-1] == 3  # <bos> ... / ... <eos>


def test_text_dir_dedupes_and_splits_every_condition_alike(tmp_path):
    d = tmp_path / "names"
    d.mkdir()
    (d / "A.txt").write_text("\n".join(["x"] * 50 + [f"a{i}" for i in range(20)]) + "\n", encoding="utf-8")
    (d / "B.txt").write_text("\n".join(f"b{i}" for i in range(10)) + "\n", encoding="utf-8")
    cfg = config(str(d), format="text_dir", condition_column="lang")
    parts = [read_lines(cfg, f"{d}{s}") for s in ("[:80%]", "[80%:90%]", "[90%:]")]
    texts = [t for p in parts for t in p.texts]
    assert len(texts) == len(set(texts)) == 31  # "x" once; no line in two splits
    assert [p.conditions.count("A") for p in parts] == [16, 2, 3] and [p.conditions.count("B") for p in parts] == [8, 1, 1]
    assert read_lines(cfg, f"{d}[:80%]").texts == parts[0].texts  # seeded
    other = config(str(d), format="text_dir", condition_column="lang", split_seed=14)
    assert read_lines(other, f"{d}[:80%]").texts != parts[0].texts


@pytest.mark.parametrize("fmt", ["text", "text_dir"])
def test_a_bom_and_crlf_line_ends_read_as_the_plain_file(tmp_path, fmt):
    """A file saved with a BOM and Windows line ends gives the same lines and stream as the plain one: no
    '\\ufeff' or '\\r' becomes a token."""
    texts = {}
    for name, prefix, end in (("plain", "", "\n"), ("windows", "\ufeff", "\r\n")):
        folder = tmp_path / name
        folder.mkdir()
        f = folder / "A.txt"
        f.write_bytes((prefix + end.join(["Ana", "Bo", "", "Cruz"]) + end).encode("utf-8"))
        spec = str(folder) if fmt == "text_dir" else str(f)
        cfg = config(spec, format=fmt, **({"condition_column": "lang"} if fmt == "text_dir" else {}))
        texts[name] = sorted(read_lines(cfg, spec).texts), (read_stream(cfg, str(f)) if fmt == "text" else None)
    assert texts["windows"] == texts["plain"]
    assert all("\ufeff" not in t and "\r" not in t for t in texts["windows"][0])


def test_a_missing_path_is_reported_missing_not_as_an_unknown_format(tmp_path):
    missing = tmp_path / "trian"  # a typo of a folder or extension-less file: format auto cannot tell it
    with pytest.raises(UserError, match="not found") as info:
        read_lines(config(str(missing)), f"{missing}[:90%]")
    assert "cannot tell" not in str(info.value)
