"""Paired comparisons over seeds: the difference, its bootstrap interval, a permutation test,
and the smallest effect the seed count can detect.

Methods of one grid share seeds (the same base model, data order and sampling
seed per seed), so two methods are compared seed by seed: ``d_s = a_s - b_s``.

- Interval: :func:`scipy.stats.bootstrap` on the paired differences, the
  *expanded* percentile interval (Hesterberg 2015, "What teachers should know
  about the bootstrap", The American Statistician 69(4)): the
  percentile interval read at the level whose normal quantile is
  ``sqrt(n / (n - 1)) * t_{1 - alpha/2, n - 1}``. The plain percentile interval of a
  mean of a handful of seeds is too narrow (its bootstrap distribution has
  ``(n - 1) / n`` of the variance and normal tails): at 5 seeds its "95%" interval
  excluded a true difference of 0 in 16% of draws, the expanded one in 8.5% (a
  Student-t interval 5.8%; no bootstrap interval at 5 seeds goes below 1/16, the
  chance that all five differences share a sign), at 10 seeds 9.7% against 5.6%;
  ``python -m analysis.interval_coverage``. BCa is undefined for so few seeds.
- p-value: :func:`scipy.stats.permutation_test` with ``permutation_type="samples"``
  (within each seed the two labels are exchangeable under the null; for n <= 10
  seeds all 2^n sign flips are enumerated, so the p-value is exact).
- Detectable effect: the paired difference a two-sided test at ``alpha``
  detects with probability ``power`` given the observed spread of the
  differences, ``(t_{1-alpha/2, n-1} + t_{power, n-1}) * sd(d) / sqrt(n)``
  (the usual normal-theory approximation with t quantiles).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class PairedComparison:
    """``a - b`` over paired seeds (see the module docstring); NaN where undefined."""

    n: int
    mean_diff: float
    ci_low: float
    ci_high: float
    p_value: float
    detectable_effect: float

    def as_dict(self) -> dict:
        return asdict(self)


def detectable_effect(diffs: Sequence[float], alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest mean paired difference detectable with ``power`` at two-sided ``alpha``.

    NaN for fewer than 2 seeds.

    Examples:
        >>> round(detectable_effect([0.1, 0.3, 0.2, 0.4, 0.0]), 4)
        0.2629
    """
    d = np.asarray(diffs, dtype=float)
    n = d.size
    if n < 2:
        return math.nan
    q = stats.t.ppf(1 - alpha / 2, n - 1) + stats.t.ppf(power, n - 1)
    return float(q * d.std(ddof=1) / math.sqrt(n))


INTERVALS = ("expanded", "percentile")
"""Bootstrap intervals :func:`bootstrap_interval` knows; the first is the rule's."""


def expanded_level(n: int, confidence: float = 0.95) -> float:
    """The percentile level the expanded interval reads for ``n`` values at ``confidence``.

    Examples:
        >>> round(expanded_level(5), 4), round(expanded_level(20), 4)
        (0.9981, 0.9682)
    """
    if n < 2:
        raise ValueError(f"the expanded interval needs at least 2 values, got {n}")
    z = math.sqrt(n / (n - 1)) * stats.t.ppf(1 - (1 - confidence) / 2, n - 1)
    return float(1 - 2 * stats.norm.sf(z))


def bootstrap_interval(diffs: Sequence[float], *, confidence: float = 0.95,
                       n_resamples: int = 9999, seed: int = 0,
                       method: str = "expanded") -> tuple[float, float]:
    """Bootstrap interval of the mean of ``diffs`` (at least 2 values): the interval
    :func:`paired_comparison` reports and every control and claim is judged by.

    ``method`` is ``expanded`` (the rule; module docstring) or ``percentile`` (the plain
    percentile interval, the rule until 2026-11-30; kept to measure against).

    Examples:
        >>> bootstrap_interval([0.25, 0.25, 0.25])
        (0.25, 0.25)
        >>> d = [0.01, 0.03, 0.05, 0.02, 0.04]
        >>> lo, hi = bootstrap_interval(d); plo, phi = bootstrap_interval(d, method="percentile")
        >>> lo < plo < phi < hi
        True
    """
    if method not in INTERVALS:
        raise ValueError(f"unknown interval {method!r}; known: {list(INTERVALS)}")
    d = np.asarray(diffs, dtype=float)
    if np.ptp(d) == 0:  # the bootstrap distribution is a point; scipy would warn and give NaN
        return float(d.mean()), float(d.mean())
    level = expanded_level(d.size, confidence) if method == "expanded" else confidence
    ci = stats.bootstrap((d,), np.mean, confidence_level=level, n_resamples=n_resamples,
                         method="percentile", rng=np.random.default_rng(seed)).confidence_interval
    return float(ci.low), float(ci.high)


def paired_comparison(a: Sequence[float], b: Sequence[float], *, confidence: float = 0.95,
                      n_resamples: int = 9999, seed: int = 0, alpha: float = 0.05,
                      power: float = 0.8) -> PairedComparison:
    """Compare ``a`` with ``b``, two measurements per seed in the same seed order.

    Args:
        a, b: one value per seed each, paired by position.
        confidence: level of the bootstrap interval.
        n_resamples: bootstrap resamples (and permutation resamples past 2^n).
        seed: seeds the resampling, so the same inputs give the same interval.
    Returns:
        :class:`PairedComparison`. One seed: the difference only; identical
        differences: a zero-width interval and p = 1 when they are all 0.

    Examples:
        >>> r = paired_comparison([0.9, 0.8, 0.85, 0.95, 0.9], [0.7, 0.75, 0.7, 0.8, 0.72])
        >>> round(r.mean_diff, 3), r.ci_low > 0, round(r.p_value, 4)
        (0.146, True, 0.0625)
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired values need equal 1-D shapes, got {x.shape} and {y.shape}")
    if x.size == 0:
        raise ValueError("no seeds to compare")
    d = x - y
    n, mean = d.size, float(d.mean())
    if n < 2:
        return PairedComparison(n, mean, math.nan, math.nan, math.nan, math.nan)
    lo, hi = bootstrap_interval(d, confidence=confidence, n_resamples=n_resamples, seed=seed)
    test = stats.permutation_test((x, y), lambda u, v, axis: np.mean(u - v, axis=axis),
                                  permutation_type="samples", n_resamples=n_resamples,
                                  alternative="two-sided", vectorized=True,
                                  rng=np.random.default_rng(seed))
    return PairedComparison(n, mean, lo, hi, float(test.pvalue), detectable_effect(d, alpha, power))


def fmt_cell(x: float | None, spec: str = ".3f") -> str:
    """A number as a Markdown table cell: ``spec``-formatted, ``-`` for None or NaN.

    Examples:
        >>> fmt_cell(0.12345), fmt_cell(float("nan")), fmt_cell(None), fmt_cell(2.5, ".1f")
        ('0.123', '-', '-', '2.5')
    """
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)
