"""A training's start-up: the run directory, the data and its vocabularies, read once and shared by the ranks.

Rank 0 (the only process, most often) opens the run directory (grutool.training.run_setup), reads the data,
checks that the model fits and, for a new run, writes the run's first files. Distributed, the other ranks get
what they need of that (resume or not, the vocabularies, last.pt), or rank 0's error, and read their data
with rank 0's vocabularies, so every rank numbers tokens alike.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch

from grutool.config import Config
from grutool.families import Prepared, get_task
from grutool.training import distributed
from grutool.training.memory import check_fits, count_on_meta
from grutool.training.progress import Progress, number
from grutool.training.run_setup import open_run_dir, write_new_run


@dataclass
class Started:
    resume: bool                    # False too for a --resume that found nothing to continue
    last: Optional[dict]            # last.pt's contents when resuming
    prepared: object                # the task's Prepared: splits and vocabularies
    vocabs: dict                    # the vocabularies the other ranks read their data with
    stages: list[str] = field(default_factory=list)  # rank 0's `data: ...` line, said once every check passed
    vectors: Optional[torch.Tensor] = None  # rank 0's pre-trained embedding (data.vectors), new runs only
    plan: dict = field(default_factory=dict)  # rank 0: what training does with the run directory (a dry run's answer)

    def for_other_ranks(self) -> tuple:
        return self.resume, self.vocabs, self.last


def start(cfg: Config, task, run_dir: Path, *, resume: bool, overwrite: bool, dry_run: bool,
          dist: distributed.Dist, device: torch.device, display: Optional[Progress],
          owned: contextlib.ExitStack) -> Started:
    """Rank 0's start-up on every rank (its error raised everywhere); the lock, if any, is held in `owned`."""
    got = distributed.share(dist, lambda: _on_main(cfg, task, run_dir, resume, overwrite, dry_run, dist, device,
                                                   display, owned), part=Started.for_other_ranks)
    if dist.is_main:
        return got
    resume, vocabs, last = got
    # Not rank 0: the data read with rank 0's vocabularies, so every rank numbers tokens alike.
    prepared = task.prepare(_reading(cfg, run_dir, resume), Prepared(vocabs.pop("vocab"), vocabs.pop("labels", None), extra=vocabs))
    return Started(resume, last, prepared, vocabs)


def _on_main(cfg: Config, task, run_dir: Path, resume: bool, overwrite: bool, dry_run: bool,
             dist: distributed.Dist, device: torch.device, display: Optional[Progress],
             owned: contextlib.ExitStack) -> Started:
    again, saved_cfg, last, plan = open_run_dir(cfg, run_dir, resume, overwrite, dist, owned)
    t0 = time.perf_counter()
    with display.stage("reading data") if display else contextlib.nullcontext():
        prepared = task.prepare(_reading(cfg, run_dir, again), saved_cfg)
    counts = ", ".join(f"{number(len(split))} {name}" for name, split in prepared.splits.items())
    # Said once every check has passed (just before training, or the dry run's summary), so that a
    # refused run still answers with its one error line.
    # What the model reads: tokens of a vocabulary, or channels of numbers (a forecaster's covariates apart).
    inputs = ", ".join(f"{name} {number(n)}" for name, n in task.input_sizes(cfg, prepared).items())
    stages = [f"data: {counts}; {inputs} ({time.perf_counter() - t0:.1f} s)"]  # 80 columns at 123,456 examples
    note = task.figures_note(cfg, prepared)
    if note:
        stages.append(note)
    check_fits(cfg, count_on_meta(task, cfg, prepared), device)
    distributed.check_shares(dist, prepared.splits["train"], cfg.train.batch_size)
    vectors = None
    if cfg.data.vectors and not again:  # a bad file is refused before the run directory is written
        from grutool.data.vectors import load_vectors

        vectors = load_vectors(cfg.data.vectors, prepared.vocab, cfg.model.embedding_dim)[0]
    if not again and not dry_run:
        write_new_run(cfg, run_dir, prepared, overwrite, owned)
    names = ["vocab", *task.vocabularies(cfg)]
    vocabs = {name: prepared.vocabulary(name) for name in names}
    return Started(again, last, prepared, vocabs, stages, vectors, plan)


def _reading(cfg: Config, run_dir: Path, resume: bool) -> Config:
    """The config a training reads its data with: a resumed run's relative data paths from the folder it was
    started in (`rundir.read_from_run`); the config itself, which config.yaml records, is left as given."""
    from grutool import rundir

    return rundir.read_from_run(cfg, run_dir) if resume else cfg


def read_data(cfg: Config) -> None:
    """The config's data read as a training's start-up reads it, writing nothing (local files are prepared in a
    folder removed afterwards). `study` and `tune` call it before their first write, so a missing or malformed
    data file is one error line, not a study folder left behind or a failed trial each; the warnings reading
    gives (unknown tokens, ...) are left to the first run."""
    from grutool.data.loading import transient_cache

    with silenced(), transient_cache():
        get_task(cfg.task).prepare(cfg)


@contextlib.contextmanager
def silenced():
    """The grutool logger off for a block that reads data again: its warnings (unknown tokens, ...) are a
    training's, said when that training reads it."""
    import logging

    log = logging.getLogger("grutool")
    quiet, log.disabled = log.disabled, True
    try:
        yield
    finally:
        log.disabled = quiet
