"""Scaling of data-parallel training on this machine (issue 15): 1 process vs N, one thread each, same global batch.

For each config: `grutool train` with 1 process and batch B, then `--nproc N` with batch B / N per process
(the same global batch, so the same number of optimizer steps and learning rate), both for `--epochs` epochs.
Reports, from each run's metrics.jsonl: tokens/s (all processes), wall time per epoch, and the time until the
validation metric first reached `--target` (default: the lower of the two runs' best, so both reach it).

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/ddp_scaling.py configs/sst2.yaml configs/pos.yaml --epochs 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml
import script_args  # noqa: E402  (benchmarks/ is sys.path[0])


def run(config: str, nproc: int, batch: int, epochs: int, out: Path) -> dict:
    cmd = [sys.executable, "-m", "grutool", "train", config, "-o", str(out), "--overwrite", "-q",
           "--set", f"train.batch_size={batch}", "--set", f"train.epochs={epochs}", "--set", "train.num_threads=1",
           "--set", "train.patience=null"]
    if nproc > 1:
        cmd += ["--nproc", str(nproc)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode == 2:  # grutool said what is wrong in one line (data not in place: docs/data.md)
        sys.exit(2)
    done.check_returncode()
    wall = time.perf_counter() - t0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    monitor = yaml.safe_load((out / "config.yaml").read_text())["train"]["monitor"]
    return {"wall_s": wall, "rows": rows, "monitor": f"val_{monitor}"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("configs", nargs="+")
    ap.add_argument("--nproc", type=script_args.positive, default=2)
    ap.add_argument("--epochs", type=script_args.positive, default=2)
    ap.add_argument("--target", type=float, default=None)
    ap.add_argument("--out", default="runs/ddp_scaling")
    a = ap.parse_args()
    lines = ["| config | processes | batch/process | tokens/s | s/epoch | best val | s to target | speed-up |",
             "|---|---|---|---|---|---|---|---|"]
    for config in a.configs:
        batch = yaml.safe_load(Path(config).read_text())["train"]["batch_size"]
        res = {n: run(config, n, batch // n, a.epochs, Path(a.out) / f"{Path(config).stem}-{n}")
               for n in (1, a.nproc)}
        mon = res[1]["monitor"]
        target = a.target or min(max(r[mon] for r in v["rows"]) for v in res.values())
        base = None
        for n, v in res.items():
            rows = v["rows"]
            tps = sum(r["tokens_per_s"] * r["epoch_time_s"] for r in rows) / sum(r["epoch_time_s"] for r in rows)
            per_epoch = sum(r["epoch_time_s"] for r in rows) / len(rows)
            reached = next((i for i, r in enumerate(rows) if r[mon] >= target), None)
            to_target = None if reached is None else sum(r["epoch_time_s"] for r in rows[:reached + 1])
            base = base or tps
            lines.append(f"| {Path(config).stem} | {n} | {batch // n} | {tps:,.0f} | {per_epoch:.1f} | "
                         f"{max(r[mon] for r in rows):.4f} | {'-' if to_target is None else f'{to_target:.1f}'} | "
                         f"{tps / base:.2f}x |")
    print(f"load average before: {os.getloadavg()}")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(script_args.run(main))
