"""Rule ``record``: one run record per ``{method}/{budget}/{seed}`` (docs/INTERFACES.md)."""

from __future__ import annotations

from pathlib import Path

from pivottrace.core.io import read_json, read_jsonl, write_json
from pivottrace.core.manifest import manifest
from pivottrace.data.pool import ROUTES, parse_budget
from pivottrace.labeled.pseudo_labels import pseudo_label_accuracy


def dev_auc(curve: list) -> float | None:
    """Mean greedy dev accuracy over a run's evaluations (area under its dev curve, per point).

    Examples:
        >>> dev_auc([[0, 0.1], [3, 0.5], [6, 0.9]])
        0.5
        >>> dev_auc([]) is None
        True
    """
    return sum(acc for _, acc in curve) / len(curve) if curve else None


def route_fractions(routes: dict | None) -> dict | None:
    """Fractions of the pool per route (annotate / self / defer) of a plan; None without one.

    Examples:
        >>> route_fractions({"a": "annotate", "b": "self", "c": "self", "d": "defer"})
        {'annotate': 0.25, 'self': 0.5, 'defer': 0.25}
    """
    if not routes:
        return None
    values = list(routes.values())
    return {r: values.count(r) / len(values) for r in ROUTES}


def build_record(cfg: dict, method: str, budget: str, seed: int, run_dir: Path, pool_path: Path,
                 out: Path, gold_path: Path | None = None) -> dict:
    """Merge plan, ledger, training summary and evaluation into the run record.

    The base row (``method == 'base'``) has no plan, ledger or training: zero
    annotations and zero steps. Besides the fields of the summary and evaluation
    it derives ``dev_auc`` (:func:`dev_auc`) and ``route_fractions`` (of the
    plan), and carries TRL's ``frac_reward_zero_std`` (the mean share of sampled
    GRPO groups whose rewards were all equal: compute that taught nothing). With
    ``gold_path``, the record also carries the pseudo-label accuracy of
    self-route prompts (:func:`pseudo_label_accuracy`, analysis only).
    """
    n_pool = len(read_jsonl(pool_path, required={"id": str}))
    ev = read_json(run_dir / "eval.json")
    if method == "base":
        plan, ledger, train = {"uses_labels": False}, {"n_annotated": 0}, {
            "steps": 0, "dev_curve": [], "train_wall_s": 0.0, "n_trained_prompts": 0}
    else:
        plan = read_json(run_dir / "plan.json")
        ledger = read_json(run_dir / "ledger.json")
        train = read_json(run_dir / "train.json")
    record = {
        "method": method,
        "budget": parse_budget(budget),
        "seed": seed,
        "uses_labels": bool(plan.get("uses_labels", False)),
        "n_pool": n_pool,
        "n_annotated": ledger["n_annotated"],
        "annotated_fraction": ledger["n_annotated"] / n_pool,
        "n_trained_prompts": train["n_trained_prompts"],
        "steps": train["steps"],
        "test_accuracy": ev["splits"]["test"]["accuracy"],
        "test_hard_accuracy": ev["splits"]["test_hard"]["accuracy"],
        "dev_curve": train["dev_curve"],
        "dev_auc": dev_auc(train["dev_curve"]),
        "route_fractions": route_fractions(plan.get("routes")),
        "frac_reward_zero_std": train.get("frac_reward_zero_std"),
        "train_wall_s": train["train_wall_s"],
        **pseudo_label_accuracy(train.get("pseudo_labels", []), gold_path),
        "manifest": manifest(cfg, seed, device=ev.get("device")),
    }
    write_json(out, record)
    return record
