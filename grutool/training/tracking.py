"""Gradient tracking and TensorBoard: optional views of a run; metrics.jsonl stays its record.

`GradientMonitor` (always on, cheap: the global norm the step computes anyway) adds each epoch's mean and
max global gradient norm to the epoch's metrics (so to metrics.jsonl) and warns when one step's norm
exceeds `EXPLODE_FACTOR` times the running median of the recent steps and also an absolute floor
(`explode_floor`: train.clip_grad_norm, else `FLOOR`), so a spike among tiny norms stays quiet. `TensorBoard`
(train.tensorboard or `train --tensorboard DIR`) writes losses, validation metrics, the learning rate and
per-parameter gradient norms; it turns on the Trainer's per-parameter norms, which are computed only then.
"""

from __future__ import annotations

import logging
import statistics
from collections import deque
from pathlib import Path

from grutool.errors import UserError
from grutool.training.callbacks import Callback

log = logging.getLogger("grutool")

EXPLODE_FACTOR = 10.0   # a step's norm above this many times the running median is called an explosion
WINDOW = 100            # steps in the running median
MIN_STEPS = 20          # no verdict before the median has this many steps behind it
FLOOR = 1.0             # the absolute floor without train.clip_grad_norm: typical norms early in training


def explode_floor(clip: float | None) -> float:
    """The smallest norm that may be called an explosion. A ratio alone fires on tiny norms near convergence
    (0.048 against a median of 0.0044 is 11x, and harmless). With clipping on, the clip value is the user's own
    word for a norm too large to apply as it is, and a norm below it changes nothing; without it, `FLOOR`.
    Measured on configs/atis.yaml (every step's norm over 22 epochs, 2026-12-05): the ratio alone warned in 20
    epochs, at norms of 1.7 to 6.8 against medians of 0.14 to 0.38, so a floor of 1.0 would have kept all 20;
    the clip value keeps the 9 that clipping acted on."""
    return clip if clip is not None else FLOOR


class GradientMonitor(Callback):
    """Per-epoch gradient-norm figures and a warning on exploding gradients."""

    def __init__(self):
        self.recent: deque[float] = deque(maxlen=WINDOW)
        self.warned_epoch = -1

    def on_epoch_begin(self, trainer) -> None:
        # The epoch's norms live in the trainer's state, which last.pt keeps: an epoch stopped by Ctrl-C and
        # resumed reports all its steps' norms.
        s = trainer.state
        if s.batch_in_epoch == 0:
            s.epoch_grad_norm_sum, s.epoch_grad_norm_steps, s.epoch_grad_norm_max = 0.0, 0, 0.0

    def on_step_end(self, trainer, loss: float, tokens: int) -> None:
        norm = trainer.last_grad_norm
        if norm is None:
            return
        if len(self.recent) >= MIN_STEPS:
            median = statistics.median(self.recent)
            clip = trainer.cfg.train.clip_grad_norm
            if (median > 0 and norm > EXPLODE_FACTOR * median and norm > explode_floor(clip)
                    and self.warned_epoch != trainer.state.epoch):
                self.warned_epoch = trainer.state.epoch  # once per epoch: a burst is one message
                # The floor is the clip value when there is one, so a norm warned about there was clipped
                # (clip_grad_norm_ rescales only above it): "clipped" is never said of an untouched step.
                advice = f"; clipped to {clip:g}" if clip is not None else \
                    "; set train.clip_grad_norm or lower train.lr"
                # `update 22` where a numeric run's steps are time steps (`Task.update_name`), as its other lines
                log.warning("%s %d: gradient norm %.4g is %.0fx its running median %.4g (exploding gradients%s)",
                            trainer.task.update_name(trainer.cfg), trainer.state.step, norm, norm / median, median,
                            advice)
        self.recent.append(norm)
        s = trainer.state
        s.epoch_grad_norm_sum += norm
        s.epoch_grad_norm_steps += 1
        s.epoch_grad_norm_max = max(s.epoch_grad_norm_max, norm)

    def on_epoch_end(self, trainer, metrics: dict) -> None:
        s = trainer.state
        if s.epoch_grad_norm_steps and not s.epoch_figures_lost:
            metrics["grad_norm"] = s.epoch_grad_norm_sum / s.epoch_grad_norm_steps
            metrics["grad_norm_max"] = s.epoch_grad_norm_max


def tensorboard_writer_class():
    """torch's SummaryWriter, or a UserError saying how to install the tensorboard extra."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UserError("train.tensorboard (--tensorboard) needs the tensorboard package, an optional extra: "
                        "python -m pip install -c constraints.txt -e '.[tensorboard]' in grutool's source folder, "
                        "or train without it") from None
    return SummaryWriter


class TensorBoard(Callback):
    """Event files under `log_dir`: train/loss, train/lr and grad_norm/global per step; grad_norm/<parameter>
    on step 1 and every train.log_every steps; every epoch figure (val/*, epoch/*) per epoch. Rank 0 only."""

    def __init__(self, log_dir: str | Path):
        self.log_dir = Path(log_dir)
        self.writer = None

    def on_train_begin(self, trainer) -> None:
        self.writer = tensorboard_writer_class()(log_dir=str(self.log_dir), purge_step=trainer.state.step + 1)
        trainer.track_grads = True
        log.info("tensorboard: %s (tensorboard --logdir %s)", self.log_dir, self.log_dir)

    def on_step_end(self, trainer, loss: float, tokens: int) -> None:
        step, w = trainer.state.step, self.writer
        w.add_scalar("train/loss", loss, step)
        w.add_scalar("train/lr", trainer.optimizer.param_groups[0]["lr"], step)
        if trainer.last_grad_norm is not None:
            w.add_scalar("grad_norm/global", trainer.last_grad_norm, step)
        if trainer.last_grad_norms:  # computed on step 1 and every train.log_every steps only
            for name, value in trainer.last_grad_norms.items():
                w.add_scalar(f"grad_norm/{name}", value, step)

    def on_epoch_end(self, trainer, metrics: dict) -> None:
        for key, value in metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                tag = f"val/{key[4:]}" if key.startswith("val_") else f"epoch/{key}"
                self.writer.add_scalar(tag, value, trainer.state.epoch)
        self.writer.flush()

    def on_train_end(self, trainer) -> None:
        self.close()

    def on_interrupt(self, trainer) -> None:
        self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
