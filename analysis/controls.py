"""The testbed's controls (DESIGN.md section 4): run records -> ``results/controls.csv``.

A benchmark is judged by its controls. Each control is a paired comparison of
two methods over the seeds both ran (:func:`analysis.stats.paired_comparison`)
with a written pass rule:

- *positive*: ``oracle_learnability`` (reads labels: highest p(1-p)) beats
  ``random`` at the same budget on dev AUC, at 0.1 and at 0.3: the 95%
  bootstrap interval of the paired difference lies above 0;
- *positive*: full supervision beats unsupervised majority vote (TTRL) on test
  accuracy by at least 10 points: the mean paired difference is >= 0.10 and its
  interval lies above 0;
- *negative (A/A)*: ``random`` against ``random_alt`` (the same policy, another
  selection stream, same training seeds) on dev AUC: the interval contains 0.

One more row checks that the dev curve is *resolved* (``dev_curve_resolved``):
full supervision logs at least :data:`MIN_EVALS_BEFORE_95` dev evaluations
(step 0 included) before it first reaches 95% of its final dev accuracy, on
every seed; otherwise steps-to-target cannot tell a faster method from a
slower one. It gates the convergence claim, not the others.

A control with fewer than :data:`MIN_SEEDS` paired seeds is ``insufficient``,
never ``pass``. If a positive control fails, the testbed cannot resolve
selection methods and every claim is inconclusive; the fix is the testbed,
never the control.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis.stats import fmt_cell, paired_comparison
from pivottrace.core.io import write_results_csv

MIN_SEEDS = 5
"""Paired seeds a control needs before it can pass (DESIGN.md section 4)."""

MIN_EVALS_BEFORE_95 = 4
"""Dev evaluations full supervision must log before reaching 95% of its final dev accuracy."""

RESULTS = ("pass", "fail", "insufficient")


@dataclass(frozen=True)
class Control:
    """One control: ``a - b`` on ``metric`` at ``budget``, decided by ``rule``.

    ``rule`` is ``above_zero`` (the interval lies above 0; with ``min_mean`` the
    mean difference must also reach it) or ``contains_zero``.
    """

    name: str
    kind: str  # positive | negative
    a: str
    b: str
    budget: str
    metric: str
    rule: str
    min_mean: float | None = None

    def describe(self) -> str:
        if self.rule == "above_zero":
            if self.min_mean is not None:
                return f"pass if mean(a - b) >= {self.min_mean:g} and the 95% interval lies above 0"
            return "pass if the 95% interval of a - b lies above 0"
        if self.rule == "contains_zero":
            return "pass if the 95% interval of a - b contains 0"
        raise ValueError(f"unknown control rule {self.rule!r}")

    def decide(self, mean: float, lo: float, hi: float) -> bool:
        if self.rule == "above_zero":
            return lo > 0 and (self.min_mean is None or mean >= self.min_mean)
        if self.rule == "contains_zero":
            return lo <= 0 <= hi
        raise ValueError(f"unknown control rule {self.rule!r}")


CONTROLS = (
    Control("oracle_beats_random@0.1", "positive", "oracle_learnability", "random", "0.1",
            "dev_auc", "above_zero"),
    Control("oracle_beats_random@0.3", "positive", "oracle_learnability", "random", "0.3",
            "dev_auc", "above_zero"),
    Control("full_beats_ttrl", "positive", "full", "unsupervised", "none", "test_accuracy",
            "above_zero", min_mean=0.10),
    Control("random_aa@0.3", "negative", "random_alt", "random", "0.3", "dev_auc",
            "contains_zero"),
)

COLUMNS = ["control", "kind", "metric", "a", "b", "budget", "n_seeds", "a_mean", "b_mean",
           "mean_diff", "ci_low", "ci_high", "p_value", "detectable_effect", "result", "rule"]


def control_runs() -> list[tuple[str, str]]:
    """The ``(method, budget)`` cells the controls need (for the grid check)."""
    return sorted({(m, c.budget) for c in CONTROLS for m in (c.a, c.b)})


def arm(records: pd.DataFrame, method: str, budget: str, metric: str) -> pd.Series:
    """``metric`` of the runs of ``method`` at ``budget`` (path string), indexed by seed."""
    rows = records[(records.method == method) & (records.budget == budget)]
    return rows.set_index("seed")[metric].dropna()


def paired_values(records: pd.DataFrame, a: tuple[str, str], b: tuple[str, str], metric: str
                  ) -> tuple[list, list, list]:
    """Seeds both ``(method, budget)`` arms ran, and each arm's ``metric`` in that seed order."""
    x, y = arm(records, *a, metric), arm(records, *b, metric)
    seeds = sorted(set(x.index) & set(y.index))
    return seeds, [float(x[s]) for s in seeds], [float(y[s]) for s in seeds]


def evaluate_controls(records: pd.DataFrame, controls=CONTROLS, min_seeds: int = MIN_SEEDS
                      ) -> pd.DataFrame:
    """One row per control (:data:`COLUMNS`).

    ``records`` has one row per run with ``method``, ``budget`` (path string),
    ``seed`` and the metrics (``dev_auc``, ``test_accuracy``, ``dev_curve``, ...).
    The last row is :func:`resolution_row`.
    """
    rows = []
    for c in controls:
        seeds, a, b = paired_values(records, (c.a, c.budget), (c.b, c.budget), c.metric)
        row = {"control": c.name, "kind": c.kind, "metric": c.metric, "a": c.a, "b": c.b,
               "budget": c.budget, "n_seeds": len(seeds), "rule": c.describe()}
        if len(seeds) >= 2:
            r = paired_comparison(a, b)
            row.update(a_mean=sum(a) / len(a), b_mean=sum(b) / len(b), mean_diff=r.mean_diff,
                       ci_low=r.ci_low, ci_high=r.ci_high, p_value=r.p_value,
                       detectable_effect=r.detectable_effect)
            passed = c.decide(r.mean_diff, r.ci_low, r.ci_high)
        else:
            row.update(a_mean=math.nan, b_mean=math.nan, mean_diff=math.nan, ci_low=math.nan,
                       ci_high=math.nan, p_value=math.nan, detectable_effect=math.nan)
            passed = False
        row["result"] = ("insufficient" if len(seeds) < min_seeds
                         else "pass" if passed else "fail")
        rows.append(row)
    rows.append(resolution_row(records, min_seeds))
    return pd.DataFrame(rows, columns=COLUMNS)


def evals_before_95(curve: list) -> int:
    """Dev evaluations logged before the curve first reaches 95% of its final value.

    >>> evals_before_95([[0, 0.1], [3, 0.4], [6, 0.8], [9, 0.9], [12, 1.0], [15, 1.0]])
    4
    >>> evals_before_95([[0, 0.5], [3, 0.5]])
    0
    """
    if not curve:
        return 0
    target = 0.95 * curve[-1][1]
    return next((i for i, (_, acc) in enumerate(curve) if acc >= target - 1e-12), len(curve))


def resolution_row(records: pd.DataFrame, min_seeds: int = MIN_SEEDS) -> dict:
    """The ``dev_curve_resolved`` row: evaluations before full supervision's 95% point."""
    counts = ([evals_before_95(c) for c in records.dev_curve[(records.method == "full")
                                                             & records.dev_curve.notna()]]
              if "dev_curve" in records.columns else [])
    row = {"control": "dev_curve_resolved", "kind": "resolution", "metric": "evals_before_95",
           "a": "full", "b": "", "budget": "none", "n_seeds": len(counts),
           "a_mean": sum(counts) / len(counts) if counts else math.nan, "b_mean": math.nan,
           "mean_diff": math.nan, "ci_low": float(min(counts)) if counts else math.nan,
           "ci_high": float(max(counts)) if counts else math.nan, "p_value": math.nan,
           "detectable_effect": math.nan,
           "rule": f"pass if full supervision logs >= {MIN_EVALS_BEFORE_95} dev evaluations before "
                   "it reaches 95% of its final dev accuracy, on every seed (ci_low/ci_high: "
                   "fewest/most over seeds)"}
    row["result"] = ("insufficient" if len(counts) < min_seeds
                     else "pass" if min(counts) >= MIN_EVALS_BEFORE_95 else "fail")
    return row


def positive_controls_pass(table: pd.DataFrame) -> bool:
    """Whether every positive control passed (the testbed can resolve selection methods).

    The resolution check (``kind == "resolution"``) is not a positive control: it
    decides only whether convergence speed can be measured (:func:`curve_resolved`)."""
    pos = table[table.kind == "positive"]
    return bool(len(pos)) and bool((pos.result == "pass").all())


def curve_resolved(table: pd.DataFrame) -> bool:
    """Whether the ``dev_curve_resolved`` check passed (steps-to-target comparisons are meaningful)."""
    row = table[table.control == "dev_curve_resolved"]
    return bool(len(row)) and bool((row.result == "pass").all())


def to_markdown(table: pd.DataFrame) -> str:
    """The controls as a Markdown section (first in ``results/table1.md``)."""
    lines = ["## Controls (the testbed's resolving power)", "",
             "| control | kind | metric | a - b | budget | seeds | a | b | a - b (95% CI) | p | "
             "detectable | result |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        lines.append(f"| {r.control} | {r.kind} | {r.metric} | {r.a} - {r.b} | {r.budget} | "
                     f"{r.n_seeds} | {fmt_cell(r.a_mean)} | {fmt_cell(r.b_mean)} | "
                     f"{fmt_cell(r.mean_diff)} "
                     f"[{fmt_cell(r.ci_low)}, {fmt_cell(r.ci_high)}] | {fmt_cell(r.p_value)} | "
                     f"{fmt_cell(r.detectable_effect)} | **{r.result}** |")
    verdict = ("All positive controls pass: the testbed resolves selection methods."
               if positive_controls_pass(table) else
               "A positive control did not pass: the testbed cannot resolve selection methods "
               "at this grid; comparisons below are not conclusive.")
    if not curve_resolved(table):
        verdict += (" The dev curve is not resolved (dev_curve_resolved), so convergence "
                    "speed (steps to target, speedup) cannot be compared.")
    lines += ["", "Paired by seed; 95% expanded percentile bootstrap interval of the mean paired "
              "difference, exact sign-flip permutation p-value, smallest difference detectable "
              f"with 80% power. A control needs {MIN_SEEDS} paired seeds. Rules: "
              + "; ".join(f"{c.name}: {c.describe()}" for c in CONTROLS)
              + f"; dev_curve_resolved: {MIN_EVALS_BEFORE_95} evaluations before 95% on every seed.",
              "", verdict, ""]
    return "\n".join(lines)


def write_controls(records: pd.DataFrame, out_csv: Path) -> pd.DataFrame:
    """Evaluate :data:`CONTROLS` on run records and write the CSV atomically."""
    table = evaluate_controls(records)
    write_results_csv(table, out_csv)
    return table
