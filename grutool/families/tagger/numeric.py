"""The tagger on numeric sequences (N -> N: a label per step, from a long table whose data.label_column holds each
row's label, or a .ts file whose cases end in one label per step, `...:low,high,high`; see grutool.data.numeric
and grutool.data.tsfile): what differs from text is reading, scaling and encoding; the model (with the numeric
front-end), metrics and spans are the tagger's own.

The run's token vocabulary is empty (<pad>, <unk>); its `scaler.json` (the Standardizer fitted on train) holds the
channels. A prediction is {"id", "tags"} (one tag per step), plus "spans" under a span scheme.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

from grutool.errors import UserError
from grutool.families.base import Prepared
from grutool.families.rules import unseen_gold

if TYPE_CHECKING:
    from grutool.config import Config
    from grutool.data.batching import EncodedSplit
    from grutool.data.numeric import Sequences
    from grutool.data.scaling import Standardizer
    from grutool.data.vocab import LabelVocab

log = logging.getLogger("grutool")


def read(cfg: Config, source: str, need_labels: bool = True) -> "Sequences":
    from grutool.data.numeric import read_sequences

    seqs = read_sequences(cfg.data, source, need_labels, per_step=True)
    from grutool.families.tagger import schemes
    from grutool.families.tagger.data import scheme_tags

    scheme = cfg.data.scheme
    for tags, where, seq_id in zip(seqs.labels or [], seqs.where, seqs.ids):
        if "" in tags:
            raise UserError(f"{where}: sequence {seq_id!r} has a step without a label (column "
                            f"'{cfg.data.label_column}'); fill it or remove the row")
        # As the text tagger's: tags that are no spans under a span scheme scored span F1 0 for every epoch
        bad = next((k for k, tag in enumerate(tags) if not schemes.is_valid_tag(tag, scheme)), None)
        if bad is not None:
            raise UserError(f"{where}: sequence {seq_id!r}, step {bad + 1}: label {tags[bad]!r} is not a tag of "
                            f"data.scheme {scheme} (expected {scheme_tags(scheme)}); for labels without spans set "
                            f"data.scheme: plain")
    return seqs


def encode(scaler: "Standardizer", labels: "LabelVocab", seqs: "Sequences", scheme: str) -> "EncodedSplit":
    """Standardised (T_i, C) float tensors and, when labelled, a tag id per step (unseen tags after the model's)."""
    import torch

    from grutool.data.batching import EncodedSplit
    from grutool.data.numeric import check_channels, tensors

    check_channels(scaler, seqs)
    split = EncodedSplit(tensors(seqs, scaler), None, list(seqs.ids), scheme=scheme)
    if seqs.labels is not None:
        names = list(labels.itos) + sorted({t for s in seqs.labels for t in s} - set(labels.stoi))
        index = {n: i for i, n in enumerate(names)}
        split.targets = [torch.tensor([index[t] for t in s], dtype=torch.long) for s in seqs.labels]  # each (T_i,)
        split.label_names = names
    return split


def prepare(task, cfg: Config, saved: Any = None) -> Prepared:
    from grutool.data.numeric import fit_scaler
    from grutool.data.vocab import LabelVocab, Vocab

    seqs = read(cfg, cfg.data.train)
    labels = saved.labels if saved else LabelVocab.build(t for s in seqs.labels for t in s)
    if len(labels) < 2:
        raise UserError(f"{cfg.data.train}: only one tag ({labels.itos[0]!r}); a tagger needs at least two")
    scaler = saved.extra["scaler"] if saved else fit_scaler(seqs)  # train only; --resume keeps the saved one
    prepared = Prepared(saved.vocab if saved else Vocab.from_counts({}), labels, extra={"scaler": scaler})
    prepared.splits["train"] = encode(scaler, labels, seqs, task.model_scheme(cfg))
    return prepared


def encode_split(task, cfg: Config, vocabs: Any, source: str, name: str) -> "EncodedSplit":
    """A labelled evaluation split; tags the model never saw are reported, then scored as errors."""
    labels = vocabs.labels
    seqs = read(cfg, source)
    unseen_gold(source, name, Counter(t for s in seqs.labels for t in s), labels, kind="tags",
                unit="step(s)", column="data.label_column", limit=10)
    return encode(vocabs.extra["scaler"], labels, seqs, task.model_scheme(cfg))


def read_inputs(cfg: Config, source: str, vocabs: Any = None) -> list[str]:
    """Each sequence of a .ts file or long table as `id<TAB>values` (grutool.data.numeric.format_text); a table
    for a run trained on .ts files by the channel names of its scaler (grutool.data.numeric.read_inputs)."""
    from grutool.data.numeric import as_texts, read_inputs as read_unlabelled, saved_scaler

    return as_texts(read_unlabelled(cfg.data, source, saved_scaler(vocabs)))


def parse(predictor, texts: list[str]) -> tuple[list[str], "EncodedSplit"]:
    from grutool.data.batching import EncodedSplit
    from grutool.data.numeric import from_texts

    ids, values = from_texts(texts, predictor.run.extra["scaler"], predictor.cfg.data.missing,
                             predictor.input_name, predictor.position)
    return ids, EncodedSplit(values, None, ids, scheme=predictor.task.model_scheme(predictor.cfg))


def predict(task, predictor, texts: list[str], batch_size: int = 64) -> list[dict]:
    """One dict per sequence, in input order: id, tags (one per step), spans (type, start, end exclusive; span
    schemes only)."""
    import torch

    from grutool.data.batching import sorted_batches
    from grutool.families.tagger import schemes

    ids, split = parse(predictor, texts)
    names = predictor.run.labels.itos
    with_spans = schemes.has_spans(split.scheme)
    results: list[dict] = [{} for _ in texts]
    for batch in sorted_batches(split, batch_size):
        with torch.no_grad():
            tags, _ = task.infer_batch(predictor.model, batch.to(predictor.device))  # (B, T)
        for row, i in enumerate(batch.index):
            predicted = [names[j] for j in tags[row, :len(split.ids[i])].tolist()]
            results[i] = {"id": ids[i], "tags": predicted}
            if with_spans:  # as the text tagger's: a plain scheme's results have no spans key
                results[i]["spans"] = [{"type": kind, "start": s, "end": e} for kind, s, e in schemes.spans(predicted)]
    return results
