"""analysis.stats: paired comparisons against independent references."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from analysis.stats import bootstrap_interval, detectable_effect, expanded_level, paired_comparison


def _exact_sign_flip_p(d):
    """Two-sided p of the mean difference over every one of the 2^n sign flips."""
    d = np.asarray(d, dtype=float)
    obs = abs(d.mean())
    flips = [abs((d * np.array(s)).mean()) for s in itertools.product([1, -1], repeat=d.size)]
    return float(np.mean([f >= obs - 1e-12 for f in flips]))


@pytest.mark.parametrize("seed", range(6))
def test_permutation_p_equals_exact_enumeration(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 9))
    b = rng.random(n)
    a = b + rng.normal(0.05 * seed, 0.1, n)
    r = paired_comparison(a, b)
    assert r.n == n and r.mean_diff == pytest.approx(float(np.mean(a - b)))
    assert r.p_value == pytest.approx(_exact_sign_flip_p(a - b), abs=1e-9)


@pytest.mark.parametrize("method", ["expanded", "percentile"])
def test_bootstrap_interval_matches_a_manual_percentile_bootstrap(method):
    """Both intervals are percentiles of the resampled means, at 95% or the expanded level."""
    rng = np.random.default_rng(1)
    d = rng.normal(0.1, 0.2, 7)
    lo_r, hi_r = bootstrap_interval(d, n_resamples=20000, method=method)
    level = expanded_level(d.size) if method == "expanded" else 0.95
    boot = np.random.default_rng(99).choice(d, size=(200000, d.size)).mean(axis=1)
    lo, hi = np.percentile(boot, [50 * (1 - level), 50 * (1 + level)])
    assert lo_r == pytest.approx(lo, abs=0.015) and hi_r == pytest.approx(hi, abs=0.015)
    assert lo_r < d.mean() < hi_r
    r = paired_comparison(d, np.zeros_like(d))
    assert (r.ci_low, r.ci_high) == bootstrap_interval(d)  # the rule is the expanded interval
    assert r == paired_comparison(d, np.zeros_like(d))


def test_expanded_interval_is_wider_and_matches_the_t_interval_for_normal_data():
    """Its half-width approaches the Student-t interval's; the plain percentile one is narrower."""
    d = np.random.default_rng(3).normal(0.0, 1.0, 5)
    lo, hi = bootstrap_interval(d)
    plo, phi = bootstrap_interval(d, method="percentile")
    t_half = stats.t.ppf(0.975, 4) * d.std(ddof=1) / math.sqrt(5)
    assert lo < plo and phi < hi
    assert (hi - lo) / 2 > 0.8 * t_half > (phi - plo) / 2
    with pytest.raises(ValueError, match="unknown interval"):
        bootstrap_interval(d, method="bca")


def test_detectable_effect_has_the_stated_power():
    """Simulated paired t-tests at the detectable effect reject about 80% of the time."""
    rng = np.random.default_rng(0)
    n, sd = 6, 0.1
    effect = (stats.t.ppf(0.975, n - 1) + stats.t.ppf(0.8, n - 1)) * sd / math.sqrt(n)
    rejections = [stats.ttest_1samp(rng.normal(effect, sd, n), 0.0).pvalue < 0.05
                  for _ in range(4000)]
    assert np.mean(rejections) == pytest.approx(0.8, abs=0.04)
    d = rng.normal(0, sd, n)
    assert detectable_effect(d) == pytest.approx(effect * d.std(ddof=1) / sd)


def test_degenerate_inputs():
    one = paired_comparison([0.7], [0.5])
    assert one.mean_diff == pytest.approx(0.2) and math.isnan(one.ci_low) and math.isnan(one.p_value)
    same = paired_comparison([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
    assert (same.mean_diff, same.ci_low, same.ci_high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    shift = paired_comparison([0.6, 0.7, 0.8], [0.5, 0.6, 0.7])
    assert shift.ci_low == pytest.approx(0.1) and shift.ci_high == pytest.approx(0.1)
    with pytest.raises(ValueError, match="equal 1-D shapes"):
        paired_comparison([1, 2], [1])
    with pytest.raises(ValueError, match="no seeds"):
        paired_comparison([], [])
