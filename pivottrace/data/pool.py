"""The unlabeled pool and the routing plan over it: the only data selection sees and writes.

Label firewall (DESIGN.md section 3): :class:`PoolItem` has no answer field and
cannot grow one (frozen, slotted), and :func:`load_pool` rejects a pool file
whose rows carry one. Gold answers are reachable only through
:class:`pivottrace.labeled.oracle.AnnotationOracle`.

A :class:`Plan` is what a selection policy returns and ``pivottrace select``
writes to ``runs/{method}/{budget}/{seed}/plan.json`` (docs/INTERFACES.md):
each pool id routed to ``annotate`` (gold reward), ``self`` (label-free
reward, see ``self_reward``) or ``defer`` (not trained).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from pivottrace.core.io import DataError, read_json, read_jsonl, write_json

#: Row fields that would carry labels; a pool file holding any of them is rejected.
LABEL_FIELDS = ("answer", "gold", "gold_answer", "solution", "label")
ROUTES = ("annotate", "self", "defer")
SELF_REWARDS = ("majority", "self_certainty")
PLAN_FIELDS = ("method", "budget", "seed", "uses_labels", "self_reward", "routes", "meta")


@dataclass(frozen=True, slots=True)
class PoolItem:
    """One unlabeled prompt. Deliberately no answer field."""

    id: str
    prompt: str
    difficulty: int


@dataclass(frozen=True)
class UnlabeledPool:
    """An immutable, ordered, answer-free pool (order = file order).

    Examples:
        >>> pool = UnlabeledPool((PoolItem("a", "x = 1 , x ?", 0), PoolItem("b", "y = 2 , y ?", 0)))
        >>> len(pool), pool.ids
        (2, ('a', 'b'))
    """

    items: tuple[PoolItem, ...]
    source: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        items = tuple(self.items)
        object.__setattr__(self, "items", items)
        where = self.source or "pool"
        if not items:
            raise DataError(f"{where}: empty pool")
        seen: set[str] = set()
        for k, item in enumerate(items, start=1):
            if type(item) is not PoolItem:
                raise TypeError(f"{where}: item {k} is {type(item).__name__}, expected PoolItem")
            if not isinstance(item.id, str) or not item.id:
                raise DataError(f"{where}: item {k}: field 'id' must be a non-empty string")
            if item.id in seen:
                raise DataError(f"{where}: item {k}: field 'id': duplicate id {item.id!r}")
            seen.add(item.id)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(item.id for item in self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[PoolItem]:
        return iter(self.items)


def load_pool(path: str | os.PathLike) -> UnlabeledPool:
    """Read ``data/pool.jsonl`` into an :class:`UnlabeledPool`.

    Args:
        path: JSONL with ``id`` (str), ``prompt`` (str), ``difficulty`` (int) per row.
    Returns:
        The pool in file order; fields other than those three are dropped.
    Raises:
        DataError: naming file, row and field, for a missing/mistyped field, a
            label field (``answer`` ...), a duplicate id, or an empty file.
    """
    rows = read_jsonl(path, required={"id": str, "prompt": str, "difficulty": int},
                      forbidden=LABEL_FIELDS)
    for lineno, row in enumerate(rows, start=1):
        if not row["id"]:
            raise DataError(f"{path}: row {lineno}: field 'id' is empty")
    return UnlabeledPool(tuple(PoolItem(r["id"], r["prompt"], r["difficulty"]) for r in rows),
                         source=str(path))


def n_to_annotate(budget: float, n: int) -> int:
    """Prompts a fixed budget buys: ``round(budget * n)`` rounding half up, at least 1.

    A budget is > 0, so it always buys at least one prompt.

    Examples:
        >>> n_to_annotate(0.2, 512), n_to_annotate(0.25, 10), n_to_annotate(0.01, 10)
        (102, 3, 1)
    """
    return min(n, max(1, math.floor(budget * n + 0.5)))


def score_vector(pool: UnlabeledPool, scores, column: str) -> np.ndarray:
    """One float per pool item (pool order) from column ``column`` of a scores table.

    Args:
        pool: the pool.
        scores: a pandas DataFrame with one row per prompt, ids (str) in an ``id``
            column or, failing that, in the index; extra rows are ignored.
            ``scores.attrs["path"]``, when set, names the file in errors.
        column: the score column.
    Returns:
        ``np.ndarray`` of float64, aligned with ``pool.ids``.
    Raises:
        DataError: no such column, non-string or duplicate ids, a pool id without
            a score, or a non-finite score (naming the id).
    """
    where = getattr(scores, "attrs", {}).get("path", "scores table")
    if scores is None:
        raise DataError(f"{where}: a scores table with column {column!r} is required")
    if column not in scores.columns:
        raise DataError(f"{where}: no column {column!r}; columns: {sorted(map(str, scores.columns))}")
    ids = list(scores["id"] if "id" in scores.columns else scores.index)
    bad = next((i for i in ids if not isinstance(i, str)), None)
    if bad is not None:
        raise DataError(f"{where}: field 'id': ids must be strings, got {type(bad).__name__}"
                        f" {bad!r} (read the table with dtype={{'id': str}})")
    values = np.asarray(scores[column], dtype=float)
    pos: dict[str, int] = {}
    for k, pid in enumerate(ids):
        if pid in pos:
            raise DataError(f"{where}: field 'id': duplicate id {pid!r}")
        pos[pid] = k
    missing = [pid for pid in pool.ids if pid not in pos]
    if missing:
        raise DataError(f"{where}: pool id {missing[0]!r} has no score"
                        f" ({len(missing)} of {len(pool)} missing)")
    out = values[[pos[pid] for pid in pool.ids]]
    bad_k = np.flatnonzero(~np.isfinite(out))
    if bad_k.size:
        raise DataError(f"{where}: field {column!r}: id {pool.ids[bad_k[0]]!r} has non-finite"
                        f" score {out[bad_k[0]]} ({bad_k.size} non-finite)")
    return out


def parse_budget(budget: Any) -> float | str | None:
    """A budget from config, CLI or plan: float in (0, 1], ``"auto"``, or None (the one check).

    Strings are parsed (``"0.2"``, ``"auto"``, ``"none"``/``"null"``).

    Examples:
        >>> parse_budget("0.25"), parse_budget("auto"), parse_budget("none")
        (0.25, 'auto', None)
    """
    raw = budget
    if isinstance(budget, str):
        text = budget.strip().lower()
        if text == "auto":
            return "auto"
        if text in ("none", "null"):
            return None
        try:
            budget = float(text)
        except ValueError:
            raise ValueError(f"budget must be a number in (0, 1], 'auto' or none; "
                             f"got {raw!r}") from None
    if budget is None:
        return None
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) \
            or not math.isfinite(budget) or not 0 < budget <= 1:
        raise ValueError(f"budget must be a number in (0, 1], 'auto' or none; got {raw!r}")
    return float(budget)


@dataclass(frozen=True)
class Plan:
    """A selection plan; serialises to plan.json exactly as in docs/INTERFACES.md.

    ``routes`` maps every pool id to one of :data:`ROUTES` (kept in pool
    order in memory; plan.json sorts keys). ``meta`` is policy-specific and
    must be JSON-serialisable.
    """

    method: str
    budget: float | str | None
    seed: int
    uses_labels: bool
    self_reward: str
    routes: Mapping[str, str]
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "routes", MappingProxyType(dict(self.routes)))
        object.__setattr__(self, "meta", MappingProxyType(dict(self.meta)))
        if not isinstance(self.method, str) or not self.method:
            raise ValueError(f"plan method must be a non-empty string, got {self.method!r}")
        if isinstance(self.budget, str) and self.budget != "auto":
            raise ValueError(f"plan budget must be a number, 'auto' or null, got {self.budget!r}")
        parse_budget(self.budget)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"plan seed must be an int, got {self.seed!r}")
        if not isinstance(self.uses_labels, bool):
            raise ValueError(f"plan uses_labels must be a bool, got {self.uses_labels!r}")
        if self.self_reward not in SELF_REWARDS:
            raise ValueError(f"self_reward must be one of {SELF_REWARDS}, got {self.self_reward!r}")
        for pid, route in self.routes.items():
            if route not in ROUTES:
                raise ValueError(f"route of {pid!r} must be one of {ROUTES}, got {route!r}")

    def ids(self, route: str) -> list[str]:
        """Ids routed to ``route``, in plan order."""
        return [pid for pid, r in self.routes.items() if r == route]

    def counts(self) -> dict[str, int]:
        """Number of prompts per route (all three keys present)."""
        out = dict.fromkeys(ROUTES, 0)
        for r in self.routes.values():
            out[r] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "budget": self.budget, "seed": self.seed,
                "uses_labels": self.uses_labels, "self_reward": self.self_reward,
                "routes": dict(self.routes), "meta": _plain(self.meta)}


def _plain(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def write_plan(plan: Plan, path: str | os.PathLike) -> None:
    """Write ``plan`` as plan.json, atomically (sorted keys, so byte-deterministic)."""
    write_json(path, plan.to_dict())


def load_plan(path: str | os.PathLike, pool: UnlabeledPool | None = None) -> Plan:
    """Read and validate a plan.json.

    Args:
        path: the plan file.
        pool: when given, the plan's ids must be exactly the pool's ids.
    Returns:
        The plan; routes in pool order when ``pool`` is given, else sorted by id.
    Raises:
        DataError: naming the file and the offending field or id.
    """
    obj = read_json(path)
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(obj).__name__}")
    for key in PLAN_FIELDS:
        if key not in obj:
            raise DataError(f"{path}: missing field {key!r}")
    routes = obj["routes"]
    if not isinstance(routes, dict) or not routes:
        raise DataError(f"{path}: field 'routes' must be a non-empty object id -> route")
    for pid, route in routes.items():
        if route not in ROUTES:
            raise DataError(f"{path}: routes[{pid!r}]: {route!r} is not one of {ROUTES}")
    if not isinstance(obj["meta"], dict):
        raise DataError(f"{path}: field 'meta' must be an object")
    if pool is not None:
        for pid in pool.ids:
            if pid not in routes:
                raise DataError(f"{path}: pool id {pid!r} has no route"
                                f" (pool {pool.source or '<memory>'})")
        pool_ids = set(pool.ids)
        for pid in routes:
            if pid not in pool_ids:
                raise DataError(f"{path}: routes[{pid!r}]: id not in pool"
                                f" {pool.source or '<memory>'}")
        routes = {pid: routes[pid] for pid in pool.ids}
    else:
        routes = dict(sorted(routes.items()))
    try:
        return Plan(obj["method"], obj["budget"], obj["seed"], obj["uses_labels"],
                    obj["self_reward"], routes, obj["meta"])
    except ValueError as e:
        raise DataError(f"{Path(path)}: {e}") from None
