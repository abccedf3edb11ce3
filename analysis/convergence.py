"""Convergence from run records: steps-to-target and speedup against full supervision.

Each run record holds its greedy dev-accuracy curve ``[[step, accuracy], ...]``.
For a run of seed ``s`` the *target* is the final dev accuracy of full
supervision with the same seed; steps-to-target is the first logged step at
which the run's dev accuracy reaches that target, and the speedup is full
supervision's steps-to-target divided by the run's. A run that never reaches the
target has no steps-to-target (NaN) and no speedup; the table reports how many
seeds reached it.

A second, tolerant target is reported beside it: ``TOLERANT`` (95%) of full
supervision's final dev accuracy, with its own steps, speedup and count. When
full supervision ends at 1.0 on the dev set, the exact target asks every other
method to score 128/128 at some logged step, and "never reached" then says more
about dev noise than about speed; the tolerant target does not have that edge.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

REFERENCE = "full"
"""The method whose final dev accuracy is the target."""

TOL = 1e-9

TOLERANT = 0.95
"""Fraction of full supervision's final dev accuracy used as the tolerant target."""


def steps_to_target(curve: Sequence[Sequence[float]], target: float) -> float:
    """First step whose accuracy is >= ``target``; NaN if none.

    Examples:
        >>> steps_to_target([[0, 0.1], [10, 0.8], [20, 0.95], [30, 0.9]], 0.9)
        20
        >>> steps_to_target([[0, 0.1], [10, 0.5]], 0.9)
        nan
    """
    for step, acc in sorted(curve, key=lambda p: p[0]):
        if acc >= target - TOL:
            return int(step)
    return math.nan


def final_accuracy(curve: Sequence[Sequence[float]]) -> float:
    """Dev accuracy at the last logged step (NaN for an empty curve)."""
    return float(max(curve, key=lambda p: p[0])[1]) if len(curve) else math.nan


def _speedups(df: pd.DataFrame, steps: pd.Series, ref_steps: dict) -> list[float]:
    out = []
    for seed, mine in zip(df["seed"], steps):
        theirs = ref_steps.get(seed, math.nan)
        ok = not (math.isnan(mine) or math.isnan(theirs) or mine <= 0)
        out.append(float(theirs) / float(mine) if ok else math.nan)
    return out


def per_run(records: pd.DataFrame) -> pd.DataFrame:
    """Add convergence columns per run.

    ``final_dev_accuracy``, ``target`` (full supervision's final dev accuracy,
    same seed), ``steps_to_target``, ``speedup``, and the same three for the
    tolerant target ``TOLERANT * target``: ``target_95``, ``steps_to_95``,
    ``speedup_95``.

    Args:
        records: one row per run with ``method``, ``budget``, ``seed``, ``dev_curve``.
    """
    df = records.copy()
    df["final_dev_accuracy"] = [final_accuracy(c) for c in df["dev_curve"]]
    ref = df[df["method"] == REFERENCE].set_index("seed")
    targets = ref["final_dev_accuracy"].to_dict()
    for suffix, frac in (("", 1.0), ("_95", TOLERANT)):
        target = {s: frac * t for s, t in targets.items()}
        steps = "steps_to_target" if not suffix else f"steps_to{suffix}"
        df[f"target{suffix}"] = [target.get(s, math.nan) for s in df["seed"]]
        df[steps] = [steps_to_target(c, t) if len(c) and not math.isnan(t) else math.nan
                     for c, t in zip(df["dev_curve"], df[f"target{suffix}"])]
        ref_steps = {s: steps_to_target(c, target[s]) for s, c in ref["dev_curve"].items()}
        df[f"speedup{suffix}"] = _speedups(df, df[steps], ref_steps)
    return df


def curves_long(records: pd.DataFrame) -> pd.DataFrame:
    """Dev curves as a long table: method, budget, seed, step, dev_accuracy."""
    rows = [{"method": r.method, "budget": r.budget, "seed": r.seed, "step": int(s), "dev_accuracy": a}
            for r in records.itertuples() for s, a in r.dev_curve]
    return pd.DataFrame(rows, columns=["method", "budget", "seed", "step", "dev_accuracy"])
