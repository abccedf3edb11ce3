"""Three-way triage of prompts by a label-free uncertainty score (DESIGN.md section 2).

Routes, from least to most uncertain:

- ``self``: confident; trained without annotation (label-free reward);
- ``annotate``: pivotal; annotated through the oracle, trained on gold reward;
- ``defer``: beyond reach; neither annotated nor trained.

Cut points come either from a fixed budget ``B`` (for comparisons matched with
the baselines) or from ``"auto"``, the shape of the score distribution, so the
annotated fraction is an outcome. Routing is monotone: every ``self`` score
<= every ``annotate`` score <= every ``defer`` score. Prompts are ranked by
descending uncertainty with ties broken by ascending id, so equal scores that
straddle a fixed-budget cut are split deterministically.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from pivottrace.data.pool import n_to_annotate, parse_budget

MODES = ("three_way", "two_way")
AUTO_METHODS = ("otsu", "gmm")


def is_defer_fraction(value: Any) -> bool:
    """Whether ``value`` is a valid ``defer_fraction``: a number in [0, 1) (the one check)."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and 0 <= value < 1


class Triage(NamedTuple):
    """Routes ``{id: route}`` in input order, and the cut points and counts in ``meta``."""

    routes: dict[str, str]
    meta: dict[str, Any]


def rank_desc(uncertainty: Sequence[float] | np.ndarray, ids: Sequence[str]) -> np.ndarray:
    """Indices from most to least uncertain; ties by ascending id.

    Examples:
        >>> rank_desc([0.1, 0.5, 0.5], ["a", "c", "b"]).tolist()
        [2, 1, 0]
    """
    u, ids = _check(uncertainty, ids)
    return np.lexsort((np.asarray(ids, dtype=str), -u))


def _check(uncertainty, ids) -> tuple[np.ndarray, list[str]]:
    u = np.asarray(uncertainty, dtype=float)
    ids = list(ids)
    if u.ndim != 1 or len(u) != len(ids):
        raise ValueError(f"uncertainty must be 1-D with one value per id; got shape {u.shape}"
                         f" for {len(ids)} ids")
    if not ids:
        raise ValueError("nothing to triage: no ids")
    if not all(isinstance(i, str) for i in ids) or len(set(ids)) != len(ids):
        raise ValueError("ids must be distinct strings")
    bad = np.flatnonzero(~np.isfinite(u))
    if bad.size:
        raise ValueError(f"uncertainty of {ids[bad[0]]!r} is {u[bad[0]]}; all values must be finite"
                         f" ({bad.size} non-finite)")
    return u, ids


def triage(uncertainty: Sequence[float] | np.ndarray, ids: Sequence[str],
           budget: float | str, defer_fraction: float = 0.0, mode: str = "three_way",
           auto_method: str = "otsu", random_state: int = 0) -> Triage:
    """Route each prompt to ``self`` / ``annotate`` / ``defer`` by its uncertainty.

    Fixed budget ``B``: the ``round(defer_fraction * N)`` most uncertain prompts
    are deferred; exactly ``n_to_annotate(B, N)`` (``round(B * N)``, at least 1)
    prompts just below that band are annotated; everything below the annotate
    band is self-trained. The defer band shrinks when ``B`` plus it exceeds N
    (the budget is kept exact; ``meta["n_defer_requested"]`` keeps the request).

    ``"auto"``: two cut points split the scores into three classes, found without
    labels from the distribution's shape; ``defer_fraction`` is not used.

    - ``auto_method="otsu"`` (default): exact two-threshold Otsu on the sorted
      values (Otsu 1979, multi-level form; equivalently optimal 1-D 3-means /
      Jenks breaks): maximise between-class variance over all pairs of cut
      points between distinct values. Deterministic, no fitting, no shape
      assumption, monotone by construction.
    - ``auto_method="gmm"``: a 3-component 1-D Gaussian mixture (sklearn,
      ``random_state``); components ordered by mean; each cut point is the first
      observed value above a component's mean where the next component's weighted
      density is larger (the Bayes boundary between neighbours), which keeps
      routing monotone even when a wide component also claims a far tail.

    Both need at least 3 distinct values and raise ``ValueError`` otherwise.

    ``mode="two_way"``: no ``self`` route; every prompt not annotated is deferred.

    Args:
        uncertainty: one finite score per id, higher = more uncertain.
        ids: distinct string ids.
        budget: fraction in (0, 1], or ``"auto"``.
        defer_fraction: fraction in [0, 1) of most uncertain prompts to defer (fixed budget).
        mode: ``"three_way"`` or ``"two_way"``.
        auto_method: ``"otsu"`` or ``"gmm"`` (``"auto"`` only).
        random_state: GMM seed (``"gmm"`` only).
    Returns:
        :class:`Triage` with routes and meta (mode, counts, fractions, cut points:
        ``self`` is ``u < annotate_from``, ``defer`` is ``u >= defer_from`` up to ties).

    Examples:
        >>> t = triage([0.0, 0.1, 0.2, 0.3, 0.9], list("abcde"), budget=0.4, defer_fraction=0.2)
        >>> t.routes
        {'a': 'self', 'b': 'self', 'c': 'annotate', 'd': 'annotate', 'e': 'defer'}
    """
    u, ids = _check(uncertainty, ids)
    if mode not in MODES:
        raise ValueError(f"unknown triage mode {mode!r}; known: {list(MODES)}")
    n = len(ids)
    meta: dict[str, Any] = {"mode": mode, "budget": budget, "n": n,
                            "n_distinct": int(np.unique(u).size)}
    if budget == "auto":
        if auto_method not in AUTO_METHODS:
            raise ValueError(f"unknown auto_method {auto_method!r}; known: {list(AUTO_METHODS)}")
        if meta["n_distinct"] < 3:
            raise ValueError(f"auto triage needs at least 3 distinct uncertainty values, got "
                             f"{meta['n_distinct']}; the score carries no shape to cut (use a "
                             "fixed budget, which routes ties by id)")
        if auto_method == "otsu":
            lo, hi = otsu_two_thresholds(u)
        else:
            lo, hi, meta["gmm"] = _gmm_cuts(u, random_state)
        route = np.where(u < lo, "self", np.where(u < hi, "annotate", "defer"))
        meta.update(auto_method=auto_method, annotate_from=lo, defer_from=hi)
    else:
        if budget is None or isinstance(budget, str):
            raise ValueError(f"budget must be in (0, 1] or 'auto', got {budget!r}")
        budget = parse_budget(budget)
        if not is_defer_fraction(defer_fraction):
            raise ValueError(f"defer_fraction must be in [0, 1), got {defer_fraction!r}")
        order = rank_desc(u, ids)
        n_ann = n_to_annotate(budget, n)
        n_def_req = math.floor(defer_fraction * n + 0.5)
        n_def = min(n_def_req, n - n_ann)
        route = np.full(n, "self", dtype=object)
        route[order[:n_def]] = "defer"
        route[order[n_def:n_def + n_ann]] = "annotate"
        meta.update(defer_fraction=defer_fraction, n_defer_requested=n_def_req,
                    annotate_from=float(u[order[n_def + n_ann - 1]]),
                    defer_from=float(u[order[n_def - 1]]) if n_def else None)
    if mode == "two_way":
        route = np.where(route == "self", "defer", route)
    routes = {pid: str(r) for pid, r in zip(ids, route, strict=True)}
    counts = {r: int(np.sum(route == r)) for r in ("self", "annotate", "defer")}
    meta.update({f"n_{r}": c for r, c in counts.items()})
    meta["fractions"] = {r: c / n for r, c in counts.items()}
    for key in ("annotate_from", "defer_from"):  # an empty band has no cut point
        if meta.get(key) is not None:
            meta[key] = float(meta[key]) if math.isfinite(meta[key]) else None
    return Triage(routes, meta)


def otsu_two_thresholds(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Exact two-threshold Otsu: cut points ``(lo, hi)`` splitting values into 3 classes.

    Classes are ``v < lo``, ``lo <= v < hi``, ``v >= hi``; ``lo`` and ``hi`` are
    observed values, so equal values never straddle a cut. Maximises the
    between-class variance sum_k W_k * mean_k**2 (values centred) over all
    pairs of cuts between distinct values; ties go to the first (lowest) pair.

    Examples:
        >>> otsu_two_thresholds([0.0, 0.1, 0.0, 5.0, 5.1, 10.0, 9.9])
        (5.0, 9.9)
    """
    v = np.asarray(values, dtype=float)
    vals, counts = np.unique(v, return_counts=True)
    m = vals.size
    if m < 3:
        raise ValueError(f"two thresholds need at least 3 distinct values, got {m}")
    x = vals - np.average(vals, weights=counts)
    w = np.concatenate([[0.0], np.cumsum(counts, dtype=float)])
    s = np.concatenate([[0.0], np.cumsum(counts * x)])
    best, best_ij = -np.inf, (1, 2)
    for i in range(1, m - 1):
        j = np.arange(i + 1, m)
        score = (s[i] ** 2 / w[i] + (s[j] - s[i]) ** 2 / (w[j] - w[i])
                 + (s[m] - s[j]) ** 2 / (w[m] - w[j]))
        k = int(np.argmax(score))
        if score[k] > best:
            best, best_ij = float(score[k]), (i, int(j[k]))
    i, j = best_ij
    return float(vals[i]), float(vals[j])


def _gmm_cuts(u: np.ndarray, random_state: int) -> tuple[float, float, dict[str, list[float]]]:
    from sklearn.mixture import GaussianMixture

    center, scale = float(np.mean(u)), float(np.std(u))
    gmm = GaussianMixture(n_components=3, random_state=random_state, n_init=3)
    gmm.fit(((u - center) / scale).reshape(-1, 1))
    k = np.argsort(gmm.means_.ravel(), kind="stable")
    mu = gmm.means_.ravel()[k]
    var = gmm.covariances_.reshape(-1)[k]
    wt = gmm.weights_[k]
    vals = np.unique(u)
    z = (vals - center) / scale

    def logdens(c: int) -> np.ndarray:
        return np.log(wt[c]) - 0.5 * np.log(2 * np.pi * var[c]) - (z - mu[c]) ** 2 / (2 * var[c])

    cuts = []
    for c in (0, 1):
        wins = (z > mu[c]) & (logdens(c + 1) > logdens(c))
        cuts.append(float(vals[np.argmax(wins)]) if wins.any() else math.inf)
    lo, hi = cuts[0], max(cuts)
    info = {"means": (center + scale * mu).tolist(), "stds": (scale * np.sqrt(var)).tolist(),
            "weights": wt.tolist()}
    return lo, hi, info
