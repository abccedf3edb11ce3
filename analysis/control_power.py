"""How many paired seeds each control needs on one build: its own rule on resampled seeds.

A control's verdict at n seeds is a random event: another set of n seeds (or another
machine's) can flip it (README, "The controls' interval and their seed count"). This
estimates, for each control of :data:`analysis.controls.CONTROLS`, the probability that
its rule passes with n paired seeds, by drawing n of the observed paired differences
with replacement (the observed seeds stand in for the population: a plug-in estimate,
as rough as the seeds it has) and judging each draw with the control's own interval
(:func:`analysis.stats.bootstrap_interval`) and pass rule (:meth:`Control.decide`).

    python -m analysis.control_power runs/*/*/*/record.json --n 5 10 15 20 30
    python -m analysis.control_power results/reference/zen4_291d406_controls15/records.jsonl

Reads run records only (no labels); prints a Markdown table and, with ``--out``, writes
a CSV.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from analysis.controls import CONTROLS, Control, paired_values
from analysis.stats import bootstrap_interval, fmt_cell
from analysis.table import load_records
from pivottrace.core.io import write_results_csv

SEED_COUNTS = (5, 10, 15, 20, 30)
"""Seed counts the pass probability is estimated at by default."""


def pass_probability(diffs, control: Control, n: int, reps: int = 400, *, seed: int = 0,
                     n_resamples: int = 1999) -> float:
    """Share of ``reps`` draws of ``n`` of ``diffs`` (with replacement) that ``control`` passes.

    Examples:
        >>> from analysis.controls import CONTROLS
        >>> oracle = CONTROLS[0]  # the interval must lie above 0
        >>> pass_probability([0.05, 0.06, 0.04, 0.05], oracle, 5, reps=20, n_resamples=199)
        1.0
        >>> pass_probability([-0.05, -0.06, -0.04], oracle, 5, reps=20, n_resamples=199)
        0.0
    """
    d = np.asarray(diffs, dtype=float)
    if d.ndim != 1 or d.size < 2:
        raise ValueError(f"need at least 2 observed paired differences, got {d.size}")
    if n < 2 or reps < 1:
        raise ValueError(f"need n >= 2 and reps >= 1, got n={n}, reps={reps}")
    draws = np.random.default_rng(seed).choice(d, size=(reps, n), replace=True)
    passed = 0
    for row in draws:
        lo, hi = bootstrap_interval(row, n_resamples=n_resamples)
        passed += control.decide(float(row.mean()), lo, hi)
    return passed / reps


def power_table(records: pd.DataFrame, seed_counts=SEED_COUNTS, reps: int = 400, *,
                seed: int = 0, n_resamples: int = 1999, controls=CONTROLS,
                progress: bool = False) -> pd.DataFrame:
    """One row per control with at least 2 paired seeds: the observed paired differences
    (seeds, mean, sd, mean / sd) and ``pass_at_<n>`` for each of ``seed_counts``."""
    rows = []
    for c in tqdm(controls, desc="controls", disable=not progress):
        seeds, a, b = paired_values(records, (c.a, c.budget), (c.b, c.budget), c.metric)
        if len(seeds) < 2:
            continue
        d = np.subtract(a, b)
        sd = float(d.std(ddof=1))
        row = {"control": c.name, "kind": c.kind, "metric": c.metric, "n_seeds": len(seeds),
               "mean_diff": float(d.mean()), "sd_diff": sd,
               "effect_sd": float(d.mean()) / sd if sd > 0 else math.nan}
        for n in seed_counts:
            row[f"pass_at_{n}"] = pass_probability(d, c, n, reps, seed=seed,
                                                   n_resamples=n_resamples)
        rows.append(row)
    return pd.DataFrame(rows)


def to_markdown(table: pd.DataFrame, seed_counts=SEED_COUNTS) -> str:
    """The power table as Markdown."""
    head = ("| control | seeds | mean a - b | sd | mean / sd | "
            + " | ".join(f"P(pass) at {n}" for n in seed_counts) + " |")
    lines = [head, "|" + "---|" * (5 + len(seed_counts))]
    for r in table.to_dict("records"):
        cells = [r["control"], str(r["n_seeds"]), fmt_cell(r["mean_diff"], "+.3f"),
                 fmt_cell(r["sd_diff"]), fmt_cell(r["effect_sd"], ".2f")]
        cells += [fmt_cell(r[f"pass_at_{n}"], ".2f") for n in seed_counts]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("records", nargs="+", type=Path,
                   help="run records: record.json files or a records.jsonl")
    p.add_argument("--n", type=int, nargs="+", default=list(SEED_COUNTS),
                   help="seed counts to estimate the pass probability at")
    p.add_argument("--reps", type=int, default=400, help="resampled seed sets per count")
    p.add_argument("--n-resamples", type=int, default=1999,
                   help="bootstrap resamples per interval (the controls use 9999)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="also write the table as CSV")
    a = p.parse_args(argv)
    table = power_table(load_records(a.records), a.n, a.reps, seed=a.seed,
                        n_resamples=a.n_resamples, progress=True)
    if table.empty:
        raise SystemExit("no control has 2 or more paired seeds in these records")
    if a.out:
        write_results_csv(table, a.out)
    print(to_markdown(table, a.n), end="")


if __name__ == "__main__":
    main()
