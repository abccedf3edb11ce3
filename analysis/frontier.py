"""The efficiency frontier: the smallest annotated fraction at which a method matches full supervision.

For each budgeted method of the grid, per seed, the paired difference of test
accuracy with full supervision of the same seed, ``d_s(b) = acc_s(method, b) -
acc_s(full)``, at each numeric budget ``b`` (``auto`` is left out: its fraction is
the method's own choice). The method *matches* full supervision at ``b`` when
the mean difference over seeds is at least ``-margin`` (claim (a)'s
non-inferiority margin). Along the budgets sorted by annotated fraction (the
ledger's, mean over seeds), the match fraction is where the mean difference first
reaches ``-margin``, linearly interpolated between the last budget below and the
first at or above it; the smallest budget itself if that one already matches;
"never" (``inf``) if no budget of the grid does.

Interval: seeds are resampled with replacement (one draw for every budget, so the
pairing holds), the match fraction recomputed per resample, and the percentiles
read at the expanded level of every other interval of the suite
(:func:`analysis.stats.expanded_level`: 95% coverage with few seeds, e.g. the
0.09% and 99.91% percentiles at 5 seeds); ``inf`` in ``ci_high`` means more of
the resamples than the upper tail never match within the grid's budgets
(``never_share`` says how many).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis.controls import arm
from analysis.stats import expanded_level
from pivottrace.data.pool import parse_budget

COLUMNS = ["method", "metric", "budgets", "annotated_fractions", "mean_diffs", "n_seeds",
           "match_fraction", "ci_low", "ci_high", "never_share", "rule"]
REFERENCE = ("full", "none")
"""The arm every method is compared with (full supervision)."""


def match_fraction(fractions, mean_diffs, margin: float) -> float:
    """First annotated fraction where ``mean_diffs`` reaches ``-margin`` (interpolated); inf: never.

    Examples:
        >>> round(match_fraction([0.1, 0.3, 0.5], [-0.10, -0.06, 0.02], 0.02), 6)
        0.4
        >>> match_fraction([0.1, 0.3], [0.0, 0.05], 0.02)
        0.1
        >>> match_fraction([0.1, 0.3], [-0.1, -0.05], 0.02)
        inf
    """
    target = -margin
    for i, (f, d) in enumerate(zip(fractions, mean_diffs)):
        if d >= target:
            if i == 0:
                return float(f)
            f0, d0 = fractions[i - 1], mean_diffs[i - 1]
            return float(f0 + (target - d0) * (f - f0) / (d - d0))
    return math.inf


def _numeric_budgets(records: pd.DataFrame, method: str) -> list[str]:
    """The method's budgets (path strings) that are fractions, not ``none`` or ``auto``."""
    budgets = records.loc[records.method == method, "budget"].unique()
    return sorted((b for b in budgets if isinstance(parse_budget(b), float)), key=float)


def method_frontier(records: pd.DataFrame, method: str, margin: float,
                    metric: str = "test_accuracy", n_resamples: int = 2000,
                    seed: int = 0) -> dict | None:
    """The frontier row of one method; None when it has no numeric budget or shares no seed with
    full supervision at every budget."""
    budgets = _numeric_budgets(records, method)
    full = arm(records, *REFERENCE, metric)
    if not budgets or full.empty:
        return None
    arms = {b: arm(records, method, b, metric) for b in budgets}
    seeds = sorted(set(full.index).intersection(*(a.index for a in arms.values())))
    if not seeds:
        return None
    diffs = np.array([(arms[b][seeds] - full[seeds]).to_numpy() for b in budgets])  # (budgets, seeds)
    fractions = [float(arm(records, method, b, "annotated_fraction")[seeds].mean())
                 for b in budgets]
    order = np.argsort(fractions, kind="stable")
    fractions = [fractions[i] for i in order]
    diffs, budgets = diffs[order], [budgets[i] for i in order]
    point = match_fraction(fractions, diffs.mean(axis=1), margin)
    lo = hi = math.nan
    never = math.nan
    if len(seeds) >= 2:
        rng = np.random.default_rng(seed)
        draws = rng.integers(0, len(seeds), size=(n_resamples, len(seeds)))
        boot = np.array([match_fraction(fractions, diffs[:, d].mean(axis=1), margin)
                         for d in draws])
        tail = 100 * (1 - expanded_level(len(seeds))) / 2
        # inverted_cdf: an order statistic, so inf ("never") stays inf instead of inf - inf = nan
        lo, hi = (float(x) for x in np.percentile(boot, [tail, 100 - tail], method="inverted_cdf"))
        never = float(np.isinf(boot).mean())
    return {
        "method": method, "metric": metric, "budgets": " ".join(budgets),
        "annotated_fractions": " ".join(f"{f:.3f}" for f in fractions),
        "mean_diffs": " ".join(f"{d:+.3f}" for d in diffs.mean(axis=1)),
        "n_seeds": len(seeds), "match_fraction": point, "ci_low": lo, "ci_high": hi,
        "never_share": never,
        "rule": (f"smallest annotated fraction at which mean({metric} - full's, paired by seed) "
                 f">= -{margin:g}, interpolated linearly between budgets; inf = never within "
                 f"the grid; 95% expanded percentile bootstrap over seeds"),
    }


def frontier(records: pd.DataFrame, margin: float, metric: str = "test_accuracy") -> pd.DataFrame:
    """One row per budgeted method of the grid (:func:`method_frontier`), sorted by name."""
    rows = [r for m in sorted(set(records.method) - {REFERENCE[0]})
            if (r := method_frontier(records, m, margin, metric)) is not None]
    return pd.DataFrame(rows, columns=COLUMNS)


def to_markdown(table: pd.DataFrame) -> str:
    """The frontier as a Markdown section (``inf`` as "never")."""
    def f(x, first):
        if x is None or (isinstance(x, float) and math.isnan(x)):
            return "-"
        if math.isinf(x):
            return "never"
        # matching at the grid's smallest budget bounds the fraction from above only
        return f"<= {x:.3f}" if f"{x:.3f}" == first else f"{x:.3f}"

    lines = ["## Efficiency frontier: smallest annotated fraction matching full supervision", "",
             "| method | budgets | annotated | mean diff vs full | seeds | matches at | 95% interval "
             "| never (share of resamples) |", "|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        first = r.annotated_fractions.split()[0]
        never = "-" if math.isnan(r.never_share) else f"{r.never_share:.3f}"
        lines.append(f"| {r.method} | {r.budgets} | {r.annotated_fractions} | {r.mean_diffs} | "
                     f"{r.n_seeds} | {f(r.match_fraction, first)} | [{f(r.ci_low, first)}, "
                     f"{f(r.ci_high, first)}] | {never} |")
    if len(table):
        lines += ["", f"Rule: {table.rule.iloc[0]}.", ""]
    return "\n".join(lines)
