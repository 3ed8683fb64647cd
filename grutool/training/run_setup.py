"""A training's run directory: checked (and, to resume, locked and read) before any write; a new run's first
files; a resumed run that already ended.

Everything that can fail on bad input happens before the run directory is touched; the directory's lock
(`rundir.RunLock`, held in the caller's ExitStack) is held from the first read of a run being continued, or
the first write of a new one, to the last write.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Optional

from grutool import rundir
from grutool.atomic import make_folder, write_text_atomic
from grutool.checkpoint import load_checkpoint
from grutool.config import Config
from grutool.config_file import to_yaml
from grutool.errors import UserError
from grutool.training import distributed

log = logging.getLogger("grutool")

# Fields that may change between a run and its --resume (to train longer, say).
RESUMABLE_CHANGES = {"train.epochs", "train.max_steps", "train.patience", "train.tensorboard", "train.nonfinite", "train.max_skipped_steps",
                     "train.dist_timeout_s"}


def open_run_dir(cfg: Config, run_dir: Path, resume: bool, overwrite: bool, dist: distributed.Dist,
                 owned: contextlib.ExitStack) -> tuple:
    """Rank 0: check (and, to resume, lock and read) the run directory: (resume, saved run or None, last.pt,
    plan). A dry run makes the same checks, so it refuses what training would; `plan` says what training
    would do with the folder: {"action": "new" | "replace" | "start over" | "resume"} (+ "epoch" to resume)."""
    rundir.check_location(run_dir)
    saved, last = None, None
    if resume:
        if rundir.is_partial(run_dir) or not rundir.contents(run_dir):
            # Killed before its first checkpoint (or before its folder was made): nothing to continue. A
            # marked folder is said to start over once, by rundir.prepare_new.
            if not Path(run_dir).exists():  # a path mistyped, or a run killed before it made its folder
                log.warning("%s: no run there to resume; starting a new one", run_dir)
            elif not rundir.is_partial(run_dir):
                log.warning("%s: the run stopped before its first checkpoint; nothing to resume, starting over",
                            run_dir)
            replaces = rundir.check_new(run_dir, overwrite)
            return False, None, None, {"action": "start over" if replaces else "new"}
        if not rundir.is_run(run_dir):
            rundir.check_new(run_dir, overwrite)  # a user's folder: refused, naming why
        if not (run_dir / rundir.LAST).is_file():
            raise UserError(f"resume: {run_dir / rundir.LAST} not found; nothing to resume "
                            f"(start a new run instead)", option="resume")
        owned.enter_context(rundir.RunLock(run_dir))
        saved = rundir.open_run(run_dir)
        check_resume_config(rundir.read_from_run(cfg, run_dir), saved.config)  # data paths as the run reads them
        last = load_checkpoint(run_dir / rundir.LAST)
        _check_world_size(run_dir, last, dist)
        _check_best_exists(run_dir, last)
        state = (last.get("meta") or {}).get("state") or {}
        return resume, saved, last, {"action": "resume", "epoch": state.get("epoch", 0) + 1}
    if not rundir.check_new(run_dir, overwrite):
        return resume, saved, last, {"action": "new"}
    return resume, saved, last, {"action": "replace" if overwrite else "start over"}


def record_resumed_config(cfg: Config, run_dir: Path) -> None:
    """A resumed run's config.yaml says what it goes on with (RESUMABLE_CHANGES such as train.epochs, and the
    folder it is in), so `runs`, `compare`, `eval` and a later --resume read the truth, not the first start's."""
    text = to_yaml(cfg)
    path = run_dir / rundir.CONFIG
    try:
        if path.read_text(encoding="utf-8") == text:
            return
    except OSError:
        pass
    write_text_atomic(text, path)


def redrawn_schedule(trainer, saved: Config) -> Optional[str]:
    """What to say when a --resume changes how many steps a decaying schedule (linear, cosine) spans: a larger
    train.epochs or train.max_steps draws it over the new length from the step reached, so the learning rate rises
    again (cosine over 2 epochs, resumed to 4: 0.0 at the resume, then 0.000439) and the weights will not equal a
    run that long from the start. None when the length or the schedule leaves nothing to say."""
    from grutool.training.optim import lr_factor, planned_steps

    t, step = trainer.cfg.train, trainer.state.step
    before, now = planned_steps(saved.train, trainer.batches_per_epoch), trainer.total_steps
    if t.schedule not in ("linear", "cosine") or before == now or step == 0 or step >= now:
        return None
    was, will = (t.lr * lr_factor(step, t.schedule, t.warmup_steps, total) for total in (before, now))
    word = trainer.task.update_name(trainer.cfg)  # numbers' `updates`: their steps are in time
    return (f"train.schedule {t.schedule} now spans {now:,} {word}s, not the {before:,} the run started with: from "
            f"{word} {step:,} its learning rate follows the new length ({will:.3g} there, where the run's schedule "
            f"was at {was:.3g}), so the weights will not be those of a run trained {now:,} {word}s from the start")


def write_new_run(cfg: Config, run_dir: Path, prepared, overwrite: bool, owned: contextlib.ExitStack) -> None:
    """A new run's folder, locked (until `owned` closes), with its config and vocabularies."""
    make_folder(Path(os.path.realpath(run_dir)), "`output_dir`", "output_dir")  # a link to a folder not made yet: its target
    owned.enter_context(rundir.RunLock(run_dir))
    rundir.prepare_new(run_dir, overwrite)  # a partial run (resume or not) starts over by itself
    write_text_atomic(to_yaml(cfg), run_dir / rundir.CONFIG)
    rundir.save_vocabularies(run_dir, prepared, cfg)


def resume_changes(cfg: Config, saved: Config) -> list[tuple[str, object, object]]:
    """What `--resume` refuses: (dotted field, saved value, value now) for each field in which `cfg` differs
    from the run's saved config, but for RESUMABLE_CHANGES and output_dir (values as JSON has them)."""
    now, before = cfg.model_dump(mode="json"), saved.model_dump(mode="json")
    diffs = []
    for section in now:
        a, b = now[section], before[section]
        if isinstance(a, dict):
            diffs += [(f"{section}.{k}", b.get(k), a[k]) for k in a
                      if a[k] != b.get(k) and f"{section}.{k}" not in RESUMABLE_CHANGES]
        elif a != b and section != "output_dir":
            diffs.append((section, b, a))
    return diffs


def check_resume_config(cfg: Config, saved: Config) -> None:
    """A resumed run's config is its saved one, but for RESUMABLE_CHANGES."""
    diffs = [key for key, _, _ in resume_changes(cfg, saved)]
    if diffs:
        raise UserError(f"resume: the config differs from the run's saved config in {', '.join(diffs)}; "
                        f"resume with the same config (only {', '.join(sorted(RESUMABLE_CHANGES))} may change)",
                        option="resume")


def _check_world_size(run_dir: Path, last: dict, dist: distributed.Dist) -> None:
    """Each rank's share of an epoch depends on the number of processes, so a run resumes with its own."""
    before = (last.get("meta") or {}).get("world_size", 1)
    if before != dist.world_size:
        how = "a single process" if before == 1 else f"{before} processes (torchrun --nproc-per-node ... or --nproc)"
        raise UserError(f"resume: {run_dir / rundir.LAST} was written by a run of {before} process(es), this one "
                        f"has {dist.world_size}; resume with {how}, since each process's batches depend on the "
                        f"number of processes (or start over with `overwrite`)", option=("resume", "overwrite"))


def _check_best_exists(run_dir: Path, last: dict) -> None:
    """--resume ends by reading best.pt: a run that wrote one must still have it, checked before any write."""
    state = (last.get("meta") or {}).get("state") or {}
    if state.get("best_epoch") and not (run_dir / rundir.BEST).is_file():
        raise UserError(f"resume: {run_dir / rundir.BEST} is missing (epoch {state['best_epoch']} wrote it); "
                        f"restore it, or start over with `overwrite`", option=("resume", "overwrite"))
    if (run_dir / rundir.BEST).is_file():
        load_checkpoint(run_dir / rundir.BEST)


def has_ended(trainer) -> bool:
    """Whether the restored run has nothing left to train under its (possibly changed) config: all epochs,
    train.max_steps or early stopping reached."""
    s, t = trainer.state, trainer.cfg.train
    return (s.epoch >= t.epochs or s.step >= trainer.total_steps
            or (t.patience is not None and s.bad_epochs >= t.patience))


def ended_message(trainer, summary: dict) -> str:
    """`the run is complete (23 of 30 epochs, 575 steps); nothing to resume. It stopped early: ...`: where a
    restored run that `has_ended` stands (`summary`: its summary.json, which says whether max_steps cut its last
    epoch short; {} when unread), what stopped it and the setting to raise."""
    s, t = trainer.state, trainer.cfg.train
    word = trainer.task.update_name(trainer.cfg)  # numbers' `update`: their steps are in time
    steps = f"{s.step} {word}{'s' if s.step != 1 else ''}"
    cut = rundir.cut_epoch(summary)
    if cut:  # max_steps cut the last epoch short
        where = f"{steps}; epoch {s.epoch} of {t.epochs} stopped at {cut[0]} of its {cut[1]} {word}s"
    elif s.epoch > t.epochs:  # resumed with fewer epochs than it has trained ("23 of 5 epochs" said before)
        where = f"{s.epoch} epochs, {steps}: more than train.epochs {t.epochs}, as given now"
    else:
        where = f"{s.epoch} of {t.epochs} epochs, {steps}"
    return f"the run is complete ({where}); nothing to resume. {_train_longer(trainer)}"


def ended_plan(trainer) -> Optional[dict]:
    """A dry run's --resume, last.pt restored: {"action": "ended", "why": ...} when the run has nothing left to
    train (the real resume would stop at once, saying why), else None."""
    if not has_ended(trainer):
        return None
    try:
        summary = json.loads((trainer.run_dir / rundir.SUMMARY).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        summary = {}
    return {"action": "ended", "why": ended_message(trainer, summary if isinstance(summary, dict) else {})}


def finished_summary(trainer) -> Optional[dict]:
    """--resume of a run that already ended (all epochs, max_steps, early stopping): its summary, said so."""
    s = trainer.state
    path = trainer.run_dir / rundir.SUMMARY
    if not (has_ended(trainer) and path.is_file()):
        return None
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(summary, dict) or (summary.get("epochs"), summary.get("steps")) != (s.epoch, s.step):
        return None  # written before training went on (a resume killed later): train() writes a true one
    log.warning("%s: %s", trainer.run_dir, ended_message(trainer, summary))
    # The folder resumed (a copy, say), not the one summary.json was first written in.
    return {**summary, "run_dir": str(trainer.run_dir)}


def _train_longer(trainer) -> str:
    """What stopped a complete run, and the setting that lets it go on: raising train.epochs does nothing
    for a run that early stopping ended."""
    s, t = trainer.state, trainer.cfg.train
    why, hints = [], []
    if t.patience is not None and s.bad_epochs >= t.patience:
        why.append(f"early: {trainer.monitor_label} did not improve for {s.bad_epochs} epoch(s) "
                   f"(train.patience {t.patience})")
        hints.append(f"--set train.patience={max(t.patience, s.bad_epochs) * 2}")
    if s.epoch == t.epochs:
        why.append("at train.epochs")
    if s.epoch >= t.epochs:  # more: resumed with fewer epochs than trained, which the hint must pass
        hints.append(f"--set train.epochs={s.epoch * 2}")
    if t.max_steps is not None and s.step >= t.max_steps:
        why.append("at train.max_steps")
        hints.append(f"--set train.max_steps={t.max_steps * 2}")
    if not why and s.epoch > t.epochs:
        why.append("after more epochs than train.epochs now allows")
    if not why:  # past the steps of train.epochs without its epoch count (cannot happen as trained)
        why.append(f"at its last {trainer.task.update_name(trainer.cfg)}")  # numbers' `update`
        hints.append(f"--set train.epochs={t.epochs * 2}")
    names = [h.split("=")[0].removeprefix("--set ") for h in hints]
    return (f"It stopped {' and '.join(why)}. To train longer, resume with a larger "
            f"{' and '.join(names)} (e.g. {' '.join(hints)})")


