"""The task contract: everything that differs between model families, in one object per family.

Shared code (the training loop, `eval`, `infer`, the run directory, `shapes`, `bench`, config
validation, the CLI's renderers) asks the run's task and never which family it serves. A task
module is imported when a config is validated, so it imports no torch at module level: data,
models and metrics are imported inside the methods that use them.

Adding a family is one folder `grutool/families/<name>/` with a `Task` subclass in its `task.py`, plus
one line in `grutool.families.TASKS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Optional

from grutool.data.slices import check_splits_apart
from grutool.errors import UserError, counted, counted_plural

if TYPE_CHECKING:
    from grutool.config import Config
    from grutool.data.batching import Batch, EncodedSplit
    from grutool.data.vocab import LabelVocab, Vocab


@dataclass
class Prepared:
    """A task's data ready to train on: vocabularies built on train, every configured split encoded.

    The vocabularies carry the same names as a saved run's (`grutool.rundir.SavedRun`), so a task
    builds its model from either. `labels` is the output vocabulary: classes, tags, or (seq2seq) target tokens.
    """

    vocab: "Vocab"
    labels: "LabelVocab | Vocab"
    splits: dict[str, "EncodedSplit"] = field(default_factory=dict)
    extra: dict[str, "Vocab | LabelVocab"] = field(default_factory=dict)
    """The family's own vocabularies by the names its `Task.vocabularies` gives (e.g. chars, intents,
    conditions); one the config does not use is absent (a None given here is dropped)."""

    def __post_init__(self):
        self.extra = {name: v for name, v in self.extra.items() if v is not None}

    def vocabulary(self, name: str):
        """`vocab`, `labels` or one of `extra` by its `Task.vocabularies` name; None when absent."""
        return vocabulary(self, name)


def vocabulary(vocabs: Any, name: str):
    """A vocabulary of a Prepared or a saved run (grutool.rundir.SavedRun) by its `Task.vocabularies` name."""
    return getattr(vocabs, name) if name in ("vocab", "labels") else vocabs.extra.get(name)


@dataclass(frozen=True)
class Option:
    """A keyword option of a family's `predict` (`infer`'s flag of the same name, a field of `serve`'s request)."""

    type: type
    """bool, int, float or str: what a request's JSON value must be (None or absent: the family's default)."""
    help: str
    """One line for /info and the request schema."""
    served_max: Optional[int] = None
    """The largest value `grutool serve` accepts (a bound on the work one request asks for); None: no bound
    beyond `Task.check_options`."""


# The extensions `data.format: auto` never reads as csv or tsv, whatever the family (.txt: `Task.txt_format`).
HEADERLESS_EXTENSIONS = {".ts": "ts", ".conllu": "conllu", ".conll": "conll", ".bio": "conll", ".iob": "conll",
                         ".json": "json", ".jsonl": "jsonl", ".parquet": "parquet"}


class Task:
    """One model family. Subclasses set the class attributes and implement the methods below."""

    name: ClassVar[str]
    monitors: ClassVar[tuple[str, ...]]
    """Metrics `train.monitor` may name (early stopping and best.pt)."""
    owns: ClassVar[dict[str, tuple[str, ...]]] = {}
    """Config fields only some families read, per section ({"model": ("crf",)}): a field that other
    families own and this one does not must stay at its default (see `check_config`). A section
    named with an empty tuple (e.g. "decoding": ()) is owned whole."""
    ignores: ClassVar[dict[str, tuple[str, ...]]] = {}
    """Config fields other families share that this one never reads ({"model": ("embedding_dim",)}): a value
    other than the default is refused, since it would change nothing (see `check_config`), and `grutool init`
    leaves them out of this family's template."""
    length_setting: ClassVar[Optional[str]] = None
    """The config field that fixes the length of every example (forecast: data.input_length, its windows' rows),
    None where examples have their own: `bench --config --seq-len` is refused for it, which would change
    nothing, and names it to vary through --set."""
    txt_format: ClassVar[str] = "tsv"
    """What `data.format: auto` reads a .txt file as (lm: text, tagger: conll): whether `data.header` applies."""
    defaults: ClassVar[dict[str, dict]] = {}
    """Schema defaults this family reads otherwise, per section ({"model": {"bidirectional": False}}): what a
    config that leaves the field out gets (`default`; `train.monitor` is `default_monitor`'s)."""
    # Declared by every family, never inherited from here: a family that forgets one fails loudly.
    outputs: ClassVar[str]
    """What `labels` holds, in a summary line: classes, tags, targets."""
    model_outputs: ClassVar[str] = "logits"
    """What the model's first output holds, as `shapes` names it: logits (scores per class, tag or token), or
    predictions (a regressor's and a forecaster's values)."""
    renderer: ClassVar[str]
    """The CLI renderer of this task's results: the family folder whose `render` module shows them."""
    exporter: ClassVar[Optional[str]]
    """How `grutool export` writes, checks and runs this family's graphs: the family folder whose `export`
    module does (None: the family has no export)."""
    example: ClassVar[dict[str, dict]]
    """`grutool init`: the starting config's values that differ from the schema's defaults, per section
    ({"data": {"train": "data/sentiment/train.tsv", ...}, "model": {...}}): data paths at the toy data shipped
    in the repository's data/ folder, with the settings that data and the family need, so the config passes
    `grutool train --dry-run` as written (from the repository's root)."""
    inputs: ClassVar[dict[str, dict[str, dict]]] = {}
    """`grutool init TASK --input KIND`: starting configs for inputs other than text, as `example` is for text
    ({"numeric": {"data": {"train": "data/numeric/train.ts", ...}}})."""
    predict_options: ClassVar[dict[str, Option]] = {}
    """Keyword options `predict` accepts beyond the shared ones, by name (e.g. beam): `infer`'s flags and the
    optional fields of a `serve` request; `check_options` holds their rules."""
    file_inputs: ClassVar[str] = "auto"
    """How `infer --file` reads a file: `auto` (a data file by its extension or folder, else one input per line;
    stdin one input per line) or `data` (the inputs are tables: any file, and stdin, is one data file for
    `read_inputs`; `--format lines` is refused). See grutool.inputs."""
    data_extensions: ClassVar[tuple[str, ...]] = ()
    """Extensions `infer --file` reads as data under `--format auto` besides `grutool.inputs.DATA_EXTENSIONS`
    (tagger: .bio, .iob, the CoNLL files its training reads; .txt stays one input per line)."""
    folder_format: ClassVar[Optional[str]] = None
    """The data.format whose splits are folders, the one `auto` resolves a folder to (tagger: parallel; lm:
    text_dir): `infer --file FOLDER` reads a folder for a run of that format or `auto`; None: no folders."""
    needs_inputs: ClassVar[bool] = True
    """`infer` without any TEXT or --file is an error (False: the task predicts from nothing, e.g. generates)."""
    traces_real_examples: ClassVar[bool] = True
    """`shapes --config`: trace the first training examples (True) or random token ids (see classifier)."""
    scored: ClassVar[dict[str, str]] = {
        "data.validation": "the split every trial is scored on",
        "data.dataset": "the dataset every trial is scored on",
        "data.dataset_config": "the dataset every trial is scored on",
        "data.split_seed": "which examples a carved validation slice holds",
    }
    """Settings that decide what validation scores (its examples, or what its figures count), with what they
    decide: `grutool tune` refuses them in a search space, where trials scored on different things would be ranked
    against each other (a forecaster's shortest `data.horizon` would win)."""

    def traces_real(self, cfg: "Config") -> bool:
        """`shapes --config`: whether a model of `cfg` is traced on real training examples (models that read more
        than token ids: characters, targets, numbers), not random token ids."""
        return self.traces_real_examples or cfg.model.char_features

    # --- config -------------------------------------------------------------------------------

    @classmethod
    def default(cls, section: str, name: str, schema_default: Any, data: Optional[dict] = None) -> Any:
        """What `section.name` is in this family when a config leaves it out: `default_monitor` for
        `train.monitor` (the schema's `accuracy` is a classifier's), the family's `defaults`, else the schema's.
        `data`: the config's data section as written (a mapping, maybe partial), for defaults that depend on it."""
        if (section, name) == ("train", "monitor"):
            return cls.default_monitor(data if isinstance(data, dict) else {})
        return cls.defaults.get(section, {}).get(name, schema_default)

    @classmethod
    def default_monitor(cls, data: dict) -> str:
        """`train.monitor` when the config leaves it out: the first of `monitors`, unless the data rules it out
        (seq2seq on characters or a dictionary: exact_match, not bleu)."""
        return cls.monitors[0]

    @classmethod
    def defaulted(cls) -> dict[str, tuple[str, ...]]:
        """The fields whose default this family sets itself (`default`), per section."""
        fields = {"train": ("monitor",)}
        for section, values in cls.defaults.items():
            fields[section] = (*fields.get(section, ()), *values)
        return fields

    @classmethod
    def reads(cls, section: str, name: str) -> bool:
        """Whether this family reads the shared field `section.name` (not in its `ignores`)."""
        return name not in cls.ignores.get(section, ())

    def lacks(self, path: str) -> Optional[str]:
        """Why this family has no setting at the dotted config path (`model.attention` for a classifier: "only
        task seq2seq reads it"), by the rules `check_ownership` enforces; None when it reads the field."""
        section, _, rest = path.partition(".")
        name = rest.split(".")[0]
        if name and not self.reads(section, name):
            return f"task {self.name} does not read it"
        for key in ((section, name), (section, "")):
            tasks = _owners().get(key)
            if tasks and self.name not in tasks:
                return f"only task {' or '.join(tasks)} reads it"
        return None

    def check_config(self, cfg: "Config", saved: bool = False) -> None:
        """The task's cross-field rules; a broken one raises ValueError('dotted.path: what is wrong; fix').

        The rules every family shares run here, around the family's own (`check_task`): the monitor first,
        then the family's rules, then the fields other families own. `saved`: a trained run's config.yaml, which
        an older grutool may have written before the header and split rules (`check_header`,
        `check_splits_apart`) refused what it holds: the run stays readable."""
        self.check_monitor(cfg)
        if not saved:
            self.check_header(cfg)
            check_splits_apart(cfg)
        self.check_task(cfg)
        self.check_ownership(cfg)

    def check_task(self, cfg: "Config") -> None:
        """The family's own cross-field rules (data formats, columns, model options): none by default."""

    def check_monitor(self, cfg: "Config") -> None:
        if cfg.train.monitor not in self.monitors:
            raise ValueError(f"train.monitor: '{cfg.train.monitor}' is not a metric of task {self.name}; "
                             f"use one of {', '.join(self.monitors)}")

    def check_header(self, cfg: "Config") -> None:
        """`data.header: false` needs csv or tsv files (the other formats have no header line) and column names."""
        d = cfg.data
        if d.header or d.dataset is not None:
            return
        train = d.train if isinstance(d.train, str) else (d.train[0] if d.train else "")
        suffix = Path(train.split("[", 1)[0]).suffix.lower()  # `TRAIN.ts[:80%]`: a slice of the file
        read_as = d.format if d.format != "auto" else \
            {**HEADERLESS_EXTENSIONS, ".txt": self.txt_format}.get(suffix, "csv")
        if read_as not in ("csv", "tsv"):
            said = f"data.format is '{d.format}'" if d.format != "auto" else f"data.train is a {suffix} file, read as {read_as}"
            raise ValueError(f"data.header: only csv and tsv files have a header line to leave out, and {said}; "
                             f"remove data.header")
        if not d.column_names:
            raise ValueError("data.column_names: required when data.header is false (e.g. [text, label])")

    def check_ownership(self, cfg: "Config") -> None:
        """Fields other families own and this one ignores must keep their defaults.

        Compared with the defaults, not with the fields a file set: a saved config.yaml sets every field.
        """
        owners = _owners()
        for section, names in self.ignores.items():
            part = getattr(cfg, section)
            for name in names:
                if getattr(part, name) != type(part).model_fields[name].default:
                    raise ValueError(f"{section}.{name}: task {self.name} does not read it (it would change "
                                     f"nothing); remove it")
        for (section, name), tasks in owners.items():
            if self.name in tasks:
                continue
            part = getattr(cfg, section)
            if not name:
                if part != type(part)():
                    raise ValueError(f"{section}: only for task {' or '.join(tasks)} (task is {self.name}); "
                                     f"remove the section")
            elif getattr(part, name) != type(part).model_fields[name].default:
                raise ValueError(f"{section}.{name}: only for task {' or '.join(tasks)} (task is {self.name}, which "
                                 f"never reads it); remove it")

    # --- data ---------------------------------------------------------------------------------

    def prepare(self, cfg: "Config", saved: Any = None) -> Prepared:
        """Read every configured split, build vocabularies on train (or take `saved`'s: --resume), encode all."""
        raise NotImplementedError

    def train_file(self, cfg: "Config") -> Optional[str]:
        """The file the training split is read from (`bench --config` sizes its model by it), or None."""
        d = cfg.data
        return d.train if d.dataset is None and isinstance(d.train, str) else None

    def encode_split(self, cfg: "Config", vocabs: Any, source: Any, name: str) -> "EncodedSplit":
        """A labelled split (`source`: a path or split name) encoded with a prepared or saved run's vocabularies."""
        raise NotImplementedError

    def encode_evaluation_splits(self, cfg: "Config", prepared: Prepared) -> None:
        """The validation and test splits the config names, encoded with the train split's vocabularies."""
        for name in ("validation", "test"):
            source = getattr(cfg.data, name)
            if source is not None:
                prepared.splits[name] = self.encode_split(cfg, prepared, source, name)

    def vocabularies(self, cfg: "Config") -> dict[str, tuple[str, type]]:
        """The vocabularies besides `vocab` that a run directory holds: attribute -> (file name, class)."""
        raise NotImplementedError

    # --- model --------------------------------------------------------------------------------

    def build_model(self, cfg: "Config", vocabs: Any):
        """The model `cfg` describes, freshly initialised, sized by `vocabs` (a Prepared or a saved run)."""
        raise NotImplementedError

    def metrics(self, split: "EncodedSplit"):
        """A fresh metrics object (update per batch, compute per epoch) for `split`."""
        raise NotImplementedError

    def figures_note(self, cfg: "Config", prepared: Prepared) -> Optional[str]:
        """One start-up line, said before the first epoch, on what the epoch line's figures are in, where their
        names alone could mislead (regressor: the loss on z-scores, the metrics in the target's units); None."""
        return None

    def input_sizes(self, cfg: "Config", prepared: Prepared) -> dict[str, int]:
        """What the model reads, counted, for train's `data:` line and the dry run: the vocabulary of text, or
        the channels of numbers (their scaler's columns)."""
        scaler = prepared.vocabulary("scaler")
        return {"channels": len(scaler)} if scaler is not None else {"vocabulary": len(prepared.vocab)}

    def nouns(self, cfg: "Config") -> dict[str, str]:
        """The words of text that this run's data calls otherwise, in every label a person reads (figure names,
        counts, messages): a numeric tagger's sequences have steps, not tokens, and are sequences, not sentences
        (`{"token": "step", "sentence": "sequence"}`); {} (text's words) by default. Only labels change: metric
        keys (`token_accuracy` in metrics.jsonl, summary.json, --json, `train.monitor`) are the family's."""
        return {}

    def label(self, cfg: "Config", name: str) -> str:
        """A metric key (or words) as a person reads it for this run (`relabel` by `nouns`): `token_accuracy`
        of a numeric tagger is `step_accuracy`."""
        return relabel(name, self.nouns(cfg))

    def label_figures(self, cfg: "Config", figures: dict) -> dict:
        """An evaluation's figures (`eval`'s result, train's summary of the best epoch) with what a renderer
        needs to name them for this run's data (tagger: `units`, what `n` and `tokens` count); unchanged by
        default."""
        return figures

    def uninformative(self, metrics: dict) -> frozenset[str]:
        """Figures of this eval result that say nothing of the model on its data (a study leaves them out of
        its tables and comparison): none by default."""
        return frozenset()

    def synthetic(self, cfg: "Config", lengths: list[int], vocab_size: int, num_classes: int, generator,
                  num_chars: int = 0) -> tuple[Prepared, "EncodedSplit"]:
        """`bench --config`: made-up vocabularies of these sizes and a labelled split of these lengths."""
        raise NotImplementedError

    # `bench --config` reports examples per second in this unit: tokens (the sum of a batch's lengths) or,
    # for a family whose examples all have one fixed length, the examples themselves (forecast: windows).
    throughput_unit: ClassVar[str] = "tokens"

    def synthetic_sizes(self, cfg: "Config", prepared: Prepared) -> dict[str, int]:
        """`bench --config` with readable data: the sizes `synthetic` takes, read from the prepared real data, by
        its keywords: `vocab_size` and `num_classes`, and any other size `build_model` reads from the data
        (joint: num_intents; forecast: num_series), and with model.char_features the character vocabulary's
        (num_chars)."""
        sizes = {"vocab_size": len(prepared.vocab), "num_classes": len(prepared.labels)}
        if "chars" in prepared.extra:
            sizes["num_chars"] = len(prepared.extra["chars"])
        return sizes

    def synthetic_length(self, cfg: "Config", prepared: Optional[Prepared] = None) -> int:
        """`bench --config`: the time steps T of the longest synthetic example: text, the longest training example
        as encoded (so at most data.max_length) when `prepared` holds the data read, else data.max_length (200
        when unset); numeric sequences (which max_length does not cut), the training file's longest when it can be
        read; a stream (train.bptt), the bptt steps of its chunks, what each training step reads."""
        from grutool.families.rules import is_numeric

        if is_numeric(cfg):
            from grutool.data.numeric import longest

            found = longest(cfg.data)
            if found:
                return found
        if cfg.train.bptt:  # a stream (lm): every step reads chunks of train.bptt steps
            return cfg.train.bptt
        train = prepared.splits.get("train") if prepared is not None else None
        if train is not None and not train.carries_state and len(train.ids):
            return max(len(x) for x in train.ids)
        return cfg.data.max_length or 200

    def counted_outputs(self, cfg: "Config", count: int) -> Optional[str]:
        """`bench --config`'s sizes line: what the class count read from the data counts (`120 tags`, `3
        targets`); None where it counts nothing to name."""
        return counted_plural(count, self.outputs)

    def rate_count(self, batch: "Batch") -> int:
        """How much of `rate_unit` a training batch holds: its lengths summed (a forecaster: its windows)."""
        return batch.num_tokens()

    def rate_unit(self, cfg: "Config") -> str:
        """What `train`'s speed counts (`| 23,480 tok/s`): each batch's lengths summed, so tokens of text and
        steps of numeric sequences (a forecaster: windows, `rate_count`)."""
        from grutool.families.rules import is_numeric

        return "steps" if is_numeric(cfg) else "tok"

    def update_name(self, cfg: "Config") -> str:
        """What train's closing line and its step lines call one optimizer step: `step` where the speed counts
        tokens; `update` where the data's steps are time steps (numeric sequences' `steps/s`) or windows (a
        forecaster's), so that a run's lines read `steps` in one meaning only."""
        return "step" if self.rate_unit(cfg) == "tok" else "update"

    def rate_name(self, cfg: "Config") -> str:
        """`rate_unit` written out, as tables and reports name a speed: tokens, steps, windows."""
        unit = self.rate_unit(cfg)
        return "tokens" if unit == "tok" else unit

    def throughput_name(self, cfg: "Config") -> str:
        """What `bench --config`'s speed counts for this config: `throughput_unit`, its tokens named as train's
        epoch line names them (`rate_name`: a numeric sequence's steps)."""
        return self.throughput_unit if self.throughput_unit != "tokens" else self.rate_name(cfg)

    def throughput_items(self, lengths: list[int]) -> int:
        """How many `throughput_unit`s a batch of these lengths holds."""
        return int(sum(lengths)) if self.throughput_unit == "tokens" else len(lengths)

    # --- prediction ---------------------------------------------------------------------------

    def read_inputs(self, cfg: "Config", source: str, vocabs: Any = None) -> list[str]:
        """`infer --file` of a data file: the inputs of `source`, read as training reads its files (the run's
        columns; labels and targets ignored), each as the text `predict` takes. `vocabs`: the run's saved
        vocabularies (a `SavedRun`) when known, for what the config does not say (numeric: the channels)."""
        raise UserError(f"{source}: task {self.name} reads inputs one per line only; use --format lines")

    def check_options(self, predictor, **options) -> None:
        """The rules of `predict_options` values (given ones only; the rest take their defaults), each broken
        one a UserError naming its option: the rules `predict` applies, which `serve` checks before a request is
        queued (a bad value: 422 for that request alone)."""

    def check_inputs(self, predictor, texts: list[str]) -> None:
        """The inputs' own rules, a UserError for the first broken one: what `serve` checks before a request
        joins a batch (one bad request must not fail the others'). Texts: none; numeric sequences: parsed."""

    def predict(self, predictor, texts: list[str], batch_size: int = 64, **options) -> list[dict]:
        """Result dicts in input order, the same number for every text (one; lm: `num` samples per prompt)."""
        raise NotImplementedError

    def infer_batch(self, model, batch: "Batch", **options):
        """What `predict` computes from one batch before building result dicts (`bench` times this)."""
        raise NotImplementedError

    def stream_reason(self, cfg: "Config") -> Optional[str]:
        """None when a model of `cfg` can stream (grutool.streaming), else why not, in a phrase."""
        return f"task {self.name} has no streaming inference"

    def stream_encode(self, predictor, text: str) -> "EncodedSplit":
        """One chunk of a stream as a one-example split (no truncation)."""
        raise NotImplementedError

    def stream_render(self, predictor, text: str, chunk: str, outputs: tuple) -> dict:
        """The result after a chunk, from the model's `scores` without its state (`text`: everything fed)."""
        raise NotImplementedError

    def served_labels(self, run) -> Optional[list[str]]:
        """What `grutool serve`'s /info lists as the run's labels: its classes or tags (None where there are
        none, or where `labels` holds target tokens)."""
        return list(run.labels.itos) if run.labels is not None else None

    def served_vocabularies(self, run) -> dict[str, list[str]]:
        """What `grutool serve`'s /info lists besides `labels` (e.g. the joint task's intents): none by default."""
        return {}

    def served_input(self, cfg: "Config") -> dict:
        """What `grutool serve`'s /info says about the input a text holds: the tokenizer settings, or, for
        numeric sequences, how missing values are read."""
        from grutool.families.rules import is_numeric

        d = cfg.data
        if is_numeric(cfg):
            return {"numeric": True, "missing": d.missing}
        return {"tokenizer": d.tokenizer, "lowercase": d.lowercase, "max_length": d.max_length}

    def traced_pass(self, model):
        """What `shapes --config` traces, in eval mode (no dropout, no noise): the model's training pass, as a
        callable of the batch's inputs. The model itself by default; seq2seq's without the generation its eval
        mode adds."""
        return model

    def served_form(self, run) -> str:
        """How one entry of a `grutool serve` request's `texts` is written: the one line a misshapen entry (a
        number, a list where a string belongs) is answered with, after `texts[K]: `."""
        from grutool.families.rules import is_numeric

        if is_numeric(run.config):
            channels = len(run.extra["scaler"])
            return (f"a sequence is channels x steps: a JSON array of {counted(channels, 'list')}, one per channel, "
                    f"of a number per step (null: a missing value), or the text form 'a,b:c,d' (a .ts line: "
                    f"channels split by ':', steps by ',')")
        return "a text is one JSON string"

    def served_shorter(self, run) -> str:
        """The fix a text over `grutool serve`'s character bound is answered with (413), after the bound: a
        numeric sequence (an array, counted as its text form) is sent with fewer steps, not as a shorter text."""
        from grutool.families.rules import is_numeric

        if is_numeric(run.config):
            return "send a sequence of fewer steps (an array is counted as its text form 'a,b:c,d')"
        return "send a shorter text"

    def served_chars(self, run) -> Optional[int]:
        """The characters one text of this run needs at the most, where the family knows (a forecast window's
        rows); None: `grutool serve`'s default bound."""
        return None

    def open_stream(self, predictor, **options):
        """A stateful reader of long input fed in chunks (`Predictor.stream`): `grutool.streaming.Stream`
        (it refuses, with `stream_reason`, models that cannot stream); language models have their own."""
        if options:
            raise UserError(f"{', '.join(sorted(options))}: not an option of a task {self.name} stream")
        from grutool.streaming import Stream

        return Stream(predictor)

    def set_decoding(self, model, **options) -> dict:
        """Apply `predict_options` to a model for `evaluate`; returns what the results should report."""
        return {}

    def finish_evaluation(self, out: dict, vocabs: Any) -> dict:
        """Add what evaluation reports beyond the metrics (labels never seen in training, ...)."""
        return out


def relabel(name: str, nouns: dict[str, str]) -> str:
    """`name` (a metric key, `token_accuracy`, `val_sentence_acc`, or words, `token accuracy`) with each word
    that `nouns` (`Task.nouns`) maps replaced, plurals too (`tokens` -> `steps`)."""
    if not nouns:
        return name
    import re

    def swap(match) -> str:
        word = match.group(0)
        if word in nouns:
            return nouns[word]
        return nouns[word[:-1]] + "s" if word.endswith("s") and word[:-1] in nouns else word

    return re.sub(r"[A-Za-z]+", swap, name)


def synthetic_vocabs(vocab_size: int, num_classes: int, num_chars: int = 0, num_intents: int = 0) -> Prepared:
    """Vocabularies of the given sizes with made-up entries (bench: a model without its data)."""
    from grutool.data.vocab import LabelVocab, Vocab

    def vocab(n: int) -> Vocab:
        return Vocab(["<pad>", "<unk>"] + [f"w{i}" for i in range(n - 2)])

    labels = LabelVocab([f"L{i}" for i in range(num_classes)])
    return Prepared(vocab(vocab_size), labels, extra={
        "chars": vocab(num_chars) if num_chars else None,
        "intents": LabelVocab([f"I{i}" for i in range(num_intents)]) if num_intents else None})


def _owners() -> dict[tuple[str, str], list[str]]:
    """(section, field) -> the families that own it, from every family's `owns` ("" for a section owned whole)."""
    from grutool.families import TASKS

    owners: dict[tuple[str, str], list[str]] = {}
    for task in TASKS.values():
        for section, names in task.owns.items():
            for name in names or ("",):
                owners.setdefault((section, name), []).append(task.name)
    return owners
