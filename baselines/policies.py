"""Baseline selection policies: ``(pool, budget, seed, scores, **params) -> Plan``.

A policy sees only the answer-free :class:`~pivottrace.data.pool.UnlabeledPool` and
a table of per-prompt scores; it never sees gold answers. Arguments arrive
already checked by :func:`pivottrace.method.selection.check_args`; call policies
through :func:`pivottrace.method.selection.select`. Fixed budgets buy
``n_to_annotate(B, N)`` = ``round(B * N)`` prompts (half up, at least 1).
"""

from __future__ import annotations

import numpy as np

from pivottrace.data.pool import Plan, UnlabeledPool, n_to_annotate, score_vector
from pivottrace.method.triage import rank_desc


def _top_scores(pool: UnlabeledPool, budget: float, scores, column: str
                ) -> tuple[dict[str, str], dict]:
    """Annotate the ``round(B * N)`` highest ``column`` scores (ties: lower id first); defer the rest."""
    u = score_vector(pool, scores, column)
    n = n_to_annotate(budget, len(pool))
    chosen = rank_desc(u, pool.ids)[:n]
    routes = dict.fromkeys(pool.ids, "defer")
    for k in chosen:
        routes[pool.ids[k]] = "annotate"
    meta = {"score_column": column, "n_annotate": n, "annotate_from": float(u[chosen[-1]])}
    return routes, meta


def random_selection(pool: UnlabeledPool, budget: float, seed: int, scores=None,
                     stream: int = 0) -> Plan:
    """Annotate ``round(B * N)`` prompts drawn uniformly without replacement; defer the rest.

    The draw is ``numpy.random.default_rng(seed).choice`` over pool (file) order;
    ``stream`` > 0 draws from ``default_rng([seed, stream])`` instead, another
    selection at the same training seed (the A/A control's second arm).
    """
    n = n_to_annotate(budget, len(pool))
    rng = np.random.default_rng([seed, stream] if stream else seed)
    chosen = rng.choice(len(pool), size=n, replace=False)
    routes = dict.fromkeys(pool.ids, "defer")
    for k in sorted(chosen.tolist()):
        routes[pool.ids[k]] = "annotate"
    meta = {"n_annotate": n, **({"stream": stream} if stream else {})}
    return Plan("random", budget, seed, False, "majority", routes, meta)


def entropy_selection(pool: UnlabeledPool, budget: float, seed: int, scores=None) -> Plan:
    """Annotate the ``round(B * N)`` prompts of highest mean token entropy; defer the rest."""
    routes, meta = _top_scores(pool, budget, scores, "mean_token_entropy")
    return Plan("entropy", budget, seed, False, "majority", routes, meta)


def _semi(plan: Plan, method: str) -> Plan:
    """The same annotate set; every other prompt trained on its majority vote (no defer)."""
    routes = {pid: ("annotate" if r == "annotate" else "self") for pid, r in plan.routes.items()}
    return Plan(method, plan.budget, plan.seed, False, "majority", routes,
                {**plan.meta, "semi_supervised": True})


def random_semi(pool: UnlabeledPool, budget: float, seed: int, scores=None) -> Plan:
    """Semi-supervised random (TraPO-style): annotate what :func:`random_selection` annotates,
    train every other prompt on the majority vote of its group, as PivotTrace's self route does.

    Isolates *which* prompts PivotTrace annotates from its *also* self-training on the rest.
    """
    return _semi(random_selection(pool, budget, seed, scores), "random_semi")


def entropy_semi(pool: UnlabeledPool, budget: float, seed: int, scores=None) -> Plan:
    """Semi-supervised entropy: :func:`entropy_selection`'s annotate set, the rest on majority vote."""
    return _semi(entropy_selection(pool, budget, seed, scores), "entropy_semi")


def full_supervision(pool: UnlabeledPool, budget: float, seed: int, scores=None) -> Plan:
    """Annotate every prompt (budget 1.0): the fully supervised reference."""
    return Plan("full", 1.0, seed, False, "majority", dict.fromkeys(pool.ids, "annotate"),
                {"n_annotate": len(pool)})


def unsupervised(pool: UnlabeledPool, budget: None, seed: int, scores=None) -> Plan:
    """Train on every prompt without annotation, rewarded by majority vote (TTRL)."""
    return Plan("unsupervised", None, seed, False, "majority", dict.fromkeys(pool.ids, "self"),
                {"n_annotate": 0})


def unsupervised_self_certainty(pool: UnlabeledPool, budget: None, seed: int, scores=None) -> Plan:
    """Train on every prompt without annotation, rewarded by self-certainty (Intuitor)."""
    return Plan("self_certainty", None, seed, False, "self_certainty",
                dict.fromkeys(pool.ids, "self"), {"n_annotate": 0})


def oracle_learnability_selection(pool: UnlabeledPool, budget: float, seed: int, scores=None) -> Plan:
    """USES LABELS (upper bound): annotate the ``round(B * N)`` highest ``p(1 - p)``.

    ``p`` is the pass rate of the base model's rollouts against gold answers;
    the ``oracle_learnability`` score column is computed by label-reading code
    outside selection. The plan is flagged ``uses_labels``.
    """
    routes, meta = _top_scores(pool, budget, scores, "oracle_learnability")
    meta["note"] = "upper bound: scores computed from gold answers"
    return Plan("oracle_learnability", budget, seed, True, "majority", routes, meta)
