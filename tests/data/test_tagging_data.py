"""Tagging readers: what each format yields, what is tolerated (CRLF, trailing spaces, trailing blank
lines), and each malformed input as a UserError naming file and line."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from grutool.config import Config, DataConfig
from grutool.families import get_task
from grutool.families.tagger.data import read_sentences, to_model_scheme
from grutool.errors import UserError
from grutool.inputs import read_data_inputs

CONLLU = """# newdoc id = d1
# sent_id = 1
# text = I don't know.
1\tI\tI\tPRON\tPRP\t_\t3\tnsubj\t_\t_
2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_
2\tdo\tdo\tAUX\tVBP\t_\t3\taux\t_\t_
3\tn't\tnot\tPART\tRB\t_\t4\tadvmod\t_\t_
4\tknow\tknow\tVERB\tVB\t_\t0\troot\t_\tSpaceAfter=No
4.1\tknows\tknow\tVERB\tVBZ\t_\t_\t_\t0:root\t_
5\t.\t.\tPUNCT\t.\t_\t4\tpunct\t_\t_

# sent_id = 2
1\tHello\thello\tINTJ\tUH\t_\t0\troot\t_\t_
"""

CONLL = """-DOCSTART- -X- O

Anna NNP B-PER
visited VBD O
New NNP B-LOC
York NNP I-LOC

-DOCSTART- -X- O


Ben NNP B-PER
left VBD O
"""

EXPECTED_CONLL = [(["Anna", "visited", "New", "York"], ["B-PER", "O", "B-LOC", "I-LOC"]),
                  (["Ben", "left"], ["B-PER", "O"])]


def data(path, **kw) -> DataConfig:
    return DataConfig(train=str(path), **kw)


def pairs(sentences):
    return [(s.tokens, s.tags) for s in sentences]


def write_parallel(root: Path, seq_in: str, seq_out: str | None, label: str | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "seq.in").write_text(seq_in, encoding="utf-8", newline="")
    if seq_out is not None:
        (root / "seq.out").write_text(seq_out, encoding="utf-8", newline="")
    if label is not None:
        (root / "label").write_text(label, encoding="utf-8", newline="")
    return root


def test_conllu_skips_ranges_empty_nodes_and_comments(tmp_path):
    path = tmp_path / "x.conllu"
    path.write_text(CONLLU, encoding="utf-8")
    upos = read_sentences(data(path), str(path))
    assert pairs(upos) == [(["I", "do", "n't", "know", "."], ["PRON", "AUX", "PART", "VERB", "PUNCT"]),
                           (["Hello"], ["INTJ"])]
    assert upos[1].where == f"{path}:12"  # its first (comment) line
    xpos = read_sentences(data(path, tag_column="xpos"), str(path))
    assert xpos[0].tags == ["PRP", "VBP", "RB", "VB", "."]


def test_conll_skips_docstart_and_reads_the_chosen_column(tmp_path):
    path = tmp_path / "x.conll"
    path.write_text(CONLL, encoding="utf-8")
    assert pairs(read_sentences(data(path, scheme="iob2"), str(path))) == EXPECTED_CONLL
    pos = read_sentences(data(path, tag_column=1), str(path))
    assert pos[0].tags == ["NNP", "VBD", "NNP", "NNP"]


@pytest.mark.parametrize("convert_to", [None, "bioes"])
def test_iob1_tags_with_a_b_at_each_span_start_are_no_malformed_tags(tmp_path, caplog, convert_to):
    """`data.scheme: iob1` on tags with B- at every span's start (which IOB1 reads as conlleval does) warned that
    every sentence had malformed iob1 tags, "e.g. I- with no B- before it"."""
    path = tmp_path / "x.conll"
    path.write_text("a B-PER\nb I-PER\nc O\n", encoding="utf-8")
    cfg = data(path, scheme="iob1", convert_to=convert_to)
    with caplog.at_level(logging.WARNING, logger="grutool"):
        got = to_model_scheme(read_sentences(cfg, str(path)), cfg, "train")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert got[0].tags == (["B-PER", "E-PER", "O"] if convert_to else ["I-PER", "I-PER", "O"])


def test_conll_columns_are_split_at_ascii_spaces_and_tabs_only(tmp_path):
    """A token holding a no-break space (`10\xa0000`) was split at it by str.split: the token read `10`, and the
    row, one column longer than the others, was refused."""
    path = tmp_path / "x.conll"
    path.write_text("costs VBZ O\n10\xa0000 CD O\n\t\nyen NN O\n", encoding="utf-8")
    sentences = read_sentences(data(path, scheme="bio"), str(path))
    assert [s.tokens for s in sentences] == [["costs", "10\xa0000"], ["yen"]]
    assert [s.tags for s in sentences] == [["O", "O"], ["O"]]


def test_parallel_and_jsonl(tmp_path):
    root = write_parallel(tmp_path / "p", "show flights to boston\nhi\n", "O O O B-city\nO\n", "flight\ngreet\n")
    got = read_sentences(data(root, format="parallel", scheme="bio"), str(root), need_intents=True)
    assert [(s.tokens, s.tags, s.intent) for s in got] == [
        (["show", "flights", "to", "boston"], ["O", "O", "O", "B-city"], "flight"), (["hi"], ["O"], "greet")]
    path = tmp_path / "x.jsonl"
    rows = [{"text": ["to", "boston"], "tags": ["O", "B-city"], "label": "flight"},
            {"text": "hi there", "tags": ["O", "O"], "label": "greet"},
            {"text": "fly home", "tags": "O B-city", "label": "flight"}]  # tags as one string, as a Hub cell may be
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    got = read_sentences(data(path, scheme="bio"), str(path), need_intents=True)
    assert [(s.tokens, s.tags, s.intent) for s in got] == [
        (["to", "boston"], ["O", "B-city"], "flight"), (["hi", "there"], ["O", "O"], "greet"),
        (["fly", "home"], ["O", "B-city"], "flight")]


def _messy(text: str) -> str:
    """CRLF endings, trailing spaces and tabs, and blank lines at the end."""
    return "".join(line + " \t\r\n" if line else "\r\n" for line in text.split("\n")) + "\r\n\r\n  \r\n"


@pytest.mark.parametrize("fmt", ["conllu", "conll", "parallel", "jsonl"])
def test_crlf_trailing_spaces_and_trailing_blank_lines_read_like_the_clean_file(tmp_path, fmt):
    if fmt == "parallel":
        clean = write_parallel(tmp_path / "clean", "a b\nc\n", "O B-x\nO\n", "i1\ni2\n")
        messy = write_parallel(tmp_path / "messy", _messy("a b\nc"), _messy("O B-x\nO"), _messy("i1\ni2"))
    else:
        text = {"conllu": CONLLU, "conll": CONLL,
                "jsonl": '{"text": ["a", "b"], "tags": ["O", "B-x"], "label": "i1"}\n'}[fmt]
        clean, messy = tmp_path / f"clean.{fmt}", tmp_path / f"messy.{fmt}"
        clean.write_text(text, encoding="utf-8")
        messy.write_bytes(_messy(text).encode("utf-8"))
    scheme = "plain" if fmt == "conllu" else "bio"
    joint = fmt in ("parallel", "jsonl")
    a = read_sentences(data(clean, scheme=scheme), str(clean), need_intents=joint)
    b = read_sentences(data(messy, scheme=scheme), str(messy), need_intents=joint)
    assert [(s.tokens, s.tags, s.intent) for s in a] == [(s.tokens, s.tags, s.intent) for s in b]


def test_empty_sentences_are_kept_by_the_reader(tmp_path):
    root = write_parallel(tmp_path / "p", "a\n\nb\n", "O\n\nO\n", "x\ny\nz\n")
    got = read_sentences(data(root, format="parallel"), str(root), need_intents=True)
    assert [s.tokens for s in got] == [["a"], [], ["b"]]
    path = tmp_path / "x.conllu"
    path.write_text("# sent_id = 1\n# text =\n\n" + CONLLU, encoding="utf-8")
    assert read_sentences(data(path), str(path))[0].tokens == []


def test_conversion_to_the_model_scheme_keeps_spans(tmp_path):
    path = tmp_path / "x.conll"
    path.write_text("a I-PER\nb I-PER\nc B-PER\nd O\n", encoding="utf-8")
    cfg = data(path, scheme="iob1", convert_to="bioes")
    got = to_model_scheme(read_sentences(cfg, str(path)), cfg, "train")
    assert got[0].tags == ["B-PER", "E-PER", "S-PER", "O"]


UNTAGGED = {
    # name: (file name (a folder: seq.in alone), content, the inputs infer reads)
    "conllu-tokenizer-output": ("raw.conllu", "# text = I left\n1\tI\t_\t_\t_\t_\t_\t_\t_\t_\n"
                                "2\tleft\t_\t_\t_\t_\t_\t_\t_\t_\n", ["I left"]),
    "conll-tokens-only": ("raw.conll", "I\nleft\n\nBye\n", ["I left", "Bye"]),
    "conll-other-scheme": ("pos.conll", "I PRP\nleft VBD\n", ["I left"]),  # POS tags, not the run's iob2
    "seq-in-alone": ("raw", "show flights\nhi\n", ["show flights", "hi"]),
    "jsonl-without-tags": ("raw.jsonl", '{"text": ["I", "left"]}\n{"text": "hi there"}\n', ["I left", "hi there"]),
}


@pytest.mark.parametrize("task,tag_column", [("tagger", None), ("joint", None), ("tagger", -1), ("tagger", "upos")])
@pytest.mark.parametrize("name", list(UNTAGGED))
def test_infer_reads_the_tokens_of_files_without_tags_or_intents(tmp_path, name, task, tag_column):
    """`infer --file`: tags, intents and the files or keys that hold them are ignored, so tokenizer output and
    a file tagged in another scheme are read; training still refuses each (CASES, test_malformed_parallel_files).
    The run's data.tag_column (a CoNLL run's -1, a CoNLL-U run's upos) no longer refuses a file of another format
    (`data.tag_column: conllu tags are 'upos' or 'xpos' (got -1)`)."""
    filename, content, expected = UNTAGGED[name]
    path = tmp_path / filename
    if path.suffix:
        path.write_text(content, encoding="utf-8")
    else:
        write_parallel(path, content, None)
    run_format = {None: "parallel", -1: "conll", "upos": "conllu"}[tag_column]  # the run's own training format
    cfg = Config(task=task, data={"train": "x", "format": run_format, "scheme": "iob2", "tag_column": tag_column})
    if not path.suffix and run_format != "parallel":  # a folder is parallel data, read for a parallel run only
        with pytest.raises(UserError, match="is a directory"):
            read_data_inputs(get_task(task), cfg, str(path))
        return
    read = read_data_inputs(get_task(task), cfg, str(path))
    assert read == expected
    assert [t.tokens for t in read] == [t.split() for t in expected]


@pytest.mark.parametrize("convert_to", [None, "iob2", "bioes"])
def test_malformed_tags_are_repaired_with_a_warning_whether_or_not_they_are_converted(tmp_path, caplog, convert_to):
    """With data.convert_to another scheme, the repair (I- after O read as B-) was silent."""
    path = tmp_path / "x.conll"
    path.write_text("a O\nb I-PER\nc I-PER\n\nd B-LOC\n", encoding="utf-8")
    cfg = data(path, scheme="bio", convert_to=convert_to)
    with caplog.at_level(logging.WARNING, logger="grutool"):
        got = to_model_scheme(read_sentences(cfg, str(path)), cfg, "train")
    assert got[0].tags == (["O", "B-PER", "E-PER"] if convert_to == "bioes" else ["O", "B-PER", "I-PER"])
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith("train: 1 sentence(s) had malformed bio tags") and warning.endswith(f"{path}:1")
    caplog.clear()
    path.write_text("a O\nb B-PER\nc I-PER\n", encoding="utf-8")  # well formed: converted without a word
    with caplog.at_level(logging.WARNING, logger="grutool"):
        to_model_scheme(read_sentences(cfg, str(path)), cfg, "train")
    assert not caplog.records


CASES = {
    # name: (file name, content, config fields, substrings the message must contain)
    "conll-missing-tag": ("x.conll", "a B-x\nb\n", {"scheme": "bio"}, ["x.conll:2:", "expected a token and a tag"]),
    "conll-row-short": ("x.conll", "Anna NNP B-PER\nvisited VBD O\n\nParis NNP\n", {"scheme": "bio"},
                        ["x.conll:4:", "2 columns", "have 3 (line 1)", "'Paris NNP'"]),
    "conll-row-long": ("x.conll", "Anna B-PER\nvisited VBD O\n", {"scheme": "bio"}, ["x.conll:2:", "3 columns", "have 2"]),
    "conllu-columns": ("x.conllu", "1\ta\ta\tNOUN\n", {}, ["x.conllu:1:", "10 tab-separated"]),
    "conllu-no-blank-line": ("x.conllu", "1\ta\t_\tX\t_\t_\t_\t_\t_\t_\n2\tb\t_\tX\t_\t_\t_\t_\t_\t_\n"
                             "# sent_id = 2\n1\tc\t_\tX\t_\t_\t_\t_\t_\t_\n", {},
                             ["x.conllu:4:", "token id 1 after 2", "blank line", "add one before line 3"]),
    "conllu-no-blank-line-before-a-range": ("x.conllu", "1\ta\t_\tX\t_\t_\t_\t_\t_\t_\n1-2\tbc\t_\t_\t_\t_\t_\t_\t_\t_\n"
                                            "1\tb\t_\tX\t_\t_\t_\t_\t_\t_\n", {},
                                            ["x.conllu:3:", "token id 1 after 1", "add one before line 2"]),
    "conllu-id-skipped": ("x.conllu", "1\ta\t_\tX\t_\t_\t_\t_\t_\t_\n3\tb\t_\tX\t_\t_\t_\t_\t_\t_\n", {},
                          ["x.conllu:2:", "token id 3 after 1", "expected 2"]),
    "conllu-id-not-a-number": ("x.conllu", "a\tb\t_\tX\t_\t_\t_\t_\t_\t_\n", {},
                               ["x.conllu:1:", "token id 'a' is not a CoNLL-U ID"]),
    "conllu-no-xpos": ("x.conllu", "1\ta\ta\tNOUN\t_\t_\t0\troot\t_\t_\n", {"tag_column": "xpos"},
                       ["x.conllu:1:", "no XPOS tag"]),
    "jsonl-mismatch": ("x.jsonl", '{"text": ["a"], "tags": ["O"]}\n{"text": ["a", "b"], "tags": ["O"]}\n', {},
                       ["x.jsonl:2:", "1 tag(s) for 2 token(s)"]),
    "jsonl-not-json": ("x.jsonl", '{"text": ["a"], "tags": ["O"]}\n{oops\n', {}, ["x.jsonl:2:", "not valid JSON"]),
    "jsonl-no-key": ("x.jsonl", '{"tokens": ["a"], "tags": ["O"]}\n', {}, ["x.jsonl:1:", "no key 'text'"]),
    "jsonl-no-tags": ("x.jsonl", '{"text": ["a"]}\n', {}, ["x.jsonl:1:", "no key 'tags'"]),
    "conllu-no-upos": ("x.conllu", "1\ta\t_\t_\t_\t_\t_\t_\t_\t_\n", {}, ["x.conllu:1:", "no UPOS tag"]),
    "conll-tokens-only": ("x.conll", "a\nb\n", {}, ["x.conll:1:", "expected a token and a tag"]),
    "non-bio-tag": ("x.conll", "a O\nb B-x\n\nc NN\n", {"scheme": "bio"},
                    ["x.conll:4:", "'NN'", "not a tag of data.scheme bio", "data.scheme: plain"]),
    "s-tag-in-iob2": ("x.conll", "a S-x\n", {"scheme": "iob2"}, ["x.conll:1:", "'S-x'", "not a tag of data.scheme iob2"]),
    # the token's own line, not its sentence's first
    "bad-tag-line-conll": ("x.conll", "a O\nb B-x\nc NN\n", {"scheme": "bio"}, ["x.conll:3:", "(token 3, 'c')"]),
    "bad-tag-line-conllu": ("x.conllu", "# text = a b\n1\ta\t_\tO\t_\t_\t_\t_\t_\t_\n1-2\tbc\t_\t_\t_\t_\t_\t_\t_\t_\n"
                            "2\tb\t_\tNOUN\t_\t_\t_\t_\t_\t_\n", {"scheme": "bio"}, ["x.conllu:4:", "(token 2, 'b')"]),
    "empty-file": ("x.conll", "\n\n", {}, ["x.conll", "no sentences"]),
    "not-utf8": ("x.conll", b"a O\ncaf\xe9 O\n", {}, ["x.conll:2:", "not valid UTF-8"]),
    "unknown-extension": ("x.xlsx", "a O\n", {}, ["x.xlsx", "data.format"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_malformed_files(tmp_path, name):
    filename, content, fields, expected = CASES[name]
    path = tmp_path / filename
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    with pytest.raises(UserError) as info:
        read_sentences(data(path, **fields), str(path))
    for text in expected:
        assert text in str(info.value)


def test_a_bad_tag_in_a_trained_run_s_file_asks_for_the_file_s_fix(tmp_path):
    """`eval RUN --data bad.conll` with a tag outside the run's scheme offered `set data.scheme: plain`, a setting
    a trained run cannot take."""
    from grutool.data.loading import for_trained_run

    path = tmp_path / "x.conll"
    path.write_text("a O\nb Y-LOC\n", encoding="utf-8")
    with for_trained_run(), pytest.raises(UserError) as info:
        read_sentences(data(path, scheme="iob2"), str(path))
    assert str(info.value).endswith("write the file's tags in iob2, the scheme this run was trained on"), info.value
    assert "data.scheme: plain" not in str(info.value)


def test_malformed_parallel_files(tmp_path):
    cases = [  # (seq.in, seq.out, label), joint task, expected
        (("a b c\nd\n", "O O\nO\n", None), False, ["seq.out:1:", "2 tag(s) for 3 token(s)", "seq.in:1"]),
        (("a\nb\n", "O\n", None), False, ["seq.out", "1 lines but seq.in has 2"]),
        (("a\nb\n", "O\nO\n", "x\n"), True, ["label", "1 lines but seq.in has 2"]),
        (("a\nb\n", "O\nO\n", "x\n \n"), True, ["label", "1 lines but seq.in has 2"]),  # blank last line dropped
        (("a\n", "O\n", None), True, ["no label"]),
        (("a\n", None, None), False, ["no seq.out"]),  # infer reads seq.in alone; training needs the tags
    ]
    for i, (files, joint, expected) in enumerate(cases):
        root = write_parallel(tmp_path / str(i), *files)
        with pytest.raises(UserError) as info:
            read_sentences(data(root, format="parallel"), str(root), need_intents=joint)
        for text in expected:
            assert text in str(info.value), (files, str(info.value))


def test_a_bad_tag_in_parallel_files_names_its_seq_out_line(tmp_path):
    """It named seq.in's line, where the tokens are, for a tag read from seq.out."""
    root = write_parallel(tmp_path / "p", "a\nb c\n", "O\nO NN\n")
    with pytest.raises(UserError) as info:
        read_sentences(data(root, format="parallel", scheme="bio"), str(root))
    assert str(info.value).startswith(f"{root / 'seq.out'}:2: tag 'NN' (token 2, 'c')"), str(info.value)


def test_a_missing_path_is_reported_missing_not_as_an_unknown_format(tmp_path):
    """A mistyped split folder (`atis/trian`) under data.format auto: the message says it is not there, not
    that its format cannot be told from the name."""
    missing = tmp_path / "trian"
    with pytest.raises(UserError, match="not found") as info:
        read_sentences(data(missing), str(missing))
    assert "cannot tell" not in str(info.value)
