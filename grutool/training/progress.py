"""What a person watching a training (or a bench) sees: data-loading stages, one bar over the whole run,
plain numbers. tqdm draws every bar grutool shows (`TerminalBar`; `grutool bench` uses it too).

Two displays, one callback:

    bar     (a terminal) one tqdm bar over every step of the run (`train.max_steps` included), with the
            epoch, the overall ETA, the epoch's running loss and tokens/s from the first step; log lines
            (epoch results, warnings, Ctrl-C) are written above the bar, never through it
    lines   (a file or pipe: CI logs) no bar; a `step N/M` line at most every `every_s` seconds (`update N/M`
            where the speed counts time steps: `Task.update_name`)

Numbers are written for people: `23,480 tok/s`, `loss 0.4312`, never `2.348e+04`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from typing import Optional

from grutool.training.callbacks import Callback

log = logging.getLogger("grutool")

LINE_EVERY_S = 30.0
COLUMNS = 80  # what a line written for a terminal keeps within


def number(value) -> str:
    """A figure as people read it: integers and large values with thousands separators, others 4 decimals, or
    4 significant digits below 0.001 (a regressor's error in small units is not `0.0000`)."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int) or abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}" if 0 < abs(value) < 0.001 else f"{value:.4f}"


def duration(seconds: float) -> str:
    """0:42, 12:05, 1:02:03."""
    seconds = int(round(max(seconds, 0.0)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def short_name(name: Optional[str]) -> Optional[str]:
    """A monitor's name where a line is tight: `sentence_accuracy` -> `sentence_acc`."""
    return name.replace("accuracy", "acc") if name else name


def epoch_line(epoch: int, epochs: int, metrics: dict, monitor: Optional[str], unit: str = "tok",
               partial: Optional[tuple[int, int]] = None, name: Optional[str] = None,
               shorten: bool = False, step: str = "step") -> str:
    """`epoch 3/30: loss 0.4123 | val loss 0.3981, accuracy 0.8125 | 23,480 tok/s`, within 80 columns: when the
    line would not fit, a long monitor name is shortened (`sentence_accuracy` -> `sentence_acc`), an epoch cut
    short said in fewer words, then the speed left out (metrics.jsonl keeps it). `unit`: what the speed counts,
    the task's `rate_unit` (numeric sequences `steps`, a forecaster `windows`). `partial`: (steps trained, steps
    in the epoch) of an epoch that train.max_steps cut short: `epoch 1/30 (3 of 25 steps): ...`; `step`: what the
    run calls an optimizer step (`Task.update_name`: numbers' `update`; one batch per process). `name`: the
    monitor as this run's task calls it (`Task.label`: a numeric tagger's `token_accuracy` is `step_accuracy`),
    by default its key. `shorten`: the shortened name even where the long one fits (`EpochLines`)."""
    name = name or monitor
    short = short_name(name)
    if shorten:
        name = short
    cut = f" ({number(partial[0])} of {number(partial[1])} {step}s)" if partial else ""
    compact = f" ({number(partial[0])}/{number(partial[1])} {step}s)" if partial else ""
    tries = [(name, unit, cut), (short, unit, cut), (short, unit, compact), (short, None, cut),
             (short, None, compact), (short, None, " (partial)" if partial else "")]
    for shown, speed, said in tries:
        line = _epoch_line(epoch, epochs, metrics, monitor, shown, speed, said)
        if len(line) <= COLUMNS:
            break
    return line


class EpochLines:
    """A run's epoch lines (`epoch_line`): once one needed the shortened monitor name (`step_acc`), every later one
    uses it too, so the figure keeps one name down the column; it switched from epoch to epoch with the width of
    the speed figure (`9,871 tok/s`, then `10,012 tok/s`)."""

    def __init__(self, monitor: Optional[str], unit: str = "tok", name: Optional[str] = None, step: str = "step"):
        self.monitor, self.unit, self.name, self.step = monitor, unit, name or monitor, step
        self.short = False

    def __call__(self, epoch: int, epochs: int, metrics: dict, partial: Optional[tuple[int, int]] = None) -> str:
        line = epoch_line(epoch, epochs, metrics, self.monitor, self.unit, partial, self.name, self.short, self.step)
        if self.name and short_name(self.name) != self.name and f" {short_name(self.name)} " in line:
            self.short = True
        return line


def _epoch_line(epoch: int, epochs: int, metrics: dict, monitor: Optional[str], shown: Optional[str],
                unit: Optional[str], cut: str) -> str:
    parts = [f"loss {number(metrics['train_loss'])}"] if "train_loss" in metrics else []
    keys = dict.fromkeys(("loss", monitor))
    same = metrics.get("val_loss") is not None and metrics.get("val_loss") == metrics.get(f"val_{monitor}")
    if monitor != "loss" and same:
        keys.pop("loss")  # the loss is the monitored figure (a forecaster's mse loss): `val loss 0.91, mse 0.91`
    val = [f"{'loss' if k == 'loss' else shown} {number(metrics[f'val_{k}'])}" for k in keys if f"val_{k}" in metrics]
    if val:
        parts.append("val " + ", ".join(val))
    if "tokens_per_s" in metrics and unit is not None:  # the epoch's time is in metrics.jsonl
        parts.append(f"{number(round(metrics['tokens_per_s']))} {unit}/s")
    # Batches, not steps: a numeric sequence's speed counts its time steps (`steps/s`).
    return f"epoch {epoch}/{epochs}{cut}" + (": " + " | ".join(parts) if parts else "")


def draws_bars(stream) -> bool:
    """A terminal that redraws a line: not a file or pipe, nor a dumb terminal (TERM=dumb: Emacs' shell, an IDE's
    console), which printed the bar's erase codes as `^[[K` and each redraw as a line of its own."""
    return stream.isatty() and os.environ.get("TERM") not in ("dumb", "unknown")


def resolve_mode(progress) -> Optional[str]:
    """`train(progress=...)`: False/None -> no display, True -> bar on a terminal else lines, or the mode named."""
    if progress in (None, False):
        return None
    if progress is True or progress == "auto":
        return "bar" if draws_bars(sys.stderr) else "lines"
    if progress not in ("bar", "lines"):
        raise ValueError(f"progress: expected True, False, 'auto', 'bar' or 'lines' (got {progress!r})")
    return progress


class _AboveBar(logging.Handler):
    """While a bar is shown, the grutool logger's terminal handlers write through this one: clear the bar's
    line to its end (ANSI erase, which also takes a `^C` the terminal echoed there), write the record, redraw."""

    def __init__(self, bar):
        super().__init__()
        self.bar = bar
        self.replaced: list[logging.Handler] = []

    def __enter__(self):
        streams = (sys.stderr, sys.stdout, self.bar.fp)
        self.replaced = [h for h in log.handlers if isinstance(h, logging.StreamHandler) and h.stream in streams]
        if self.replaced:
            self.setFormatter(self.replaced[0].formatter)
            self.setLevel(self.replaced[0].level)
        for h in self.replaced:
            log.removeHandler(h)
        log.addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        log.removeHandler(self)
        for h in self.replaced:
            log.addHandler(h)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fp = self.bar.fp
            self.bar.clear(nolock=True)
            fp.write("\r\033[K" + self.format(record) + "\n")
            self.bar.refresh(nolock=True)
        except Exception:  # a display problem must never stop a training
            self.handleError(record)


class _StageLine:
    """`reading data …` as `_AboveBar` sees a bar: a warning logged while reading goes on a line of its own
    (it was written after the `…`), and the stage is drawn again below it."""

    def __init__(self, fp, text: str):
        self.fp, self.text = fp, text

    def clear(self, nolock: bool = False) -> None:
        self.fp.write("\r\033[K")

    def refresh(self, nolock: bool = False) -> None:
        self.fp.write(self.text)
        self.fp.flush()


class TerminalBar:
    """One tqdm bar at the foot of a terminal, the grutool logger's records written above it; erased on close.

    The bar is two columns short of the terminal: the `^C` a terminal echoes then stays on the bar's line,
    which the bar's own clear wipes (at full width it wraps and is left behind). tqdm writes only when the
    bar changes (no thread, the cursor stays visible, so a killed process leaves the terminal as it was).
    """

    def __init__(self, *, total: Optional[int], desc: str, stream, bar_format: str, initial: int = 0,
                 unit: str = "step"):
        import shutil

        from tqdm.auto import tqdm

        width = shutil.get_terminal_size((80, 24)).columns - 2
        self.tqdm = tqdm(total=total, initial=initial, unit=unit, leave=False, ncols=width, file=stream,
                         desc=desc, bar_format=bar_format)
        # Log records (epoch lines, warnings, the Ctrl-C notice) are written above the bar, never through it.
        self._redirect: Optional[_AboveBar] = _AboveBar(self.tqdm)
        self._redirect.__enter__()

    def close(self) -> None:
        if self._redirect is not None:
            self._redirect.__exit__(None, None, None)
            self._redirect = None
        self.tqdm.close()

    def __enter__(self) -> "TerminalBar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Progress(Callback):
    """The training display (see the module docstring); `stage` shows a step before the loop starts."""

    def __init__(self, mode: str = "bar", every_s: float = LINE_EVERY_S, stream=None):
        self.mode, self.every_s = mode, every_s
        self.stream = stream
        self.bar = None       # the tqdm bar of `_terminal`, while one is shown
        self.step_name = "step"  # `Task.update_name`, read at the start of training
        self._terminal: Optional[TerminalBar] = None
        self._handler: Optional[logging.Handler] = None

    # --- before the loop ----------------------------------------------------------------------

    def start(self) -> None:
        """Make sure info lines reach the user: a library caller may have configured no logging at all."""
        if not log.handlers and not logging.getLogger().handlers:
            self._handler = logging.StreamHandler(self._stream())
            self._handler.setFormatter(logging.Formatter("%(message)s"))
            log.addHandler(self._handler)
            if log.level == logging.NOTSET or log.level > logging.INFO:
                self._saved_level = log.level
                log.setLevel(logging.INFO)

    def stop(self) -> None:
        self._close()
        if self._handler is not None:
            log.removeHandler(self._handler)
            log.setLevel(getattr(self, "_saved_level", log.level))
            self._handler = None

    @contextlib.contextmanager
    def stage(self, what: str):
        """`reading data …` on a terminal while it lasts (erased after); nothing into a file or pipe."""
        if self.mode != "bar":
            yield
            return
        line = _StageLine(self._stream(), f"{what} …")
        line.refresh()
        try:
            with _AboveBar(line):
                yield
        finally:
            line.clear()
            line.fp.flush()

    # --- the loop -----------------------------------------------------------------------------

    def on_train_begin(self, trainer) -> None:
        s = trainer.state
        self.t0 = self.last_line = time.perf_counter()
        self.start_step = s.step
        self.unit = trainer.task.rate_unit(trainer.cfg)  # tok, steps (numeric sequences), windows (a forecaster)
        self.step_name = trainer.task.update_name(trainer.cfg)  # `update` where the speed counts time steps
        if self.mode != "bar":
            return
        self._terminal = TerminalBar(total=trainer.total_steps, initial=s.step, stream=self._stream(),
                                     desc=self._desc(trainer),
                                     bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                                                "[{elapsed}<{remaining}{postfix}]")
        self.bar = self._terminal.tqdm

    def on_epoch_begin(self, trainer) -> None:
        self.loss, self.n, self.tokens, self.epoch_t0 = 0.0, 0, 0, time.perf_counter()
        if self.bar is not None:
            self.bar.set_description_str(self._desc(trainer), refresh=False)

    def on_step_end(self, trainer, loss: float, tokens: int) -> None:
        if loss == loss and abs(loss) != float("inf"):
            self.loss, self.n = self.loss + loss, self.n + 1
        self.tokens += tokens
        rate = self.tokens / max(1e-9, time.perf_counter() - self.epoch_t0)
        figures = f"loss {number(self.loss / max(self.n, 1))}, {rate:,.0f} {self.unit}/s"  # as the epoch lines
        if self.bar is not None:
            self.bar.set_postfix_str(figures, refresh=False)
            self.bar.update(1)
            return
        now = time.perf_counter()
        if now - self.last_line >= self.every_s:
            self.last_line = now
            log.info("%s", self._step_line(trainer, figures, now))

    def on_train_end(self, trainer) -> None:
        self._close()

    def on_interrupt(self, trainer) -> None:
        self._close()

    # --- helpers ------------------------------------------------------------------------------

    def _step_line(self, trainer, figures: str, now: float) -> str:
        s, total = trainer.state, trainer.total_steps
        elapsed = now - self.t0
        done = s.step - self.start_step
        left = (total - s.step) * elapsed / done if done else 0.0
        return (f"{self.step_name} {s.step:,}/{total:,} ({100 * s.step / max(total, 1):.0f}%), "
                f"{self._desc(trainer)}: "
                f"{figures}, {duration(elapsed)} elapsed, ~{duration(left)} left")

    @staticmethod
    def _desc(trainer) -> str:
        return f"epoch {trainer.state.epoch + 1}/{trainer.cfg.train.epochs}"

    def _stream(self):
        return self.stream if self.stream is not None else sys.stderr

    def _close(self) -> None:
        if self._terminal is not None:
            self._terminal.close()
            self._terminal = self.bar = None
