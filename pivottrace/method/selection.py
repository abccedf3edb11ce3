"""Selection policies by name: the PivotTrace policy, the registry, the one argument check.

A policy is ``fn(pool, budget, seed, scores, **params) -> Plan``: it sees the
answer-free :class:`~pivottrace.data.pool.UnlabeledPool` and a per-prompt scores
table, nothing else. :func:`select` checks the arguments (:func:`check_args`,
the only place that does), calls the policy and checks the plan it returns;
:func:`~pivottrace.data.pool.write_plan` writes it. Training reads only the plan.

Examples:
    >>> from pivottrace.data.pool import PoolItem, UnlabeledPool
    >>> pool = UnlabeledPool(tuple(PoolItem(f"p{i}", "q", 1) for i in range(10)))
    >>> select("random", pool, budget=0.2, seed=0).counts()
    {'annotate': 2, 'self': 0, 'defer': 8}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from baselines import policies as baseline
from pivottrace.data.pool import (
    SELF_REWARDS,
    Plan,
    UnlabeledPool,
    load_plan,
    load_pool,
    parse_budget,
    score_vector,
    write_plan,
)
from pivottrace.method.triage import AUTO_METHODS, MODES, is_defer_fraction, triage


def pivottrace_policy(pool: UnlabeledPool, budget: float | str, seed: int, scores,
                      score_column: str = "pivot_density", defer_fraction: float = 0.1,
                      mode: str = "three_way", auto_method: str = "otsu",
                      self_reward: str = "majority") -> Plan:
    """PivotTrace: three-way triage of the pool by a label-free uncertainty score.

    Args:
        pool: the unlabeled pool.
        budget: fraction annotated in (0, 1], or ``"auto"`` (cut points from the
            score distribution; the annotated fraction is an outcome).
        seed: recorded in the plan (the triage itself is deterministic; the GMM
            auto method uses it as ``random_state``).
        scores: table with column ``score_column``.
        score_column: uncertainty score; ``pivot_density`` for PivotTrace, other
            columns (``mean_token_entropy``, ``lexical_reflections``) for ablations.
        defer_fraction: most uncertain fraction deferred (fixed budget only).
        mode: ``three_way`` or ``two_way`` (no self route).
        auto_method: ``otsu`` or ``gmm`` (``"auto"`` only).
        self_reward: reward of ``self`` prompts, ``majority`` (TTRL) or ``self_certainty``.
    Returns:
        The plan; ``meta`` holds the score column and the triage cut points and counts.
    """
    u = score_vector(pool, scores, score_column)
    t = triage(u, pool.ids, budget, defer_fraction=defer_fraction, mode=mode,
               auto_method=auto_method, random_state=seed)
    meta = {"score_column": score_column, **t.meta}
    return Plan("pivottrace", budget, seed, False, self_reward, t.routes, meta)


@dataclass(frozen=True)
class PolicySpec:
    """A registered selection method.

    Attributes:
        fn: the policy function.
        uses_labels: whether its input scores were computed from gold answers.
        needs_scores: the score column it reads (default column when
            ``score_column`` is a param), or None.
        accepts_budget: False for methods whose budget is fixed (``fixed_budget``).
        supports_auto: whether ``budget="auto"`` is allowed.
        fixed_budget: the plan budget of a method that accepts none (1.0 for full).
        params: keyword parameters the policy accepts.
        defaults: parameter values this registry entry sets (ablation variants).
        help: one line for CLI help.
    """

    fn: Callable[..., Plan]
    uses_labels: bool = False
    needs_scores: str | None = None
    accepts_budget: bool = True
    supports_auto: bool = False
    fixed_budget: float | None = None
    params: tuple[str, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    help: str = ""


_TRIAGE_PARAMS = ("score_column", "defer_fraction", "mode", "auto_method", "self_reward")

POLICIES: dict[str, PolicySpec] = {
    "random": PolicySpec(baseline.random_selection, params=("stream",),
                         help="annotate a uniform random B fraction"),
    "entropy": PolicySpec(baseline.entropy_selection, needs_scores="mean_token_entropy",
                          help="annotate the B fraction of highest mean token entropy"),
    "random_semi": PolicySpec(baseline.random_semi,
                              help="annotate a uniform random B fraction, the rest on majority vote"),
    "entropy_semi": PolicySpec(baseline.entropy_semi, needs_scores="mean_token_entropy",
                               help="annotate the B fraction of highest entropy, the rest on "
                                    "majority vote"),
    "full": PolicySpec(baseline.full_supervision, accepts_budget=False, fixed_budget=1.0,
                       help="annotate everything (fully supervised)"),
    "unsupervised": PolicySpec(baseline.unsupervised, accepts_budget=False,
                               help="no annotation; majority-vote reward (TTRL)"),
    "self_certainty": PolicySpec(baseline.unsupervised_self_certainty, accepts_budget=False,
                                 help="no annotation; self-certainty reward (Intuitor)"),
    "oracle_learnability": PolicySpec(baseline.oracle_learnability_selection, uses_labels=True,
                                      needs_scores="oracle_learnability",
                                      help="USES LABELS: annotate the highest p(1-p)"),
    "pivottrace": PolicySpec(pivottrace_policy, needs_scores="pivot_density",
                             supports_auto=True, params=_TRIAGE_PARAMS,
                             help="three-way triage by attention pivot density"),
    "triage_entropy": PolicySpec(pivottrace_policy, needs_scores="mean_token_entropy",
                                 supports_auto=True, params=_TRIAGE_PARAMS,
                                 defaults={"score_column": "mean_token_entropy"},
                                 help="ablation: PivotTrace triage by mean token entropy"),
    "triage_lexical": PolicySpec(pivottrace_policy, needs_scores="lexical_reflections",
                                 supports_auto=True, params=_TRIAGE_PARAMS,
                                 defaults={"score_column": "lexical_reflections"},
                                 help="ablation: PivotTrace triage by lexical reflection count"),
}


_PARAM_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "score_column": (lambda v: isinstance(v, str) and bool(v), "a column name"),
    "stream": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "an int >= 0"),
    "defer_fraction": (is_defer_fraction, "a number in [0, 1)"),
    "mode": (lambda v: v in MODES, f"one of {list(MODES)}"),
    "auto_method": (lambda v: v in AUTO_METHODS, f"one of {list(AUTO_METHODS)}"),
    "self_reward": (lambda v: v in SELF_REWARDS, f"one of {list(SELF_REWARDS)}"),
}


def check_args(method: str, budget: Any, seed: Any, scores=None,
               params: Mapping[str, Any] | None = None) -> tuple[PolicySpec, float | str | None]:
    """Check every selection argument once, with errors that say what is allowed.

    Args:
        method: registry name.
        budget: see :func:`parse_budget`; must suit the method (``"auto"`` only where
            supported; none for ``unsupervised``/``self_certainty``; none or 1 for ``full``).
        seed: int >= 0.
        scores: the scores table, when the method reads one (checked for the column).
        params: extra policy parameters.
    Returns:
        The method's :class:`PolicySpec` and the normalised budget.
    Raises:
        ValueError: naming the bad argument and the accepted values.
    """
    if method not in POLICIES:
        raise ValueError(f"unknown method {method!r}; known: {sorted(POLICIES)}")
    spec = POLICIES[method]
    b = parse_budget(budget)
    if not spec.accepts_budget:
        if b is not None and b != spec.fixed_budget:
            allowed = "none" if spec.fixed_budget is None else f"none or {spec.fixed_budget}"
            raise ValueError(f"method {method!r} takes no budget ({allowed}); got {budget!r}")
        b = spec.fixed_budget
    elif b is None:
        raise ValueError(f"method {method!r} needs a budget in (0, 1]"
                         f"{' or auto' if spec.supports_auto else ''}; got {budget!r}")
    elif b == "auto" and not spec.supports_auto:
        raise ValueError(f"method {method!r} does not support budget 'auto'; "
                         f"auto is supported by {sorted(n for n, s in POLICIES.items() if s.supports_auto)}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    params = {**spec.defaults, **(params or {})}
    unknown = sorted(set(params) - set(spec.params))
    if unknown:
        raise ValueError(f"method {method!r} got unknown parameter(s) {unknown}; "
                         f"accepted: {list(spec.params)}")
    for name, value in params.items():
        ok, allowed = _PARAM_CHECKS[name]
        if not ok(value):
            raise ValueError(f"method {method!r}: parameter {name}={value!r}; expected {allowed}")
    column = params.get("score_column", spec.needs_scores)
    if column is not None:
        if scores is None:
            raise ValueError(f"method {method!r} needs a scores table with column {column!r}")
        if column not in scores.columns:
            raise ValueError(f"method {method!r} needs score column {column!r}; the scores "
                             f"table has {sorted(map(str, scores.columns))}")
    return spec, b


def select(method: str, pool: UnlabeledPool, budget: Any = None, seed: int = 0, scores=None,
           **params: Any) -> Plan:
    """Run selection method ``method`` on ``pool``; the plan it returns, checked.

    Args:
        method: registry name (see :data:`POLICIES`).
        pool: the answer-free pool.
        budget: fraction annotated, ``"auto"``, or None (see :func:`check_args`).
        seed: int >= 0.
        scores: pandas DataFrame of per-prompt scores, ids in an ``id`` column or the index.
        **params: method parameters (e.g. ``defer_fraction`` for ``pivottrace``).
    Returns:
        A :class:`~pivottrace.data.pool.Plan` with ``method`` = the registry name,
        covering every pool id in pool order.
    """
    if not isinstance(pool, UnlabeledPool):
        raise TypeError(f"selection takes an UnlabeledPool, got {type(pool).__name__}")
    spec, b = check_args(method, budget, seed, scores, params)
    plan = spec.fn(pool, b, seed, scores, **{**spec.defaults, **params})
    plan = dataclasses.replace(plan, method=method)
    if list(plan.routes) != list(pool.ids):
        raise RuntimeError(f"policy {method!r} did not route exactly the pool ids in pool order")
    if plan.uses_labels != spec.uses_labels:
        raise RuntimeError(f"policy {method!r} plan says uses_labels={plan.uses_labels}, "
                           f"registry says {spec.uses_labels}")
    return plan


def resolve_method(cfg: Mapping[str, Any], name: str) -> tuple[str, dict[str, Any]]:
    """A method name of the experiment -> (registered policy, its parameters).

    Registered names take ``selection.<name>``; a config variant
    (``variants.<name> = {method, params}``, an ablation as config) takes its
    policy's ``selection.<method>`` with ``params`` merged over it.

    Examples:
        >>> cfg = {"selection": {"pivottrace": {"defer_fraction": 0.1}},
        ...        "variants": {"two_way": {"method": "pivottrace", "params": {"mode": "two_way"}}}}
        >>> resolve_method(cfg, "two_way")
        ('pivottrace', {'defer_fraction': 0.1, 'mode': 'two_way'})
        >>> resolve_method(cfg, "random")
        ('random', {})
    """
    selection = cfg.get("selection") or {}
    variants = cfg.get("variants") or {}
    if name in POLICIES:
        if name in variants:
            raise ValueError(f"variants.{name}: a variant may not reuse a registered method name")
        return name, dict(selection.get(name) or {})
    if name in variants:
        base = variants[name]["method"]
        if base not in POLICIES:
            raise ValueError(f"variants.{name}.method: unknown method {base!r}; known: {sorted(POLICIES)}")
        return base, {**(selection.get(base) or {}), **(variants[name].get("params") or {})}
    raise ValueError(f"unknown method {name!r}; known: {sorted(POLICIES)}"
                     f"{'; variants: ' + str(sorted(variants)) if variants else ''}")


def select_and_write(cfg: dict, method: str, budget: Any, seed: int, pool_path, scores_path,
                     out_path) -> Plan:
    """CLI entry (rule ``select``): load the pool (and scores), select, write plan.json.

    Selection receives only the answer-free pool and the scores table; the
    pool's gold file is never opened here.
    """
    import pandas as pd

    pool = load_pool(pool_path)
    scores = None
    if scores_path is not None:
        scores = pd.read_csv(scores_path, dtype={"id": str})
        scores.attrs["path"] = str(scores_path)
    policy, params = resolve_method(cfg, method)
    plan = select(policy, pool, budget=budget, seed=seed, scores=scores, **params)
    plan = dataclasses.replace(plan, method=method)
    write_plan(plan, out_path)
    return plan


__all__ = ["resolve_method", "select_and_write", "POLICIES", "Plan", "PolicySpec", "check_args", "load_plan", "parse_budget",
           "pivottrace_policy", "select", "write_plan"]
