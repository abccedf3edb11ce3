"""READS LABELS, analysis only. How often the majority-vote pseudo-labels of self-route prompts were right.

Training logs the majority answer of every self-route group
(:class:`pivottrace.rl.callbacks.PseudoLabelCallback`) without ever seeing
gold; the ``record`` rule compares them with gold afterwards through an
analysis :class:`~pivottrace.labeled.oracle.AnnotationOracle` (whose ledger is
not written: the run's annotation count comes from the training ledger).
"""

from __future__ import annotations

from pathlib import Path

from pivottrace.labeled.oracle import AnnotationOracle


def pseudo_label_accuracy(pseudo_labels: list, gold_path: Path | None) -> dict:
    """Accuracy of the majority-vote pseudo-labels of self-route prompts.

    Args:
        pseudo_labels: ``[[step, {id: [answer or None, votes, n]}], ...]`` from
            the training summary (:class:`pivottrace.rl.grpo.PseudoLabelCallback`).
        gold_path: the pool's gold file, opened only through an analysis
            :class:`~pivottrace.labeled.oracle.AnnotationOracle` (its ledger is not
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
