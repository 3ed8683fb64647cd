"""Sequence tagging (N -> N) and joint intent + tags: sentences to encoded splits, a tagger, metrics, predictions."""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING, Any, Optional

from grutool.errors import UserError, listed
from grutool.families.base import Prepared, Task, synthetic_vocabs
from grutool.families.rules import (NUMERIC_SETTINGS, check_numeric, check_one_path_per_split,
                                    encoder_stream_reason, is_numeric, numeric_by, unseen_gold)

if TYPE_CHECKING:
    from grutool.config import Config
    from grutool.data.batching import EncodedSplit
    from grutool.families.tagger.data import Sentence
    from grutool.data.vocab import LabelVocab, Vocab

log = logging.getLogger("grutool")

FORMATS = ("conllu", "conll", "parallel", "jsonl")


class TaggerTask(Task):
    """One tag per token on the encoder's per-step outputs; `JointTask` adds an intent per sentence."""
    scored = {**Task.scored,
              "data.scheme": "how tag spans are scored"}

    name = "tagger"
    joint = False
    monitors = ("token_accuracy", "span_f1", "sentence_accuracy", "loss")
    txt_format = "conll"
    owns = {"data": ("dataset", "dataset_config", "split_seed", "tag_column", "scheme", "convert_to"),
            "model": ("input_noise", "input_offset_noise", "input_deltas", "crf", "char_features",
                      "char_embedding_dim", "char_hidden_size", "freeze_embeddings", "embedding_init"),
            "train": ("lazy_embeddings", "label_smoothing")}
    renderer = "tagger"
    exporter = "tagger"
    outputs = "tags"
    folder_format = "parallel"  # seq.in, seq.out (and label) in one folder
    data_extensions = (".bio", ".iob")  # CoNLL files, as training reads them (a .txt is read as lines by infer)
    example = {"data": {"train": "data/tagging/ner/train.conll", "validation": "data/tagging/ner/validation.conll",
                        "test": "data/tagging/ner/test.conll", "scheme": "iob2"}}
    # N -> N on numbers: the toy traces' rising/falling phase at every step (a label per row of the long csv).
    inputs = {"numeric": {"data": {"train": "data/numeric/train.csv", "validation": "data/numeric/validation.csv",
                                   "test": "data/numeric/test.csv", "channels": ["a", "b"], "id_column": "id",
                                   "time_column": "step", "label_column": "phase"},
                          "model": {"embedding_dim": 16, "hidden_size": 16}}}

    # --- config ------------------------------------------------------------------------

    def check_task(self, cfg: Config) -> None:
        # The tagger's (and joint's) rule: another family's monitor check says what that family reports (a
        # classifier, told to set data.scheme or monitor token_accuracy, refused both).
        if cfg.train.monitor == "span_f1" and cfg.data.scheme == "plain":
            raise ValueError("train.monitor: 'span_f1' needs spans, but data.scheme is 'plain'; "
                             "set data.scheme (iob1, iob2, bioes) or monitor token_accuracy")
        if self.joint and is_numeric(cfg):  # said first: the text settings a joint config keeps are not the fault
            raise ValueError(f"{numeric_by(cfg)[0]}: task joint reads text; numeric sequences are read by tasks classifier, "
                             f"tagger and regressor: remove it, or change the task")
        check_numeric(cfg)  # numeric settings on text, text settings on numbers
        if cfg.train.label_smoothing and cfg.model.crf and not self.joint:
            raise ValueError("train.label_smoothing: a CRF's loss scores whole tag paths, so there is nothing to "
                             "smooth (it smooths the softmax tag loss, crf: false, and a joint model's intent loss); "
                             "remove one of the two")
        if is_numeric(cfg):
            check_one_path_per_split(cfg)
            return
        fmt = cfg.data.format
        if fmt in ("parallel_text", "cmudict"):
            raise ValueError(f"data.format: '{fmt}' is sequence-to-sequence data; set task: seq2seq")
        if fmt in ("text", "text_dir"):
            raise ValueError(f"data.format: '{fmt}' is language-model data; set task: lm")
        if fmt not in FORMATS + ("auto",):
            raise ValueError(f"data.format: '{fmt}' is classifier data; task {self.name} reads {', '.join(FORMATS)}")
        if cfg.data.dataset is not None:
            if fmt != "auto":
                raise ValueError(f"data.format: a Hub dataset (data.dataset) is read by its columns, not as "
                                 f"'{fmt}' files; remove data.format")
            if cfg.data.tag_column is not None and not isinstance(cfg.data.tag_column, str):
                raise ValueError(f"data.tag_column: a Hub dataset's tags are a column, named by a string "
                                 f"(got {cfg.data.tag_column!r})")
        check_one_path_per_split(cfg)

    def figures_note(self, cfg: Config, prepared: Any) -> Optional[str]:
        # The training loss is smoothed (train.label_smoothing) and `val loss` is not: said once, as the
        # classifier says it.
        if not cfg.train.label_smoothing:
            return None
        smoothed = [part for part, on in (("tag", not cfg.model.crf), ("intent", self.joint)) if on]
        unsmoothed = "; val loss without it" if "validation" in prepared.splits else ""
        return (f"train loss with label smoothing {cfg.train.label_smoothing:g} on the "
                f"{' and '.join(smoothed)} loss{'es' if len(smoothed) > 1 else ''}{unsmoothed}")

    # --- reading ---------------------------------------------------------------------

    def train_file(self, cfg: Config) -> Optional[str]:
        if is_numeric(cfg):
            from grutool.data.slices import split_slice

            return split_slice(cfg.data.train)[0]
        return super().train_file(cfg)

    def read_inputs(self, cfg: Config, source: str, vocabs: Any = None) -> list[str]:
        if is_numeric(cfg):
            from grutool.families.tagger import numeric

            return numeric.read_inputs(cfg, source, vocabs)
        from grutool.families.tagger.data import Tokens, read_sentences

        # The tokens as the file splits them: `predict` tags these, it does not split the text again. Tags and
        # intents in the file are not read (a file of tokens only, tokenizer output, is what infer is given).
        return [Tokens(s.tokens) for s in read_sentences(cfg.data, source, need_tags=False)]

    def read(self, cfg: Config, source: str, name: str) -> list[Sentence]:
        """A labelled split with tags in the model's scheme."""
        from grutool.families.tagger.data import read_sentences, to_model_scheme

        return to_model_scheme(read_sentences(cfg.data, source, need_intents=self.joint), cfg.data, name)

    def model_scheme(self, cfg: Config) -> str:
        return cfg.data.convert_to or cfg.data.scheme

    # --- encoding --------------------------------------------------------------------

    def encode(self, cfg: Config, vocab: Vocab, tokens: list[list[str]], labels: Optional[LabelVocab] = None,
               tags: Optional[list[list[str]]] = None, intents: Optional[LabelVocab] = None,
               gold_intents: Optional[list[str]] = None, chars: Optional[Vocab] = None) -> EncodedSplit:
        """Ids (lower-cased when data.lowercase), chars (original case) and, when given, target ids.

        Gold tags and intents the model never saw get ids after the model's own (see metrics).
        """
        import torch

        from grutool.data.batching import EncodedSplit

        lower = cfg.data.lowercase
        ids = [torch.tensor(vocab.encode([t.lower() for t in s] if lower else s), dtype=torch.long) for s in tokens]
        split = EncodedSplit(ids, None, [" ".join(s) for s in tokens], scheme=self.model_scheme(cfg))
        if chars is not None:
            split.chars = [chars.encode_chars(s, cfg.data.max_word_length) for s in tokens]  # each (T_i, W_i)
        if tags is not None:
            names = list(labels.itos) + sorted({t for s in tags for t in s} - set(labels.stoi))
            index = {n: i for i, n in enumerate(names)}
            split.targets = [torch.tensor([index[t] for t in s], dtype=torch.long) for s in tags]
            split.label_names = names
        if gold_intents is not None:
            names = list(intents.itos) + sorted(set(gold_intents) - set(intents.stoi))
            index = {n: i for i, n in enumerate(names)}
            split.intents = [torch.tensor(index[g]) for g in gold_intents]
            split.intent_names = names
        return split

    def prepare(self, cfg: Config, saved: Any = None) -> Prepared:
        if is_numeric(cfg):
            from grutool.families.tagger import numeric

            prepared = numeric.prepare(self, cfg, saved)
            self.encode_evaluation_splits(cfg, prepared)
            return prepared
        from grutool.families.tagger.data import Sentence
        from grutool.data.vocab import LabelVocab, Vocab

        d = cfg.data
        sentences = self.read(cfg, d.train, "train")
        empty = [s for s in sentences if not s.tokens]
        if len(empty) == len(sentences):
            raise UserError(f"{d.train}: every sentence is empty (no tokens)")
        if empty:
            # An empty sentence has no tags to learn from (and for joint, no words behind its intent).
            log.warning("train: %d empty sentence(s) (no tokens) are skipped, first at %s", len(empty), empty[0].where)
            sentences = [s for s in sentences if s.tokens]
        if d.max_length is not None:
            long = sum(1 for s in sentences if len(s.tokens) > d.max_length)
            if long:
                log.info("train: %d sentence(s) longer than data.max_length=%d are truncated", long, d.max_length)
                sentences = [Sentence(s.tokens[:d.max_length], s.tags[:d.max_length], s.intent, s.where)
                             for s in sentences]
        tokens = [s.tokens for s in sentences]
        tags = [s.tags for s in sentences]
        vocab = saved.vocab if saved else Vocab.build([[t.lower() for t in s] if d.lowercase else s for s in tokens],
                                                      d.min_freq, d.max_size)
        labels = saved.labels if saved else LabelVocab.build(t for s in tags for t in s)
        if len(labels) < 2:
            raise UserError(f"{d.train}: only one tag ({labels.itos[0]!r}); a tagger needs at least two")
        gold_intents = intents = None
        if self.joint:
            gold_intents = [s.intent for s in sentences]
            intents = saved.extra.get("intents") if saved else LabelVocab.build(gold_intents)
        chars = None
        if cfg.model.char_features:
            chars = saved.extra.get("chars") if saved else Vocab.build([list(t[:d.max_word_length]) for s in tokens for t in s])
        prepared = Prepared(vocab, labels, extra={"chars": chars, "intents": intents})
        prepared.splits["train"] = self.encode(cfg, vocab, tokens, labels, tags, intents, gold_intents, chars)
        self.encode_evaluation_splits(cfg, prepared)
        return prepared

    def encode_split(self, cfg: Config, vocabs: Any, source: str, name: str) -> EncodedSplit:
        """A labelled evaluation split; tags and intents the model never saw are reported, then scored as errors.

        Empty sentences are kept: they have no tags to score, and the joint model still
        predicts their intent (from an all-zero encoder state).
        """
        if is_numeric(cfg):
            from grutool.families.tagger import numeric

            return numeric.encode_split(self, cfg, vocabs, source, name)
        labels, intents = vocabs.labels, vocabs.extra.get("intents")
        sentences = self.read(cfg, source, name)
        tags = [s.tags for s in sentences]
        unseen_gold(source, name, Counter(t for s in tags for t in s), labels, kind="tags",
                    unit="token(s)", column="data.tag_column", limit=10)
        gold_intents = None
        if self.joint:
            gold_intents = [s.intent for s in sentences]
            unseen_intents = Counter(g for g in gold_intents if g not in intents.stoi)
            if len(unseen_intents) and sum(unseen_intents.values()) == len(gold_intents):
                raise UserError(f"{source}: none of its intents {sorted(unseen_intents)[:10]} were seen in training "
                                f"(model intents: {intents.itos[:10]}); is this the right dataset?")
            if unseen_intents:
                log.warning("%s: %d sentence(s) have intents never seen in training, counted as errors: %s",
                            name, sum(unseen_intents.values()), listed(unseen_intents, 10))
        return self.encode(cfg, vocabs.vocab, [s.tokens for s in sentences], labels, tags, intents, gold_intents,
                           vocabs.extra.get("chars"))

    def vocabularies(self, cfg: Config) -> dict[str, tuple[str, type]]:
        from grutool.data.vocab import LabelVocab, Vocab

        files = {"labels": ("labels.json", LabelVocab)}
        if is_numeric(cfg):
            from grutool.data.scaling import Standardizer

            files["scaler"] = ("scaler.json", Standardizer)
        if self.joint:
            files["intents"] = ("intents.json", LabelVocab)
        if cfg.model.char_features:
            files["chars"] = ("chars.json", Vocab)
        return files

    def synthetic_sizes(self, cfg: Config, prepared: Prepared) -> dict[str, int]:
        """joint: the intents too, which `synthetic` would otherwise count as many as the tags."""
        sizes = super().synthetic_sizes(cfg, prepared)
        if self.joint:
            sizes["num_intents"] = len(prepared.extra["intents"])
        return sizes

    def synthetic(self, cfg: Config, lengths: list[int], vocab_size: int, num_classes: int, generator,
                  num_chars: int = 0, num_intents: Optional[int] = None) -> tuple[Prepared, EncodedSplit]:
        """Random token ids and a random tag per token (joint: and an intent per sentence, `num_intents` of them,
        by default num_classes)."""
        import torch

        from grutool.data.batching import EncodedSplit

        num_intents = (num_intents or num_classes) if self.joint else 0
        vocabs = synthetic_vocabs(vocab_size, num_classes, num_chars, num_intents)
        if is_numeric(cfg):  # standard-normal values per step instead of token ids
            from grutool.data.numeric import synthetic

            vocabs.extra["scaler"], ids = synthetic(cfg.data, lengths, generator)
        else:
            ids = [torch.randint(min(2, vocab_size - 1), vocab_size, (int(n),), generator=generator) for n in lengths]
        targets = [torch.randint(0, num_classes, (int(n),), generator=generator) for n in lengths]
        split = EncodedSplit(ids, targets, [""] * len(lengths), scheme=self.model_scheme(cfg))
        if self.joint:
            split.intents = list(torch.randint(0, num_intents, (len(lengths),), generator=generator))
        if num_chars:
            from grutool.data.synthetic import spell

            split.chars = [spell(x, num_chars) for x in ids]
        return vocabs, split

    # --- model -----------------------------------------------------------------------

    def build_model(self, cfg: Config, vocabs: Any):
        from grutool.families.tagger import schemes
        from grutool.families.tagger.model import Tagger

        constraints = None
        if cfg.model.crf:
            constraints = schemes.allowed_transitions(list(vocabs.labels.itos), self.model_scheme(cfg))
        return Tagger.from_config(cfg, vocab_size=len(vocabs.vocab), num_outputs=len(vocabs.labels),
                                  num_chars=len(vocabs.extra["chars"]) if "chars" in vocabs.extra else 0,
                                  num_intents=len(vocabs.extra["intents"]) if self.joint else 0, constraints=constraints,
                                  channels=len(vocabs.extra["scaler"]) if "scaler" in vocabs.extra else 0)

    def metrics(self, split: EncodedSplit):
        from grutool.families.tagger.metrics import TaggingMetrics

        return TaggingMetrics(split.label_names, split.scheme, split.intent_names if self.joint else None)

    def finish_evaluation(self, out: dict, vocabs: Any) -> dict:
        from grutool.metrics.confusion import unseen_rows

        out["unseen_labels"] = unseen_rows(out["confusion"], len(vocabs.labels))
        if self.joint:
            out["unseen_intents"] = unseen_rows(out["intent_confusion"], len(vocabs.extra["intents"]))
        return self.label_figures(vocabs.config, out)

    def nouns(self, cfg: Config) -> dict[str, str]:
        """Numeric sequences have steps and are sequences: `step_accuracy`, `45 sequences, 535 steps`."""
        return {"token": "step", "sentence": "sequence"} if is_numeric(cfg) else {}

    def label_figures(self, cfg: Config, figures: dict) -> dict:
        """`units`, what `n` and `tokens` count (and so the accuracies' names), where they are not sentences and
        tokens: the renderer reads them from the figures it is given."""
        nouns = self.nouns(cfg)
        if nouns:
            figures["units"] = {"n": nouns["sentence"], "tokens": nouns["token"]}
        return figures

    # --- prediction ------------------------------------------------------------------

    def infer_batch(self, model, batch, **options):
        """Decoded tags (B, T) and, for the joint model, intent probabilities (B, K), on the CPU."""
        import torch

        out, _ = model(batch.ids, batch.lengths, **batch.extra_inputs())
        probs = torch.softmax(out.intent.float(), -1).cpu() if out.intent is not None else None  # (B, K)
        return out.tags.cpu(), probs

    def predict(self, predictor, texts: list[str], batch_size: int = 64, **options) -> list[dict]:
        """One dict per text, in input order: text, tokens, tags, spans (type, start, end exclusive, text;
        span schemes only: a plain scheme's dicts have no spans key), and for the joint model intent and intent_prob.

        Texts are split by data.tokenizer, keeping their case (data.lowercase applies to
        the word lookup only). An empty text gets no tags; the joint model still gives
        its intent prior.
        """
        import torch

        from grutool.families.tagger import schemes
        from grutool.data.batching import sorted_batches
        from grutool.data.tokenize import get_tokenizer

        if is_numeric(predictor.cfg):
            from grutool.families.tagger import numeric

            return numeric.predict(self, predictor, texts, batch_size)
        cfg, run = predictor.cfg, predictor.run
        split_words = get_tokenizer(cfg.data.tokenizer, lowercase=False)
        from grutool.families.tagger.data import Tokens

        tokens = [list(t.tokens) if isinstance(t, Tokens) else split_words(t) for t in texts]  # a file's: as split
        split = self.encode(cfg, run.vocab, tokens, chars=run.extra.get("chars"))
        tag_names = run.labels.itos
        with_spans = schemes.has_spans(split.scheme)
        results: list[dict] = [{} for _ in texts]
        for batch in sorted_batches(split, batch_size):
            with torch.no_grad():
                tags, probs = self.infer_batch(predictor.model, batch.to(predictor.device))  # (B, T), (B, K)
            for row, i in enumerate(batch.index):
                words = tokens[i]
                predicted = [tag_names[j] for j in tags[row, :len(words)].tolist()]
                r = {"text": texts[i], "tokens": words, "tags": predicted}
                if with_spans:  # a plain scheme marks none: no key, so no column (render.line) and no empty list
                    r["spans"] = [{"type": kind, "start": s, "end": e, "text": " ".join(words[s:e])}
                                  for kind, s, e in schemes.spans(predicted)]
                if probs is not None:
                    k = int(probs[row].argmax())
                    r["intent"] = run.extra["intents"].itos[k]
                    r["intent_prob"] = round(float(probs[row, k]), 6)
                results[i] = r
        return results


    # --- streaming -------------------------------------------------------------------

    def check_inputs(self, predictor, texts: list[str]) -> None:
        if is_numeric(predictor.cfg):
            from grutool.families.tagger import numeric

            numeric.parse(predictor, texts)

    def stream_reason(self, cfg: Config) -> Optional[str]:
        """Every reason at once, so one retraining settles them all."""
        if is_numeric(cfg):
            return "numeric sequences are read whole (streaming reads text chunks)"
        reasons = [encoder_stream_reason(cfg)]
        if cfg.model.crf:
            reasons.append("model.crf: Viterbi picks every tag from the whole sentence's scores (train with "
                           "model.crf: false)")
        if self.joint:
            reasons.append("the joint model's intent pools every step's output of the whole sentence (task tagger "
                           "streams tags)")
        return "; ".join(r for r in reasons if r) or None

    def stream_encode(self, predictor, text: str) -> EncodedSplit:
        from grutool.data.tokenize import get_tokenizer

        tokens = get_tokenizer(predictor.cfg.data.tokenizer, lowercase=False)(text)
        return self.encode(predictor.cfg, predictor.run.vocab, [tokens], chars=predictor.run.extra.get("chars"))

    def stream_render(self, predictor, text: str, chunk: str, outputs: tuple) -> dict:
        """The chunk's tokens and their tags (a tag never changes once its token is fed)."""
        from grutool.data.tokenize import get_tokenizer

        tokens = get_tokenizer(predictor.cfg.data.tokenizer, lowercase=False)(chunk)
        names = predictor.run.labels.itos
        return {"tokens": tokens, "tags": [names[j] for j in outputs[0][0].argmax(-1).tolist()]}


class JointTask(TaggerTask):
    """Tags per token and an intent per sentence from one shared encoder."""

    name = "joint"
    joint = True
    monitors = ("token_accuracy", "span_f1", "intent_accuracy", "sentence_accuracy", "loss")
    owns = {"data": TaggerTask.owns["data"],
            "model": TaggerTask.owns["model"] + ("pooling", "tag_loss_weight", "intent_loss_weight"),
            "train": TaggerTask.owns["train"]}
    example = {"data": {"train": "data/tagging/travel/train", "validation": "data/tagging/travel/validation",
                        "test": "data/tagging/travel/test", "scheme": "iob2", "tokenizer": "whitespace"}}
    inputs = {}  # intents and slots are read from text
    # The tagger's settings of numeric sequences, inherited with its fields: a joint model reads text alone, so
    # they would change nothing (`--print-config` and `grutool init` leave them out, a config is refused them)
    ignores = {section: names for section, names in NUMERIC_SETTINGS.items()}

    def served_vocabularies(self, run) -> dict[str, list[str]]:
        return {"intents": list(run.extra["intents"].itos)}

    def check_task(self, cfg: Config) -> None:
        super().check_task(cfg)
        m = cfg.model
        if m.tag_loss_weight == 0 and m.intent_loss_weight == 0:
            raise ValueError("model.tag_loss_weight, model.intent_loss_weight: both are 0, nothing would be learned")
