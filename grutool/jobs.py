"""Processes that train at once on one machine (`study --jobs`, `tune --jobs`): the thread budget they share.

One rule for both commands: the budget is `--threads` (default: every core); N jobs at once get
`budget // N` threads each, so the machine is never oversubscribed, and more jobs than threads, or a config
whose train.num_threads times N is over the budget, is refused before anything starts.
"""

from __future__ import annotations

import os
from typing import Optional

from grutool.errors import UserError


def thread_share(jobs: int, threads: Optional[int], num_threads: Optional[int], unit: str = "runs") -> int:
    """Threads per job for `jobs` processes at once within `threads` (None: every core); `num_threads`: the
    config's train.num_threads (None: unset). Refusals name the `jobs` option."""
    budget = threads or os.cpu_count() or 1
    if jobs < 1 or jobs > budget:
        raise UserError(f"jobs: {jobs} {unit} at once need at least {max(jobs, 1)} threads, and the budget is "
                        f"{budget} (--threads, default: this machine's cores); "
                        f"{'lower --jobs' if jobs > 0 else '--jobs is at least 1'}", option="jobs")
    if jobs > 1 and num_threads and num_threads * jobs > budget:
        raise UserError(f"jobs: train.num_threads {num_threads} × {jobs} jobs is more than the budget of {budget} "
                        f"threads; lower --jobs or train.num_threads", option="jobs")
    return budget // jobs


def child_env(threads: int) -> dict:
    """The environment of a job's process: this one's, with OpenMP and MKL held to its `threads`."""
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
