"""Processes that train at once on one machine (`study --jobs`, `tune --jobs`): the thread budget they share.

One rule for both commands: the budget is `--threads` (default: every core); N jobs at once get
`budget // N` threads each, so the machine is never oversubscribed, and more jobs than threads, or a config
whose train.num_threads times N is over the budget, is refused before anything starts.
"""

from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def in_process_threads(jobs: int, threads: Optional[int]):
    """One job (no --jobs) trains in this process: a --threads budget holds torch here, for the runs and the
    report's timings, and the caller's count comes back afterwards; without --threads nothing changes."""
    if jobs != 1 or threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def child_env(threads: int) -> dict:
    """The environment of a job's process: this one's, with OpenMP and MKL held to its `threads`."""
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


class Processes:
    """The training processes a `--jobs` command runs at once (study's runs, tune's trials), each in a session
    of its own: a terminal's Ctrl-C reaches grutool alone, which passes one SIGINT to each (`stop_all`: every
    run saves its last.pt; a second could cut that write short) and starts no further one."""

    def __init__(self):
        import threading

        self.guard = threading.Lock()
        self.running: set = set()
        self.stopping = False

    def run(self, cmd: list[str], env: dict, where: str, on_start=None) -> tuple[int, str, str, int]:
        """(exit code, stdout, stderr, pid) of `cmd` run to its end; TrainingInterrupted(`where`) instead once
        stopping. `on_start()` is called just before it starts (a log line that must not follow a Ctrl-C)."""
        import subprocess

        from grutool.errors import TrainingInterrupted

        with self.guard:
            if self.stopping:
                raise TrainingInterrupted(where)
            if on_start is not None:
                on_start()
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, env=env, start_new_session=True)
            self.running.add(proc)
        try:
            stdout, stderr = proc.communicate()
        finally:
            with self.guard:
                self.running.discard(proc)
        return proc.returncode, stdout, stderr, proc.pid

    def stop_all(self) -> None:
        """One SIGINT to each running process (the first call only); none start after it."""
        import signal

        with self.guard:
            if self.stopping:
                return
            self.stopping = True
            for proc in self.running:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGINT)


def stop_when_orphaned(parent: Optional[int] = None) -> None:
    """In a job's process (study's runs, tune's trials, `train --nproc`'s workers): one Ctrl-C (SIGINT) to itself
    once `parent` (default: the process that started this one) is gone, killed outright (e.g. SIGKILL) so that it
    could not pass a SIGINT on; at once where it is gone already. The run then stops as after Ctrl-C, with its
    last.pt, instead of training on in its own session, unseen, holding the run's lock.

    A daemon thread that looks at the parent's pid once a second: exactly one SIGINT, on any POSIX system.
    (Linux's PR_SET_PDEATHSIG, used before for `--nproc`, sends its signal again each time the process is
    handed to another of the dying parent's threads: torchrun starts its workers from a thread, so a worker got
    two SIGINTs, the second of which means "stop now" and cut a collective short on one rank, leaving the other
    waiting for train.dist_timeout_s.)"""
    import signal
    import threading
    import time

    parent = os.getppid() if parent is None else parent

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch, name="grutool-orphan-watch", daemon=True).start()
