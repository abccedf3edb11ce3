"""How often the paired-comparison rule declares a difference where there is none, by seed count.

The controls, claims and paired comparisons (:func:`analysis.stats.paired_comparison`)
judge a difference by a 95% bootstrap interval over seeds. Until 2026-11-30 that was
the plain percentile interval, and with few seeds it is too narrow: the bootstrap
distribution of a mean of n values has variance ``(n - 1) / n`` of the sample's and
normal rather than Student-t tails, and it never reaches past the smallest or largest paired
difference. So with n = 5 any bootstrap interval excludes 0 whenever all five
differences have the same sign, which a true null gives with probability
``2 / 2**5 = 0.0625`` alone. The rule is now the *expanded* percentile interval
(:func:`analysis.stats.expanded_level`): this script measured it at 8.5% at 5 seeds
(near the 1/16 floor) and at its level from 10 seeds on (5.6%).

This script measures both with the rule's own function: ``reps`` sets of n paired
differences drawn from a null (mean 0, normal), each judged by
:func:`~analysis.stats.bootstrap_interval` (the rule's seed and resamples) with the
expanded interval (the rule, as ``controls.csv`` judges) and with the plain percentile
one. Beside them, a Student-t interval of the mean on the same draws
(:func:`analysis.table.ci95`, the table's +-). The rate at which
an interval excludes 0 under the null is what an A/A control fails by chance
(and the level at which a positive control passes when the effect is 0)::

    python -m analysis.interval_coverage            # n = 5, 10, 15, 20; 2,000 draws each
    python -m analysis.interval_coverage --n 5 --reps 500 --effect 1.0

``--effect`` shifts the mean of the differences (in units of their sd): the share
of draws whose interval lies above 0 is then the rule's power at that effect.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from analysis.stats import INTERVALS, bootstrap_interval
from analysis.table import ci95


def rejection_rates(n: int, reps: int, *, effect: float = 0.0, seed: int = 0,
                    n_resamples: int = 9999, progress: bool = False) -> dict[str, float]:
    """Share of ``reps`` draws of ``n`` paired differences whose interval excludes 0.

    Args:
        n: seeds per comparison (>= 2).
        reps: number of simulated comparisons.
        effect: true mean of the differences, in units of their sd (0: a true null).
        seed: seeds the draws (each comparison's bootstrap keeps the rule's own seed).
        n_resamples: bootstrap resamples per comparison (the rule's default: 9999).
    Returns:
        ``expanded`` (the rule's interval excludes 0), ``expanded_above`` (it lies above
        0: a positive control passes), ``percentile`` and ``percentile_above`` (the plain
        percentile interval), ``t`` and ``t_above`` (a Student-t interval of the mean on
        the same draws), and ``same_sign`` (all n differences share a sign: the floor of
        any bootstrap interval's rate under the null).

    Examples:
        >>> r = rejection_rates(5, 40, n_resamples=999)
        >>> 0.0 <= r["t"] <= 1.0 and r["percentile"] >= r["expanded"] >= r["same_sign"]
        True
    """
    if n < 2 or reps < 1:
        raise ValueError(f"need n >= 2 and reps >= 1, got n={n}, reps={reps}")
    draws = np.random.default_rng(seed).standard_normal((reps, n)) + effect
    half = np.array([ci95(pd.Series(row)) for row in draws])
    means = draws.mean(axis=1)
    out = {}
    for method in INTERVALS:
        ci = np.array([bootstrap_interval(row, n_resamples=n_resamples, method=method)
                       for row in tqdm(draws, desc=f"n={n} {method}", disable=not progress,
                                       mininterval=2.0)])
        out[method] = float(((ci[:, 0] > 0) | (ci[:, 1] < 0)).mean())
        out[f"{method}_above"] = float((ci[:, 0] > 0).mean())
    same_sign = (np.all(draws > 0, axis=1) | np.all(draws < 0, axis=1))
    return out | {"t": float((np.abs(means) > half).mean()),
                  "t_above": float((means - half > 0).mean()), "same_sign": float(same_sign.mean())}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, nargs="+", default=[5, 10, 15, 20], help="seeds per comparison")
    p.add_argument("--reps", type=int, default=2000, help="simulated comparisons per n")
    p.add_argument("--effect", type=float, default=0.0, help="true mean difference / its sd")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    print(f"true mean difference {a.effect} sd; {a.reps} draws per seed count; 95% intervals")
    print("seeds  expanded (rule) excludes 0  (above 0)  percentile excludes 0  (above 0)  "
          "t-interval excludes 0  (above 0)  all same sign")
    for n in a.n:
        r = rejection_rates(n, a.reps, effect=a.effect, seed=a.seed, progress=True)
        print(f"{n:5d}  {r['expanded']:26.3f}  {r['expanded_above']:9.3f}  "
              f"{r['percentile']:21.3f}  {r['percentile_above']:9.3f}  {r['t']:21.3f}  "
              f"{r['t_above']:9.3f}  {r['same_sign']:13.3f}")


if __name__ == "__main__":
    main()
