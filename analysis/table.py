"""Run records -> ``results/table1.csv`` and a readable ``results/table1.md``.

Analysis reads only run records. One row per (method, budget): annotated
fraction from the oracle ledger, test accuracy mean with a 95% confidence
interval over seeds (Student t; a single seed has no interval), test-hard
accuracy, convergence (:mod:`analysis.convergence`: steps-to-target against
full supervision's final dev accuracy, speedup, seeds that reached the target),
training wall time, and the pseudo-label accuracy of self-route prompts.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from analysis.convergence import per_run
from analysis.stats import fmt_cell
from pivottrace.core.io import atomic_write, read_json, read_jsonl, write_results_csv

RECORD_FIELDS = ("method", "budget", "seed", "annotated_fraction", "test_accuracy",
                 "test_hard_accuracy", "steps", "train_wall_s", "uses_labels", "dev_curve",
                 "pseudo_label_accuracy", "dev_auc", "frac_reward_zero_std", "route_fractions")
OPTIONAL_FIELDS = ("pseudo_label_accuracy", "dev_auc", "frac_reward_zero_std", "route_fractions")
"""Fields older records (or the untrained base row) may lack; NaN in the table."""
LOADED_COLUMNS = [k for k in RECORD_FIELDS if k != "route_fractions"] + ["self_fraction"]
"""Columns of :func:`load_records`: the route mix becomes ``self_fraction``."""

COLUMNS = ["method", "budget", "annotated_fraction", "test_accuracy", "test_accuracy_ci95",
           "test_hard_accuracy", "test_hard_accuracy_ci95", "dev_auc", "dev_auc_ci95",
           "frac_reward_zero_std", "final_dev_accuracy",
           "steps_to_target", "speedup", "n_reached", "steps_to_95", "speedup_95", "n_reached_95",
           "train_wall_s", "pseudo_label_accuracy", "n_seeds", "steps", "uses_labels"]
"""Columns of ``table1.csv``. ``steps_to_target`` and ``speedup`` are means over
the seeds that reached the target (``n_reached`` of ``n_seeds``); the ``_95``
columns are the same for 95% of the target (:mod:`analysis.convergence`)."""

TIMING_COLUMNS = ("train_wall_s",)
"""Columns that differ between identical reruns (excluded from determinism checks)."""


def ci95(values: pd.Series) -> float:
    """Half-width of the 95% t-interval of the mean; NaN for fewer than 2 values.

    Examples:
        >>> round(ci95(pd.Series([0.5, 0.7, 0.6])), 4)
        0.2484
        >>> ci95(pd.Series([0.5]))
        nan
    """
    n = len(values)
    if n < 2:
        return math.nan
    return float(stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / math.sqrt(n))


def _read_run_records(paths: list[Path]):
    """``(source, record)`` per run: a ``.jsonl`` path holds one record per line (as the stored
    ``results/reference/*/records.jsonl``), any other path one record (``record.json``)."""
    for p in map(Path, paths):
        if p.suffix == ".jsonl":
            rows = read_jsonl(p, unique=("method", "budget", "seed"))
            yield from ((f"{p} record {i}", r) for i, r in enumerate(rows, 1))
        else:
            yield str(p), read_json(p)


def load_records(paths: list[Path]) -> pd.DataFrame:
    """One row per run record (:data:`RECORD_FIELDS`; budget as its path string; the plan's
    route mix as ``self_fraction``, the share of the pool trained on majority vote, NaN
    without a plan). A ``.jsonl`` path holds one record per line."""
    rows = []
    for p, r in _read_run_records(paths):
        missing = [k for k in RECORD_FIELDS if k not in r and k not in OPTIONAL_FIELDS]
        if missing:
            raise ValueError(f"{p}: run record lacks field(s) {missing}")
        row = {k: r.get(k) for k in RECORD_FIELDS}
        row["budget"] = "none" if row["budget"] is None else str(row["budget"])
        routes = row.pop("route_fractions")
        for k in OPTIONAL_FIELDS:
            if row.get(k, 0) is None:
                row[k] = math.nan
        row["self_fraction"] = routes.get("self", 0.0) if routes else math.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=LOADED_COLUMNS)


def _mean_reached(x: pd.Series) -> float:
    x = x.dropna()
    return float(x.mean()) if len(x) else math.nan


def aggregate(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, budget), sorted by method then budget."""
    runs = per_run(df)
    g = runs.groupby(["method", "budget"], sort=True)
    out = g.agg(annotated_fraction=("annotated_fraction", "mean"),
                test_accuracy=("test_accuracy", "mean"),
                test_accuracy_ci95=("test_accuracy", ci95),
                test_hard_accuracy=("test_hard_accuracy", "mean"),
                test_hard_accuracy_ci95=("test_hard_accuracy", ci95),
                dev_auc=("dev_auc", _mean_reached),
                dev_auc_ci95=("dev_auc", ci95),
                frac_reward_zero_std=("frac_reward_zero_std", _mean_reached),
                final_dev_accuracy=("final_dev_accuracy", "mean"),
                steps_to_target=("steps_to_target", _mean_reached),
                speedup=("speedup", _mean_reached),
                n_reached=("steps_to_target", lambda x: int(x.notna().sum())),
                steps_to_95=("steps_to_95", _mean_reached),
                speedup_95=("speedup_95", _mean_reached),
                n_reached_95=("steps_to_95", lambda x: int(x.notna().sum())),
                train_wall_s=("train_wall_s", "mean"),
                pseudo_label_accuracy=("pseudo_label_accuracy", _mean_reached),
                n_seeds=("seed", "nunique"),
                steps=("steps", "max"),
                uses_labels=("uses_labels", "any")).reset_index()
    return out[COLUMNS]


def to_markdown(table: pd.DataFrame) -> str:
    def pm(mean, half):
        return fmt_cell(mean) if math.isnan(half) else f"{mean:.3f} ± {half:.3f}"

    lines = ["| method | budget | annotated | test acc (95% CI) | test-hard acc (95% CI) | "
             "dev AUC (95% CI) | equal-reward groups | final dev | "
             "steps to target | speedup vs full | reached | steps to 95% | speedup (95%) | reached (95%) "
             "| pseudo-label acc | seeds | train s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        name = r.method + (" (reads labels)" if r.uses_labels else "")
        lines.append(f"| {name} | {r.budget} | {r.annotated_fraction:.3f} | "
                     f"{pm(r.test_accuracy, r.test_accuracy_ci95)} | "
                     f"{pm(r.test_hard_accuracy, r.test_hard_accuracy_ci95)} | "
                     f"{pm(r.dev_auc, r.dev_auc_ci95)} | {fmt_cell(r.frac_reward_zero_std)} | "
                     f"{fmt_cell(r.final_dev_accuracy)} | {fmt_cell(r.steps_to_target, '.1f')} | "
                     f"{fmt_cell(r.speedup, '.2f')} | {r.n_reached}/{r.n_seeds} | "
                     f"{fmt_cell(r.steps_to_95, '.1f')} | {fmt_cell(r.speedup_95, '.2f')} | "
                     f"{r.n_reached_95}/{r.n_seeds} | "
                     f"{fmt_cell(r.pseudo_label_accuracy)} | {r.n_seeds} | {r.train_wall_s:.0f} |")
    notes = ["", "Dev AUC: mean greedy dev accuracy over a run's evaluations (step 0 included). "
             "Equal-reward groups: share of sampled GRPO groups whose rewards were all equal "
             "(compute that taught nothing). "
             "Steps to target: first logged step at which greedy dev accuracy reaches the final "
             "dev accuracy of full supervision with the same seed (mean over the seeds that "
             "reached it); speedup = full supervision's steps to target / the method's. The "
             "95% columns: the same with 95% of that target (robust when full supervision "
             "ends at 1.0). "
             "Pseudo-label accuracy: majority-vote answers of self-route prompts against gold "
             "(analysis only; never used in training)."]
    return "\n".join(lines + notes) + "\n"


def write_table(records: list[Path], out_csv: Path, out_md: Path,
                controls_csv: Path | None = None, out_comparisons: Path | None = None
                ) -> pd.DataFrame:
    """Aggregate run records and write the CSV and Markdown tables atomically.

    With ``controls_csv`` (written by the ``claims`` rule, :mod:`analysis.controls`)
    the controls are listed first in the Markdown table; with ``out_comparisons`` the
    paired comparisons between arms (:mod:`analysis.comparisons`) are written there and
    follow the main table.
    """
    from analysis.comparisons import to_markdown as comparisons_markdown
    from analysis.comparisons import write_comparisons
    from analysis.controls import to_markdown as controls_markdown

    df = load_records(records)
    head = tail = ""
    if controls_csv is not None:
        head = controls_markdown(pd.read_csv(controls_csv)) + "\n## Main table\n\n"
    if out_comparisons is not None:
        tail = "\n" + comparisons_markdown(write_comparisons(df, out_comparisons))
    table = aggregate(df)
    write_results_csv(table.replace([np.inf, -np.inf], np.nan), out_csv)
    with atomic_write(out_md) as fh:
        fh.write(head + to_markdown(table) + tail)
    return table
