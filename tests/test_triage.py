"""Three-way triage: exact budgets, monotone routes, two-way mode, auto cut points, determinism."""

import json
import math

import numpy as np
import pytest

from pivottrace.data.pool import n_to_annotate
from pivottrace.method.triage import otsu_two_thresholds, rank_desc, triage


def _ids(n):
    return [f"p{i:04d}" for i in range(n)]


def _by_route(t, u, ids):
    pos = {pid: k for k, pid in enumerate(ids)}
    return {r: np.array([u[pos[p]] for p, rr in t.routes.items() if rr == r])
            for r in ("self", "annotate", "defer")}


@pytest.mark.parametrize("n", [7, 10, 64, 101])
@pytest.mark.parametrize("budget", [0.01, 0.1, 0.25, 0.293, 0.5, 1.0])
@pytest.mark.parametrize("defer_fraction", [0.0, 0.1, 0.3])
def test_budget_is_exact_and_routing_monotone(n, budget, defer_fraction):
    u = np.random.default_rng(n).permutation(np.linspace(0.0, 1.0, n))
    ids = _ids(n)
    t = triage(u, ids, budget, defer_fraction=defer_fraction)
    want = max(1, math.floor(budget * n + 0.5))
    assert want == n_to_annotate(budget, n)
    assert t.meta["n_annotate"] == want == sum(r == "annotate" for r in t.routes.values())
    assert t.meta["n_defer"] == min(math.floor(defer_fraction * n + 0.5), n - want)
    assert t.meta["n_self"] + t.meta["n_annotate"] + t.meta["n_defer"] == n
    assert list(t.routes) == ids
    band = _by_route(t, u, ids)
    if band["self"].size and band["annotate"].size:
        assert band["self"].max() < band["annotate"].min() == t.meta["annotate_from"]
    if band["annotate"].size and band["defer"].size:
        assert band["annotate"].max() < band["defer"].min() == t.meta["defer_from"]
    json.dumps(t.meta, allow_nan=False)


def test_round_matches_python_round_away_from_halves():
    assert n_to_annotate(0.2, 512) == round(0.2 * 512) == 102
    assert n_to_annotate(0.293, 512) == round(0.293 * 512) == 150
    assert n_to_annotate(0.5, 5) == 3  # half rounds up (Python's round would give 2)


def test_small_example_and_ties_by_id():
    t = triage([0.0, 0.1, 0.2, 0.3, 0.9], list("abcde"), budget=0.4, defer_fraction=0.2)
    assert t.routes == {"a": "self", "b": "self", "c": "annotate", "d": "annotate", "e": "defer"}
    # Equal scores straddling the annotate cut: the lower id is ranked more uncertain.
    t = triage([0.5, 0.5, 0.5, 0.1], ["z", "y", "x", "w"], budget=0.5)
    assert t.routes == {"z": "self", "y": "annotate", "x": "annotate", "w": "self"}
    assert rank_desc([0.5, 0.5, 0.5, 0.1], ["z", "y", "x", "w"]).tolist() == [2, 1, 0, 3]


def test_budget_wins_over_defer_band():
    t = triage(np.arange(10.0), _ids(10), budget=0.9, defer_fraction=0.3)
    assert (t.meta["n_annotate"], t.meta["n_defer"], t.meta["n_self"]) == (9, 1, 0)
    assert t.meta["n_defer_requested"] == 3
    t = triage(np.arange(10.0), _ids(10), budget=1.0, defer_fraction=0.5)
    assert set(t.routes.values()) == {"annotate"}


def test_two_way_has_no_self_route():
    u = np.random.default_rng(0).random(40)
    ids = _ids(40)
    three = triage(u, ids, 0.25, defer_fraction=0.1)
    two = triage(u, ids, 0.25, defer_fraction=0.1, mode="two_way")
    assert "self" not in two.routes.values() and two.meta["n_self"] == 0
    assert {p for p, r in two.routes.items() if r == "annotate"} == \
        {p for p, r in three.routes.items() if r == "annotate"}
    top = triage(u, ids, 0.25, mode="two_way")  # no defer band: plain top-B selection
    assert {p for p, r in top.routes.items() if r == "annotate"} == \
        {ids[k] for k in np.argsort(-u)[:10]}


def _trimodal(seed=0, sizes=(60, 30, 10)):
    rng = np.random.default_rng(seed)
    parts = [rng.normal(0.02, 0.004, sizes[0]), rng.normal(0.10, 0.008, sizes[1]),
             rng.normal(0.30, 0.02, sizes[2])]
    return np.concatenate(parts), np.repeat(["self", "annotate", "defer"], sizes)


@pytest.mark.parametrize("method", ["otsu", "gmm"])
def test_auto_finds_the_three_modes(method):
    u, truth = _trimodal()
    order = np.random.default_rng(1).permutation(len(u))
    u, truth = u[order], truth[order]
    ids = _ids(len(u))
    t = triage(u, ids, "auto", auto_method=method)
    assert [t.routes[p] for p in ids] == truth.tolist()
    assert (t.meta["n_self"], t.meta["n_annotate"], t.meta["n_defer"]) == (60, 30, 10)
    assert t.meta["fractions"]["annotate"] == pytest.approx(0.3)
    assert 0.03 < t.meta["annotate_from"] <= 0.10 < t.meta["defer_from"] <= 0.3
    assert t.meta["auto_method"] == method
    json.dumps(t.meta, allow_nan=False)
    two = triage(u, ids, "auto", auto_method=method, mode="two_way")
    assert two.meta["n_annotate"] == 30 and two.meta["n_self"] == 0


def test_otsu_is_exact_on_a_small_case():
    assert otsu_two_thresholds([0.0, 0.1, 0.0, 5.0, 5.1, 10.0, 9.9]) == (5.0, 9.9)
    assert otsu_two_thresholds([1, 2, 3]) == (2.0, 3.0)
    # all three splits of [0, 1, 2, 3] have between-class variance 1.125: the lowest pair wins
    assert otsu_two_thresholds([3, 0, 2, 1]) == (1.0, 2.0)


def _between_class_variance(v, lo, hi):
    """sum_k W_k * (mean_k - mean)^2 of the classes v < lo, lo <= v < hi, v >= hi."""
    mean = v.mean()
    total = 0.0
    for cls in (v[v < lo], v[(v >= lo) & (v < hi)], v[v >= hi]):
        assert cls.size > 0
        total += cls.size / v.size * (cls.mean() - mean) ** 2
    return total


def _otsu_brute_force(v):
    """(objective, lo, hi) of every pair of cuts between distinct sorted values, lowest first."""
    vals = np.unique(v)
    return [(_between_class_variance(v, vals[a], vals[b]), float(vals[a]), float(vals[b]))
            for a in range(1, vals.size - 1) for b in range(a + 1, vals.size)]


def test_otsu_matches_brute_force_over_all_cut_pairs():
    rng = np.random.default_rng(2024)
    n_unique_max = 0
    for case in range(400):
        n = int(rng.integers(3, 16))
        kind = case % 3
        if kind == 0:  # small integers: many ties in the values and in the objective
            v = rng.integers(0, int(rng.integers(3, 7)), n).astype(float)
        elif kind == 1:  # continuous, rounded so that some values repeat
            v = np.round(rng.normal(0.0, 1.0, n), 1)
        else:  # skewed, like pivot densities
            v = np.round(rng.exponential(0.05, n), 3)
        if np.unique(v).size < 3:
            with pytest.raises(ValueError, match="at least 3 distinct"):
                otsu_two_thresholds(v)
            continue
        table = _otsu_brute_force(v)
        best = max(obj for obj, _, _ in table)
        near = [(lo, hi) for obj, lo, hi in table if np.isclose(obj, best, rtol=1e-9, atol=1e-12)]
        lo, hi = otsu_two_thresholds(v)
        assert lo in v and hi in v and lo < hi
        got = _between_class_variance(v, lo, hi)
        assert np.isclose(got, best, rtol=1e-9, atol=1e-12), (v.tolist(), lo, hi)
        if len(near) == 1:
            n_unique_max += 1
            assert (lo, hi) == near[0], (v.tolist(), (lo, hi), near)
        else:  # exact ties in the objective go to the lowest pair
            assert (lo, hi) in near
        # the cut points do not depend on the input order
        assert otsu_two_thresholds(rng.permutation(v)) == (lo, hi)
    assert n_unique_max > 200


def test_otsu_ties_go_to_the_lowest_pair():
    # symmetric integer layouts where several pairs reach exactly the same objective
    cases = {(0, 1, 2, 3): (1.0, 2.0), (0, 0, 1, 1, 2, 2, 3, 3): (1.0, 2.0),
             (0, 1, 2, 3, 4): (1.0, 3.0), (5, 6, 7, 8): (6.0, 7.0)}
    for v, want in cases.items():
        v = np.array(v, dtype=float)
        table = _otsu_brute_force(v)
        best = max(obj for obj, _, _ in table)
        tied = [(lo, hi) for obj, lo, hi in table if np.isclose(obj, best, rtol=1e-12)]
        assert len(tied) > 1 and tied[0] == want
        assert otsu_two_thresholds(v) == want


def test_deterministic_and_independent_of_input_order():
    u, _ = _trimodal(seed=3)
    u = np.round(u, 2)  # plenty of ties
    ids = _ids(len(u))
    perm = np.random.default_rng(7).permutation(len(u))
    for budget in (0.2, "auto"):
        a = triage(u, ids, budget, defer_fraction=0.1)
        b = triage(u[perm], [ids[k] for k in perm], budget, defer_fraction=0.1)
        assert a.routes == b.routes and a == triage(u, ids, budget, defer_fraction=0.1)


def test_degenerate_scores():
    ids = ["d", "b", "a", "c", "e"]
    t = triage(np.zeros(5), ids, budget=0.4, defer_fraction=0.2)
    # all tied: ranked by id, so "a" is deferred, "b", "c" annotated, the rest self
    assert t.routes == {"d": "self", "b": "annotate", "a": "defer", "c": "annotate", "e": "self"}
    assert t.meta["n_distinct"] == 1
    with pytest.raises(ValueError, match="at least 3 distinct"):
        triage(np.zeros(5), ids, "auto")
    with pytest.raises(ValueError, match="at least 3 distinct"):
        triage([0, 0, 1, 1, 1], ids, "auto", auto_method="gmm")


def test_bad_inputs():
    with pytest.raises(ValueError, match="'b'.*finite"):
        triage([0.1, float("nan")], ["a", "b"], 0.5)
    with pytest.raises(ValueError, match="one value per id"):
        triage([0.1, 0.2], ["a"], 0.5)
    with pytest.raises(ValueError, match="distinct"):
        triage([0.1, 0.2], ["a", "a"], 0.5)
    with pytest.raises(ValueError, match="no ids"):
        triage([], [], 0.5)
    for budget in (0, 1.5, "x", True):
        with pytest.raises(ValueError, match="budget"):
            triage([0.1, 0.2], ["a", "b"], budget)
    with pytest.raises(ValueError, match="defer_fraction"):
        triage([0.1, 0.2], ["a", "b"], 0.5, defer_fraction=1.0)
    with pytest.raises(ValueError, match="mode"):
        triage([0.1, 0.2], ["a", "b"], 0.5, mode="four_way")
    with pytest.raises(ValueError, match="auto_method"):
        triage([0.1, 0.2, 0.3], ["a", "b", "c"], "auto", auto_method="kmeans")
