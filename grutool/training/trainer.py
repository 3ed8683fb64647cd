"""The Trainer: one training run's epochs, steps, validation, checkpoints and Ctrl-C.

The loop is the same for every task: batches in, `(logits, loss)` out, callbacks for everything else
(grutool.training.callbacks). Its position (epoch, batch within the epoch), the RNG and optimizer state go
into last.pt (grutool.checkpoint), and an epoch's batches are a function of (seed, epoch), so --resume
replays exactly what an uninterrupted run would do.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch

from grutool import checkpoint, rundir
from grutool.config import LAZY_ONE_PROCESS, MINIMIZED_METRICS, Config
from grutool.data.batching import collate, training_batches
from grutool.errors import TrainingDiverged, TrainingInterrupted, UserError
from grutool.modules.encoder import detach_state
from grutool.training import distributed
from grutool.training.callbacks import Callback
from grutool.training.ema import EMA
from grutool.training.evaluation import evaluate_split
from grutool.training.optim import (Schedule, build_optimizer, clip_grad_norm, grad_norm, param_grad_norm,
                                    planned_steps)
from grutool.training.progress import EpochLines

log = logging.getLogger("grutool")


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
    # The current epoch's running figures, so an epoch stopped by Ctrl-C and resumed reports the whole epoch
    # (its train loss, tokens/s and time), as the uninterrupted run does. Distributed, rank 0's are saved.
    epoch_loss_sum: float = 0.0
    epoch_losses: int = 0     # steps with a finite loss
    epoch_tokens: int = 0
    epoch_time_s: float = 0.0
    # The epoch's global gradient norms, summed, counted and their largest (tracking.GradientMonitor).
    epoch_grad_norm_sum: float = 0.0
    epoch_grad_norm_steps: int = 0
    epoch_grad_norm_max: float = 0.0
    # The epoch was resumed from a last.pt saved within it by grutool before the figures above were kept
    # (`restore`): its loss, tokens/s, time and gradient norms are not known, so it reports none.
    epoch_figures_lost: bool = False


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
        self.total_steps = planned_steps(t, self.batches_per_epoch)
        self.epoch_batches = self.batches_per_epoch  # this epoch's batches, as drawn (per rank)
        # (batches trained, batches in it) of the last epoch that ended: fewer when train.max_steps cut it short
        # (its line, metrics.jsonl row and summary.json say so). None before an epoch ends.
        self.epoch_progress: Optional[tuple[int, int]] = None
        self.optimizer = build_optimizer(self.model.parameters(), t, sparse=self._lazy_embeddings())
        self.schedule = Schedule(self.optimizer, t, self.total_steps)
        self.use_amp = device.type == "cuda" and t.amp
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.ema = EMA(self.model, t.ema_decay) if t.ema_decay else None
        self.monitor = t.monitor if self.val_split is not None else None
        # What lines a person reads call it: a numeric tagger's token_accuracy is step_accuracy (Task.label).
        self.monitor_label = self.task.label(cfg, self.monitor) if self.monitor else None
        self.epoch_lines = EpochLines(self.monitor, self.task.rate_unit(cfg), self.monitor_label,
                                      self.task.update_name(cfg))
        self.state = TrainState()
        self.diverged: Optional[str] = None  # why training stopped early on non-finite values
        # Truncated BPTT (a split that carries_state): the model's detached final state after the last
        # batch, the next batch's initial state; None at the start of each epoch. Saved in last.pt.
        self.carry = None
        self._interrupt_requested = False
        self._interrupt_signal = signal.SIGINT  # which signal asked to stop: the exit code says it (128 + it)
        self._interrupt_agreed = False  # distributed: some rank's Ctrl-C, as all ranks learnt it in the same step
        # The last step's gradient norms, for callbacks (grutool.training.tracking): the global norm when the
        # step computed one; per parameter only with track_grads (a TensorBoard run), on step 1 and every
        # train.log_every steps, to keep steps cheap (empty on other steps).
        self.track_grads = False
        self.last_grad_norm: Optional[float] = None
        self.last_grad_norms: dict[str, float] = {}

    def _lazy_embeddings(self) -> tuple:
        """train.lazy_embeddings: the token embedding made to give sparse gradients (its rows in the batch), for
        the optimizer's lazy update; () when off."""
        if not self.cfg.train.lazy_embeddings:
            return ()
        if self.dist.enabled:
            raise UserError(LAZY_ONE_PROCESS, option="--nproc")
        embedding = self.model.token_embedding()
        embedding.sparse = True
        return (embedding.weight,)

    # --- checkpoints -------------------------------------------------------------

    def _meta(self) -> dict:
        return {"state": asdict(self.state), "monitor": self.monitor, "task": self.cfg.task,
                "world_size": self.dist.world_size}

    def save_best(self) -> None:
        if not self.dist.is_main:
            return
        # With EMA, the averaged weights are the ones validated, so they are the ones kept.
        weights = self.ema.shadow if self.ema else self.model.state_dict()
        checkpoint.save_best(self.run_dir / rundir.BEST, weights, self._meta())

    def save_last(self) -> None:
        """last.pt; distributed, every rank calls it (each rank's RNG state goes in), rank 0 writes it."""
        rng, carry = checkpoint.rng_states(), self.carry
        if self.dist.enabled:
            rng = {**rng, "ranks": distributed.all_gather(self.dist, rng)}
            if self.train_split.carries_state:  # each rank carries its own streams' state
                carry = {"ranks": distributed.all_gather(self.dist, _to_device(carry, torch.device("cpu")))}
            if not self.dist.is_main:
                return
        checkpoint.save_last(self.run_dir / rundir.LAST, model=self.model, optimizer=self.optimizer,
                             schedule=self.schedule, scaler=self.scaler, ema=self.ema, rng=rng, carry=carry,
                             meta=self._meta())

    def restore(self, ckpt: dict, path: Path, sizes: dict[str, int]) -> None:
        """Continue from last.pt (`ckpt`, read from `path`); a UserError if it does not fit this run."""
        self.state, carry = checkpoint.restore_last(
            ckpt, path, sizes, model=self.model, optimizer=self.optimizer, schedule=self.schedule,
            scaler=self.scaler, ema=self.ema, state_class=TrainState,
            rank=self.dist.rank if self.dist.enabled else None)
        self.carry = _to_device(carry, self.device)
        self.state.should_stop = False
        if self.state.batch_in_epoch and "epoch_loss_sum" not in ckpt["meta"]["state"]:
            self.state.epoch_figures_lost = True

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
            return value, self.task.rate_count(batch)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        norm = None
        self.last_grad_norm = None
        # Per parameter on step 1 and every train.log_every steps only: a norm per tensor costs a pass each.
        per_parameter = self.track_grads and (self.state.step == 0 or (self.state.step + 1) % t.log_every == 0)
        self.last_grad_norms = {}
        if per_parameter:
            self.scaler.unscale_(self.optimizer)  # once per step: clipping below finds it done
            self.last_grad_norms = {name: param_grad_norm(p) for name, p in self.model.named_parameters()
                                    if p.grad is not None}
        if t.clip_grad_norm is not None:
            # Recurrent nets can see exploding gradients through long sequences; clipping
            # the global norm keeps one bad batch from wrecking the weights.
            if not per_parameter:
                self.scaler.unscale_(self.optimizer)
            norm = clip_grad_norm(self.model.parameters(), t.clip_grad_norm)
        elif not self.use_amp:
            norm = grad_norm(self.model.parameters())
        if norm is not None and not self.use_amp and not math.isfinite(float(norm)):
            self.optimizer.zero_grad(set_to_none=True)
            self._nonfinite(f"gradient norm is {float(norm)}")
            return value, self.task.rate_count(batch)
        if norm is not None and (not self.use_amp or self.track_grads):
            self.last_grad_norm = float(norm)  # already synced above without AMP
        self.state.skipped_in_row = 0
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.schedule.step()
        if self.ema is not None:
            self.ema.update()
        return value, self.task.rate_count(batch)

    def _nonfinite(self, what: str) -> None:
        """A batch gave a non-finite loss or gradient: no update; stop or skip as train.nonfinite says."""
        t, s = self.cfg.train, self.state
        s.skipped_steps += 1
        s.skipped_in_row += 1
        self.schedule.step()  # the schedule follows the step count, updates or not
        where = f"epoch {s.epoch + 1}, {self.task.update_name(self.cfg)} {s.step + 1}"  # numbers' `update`
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
        metrics = {"train_loss": train_loss, "tokens_per_s": tokens / max(seconds, 1e-9), "epoch_time_s": seconds}
        if self.state.epoch_figures_lost:  # they would count the steps since the resume only (or none: 0.0)
            metrics = {}
        metrics["lr"] = self.optimizer.param_groups[0]["lr"]
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
                            self.state.epoch + 1, self.monitor_label, value)
                value = None
                metrics["val_nonfinite"] = True
        s = self.state
        self.epoch_progress = (s.batch_in_epoch, self.epoch_batches)
        partial = self.epoch_progress if s.batch_in_epoch < self.epoch_batches else None
        s.epoch, s.batch_in_epoch = s.epoch + 1, 0  # position after this epoch: last.pt resumes at the next
        if value is None:
            s.improved = self.val_split is None  # without validation every epoch is the newest best
        else:
            better = (lambda a, b: a < b) if self.monitor in MINIMIZED_METRICS else (lambda a, b: a > b)
            s.improved = s.best is None or better(value, s.best)
        if s.improved:
            s.best, s.best_epoch = value, s.epoch
        self.schedule.epoch_end(value)
        log.info("%s", self.epoch_lines(s.epoch, t.epochs, metrics, partial))
        self._emit("on_epoch_end", metrics)
        return metrics

    @contextlib.contextmanager
    def _deferred_sigint(self):
        """Ctrl-C stops at the next step boundary, so last.pt never holds a half-applied update.

        A second Ctrl-C stops at once (the checkpoint is still written, but may
        then not resume exactly). In one process, SIGTERM (`kill`, `timeout`, a batch system's preemption,
        `docker stop`) and SIGHUP (the terminal closed) do the same where they would kill it (not under
        `nohup`): they killed it with the epoch's steps unsaved and nothing said. Distributed ranks leave
        them alone: torchrun stops the ranks that outlive a failed one with SIGTERM.
        """
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame):
            if self._interrupt_requested:
                raise KeyboardInterrupt
            self._interrupt_requested, self._interrupt_signal = True, signum
            if self.dist.is_main:  # torchrun passes Ctrl-C to every rank; rank 0 alone reports
                log.warning("%s: stopping after this %s, saving a checkpoint (again: stop now)",
                            "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name,
                            self.task.update_name(self.cfg))

        stops = [signal.SIGINT]
        if not self.dist.enabled:
            stops += [s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None))
                      if s is not None and signal.getsignal(s) == signal.SIG_DFL]
        previous = {s: signal.signal(s, handler) for s in stops}
        try:
            yield
        finally:
            for s, handling in previous.items():
                if s == signal.SIGINT and self._interrupt_agreed and not self._interrupt_requested:
                    # This rank stopped on another rank's Ctrl-C, last.pt saved; its own may still be on the way
                    # (a `--nproc` worker's orphan watcher looks once a second) and, arriving after this point,
                    # raised KeyboardInterrupt in the teardown: rank 0 then said a bare "interrupted" for
                    # "interrupted: saved ...". Nothing is left to stop, so the process ignores it until it exits.
                    signal.signal(s, signal.SIG_IGN)
                else:
                    signal.signal(s, handling)

    def _check_interrupt(self) -> None:
        if self._interrupt_agreed if self.dist.enabled else self._interrupt_requested:
            raise KeyboardInterrupt

    def _progress(self) -> str:
        """Where an interrupted training stopped and what its best.pt holds, said with the interruption: a
        finished run prints `best: ...`, an interrupted one left the user to guess."""
        s, epochs = self.state, self.cfg.train.epochs
        where = (f"stopped in epoch {s.epoch + 1} of {epochs}" if s.batch_in_epoch else
                 f"stopped after epoch {s.epoch} of {epochs}")
        if not s.best_epoch:
            return f"{where}; no epoch has ended, so no best.pt yet" if not s.epoch else where
        if s.best is None:  # no validation figure: every epoch was the newest best
            return f"{where}; best.pt: epoch {s.best_epoch}, the latest (no validation figure)"
        figure = f"{self.monitor_label} {s.best:.4f}" if self.monitor_label else f"{s.best:.4f}"
        return f"{where}; best.pt: epoch {s.best_epoch}, validation {figure}"

    def fit(self) -> None:
        s = self.state
        self._emit("on_train_begin")
        start = time.perf_counter() - s.wall_time_s
        try:
            with distributed.peers(self.dist, "training"):
                self._epochs(start)
        except KeyboardInterrupt:
            s.wall_time_s = time.perf_counter() - start
            last = self.run_dir / rundir.LAST
            try:
                self._emit("on_interrupt")
            except KeyboardInterrupt:  # a second Ctrl-C during the save: the atomic write left last.pt as it was
                raise TrainingInterrupted(str(last), echo=not self.dist.is_main, saved=False,
                                          previous=last.is_file(), signum=self._interrupt_signal,
                                          progress=self._progress()) from None
            raise TrainingInterrupted(str(last), echo=not self.dist.is_main, signum=self._interrupt_signal,
                                      progress=self._progress()) from None
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
            self.epoch_batches = len(batches)
            if s.batch_in_epoch == 0:
                self.carry = None  # each epoch reads the streams from their start
                s.epoch_loss_sum, s.epoch_losses, s.epoch_tokens, s.epoch_time_s = 0.0, 0, 0, 0.0
                s.epoch_figures_lost = False
            self.model.train()
            self._emit("on_epoch_begin")
            t0 = time.perf_counter() - s.epoch_time_s
            for index in batches[s.batch_in_epoch:]:
                loss, ntok = self.step(index)
                s.step += 1
                s.batch_in_epoch += 1
                if math.isfinite(loss):
                    s.epoch_loss_sum, s.epoch_losses = s.epoch_loss_sum + loss, s.epoch_losses + 1
                s.epoch_tokens += ntok
                s.epoch_time_s = time.perf_counter() - t0
                self._emit("on_step_end", loss, ntok)
                self._check_interrupt()
                if s.step >= self.total_steps:
                    break
            flush = getattr(self.optimizer, "flush", None)
            if flush is not None:  # train.lazy_embeddings: every row up to date before validation and last.pt
                flush()
            s.wall_time_s = time.perf_counter() - start
            # The step losses are already averaged over ranks; tokens/s counts every rank's tokens.
            tokens = int(distributed.all_sum(self.dist, [s.epoch_tokens], self.device, "the end of an epoch")[0])
            self._end_epoch(s.epoch_loss_sum / max(s.epoch_losses, 1), tokens, time.perf_counter() - t0)
            self._check_interrupt()


def _to_device(state, device: torch.device):
    """A carried recurrent state (None, a tensor, or a tuple of them) on `device`."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(x.to(device) for x in state)
    return state.to(device)

