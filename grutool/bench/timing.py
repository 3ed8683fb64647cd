"""The timing harness: warm-up, calibration, interleaved repeats, robust statistics.

Method (why each step is there):
- Warm-up calls first: the first call of a workload allocates, builds oneDNN/cuDNN
  primitives and fills caches; it says nothing about steady-state speed.
- Calibration: a sample repeats the call `number` times so it lasts at least
  `min_sample_s`; per-call time is the sample divided by `number`. Short calls are
  otherwise dominated by timer resolution and scheduler jitter.
- Interleaving: the workloads compared with each other (GRU, LSTM, RNN of one
  configuration) are sampled in turn, A B C A B C ..., so drift of the machine
  (another job starting, thermal throttling) lands on all of them alike.
- Median with quartiles, min and max: robust to the odd preempted sample; a row
  whose interquartile range is wide against its median is flagged as noisy.
- GPU work is asynchronous: the clock synchronises (CUDA events) so a sample
  covers the kernels it launched, not just their launch.

Pure Python: no torch import here (the CUDA clock imports it when built).
"""

from __future__ import annotations

import contextlib
import gc
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, ContextManager, Optional, Sequence

NOISY_SPREAD = 0.10  # IQR / median above this: the row is flagged as too noisy to trust


@dataclass
class Case:
    """One thing to time: `fn()` does one call (one batch); `context()` is entered around each sample."""

    name: str
    fn: Callable[[], object]
    context: Callable[[], ContextManager] = contextlib.nullcontext


@dataclass
class Stats:
    """Seconds per call of one case."""

    samples: list[float]   # per-call seconds of each timed sample, in the order taken
    number: int            # calls per sample
    median: float = field(init=False)
    q1: float = field(init=False)
    q3: float = field(init=False)
    min: float = field(init=False)
    max: float = field(init=False)

    def __post_init__(self) -> None:
        s = sorted(self.samples)
        self.median = statistics.median(s)
        if len(s) >= 2:
            self.q1, _, self.q3 = statistics.quantiles(s, n=4, method="inclusive")
        else:
            self.q1 = self.q3 = s[0]
        self.min, self.max = s[0], s[-1]

    @property
    def spread(self) -> float:
        """Interquartile range relative to the median."""
        return (self.q3 - self.q1) / self.median if self.median > 0 else math.inf

    @property
    def noisy(self) -> bool:
        return self.spread > NOISY_SPREAD


class WallClock:
    """perf_counter around the calls; `sync` (e.g. torch.cuda.synchronize) before each reading."""

    def __init__(self, sync: Optional[Callable[[], None]] = None, now: Callable[[], float] = time.perf_counter):
        self.sync = sync or (lambda: None)
        self.now = now

    def start(self) -> None:
        self.sync()
        self._t0 = self.now()

    def stop(self) -> float:
        self.sync()
        return self.now() - self._t0


class CudaEventClock:
    """CUDA events recorded on the current stream: GPU time of the launched work, synchronised."""

    def __init__(self):
        import torch

        self.torch = torch
        self._start = torch.cuda.Event(enable_timing=True)
        self._end = torch.cuda.Event(enable_timing=True)

    def start(self) -> None:
        self.torch.cuda.synchronize()  # nothing queued earlier may count towards this sample
        self._start.record()

    def stop(self) -> float:
        self._end.record()
        self._end.synchronize()
        return self._start.elapsed_time(self._end) / 1000.0


def _sample(case: Case, number: int, clock) -> float:
    with case.context():
        clock.start()
        for _ in range(number):
            case.fn()
        return clock.stop() / number


def time_interleaved(cases: Sequence[Case], *, repeats: int, warmup: int = 1, min_sample_s: float = 0.05,
                     number: Optional[int] = None, clock=None) -> list[Stats]:
    """Time `cases` against each other: warm-up, calibrate, then `repeats` rounds of A B C ...

    `number` fixes the calls per sample (otherwise chosen per case so that a sample lasts at least
    `min_sample_s`: from the fastest of the warm-up calls and of one sample at the count they suggest; the
    first calls of a case are often its slowest (allocation, a JIT's first shapes), and a count taken from the
    last warm-up call alone gave one call a sample where a sample of 50 ms was said). Returns one Stats per
    case, in order.
    """
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    clock = clock or WallClock()
    fastest = [math.inf] * len(cases)
    for _ in range(max(warmup, 1 if number is None else 0)):
        for i, case in enumerate(cases):
            fastest[i] = min(fastest[i], _sample(case, 1, clock))
    if number is None:
        for i, case in enumerate(cases):  # one steady sample refines each count
            count = max(1, math.ceil(min_sample_s / max(fastest[i], 1e-9)))
            fastest[i] = min(fastest[i], _sample(case, count, clock))
    numbers = [number or max(1, math.ceil(min_sample_s / max(t, 1e-9))) for t in fastest]
    samples: list[list[float]] = [[] for _ in cases]
    # The collector could run inside one sample and not another; Python objects made
    # per call are few, so pausing it costs nothing and removes that noise.
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for _ in range(repeats):
            for i, case in enumerate(cases):
                samples[i].append(_sample(case, numbers[i], clock))
    finally:
        if was_enabled:
            gc.enable()
    return [Stats(s, n) for s, n in zip(samples, numbers)]
