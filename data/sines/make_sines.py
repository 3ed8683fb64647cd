"""Writes data/sines/sines.csv: 600 days of three noisy sines with a weekly season, and data/sines/sites.csv
(below), both seeded; run from the repository root: python data/sines/make_sines.py. The forecast family's toy
data: trains in seconds."""

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

# data/sines/sites.csv: the long-form toy with covariates (configs/sines_covariates.yaml). Three sites' daily
# load over 400 days, rows interleaved by date: a weekday profile set by the calendar (low at the weekend, not a
# sine of the row number), scaled by each site's fixed capacity (a static column), plus the previous day's
# temperature (a past-observed column: known only up to the forecast's start).
rng = random.Random(11)
profile = [1.0, 1.05, 1.05, 1.0, 0.95, 0.6, 0.5]  # Monday .. Sunday
sites = [("north", 40.0, 0.0), ("south", 25.0, 4.0), ("east", 10.0, -2.0)]
path = Path(__file__).with_name("sites.csv")
with path.open("w", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["date", "site", "temp", "capacity", "load"])
    before = {name: 15.0 + shift for name, _, shift in sites}
    for t in range(400):
        day = start + datetime.timedelta(days=t)
        for name, capacity, shift in sites:
            temp = 15 + shift + 8 * math.sin(2 * math.pi * t / 365) + 1.5 * rng.gauss(0, 1)
            load = capacity * profile[day.weekday()] * (1 + 0.03 * (before[name] - 15 - shift)) \
                + 0.03 * capacity * rng.gauss(0, 1)
            before[name] = temp
            w.writerow([day.isoformat(), name, f"{temp:.3f}", f"{capacity:g}", f"{load:.4f}"])
