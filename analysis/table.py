"""Run records -> ``results/table1.csv`` and a readable ``results/table1.md``.

Analysis reads only run records. One row per (method, budget): test accuracy
mean with a 95% confidence interval over seeds (Student t; a single seed has
no interval), test-hard accuracy, annotated fraction from the oracle ledger.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from scipy import stats

from pivottrace.io import atomic_write, read_json

COLUMNS = ["method", "budget", "annotated_fraction", "test_accuracy", "test_accuracy_ci95",
           "test_hard_accuracy", "test_hard_accuracy_ci95", "n_seeds", "steps", "train_wall_s",
           "uses_labels"]


def ci95(values: pd.Series) -> float:
    """Half-width of the 95% t-interval of the mean; NaN for fewer than 2 values."""
    n = len(values)
    if n < 2:
        return math.nan
    return float(stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / math.sqrt(n))


def load_records(paths: list[Path]) -> pd.DataFrame:
    rows = []
    for p in paths:
        r = read_json(p)
        rows.append({k: r[k] for k in ("method", "budget", "seed", "annotated_fraction",
                                       "test_accuracy", "test_hard_accuracy", "steps",
                                       "train_wall_s", "uses_labels")})
    for row in rows:
        row["budget"] = "none" if row["budget"] is None else str(row["budget"])
    df = pd.DataFrame(rows)
    return df


def aggregate(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, budget), sorted by method then budget."""
    g = df.groupby(["method", "budget"], sort=True)
    out = g.agg(annotated_fraction=("annotated_fraction", "mean"),
                test_accuracy=("test_accuracy", "mean"),
                test_accuracy_ci95=("test_accuracy", ci95),
                test_hard_accuracy=("test_hard_accuracy", "mean"),
                test_hard_accuracy_ci95=("test_hard_accuracy", ci95),
                n_seeds=("seed", "nunique"),
                steps=("steps", "max"),
                train_wall_s=("train_wall_s", "mean"),
                uses_labels=("uses_labels", "any")).reset_index()
    return out[COLUMNS]


def to_markdown(table: pd.DataFrame) -> str:
    def pm(mean, half):
        return f"{mean:.3f}" if math.isnan(half) else f"{mean:.3f} ± {half:.3f}"

    lines = ["| method | budget | annotated | test acc (95% CI) | test-hard acc (95% CI) | seeds | steps | train s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        name = r.method + (" (reads labels)" if r.uses_labels else "")
        lines.append(f"| {name} | {r.budget} | {r.annotated_fraction:.3f} | "
                     f"{pm(r.test_accuracy, r.test_accuracy_ci95)} | "
                     f"{pm(r.test_hard_accuracy, r.test_hard_accuracy_ci95)} | {r.n_seeds} | "
                     f"{r.steps} | {r.train_wall_s:.0f} |")
    return "\n".join(lines) + "\n"


def write_table(records: list[Path], out_csv: Path, out_md: Path) -> pd.DataFrame:
    table = aggregate(load_records(records))
    with atomic_write(out_csv) as fh:
        table.to_csv(fh, index=False, float_format="%.6g")
    with atomic_write(out_md) as fh:
        fh.write(to_markdown(table))
    return table
