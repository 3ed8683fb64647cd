"""How torch's CPU threads wait for each other: chosen for a `grutool` process before torch loads.

torch's CPU builds run their threads on GNU OpenMP (libgomp), which reads its wait policy once, when torch loads.
Left unset, a thread that finishes its share of a parallel region first spins there, about 300,000 times, before it
sleeps. On a machine whose cores other processes also use (a CI runner, a second training, a study's other runs),
the thread it waits for is often not running, and the spinning one holds a core the other needs: a training
step made of many small regions then waits a scheduler tick at each. `OMP_WAIT_POLICY=PASSIVE` makes a waiting
thread sleep at once. Measured on 2 cores (docs/benchmarks.md, "Threads on a shared machine"): the README's first
training's loop beside one busy process 6.7 s spinning against 1.9 s sleeping, beside two 10.7 s (149 s on a
busier machine) against 4.6 s; on an idle machine sleeping costs it 0.9 s (1.5 against 2.4 s), a wake-up per small
parallel region.

A policy or spin count the user set (`OMP_WAIT_POLICY`, `GOMP_SPINCOUNT`) is kept, and nothing is set once torch
is loaded (libgomp has read it then). Processes grutool starts (`--nproc`'s torchrun workers, `study` and `tune`
jobs) inherit it. The Python API leaves the environment alone: set the variable before importing torch.
"""

from __future__ import annotations

import os
import sys
from typing import MutableMapping, Optional

WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def thread_wait(environ: Optional[MutableMapping[str, str]] = None) -> str:
    """How waiting threads wait, as the environment says (`OMP_WAIT_POLICY=PASSIVE`, `GOMP_SPINCOUNT=1000`, both
    joined by `, `), or `libgomp default`: what bench records beside the thread count."""
    environ = os.environ if environ is None else environ
    return ", ".join(f"{name}={environ[name]}" for name in WAIT_VARIABLES if environ.get(name)) or "libgomp default"


def sleep_when_waiting(environ: Optional[MutableMapping[str, str]] = None) -> bool:
    """Set OMP_WAIT_POLICY=PASSIVE in `environ` (os.environ) unless the user chose how threads wait or torch is
    already loaded; True when it set it."""
    environ = os.environ if environ is None else environ
    if "torch" in sys.modules or any(environ.get(name) for name in WAIT_VARIABLES):
        return False
    environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return True
