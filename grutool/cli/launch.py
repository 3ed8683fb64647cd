"""`grutool train --nproc N`: start the same command as N torchrun workers on this machine.

torchrun's `--standalone` rendezvous picks a free local port; each worker runs `python -m grutool train ...`
with the user's arguments less `--nproc`, and this process waits for them and exits with torchrun's code.
Multi-node jobs call torchrun directly (README, "Training on several processes").
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys


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


def launch(nproc: int, args: list[str]) -> int:
    """Run `grutool <args>` as `nproc` torchrun workers; their exit code (130 on Ctrl-C)."""
    env = dict(os.environ)
    # torchrun would set 1 and warn; one thread per process is what data parallelism on CPU wants.
    env.setdefault("OMP_NUM_THREADS", "1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "grutool", *without_nproc(args)]
    child = subprocess.Popen(command, env=env)
    # Ctrl-C reaches torchrun and its workers from the terminal; this process only waits for them
    # (subprocess.call would kill torchrun before the workers have saved their checkpoint).
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        code = child.wait()
    finally:
        signal.signal(signal.SIGINT, previous)
    return 130 if code == -signal.SIGINT else code
