"""The classifier on numeric sequences (a .ts file or a long table; see grutool.data.numeric): what differs
from text is reading, scaling and encoding; the model (with the numeric front-end), metrics and rendering are
the classifier's own.

The run's token vocabulary is empty (<pad>, <unk>): a run directory always has one, and numbers have no tokens.
Its `scaler.json` (the Standardizer fitted on train) holds the channels.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING, Any, Optional

from grutool.errors import UserError
from grutool.families.base import Prepared
from grutool.families.rules import unseen_gold
from grutool.families.classifier.labels import check_label_names, name_labels

if TYPE_CHECKING:
    from grutool.config import Config
    from grutool.data.batching import EncodedSplit
    from grutool.data.numeric import Sequences
    from grutool.data.scaling import Standardizer
    from grutool.data.vocab import LabelVocab

log = logging.getLogger("grutool")


def read(cfg: Config, source: str, need_labels: bool = True) -> "Sequences":
    from grutool.data.numeric import read_sequences
    seqs = read_sequences(cfg.data, source, need_labels)
    if seqs.labels is not None:
        empty = [i for i, g in enumerate(seqs.labels) if not g]
        if empty:
            raise UserError(f"{seqs.where[empty[0]]}: sequence {seqs.ids[empty[0]]!r} has no label "
                            f"(column '{cfg.data.label_column}'); fill or remove it")
        seqs.labels = name_labels(cfg.data, seqs.labels)
    return seqs


def encode(scaler: "Standardizer", labels: "LabelVocab", seqs: "Sequences",
           extra: Optional[list[str]] = None) -> "EncodedSplit":
    """Standardised (T_i, C) float tensors; unseen gold labels get ids after the model's classes (see metrics)."""
    import torch

    from grutool.data.batching import EncodedSplit
    from grutool.data.numeric import check_channels, tensors

    check_channels(scaler, seqs)
    split = EncodedSplit(tensors(seqs, scaler), None, list(seqs.ids))
    names = list(labels.itos) + [e for e in extra or [] if e not in labels.stoi]
    if seqs.labels is not None:
        index = {name: i for i, name in enumerate(names)}
        split.targets = torch.tensor([index[g] for g in seqs.labels], dtype=torch.long)  # (N,)
    split.label_names = names
    return split


def prepare(cfg: Config, saved: Any = None) -> Prepared:
    from grutool.data.numeric import fit_scaler
    from grutool.data.vocab import LabelVocab, Vocab

    d = cfg.data
    seqs = read(cfg, d.train)
    check_label_names(d, seqs.labels)
    labels = saved.labels if saved else LabelVocab.build(seqs.labels)
    if len(labels) < 2:
        raise UserError(f"{d.train}: only one label ({labels.itos[0]!r}); a classifier needs at least two")
    # Fitted on the training split alone; a saved run (--resume) keeps its own.
    scaler = saved.extra["scaler"] if saved else fit_scaler(seqs)
    prepared = Prepared(saved.vocab if saved else Vocab.from_counts({}), labels, extra={"scaler": scaler})
    prepared.splits["train"] = encode(scaler, labels, seqs, sorted(set(seqs.labels) - set(labels.stoi)))
    return prepared


def encode_split(cfg: Config, vocabs: Any, source: str, name: str) -> "EncodedSplit":
    """A labelled evaluation split scaled with the training split's scaler; unseen labels warned about, then
    scored as errors (as for text)."""
    labels = vocabs.labels
    seqs = read(cfg, source)
    unseen = unseen_gold(source, name, Counter(seqs.labels), labels)
    return encode(vocabs.extra["scaler"], labels, seqs, extra=sorted(unseen))


def read_inputs(cfg: Config, source: str, vocabs: Any = None) -> list[str]:
    """Each sequence of a .ts file or long table as `id<TAB>values` (grutool.data.numeric.format_text); a table
    for a run trained on .ts files by the channel names of its scaler (grutool.data.numeric.read_inputs)."""
    from grutool.data.numeric import as_texts, read_inputs as read_unlabelled, saved_scaler

    return as_texts(read_unlabelled(cfg.data, source, saved_scaler(vocabs)))


def parse(predictor, texts: list[str]) -> tuple[list[str], "EncodedSplit"]:
    """Texts of sequences (grutool.data.numeric) -> their ids (given, or the position from 1) and a split."""
    from grutool.data.batching import EncodedSplit
    from grutool.data.numeric import from_texts

    ids, values = from_texts(texts, predictor.run.extra["scaler"], predictor.cfg.data.missing,
                             predictor.input_name, predictor.position)
    return ids, EncodedSplit(values, None, ids)


def predict(task, predictor, texts: list[str], batch_size: int = 64) -> list[dict]:
    """One dict per sequence, in input order: id, label, probs (label -> probability)."""
    ids, split = parse(predictor, texts)
    return task.labelled(predictor, split, [{"id": i} for i in ids], batch_size)


def synthetic(cfg: Config, lengths: list[int], num_classes: int, generator):
    """`bench --config`: standard-normal values per step (grutool.data.numeric.synthetic), a random label each."""
    import torch

    from grutool.data.batching import EncodedSplit
    from grutool.data.numeric import synthetic as values
    from grutool.data.vocab import LabelVocab, Vocab

    scaler, ids = values(cfg.data, lengths, generator)
    vocabs = Prepared(Vocab.from_counts({}), LabelVocab([f"L{i}" for i in range(num_classes)]), extra={"scaler": scaler})
    targets = list(torch.randint(0, num_classes, (len(lengths),), generator=generator))
    return vocabs, EncodedSplit(ids, targets, [""] * len(lengths))
