"""Write the toy numeric-sequence data in this folder (deterministic; run from anywhere).

    {train,validation,test}.ts    2 channels, 6-20 steps, three classes with spaces in their names
                                  ("sine wave", "square wave", "ramp up"), for `task: classifier`
    {train,validation,test}.csv   the same sequences as a long table, a row per step (columns id, step, a, b,
                                  shape, freq, phase, clean): `shape` is the class, `freq` the sine's
                                  frequency (a real target for `task: regressor`), `phase` a label per step
                                  (rising or falling, for `task: tagger`), `clean` channel a without its noise
                                  (a real target per step: `task: regressor` with `data.per_step`); rows are
                                  written out of step order, so `data.time_column: step` has work to do

A GRU learns both in seconds (configs/numeric.yaml, configs/numeric_regression.yaml).

    python data/numeric/make_toy.py
"""

from __future__ import annotations

import math
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIZES = {"train": 150, "validation": 45, "test": 45}
CLASSES = ["sine wave", "square wave", "ramp up"]


def sequence(rng: random.Random, shape: str) -> tuple[list[list[float]], float, list[str], list[float]]:
    """(steps x 2 channels, frequency, a phase per step, channel a without its noise) of one made-up sensor
    trace: the phase is whether the clean signal of channel a rises or falls at that step (a label per step,
    for `task: tagger`), the clean value a real target per step (`task: regressor` with data.per_step)."""
    n = rng.randint(6, 20)
    freq = round(rng.uniform(0.2, 0.8), 3)
    phase = rng.uniform(0, 2 * math.pi)
    rows, phases, clean = [], [], []
    for t in range(n):
        s = math.sin(freq * t + phase)
        a = {"sine wave": s, "square wave": 1.0 if s >= 0 else -1.0, "ramp up": t / n * 2 - 1}[shape]
        b = math.cos(freq * t + phase) * 0.5 + 3.0  # a second channel on another scale (standardisation matters)
        rows.append([round(a + rng.gauss(0, 0.1), 4), round(b + rng.gauss(0, 0.05), 4)])
        slope = {"sine wave": math.cos(freq * t + phase), "square wave": math.cos(freq * t + phase), "ramp up": 1.0}[shape]
        phases.append("rising" if slope >= 0 else "falling")
        clean.append(round(a, 4))
    return rows, freq, phases, clean


def main() -> None:
    rng = random.Random(23)
    for split, size in SIZES.items():
        cases = [(CLASSES[i % 3], *sequence(rng, CLASSES[i % 3])) for i in range(size)]
        header = ["# toy numeric sequences (data/numeric/make_toy.py)", "@problemName toy", "@timeStamps false",
                  "@missing false", "@univariate false", "@dimensions 2", "@equalLength false",
                  "@classLabel true " + " ".join(f'"{c}"' for c in CLASSES), "@data"]
        lines = [":".join(",".join(str(r[c]) for r in rows) for c in range(2)) + f":{shape}"
                 for shape, rows, _, _, _ in cases]
        (HERE / f"{split}.ts").write_text("\n".join(header + lines) + "\n", encoding="utf-8")
        table = ["id,step,a,b,shape,freq,phase,clean"]
        for k, (shape, rows, freq, phases, clean) in enumerate(cases):
            steps = list(range(len(rows)))
            rng.shuffle(steps)
            table += [f"s{k},{t},{rows[t][0]},{rows[t][1]},{shape},{freq},{phases[t]},{clean[t]}" for t in steps]
        (HERE / f"{split}.csv").write_text("\n".join(table) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
