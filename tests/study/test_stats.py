"""grutool.stats against closed forms and hand-computed cases (no SciPy)."""

from __future__ import annotations

import math

import pytest

from grutool.stats import betainc, mean_sd, paired_t, t_quantile, t_two_sided


def test_mean_sd_by_hand():
    assert mean_sd([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]) == (5.0, pytest.approx(math.sqrt(32 / 7)))
    assert mean_sd([3.0]) == (3.0, None)


@pytest.mark.parametrize("t", [0.0, 0.3, 1.0, 2.5, 12.7, 100.0])
def test_t_cdf_closed_forms(t):
    # 1 degree of freedom (Cauchy): P(|T| >= t) = 1 - 2 atan(t) / pi; 2: 1 - t / sqrt(2 + t^2)
    assert t_two_sided(t, 1) == pytest.approx(1 - 2 * math.atan(t) / math.pi, abs=1e-12)
    assert t_two_sided(t, 2) == pytest.approx(1 - t / math.sqrt(2 + t * t), abs=1e-12)


def test_betainc_closed_forms():
    assert betainc(1, 1, 0.3) == pytest.approx(0.3)                 # uniform
    assert betainc(2, 1, 0.3) == pytest.approx(0.09)                # x^2
    assert betainc(1, 3, 0.2) == pytest.approx(1 - 0.8 ** 3)        # 1 - (1 - x)^3
    assert betainc(0.5, 0.5, 0.5) == pytest.approx(0.5)             # symmetric


def test_t_quantiles_of_the_table():
    assert t_quantile(0.05, 1) == pytest.approx(math.tan(math.pi * 0.475), rel=1e-9)  # 12.7062
    assert t_quantile(0.05, 4) == pytest.approx(2.776445, abs=1e-6)
    assert t_quantile(0.05, 10) == pytest.approx(2.228139, abs=1e-6)


def test_paired_t_by_hand():
    # differences 1, 2, 3: mean 2, sd 1, t = 2 / (1 / sqrt 3) = 3.4641, df 2: p = 1 - t / sqrt(2 + t^2)
    r = paired_t([0.5, 0.5, 0.5], [1.5, 2.5, 3.5])
    assert (r.n, r.mean, r.sd) == (3, 2.0, 1.0)
    assert r.t == pytest.approx(2 * math.sqrt(3))
    assert r.p == pytest.approx(1 - 2 * math.sqrt(3) / math.sqrt(14))  # 0.0742: inside the noise
    assert r.inside_noise
    assert r.ci95 == pytest.approx(4.302653 / math.sqrt(3), abs=1e-5)
    # five seeds, a clear difference: d = .10 .12 .11 .09 .13, mean .11, sd .0158, t 15.56, df 4
    r = paired_t([0.0] * 5, [0.10, 0.12, 0.11, 0.09, 0.13])
    assert r.t == pytest.approx(0.11 / (math.sqrt(0.001 / 4) / math.sqrt(5)))
    assert r.p < 0.001 and not r.inside_noise
    assert paired_t([1.0], [2.0]).p is None  # one seed: no noise estimate


def test_paired_t_is_undefined_without_spread():
    """The same difference on every seed: sd 0, so t, p and the interval are undefined (None), never p = 0."""
    same = paired_t([1.0, 2.0], [1.5, 2.5])
    assert same.constant and same.sd == 0.0 and (same.t, same.p, same.ci95) == (None, None, None)
    assert same.mean == 0.5 and same.inside_noise  # no significance claimed
    # 0.2 - 0.1 and 0.3 - 0.2 differ in the last bits only: still the same difference, not t ~ 1e16 and p 0
    rounded = paired_t([0.1, 0.2], [0.2, 0.3])
    assert rounded.constant and rounded.p is None and rounded.t is None
    assert paired_t([0.5, 0.7, 0.9], [0.5, 0.7, 0.9]).mean == 0.0  # no difference at all: likewise undefined
    one = paired_t([1.0], [2.0])  # one seed
    assert not one.constant and (one.sd, one.t, one.p, one.ci95) == (None, None, None, None)
