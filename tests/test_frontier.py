"""The efficiency frontier (analysis/frontier.py) on synthetic run records."""

import math

import pandas as pd
import pytest

from analysis.frontier import COLUMNS, frontier, match_fraction, method_frontier, to_markdown

SEEDS = range(5)


def _records(arms: dict) -> pd.DataFrame:
    """``arms[(method, budget)] = (annotated fraction, [test accuracy per seed])``."""
    rows = [{"method": m, "budget": b, "seed": s, "annotated_fraction": frac, "test_accuracy": acc}
            for (m, b), (frac, accs) in arms.items() for s, acc in zip(SEEDS, accs)]
    return pd.DataFrame(rows)


FULL = [0.50, 0.52, 0.48, 0.51, 0.49]


def test_interpolates_between_the_budgets_that_bracket_the_margin():
    df = _records({("full", "none"): (1.0, FULL),
                   ("random", "0.1"): (0.1, [a - 0.10 for a in FULL]),
                   ("random", "0.3"): (0.3, [a + 0.02 for a in FULL])})
    row = method_frontier(df, "random", margin=0.02)
    # mean diff -0.10 at 0.1 and +0.02 at 0.3: -0.02 is reached 2/3 of the way
    assert row["match_fraction"] == pytest.approx(0.1 + 0.2 * (0.08 / 0.12))
    assert row["ci_low"] == pytest.approx(row["match_fraction"])  # equal diffs on every seed
    assert row["never_share"] == 0.0 and row["n_seeds"] == 5


def test_never_within_the_grid_is_inf_and_the_interval_says_so():
    df = _records({("full", "none"): (1.0, FULL),
                   ("pivottrace", "0.1"): (0.1, [a - 0.2 for a in FULL]),
                   ("pivottrace", "0.3"): (0.3, [a - 0.1 for a in FULL])})
    row = method_frontier(df, "pivottrace", margin=0.02)
    assert math.isinf(row["match_fraction"]) and math.isinf(row["ci_high"])
    assert row["never_share"] == 1.0
    assert "never" in to_markdown(frontier(df, 0.02))


def test_a_noisy_method_has_an_interval_and_the_same_one_twice():
    df = _records({("full", "none"): (1.0, FULL),
                   ("random", "0.1"): (0.1, [0.40, 0.55, 0.41, 0.47, 0.38]),
                   ("random", "0.3"): (0.3, [0.52, 0.49, 0.50, 0.56, 0.47])})
    a, b = method_frontier(df, "random", 0.02), method_frontier(df, "random", 0.02)
    assert a == b
    assert a["ci_low"] <= a["match_fraction"] <= a["ci_high"]
    assert a["ci_low"] < a["ci_high"]


def test_only_budgeted_methods_and_numeric_budgets_count():
    df = _records({("full", "none"): (1.0, FULL), ("unsupervised", "none"): (0.0, FULL),
                   ("pivottrace", "auto"): (0.28, FULL),
                   ("pivottrace", "0.3"): (0.3, FULL)})
    table = frontier(df, 0.02)
    assert list(table.columns) == COLUMNS
    assert table.method.tolist() == ["pivottrace"]
    assert table.budgets.iloc[0] == "0.3" and table.match_fraction.iloc[0] == pytest.approx(0.3)
    assert "| <= 0.300 |" in to_markdown(table)  # matching at the smallest budget: an upper bound


def test_match_fraction_doctest_cases():
    assert match_fraction([0.05, 0.1, 0.2], [-0.05, -0.02, 0.0], 0.02) == pytest.approx(0.1)


def test_interval_reads_the_expanded_level_as_every_other_interval_does():
    import numpy as np

    from analysis.stats import expanded_level

    df = _records({("full", "none"): (1.0, FULL),
                   ("random", "0.1"): (0.1, [0.40, 0.55, 0.41, 0.47, 0.38]),
                   ("random", "0.3"): (0.3, [0.52, 0.49, 0.50, 0.56, 0.47])})
    row = method_frontier(df, "random", 0.02, n_resamples=4000)
    # the same resamples, read at the plain 95% level, give an interval inside the expanded one
    fractions = [0.1, 0.3]
    diffs = np.array([[0.40, 0.55, 0.41, 0.47, 0.38], [0.52, 0.49, 0.50, 0.56, 0.47]]) - FULL
    draws = np.random.default_rng(0).integers(0, 5, size=(4000, 5))
    boot = np.array([match_fraction(fractions, diffs[:, d].mean(axis=1), 0.02) for d in draws])
    plain = np.percentile(boot, [2.5, 97.5], method="inverted_cdf")
    tail = 100 * (1 - expanded_level(5)) / 2
    expanded = np.percentile(boot, [tail, 100 - tail], method="inverted_cdf")
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(tuple(expanded))
    assert row["ci_low"] <= plain[0] <= plain[1] <= row["ci_high"]
    assert "expanded" in row["rule"]
