"""Helpers the Snakefile imports: the run grid and the resolved config file."""

from __future__ import annotations

from pathlib import Path

import yaml

from pivottrace.core.config import config_hash
from pivottrace.core.io import atomic_write

BUDGET_RE = r"none|auto|0\.\d+|1\.0"


def budget_key(budget) -> str:
    """Path form of a budget: 0.3 -> '0.3', 'auto' -> 'auto', None -> 'none'."""
    if budget is None:
        return "none"
    return budget if budget == "auto" else f"{float(budget):g}" if float(budget) < 1 else "1.0"


def _grids(config: dict) -> list[dict]:
    exp = config["experiment"]
    head = {"name": "headline", **{k: exp[k] for k in ("methods", "budgets", "seeds")}}
    return [head, *exp.get("extra", [])]


def grid_runs(config: dict) -> list[tuple[str, str, int]]:
    """Every (method, budget, seed) of the experiment, plus the untrained base row.

    The headline grid (``experiment.methods x budgets x seeds``) comes first,
    then each ``experiment.extra`` grid; repeats are dropped. Methods without a
    budget (full, unsupervised, ...) run once per seed under 'none'; 'auto'
    applies only to methods that support it. Methods are registered policies
    or config ``variants``.
    """
    from pivottrace.method.selection import POLICIES, resolve_method

    runs = [("base", "none", 0)]
    for grid in _grids(config):
        for method in grid["methods"]:
            try:
                policy, _ = resolve_method(config, method)
            except ValueError as e:
                raise ValueError(f"experiment ({grid['name']} grid): {e}") from None
            spec = POLICIES[policy]
            if not spec.accepts_budget:
                budgets = ["none"]
            else:
                budgets = [budget_key(b) for b in grid["budgets"] if b != "auto" or spec.supports_auto]
            runs += [(method, b, s) for b in budgets for s in grid["seeds"]]
    return list(dict.fromkeys(runs))


def scores_input(method: str, config: dict | None = None) -> list[str]:
    """The scores table a selection method (or config variant) reads ([] for none).

    Label-free methods read ``pool_scores.csv``; ``oracle_learnability`` (reads
    labels) reads ``pool_oracle.csv``.
    """
    from pivottrace.method.selection import POLICIES, resolve_method

    try:
        policy, _ = resolve_method(config or {}, method)
    except ValueError:
        return []
    spec = POLICIES[policy]
    if spec.needs_scores is None:
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
