"""Classification (N -> 1): text and label columns (or numeric sequences: classifier/numeric.py) to encoded
splits, a classifier, metrics, predictions."""

from __future__ import annotations

import logging
import math
from collections import Counter
from typing import TYPE_CHECKING, Any, Optional

from grutool import jsonsafe
from grutool.errors import UserError, clipped, counted
from grutool.families.base import Prepared, Task, synthetic_vocabs
from grutool.families.classifier.labels import check_label_names, name_labels
from grutool.families.rules import (check_columns, check_numeric, check_one_path_per_split, encoder_stream_reason,
                                    is_numeric, unseen_gold)

if TYPE_CHECKING:
    from grutool.config import Config, DataConfig
    from grutool.data.batching import EncodedSplit
    from grutool.data.ragged import Tokenized
    from grutool.data.vocab import LabelVocab, Vocab

log = logging.getLogger("grutool")


def read_examples(cfg: DataConfig, source: str, need_labels: bool = True) -> tuple[list[str], Optional[list[str]]]:
    """Texts and string labels of one split, with every data problem as a UserError."""
    from grutool.data.loading import class_names, first_row_line, label_name, load_split, require_columns, split_where

    ds = load_split(cfg, source, ("text_column",))
    where = split_where(cfg, source)
    fields = {"text_column": cfg.text_column}
    if need_labels:
        fields["label_column"] = cfg.label_column
    require_columns(ds, where, fields)
    if len(ds) == 0:
        raise UserError(f"{where}: no examples")
    # `[:]` reads the column in one go; iterating a datasets>=4 Column formats row by row (~15 s a million).
    texts = ["" if t is None else str(t) for t in ds[cfg.text_column][:]]
    if not need_labels:
        return texts, None
    raw = ds[cfg.label_column][:]
    names = class_names(ds, cfg.label_column)
    if names is not None and cfg.label_names is None:  # a ClassLabel column: its names, not its ids (-1: hidden)
        raw = [label_name(v, names, f"{where} {first_row_line(cfg, source, i)}", cfg.label_column)
               for i, v in enumerate(raw)]
    nulls = [i for i, v in enumerate(raw) if v is None or (isinstance(v, float) and v != v)]
    if nulls:
        raise UserError(f"{where}: label column '{cfg.label_column}' is empty on {len(nulls)} row(s), "
                        f"first at {first_row_line(cfg, source, nulls[0])}; fill or remove those rows")
    nested = [i for i, v in enumerate(raw) if isinstance(v, (list, dict))]
    if nested:  # str() would make a class "['x']"
        raise UserError(f"{where}: label column '{cfg.label_column}' holds {jsonsafe.json_type(raw[nested[0]], article=True)} "
                        f"({clipped(jsonsafe.dumps(raw[nested[0]], default=repr), 60)}) at {first_row_line(cfg, source, nested[0])} "
                        f"({len(nested)} row(s)); a label is one string or number")
    # 1.0 from a float column and 1 from an int column are the same class.
    labels = [str(int(v)) if isinstance(v, float) and v.is_integer() else str(v) for v in raw]
    return texts, name_labels(cfg, labels)


class ClassifierTask(Task):
    name = "classifier"
    monitors = ("accuracy", "macro_f1", "loss")
    owns = {"data": ("dataset", "dataset_config", "label_names", "split_seed"),
            "model": ("input_noise", "input_offset_noise", "input_deltas", "pooling", "freeze_embeddings",
                      "embedding_init", "char_features", "char_embedding_dim", "char_hidden_size"),
            "train": ("lazy_embeddings", "label_smoothing")}
    formats = ("csv", "tsv", "json", "jsonl", "parquet")
    traces_real_examples = False  # token ids alone make a batch: random ids of any --lengths (char features aside)
    outputs = "classes"
    renderer = "classifier"
    exporter = "classifier"
    example = {"data": {"train": "data/sentiment/train.tsv", "validation": "data/sentiment/validation.tsv",
                        "test": "data/sentiment/test.tsv"}}
    inputs = {"numeric": {"data": {"train": "data/numeric/train.ts", "validation": "data/numeric/validation.ts",
                                   "test": "data/numeric/test.ts"},
                          "model": {"embedding_dim": 16, "hidden_size": 16, "pooling": "mean"}}}

    # --- config -------------------------------------------------------------------------------

    def check_task(self, cfg: Config) -> None:
        check_numeric(cfg)  # numeric settings on text, text settings on numbers
        if is_numeric(cfg):
            check_one_path_per_split(cfg)
            return
        check_columns(cfg, ("text_column", "label_column"))
        fmt = cfg.data.format
        if fmt in ("parallel_text", "cmudict"):
            raise ValueError(f"data.format: '{fmt}' is sequence-to-sequence data; set task: seq2seq")
        if fmt in ("conllu", "conll", "parallel"):
            raise ValueError(f"data.format: '{fmt}' is tagging data; set task: tagger or joint")
        if fmt == "ts":
            raise ValueError("data.format: 'ts' is numeric sequences; remove data.format or point data.train "
                             "at a .ts file")
        if fmt in ("text", "text_dir"):
            raise ValueError(f"data.format: '{fmt}' is language-model data; set task: lm")
        check_one_path_per_split(cfg)

    # --- data ---------------------------------------------------------------------------------

    def tokenizer(self, cfg: Config):
        from grutool.data.tokenize import get_tokenizer

        return get_tokenizer(cfg.data.tokenizer, cfg.data.lowercase)

    def tokenized(self, cfg: Config, texts: list[str], name: str) -> Tokenized:
        """The texts tokenized and truncated to data.max_length, with a counted warning naming split `name`
        (train, validation, test, infer) when any was longer: the model reads only their first tokens."""
        from grutool.data.ragged import Tokenized

        limit = cfg.data.max_length
        tokens = Tokenized.of(texts, self.tokenizer(cfg), limit)
        if tokens.cut:
            one = len(tokens.cut) == 1
            what = "input" if name == "infer" else "example"
            at = f"{what} {tokens.cut[0] + 1}" if one else f"the first is {what} {tokens.cut[0] + 1}"
            fix = "set data.max_length higher, or null" if name == "train" else \
                "train with data.max_length higher, or null,"
            log.warning("%s: %s %s longer than data.max_length=%d tokens: the model reads %s first %d (%s); %s to "
                        "read whole texts", name, counted(len(tokens.cut), "text"), "is" if one else "are", limit,
                        "its" if one else "their", limit, at, fix)
        return tokens

    def encode(self, cfg: Config, vocab: Vocab, labels: LabelVocab, texts: list[str],
               gold: Optional[list[str]], extra: Optional[list[str]] = None,
               chars: Optional[Vocab] = None, tokens: Optional[Tokenized] = None, name: str = "infer") -> EncodedSplit:
        """Token ids per text (and, with `chars`, the char ids of each token as tokenized);
        unseen gold labels get ids after the model's classes (see metrics). `tokens`: the texts
        already tokenized (prepare tokenizes train once for the vocabulary and the ids); `name`: the split, for
        the truncation warning."""
        import torch

        if tokens is None:
            tokens = self.tokenized(cfg, texts, name)
        split = self.encode_tokens(cfg, vocab, tokens, chars, texts)
        targets = None
        names = list(labels.itos) + [e for e in extra or [] if e not in labels.stoi]
        if gold is not None:
            index = {name: i for i, name in enumerate(names)}
            targets = torch.tensor([index[g] for g in gold], dtype=torch.long)  # (N,): targets[i] is example i's
        split.targets, split.label_names = targets, names
        return split

    def encode_tokens(self, cfg: Config, vocab: Vocab, tokens: Tokenized, chars: Optional[Vocab] = None,
                      texts: Optional[list[str]] = None) -> EncodedSplit:
        """Token ids (and char ids with `chars`) of tokenized texts, unlabelled."""
        from grutool.data.batching import EncodedSplit

        rows = range(len(tokens))
        split = EncodedSplit(tokens.ids(vocab.stoi, vocab.unk_id), None,
                             texts if texts is not None else [" ".join(tokens.tokens(i)) for i in rows])
        if chars is not None:
            width = cfg.data.max_word_length
            split.chars = [chars.encode_chars(tokens.tokens(i), width) for i in rows]  # each (T_i, W_i)
        return split

    def train_file(self, cfg: Config) -> Optional[str]:
        if is_numeric(cfg):
            from grutool.data.slices import split_slice

            return split_slice(cfg.data.train)[0]
        return super().train_file(cfg)

    def traces_real(self, cfg: Config) -> bool:
        return is_numeric(cfg) or super().traces_real(cfg)

    def prepare(self, cfg: Config, saved: Any = None) -> Prepared:
        if is_numeric(cfg):
            from grutool.families.classifier import numeric

            prepared = numeric.prepare(cfg, saved)
            self.encode_evaluation_splits(cfg, prepared)
            return prepared
        from grutool.data.vocab import LabelVocab, Vocab, char_counts

        d = cfg.data
        texts, gold = read_examples(d, d.train)
        check_label_names(d, gold)
        tokens = self.tokenized(cfg, texts, "train")
        keep, nonempty = tokens.nonempty()
        empty = len(tokens) - len(keep)
        if empty == len(tokens):
            raise UserError(f"{d.train}: every text is empty after tokenization "
                            f"(data.text_column '{d.text_column}', data.tokenizer '{d.tokenizer}')")
        if empty:
            # An empty text carries no evidence for its label; training on it would teach the bias only.
            log.warning("train: %d example(s) are empty after tokenization and are skipped", empty)
            texts, gold, tokens = [texts[i] for i in keep], [gold[i] for i in keep], nonempty
        counts = tokens.counts()
        vocab = saved.vocab if saved else Vocab.from_counts(counts, d.min_freq, d.max_size)
        labels = saved.labels if saved else LabelVocab.build(gold)
        if len(labels) < 2:
            raise UserError(f"{d.train}: only one label ({labels.itos[0]!r}) in column '{d.label_column}'; "
                            f"a classifier needs at least two")
        chars = None
        if cfg.model.char_features:
            chars = saved.extra.get("chars") if saved else Vocab.from_counts(char_counts(counts, d.max_word_length))
        prepared = Prepared(vocab, labels, extra={"chars": chars})
        prepared.splits["train"] = self.encode(cfg, vocab, labels, texts, gold,
                                               sorted(set(gold) - set(labels.stoi)), chars, tokens)
        self.encode_evaluation_splits(cfg, prepared)
        return prepared

    def encode_split(self, cfg: Config, vocabs: Any, source: str, name: str) -> EncodedSplit:
        """A labelled evaluation split; labels the model never saw are reported, then scored as errors."""
        if is_numeric(cfg):
            from grutool.families.classifier import numeric

            return numeric.encode_split(cfg, vocabs, source, name)
        labels = vocabs.labels
        texts, gold = read_examples(cfg.data, source)
        unseen = unseen_gold(source, name, Counter(gold), labels)
        return self.encode(cfg, vocabs.vocab, labels, texts, gold, extra=sorted(unseen),
                           chars=vocabs.extra.get("chars"), name=name)

    def vocabularies(self, cfg: Config) -> dict[str, tuple[str, type]]:
        from grutool.data.vocab import LabelVocab, Vocab

        files = {"labels": ("labels.json", LabelVocab)}
        if is_numeric(cfg):
            from grutool.data.scaling import Standardizer

            files["scaler"] = ("scaler.json", Standardizer)
        if cfg.model.char_features:
            files["chars"] = ("chars.json", Vocab)
        return files

    def synthetic(self, cfg: Config, lengths: list[int], vocab_size: int, num_classes: int, generator,
                  num_chars: int = 0) -> tuple[Prepared, EncodedSplit]:
        """Random token ids (never <pad>) and one random label per example; with `num_chars`, each
        token's made-up spelling (see grutool.data.synthetic.spell)."""
        import torch

        from grutool.data.batching import EncodedSplit

        if is_numeric(cfg):
            from grutool.families.classifier import numeric

            return numeric.synthetic(cfg, lengths, num_classes, generator)
        vocabs = synthetic_vocabs(vocab_size, num_classes, num_chars)
        ids = [torch.randint(min(2, vocab_size - 1), vocab_size, (int(n),), generator=generator) for n in lengths]
        targets = list(torch.randint(0, num_classes, (len(lengths),), generator=generator))
        split = EncodedSplit(ids, targets, [""] * len(lengths))
        if num_chars:
            from grutool.data.synthetic import spell

            split.chars = [spell(x, num_chars) for x in ids]
        return vocabs, split

    # --- model --------------------------------------------------------------------------------

    def figures_note(self, cfg: Config, prepared: Prepared) -> Optional[str]:
        # With train.label_smoothing the training loss has a floor above 0 (the smoothed target's entropy) and
        # sits far above `val loss`, which is the plain negative log-likelihood: said once, with the floor.
        e, classes = cfg.train.label_smoothing, len(prepared.labels)
        if not e or classes < 2:
            return None
        target = [1 - e + e / classes] + [e / classes] * (classes - 1)  # the smoothed target of one example
        floor = -sum(p * math.log(p) for p in target)
        unsmoothed = "; val loss without it" if "validation" in prepared.splits else ""
        return f"train loss with label smoothing {e:g}: at best {floor:.4f} ({classes} classes){unsmoothed}"

    def build_model(self, cfg: Config, vocabs: Any):
        from grutool.families.classifier.model import Classifier

        return Classifier.from_config(cfg, vocab_size=len(vocabs.vocab), num_outputs=len(vocabs.labels),
                                      num_chars=len(vocabs.extra["chars"]) if "chars" in vocabs.extra else 0,
                                      channels=len(vocabs.extra["scaler"]) if "scaler" in vocabs.extra else 0)

    def metrics(self, split: EncodedSplit):
        from grutool.families.classifier.metrics import ClassificationMetrics

        return ClassificationMetrics(split.label_names)

    def finish_evaluation(self, out: dict, vocabs: Any) -> dict:
        from grutool.metrics.confusion import unseen_rows

        out["unseen_labels"] = unseen_rows(out["confusion"], len(vocabs.labels))
        return out

    # --- prediction ---------------------------------------------------------------------------

    def infer_batch(self, model, batch, **options):
        import torch

        logits, _ = model(batch.ids, batch.lengths, **batch.extra_inputs())
        return torch.softmax(logits.float(), dim=-1).cpu()  # (B, C)

    def read_inputs(self, cfg: Config, source: str, vocabs: Any = None) -> list[str]:
        if is_numeric(cfg):
            from grutool.families.classifier import numeric

            return numeric.read_inputs(cfg, source, vocabs)
        return read_examples(cfg.data, source, need_labels=False)[0]

    def check_inputs(self, predictor, texts: list[str]) -> None:
        if is_numeric(predictor.cfg):
            from grutool.families.classifier import numeric

            numeric.parse(predictor, texts)

    def predict(self, predictor, texts: list[str], batch_size: int = 64, **options) -> list[dict]:
        """One dict per text, in input order: text, label, probs (label -> probability).

        An empty text (nothing left after tokenization) is encoded as an empty
        sequence: the encoder gives it a zero state, so its prediction is the
        head's prior (its bias), the same every time.
        """
        if is_numeric(predictor.cfg):
            from grutool.families.classifier import numeric

            return numeric.predict(self, predictor, texts, batch_size)
        run = predictor.run
        tokens = self.tokenized(predictor.cfg, texts, "infer")
        split = self.encode(predictor.cfg, run.vocab, run.labels, texts, None, chars=run.extra.get("chars"),
                            tokens=tokens)
        heads = [{"text": t} for t in texts]
        for i in tokens.cut:  # said in each answer too: a server's client never sees the log's warning
            heads[i]["truncated_to"] = predictor.cfg.data.max_length
        return self.labelled(predictor, split, heads, batch_size)

    def labelled(self, predictor, split: EncodedSplit, heads: list[dict], batch_size: int) -> list[dict]:
        """Each example of `split` as its `heads` entry (what names the input: text, or a sequence's id) with
        its label and probs (label -> probability), in input order; text and numeric inputs alike."""
        import torch

        from grutool.data.batching import sorted_batches

        labels = predictor.run.labels.itos
        results = [dict(head) for head in heads]
        with torch.no_grad():
            for batch in sorted_batches(split, batch_size):
                probs = self.infer_batch(predictor.model, batch.to(predictor.device))
                for row, i in zip(probs, batch.index):
                    results[i].update(label=labels[int(row.argmax())],
                                      probs={name: round(float(p), 6) for name, p in zip(labels, row)})
        return results


    # --- streaming ----------------------------------------------------------------------------

    def stream_reason(self, cfg: Config) -> Optional[str]:
        """Every reason at once, so one retraining settles them all."""
        if is_numeric(cfg):
            return "numeric sequences are read whole (streaming reads text chunks)"
        reasons = [encoder_stream_reason(cfg)]
        if cfg.model.pooling != "last":
            reasons.append(f"model.pooling {cfg.model.pooling} reads every step's output; only the final state is "
                           f"carried from chunk to chunk (train with model.pooling: last)")
        return "; ".join(r for r in reasons if r) or None

    def stream_encode(self, predictor, text: str) -> EncodedSplit:
        run = predictor.run
        from grutool.data.ragged import Tokenized

        tokens = Tokenized.of([text], self.tokenizer(predictor.cfg))
        return self.encode_tokens(predictor.cfg, run.vocab, tokens, run.extra.get("chars"))

    def stream_render(self, predictor, text: str, chunk: str, outputs: tuple) -> dict:
        labels = predictor.run.labels.itos
        probs = torch_softmax(outputs[0])[0]
        k = int(probs.argmax())
        return {"text": text, "label": labels[k], "probs": {n: round(float(p), 6) for n, p in zip(labels, probs)}}


def torch_softmax(logits):
    import torch

    return torch.softmax(logits.float(), dim=-1).cpu()
