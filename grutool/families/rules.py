"""Config rules and capability checks that several families share; each family's Task calls those it needs.

Torch-free: task modules import this at module level, and config validation must not pay for torch.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING, Optional

from grutool.errors import UserError, listed

if TYPE_CHECKING:
    from grutool.config import Config


def check_columns(cfg: Config, fields: tuple[str, ...]) -> None:
    """With data.column_names, the columns a task reads must be among them."""
    d = cfg.data
    if d.column_names:
        for field in fields:
            name = getattr(d, field)
            if name not in d.column_names:
                raise ValueError(f"data.{field}: '{name}' is not one of data.column_names {d.column_names}")


def check_one_path_per_split(cfg: Config) -> None:
    """Only seq2seq's parallel_text reads a split from a [source file, target file] pair."""
    for name in ("train", "validation", "test"):
        if isinstance(getattr(cfg.data, name), list):
            raise ValueError(f"data.{name}: a list of paths is for task seq2seq with data.format parallel_text "
                             f"([source file, target file]); give one path")


def encoder_stream_reason(cfg: Config) -> Optional[str]:
    """Why the encoder of `cfg` cannot continue from a previous chunk's state, or None."""
    from grutool.cells import get_cell

    if cfg.model.bidirectional:
        return ("the encoder is bidirectional: its backward direction starts at the input's last token, so "
                "every output waits for the whole input (train with model.bidirectional: false)")
    if get_cell(cfg.model.cell).cell_state:
        return f"model.cell {cfg.model.cell} carries (h, c); streaming supports cells with a hidden state alone"
    return None


# The settings only text reads, per section: the Hub, tokens, their vocabulary, embedding and characters.
# Numbers have none of them. The one list: `check_text_only` refuses them on numeric sequences and forecasts,
# `grutool init --input numeric` leaves them out, the numeric-only families ignore them, and a run saved before
# they were refused reads them back at their defaults (grutool.rundir).
TEXT_ONLY = {"data": ("dataset", "dataset_config", "text_column", "max_word_length", "tokenizer", "lowercase",
                      "min_freq", "max_size", "max_length", "vectors", "convert_to"),
             "model": ("embedding_init", "token_dropout", "freeze_embeddings", "char_features", "char_embedding_dim",
                       "char_hidden_size"),
             "train": ("lazy_embeddings",)}


# The data settings only numbers read (numeric sequences, forecasts): the text-only families (lm, seq2seq)
# ignore them, so one set there is refused and `grutool init` leaves them out of their templates.
NUMERIC_ONLY = {"data": ("time_column", "missing", "channels", "id_column", "time_delta")}

# What a family that reads both (classifier, tagger) reads of numeric sequences alone: on text these change
# nothing (`check_numeric` refuses the model's and split_seed when set), so `grutool init` leaves them out of a
# text template, and serve's /info and `compare` show none of them for a text run (`config_file.unread_fields`).
NUMERIC_SETTINGS = {"data": (*NUMERIC_ONLY["data"], "split_seed"), "model": ("input_noise", "input_offset_noise",
                                                                          "input_deltas")}


def check_text_only(cfg: Config, reads_text: bool = False) -> None:
    """A text setting (TEXT_ONLY) on numbers would silently do nothing: one left from its default is an error.
    `reads_text`: the family reads text too, so the error names what made the config numeric, the other fix."""
    for section, names in TEXT_ONLY.items():
        part = getattr(cfg, section)
        for name in names:
            if getattr(part, name) != type(part).model_fields[name].default:
                _, what, fix = numeric_by(cfg)
                why = f" ({what}, so this config reads them)" if reads_text else ""
                other = f", or {fix} to read text" if reads_text else ""
                raise ValueError(f"{section}.{name}: for text; numeric sequences have no tokens{why}: remove "
                                 f"it{other}")


def numeric_by(cfg: Config) -> tuple[str, str, str]:
    """The setting that makes `cfg` read numeric sequences (see is_numeric): (its name, what it holds, how to read
    text instead)."""
    d = cfg.data
    if d.channels:
        return "data.channels", "data.channels is set", "remove data.channels"
    if d.format == "ts":
        return "data.format", "data.format is ts", "change data.format"
    return "data.train", "data.train is a .ts file", "give text files"


def reads_both(task) -> bool:
    """Whether a family reads text and numeric sequences (classifier, tagger): a numeric input beside a text
    example, where the regressor's and the forecaster's example is numbers."""
    numeric = task.inputs.get("numeric")
    return numeric is not None and task.example != numeric


def is_numeric(cfg: Config) -> bool:
    """Whether the run reads numeric sequences (a .ts file, or a long table with data.channels) instead of text:
    the task then builds the numeric front-end (grutool.modules.numeric) where it builds the token Embedder."""
    d = cfg.data
    return bool(d.channels) or ts_training(d)


def ts_training(d) -> bool:
    """Whether the training data is a .ts file: data.format ts, or auto and a .ts path (`train.ts[:80%]` too)."""
    import re

    train = re.sub(r"\[[^\[\]]*\]$", "", d.train) if isinstance(d.train, str) else ""  # a slice: train.ts[:80%]
    return d.format == "ts" or (d.format == "auto" and train.lower().endswith(".ts"))


def check_numeric(cfg: Config, reads_text: bool = True) -> None:
    """Numeric sequences have no tokens: the text settings that would silently do nothing are errors, and so
    are the numeric settings on text. `reads_text`: the family reads text too (classifier, tagger), so a text
    setting's error says what made the config numeric."""
    d, m = cfg.data, cfg.model
    if d.time_delta and not (d.channels and d.time_column):  # on text too, where it changed nothing
        raise ValueError("data.time_delta: the time between steps comes from a long table's data.time_column; "
                         "set it (and data.channels) or remove data.time_delta")
    if not is_numeric(cfg):
        if m.input_noise:
            raise ValueError("model.input_noise: noise is added to numeric sequences' values; text has none "
                             "(use model.embedding_dropout or model.token_dropout)")
        if m.input_offset_noise:
            raise ValueError("model.input_offset_noise: an offset is added to numeric sequences' channels; text "
                             "has none (use model.embedding_dropout or model.token_dropout)")
        if m.input_deltas:
            raise ValueError("model.input_deltas: the change of each numeric channel from step to step; text has "
                             "no channels: remove it")
        if d.split_seed != type(d).model_fields["split_seed"].default:
            raise ValueError("data.split_seed: picks which sequences a sliced numeric file (train.ts[80%:]) "
                             "validates; text files of this task are not sliced: remove it")
        for name in ("time_column", "id_column", "missing"):  # the table settings of numbers (NUMERIC_ONLY)
            if getattr(d, name) != type(d).model_fields[name].default:
                raise ValueError(f"data.{name}: for numeric sequences (a .ts file, or a long table with data.channels); this "
                                 f"config reads text, so it would change nothing: remove it, or set data.channels "
                                 f"to read numbers")
        return
    check_text_only(cfg, reads_text)
    if d.format not in ("auto", "ts", "csv", "tsv", "parquet"):
        raise ValueError(f"data.format: '{d.format}' is not a numeric format; use ts, csv, tsv or parquet")
    if d.format in ("csv", "tsv", "parquet") and not d.channels:
        raise ValueError("data.channels: a table of numeric sequences needs its value columns listed")
    if d.channels and ts_training(d):
        # A .ts file names no channels: the list selected nothing, and a name that is no column was not refused.
        raise ValueError("data.channels: lists a long table's value columns; the training data is a .ts file, "
                         "whose channels are its own (c1, c2, ...): remove data.channels")
    if d.channels:
        twice = sorted({c for c in d.channels if d.channels.count(c) > 1})
        if twice:
            raise ValueError(f"data.channels: {', '.join(map(repr, twice))} listed twice; list each column once")
        # The answer as an input: a regressor given its target as a channel learns to copy it (accepted before)
        for field in ("label_column", "tag_column", "id_column", "time_column"):
            value = getattr(d, field)
            if isinstance(value, str) and value in d.channels:
                raise ValueError(f"data.channels: {value!r} is data.{field} too; a column is a channel or the "
                                 f"{field.removesuffix('_column')}, not both: take it out of data.channels")


def unseen_gold(source: str, name: str, gold: Counter, labels, *, kind: str = "labels", unit: str = "example(s)",
                column: str = "label column", limit: Optional[int] = None) -> Counter:
    """The gold `kind` of an evaluation split (`gold`: value -> count) that the model's `labels` never saw: a
    UserError when none was seen (the wrong dataset or column, most likely), else a warning; they are scored
    as errors. Text and numeric inputs, labels and tags alike."""
    unseen = Counter({g: n for g, n in gold.items() if g not in labels.stoi})
    if unseen and sum(unseen.values()) == sum(gold.values()):
        raise UserError(f"{source}: none of its {kind} {sorted(unseen)[:10]} were seen in training "
                        f"(model {kind}: {labels.itos[:10]}); is this the right dataset and {column}?")
    if unseen:
        logging.getLogger("grutool").warning("%s: %d %s have %s never seen in training, counted as errors: %s",
                                             name, sum(unseen.values()), unit, kind, listed(unseen, limit))
    return unseen
