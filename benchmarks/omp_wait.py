"""Whole `grutool train` runs under OpenMP wait policies, on a quiet machine and beside other busy processes.

torch's CPU threads meet at a barrier after every parallel region (a GEMM, an element-wise op over a big tensor,
the compiled kernel's two directions), and libgomp makes a thread that arrives first spin there, by default for
about 300,000 iterations, before it sleeps. When another process holds a core, the thread it spins for is
descheduled, so the spinning thread burns its time slice while the other waits for a core: each small region can
cost a scheduler tick. `OMP_WAIT_POLICY=PASSIVE` makes it sleep at once; `GOMP_SPINCOUNT=N` spins N times first.

Each round runs every policy once, in turn (interleaved; the order rotates per round), as a fresh process:
`python -m grutool train CONFIG -q -o TMP --overwrite` with the policy's variables in its environment and nothing
else changed. It records the training loop's seconds (the `done:` line) and the whole command's wall time, the
1-minute load before each run and, with `--busy N`, keeps N busy-looping processes running for the whole
measurement (a bounded load: they stop with the script, or after `--max-seconds`).

    python benchmarks/omp_wait.py --config configs/sentiment.yaml --rounds 5 [--busy 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from script_args import names, positive  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# What each policy sets (the variables are first removed from the environment each run gets). `default` is
# libgomp's own spin count, given explicitly: with neither variable set, the `grutool` command sets PASSIVE
# (grutool/threads.py); 300,000 is what libgomp uses when neither is set and threads <= CPUs.
POLICIES = {
    "default": {"GOMP_SPINCOUNT": "300000"},
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "spin1k": {"GOMP_SPINCOUNT": "1000"},
    "spin10k": {"GOMP_SPINCOUNT": "10000"},
    "active": {"OMP_WAIT_POLICY": "ACTIVE"},
}
POLICY_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
DONE = re.compile(r"^done: .*?([0-9.]+) s$", re.M)


def busy_loops(n: int, seconds: float) -> list[subprocess.Popen]:
    """n processes that each keep one core busy for at most `seconds` (they stop by themselves)."""
    code = f"import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(n)]


def one_run(config: str, policy: str, sets: list[str], out: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in POLICY_VARS}
    env.update(POLICIES[policy])
    cmd = [sys.executable, "-m", "grutool", "train", config, "-q", "-o", str(out), "--overwrite"]
    for s in sets:
        cmd += ["--set", s]
    load = os.getloadavg()[0]
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    loop = DONE.search(done.stdout)
    return {"policy": policy, "loop_s": float(loop.group(1)) if loop else None, "wall_s": wall, "load": load}


def main(args) -> int:
    policies = args.policies.split(",")
    loads = busy_loops(args.busy, args.max_seconds) if args.busy else []
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            deadline = time.monotonic() + args.max_seconds
            for r in range(args.rounds):
                order = policies[r % len(policies):] + policies[:r % len(policies)]
                for policy in order:
                    if time.monotonic() > deadline:
                        break
                    row = one_run(args.config, policy, args.set, Path(tmp) / f"run-{policy}")
                    rows.append({"round": r + 1, **row})
                    print(f"round {r + 1} {policy:8s} loop {row['loop_s']:.2f} s, wall {row['wall_s']:.2f} s, "
                          f"load {row['load']:.2f}", flush=True)
    finally:
        for p in loads:
            p.kill()
    summary = {}
    for policy in policies:
        mine = [x for x in rows if x["policy"] == policy]
        if not mine:
            continue
        loops, walls = [x["loop_s"] for x in mine], [x["wall_s"] for x in mine]
        summary[policy] = {"runs": len(mine), "loop_median_s": statistics.median(loops), "loop_min_s": min(loops),
                           "loop_max_s": max(loops), "wall_median_s": statistics.median(walls)}
    base = summary.get(policies[0], {}).get("loop_median_s")
    print(f"\n{args.config} {' '.join('--set ' + s for s in args.set)}; busy processes: {args.busy}; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; load {min(x['load'] for x in rows):.2f}"
          f"-{max(x['load'] for x in rows):.2f}")
    print("| policy | runs | loop s, median (min-max) | whole command s, median | loop ÷ first |")
    print("|---|---:|---|---:|---:|")
    for policy, s in summary.items():
        ratio = s["loop_median_s"] / base if base else float("nan")
        print(f"| {policy} | {s['runs']} | {s['loop_median_s']:.2f} ({s['loop_min_s']:.2f}-{s['loop_max_s']:.2f}) "
              f"| {s['wall_median_s']:.2f} | {ratio:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"config": args.config, "set": args.set, "busy": args.busy,
                                               "rows": rows, "summary": summary}, indent=2))
    return 0


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="configs/sentiment.yaml")
    p.add_argument("--set", action="append", default=[], help="passed to train as --set (repeatable)")
    p.add_argument("--policies", type=names(*POLICIES), default="default,passive,spin1k")
    p.add_argument("--rounds", type=positive, default=5)
    p.add_argument("--busy", type=int, default=0, help="busy-looping processes beside the runs (default 0)")
    p.add_argument("--max-seconds", type=positive, default=1800, help="bound on the whole measurement")
    p.add_argument("--json")
    return p.parse_args(argv)


if __name__ == "__main__":
    from script_args import run

    sys.exit(run(main, parse()))
