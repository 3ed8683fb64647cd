"""Metrics of a trained run on a labelled split (`grutool eval`)."""

from __future__ import annotations

import logging
from typing import Optional

from grutool import rundir
from grutool.errors import UserError
from grutool.predict import Predictor
from grutool.training.loop import evaluate_split

log = logging.getLogger("grutool")


def evaluate(run_dir: str, split: str = "validation", data: Optional[str] = None,
             batch_size: Optional[int] = None, device: str = "auto", beam: Optional[int] = None) -> dict:
    """accuracy, macro_f1, n, per-class P/R/F1, confusion, and labels unseen in training.

    Tagger and joint runs give token_accuracy, sentence_accuracy, span P/R/F1 (span schemes),
    intent_accuracy (joint), per-tag figures and the tag confusion instead; seq2seq runs bleu, chrf,
    exact_match, wer, cer (per for dictionaries), perplexity and a few samples (see metrics_seq2seq),
    decoding with beam size `beam` (default: the run's decoding.beam_size).
    """
    p = Predictor(run_dir, device)
    cfg = p.cfg
    if beam is not None:
        if cfg.task != "seq2seq":
            raise UserError(f"--beam: for seq2seq runs only ({p.run.path} is task {cfg.task})")
        if beam < 1:
            raise UserError(f"--beam: must be at least 1 (got {beam}); 1 is greedy decoding")
        p.model.decoding["beam_size"] = beam
    source = data or getattr(cfg.data, split, None)
    if source is None:
        raise UserError(f"{p.run.path}: the run's config has no data.{split}; pass --data PATH")
    encoded = p.task.encode_split(cfg, p.run.vocab, p.run.labels, source, split, **rundir.vocab_extras(p.run))
    out = evaluate_split(p.model, p.task, encoded, p.device, batch_size or cfg.train.batch_size)
    out["source"] = source
    if cfg.task == "seq2seq":
        out["beam_size"] = p.model.decoding["beam_size"]
        return out
    known = len(p.run.labels)
    matrix = out["confusion"]["matrix"]
    # Rows past the model's own labels are gold labels it never saw (tokens, for tags).
    out["unseen_labels"] = {name: sum(matrix[known + j]) for j, name in enumerate(out["confusion"]["labels"][known:])}
    if "intent_confusion" in out:
        known, matrix = len(p.run.intents), out["intent_confusion"]["matrix"]
        out["unseen_intents"] = {name: sum(matrix[known + j])
                                 for j, name in enumerate(out["intent_confusion"]["labels"][known:])}
    return out
