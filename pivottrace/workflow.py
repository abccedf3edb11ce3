"""Helpers the Snakefile imports: the run grid and the resolved config file."""

from __future__ import annotations

from pathlib import Path

import yaml

from pivottrace.config import config_hash
from pivottrace.io import atomic_write

BUDGET_RE = r"none|auto|0\.\d+|1\.0"


def budget_key(budget) -> str:
    """Path form of a budget: 0.3 -> '0.3', 'auto' -> 'auto', None -> 'none'."""
    if budget is None:
        return "none"
    return budget if budget == "auto" else f"{float(budget):g}" if float(budget) < 1 else "1.0"


def grid_runs(config: dict) -> list[tuple[str, str, int]]:
    """Every (method, budget, seed) of the experiment, plus the untrained base row.

    Methods without a budget (full, unsupervised, ...) run once per seed under
    'none'; 'auto' applies only to methods that support it.
    """
    from pivottrace.selection import POLICIES

    exp = config["experiment"]
    unknown = [m for m in exp["methods"] if m not in POLICIES]
    if unknown:
        raise ValueError(f"experiment.methods: unknown method(s) {unknown}; known: {sorted(POLICIES)}")
    runs = [("base", "none", 0)]
    for method in exp["methods"]:
        spec = POLICIES[method]
        if not spec.accepts_budget:
            budgets = ["none"]
        else:
            budgets = [budget_key(b) for b in exp["budgets"] if b != "auto" or spec.supports_auto]
        runs += [(method, b, s) for b in budgets for s in exp["seeds"]]
    return runs


def scores_input(method: str) -> list[str]:
    """The scores table a selection method reads ([] for none).

    Label-free methods read ``pool_scores.csv``; ``oracle_learnability`` (reads
    labels) reads ``pool_oracle.csv``.
    """
    from pivottrace.selection import POLICIES

    spec = POLICIES.get(method)
    if spec is None or spec.needs_scores is None:
        return []
    if spec.uses_labels:
        return ["results/scores/pool_oracle.csv"]
    return ["results/scores/pool_scores.csv"]


def write_resolved_config(config: dict, folder: str) -> str:
    """Write the validated config once under a content hash; return its path."""
    path = Path(folder) / f"{config_hash(config)}.yaml"
    if not path.exists():
        with atomic_write(path) as fh:
            yaml.safe_dump(config, fh, sort_keys=True)
    return str(path)
