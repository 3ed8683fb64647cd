"""Metrics of a trained run on a labelled split (`grutool eval`)."""

from __future__ import annotations

import logging
from typing import Optional

from grutool.arguments import check_batch_size, check_option_types, check_split
from grutool.errors import UserError

# torch-free at import: `import grutool` imports this module to bind `grutool.evaluate` to the function
# (see grutool/__init__.py); the model side is imported when `evaluate` runs.

log = logging.getLogger("grutool")


def evaluate(run_dir: str, split: str = "validation", data: Optional[str] = None,
             batch_size: Optional[int] = None, device: str = "auto", beam: Optional[int] = None) -> dict:
    """The run's task metrics on a labelled split, plus `source` and what the task adds.

    A classifier gives accuracy, macro_f1, n, per-class P/R/F1, confusion, and labels unseen in training;
    tagger and joint runs token_accuracy, sentence_accuracy, span P/R/F1 (span schemes), intent_accuracy
    (joint), per-tag figures and the tag confusion (numeric sequences: `units`, what `n` and `tokens` count); seq2seq runs bleu, chrf, exact_match, wer, cer (per for
    dictionaries), perplexity and a few samples (see grutool.families.seq2seq.metrics), decoding with beam size
    `beam` (default: the run's decoding.beam_size); lm runs loss, perplexity, bpc (character models) and tokens;
    forecast runs mse, mae (z-scored: the published protocol), the same in original units, sMAPE, MASE, per
    horizon bucket, each beside the last-value, seasonal-naive and training-mean baselines on the same windows.

    `split`: train, validation or test, the run's configured split to score (`data`: this file instead).
    `batch_size`: examples per batch, an int >= 1 (None: the run's train.batch_size).
    """
    if data is None:  # with `data`, the file is scored and `split` unused (None was taken before the check)
        check_split(split)
    check_batch_size(batch_size, default="; None: the run's train.batch_size")
    from grutool.predict import Predictor
    from grutool.families import accepting
    from grutool.training.evaluation import evaluate_split

    p = Predictor(run_dir, device)
    cfg = p.cfg
    options = {"beam": beam} if beam is not None else {}
    if options and "beam" not in p.task.predict_options:
        raise UserError(f"beam: for {' or '.join(accepting('beam'))} runs only ({p.run.path} is task {cfg.task})",
                        option="beam")
    check_option_types(options, p.task.predict_options)
    reported = p.task.set_decoding(p.model, **options)
    source = data or getattr(cfg.data, split, None)
    if source is None:
        raise UserError(f"{p.run.path}: the run's config has no data.{split}; pass a file to score as `data`",
                        option="data")
    if data is None and not cfg.data.split_names:
        _check_found(source, split)
    if data is not None and cfg.data.dataset is not None:
        # `data` is a local file, even for a run trained on a Hub dataset: read it with the run's columns.
        cfg = cfg.model_copy(update={"data": cfg.data.local()})
    # A file given by hand is no split of the run's data: named by its path, it is scored whole (a forecast's
    # data.borders / data.fractions cut only the configured splits).
    from grutool.data.loading import for_trained_run

    with for_trained_run():  # the run's data settings are fixed: errors offer changes of the file
        encoded = p.task.encode_split(cfg, p.run, source, split if data is None else data)
    out = evaluate_split(p.model, p.task, encoded, p.device, batch_size if batch_size is not None else cfg.train.batch_size)
    out["source"] = source
    out.update(reported)
    return p.task.finish_evaluation(out, p.run)


def _check_found(source, split: str) -> None:
    """A run keeps its data paths as `train` was given them, relative to the folder it ran in; from another
    folder, one is missing. That said so, not the training's `not found (relative to ... the config file's
    folder)` and where to download the shipped datasets."""
    from pathlib import Path

    from grutool.config_file import data_present
    from grutool.data.slices import split_slice

    for path in source if isinstance(source, list) else [source]:
        path = Path(split_slice(path)[0])
        if not path.is_absolute() and not data_present(path):
            raise UserError(f"{path}: the run's data.{split}, not found from the working directory {Path.cwd()}; "
                            f"the run reads its data paths as `train` was given them, relative to the folder "
                            f"it ran in: run eval from there, or name the file with `data`", option="data")
