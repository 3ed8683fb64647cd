"""`grutool train --nproc N`: start the same command as N torchrun workers on this machine.

This process runs torchrun's launcher itself (`torch.distributed.run`, `--standalone`: a free local port);
each worker runs `python -m grutool train ...` with the user's arguments less `--nproc`, in a session of
its own. Ctrl-C reaches this process, which passes it on to the workers once, waits for them to save
their checkpoint, and exits 130; SIGTERM and SIGHUP are passed on as Ctrl-C too (exit 143, 129). When a
worker dies, torchrun stops the others; instead of its traceback and log lines, one line says which rank
died and how (or, when every rank that stopped by itself lost its
peers (`PeerFailure`'s own exit code), which rank did not answer). Multi-node jobs call torchrun directly (README,
"Training on several processes").
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Optional

from grutool.cli.console import err

# Set for the workers `launch` starts: the launcher's pid, which they follow (`follow_launcher`).
LAUNCHER_PID = "GRUTOOL_LAUNCHER_PID"


def without_nproc(args: list[str]) -> list[str]:
    """`args` less `--nproc N` / `--nproc=N` (the workers must not launch workers)."""
    kept, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            kept.append(a)
    return kept


def oversubscribed(nproc: int, num_threads: Optional[int]) -> Optional[str]:
    """The warning for `--nproc` on CPU when the processes' threads outnumber the cores this process may run on:
    they take turns on the cores, and every step waits for the slowest. None when they fit."""
    threads = num_threads or int(os.environ.get("OMP_NUM_THREADS", "1") or 1)  # launch's default: 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if nproc * threads <= cores:
        return None
    fits = max(1, cores // threads)
    return (f"--nproc {nproc} with {threads} thread{'s' if threads > 1 else ''} each wants {nproc * threads} cores, "
            f"and this machine gives {cores}: the processes take turns and each step waits for the slowest "
            f"(--nproc {fits}{' or train.num_threads 1' if threads > 1 else ''} fits)")


def launch(nproc: int, args: list[str]) -> int:
    """Run `grutool <args>` as `nproc` torchrun workers: 0; 130 after Ctrl-C; 2 when a worker refused a bad
    input (it said why); else 1, with one line naming the rank that failed first."""
    # torchrun would set 1 and warn; one thread per process is what data parallelism on CPU wants.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    logging.disable(logging.CRITICAL)  # torchrun's own lines ("failed (exitcode: -9)", ...): said once below
    os.environ[LAUNCHER_PID] = str(os.getpid())  # the workers' environment is this one
    received: dict = {}
    previous, handled = _stop_as_ctrl_c(received)
    import shutil
    import tempfile

    # torchrun's log folder (empty: the workers write to this terminal), made here so that it goes with the run;
    # left to torchrun, every launch left a /tmp/torchelastic_* tree behind.
    logs = tempfile.mkdtemp(prefix="grutool-torchrun-")
    try:  # torchrun's own handlers for the others
        run(parse_args(["--standalone", f"--nproc-per-node={nproc}", f"--signals-to-handle={','.join(handled)}",
                        f"--log-dir={logs}", "-m", "grutool", *without_nproc(args)]))
    except ChildFailedError as exc:
        return _failed(exc.failures, nproc)
    except SignalException as exc:  # torchrun sent the signal on to the workers and waited for them
        sigval = received.get("signal", exc.sigval)
        return 130 if sigval == signal.SIGINT else 128 + int(sigval)
    finally:
        logging.disable(logging.NOTSET)
        os.environ.pop(LAUNCHER_PID, None)
        shutil.rmtree(logs, ignore_errors=True)
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0


def _stop_as_ctrl_c(received: dict) -> tuple[dict, list[str]]:
    """SIGTERM and SIGHUP (where they would end the launcher: not under `nohup`) reach the workers as Ctrl-C, so
    they stop after the same step with last.pt saved, as a one-process training does; the launcher then exits
    128 + the signal's number. torchrun passed each signal on as it came, and a worker leaves SIGTERM alone
    (torchrun's way to stop the ranks that outlive a failed one), so a batch system's preemption or `docker stop`
    lost every step since the last epoch's checkpoint, unsaid. Returns the handlers replaced and the signals
    torchrun keeps handling itself."""
    from torch.distributed.elastic.multiprocessing.api import SignalException

    def handler(signum, frame):
        received["signal"] = signum
        err.print(f"{signal.Signals(signum).name}: passed on to the workers as Ctrl-C: they stop after this step "
                  f"and save last.pt", markup=False)
        raise SignalException(f"got {signal.Signals(signum).name}", sigval=signal.SIGINT)

    previous, handled = {}, ["SIGINT", "SIGQUIT"]
    for name in ("SIGTERM", "SIGHUP"):
        s = getattr(signal, name, None)
        if s is None:
            continue
        if signal.getsignal(s) == signal.SIG_DFL:
            previous[s] = signal.signal(s, handler)
        else:  # ignored (nohup) or the caller's own handler: as before
            handled.append(name)
    return previous, handled


def follow_launcher() -> None:
    """In a worker `launch` started: a Ctrl-C (SIGINT) when the launcher dies (`jobs.stop_when_orphaned`).

    The workers run in sessions of their own, so neither a terminal's signals nor the end of a launcher killed
    with SIGKILL (which torchrun cannot pass on) reached them: they trained on, orphaned, holding the run's
    lock. Now they stop as after Ctrl-C, after the same step with a resumable last.pt.
    """
    launcher = os.environ.get(LAUNCHER_PID)
    if not launcher:
        return
    from grutool.jobs import stop_when_orphaned

    stop_when_orphaned(int(launcher))


def _failed(failures: dict, nproc: int) -> int:
    """One line for a failed job (`failures`: torchrun's ProcessFailure per global rank); the exit code."""
    from grutool.errors import PeerFailure

    lost = PeerFailure.exit_code  # a rank that lost its peers, which it says itself
    # The first failure torchrun saw (its timestamps are whole seconds: those within one of the first count as
    # seen together; the SIGKILL torchrun sends a rank that outlived its SIGTERM comes 30 s later), and of those
    # not a rank that lost its peers, nor the SIGTERM torchrun sends to stop the others.
    start = min(f.timestamp for f in failures.values())
    rank, first = min(((r, f) for r, f in failures.items() if f.timestamp <= start + 1),
                      key=lambda item: (item[1].exitcode in (lost, -signal.SIGTERM), item[1].timestamp, item[0]))
    if first.exitcode in (2, 130):
        return first.exitcode  # a bad input or Ctrl-C: the worker said so itself
    resume = (f"the run directory keeps its last complete checkpoint: continue with --resume and the same "
              f"--nproc {nproc}")
    if first.exitcode == lost:
        # No rank died or failed: each that stopped by itself waited in vain on a collective, so one of the
        # others hung (or was stopped, or was too slow) past train.dist_timeout_s.
        waited = sorted(r for r, f in failures.items() if f.exitcode == lost)
        silent = [str(r) for r in range(nproc) if r not in waited]
        who = "rank " + " or ".join(silent) if silent else "a rank"
        their = "its" if len(waited) == 1 else "their"
        err.print(f"[red]error:[/] distributed training: {_ranks(waited)} lost {their} peers: {who} did not "
                  f"answer within train.dist_timeout_s (hung, stopped or too slow), so torchrun stopped the job; "
                  f"{resume}", markup=True)
        return 1
    how = (f"was killed by {first.signal_name()}" if first.exitcode < 0
           else f"exited with code {first.exitcode}")
    others = ", ".join(str(r) for r in range(nproc) if r != rank)
    err.print(f"[red]error:[/] distributed training: rank {rank} (pid {first.pid}) {how}, so torchrun stopped the "
              f"other process{'es' if nproc > 2 else ''} (rank {others}); {resume}", markup=True)
    return 1


def _ranks(ranks: list[int]) -> str:
    return f"rank {ranks[0]}" if len(ranks) == 1 else f"ranks {', '.join(map(str, ranks))}"
