"""Writes data/sines/sines.csv: 600 days of three noisy sines with a weekly season (seeded; run from the
repository root: python data/sines/make_sines.py). The forecast family's toy data: trains in seconds."""

import csv
import datetime
import math
import random
from pathlib import Path

rng = random.Random(7)
start = datetime.date(2024, 1, 1)
path = Path(__file__).with_name("sines.csv")
with path.open("w", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["date", "a", "b", "load"])
    for t in range(600):
        week = 2 * math.pi * t / 7
        a = math.sin(week) + 0.1 * rng.gauss(0, 1)
        b = 0.5 * math.cos(week) + 0.3 * math.sin(2 * math.pi * t / 30) + 0.1 * rng.gauss(0, 1)
        load = 10 + 2 * math.sin(week + 1) + 0.5 * a + 0.2 * rng.gauss(0, 1)
        w.writerow([(start + datetime.timedelta(days=t)).isoformat(), f"{a:.4f}", f"{b:.4f}", f"{load:.4f}"])
