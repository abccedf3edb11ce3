"""Rule ``record``: one run record per ``{method}/{budget}/{seed}`` (docs/INTERFACES.md)."""

from __future__ import annotations

from pathlib import Path

from pivottrace.io import read_json, read_jsonl, write_json
from pivottrace.manifest import manifest
from pivottrace.selection import parse_budget


def pseudo_label_accuracy(pseudo_labels: list, gold_path: Path | None) -> dict:
    """ANALYSIS ONLY, READS LABELS. Accuracy of the majority-vote pseudo-labels of self-route prompts.

    Args:
        pseudo_labels: ``[[step, {id: [answer or None, votes, n]}], ...]`` from
            the training summary (:class:`pivottrace.rlvr.PseudoLabelCallback`).
        gold_path: the pool's gold file, opened only through an analysis
            :class:`~pivottrace.oracle.AnnotationOracle` (its ledger is not
            written; the run's annotation count comes from the training ledger).
    Returns:
        ``pseudo_label_accuracy`` (majority answer == gold, over every
        (step, prompt) group; a group with no parseable answer counts as
        wrong), ``pseudo_label_first`` (the same over the first step each
        prompt was seen) and ``n_pseudo_groups``; ``None`` values when the run
        had no self-route prompt.
    """
    groups = [(step, pid, v[0]) for step, entry in pseudo_labels for pid, v in entry.items()]
    if not groups or gold_path is None:
        return {"pseudo_label_accuracy": None, "pseudo_label_first": None, "n_pseudo_groups": 0}
    from pivottrace.oracle import AnnotationOracle

    ids = sorted({pid for _, pid, _ in groups})
    gold = AnnotationOracle(gold_path, max_queries=len(ids)).annotate(ids)
    groups.sort(key=lambda g: g[0])
    hits = [ans is not None and ans == gold[pid] for _, pid, ans in groups]
    first: dict[str, bool] = {}
    for (_, pid, _), hit in zip(groups, hits):
        first.setdefault(pid, hit)
    return {"pseudo_label_accuracy": sum(hits) / len(hits),
            "pseudo_label_first": sum(first.values()) / len(first),
            "n_pseudo_groups": len(hits)}


def build_record(cfg: dict, method: str, budget: str, seed: int, run_dir: Path, pool_path: Path,
                 out: Path, gold_path: Path | None = None) -> dict:
    """Merge plan, ledger, training summary and evaluation into the run record.

    The base row (``method == 'base'``) has no plan, ledger or training: zero
    annotations and zero steps. With ``gold_path``, the record also carries the
    pseudo-label accuracy of self-route prompts (:func:`pseudo_label_accuracy`,
    analysis only).
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
        "train_wall_s": train["train_wall_s"],
        **pseudo_label_accuracy(train.get("pseudo_labels", []), gold_path),
        "manifest": manifest(cfg, seed),
    }
    write_json(out, record)
    return record
