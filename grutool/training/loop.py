"""`train(config)`: data -> model -> one loop -> run directory.

The loop is the same for every task: batches in, `(logits, loss)` out, callbacks
for everything else. Its position (epoch, batch within the epoch), the RNG and
optimizer state go into last.pt, and an epoch's batches are a function of
(seed, epoch), so --resume replays exactly what an uninterrupted run would do.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch

from grutool import jsonsafe, rundir
from grutool.atomic import check_output_folder, remove_temporaries, write_text_atomic
from grutool.checkpoint import load_checkpoint, load_weights, save_atomic
from grutool.config import MINIMIZED_METRICS, Config
from grutool.config_file import to_yaml
from grutool.data.batching import collate, training_batches
from grutool.data.loading import transient_cache
from grutool.errors import TrainingDiverged, TrainingInterrupted, UserError
from grutool.models import count_parameters
from grutool.modules.encoder import detach_state
from grutool.families import Prepared, get_task
from grutool.training import distributed
from grutool.training.callbacks import Callback, Checkpointer, EarlyStopping, MetricsWriter
from grutool.training.device import resolve_device
from grutool.training.evaluation import evaluate_split
from grutool.training.ema import EMA
from grutool.training.memory import check_fits, count_on_meta
from grutool.training.optim import Schedule, build_optimizer, clip_grad_norm, grad_norm
from grutool.training.progress import Progress, epoch_line, number, resolve_mode
from grutool.training.tracking import GradientMonitor, TensorBoard, tensorboard_writer_class

log = logging.getLogger("grutool")

# Fields that may change between a run and its --resume (to train longer, say).
RESUMABLE_CHANGES = {"train.epochs", "train.max_steps", "train.patience", "train.tensorboard", "train.nonfinite", "train.max_skipped_steps",
                     "train.dist_timeout_s"}


@dataclass
class TrainState:
    epoch: int = 0            # epochs completed (so also the 0-based index of the current one)
    batch_in_epoch: int = 0   # batches of `epoch` already trained
    step: int = 0             # optimizer steps so far
    best: Optional[float] = None
    best_epoch: int = 0
    bad_epochs: int = 0
    improved: bool = False
    should_stop: bool = False
    wall_time_s: float = 0.0
    skipped_steps: int = 0    # batches whose update was dropped for a non-finite loss or gradient
    skipped_in_row: int = 0


class Trainer:
    """One training run. Distributed (`dist`), every rank holds one: `model` is the plain module (what is
    saved, evaluated and averaged by EMA), `net` what the training step calls (DDP around `model`)."""

    def __init__(self, cfg: Config, task, prepared, model: torch.nn.Module, run_dir: Path,
                 device: torch.device, callbacks: Sequence[Callback], dist: distributed.Dist = distributed.SINGLE):
        self.cfg, self.task, self.data = cfg, task, prepared
        self.model = model.to(device)
        self.dist = dist
        self.net = distributed.wrap(self.model, dist, device)
        self.run_dir, self.device = run_dir, device
        self.callbacks = list(callbacks)
        t = cfg.train
        self.train_split = prepared.splits["train"]
        self.val_split = prepared.splits.get("validation")
        if self.train_split.streams is not None:
            # A stream split's chunks continue each other: every rank reads every chunk, of its own rows
            # (distributed.shard_streams), so the count is the single process's.
            self.batches_per_epoch = -(-len(self.train_split) // self.train_split.streams)
        else:
            batches = -(-len(self.train_split) // t.batch_size)
            self.batches_per_epoch = batches // dist.world_size  # per rank: see distributed.shard
        self.total_steps = t.epochs * self.batches_per_epoch
        if t.max_steps is not None:
            self.total_steps = min(self.total_steps, t.max_steps)
        self.optimizer = build_optimizer(self.model.parameters(), t)
        self.schedule = Schedule(self.optimizer, t, self.total_steps)
        self.use_amp = device.type == "cuda" and t.amp
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.ema = EMA(self.model, t.ema_decay) if t.ema_decay else None
        self.monitor = t.monitor if self.val_split is not None else None
        self.state = TrainState()
        self.diverged: Optional[str] = None  # why training stopped early on non-finite values
        # Truncated BPTT (a split that carries_state): the model's detached final state after the last
        # batch, the next batch's initial state; None at the start of each epoch. Saved in last.pt.
        self.carry = None
        self._interrupt_requested = False
        self._interrupt_agreed = False  # distributed: some rank's Ctrl-C, as all ranks learnt it in the same step
        # The last step's gradient norms, for callbacks (grutool.training.tracking): the global norm when the
        # step computed one; per parameter only with track_grads (a TensorBoard run), to keep steps cheap.
        self.track_grads = False
        self.last_grad_norm: Optional[float] = None
        self.last_grad_norms: dict[str, float] = {}

    # --- checkpoints -------------------------------------------------------------

    def _meta(self) -> dict:
        return {"state": asdict(self.state), "monitor": self.monitor, "task": self.cfg.task,
                "world_size": self.dist.world_size}

    def save_best(self) -> None:
        if not self.dist.is_main:
            return
        # With EMA, the averaged weights are the ones validated, so they are the ones kept.
        weights = self.ema.shadow if self.ema else self.model.state_dict()
        save_atomic({"model": weights, "meta": self._meta()}, self.run_dir / rundir.BEST)

    def save_last(self) -> None:
        """last.pt; distributed, every rank calls it (each rank's RNG state goes in), rank 0 writes it."""
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        carry = self.carry
        if self.dist.enabled:
            rng = {**rng, "ranks": distributed.all_gather(self.dist, rng)}
            if self.train_split.carries_state:  # each rank carries its own streams' state
                carry = {"ranks": distributed.all_gather(self.dist, _to_device(carry, torch.device("cpu")))}
            if not self.dist.is_main:
                return
        save_atomic({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                     "schedule": self.schedule.state_dict(), "scaler": self.scaler.state_dict(),
                     "ema": self.ema.state_dict() if self.ema else None,
                     "rng": rng, "carry": carry, "meta": self._meta()}, self.run_dir / rundir.LAST)

    def restore(self, ckpt: dict, path: Path, sizes: dict[str, int]) -> None:
        """Continue from last.pt (`ckpt`, read from `path`); a UserError if it does not fit this run."""
        load_weights(self.model, ckpt["model"], path, sizes)
        try:
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.schedule.load_state_dict(ckpt["schedule"])
            self.scaler.load_state_dict(ckpt["scaler"])
            if self.ema is not None and ckpt.get("ema"):
                self.ema.load_state_dict(ckpt["ema"])
            self.state = TrainState(**ckpt["meta"]["state"])
            rng = ckpt["rng"]["ranks"][self.dist.rank] if self.dist.enabled else ckpt["rng"]
            torch.set_rng_state(rng["torch"])
            carry = ckpt.get("carry")
            if self.dist.enabled and isinstance(carry, dict):  # each rank's own streams' state
                carry = carry["ranks"][self.dist.rank]
            carry = tuple(carry) if isinstance(carry, list) else carry
            self.carry = _to_device(carry, self.device)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise UserError(f"{path}: training state does not fit this run ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else 'incomplete'}); restore last.pt as "
                            f"training wrote it, or start over with `overwrite`", option="overwrite") from None
        self.state.should_stop = False
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])

    # --- the loop ----------------------------------------------------------------

    def _emit(self, event: str, *args) -> None:
        for cb in self.callbacks:
            getattr(cb, event)(self, *args)

    def step(self, index: list[int]) -> tuple[float, int]:
        """One optimizer step on the training examples at `index`; returns (loss, real tokens).

        A non-finite loss or gradient norm applies no update (see `_nonfinite`). Under AMP, infinite
        gradients are the loss scaler's business: it skips such steps and lowers its scale.
        """
        t = self.cfg.train
        batch = collate(self.train_split, index).to(self.device)
        autocast = torch.autocast("cuda", dtype=torch.float16) if self.use_amp else contextlib.nullcontext()
        inputs = batch.extra_inputs()
        if self.train_split.carries_state:
            inputs["state"] = self.carry
        with autocast:
            out, loss = self.net(batch.ids, batch.lengths, batch.targets, **inputs)
        if self.train_split.carries_state:
            self.carry = detach_state(out.state)
        value = float(loss.detach())
        if self.dist.enabled:
            # Every rank must take the same branch below (a rank skipping backward would leave the others
            # waiting in DDP's all-reduce), and stop at the same step on Ctrl-C: both are agreed here.
            total, stops = distributed.all_sum(self.dist, [value, self._interrupt_requested], self.device,
                                               "a training step")
            value, self._interrupt_agreed = total / self.dist.world_size, stops > 0
        if not math.isfinite(value):
            self._nonfinite(f"training loss is {value}")
            return value, batch.num_tokens()
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        norm = None
        self.last_grad_norm = None
        if self.track_grads:
            self.scaler.unscale_(self.optimizer)  # once per step: clipping below finds it done
            self.last_grad_norms = {name: float(p.grad.norm()) for name, p in self.model.named_parameters()
                                    if p.grad is not None}
        if t.clip_grad_norm is not None:
            # Recurrent nets can see exploding gradients through long sequences; clipping
            # the global norm keeps one bad batch from wrecking the weights.
            if not self.track_grads:
                self.scaler.unscale_(self.optimizer)
            norm = clip_grad_norm(self.model.parameters(), t.clip_grad_norm)
        elif not self.use_amp:
            norm = grad_norm(self.model.parameters())
        if norm is not None and not self.use_amp and not math.isfinite(float(norm)):
            self.optimizer.zero_grad(set_to_none=True)
            self._nonfinite(f"gradient norm is {float(norm)}")
            return value, batch.num_tokens()
        if norm is not None and (not self.use_amp or self.track_grads):
            self.last_grad_norm = float(norm)  # already synced above without AMP
        self.state.skipped_in_row = 0
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.schedule.step()
        if self.ema is not None:
            self.ema.update()
        return value, batch.num_tokens()

    def _nonfinite(self, what: str) -> None:
        """A batch gave a non-finite loss or gradient: no update; stop or skip as train.nonfinite says."""
        t, s = self.cfg.train, self.state
        s.skipped_steps += 1
        s.skipped_in_row += 1
        self.schedule.step()  # the schedule follows the step count, updates or not
        where = f"epoch {s.epoch + 1}, step {s.step + 1}"
        fix = f"lower train.lr ({t.lr:g}) or set train.clip_grad_norm"
        if t.nonfinite == "stop":
            raise TrainingDiverged(f"training diverged at {where}: the {what}; {fix} "
                                   f"(train.nonfinite: skip drops such batches instead)")
        if s.skipped_in_row >= t.max_skipped_steps:
            raise TrainingDiverged(f"training diverged at {where}: {s.skipped_in_row} batches in a row gave "
                                   f"non-finite values (the last: {what}); {fix}")
        log.warning("%s: the %s; batch skipped (train.nonfinite: skip)", where, what)

    def _end_epoch(self, train_loss: float, tokens: int, seconds: float) -> dict:
        t = self.cfg.train
        metrics = {"train_loss": train_loss, "tokens_per_s": tokens / max(seconds, 1e-9),
                   "epoch_time_s": seconds, "lr": self.optimizer.param_groups[0]["lr"]}
        value = None
        if self.val_split is not None:
            # Distributed: every rank scores the whole split (so none waits for another), and rank 0's
            # figures are the ones all ranks act on, so early stopping and best.pt decide alike everywhere.
            with self.ema.applied(self.model) if self.ema else contextlib.nullcontext():
                val = evaluate_split(self.model, self.task, self.val_split, self.device, t.batch_size)
            val = distributed.broadcast(self.dist, val)
            self._emit("on_evaluate", val)
            metrics.update({f"val_{k}": v for k, v in val.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
            value = val[self.monitor]
            if value is not None and not math.isfinite(value):
                log.warning("epoch %d: validation %s is %s; it does not count as an improvement",
                            self.state.epoch + 1, self.monitor, value)
                value = None
                metrics["val_nonfinite"] = True
        s = self.state
        s.epoch, s.batch_in_epoch = s.epoch + 1, 0  # position after this epoch: last.pt resumes at the next
        if value is None:
            s.improved = self.val_split is None  # without validation every epoch is the newest best
        else:
            better = (lambda a, b: a < b) if self.monitor in MINIMIZED_METRICS else (lambda a, b: a > b)
            s.improved = s.best is None or better(value, s.best)
        if s.improved:
            s.best, s.best_epoch = value, s.epoch
        self.schedule.epoch_end(value)
        log.info("%s", epoch_line(s.epoch, t.epochs, metrics, self.monitor))
        self._emit("on_epoch_end", metrics)
        return metrics

    @contextlib.contextmanager
    def _deferred_sigint(self):
        """Ctrl-C stops at the next step boundary, so last.pt never holds a half-applied update.

        A second Ctrl-C stops at once (the checkpoint is still written, but may
        then not resume exactly).
        """
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame):
            if self._interrupt_requested:
                raise KeyboardInterrupt
            self._interrupt_requested = True
            log.warning("Ctrl-C: stopping after this step, saving a checkpoint (again: stop now)")

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _check_interrupt(self) -> None:
        if self._interrupt_agreed if self.dist.enabled else self._interrupt_requested:
            raise KeyboardInterrupt

    def fit(self) -> None:
        s = self.state
        self._emit("on_train_begin")
        start = time.perf_counter() - s.wall_time_s
        try:
            with distributed.peers(self.dist, "training"):
                self._epochs(start)
        except KeyboardInterrupt:
            s.wall_time_s = time.perf_counter() - start
            self._emit("on_interrupt")
            raise TrainingInterrupted(str(self.run_dir / rundir.LAST)) from None
        except TrainingDiverged as exc:
            # Stop where we are; the checkpoints on disk hold the last finite weights.
            self.diverged = str(exc)
            log.warning("%s", exc)
        s.wall_time_s = time.perf_counter() - start
        self._emit("on_train_end")

    def _epochs(self, start: float) -> None:
        t, s = self.cfg.train, self.state
        while s.epoch < t.epochs and not s.should_stop and s.step < self.total_steps:
            batches = training_batches(self.train_split, t.batch_size, t.batching, t.seed, s.epoch)
            if self.train_split.streams is not None:
                batches = distributed.shard_streams(batches, self.dist)
            else:
                batches = distributed.shard(batches, self.dist)
            if s.batch_in_epoch == 0:
                self.carry = None  # each epoch reads the streams from their start
            self.model.train()
            self._emit("on_epoch_begin")
            loss_sum, n, tokens, t0 = 0.0, 0, 0, time.perf_counter()
            for index in batches[s.batch_in_epoch:]:
                loss, ntok = self.step(index)
                s.step += 1
                s.batch_in_epoch += 1
                if math.isfinite(loss):
                    loss_sum, n = loss_sum + loss, n + 1
                tokens += ntok
                self._emit("on_step_end", loss, ntok)
                self._check_interrupt()
                if s.step >= self.total_steps:
                    break
            s.wall_time_s = time.perf_counter() - start
            # The step losses are already averaged over ranks; tokens/s counts every rank's tokens.
            tokens = int(distributed.all_sum(self.dist, [tokens], self.device, "the end of an epoch")[0])
            self._end_epoch(loss_sum / max(n, 1), tokens, time.perf_counter() - t0)
            self._check_interrupt()


def _to_device(state, device: torch.device):
    """A carried recurrent state (None, a tensor, or a tuple of them) on `device`."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(x.to(device) for x in state)
    return state.to(device)


def _check_resume_config(cfg: Config, saved: Config) -> None:
    now, before = cfg.model_dump(mode="json"), saved.model_dump(mode="json")
    diffs = []
    for section in now:
        a, b = now[section], before[section]
        if isinstance(a, dict):
            diffs += [f"{section}.{k}" for k in a if a[k] != b.get(k) and f"{section}.{k}" not in RESUMABLE_CHANGES]
        elif a != b and section != "output_dir":
            diffs.append(section)
    if diffs:
        raise UserError(f"resume: the config differs from the run's saved config in {', '.join(diffs)}; "
                        f"resume with the same config (only {', '.join(sorted(RESUMABLE_CHANGES))} may change)",
                        option="resume")


@contextlib.contextmanager
def process_settings(num_threads: Optional[int], deterministic: bool):
    """train.num_threads and train.deterministic for the duration of a run; the caller's settings after it."""
    threads, determinism = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
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
        torch.use_deterministic_algorithms(determinism, warn_only=warn_only)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn


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
    t = cfg.train
    run_dir = Path(cfg.output_dir or "runs/run")
    task = get_task(cfg.task)
    if resume and overwrite:
        raise UserError("resume: contradicts overwrite; pick one", option="resume")

    # Everything that can fail on bad input happens before the run directory is touched; the
    # directory's lock is held from the first read of a run being continued to the last write.
    with contextlib.ExitStack() as owned:
        if dry_run:  # "writes nothing": no datasets cache either (local files; a Hub dataset still downloads)
            owned.enter_context(transient_cache())
        mine: dict = {}

        def start() -> tuple:
            # Rank 0 (the only process, most often): the run directory and the vocabularies.
            # Distributed, the others get what this returns (or its error) and read their data with it.
            again, saved_cfg, last = _open(cfg, run_dir, resume, overwrite, dry_run, dist, owned)
            t0 = time.perf_counter()
            with display.stage("reading data") if display else contextlib.nullcontext():
                prepared = task.prepare(cfg, saved_cfg)
            counts = ", ".join(f"{number(len(split))} {name}" for name, split in prepared.splits.items())
            # Said once every check has passed (just before training, or the dry run's summary), so that a
            # refused run still answers with its one error line.
            mine["stages"] = [f"data: {counts} examples, vocabulary {number(len(prepared.vocab))} "
                              f"({time.perf_counter() - t0:.1f} s)"]
            check_fits(cfg, count_on_meta(task, cfg, prepared), device)
            distributed.check_streams(dist, prepared.splits["train"])
            if cfg.data.vectors and not again:  # a bad file is refused before the run directory is written
                from grutool.data.vectors import load_vectors

                mine["vectors"] = load_vectors(cfg.data.vectors, prepared.vocab, cfg.model.embedding_dim)[0]
            if not again and not dry_run:
                run_dir.mkdir(parents=True, exist_ok=True)
                owned.enter_context(rundir.RunLock(run_dir))
                rundir.prepare_new(run_dir, overwrite)  # a partial run (resume or not) starts over by itself
                write_text_atomic(to_yaml(cfg), run_dir / rundir.CONFIG)
                rundir.save_vocabularies(run_dir, prepared, cfg)
            mine["prepared"] = prepared
            names = ["vocab", *task.vocabularies(cfg)]
            return again, {name: prepared.vocabulary(name) for name in names}, last

        resume, vocabs, last = distributed.share(dist, start)
        # Not rank 0: the data read with rank 0's vocabularies, so every rank numbers tokens alike.
        prepared = mine.get("prepared") or task.prepare(cfg, Prepared(vocabs.pop("vocab"), vocabs.pop("labels", None), extra=vocabs))
        stages = mine.get("stages", [])  # rank 0's lines, like its other output
        torch.manual_seed(t.seed)
        model = task.build_model(cfg, prepared)
        if "vectors" in mine:  # rank 0; DDP copies its weights to the others
            with torch.no_grad():
                model.token_embedding().weight.copy_(mine["vectors"])
        distributed.seed_rank(dist, t.seed)
        summary = {
            "task": cfg.task, "device": str(device), "parameters": count_parameters(model),
            "vocab_size": len(prepared.vocab), "num_classes": len(prepared.labels),
            "vocabularies": {name: len(prepared.vocabulary(name)) for name in task.vocabularies(cfg)
                             if prepared.vocabulary(name) is not None},
            "examples": {name: len(split) for name, split in prepared.splits.items()},
            "run_dir": str(run_dir),
        }
        if dist.enabled:
            summary.update(world_size=dist.world_size, rank=dist.rank)
        if dist.is_main:
            stages.append(f"model: {number(summary['parameters'])} parameters, device {device}"
                          + (f", {dist.world_size} processes" if dist.enabled else ""))
        if dry_run:
            for line in stages:
                log.info("%s", line)
            return summary

        cbs: list[Callback] = [EarlyStopping(t.patience), GradientMonitor()]  # before metrics.jsonl's row
        if dist.is_main and t.tensorboard:
            cbs.append(TensorBoard(run_dir / "tensorboard" if t.tensorboard is True else t.tensorboard))
        if dist.is_main:  # the one writer of metrics.jsonl
            cbs.append(MetricsWriter(run_dir / rundir.METRICS))
        cbs.append(Checkpointer())  # every rank: last.pt carries each rank's RNG state
        if display is not None:  # rank 0's only (train() makes none elsewhere)
            cbs.append(display)
        trainer = Trainer(cfg, task, prepared, model, run_dir, device, cbs + list(callbacks), dist)
        if resume:
            trainer.restore(last, run_dir / rundir.LAST, rundir.sizes(prepared, cfg))
            # Rank 0 reads summary.json; every rank stops alike (a rank going on alone would wait for the others).
            finished = distributed.broadcast(dist, _finished(trainer) if dist.is_main else None)
            if finished:
                return finished if dist.is_main else {**summary, "epochs": trainer.state.epoch,
                                                       "steps": trainer.state.step}
            if dist.is_main:
                for tmp in remove_temporaries(run_dir):
                    log.info("removed %s, left by an interrupted write", tmp)
                # The run goes on: an earlier finish's summary no longer describes it (`grutool runs` would
                # say "finished" of a run killed mid-resume); _finish writes the new one.
                (run_dir / rundir.SUMMARY).unlink(missing_ok=True)
            log.info("resuming at epoch %d, step %d", trainer.state.epoch + 1, trainer.state.step)
        for line in stages:
            log.info("%s", line)
        with trainer._deferred_sigint():
            trainer.fit()
        if not dist.is_main:
            return {**summary, "epochs": trainer.state.epoch, "steps": trainer.state.step}
        return _finish(trainer, summary)


def _finished(trainer: Trainer) -> Optional[dict]:
    """--resume of a run that already ended (all epochs, max_steps, early stopping): its summary, said so."""
    s, t = trainer.state, trainer.cfg.train
    done = (s.epoch >= t.epochs or s.step >= trainer.total_steps
            or (t.patience is not None and s.bad_epochs >= t.patience))
    path = trainer.run_dir / rundir.SUMMARY
    if not (done and path.is_file()):
        return None
    import json

    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(summary, dict) or (summary.get("epochs"), summary.get("steps")) != (s.epoch, s.step):
        return None  # written before training went on (a resume killed later): _finish writes a true one
    log.warning("%s: the run is complete (%d of %d epochs, %d steps); nothing to resume. To train longer, "
                "resume with a larger train.epochs (e.g. --set train.epochs=%d)", trainer.run_dir, s.epoch,
                t.epochs, s.step, t.epochs * 2)
    return summary


def _open(cfg: Config, run_dir: Path, resume: bool, overwrite: bool, dry_run: bool, dist: distributed.Dist,
          owned: contextlib.ExitStack) -> tuple:
    """Rank 0: check (and, to resume, lock and read) the run directory: (resume, saved run or None, last.pt)."""
    rundir.check_location(run_dir)
    saved, last = None, None
    if resume:
        if rundir.is_partial(run_dir) or not rundir.contents(run_dir):
            # Killed before its first checkpoint (or before its folder was made): nothing to continue.
            log.warning("%s: the run stopped before its first checkpoint; nothing to resume, starting over",
                        run_dir)
            rundir.check_new(run_dir, overwrite)
            return False, None, None
        if not rundir.is_run(run_dir):
            rundir.check_new(run_dir, overwrite)  # a user's folder: refused, naming why
        if not (run_dir / rundir.LAST).is_file():
            raise UserError(f"resume: {run_dir / rundir.LAST} not found; nothing to resume "
                            f"(start a new run instead)", option="resume")
        owned.enter_context(rundir.RunLock(run_dir))
        saved = rundir.open_run(run_dir)
        _check_resume_config(cfg, saved.config)
        last = load_checkpoint(run_dir / rundir.LAST)
        _check_world_size(run_dir, last, dist)
        _check_best_exists(run_dir, last)
    elif not dry_run:
        rundir.check_new(run_dir, overwrite)
    return resume, saved, last


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


def _finish(trainer: Trainer, summary: dict) -> dict:
    """summary.json from the best weights; TrainingDiverged when the run left nothing usable."""
    s, run_dir, t = trainer.state, trainer.run_dir, trainer.cfg.train
    summary.update({"epochs": s.epoch, "steps": s.step, "wall_time_s": round(s.wall_time_s, 2),
                    "monitor": trainer.monitor, "best": s.best, "best_epoch": s.best_epoch,
                    "skipped_steps": s.skipped_steps, "diverged": trainer.diverged})
    if not (run_dir / rundir.BEST).is_file():
        why = trainer.diverged or f"no epoch gave a finite validation {trainer.monitor}"
        raise TrainingDiverged(f"{run_dir}: nothing usable was saved ({why})")
    if trainer.val_split is not None:
        best = load_checkpoint(run_dir / rundir.BEST)
        load_weights(trainer.model, best["model"], run_dir / rundir.BEST, rundir.sizes(trainer.data, trainer.cfg))
        val = evaluate_split(trainer.model, trainer.task, trainer.val_split, trainer.device, t.batch_size)
        summary["validation"] = {k: v for k, v in val.items() if not k.endswith("confusion")}
    write_text_atomic(jsonsafe.dumps(summary, indent=2), run_dir / rundir.SUMMARY)
    return summary
