"""Sequence to sequence (N -> M): source/target pairs to encoded splits, metrics, generated outputs."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Optional

import torch

from grutool.config import Config, is_dictionary
from grutool.data.batching import EncodedSplit, References, sorted_batches
from grutool.data.parallel import Pair, read_pairs
from grutool.data.tokenize import detokenize, get_tokenizer
from grutool.data.vocab import TARGET_SPECIALS, Vocab
from grutool.errors import UserError, listed
from grutool.metrics_seq2seq import Seq2SeqMetrics
from grutool.tasks.classifier import Prepared

log = logging.getLogger("grutool")


@dataclass
class Seq2SeqPrepared(Prepared):
    """`vocab` is the source vocabulary, `labels` the target one (the same object with data.shared_vocab)."""


class Seq2SeqTask:
    name = "seq2seq"

    # --- text -> tokens ------------------------------------------------------------------------

    def source_tokenizer(self, cfg: Config):
        return get_tokenizer(cfg.data.tokenizer, cfg.data.lowercase)

    def target_tokenizer_name(self, cfg: Config) -> str:
        return cfg.data.target_tokenizer or cfg.data.tokenizer

    def target_lowercase(self, cfg: Config) -> bool:
        d = cfg.data
        return d.lowercase if d.target_lowercase is None else d.target_lowercase

    def target_tokenizer(self, cfg: Config):
        return get_tokenizer(self.target_tokenizer_name(cfg), self.target_lowercase(cfg))

    def source_tokens(self, cfg: Config, texts: list[str], name: str, where: Optional[list[str]] = None) -> list[list[str]]:
        """Source tokens, truncated to data.max_length with a counted warning."""
        tokens = [self.source_tokenizer(cfg)(t) for t in texts]
        limit = cfg.data.max_length
        if limit is not None:
            long = [i for i, t in enumerate(tokens) if len(t) > limit]
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
        pairs = read_pairs(cfg.data, spec, name)
        sources = self.source_tokens(cfg, [p.source for p in pairs], name, [p.where for p in pairs])
        targets = [self.target_tokenizer(cfg)(p.target) for p in pairs]
        return pairs, sources, targets

    def prepare(self, cfg: Config, vocab: Optional[Vocab] = None, labels: Optional[Vocab] = None) -> Seq2SeqPrepared:
        """Read every configured split, build vocabularies on train (unless given), encode all."""
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
        if vocab is None:
            if d.shared_vocab:
                vocab = labels = Vocab.build(sources + targets, d.min_freq, d.max_size, specials=TARGET_SPECIALS)
            else:
                vocab = Vocab.build(sources, d.min_freq, d.max_size)
                labels = Vocab.build(targets, d.min_freq, d.max_size, specials=TARGET_SPECIALS)
        splits = {"train": self.encode(cfg, vocab, labels, sources, targets, [p.source for p in pairs], "train")}
        for name in ("validation", "test"):
            spec = getattr(d, name)
            if spec is not None:
                splits[name] = self.encode_split(cfg, vocab, labels, spec, name)
        return Seq2SeqPrepared(vocab, labels, splits)

    def encode_split(self, cfg: Config, vocab: Vocab, labels: Vocab, spec, name: str, **_) -> EncodedSplit:
        """A scored split: whole targets (never truncated) as references; dictionaries group each word's pairs."""
        pairs, sources, targets = self.read(cfg, spec, name)
        groups = None
        if is_dictionary(cfg.data):
            first: dict[tuple, int] = {}
            groups = [first.setdefault(tuple(s), i) for i, s in enumerate(sources)]
        lower = self.target_lowercase(cfg)
        refs = References(targets, [p.target.lower() if lower else p.target for p in pairs],
                          self.target_tokenizer_name(cfg), groups)
        return self.encode(cfg, vocab, labels, sources, targets, [p.source for p in pairs], name, refs)

    def metrics(self, split: EncodedSplit) -> Seq2SeqMetrics:
        return Seq2SeqMetrics(split.label_names, split.references, split.texts)

    # --- prediction --------------------------------------------------------------------------

    @torch.no_grad()
    def predict(self, predictor, texts: list[str], batch_size: int = 64, beam: Optional[int] = None,
                attention: bool = False) -> list[dict]:
        """One dict per text, in input order: source, output, score (the output's log-probability) and, with
        `attention`, the source and output tokens (<eos> last) with the weights, one row per output token."""
        from grutool.decoding import generate

        if beam is not None and beam < 1:
            raise UserError(f"--beam: must be at least 1 (got {beam})")
        cfg, run, model = predictor.cfg, predictor.run, predictor.model
        if attention and model.attention is None:
            raise UserError(f"{run.path}: this model has no attention (model.attention: none); "
                            f"there are no weights to show")
        sources = self.source_tokens(cfg, texts, "input")
        split = self.encode(cfg, run.vocab, run.labels, sources, texts=texts)
        settings = dict(cfg.decoding.model_dump(), with_attention=attention)
        if beam is not None:
            settings["beam_size"] = beam
        names, tokenizer = run.labels.itos, self.target_tokenizer_name(cfg)
        results: list[dict] = [{} for _ in texts]
        for batch in sorted_batches(split, batch_size):
            memory, state = model.encode(batch.ids.to(predictor.device), batch.lengths)
            out = generate(model, memory, state, batch.lengths, **settings)
            for row, i in enumerate(batch.index):
                tokens = [names[j] for j in out.tokens[row]]
                r = {"source": texts[i], "output": detokenize(tokens, tokenizer), "score": round(out.scores[row], 6)}
                if attention:
                    r["attention"] = {"source_tokens": sources[i],
                                      "output_tokens": tokens + (["<eos>"] if out.finished[row] else []),
                                      "weights": [[round(float(w), 5) for w in line] for line in out.attention[row]]}
                results[i] = r
        return results
