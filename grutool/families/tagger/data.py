"""Read tagged sentences: CoNLL-U, CoNLL column files, parallel seq.in/seq.out/label files, JSONL.

Every reader returns `Sentence`s with the position of their first line, checks
what it reads (UTF-8, column counts, one tag per token, tags written in
`data.scheme`) and reports each problem as a `UserError` naming file and line.
Read for prediction (`need_tags=False`: `infer --file`), only the tokens are read
and required: tags, intents and the files or keys holding them may be missing and
are ignored when present.
CRLF line endings, trailing spaces and blank lines at the end of a file are
tolerated. Pure Python, no torch.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from grutool.config import DataConfig
from grutool.data.loading import data_not_found, format_unknown, read_lines
from grutool.families.tagger import schemes
from grutool.errors import UserError
from grutool.jsonsafe import json_type

log = logging.getLogger("grutool")

_EXTENSIONS = {".conllu": "conllu", ".conll": "conll", ".bio": "conll", ".iob": "conll", ".txt": "conll",
               ".jsonl": "jsonl"}
PARALLEL_FILES = ("seq.in", "seq.out", "label")
# CoNLL-U IDs: a word (3), a multiword-token range (1-2), an empty node (8.1, or 0.1 before the first word)
_COLUMNS = re.compile(r"[ \t]+")  # a CoNLL row's column separators
_CONLLU_ID = re.compile(r"[1-9][0-9]*(-[1-9][0-9]*)?|(0|[1-9][0-9]*)\.[1-9][0-9]*")


@dataclass
class Sentence:
    tokens: list[str]
    tags: Optional[list[str]]  # one per token; None when the source has none
    intent: Optional[str]      # sentence label (joint task)
    where: str                 # "path:line" of its first line, for messages
    tag_file: Optional[str] = None         # where the tags were read from (None: `where`; parallel: seq.out)
    tag_lines: Optional[list[int]] = None  # each tag's line in tag_file (CoNLL: the token's row)

    def tag_where(self, i: int) -> str:
        """"path:line" of tag `i`, for messages."""
        return self.where if self.tag_lines is None else f"{self.tag_file}:{self.tag_lines[i]}"


class Tokens(str):
    """A sentence a data file already split (`infer --file x.conll`): the text is its tokens joined by spaces,
    and `tokens` keeps them, so prediction tags the file's tokens instead of splitting the text again with
    data.tokenizer (which would cut `U.S.` or `e-mail` into pieces the file does not have)."""

    tokens: list[str]

    def __new__(cls, tokens: list[str]) -> "Tokens":
        text = super().__new__(cls, " ".join(tokens))
        text.tokens = list(tokens)
        return text


def tagging_format(path: str, declared: str) -> str:
    if declared != "auto":
        return declared
    p = Path(path)
    if p.is_dir():
        return "parallel"
    fmt = _EXTENSIONS.get(p.suffix.lower())
    if fmt is None and not p.exists():  # a mistyped folder or file: say it is missing, not that its format is unknown
        raise data_not_found(path, "data file or directory")
    if fmt is None:
        raise format_unknown(f"{path}: cannot tell the tagging format from the name", "set data.format to conllu, "
                             "conll, parallel (a directory with seq.in, seq.out, label) or jsonl",
                             ".conllu, .conll or .jsonl")
    return fmt


def _conllu(path: Path, column: str, need_tags: bool) -> list[Sentence]:
    index = {"upos": 3, "xpos": 4}[column]
    out: list[Sentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    rows: list[int] = []  # each word's line
    # last: the sentence's last word id; head: the first of the comment lines right above this line
    start, comments, last, head = None, False, 0, None
    for n, line in enumerate(read_lines(path) + [""], 1):
        if not line.strip():
            if tokens or comments:
                # A sentence of comments only has no words: an empty sentence, kept for the caller to judge.
                out.append(Sentence(tokens, tags if need_tags else None, None, f"{path}:{start}", str(path), rows))
            tokens, tags, rows, start, comments, last, head = [], [], [], None, False, 0, None
            continue
        start = start or n
        if line.startswith("#"):
            comments, head = True, head or n
            continue
        cols = line.split("\t")
        if len(cols) != 10:
            raise UserError(f"{path}:{n}: expected 10 tab-separated CoNLL-U columns, found {len(cols)}")
        if _CONLLU_ID.fullmatch(cols[0]) is None:
            raise UserError(f"{path}:{n}: token id {cols[0]!r} is not a CoNLL-U ID (a word's 1, 2, ..., a range "
                            f"1-2 or an empty node 8.1); the first column numbers the sentence's words")
        if "-" in cols[0] or "." in cols[0]:
            # multiword-token range (1-2) or empty node (8.1): only syntactic words are tagged; one right before
            # a word 1 belongs to its sentence, so a missing blank line goes above it
            head = head or n
            continue
        # Words are numbered from 1 in each sentence: a 1 after other words is a sentence whose blank line is
        # missing, which was read as one long sentence.
        if int(cols[0]) != last + 1:
            fix = (f"sentences are separated by a blank line; add one before line {head or n}" if cols[0] == "1" else
                   f"a sentence's words are numbered 1, 2, 3, ... in order; expected {last + 1}")
            raise UserError(f"{path}:{n}: token id {cols[0]} after {last}: {fix}")
        last, head = last + 1, None
        tag = cols[index].strip()
        if tag in ("", "_") and need_tags:
            raise UserError(f"{path}:{n}: no {column.upper()} tag for '{cols[1]}'; "
                            f"tag every word or choose the other column with data.tag_column")
        tokens.append(cols[1])
        tags.append(tag)
        rows.append(n)
    return out


def _conll(path: Path, column: int, need_tags: bool) -> list[Sentence]:
    out: list[Sentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    start, width = None, None  # width: (columns, line) of the file's first row
    for n, line in enumerate(read_lines(path) + [""], 1):
        # columns split at ASCII spaces and tabs only: str.split also split a token at its no-break space
        # (`10\xa0000 CD O`), reading `10` as the token and `000` as a column
        cols = _COLUMNS.split(line.strip(" \t\r\n")) if line.strip() else []
        if not cols or cols[0] == "-DOCSTART-":
            if tokens:
                # A sentence's rows are consecutive: token i is on line start + i.
                out.append(Sentence(tokens, tags if need_tags else None, None, f"{path}:{start}", str(path),
                                    list(range(start, start + len(tokens)))))
            tokens, tags, start = [], [], None
            continue
        start = start or n
        tokens.append(cols[0])
        if not need_tags:  # the token alone: a file of tokens only (tokenizer output) is read too
            continue
        need = column + 1 if column >= 0 else -column
        if len(cols) < max(2, need):
            raise UserError(f"{path}:{n}: expected a token and a tag (at least {max(2, need)} columns for "
                            f"data.tag_column {column}), found {len(cols)}: {line.strip()!r}")
        # One column short (`Paris NNP` among `token POS tag` rows) would read the POS as the tag.
        width = width or (len(cols), n)
        if len(cols) != width[0]:
            raise UserError(f"{path}:{n}: {len(cols)} columns, but the file's rows have {width[0]} (line "
                            f"{width[1]}); give every row the same columns: {line.strip()!r}")
        tags.append(cols[column])
    return out


def _parallel(path: Path, need_intents: bool, need_tags: bool) -> list[Sentence]:
    if path.exists() and not path.is_dir():
        raise UserError(f"{path}: is a file; parallel data is a directory holding seq.in, seq.out and label")
    if not path.is_dir():
        raise data_not_found(path, "data directory")
    files = {name: path / name for name in PARALLEL_FILES}
    for name in ("seq.in",) + (("seq.out",) if need_tags else ()) + (("label",) if need_intents else ()):
        if not files[name].is_file():
            needs = (f"seq.in, seq.out{' and label' if need_intents else ''}" if need_tags else
                     "seq.in, the tokens, to predict from")
            raise UserError(f"{path}: no {name} (parallel data needs {needs})")
    words = read_lines(files["seq.in"])
    if not need_tags:  # prediction: the tokens of seq.in, one utterance per line
        return [Sentence(w.split(), None, None, f"{files['seq.in']}:{i + 1}") for i, w in enumerate(words)]
    tags = read_lines(files["seq.out"])
    labels = read_lines(files["label"]) if need_intents else None
    for name, lines in (("seq.out", tags), ("label", labels)):
        if lines is not None and len(lines) != len(words):
            raise UserError(f"{files[name]}: {len(lines)} lines but seq.in has {len(words)}; "
                            f"the files must be line-aligned, one utterance per line")
    out = []
    for i, (w, t) in enumerate(zip(words, tags)):
        tokens, row = w.split(), t.split()
        if len(tokens) != len(row):
            raise UserError(f"{files['seq.out']}:{i + 1}: {len(row)} tag(s) for {len(tokens)} token(s) "
                            f"in {files['seq.in']}:{i + 1}")
        intent = None
        if labels is not None:
            intent = labels[i].strip()
            if not intent:
                raise UserError(f"{files['label']}:{i + 1}: empty intent label")
        out.append(Sentence(tokens, row, intent, f"{files['seq.in']}:{i + 1}", str(files["seq.out"]),
                            [i + 1] * len(row)))
    return out


def _jsonl(path: Path, cfg: DataConfig, need_intents: bool, need_tags: bool) -> list[Sentence]:
    tokens_key, tags_key = cfg.text_column, cfg.tag_column or "tags"
    out = []
    for n, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{where}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise UserError(f"{where}: expected a JSON object with '{tokens_key}' and '{tags_key}'")
        wanted = [(tokens_key, "data.text_column")] + ([(tags_key, "data.tag_column")] if need_tags else [])
        if need_intents:
            wanted.append((cfg.label_column, "data.label_column"))
        for key, field in wanted:
            if key not in row:
                raise UserError(f"{where}: no key '{key}' ({field}); keys found: {sorted(row)}")
        tokens = _words(row[tokens_key], None, where, tokens_key)
        if not need_tags:
            out.append(Sentence(tokens, None, None, where))
            continue
        # a list, or one space-separated string, for the tags as for the tokens (as a Hub cell is read)
        tags = _words(row[tags_key], None, where, tags_key)
        if len(tokens) != len(tags):
            raise UserError(f"{where}: {len(tags)} tag(s) for {len(tokens)} token(s)")
        intent = None
        if need_intents:
            intent = row[cfg.label_column]
            if not isinstance(intent, (str, int)) or isinstance(intent, bool) or not str(intent).strip():
                raise UserError(f"{where}: '{cfg.label_column}' must be a non-empty string")
            intent = str(intent).strip()
        out.append(Sentence(tokens, tags, intent, where))
    return out


def _words(value, names: Optional[list[str]], where: str, key: str) -> list[str]:
    """A Hub cell of tokens or tags: a list (ClassLabel ids as their names) or one space-separated string."""
    from grutool.data.loading import label_name

    if isinstance(value, str):
        value = value.split()
    if names is not None and isinstance(value, list):
        value = [label_name(v, names, where, key) for v in value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise UserError(f"{where}: '{key}' must be an array of non-empty strings or one space-separated string "
                        f"(got {json_type(value, article=True)})")
    return [v.strip() for v in value]


def _hub(cfg: DataConfig, source: str, need_intents: bool) -> list[Sentence]:
    """A Hub split (data.dataset): tokens in data.text_column, tags in data.tag_column (default `tags`), the intent
    in data.label_column; each a list or a space-separated string, ClassLabel ids read as their names."""
    from grutool.data.loading import class_names, label_name, load_hub_split, require_columns, split_where

    ds = load_hub_split(cfg, source)
    where = split_where(cfg, source)
    tags_key = cfg.tag_column or "tags"
    fields = {"text_column": cfg.text_column, "tag_column": tags_key}
    if need_intents:
        fields["label_column"] = cfg.label_column
    require_columns(ds, where, fields)
    tag_names = class_names(ds, tags_key)
    intents = ds[cfg.label_column][:] if need_intents else None
    intent_names = class_names(ds, cfg.label_column) if need_intents else None
    out = []
    for i, (words, tags) in enumerate(zip(ds[cfg.text_column][:], ds[tags_key][:])):
        at = f"{where} row {i}"
        tokens, tags = _words(words, None, at, cfg.text_column), _words(tags, tag_names, at, tags_key)
        if len(tokens) != len(tags):
            raise UserError(f"{at}: {len(tags)} tag(s) for {len(tokens)} token(s)")
        intent = None
        if need_intents:
            intent = intents[i] if intent_names is None else label_name(intents[i], intent_names, at, cfg.label_column)
            if not isinstance(intent, (str, int)) or isinstance(intent, bool) or not str(intent).strip():
                raise UserError(f"{at}: '{cfg.label_column}' must be a non-empty string")
            intent = str(intent).strip()
        out.append(Sentence(tokens, tags, intent, at))
    return out


def read_sentences(cfg: DataConfig, source: str, need_intents: bool = False,
                   need_tags: bool = True) -> list[Sentence]:
    """Tagged sentences of one split, as written in the file or Hub split (tags checked against data.scheme).

    `need_tags=False` (prediction): the tokens only; each sentence's `tags` is None and `need_intents` must be
    False.
    """
    if cfg.dataset:
        sentences = _hub(cfg, source, need_intents)
        if not sentences:
            raise UserError(f"data.dataset '{cfg.dataset}' split '{source}': no sentences")
        _check_scheme(sentences, cfg.scheme)
        return sentences
    fmt = tagging_format(source, cfg.format)
    path = Path(source)
    if not need_tags and cfg.tag_column is not None:
        # the run's tag column names a column of its own training format (conll: a number, conllu: upos); read
        # for its tokens alone, a file of another format takes no tag column (it refused a run's `-1` for conllu)
        cfg = cfg.model_copy(update={"tag_column": None})
    if fmt == "parallel":
        sentences = _parallel(path, need_intents, need_tags)
    elif fmt == "conllu":
        column = cfg.tag_column if cfg.tag_column is not None else "upos"
        if column not in ("upos", "xpos"):
            raise UserError(f"data.tag_column: conllu tags are 'upos' or 'xpos' (got {column!r})")
        sentences = _conllu(path, column, need_tags)
    elif fmt == "conll":
        column = cfg.tag_column if cfg.tag_column is not None else -1
        if not isinstance(column, int) or column == 0:
            raise UserError(f"data.tag_column: conll files need the tag's column number, not 0 (the token) "
                            f"(got {column!r})")
        sentences = _conll(path, column, need_tags)
    else:
        if cfg.tag_column is not None and not isinstance(cfg.tag_column, str):
            raise UserError(f"data.tag_column: jsonl needs the key of the tag list (got {cfg.tag_column!r})")
        sentences = _jsonl(path, cfg, need_intents, need_tags)
    if fmt != "parallel" and need_intents:
        missing = [s for s in sentences if s.intent is None]
        if missing:
            raise UserError(f"{source}: task joint needs an intent per sentence, which {fmt} files do not "
                            f"carry; use parallel (seq.in, seq.out, label) or jsonl data")
    if not sentences:
        raise UserError(f"{source}: no sentences")
    _check_scheme(sentences, cfg.scheme)
    return sentences


def scheme_tags(scheme: str) -> str:
    """The tags a span scheme writes, for messages about one it does not."""
    return "O, B-TYPE, I-TYPE, E-TYPE or S-TYPE" if schemes.canonical(scheme) == "bioes" else "O, B-TYPE or I-TYPE"


def _check_scheme(sentences: list[Sentence], scheme: str) -> None:
    from grutool.data.loading import trained_run

    # a trained run's file (eval --data): its scheme is the run's, so the fix is the file's tags
    fix = (f"write the file's tags in {scheme}, the scheme this run was trained on" if trained_run() else
           "for tags without spans set data.scheme: plain")
    for s in sentences:
        for i, tag in enumerate(s.tags or []):
            if not schemes.is_valid_tag(tag, scheme):
                raise UserError(f"{s.tag_where(i)}: tag {tag!r} (token {i + 1}, '{s.tokens[i]}') is not a tag of "
                                f"data.scheme {scheme} (expected {scheme_tags(scheme)}); {fix}")


def to_model_scheme(sentences: list[Sentence], cfg: DataConfig, name: str) -> list[Sentence]:
    """Tags rewritten in the scheme the model predicts (data.convert_to, else data.scheme).

    Reading spans and writing them back also repairs malformed sequences (an I- with no B-
    before it) exactly as conlleval reads them, so span scores do not change; a repair is
    warned about whether or not data.convert_to rewrites the tags too.
    """
    if not schemes.has_spans(cfg.scheme):
        return sentences
    same = schemes.canonical(cfg.convert_to or cfg.scheme) == schemes.canonical(cfg.scheme)
    changed = []
    out = []
    for s in sentences:
        # Written back in their own scheme, well-formed tags are unchanged: a change is a repair. Converting
        # the repaired tags gives what converting the originals gives (the same spans).
        repaired = schemes.convert(s.tags, cfg.scheme)
        # IOB1 reads every sequence (B- at a span's start, not needed there, is common): a rewrite is no repair
        if repaired != s.tags and schemes.canonical(cfg.scheme) != "iob1":
            changed.append(s.where)
        out.append(Sentence(s.tokens, repaired if same else schemes.convert(repaired, cfg.convert_to), s.intent,
                            s.where))
    if changed:
        log.warning("%s: %d sentence(s) had malformed %s tags (e.g. I- with no B- before it), read as "
                    "conlleval reads them; first at %s", name, len(changed), cfg.scheme, changed[0])
    return out
