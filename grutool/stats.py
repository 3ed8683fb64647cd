"""Statistics over seeds, without SciPy: mean ± sd, and the paired t-test a study reports.

A study trains each cell with the same seeds, so two cells' results pair up seed by seed (same data order,
same initialisation stream): the paired test asks whether the per-seed differences are centred away from
zero, which is more sensitive than comparing the two means. The t distribution's CDF is the regularised
incomplete beta function, here from its continued fraction (Numerical Recipes, `betacf`, Lentz's method);
tests/test_stats.py checks it against closed forms (1 and 2 degrees of freedom) and hand-computed cases.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

ALPHA = 0.05  # a difference with p at or above this is reported as inside the noise


def mean_sd(values: Sequence[float]) -> tuple[Optional[float], Optional[float]]:
    """Mean and sample standard deviation (n - 1); sd None for fewer than two values."""
    xs = [float(v) for v in values]
    if not xs:
        return None, None
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, None
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def _betacf(a: float, b: float, x: float) -> float:
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b), for a, b > 0 and 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):  # the continued fraction converges fast here; else use the symmetry
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_two_sided(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with `df` degrees of freedom."""
    if math.isinf(t):
        return 0.0
    return min(1.0, betainc(df / 2.0, 0.5, df / (df + t * t)))


def t_quantile(p: float, df: float) -> float:
    """The t with P(|T| >= t) = p (two-sided), by bisection on `t_two_sided`."""
    lo, hi = 0.0, 1.0
    while t_two_sided(hi, df) > p:
        hi *= 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        lo, hi = (mid, hi) if t_two_sided(mid, df) > p else (lo, mid)
    return (lo + hi) / 2.0


@dataclass
class Paired:
    n: int                        # pairs (seeds)
    mean: float                   # mean of b - a
    sd: Optional[float]           # sd of the differences (None: one pair)
    t: Optional[float]            # None: one pair, or no spread (`constant`)
    p: Optional[float]            # two-sided; None: one pair, or no spread (the test is undefined)
    ci95: Optional[float]         # half-width of the 95% interval of the mean difference
    constant: bool = False        # the same difference on every pair: sd 0, t and p undefined

    @property
    def inside_noise(self) -> bool:
        return self.p is None or self.p >= ALPHA


# Differences whose spread is below this fraction of the values compared are the same difference: the rest is
# float rounding (0.2 - 0.1 and 0.3 - 0.2 differ in the last bits), which would give t ~ 1e16 and p = 0.
SAME = 1e-9


def paired_t(a: Sequence[float], b: Sequence[float]) -> Paired:
    """Paired t-test of b against a (the differences b_i - a_i). With one pair, or the same difference on
    every pair (sd 0), t, p and the interval are undefined: None, never 0 or a p of 0."""
    if len(a) != len(b) or not a:
        raise ValueError("paired_t: needs two equally long, non-empty lists")
    diffs = [float(y) - float(x) for x, y in zip(a, b)]
    n = len(diffs)
    m, sd = mean_sd(diffs)
    if n < 2:
        return Paired(n, m, None, None, None, None)
    scale = max(abs(float(v)) for v in [*a, *b])
    if sd <= SAME * scale:  # the same difference on every seed: nothing to test it against
        return Paired(n, 0.0 if abs(m) <= SAME * scale else m, 0.0, None, None, None, constant=True)
    se = sd / math.sqrt(n)
    t = m / se
    return Paired(n, m, sd, t, t_two_sided(t, n - 1), t_quantile(0.05, n - 1) * se)
