"""One rank of a test's distributed training (tests/training/test_distributed.py starts two).

argv[1]: a JSON plan {"jobs": [{"config": PATH, "resume": bool, "interrupt_at": STEP, "die_at": STEP,
"on_rank": R}], "own_group": bool}; each job is one `grutool.train` in this process's group. Prints one
JSON line per job: {"job": i, "outcome": ok | interrupted | error, "message": ..., "seconds": ...}.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def main() -> None:
    plan = json.loads(Path(sys.argv[1]).read_text())
    rank = int(os.environ["RANK"])
    import torch.distributed as td

    from grutool import load_config, train
    from grutool.errors import TrainingInterrupted, UserError
    from grutool.training.callbacks import Callback

    class At(Callback):
        """On rank `on_rank`, after global step `step`: a Ctrl-C (interrupt) or a sudden death (die)."""

        def __init__(self, step, what):
            self.step, self.what = step, what

        def on_step_end(self, trainer, loss, tokens):
            if trainer.state.step == self.step:
                if self.what == "die":
                    os._exit(3)  # no cleanup, as kill -9
                trainer._interrupt_requested = True

    if plan.get("own_group"):
        td.init_process_group("gloo")  # MASTER_ADDR/PORT, RANK, WORLD_SIZE from the environment
    for i, job in enumerate(plan["jobs"]):
        cbs = []
        if rank == job.get("on_rank", 1):
            if job.get("interrupt_at"):
                cbs.append(At(job["interrupt_at"], "interrupt"))
            if job.get("die_at"):
                cbs.append(At(job["die_at"], "die"))
        t0 = time.perf_counter()
        try:
            train(load_config(job["config"]), resume=job.get("resume", False), overwrite=not job.get("resume"),
                  callbacks=cbs)
            outcome, message = "ok", ""
        except TrainingInterrupted as exc:
            outcome, message = "interrupted", str(exc)
        except UserError as exc:
            outcome, message = "error", f"{type(exc).__name__}: {exc}"
        print(json.dumps({"job": i, "outcome": outcome, "message": message,
                          "seconds": round(time.perf_counter() - t0, 2)}), flush=True)
    if plan.get("own_group"):
        td.destroy_process_group()


if __name__ == "__main__":
    main()
