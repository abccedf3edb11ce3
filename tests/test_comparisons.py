"""Paired comparisons between arms (analysis/comparisons.py): which arm each is paired with,
over which seeds, and the numbers against a hand computation."""

import math

import numpy as np
import pandas as pd
import pytest

from analysis.comparisons import compare, pairs, regimes, to_markdown


def records(cells: dict[tuple[str, str], tuple[float, list[float]]]) -> pd.DataFrame:
    """``(method, budget) -> (self_fraction, dev AUC per seed)``; other metrics = AUC + 0.1."""
    rows = []
    for (m, b), (self_fraction, values) in cells.items():
        for seed, v in enumerate(values):
            if v is None:
                continue
            rows.append({"method": m, "budget": b, "seed": seed, "dev_auc": v,
                         "test_accuracy": v + 0.1, "test_hard_accuracy": v - 0.1,
                         "self_fraction": self_fraction})
    return pd.DataFrame(rows)


GRID = {
    ("full", "none"): (0.0, [0.50, 0.52, 0.51]),
    ("random", "0.3"): (0.0, [0.45, 0.46, 0.47]),
    ("random_semi", "0.3"): (0.6, [0.40, 0.42, 0.41]),
    ("pivottrace", "0.3"): (0.6, [0.43, 0.45, 0.44]),
    ("pivottrace_two_way", "0.3"): (0.0, [0.44, 0.44, 0.46]),
    ("unsupervised", "none"): (1.0, [0.30, 0.31, 0.32]),
}


def test_regimes_come_from_the_route_mix():
    assert regimes(records(GRID)) == {
        ("full", "none"): "annotate only", ("random", "0.3"): "annotate only",
        ("random_semi", "0.3"): "annotate + self", ("pivottrace", "0.3"): "annotate + self",
        ("pivottrace_two_way", "0.3"): "annotate only", ("unsupervised", "none"): "self only"}


def test_each_arm_is_paired_with_the_random_arm_that_trains_the_same_way():
    got = {(k, a, b, bud) for k, a, b, bud, _ in pairs(records(GRID))}
    assert ("selection", "pivottrace", "random_semi", "0.3") in got
    assert ("selection", "pivottrace_two_way", "random", "0.3") in got
    assert ("selection", "pivottrace", "random", "0.3") not in got  # random_semi is there
    assert ("self_route", "pivottrace", "pivottrace_two_way", "0.3") in got
    assert ("self_route", "random_semi", "random", "0.3") in got
    assert ("vs_full", "pivottrace", "full", "0.3") in got
    assert ("vs_full", "unsupervised", "full", "none") in got
    assert not any(k == "selection" and bud == "none" for k, _, _, bud in got)


def test_without_random_semi_a_self_route_arm_is_compared_with_random_and_says_so():
    grid = {k: v for k, v in GRID.items() if k[0] != "random_semi"}
    notes = {(a, b): note for k, a, b, _, note in pairs(records(grid)) if k == "selection"}
    assert "regimes differ" in notes[("pivottrace", "random")]
    assert notes[("pivottrace_two_way", "random")] == "annotate only"


def test_numbers_are_the_paired_differences_over_shared_seeds():
    grid = dict(GRID)
    grid[("random", "0.3")] = (0.0, [0.45, None, 0.47])  # seed 1 missing: pairs use seeds 0, 2
    t = compare(records(grid))
    row = t[(t.kind == "selection") & (t.a == "pivottrace_two_way") & (t.metric == "dev_auc")].iloc[0]
    assert row.n_seeds == 2
    assert row.mean_diff == pytest.approx(np.mean([0.44 - 0.45, 0.46 - 0.47]))
    assert row.a_mean == pytest.approx(0.45) and row.b_mean == pytest.approx(0.46)
    full = t[(t.kind == "vs_full") & (t.a == "pivottrace")]
    assert list(full.metric) == ["test_accuracy"]
    assert full.iloc[0].mean_diff == pytest.approx(np.mean([0.43 - 0.50, 0.45 - 0.52, 0.44 - 0.51]))
    assert full.iloc[0].ci_low <= full.iloc[0].mean_diff <= full.iloc[0].ci_high


def test_pairs_with_one_shared_seed_are_left_out():
    grid = {("random", "0.3"): (0.0, [0.4, None]), ("entropy", "0.3"): (0.0, [None, 0.5])}
    t = compare(records(grid))
    assert t.empty
    assert "no pair of arms shares two seeds" in to_markdown(t)
    assert not math.isnan(compare(records(GRID)).p_value.iloc[0])
