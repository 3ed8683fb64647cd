"""Callbacks: named no-op events the loop calls in a fixed order.

    on_train_begin
      on_epoch_begin
        on_step_end            (after each optimizer step)
      on_evaluate              (after validation, with its metrics)
      on_epoch_end
    on_interrupt               (Ctrl-C, before the resumable checkpoint is written)
    on_train_end
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from grutool import jsonsafe
from grutool.atomic import NO_SPACE, no_space, write_text_atomic

log = logging.getLogger("grutool")


class Callback:
    def on_train_begin(self, trainer) -> None: ...
    def on_epoch_begin(self, trainer) -> None: ...
    def on_step_end(self, trainer, loss: float, tokens: int) -> None: ...
    def on_evaluate(self, trainer, metrics: dict) -> None: ...
    def on_epoch_end(self, trainer, metrics: dict) -> None: ...
    def on_interrupt(self, trainer) -> None: ...
    def on_train_end(self, trainer) -> None: ...
    def summary_fields(self) -> dict:  # what this callback adds to the run's summary.json
        return {}


class EarlyStopping(Callback):
    """Stop after `patience` epochs without improvement of the monitored metric."""

    def __init__(self, patience: int | None):
        self.patience = patience

    def on_epoch_end(self, trainer, metrics: dict) -> None:
        s = trainer.state
        s.bad_epochs = 0 if s.improved else s.bad_epochs + 1
        if self.patience is not None and s.bad_epochs >= self.patience:
            log.info("early stopping: %s has not improved for %d epoch(s)", trainer.monitor_label, s.bad_epochs)
            s.should_stop = True


class Checkpointer(Callback):
    """best.pt when the monitored metric improves; last.pt (resumable) every epoch and on Ctrl-C."""

    def on_epoch_end(self, trainer, metrics: dict) -> None:
        if trainer.state.improved:
            trainer.save_best()
        trainer.save_last()

    def on_interrupt(self, trainer) -> None:
        trainer.save_last()


class MetricsWriter(Callback):
    """Append one JSON line per epoch to metrics.jsonl (strict JSON: a non-finite figure is null).

    The row is written before the epoch's checkpoints (it must run before Checkpointer), so a kill
    between the two never loses it; at the start of a run the file is cut back to the epochs the
    checkpoint being resumed has seen, so a replayed epoch never leaves two rows, nor a torn line.
    """

    def __init__(self, path):
        self.path = Path(path)

    def on_train_begin(self, trainer) -> None:
        if not self.path.is_file():
            return
        text = self.path.read_text(encoding="utf-8", errors="replace")
        kept = [line for line in text.splitlines() if _row_epoch(line) is not None
                and _row_epoch(line) <= trainer.state.epoch]
        fixed = "".join(line + "\n" for line in kept)
        if fixed != text:
            write_text_atomic(fixed, self.path)

    def on_epoch_end(self, trainer, metrics: dict) -> None:
        row = {"epoch": trainer.state.epoch, "step": trainer.state.step}
        trained, batches = trainer.epoch_progress
        if trained < batches:  # train.max_steps cut the epoch short
            row.update(epoch_steps=trained, steps_per_epoch=batches)
        row.update({k: v for k, v in metrics.items() if isinstance(v, (int, float))})
        line = jsonsafe.dumps(row) + "\n"
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            if exc.errno in NO_SPACE:
                raise no_space(self.path, len(line)) from None
            raise


def _row_epoch(line: str):
    """The epoch of a metrics.jsonl row, or None for a line that is not a whole row."""
    try:
        row = json.loads(line)
    except ValueError:
        return None
    return row.get("epoch") if isinstance(row, dict) and isinstance(row.get("epoch"), int) else None


class Pruning(Callback):
    """Stop a run early when `should_stop(epoch, value)` says so, fed the monitored validation figure of every
    epoch (`grutool tune`: Optuna's pruner decides; this module knows nothing of Optuna). The run ends as an
    early-stopped one does: best.pt, last.pt and summary.json written, its `pruned_at` saying the epoch."""

    def __init__(self, should_stop, offset: int = 0):
        self.should_stop = should_stop
        self.offset = offset  # steps before this run's first epoch (a trial of several seeds reports them in turn)
        self.pruned_at = None

    def on_epoch_end(self, trainer, metrics: dict) -> None:
        value = metrics.get(f"val_{trainer.monitor}") if trainer.monitor else None
        if value is None or self.pruned_at is not None:
            return
        if self.should_stop(self.offset + trainer.state.epoch, float(value)):
            log.info("pruned after epoch %d: validation %s %.4g is behind the other trials",
                     trainer.state.epoch, trainer.monitor_label, value)
            self.pruned_at = trainer.state.epoch
            trainer.state.should_stop = True

    def summary_fields(self) -> dict:
        # `grutool runs` lists a run with `pruned_at` as pruned, not finished
        return {} if self.pruned_at is None else {"pruned_at": self.pruned_at}


class KernelRecorder(Callback):
    """What the recurrent layers ran in training (`fused`, `stack` or `native`: their `path`), read through
    forward pre-hooks over the first epoch that trains a step and removed after it (`grutool study` reports it
    per cell): a run resumed from a last.pt saved after its epoch's last step (Ctrl-C during validation)
    trains none in its first epoch. The path depends on the batch (equal lengths run dense, others packed), so
    an epoch may take two."""

    def __init__(self):
        self.paths: set[str] = set()
        self._hooks = []

    def on_train_begin(self, trainer) -> None:
        for module in trainer.model.modules():
            if callable(getattr(module, "path", None)):
                self._hooks.append(module.register_forward_pre_hook(self._record))

    def _record(self, module, args) -> None:  # returns None: a pre-hook's result replaces the input
        if module.training:  # not validation's calls
            self.paths.add(module.path(args[0]))

    def on_epoch_end(self, trainer, metrics: dict) -> None:
        if self.paths:  # else this epoch only validated: keep looking
            self._remove()

    def on_train_end(self, trainer) -> None:
        self._remove()

    def _remove(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []

    @property
    def kernel(self) -> str | None:
        """One word for the run: the path all layers took, or `a+b` when they differ; None if none ran."""
        return "+".join(sorted(self.paths)) or None
