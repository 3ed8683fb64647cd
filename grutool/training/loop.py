"""`train(config)`: data -> model -> one loop -> run directory, as a short sequence of named steps.

    train()            the process's settings (threads, determinism), device, process group, the display
      start            the run directory checked, locked, read or written; the data and its vocabularies,
                       shared by the ranks (grutool.training.startup, grutool.training.run_setup)
      _build_model     the task's model from the seed, pre-trained vectors copied in
      _summary         what the run is (task, device, sizes), the start of summary.json
      _callbacks       early stopping, gradient tracking, TensorBoard, metrics.jsonl, checkpoints, display
      Trainer          epochs, steps, validation, last.pt / best.pt (grutool.training.trainer)
      _resume          last.pt restored, or a finished run's summary returned as is
      _finish          summary.json from the best weights
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Optional, Sequence

import torch

from grutool import jsonsafe, rundir
from grutool.atomic import check_output_folder, remove_temporaries, write_text_atomic
from grutool.checkpoint import load_checkpoint, load_weights
from grutool.config import Config
from grutool.data.loading import transient_cache
from grutool.errors import TrainingDiverged, UserError, clipped
from grutool.models import count_parameters
from grutool.modules.rnn.runtime import load_compiled_kernels
from grutool.families import get_task
from grutool.training import distributed
from grutool.training.callbacks import Callback, Checkpointer, EarlyStopping, MetricsWriter
from grutool.training.device import resolve_device
from grutool.training.evaluation import evaluate_split
from grutool.training.progress import Progress, number, resolve_mode
from grutool.training.run_setup import (RESUMABLE_CHANGES, ended_plan, finished_summary, record_resumed_config,
                                        redrawn_schedule)
from grutool.training.startup import Started, start
from grutool.training.tracking import GradientMonitor, TensorBoard, tensorboard_writer_class
from grutool.training.trainer import Trainer, TrainState

__all__ = ["train", "process_settings", "Trainer", "TrainState", "RESUMABLE_CHANGES"]

log = logging.getLogger("grutool")


def train(cfg: Config, *, resume: bool = False, overwrite: bool = False, dry_run: bool = False,
          callbacks: Sequence[Callback] = (), progress: bool | str = False) -> dict:
    """Train the model `cfg` describes; returns the run summary (also saved as summary.json).

    `resume` continues the run in cfg.output_dir from its last.pt; `overwrite` replaces an existing run there.
    `progress` shows the run on stderr (grutool.training.progress): True for a bar on a terminal and
    log lines elsewhere, or "bar" / "lines"; False (the default) shows nothing.
    Threads and determinism (train.num_threads, train.deterministic) are restored on return. Started by
    torchrun (WORLD_SIZE > 1), this process is one rank of a data-parallel training (see
    `grutool.training.distributed`); every rank returns the summary, rank 0 alone writes the run directory
    and shows the progress.
    """
    if not isinstance(cfg, Config):  # a path, or a dict, fails later as "'str' object has no attribute 'train'"
        raise UserError(f"train: takes a Config, not {type(cfg).__name__} {clipped(repr(cfg), 80)}; "
                        f"read the file with grutool.load_config(path) and pass what it returns")
    dist = distributed.from_env()
    mode = resolve_mode(progress) if dist.is_main else None
    if cfg.train.tensorboard and dist.is_main and not dry_run:
        tensorboard_writer_class()  # a missing extra is one error line before any work
    if isinstance(cfg.train.tensorboard, str) and dist.is_main:  # (true: <run>/tensorboard, checked with the run)
        check_output_folder(Path(cfg.train.tensorboard), "train.tensorboard")
    display = Progress(mode) if mode else None
    with process_settings(cfg.train.num_threads, cfg.train.deterministic):
        device = distributed.device_for(dist, resolve_device(cfg.train.device))
        with distributed.process_group(dist, device, cfg.train.dist_timeout_s):
            if display is not None:
                display.start()
            try:
                return _train(cfg, resume, overwrite, dry_run, callbacks, display, dist, device)
            finally:
                if display is not None:
                    display.stop()


def _train(cfg: Config, resume: bool, overwrite: bool, dry_run: bool, callbacks: Sequence[Callback],
           display: Optional[Progress], dist: distributed.Dist, device: torch.device) -> dict:
    run_dir = Path(cfg.output_dir or "runs/run")
    task = get_task(cfg.task)
    if resume and overwrite:
        raise UserError("resume: contradicts overwrite; pick one", option="resume")
    with contextlib.ExitStack() as owned:  # the run directory's lock, held to the last write
        if dry_run:  # "writes nothing": no datasets cache either (local files; a Hub dataset still downloads)
            owned.enter_context(transient_cache())
        started = start(cfg, task, run_dir, resume=resume, overwrite=overwrite, dry_run=dry_run, dist=dist,
                        device=device, display=display, owned=owned)
        model = _build_model(cfg, task, started, dist)
        summary = _summary(cfg, task, started.prepared, model, run_dir, device, dist)
        stages = started.stages  # rank 0's lines, like its other output
        if dist.is_main:
            stages.append(f"model: {number(summary['parameters'])} parameters, device {device}"
                          + (f", {dist.world_size} processes" if dist.enabled else ""))
        if dry_run:
            for line in stages:
                log.info("%s", line)
            plan = started.plan
            if started.resume:  # last.pt restored as --resume restores it, into a trainer that writes nothing
                trainer = Trainer(cfg, task, started.prepared, model, run_dir, device, [], dist)
                trainer.restore(started.last, run_dir / rundir.LAST, rundir.sizes(trainer.data, trainer.cfg))
                plan = ended_plan(trainer) or plan
            return {**summary, "run_dir_plan": plan}
        trainer = Trainer(cfg, task, started.prepared, model, run_dir, device,
                          _callbacks(cfg, run_dir, dist, display) + list(callbacks), dist)
        if started.resume:
            finished = _resume(trainer, started.last, summary)
            if finished is not None:
                return finished
        for line in stages:
            log.info("%s", line)
        # The compiled kernel's first-use build (20-60 s) here, said in one line, not in the first step's
        # time, where it would pass for the training's speed (tok/s, ETA).
        load_compiled_kernels(trainer.model)
        with trainer._deferred_sigint():
            trainer.fit()
        if not dist.is_main:
            return {**summary, "epochs": trainer.state.epoch, "steps": trainer.state.step}
        return _finish(trainer, summary)


def _build_model(cfg: Config, task, started: Started, dist: distributed.Dist) -> torch.nn.Module:
    """The task's model from train.seed (every rank alike), then each rank's own dropout stream."""
    torch.manual_seed(cfg.train.seed)
    model = task.build_model(cfg, started.prepared)
    if started.vectors is not None:  # rank 0; DDP copies its weights to the others
        with torch.no_grad():
            model.token_embedding().weight.copy_(started.vectors)
    distributed.seed_rank(dist, cfg.train.seed)
    return model


def _summary(cfg: Config, task, prepared, model: torch.nn.Module, run_dir: Path, device: torch.device,
             dist: distributed.Dist) -> dict:
    """What the run is: the start of summary.json (and a dry run's answer)."""
    summary = {
        "task": cfg.task, "device": str(device), "parameters": count_parameters(model),
        "vocab_size": len(prepared.vocab), "num_classes": len(prepared.labels),
        "vocabularies": {name: len(prepared.vocabulary(name)) for name in task.vocabularies(cfg)
                         if prepared.vocabulary(name) is not None},
        "examples": {name: len(split) for name, split in prepared.splits.items()},
        "inputs": task.input_sizes(cfg, prepared),  # what the model reads: vocabulary, or channels (and covariates)
        "run_dir": str(run_dir),
    }
    if dist.enabled:
        summary.update(world_size=dist.world_size, rank=dist.rank)
    return summary


def _callbacks(cfg: Config, run_dir: Path, dist: distributed.Dist, display: Optional[Progress]) -> list[Callback]:
    """grutool's own callbacks, in the order they run (metrics.jsonl's row before the epoch's checkpoints)."""
    t = cfg.train
    cbs: list[Callback] = [EarlyStopping(t.patience), GradientMonitor()]  # before metrics.jsonl's row
    if dist.is_main and t.tensorboard:
        # A shared DIR gets one folder per run (DIR/<run name>), as `tensorboard --logdir DIR` expects: events of
        # several runs in one folder were drawn as one run.
        cbs.append(TensorBoard(run_dir / "tensorboard" if t.tensorboard is True
                               else Path(t.tensorboard) / run_dir.resolve().name))
    if dist.is_main:  # the one writer of metrics.jsonl
        cbs.append(MetricsWriter(run_dir / rundir.METRICS))
    cbs.append(Checkpointer())  # every rank: last.pt carries each rank's RNG state
    if display is not None:  # rank 0's only (train() makes none elsewhere)
        cbs.append(display)
    return cbs


def _resume(trainer: Trainer, last: dict, summary: dict) -> Optional[dict]:
    """last.pt into the trainer; a run that already ended returns its summary (every rank stops alike)."""
    dist, run_dir = trainer.dist, trainer.run_dir
    trainer.restore(last, run_dir / rundir.LAST, rundir.sizes(trainer.data, trainer.cfg))
    # Rank 0 reads summary.json; every rank stops alike (a rank going on alone would wait for the others).
    finished = distributed.broadcast(dist, finished_summary(trainer) if dist.is_main else None)
    if finished:
        return finished if dist.is_main else {**summary, "epochs": trainer.state.epoch, "steps": trainer.state.step}
    if dist.is_main:
        for tmp in remove_temporaries(run_dir):
            log.info("removed %s, left by an interrupted write", tmp)
        # The run goes on: an earlier finish's summary no longer describes it (`grutool runs` would
        # say "finished" of a run killed mid-resume); _finish writes the new one.
        (run_dir / rundir.SUMMARY).unlink(missing_ok=True)
        redrawn = redrawn_schedule(trainer, rundir.open_run(run_dir).config)  # config.yaml as the run had it
        if redrawn:
            log.warning("%s", redrawn)
        record_resumed_config(trainer.cfg, run_dir)
    log.info("resuming at epoch %d, %s %d", trainer.state.epoch + 1, trainer.task.update_name(trainer.cfg),
             trainer.state.step)
    if trainer.state.epoch_figures_lost and dist.is_main:
        log.warning("%s was written by an older grutool and does not hold epoch %d's training loss, tokens/s "
                    "and time so far: that epoch's line and metrics.jsonl row leave them out",
                    run_dir / rundir.LAST, trainer.state.epoch + 1)
    return None


def _finish(trainer: Trainer, summary: dict) -> dict:
    """summary.json from the best weights; TrainingDiverged when the run left nothing usable."""
    s, run_dir, t = trainer.state, trainer.run_dir, trainer.cfg.train
    summary.update({"epochs": s.epoch, "steps": s.step, "wall_time_s": round(s.wall_time_s, 2),
                    "monitor": trainer.monitor, "best": s.best, "best_epoch": s.best_epoch,
                    "skipped_steps": s.skipped_steps, "diverged": trainer.diverged})
    if trainer.epoch_progress is not None:  # the last epoch's batches: fewer than an epoch's when max_steps cut it
        summary.update(last_epoch_steps=trainer.epoch_progress[0], steps_per_epoch=trainer.epoch_progress[1])
    for cb in trainer.callbacks:
        summary.update(cb.summary_fields())
    if not (run_dir / rundir.BEST).is_file():
        why = trainer.diverged or f"no epoch gave a finite validation {trainer.monitor_label}"
        raise TrainingDiverged(f"{run_dir}: nothing usable was saved ({why})")
    if trainer.val_split is not None:
        best = load_checkpoint(run_dir / rundir.BEST)
        load_weights(trainer.model, best["model"], run_dir / rundir.BEST, rundir.sizes(trainer.data, trainer.cfg))
        val = evaluate_split(trainer.model, trainer.task, trainer.val_split, trainer.device, t.batch_size)
        summary["validation"] = trainer.task.label_figures(trainer.cfg, {k: v for k, v in val.items()
                                                                         if not k.endswith("confusion")})
    write_text_atomic(jsonsafe.dumps(summary, indent=2), run_dir / rundir.SUMMARY)
    return summary


@contextlib.contextmanager
def process_settings(num_threads: Optional[int], deterministic: bool):
    """train.num_threads and train.deterministic for the duration of a run; the caller's settings after it."""
    threads, determinism = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    workspace = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    try:
        if num_threads:
            torch.set_num_threads(num_threads)
        if deterministic:
            # cuBLAS is deterministic only with a fixed workspace, which it reads when its first handle is
            # made; use_deterministic_algorithms raises on CUDA matmuls without it.
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
        yield
    finally:
        torch.set_num_threads(threads)
        if deterministic:  # restored only where it was set: the call imports torch._dynamo (~0.9 s, --dry-run's most)
            torch.use_deterministic_algorithms(determinism, warn_only=warn_only)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
        if workspace is None:  # cuBLAS read it when its handle was made; the caller's environment is theirs
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


