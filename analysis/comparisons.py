"""Paired comparisons between the grid's arms: ``results/comparisons.csv`` and a section of
``results/table1.md``.

The main table gives each arm's mean with a t-interval; a claim about *which* prompts
a method annotates needs a paired difference against an arm that trains the same way.
PivotTrace trains its self route on majority vote besides the annotated prompts, so
against ``random`` (annotated prompts only) it mixes two effects. Three kinds of
comparison, all paired by seed (:func:`analysis.stats.paired_comparison`: expanded
percentile bootstrap interval, exact sign-flip permutation p-value, detectable effect):

- ``selection``: a budgeted arm against the random arm *of the same regime* at the
  same budget: ``random`` for arms that train only annotated prompts, ``random_semi``
  for arms that also train a self route (the regime is read from the run records'
  route mix, ``self_fraction`` > 0). Without ``random_semi`` in the grid, a self-route
  arm is compared with ``random`` and the row says the regimes differ.
- ``self_route``: an arm with a self route against the same selection without it
  (:data:`SELF_ROUTE_PAIRS`), at the same budget: what majority-vote training on the
  rest adds.
- ``vs_full``: every trained arm against full supervision (test accuracy only).

Metrics: :data:`METRICS` (``vs_full``: test accuracy). A pair needs at least
:data:`MIN_PAIRED` seeds in common; pairs with fewer are left out. The grid's
controls (:mod:`analysis.controls`) decide whether any of these differences can be
read as a property of the methods rather than of the testbed.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from analysis.controls import paired_values
from analysis.stats import fmt_cell, paired_comparison
from pivottrace.core.io import write_results_csv

METRICS = ("dev_auc", "test_accuracy", "test_hard_accuracy")
MIN_PAIRED = 2
SELF_ROUTE_PAIRS = (("pivottrace", "pivottrace_two_way"), ("random_semi", "random"),
                    ("entropy_semi", "entropy"))
"""``(with self route, without)``: the same annotate rule, with and without majority-vote
training on the rest of the pool."""

UNBUDGETED = ("none",)
COLUMNS = ["kind", "a", "b", "budget", "metric", "regime", "n_seeds", "a_mean", "b_mean",
           "mean_diff", "ci_low", "ci_high", "p_value", "detectable_effect"]


def regime(self_fraction: float) -> str:
    """How an arm trains, from the share of the pool on its self route.

    Examples:
        >>> [regime(x) for x in (0.0, 0.6, 1.0)]
        ['annotate only', 'annotate + self', 'self only']
    """
    return "annotate only" if self_fraction == 0 else "self only" if self_fraction == 1 else (
        "annotate + self")


def regimes(records: pd.DataFrame) -> dict[tuple[str, str], str]:
    """``(method, budget) -> regime`` (:func:`regime`) from the records' route mix."""
    g = records.groupby(["method", "budget"])["self_fraction"].mean()
    return {k: regime(v) for k, v in g.items() if not math.isnan(v)}


def pairs(records: pd.DataFrame) -> list[tuple[str, str, str, str, str]]:
    """``(kind, a, b, budget, regime note)`` for every comparison the records allow."""
    cells = sorted({(m, b) for m, b in zip(records.method, records.budget)})
    have = set(cells)
    mode = regimes(records)
    out = []
    for m, b in cells:
        if b in UNBUDGETED or m in ("random", "random_semi") or (m, b) not in mode:
            continue
        semi = mode[(m, b)] == "annotate + self"
        ref = "random_semi" if semi and ("random_semi", b) in have else "random"
        if (ref, b) in have:
            note = mode[(m, b)] if mode.get((ref, b)) == mode[(m, b)] else (
                f"{mode[(m, b)]} vs {mode.get((ref, b), '?')}: regimes differ")
            out.append(("selection", m, ref, b, note))
    for with_self, without in SELF_ROUTE_PAIRS:
        for m, b in cells:
            if m == with_self and (without, b) in have:
                out.append(("self_route", with_self, without, b, "same annotate rule"))
    if any(m == "full" for m, _ in cells):
        out += [("vs_full", m, "full", b, mode.get((m, b), "-")) for m, b in cells
                if m not in ("full", "base")]
    return out


def compare(records: pd.DataFrame) -> pd.DataFrame:
    """One row per (pair, metric) with its paired statistics (:data:`COLUMNS`)."""
    full_budget = {m: b for m, b in zip(records.method, records.budget)}.get("full")
    rows = []
    for kind, a, b, budget, note in pairs(records):
        for metric in (("test_accuracy",) if kind == "vs_full" else METRICS):
            b_cell = (b, full_budget) if kind == "vs_full" else (b, budget)
            seeds, x, y = paired_values(records, (a, budget), b_cell, metric)
            if len(seeds) < MIN_PAIRED:
                continue
            r = paired_comparison(x, y)
            rows.append({"kind": kind, "a": a, "b": b, "budget": budget, "metric": metric,
                         "regime": note, "n_seeds": len(seeds), "a_mean": sum(x) / len(x),
                         "b_mean": sum(y) / len(y), "mean_diff": r.mean_diff, "ci_low": r.ci_low,
                         "ci_high": r.ci_high, "p_value": r.p_value,
                         "detectable_effect": r.detectable_effect})
    return pd.DataFrame(rows, columns=COLUMNS)


def to_markdown(table: pd.DataFrame) -> str:
    """The comparisons as a Markdown section (after the main table in ``table1.md``)."""
    lines = ["## Paired comparisons", "",
             "| kind | a - b | budget | metric | regime | seeds | a | b | a - b (95% CI) | p | "
             "detectable |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        lines.append(f"| {r.kind} | {r.a} - {r.b} | {r.budget} | {r.metric} | {r.regime} | "
                     f"{r.n_seeds} | {fmt_cell(r.a_mean)} | {fmt_cell(r.b_mean)} | "
                     f"{fmt_cell(r.mean_diff)} "
                     f"[{fmt_cell(r.ci_low)}, {fmt_cell(r.ci_high)}] | {fmt_cell(r.p_value)} | "
                     f"{fmt_cell(r.detectable_effect)} |")
    if table.empty:
        lines.append("| - | no pair of arms shares two seeds | | | | | | | | | |")
    lines += ["", "Paired by seed over the seeds both arms ran: 95% expanded percentile bootstrap "
              "interval of the mean difference, exact sign-flip permutation p-value, smallest "
              "difference detectable with 80% power. selection: against the random arm of the "
              "same regime at the same budget (random_semi for arms that also train a self "
              "route on majority vote, random for arms that train annotated prompts only); "
              "self_route: the same annotate rule with and without the self route; vs_full: "
              "against full supervision. Read them only where the controls above pass.", ""]
    return "\n".join(lines)


def write_comparisons(records: pd.DataFrame, out_csv: Path) -> pd.DataFrame:
    """:func:`compare` written atomically to ``out_csv``."""
    table = compare(records)
    write_results_csv(table, out_csv)
    return table
