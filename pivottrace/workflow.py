"""Helpers the Snakefile imports: the run grid and the resolved config file."""

from __future__ import annotations

from pathlib import Path

import yaml

from pivottrace.config import config_hash
from pivottrace.io import atomic_write

BUDGET_RE = r"none|auto|0\.\d+|1\.0"
UNBUDGETED = {"full", "unsupervised", "self_certainty"}


def budget_key(budget) -> str:
    """Path form of a budget: 0.3 -> '0.3', 'auto' -> 'auto', None -> 'none'."""
    if budget is None:
        return "none"
    return budget if budget == "auto" else f"{float(budget):g}" if float(budget) < 1 else "1.0"


def grid_runs(config: dict) -> list[tuple[str, str, int]]:
    """Every (method, budget, seed) of the experiment, plus the untrained base row."""
    exp = config["experiment"]
    runs = [("base", "none", 0)]
    for method in exp["methods"]:
        budgets = ["none"] if method in UNBUDGETED else [budget_key(b) for b in exp["budgets"]]
        runs += [(method, b, s) for b in budgets for s in exp["seeds"]]
    return runs


def write_resolved_config(config: dict, folder: str) -> str:
    """Write the validated config once under a content hash; return its path."""
    path = Path(folder) / f"{config_hash(config)}.yaml"
    if not path.exists():
        with atomic_write(path) as fh:
            yaml.safe_dump(config, fh, sort_keys=True)
    return str(path)
