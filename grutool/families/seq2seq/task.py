"""Sequence to sequence (N -> M): source/target pairs to encoded splits, an encoder-decoder, metrics, outputs."""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING, Any, Optional

from grutool.config import MAX_BEAM
from grutool.errors import UserError, listed
from grutool.families.base import Option, Prepared, Task, synthetic_vocabs
from grutool.families.rules import NUMERIC_ONLY, check_columns

if TYPE_CHECKING:
    from grutool.config import Config, DataConfig
    from grutool.data.batching import EncodedSplit, References
    from grutool.families.seq2seq.pair import Pair
    from grutool.data.vocab import Vocab

log = logging.getLogger("grutool")

FORMATS = ("parallel_text", "tsv", "csv", "jsonl", "cmudict")


def is_dictionary(d: DataConfig) -> bool:
    """Whether seq2seq metrics treat the data as a pronouncing dictionary (see DataConfig.dictionary)."""
    return d.dictionary if d.dictionary is not None else d.format == "cmudict"


class Seq2SeqTask(Task):
    """`labels` is the target vocabulary (the same object as `vocab` with data.shared_vocab)."""

    name = "seq2seq"
    monitors = ("bleu", "chrf", "exact_match", "perplexity", "loss")
    owns = {"data": ("dataset", "dataset_config", "source", "target", "source_column", "target_column",
                     "target_tokenizer", "target_lowercase", "target_max_length", "shared_vocab", "dictionary",
                     "keep_stress", "split_seed"),
            "model": ("decoder_cell", "attention", "input_feeding", "tie_embeddings", "embedding_init"),
            "train": ("teacher_forcing", "label_smoothing", "lazy_embeddings"),
            "decoding": ()}
    # Text only: a time column, channels or missing values would change nothing; pairs are read from
    # data.source_column and data.target_column, never a text or label column.
    ignores = {"data": (*NUMERIC_ONLY["data"], "text_column", "label_column", "max_word_length")}  # no char features
    outputs = "targets"
    renderer = "seq2seq"
    exporter = "seq2seq"
    example = {"data": {"train": "data/reverse/train", "validation": "data/reverse/validation",
                        "test": "data/reverse/test", "format": "parallel_text", "source": "src", "target": "tgt",
                        "tokenizer": "char"},
               "train": {"monitor": "exact_match"}}  # bleu counts word n-grams: near 0 on characters
    predict_options = {
        "beam": Option(int, "beam size (1: greedy; default: the run's decoding.beam_size)", served_max=64),
        "attention": Option(bool, "add the attention weights to each result"),
    }

    # --- config --------------------------------------------------------------------------------

    def check_task(self, cfg: Config) -> None:
        d, m = cfg.data, cfg.model
        check_columns(cfg, ("source_column", "target_column"))
        if d.format not in FORMATS + ("auto",):
            raise ValueError(f"data.format: task seq2seq reads {', '.join(FORMATS)} (got '{d.format}')")
        if d.dataset is not None:
            if d.format != "auto":
                raise ValueError(f"data.format: a Hub dataset (data.dataset) is read by its columns, not as "
                                 f"'{d.format}'; remove data.format")
            if (d.source is None) != (d.target is None):
                raise ValueError("data.source, data.target: with data.dataset, both name the languages of its "
                                 "`translation` column (e.g. de, en), or neither (data.source_column and "
                                 "data.target_column then name two text columns)")
        if m.char_features:
            raise ValueError("model.char_features: for task classifier, tagger or joint (task is seq2seq; "
                             "use data.tokenizer: char for a character-level model)")
        for name in ("train", "validation", "test"):
            value = getattr(d, name)
            if isinstance(value, list):
                if d.format != "parallel_text":
                    raise ValueError(f"data.{name}: a list of paths is for task seq2seq with data.format "
                                     f"parallel_text ([source file, target file]); give one path")
                if len(value) != 2:
                    raise ValueError(f"data.{name}: expected [source file, target file], got {len(value)} path(s)")
        if d.format == "parallel_text":
            prefixes = [n for n in ("train", "validation", "test") if isinstance(getattr(d, n), str)]
            if prefixes and (d.source is None or d.target is None):
                raise ValueError(f"data.source, data.target: parallel_text needs both file suffixes (e.g. de, en) "
                                 f"when data.{prefixes[0]} is a prefix; or give data.{prefixes[0]} as "
                                 f"[source file, target file]")
        if cfg.train.monitor == "bleu" and self.target_tokenizer_name(cfg) == "char" and not is_dictionary(d):
            raise ValueError("train.monitor: 'bleu' counts word n-grams, but the targets are characters "
                             "(data.target_tokenizer or data.tokenizer: char), so it stays near 0 and the first "
                             "epoch would stay the best; monitor chrf, exact_match or loss")
        if cfg.train.monitor in ("bleu", "chrf") and is_dictionary(d):
            raise ValueError(f"train.monitor: '{cfg.train.monitor}' is not computed for dictionary data "
                             f"(data.format cmudict or data.dictionary); monitor exact_match")
        if m.attention == "dot" and m.bidirectional:
            raise ValueError("model.attention: 'dot' needs encoder outputs of the decoder's size, but a "
                             "bidirectional encoder gives 2 x hidden_size; use 'general' or 'additive', or "
                             "bidirectional: false")

    # --- text -> tokens ------------------------------------------------------------------------

    def source_tokenizer(self, cfg: Config):
        from grutool.data.tokenize import get_tokenizer

        return get_tokenizer(cfg.data.tokenizer, cfg.data.lowercase)

    # A pronouncing dictionary's words are read as letters, its pronunciations as phonemes: a minimal cmudict
    # config took the word tokenizer, a vocabulary of every word (112,000) and a model that could learn nothing.
    DICTIONARY_READING = {"tokenizer": "char", "target_tokenizer": "whitespace", "target_lowercase": False}

    @classmethod
    def default(cls, section: str, name: str, schema_default, data: Optional[dict] = None):
        if section == "data" and name in cls.DICTIONARY_READING and isinstance(data, dict) \
                and data.get("format") == "cmudict":
            return cls.DICTIONARY_READING[name]
        return super().default(section, name, schema_default, data)

    @classmethod
    def defaulted(cls) -> dict[str, tuple[str, ...]]:
        fields = super().defaulted()
        return {**fields, "data": (*fields.get("data", ()), *cls.DICTIONARY_READING)}

    @classmethod
    def default_monitor(cls, data: dict) -> str:
        # bleu, unless `check_task` would refuse it: dictionaries have no bleu, characters a bleu near 0
        dictionary = data.get("dictionary") if data.get("dictionary") is not None else data.get("format") == "cmudict"
        chars = (data.get("target_tokenizer") or data.get("tokenizer")) == "char"
        return "exact_match" if dictionary or chars else "bleu"

    def target_tokenizer_name(self, cfg: Config) -> str:
        return cfg.data.target_tokenizer or cfg.data.tokenizer

    def target_lowercase(self, cfg: Config) -> bool:
        d = cfg.data
        return d.lowercase if d.target_lowercase is None else d.target_lowercase

    def target_tokenizer(self, cfg: Config):
        from grutool.data.tokenize import get_tokenizer

        return get_tokenizer(self.target_tokenizer_name(cfg), self.target_lowercase(cfg))

    def source_tokens(self, cfg: Config, texts: list[str], name: str, where: Optional[list[str]] = None,
                      cut: Optional[list[int]] = None) -> list[list[str]]:
        """Source tokens, truncated to data.max_length with a counted warning; `cut` (a list) receives the
        positions of the truncated ones."""
        tokens = [self.source_tokenizer(cfg)(t) for t in texts]
        limit = cfg.data.max_length
        if limit is not None:
            long = [i for i, t in enumerate(tokens) if len(t) > limit]
            if cut is not None:
                cut.extend(long)
            if long:
                at = f", first at {where[long[0]]}" if where else ""
                log.warning("%s: %d source(s) longer than data.max_length=%d tokens are truncated%s",
                            name, len(long), limit, at)
                tokens = [t[:limit] for t in tokens]
        return tokens

    # --- encoding --------------------------------------------------------------------------------

    def encode(self, cfg: Config, vocab: Vocab, target_vocab: Vocab, sources: list[list[str]],
               targets: Optional[list[list[str]]] = None, texts: Optional[list[str]] = None,
               name: str = "input", references: Optional[References] = None) -> EncodedSplit:
        """Source ids; target ids ending in <eos> when targets are given; `references` for evaluation splits.
        Source tokens outside the vocabulary become <unk>, counted in a warning (outside training, where rare
        tokens are <unk> by design)."""
        import torch

        from grutool.data.batching import EncodedSplit
        from grutool.data.vocab import Vocab

        ids = [torch.tensor(vocab.encode(s), dtype=torch.long) for s in sources]
        if name != "train":
            unknown = Counter(t for s in sources for t in s if t not in vocab.stoi)
            if unknown:
                log.warning("%s: %d source token(s) are not in the vocabulary and are read as <unk>: %s",
                            name, sum(unknown.values()), listed(unknown, 5))
        split = EncodedSplit(ids, None, texts if texts is not None else [" ".join(s) for s in sources],
                             label_names=list(target_vocab.itos), references=references)
        if targets is not None:
            split.targets = [torch.tensor(target_vocab.encode(t) + [Vocab.eos_id], dtype=torch.long) for t in targets]
        return split

    def read(self, cfg: Config, spec, name: str) -> tuple[list[Pair], list[list[str]], list[list[str]]]:
        from grutool.families.seq2seq.data import read_pairs

        pairs = read_pairs(cfg.data, spec, name)
        sources = self.source_tokens(cfg, [p.source for p in pairs], name, [p.where for p in pairs])
        targets = [self.target_tokenizer(cfg)(p.target) for p in pairs]
        return pairs, sources, targets

    def read_inputs(self, cfg: Config, source: str, vocabs: Any = None) -> list[str]:
        from grutool.families.seq2seq.data import read_pairs

        return [p.source for p in read_pairs(cfg.data, source, "input")]

    def prepare(self, cfg: Config, saved: Any = None) -> Prepared:
        from grutool.data.vocab import TARGET_SPECIALS, Vocab

        d = cfg.data
        pairs, sources, targets = self.read(cfg, d.train, "train")
        limit = d.target_max_length or d.max_length
        if limit is not None:
            long = [i for i, t in enumerate(targets) if len(t) > limit]
            if long:
                log.warning("train: %d target(s) longer than %s=%d tokens are truncated, first at %s", len(long),
                            "data.target_max_length" if d.target_max_length else "data.max_length", limit,
                            pairs[long[0]].where)
                targets = [t[:limit] for t in targets]
        if saved:
            vocab, labels = saved.vocab, saved.labels
        else:
            if d.shared_vocab:
                vocab = labels = Vocab.build(sources + targets, d.min_freq, d.max_size, specials=TARGET_SPECIALS)
            else:
                vocab = Vocab.build(sources, d.min_freq, d.max_size)
                labels = Vocab.build(targets, d.min_freq, d.max_size, specials=TARGET_SPECIALS)
        prepared = Prepared(vocab, labels)
        prepared.splits["train"] = self.encode(cfg, vocab, labels, sources, targets, [p.source for p in pairs],
                                               "train")
        self.encode_evaluation_splits(cfg, prepared)
        return prepared

    def encode_split(self, cfg: Config, vocabs: Any, spec, name: str) -> EncodedSplit:
        """A scored split: whole targets (never truncated) as references; dictionaries group each word's pairs."""
        from grutool.data.batching import References

        pairs, sources, targets = self.read(cfg, spec, name)
        groups = None
        if is_dictionary(cfg.data):
            first: dict[tuple, int] = {}
            groups = [first.setdefault(tuple(s), i) for i, s in enumerate(sources)]
        lower = self.target_lowercase(cfg)
        refs = References(targets, [p.target.lower() if lower else p.target for p in pairs],
                          self.target_tokenizer_name(cfg), groups)
        return self.encode(cfg, vocabs.vocab, vocabs.labels, sources, targets, [p.source for p in pairs], name, refs)

    def vocabularies(self, cfg: Config) -> dict[str, tuple[str, type]]:
        from grutool.data.vocab import Vocab

        return {"labels": ("target_vocab.json", Vocab)}

    def synthetic(self, cfg: Config, lengths: list[int], vocab_size: int, num_classes: int, generator,
                  num_chars: int = 0) -> tuple[Prepared, EncodedSplit]:
        """Random source ids and random targets as long as their sources (ending in <eos>);
        `num_classes` sizes the target vocabulary."""
        import torch

        from grutool.data.batching import EncodedSplit
        from grutool.data.vocab import Vocab

        num_classes = max(num_classes, 5)  # <pad> <unk> <bos> <eos> and at least one real token
        vocabs = synthetic_vocabs(vocab_size, 2)
        vocabs.labels = Vocab(["<pad>", "<unk>", "<bos>", "<eos>"] + [f"t{i}" for i in range(num_classes - 4)])
        ids = [torch.randint(min(2, vocab_size - 1), vocab_size, (int(n),), generator=generator) for n in lengths]
        targets = [torch.cat([torch.randint(4, num_classes, (int(n),), generator=generator),
                              torch.tensor([Vocab.eos_id])]) for n in lengths]
        return vocabs, EncodedSplit(ids, targets, [""] * len(lengths), label_names=list(vocabs.labels.itos))

    def build_model(self, cfg: Config, vocabs: Any):
        from grutool.families.seq2seq.model import Seq2Seq

        return Seq2Seq.from_config(cfg, vocab_size=len(vocabs.vocab), num_outputs=len(vocabs.labels))

    def set_decoding(self, model, beam: Optional[int] = None, **options) -> dict:
        if beam is not None:
            check_beam(beam)
            model.decoding["beam_size"] = beam
        return {"beam_size": model.decoding["beam_size"]}

    def metrics(self, split: EncodedSplit):
        from grutool.families.seq2seq.metrics import Seq2SeqMetrics

        return Seq2SeqMetrics(split.label_names, split.references, split.texts)

    def uninformative(self, metrics: dict) -> frozenset[str]:
        # sacreBLEU counts word n-grams: on character targets (the metrics' char_level) it is 0.0 whatever the
        # output, so a study would compare zeros; chrF, CER and exact match say how close the characters are.
        return frozenset({"bleu"}) if metrics.get("char_level") else frozenset()

    # --- prediction --------------------------------------------------------------------------

    def infer_batch(self, model, batch, **settings):
        """Generated outputs (grutool.families.seq2seq.decoding.Generated) for one batch of sources."""
        from grutool.families.seq2seq.decoding import generate

        memory, state = model.encode(batch.ids, batch.lengths)
        return generate(model, memory, state, batch.lengths, **settings)

    def traced_pass(self, model):
        def teacher_forced(*inputs, **kw):  # eval mode would also generate each output, 13 decoder calls a batch
            model.generates = False
            try:
                return model(*inputs, **kw)
            finally:
                model.generates = True

        return teacher_forced

    def served_labels(self, run) -> None:
        return None  # `labels` is the target vocabulary: tokens, not labels to list

    def check_options(self, predictor, beam: Optional[int] = None, attention: bool = False) -> None:
        if beam is not None:
            check_beam(beam)
        if attention and predictor.model.attention is None:  # `infer --attention` or `--attention-weights`
            raise UserError(f"attention: {predictor.run.path} has no attention (model.attention: none); "
                            f"there are no weights to show: remove the option", option="attention")

    def predict(self, predictor, texts: list[str], batch_size: int = 64, beam: Optional[int] = None,
                attention: bool = False) -> list[dict]:
        """One dict per text, in input order: source, output, score (the output's log-probability) and, with
        `attention`, the source and output tokens (<eos> last) with the weights, one row per output token."""
        import torch

        from grutool.data.batching import sorted_batches
        from grutool.data.tokenize import detokenize

        self.check_options(predictor, beam, attention)
        cfg, run, model = predictor.cfg, predictor.run, predictor.model
        cut: list[int] = []
        sources = self.source_tokens(cfg, texts, "input", cut=cut)
        split = self.encode(cfg, run.vocab, run.labels, sources, texts=texts)
        settings = dict(cfg.decoding.model_dump(), with_attention=attention)
        if beam is not None:
            settings["beam_size"] = beam
        names, tokenizer = run.labels.itos, self.target_tokenizer_name(cfg)
        results: list[dict] = [{} for _ in texts]
        truncated = set(cut)
        for batch in sorted_batches(split, batch_size):
            batch.ids = batch.ids.to(predictor.device)
            with torch.no_grad():
                out = self.infer_batch(model, batch, **settings)
            for row, i in enumerate(batch.index):
                tokens = [names[j] for j in out.tokens[row]]
                r = {"source": texts[i], "output": detokenize(tokens, tokenizer), "score": round(out.scores[row], 6)}
                if i in truncated:  # said in each answer too: a server's client never sees the log's warning
                    r["truncated_to"] = cfg.data.max_length
                if attention:
                    r["attention"] = {"source_tokens": sources[i],
                                      "output_tokens": tokens + (["<eos>"] if out.finished[row] else []),
                                      "weights": [[round(float(w), 5) for w in line] for line in out.attention[row]]}
                results[i] = r
        return results


def check_beam(beam: int) -> None:
    """A beam option's bounds. Below 1 is said alone: a server checks its own, lower cap first (serve's
    `served_max`), and "1 to 256" there named a bound the server refuses."""
    if beam < 1:
        raise UserError(f"beam: must be at least 1 (got {beam}); 1 is greedy decoding", option="beam")
    if beam > MAX_BEAM:
        raise UserError(f"beam: must be 1 to {MAX_BEAM} (got {beam}); 1 is greedy decoding", option="beam")
