"""Language models (N -> N next-token prediction; 1 -> N conditional generation): data, model, metrics, generation.

Two kinds of training data: line examples (`<bos> x_1 .. x_n` predicts `x_1 .. x_n <eos>`, packed as
everywhere else, each with an optional condition) or, with train.bptt, one long stream read by truncated
BPTT (grutool.families.lm.data). `predict` samples continuations of prompts or, with `score`, gives each token's
log-probability; `open_stream` carries the state across calls (grutool.families.lm.generation.Stream).
"""

from __future__ import annotations

import logging
import math
import unicodedata
from collections import Counter
from typing import TYPE_CHECKING, Any, Optional

from grutool.errors import UserError, clipped, listed
from grutool.families.base import Option, Prepared, Task
from grutool.families.rules import NUMERIC_ONLY, check_columns, check_one_path_per_split

if TYPE_CHECKING:
    from grutool.config import Config
    from grutool.data.batching import EncodedSplit
    from grutool.data.vocab import LabelVocab, Vocab

log = logging.getLogger("grutool")

DEFAULT_MAX_LENGTH = 200  # tokens generated when max_length is not given


def is_stream(cfg: Config) -> bool:
    return cfg.train.bptt is not None


class LMTask(Task):
    """`labels` is the token vocabulary itself (what the model predicts); `conditions` the condition labels."""
    name = "lm"
    monitors = ("loss", "perplexity", "bpc")
    txt_format = "text"
    owns = {"data": ("dataset", "dataset_config", "condition_column", "split_seed"),
            "model": ("tie_embeddings", "condition", "condition_dim", "adaptive_cutoffs", "embedding_init"),
            "train": ("bptt", "lazy_embeddings")}
    # Text only: a time column, channels or missing values would change nothing; a condition is read from
    # data.condition_column, never a label column.
    ignores = {"data": (*NUMERIC_ONLY["data"], "label_column", "max_word_length")}  # no char features
    defaults = {"model": {"bidirectional": False}}  # a language model reads left to right
    outputs = "tokens"
    renderer = "lm"
    exporter = None  # no export yet: a language model's graphs (step, generation loop) are still to be written
    example = {"data": {"train": "data/lm/train.tsv", "validation": "data/lm/validation.tsv",
                        "test": "data/lm/test.tsv", "condition_column": "language", "tokenizer": "char",
                        "lowercase": False}}
    predict_options = {
        "condition": Option(str, "the condition label to generate or score with (a conditioned model needs one)"),
        "num": Option(int, "samples per prompt (default 1)", served_max=64),
        "max_length": Option(int, f"tokens generated at most (default {DEFAULT_MAX_LENGTH})", served_max=1000),
        "temperature": Option(float, "divide the logits by this (> 0; default 1)"),
        "top_k": Option(int, "sample among the k most likely tokens (1: greedy)"),
        "top_p": Option(float, "sample among the most likely tokens holding this probability, in (0, 1]"),
        "seed": Option(int, "sampling seed (default 0); the same seed and num give the same samples"),
        "greedy": Option(bool, "always the most likely token"),
        "score": Option(bool, "each token's log-probability of the texts instead of generating"),
    }
    needs_inputs = False
    folder_format = "text_dir"  # one .txt file per condition

    # --- config --------------------------------------------------------------------------------

    def check_task(self, cfg: Config) -> None:
        from grutool.families.lm.data import LINE_FORMATS

        d, m, t = cfg.data, cfg.model, cfg.train
        check_columns(cfg, ("text_column",) + (("condition_column",) if d.condition_column else ()))
        if t.monitor == "bpc" and d.tokenizer != "char":
            raise ValueError("train.monitor: 'bpc' (bits per character) needs data.tokenizer: char; "
                             "monitor loss or perplexity")
        if d.dataset is not None and d.format != "auto":
            raise ValueError(f"data.format: a Hub dataset (data.dataset) is read by its columns, not as "
                             f"'{d.format}'; remove data.format")
        if d.format not in LINE_FORMATS + ("auto",):
            raise ValueError(f"data.format: task lm reads {', '.join(LINE_FORMATS)} (got '{d.format}')")
        if m.bidirectional:
            raise ValueError("model.bidirectional: a language model reads left to right (a backward direction "
                             "would see the token it predicts); set bidirectional: false")
        check_one_path_per_split(cfg)
        if t.bptt is not None:
            if d.format not in ("auto", "text"):
                raise ValueError(f"train.bptt: reads one plain-text stream (data.format text), not '{d.format}'; "
                                 f"remove train.bptt to read a line per example")
            if d.condition_column:
                raise ValueError("data.condition_column: a stream (train.bptt) has no per-example condition; "
                                 "remove one of them")
            if d.format == "auto" and d.dataset is None:  # a table's header, separators and labels read as text
                from pathlib import Path

                from grutool.data.slices import SLICE

                for name in ("train", "validation", "test"):
                    spec = getattr(d, name)
                    found = SLICE.match(spec) if isinstance(spec, str) else None
                    suffix = Path(found["path"] if found else spec).suffix.lower() if isinstance(spec, str) else ""
                    if suffix in (".csv", ".tsv", ".jsonl", ".json", ".parquet"):
                        raise ValueError(f"train.bptt: reads one plain-text stream, and data.{name} is a {suffix} "
                                         f"table ({spec}): its header, separators and every column would be read "
                                         f"as text; give a .txt file, or remove train.bptt to read a line per "
                                         f"example")
        if d.condition_column and d.format == "text":
            raise ValueError("data.condition_column: plain text has no columns; use csv, tsv, jsonl or text_dir")
        cuts = m.adaptive_cutoffs
        if cuts is not None:
            if not cuts or any(c <= 0 for c in cuts) or any(a >= b for a, b in zip(cuts, cuts[1:])):
                raise ValueError(f"model.adaptive_cutoffs: must be increasing positive token counts, e.g. "
                                 f"[2000, 10000] (got {cuts})")
            if m.tie_embeddings:
                raise ValueError("model.tie_embeddings: the adaptive softmax has its own output clusters; "
                                 "remove tie_embeddings or adaptive_cutoffs")

    # --- data ----------------------------------------------------------------------------------

    def tokenize_lines(self, cfg: Config, texts: list[str]) -> list[list[str]]:
        from grutool.families.lm.data import line_tokenizer

        tok = line_tokenizer(cfg)
        return [tok(t)[: cfg.data.max_length] for t in texts]

    def prepare(self, cfg: Config, saved: Any = None) -> Prepared:
        from grutool.families.lm.data import read_lines, read_stream, stream_tokens
        from grutool.data.vocab import TARGET_SPECIALS, LabelVocab, Vocab

        d = cfg.data
        conditions = None
        if is_stream(cfg):
            tokens = stream_tokens(cfg, read_stream(cfg, d.train))
            vocab = saved.vocab if saved else Vocab.build([tokens], d.min_freq, d.max_size, specials=TARGET_SPECIALS)
            train = self.encode_stream(cfg, vocab, tokens, d.train, "train")
        else:
            lines = read_lines(cfg, d.train)
            tokens = self.tokenize_lines(cfg, lines.texts)
            empty = [i for i, t in enumerate(tokens) if not t]
            if len(empty) == len(tokens):
                raise UserError(f"{d.train}: empty corpus (every line is empty after tokenization)")
            if empty:
                log.warning("train: %d empty line(s) skipped, first at %s", len(empty), lines.where[empty[0]])
                keep = [i for i, t in enumerate(tokens) if t]
                tokens = [tokens[i] for i in keep]
                lines.texts = [lines.texts[i] for i in keep]
                lines.conditions = [lines.conditions[i] for i in keep] if lines.conditions else None
            vocab = saved.vocab if saved else Vocab.build(tokens, d.min_freq, d.max_size, specials=TARGET_SPECIALS)
            if d.condition_column:
                conditions = saved.extra.get("conditions") if saved else LabelVocab.build(lines.conditions)
            train = self.encode_lines(cfg, vocab, conditions, tokens, lines, "train")
        cuts = cfg.model.adaptive_cutoffs
        if cuts and cuts[-1] >= len(vocab) - 1:
            raise UserError(f"model.adaptive_cutoffs: {cuts} must stay below the vocabulary size minus one "
                            f"({len(vocab)} tokens); lower them or drop the last")
        prepared = Prepared(vocab, vocab, extra={"conditions": conditions})
        prepared.splits["train"] = train
        self.encode_evaluation_splits(cfg, prepared)
        return prepared

    def encode_lines(self, cfg: Config, vocab: Vocab, conditions: Optional[LabelVocab], tokens: list[list[str]],
                     lines, name: str) -> EncodedSplit:
        from grutool.families.lm.data import encode_lines

        if name != "train":
            self.warn_unknown(vocab, tokens, name)
        conds = None
        if conditions is not None:
            conds = lines.conditions
            unseen = Counter(c for c in conds if c not in conditions.stoi)
            if unseen:
                raise UserError(f"{name}: conditions never seen in training: {listed(unseen, 10)} "
                                f"(known: {', '.join(conditions.itos[:20])})")
        split = encode_lines(tokens, vocab, conds, conditions, lines.texts)
        split.label_names = list(vocab.itos)
        return split

    def encode_stream(self, cfg: Config, vocab: Vocab, tokens: list[str], source: str, name: str) -> EncodedSplit:
        """Training: train.batch_size rows, each at least one train.bptt chunk. Evaluation: as many rows (up to
        batch_size) as hold a chunk each: fewer rows lose less context at the row starts."""
        from grutool.families.lm.data import encode_stream

        t = cfg.train
        rows = t.batch_size
        if name != "train":
            self.warn_unknown(vocab, [tokens], name)
            rows = max(1, min(rows, (len(tokens) - 1) // t.bptt))
        if (len(tokens) - 1) // rows < t.bptt:
            raise UserError(f"{source}: a stream of {len(tokens):,} tokens gives each of "
                            f"{'the train.batch_size=' if name == 'train' else ''}{rows} row(s) "
                            f"{(len(tokens) - 1) // rows} steps, less than one train.bptt chunk ({t.bptt}); "
                            f"lower train.batch_size or train.bptt, or give more text")
        split = encode_stream(tokens, vocab, t.bptt, rows)
        split.label_names = list(vocab.itos)
        return split

    @staticmethod
    def warn_unknown(vocab: Vocab, tokens: list[list[str]], name: str) -> None:
        unknown = Counter(x for s in tokens for x in s if x not in vocab.stoi)
        if unknown:
            log.warning("%s: %d token(s) are not in the vocabulary and are read as <unk>: %s",
                        name, sum(unknown.values()), listed(unknown, 5))

    def encode_split(self, cfg: Config, vocabs: Any, source: str, name: str) -> EncodedSplit:
        from grutool.families.lm.data import read_lines, read_stream, stream_tokens

        if is_stream(cfg):
            return self.encode_stream(cfg, vocabs.vocab, stream_tokens(cfg, read_stream(cfg, source)), source, name)
        lines = read_lines(cfg, source)
        return self.encode_lines(cfg, vocabs.vocab, vocabs.extra.get("conditions"), self.tokenize_lines(cfg, lines.texts),
                                 lines, name)

    def train_file(self, cfg: Config) -> Optional[str]:
        from grutool.data.slices import split_slice

        return None if cfg.data.dataset else split_slice(cfg.data.train)[0]

    def vocabularies(self, cfg: Config) -> dict[str, tuple[str, type]]:
        from grutool.data.vocab import LabelVocab

        return {"conditions": ("conditions.json", LabelVocab)} if cfg.data.condition_column else {}

    def synthetic_sizes(self, cfg: Config, prepared: Prepared) -> dict[str, int]:
        """The vocabulary and, as the class count `synthetic` takes, the conditions (an lm's labels are its
        vocabulary again: counting them built a condition embedding of one row per token)."""
        conditions = prepared.extra.get("conditions")
        return {"vocab_size": len(prepared.vocab), "num_classes": len(conditions) if conditions else 2}

    def counted_outputs(self, cfg: Config, count: int) -> Optional[str]:
        """The class count is the conditions (`synthetic_sizes`); an unconditioned lm has none to name."""
        return f"{count} conditions" if cfg.data.condition_column or cfg.data.format == "text_dir" else None

    def synthetic(self, cfg: Config, lengths: list[int], vocab_size: int, num_classes: int, generator,
                  num_chars: int = 0) -> tuple[Prepared, EncodedSplit]:
        """Random token ids and next tokens; `num_classes` conditions when the config has a condition column.
        With train.bptt the batch is a stream batch (the state is carried from call to call)."""
        import torch

        from grutool.data.batching import EncodedSplit
        from grutool.data.vocab import LabelVocab, Vocab

        vocab = Vocab(["<pad>", "<unk>", "<bos>", "<eos>"] + [f"w{i}" for i in range(max(vocab_size, 5) - 4)])
        conditions = LabelVocab([f"c{i}" for i in range(num_classes)]) if cfg.data.condition_column else None
        V = len(vocab)
        ids = [torch.randint(2, V, (int(n),), generator=generator) for n in lengths]
        targets = [torch.randint(3, V, (int(n),), generator=generator) for n in lengths]
        split = EncodedSplit(ids, targets, [""] * len(lengths), label_names=list(vocab.itos))
        if conditions is not None:
            split.conditions = list(torch.randint(0, num_classes, (len(lengths),), generator=generator))
        if is_stream(cfg):
            split.streams = len(lengths)
        return Prepared(vocab, vocab, extra={"conditions": conditions}), split

    # --- model ---------------------------------------------------------------------------------

    def build_model(self, cfg: Config, vocabs: Any):
        from grutool.families.lm.model import LanguageModel

        return LanguageModel.from_config(cfg, vocab_size=len(vocabs.vocab),
                                         num_conditions=len(vocabs.extra["conditions"]) if "conditions" in vocabs.extra else 0)

    def metrics(self, split: EncodedSplit):
        from grutool.data.vocab import BOS, EOS, PAD, UNK
        from grutool.families.lm.metrics import LMMetrics

        # Bits per character where every token is one character (a character vocabulary).
        names = [t for t in split.label_names or [] if t not in (PAD, UNK, BOS, EOS)]
        return LMMetrics(characters=bool(names) and all(len(t) == 1 for t in names))

    # --- prediction ----------------------------------------------------------------------------

    def infer_batch(self, model, batch, **options):
        """Next-token log-probabilities (B, T, V) of one batch (what scoring computes)."""
        o, _ = model.features(batch.ids, batch.lengths, batch.condition)
        return model.log_probs(o)

    def condition_id(self, predictor, condition: Optional[str]) -> Optional[int]:
        known = predictor.run.extra.get("conditions")
        if known is None:
            if condition is not None:
                raise UserError(f"condition: {predictor.run.path} is an unconditioned model (no "
                                f"data.condition_column); remove the condition", option="condition")
            return None
        if condition is None:
            raise UserError(f"condition: {predictor.run.path} generates by condition; give one of "
                            f"{', '.join(known.itos)}", option="condition")
        if condition not in known.stoi:
            raise UserError(f"condition: unknown {condition!r}; known: {', '.join(known.itos)}", option="condition")
        return known.stoi[condition]

    def encoder_for(self, predictor, what: str):
        """text -> (tokens, ids) as the run reads text: a character stream keeps every character; prompts
        with characters a character model never saw are an error, unknown words become <unk> with a warning."""
        from grutool.families.lm.data import line_tokenizer, stream_tokens

        cfg, vocab = predictor.cfg, predictor.run.vocab
        char = cfg.data.tokenizer == "char"

        def encode(text: str) -> tuple[list[str], list[int]]:
            if char:
                if not is_stream(cfg):  # read in NFC as the lines were (get_tokenizer); spaces at the ends kept
                    text = unicodedata.normalize("NFC", text)
                tokens = list(text.lower() if cfg.data.lowercase else text)
            elif is_stream(cfg):
                tokens = stream_tokens(cfg, text)[:-1]  # the text's own line ends only
            else:
                tokens = line_tokenizer(cfg)(text)
            unknown = Counter(t for t in tokens if t not in vocab.stoi)
            if unknown and char:
                # no option named: a prompt comes from --prompt, a TEXT argument or --file alike (a TEXT's error
                # said `--prompt:`)
                raise UserError(f"{what}: characters the model never saw in training: {listed(unknown, 10)}; "
                                f"remove or replace them")
            if unknown:
                log.warning("%s: %d token(s) not in the vocabulary are read as <unk>: %s", what,
                            sum(unknown.values()), listed(unknown, 5))
            return tokens, vocab.encode(tokens)

        return encode

    def open_stream(self, predictor, condition: Optional[str] = None, **options):
        if options:  # as the base class refuses them (an lm stream's `temperature` was Python's raw TypeError)
            unknown = sorted(options)
            raise UserError(f"{', '.join(unknown)}: not {'an option' if len(unknown) == 1 else 'options'} of a task "
                            f"{self.name} stream; it takes condition", option=unknown[0])
        from grutool.data.vocab import Vocab
        from grutool.families.lm.generation import Stream

        start = None if is_stream(predictor.cfg) else Vocab.bos_id
        return Stream(predictor.model, self.encoder_for(predictor, "text"), self.condition_id(predictor, condition),
                      start, predictor.device)

    def served_labels(self, run) -> None:
        return None  # `labels` is the token vocabulary

    def served_vocabularies(self, run) -> dict[str, list[str]]:
        conditions = run.extra.get("conditions")
        return {"conditions": list(conditions.itos)} if conditions is not None else {}

    def read_inputs(self, cfg: Config, source: str, vocabs: Any = None) -> list[str]:
        """A csv/tsv/jsonl file's text column (a text_dir folder's lines), as training reads it. Its condition
        column is ignored, as other families ignore labels: `predict` takes one condition for all its texts."""
        from grutool.families.lm.data import read_lines

        data = cfg.data.model_copy(update={"condition_column": None})
        return read_lines(cfg.model_copy(update={"data": data}), source).texts

    def check_options(self, predictor, num: int = 1, max_length: Optional[int] = None, temperature: float = 1.0,
                      top_k: Optional[int] = None, top_p: Optional[float] = None, seed: int = 0,
                      condition: Optional[str] = None, score: bool = False, greedy: bool = False) -> None:
        from grutool.families.lm.generation import check_sampling

        check_sampling(temperature, top_k, top_p, num, max_length, seed, greedy, score)
        self.condition_id(predictor, condition)

    def predict(self, predictor, texts: list[str], batch_size: int = 64, num: int = 1,
                max_length: Optional[int] = None, temperature: float = 1.0, top_k: Optional[int] = None,
                top_p: Optional[float] = None, seed: int = 0, condition: Optional[str] = None,
                score: bool = False, greedy: bool = False) -> list[dict]:
        """Generation: `num` samples per prompt in `texts` (none: one empty prompt), in prompt order, each
        {prompt, condition, text (the prompt as read, lowercased with data.lowercase and word tokens re-spaced, then
        the continuation), logprob (of the continuation, temperature 1), finished (ended by <eos>)}. The same seed and num give the same samples. `score`: one dict per text with its
        tokens and each one's log-probability (line models: <eos> last), logprob and perplexity."""
        from grutool.data.tokenize import detokenize
        from grutool.families.lm.data import untokenize
        from grutool.data.vocab import Vocab
        from grutool.families.lm.generation import check_sampling, sample

        check_sampling(temperature, top_k, top_p, num, max_length, seed, greedy, score)
        cond = self.condition_id(predictor, condition)
        cfg, vocab, model = predictor.cfg, predictor.run.vocab, predictor.model
        stream = is_stream(cfg)
        results: list[dict] = []
        if score:
            if not texts:
                raise UserError("score: give the texts to score", option="score")
            for i, text in enumerate(texts):
                s = self.open_stream(predictor, condition)
                try:
                    r = s.feed(text)
                except UserError as e:  # name the text among the ones given (`text:` alone named none)
                    name = predictor.input_name(i, f"score: text {i + 1} of {len(texts)}")
                    raise UserError(f"{name} ({clipped(text, 40)!r}): {str(e).removeprefix('text: ')}",
                                    option=None if predictor.field else "score") from None
                tokens, logprobs = r["tokens"], r["logprobs"]
                if not stream:
                    tokens, logprobs = tokens + ["<eos>"], logprobs + [s.end()]
                known = [x for x in logprobs if x is not None]
                total = sum(known)
                results.append({"text": text, "condition": condition, "tokens": tokens,
                                "logprobs": [None if x is None else round(x, 6) for x in logprobs],
                                "logprob": round(total, 6),
                                "perplexity": round(math.exp(-total / max(len(known), 1)), 6)})
            return results
        encode = self.encoder_for(predictor, "prompt")
        tokenizer = cfg.data.tokenizer
        for i, prompt in enumerate(texts or [""]):
            try:
                tokens, ids = encode(prompt)
            except UserError as e:  # name the prompt among several (`prompt:` alone named none; serve: always,
                # as its entry of `texts`); they may come from --prompt, the arguments or --file, so no option is named
                if len(texts) < 2 and not predictor.field:
                    raise
                raise UserError(f"{predictor.input_name(i, f'prompt {i + 1} of {len(texts)}')} "
                                f"({clipped(prompt, 40)!r}): {str(e).removeprefix('prompt: ')}") from None
            if stream:
                # A stream model needs a token to read: an empty prompt starts after a line end.
                prefix = ids or [vocab.stoi.get("\n", Vocab.eos_id)]
            else:
                prefix = [Vocab.bos_id] + ids
            samples = sample(model, prefix, cond, num, max_length or DEFAULT_MAX_LENGTH, temperature=temperature,
                             top_k=top_k, top_p=top_p, greedy=greedy, seed=seed,
                             stop=None if stream else Vocab.eos_id, device=predictor.device,
                             # a character stream is its characters alone: <eos> is no line end there (a word
                             # stream's is), and the model only learnt it is never seen
                             never=(Vocab.eos_id,) if stream and tokenizer == "char" else ())
            for smp in samples:
                words = tokens + [vocab.itos[i] for i in smp.tokens]
                text = untokenize(words, tokenizer, stream) if stream else detokenize(words, tokenizer)
                results.append({"prompt": prompt, "condition": condition, "text": text,
                                "logprob": round(smp.logprob, 6), "finished": smp.finished})
        return results
