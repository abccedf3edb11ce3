"""Pivot detection: robust z, non-maximum suppression, density, edge cases."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from pivottrace import pivots
from pivottrace.pivots import (
    SCORES,
    dynamics_score,
    find_pivots,
    non_max_suppression,
    pivot_density,
    prompt_uncertainty,
    robust_z,
    trace_density,
)


def test_doctests():
    assert doctest.testmod(pivots).failed == 0


def test_robust_z_matches_definition_and_resists_outliers():
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 2.0, size=4001)
    z = robust_z(x)
    med = np.median(x)
    mad = np.median(np.abs(x - med))
    np.testing.assert_allclose(z, (x - med) / (1.4826 * mad))
    # for normal data the scale is the standard deviation
    assert abs(np.std(z) - 1.0) < 0.05
    # a huge outlier barely moves the others
    y = x.copy()
    y[0] = 1e6
    np.testing.assert_allclose(robust_z(y)[1:], z[1:], atol=0.01)


def test_robust_z_mad_floor_and_nan():
    assert np.all(robust_z(np.full(10, 3.0)) == 0.0)
    spiky = np.zeros(10)
    spiky[4] = 1e-3
    z = robust_z(spiky, eps=1e-8)
    assert np.isfinite(z).all() and z[4] == pytest.approx(1e-3 / (1.4826 * 1e-8))
    assert robust_z(spiky, eps=1.0)[4] == pytest.approx(1e-3 / 1.4826)
    z = robust_z([1.0, np.nan, 2.0, 3.0])
    assert np.isnan(z[1]) and z[2] == 0.0
    assert robust_z([]).size == 0


def test_nms_keeps_highest_and_suppresses_within_window():
    z = np.array([0, 9, 8, 0, 0, 7, 0, 0, 0, 6], dtype=float)
    cand = np.flatnonzero(z > 3)
    # 1 kept; 2 (dist 1) suppressed; 5 (dist 4 > 3) kept; 9 (dist 4 from 5) kept
    assert non_max_suppression(z, cand, window=3).tolist() == [1, 5, 9]
    assert non_max_suppression(z, cand, window=4).tolist() == [1, 9]
    assert non_max_suppression(z, cand, window=0).tolist() == [1, 2, 5, 9]
    # suppression is greedy from the maximum, not by scanning left to right
    z2 = np.array([5, 0, 6, 0, 5], dtype=float)
    assert non_max_suppression(z2, np.array([0, 2, 4]), window=2).tolist() == [2]
    # ties: the earlier token wins
    assert non_max_suppression(np.array([4.0, 4.0]), np.array([0, 1]), 1).tolist() == [0]
    assert non_max_suppression(z, np.array([], dtype=int), 3).tolist() == []


def test_find_pivots_threshold_and_nms():
    rng = np.random.default_rng(1)
    s = rng.normal(0, 1, size=200)
    s[[50, 51, 52, 120]] = [12.0, 15.0, 11.0, 9.0]
    piv = find_pivots(s, tau=5.0, window=3)
    assert piv.tolist() == [51, 120]
    assert find_pivots(s, tau=5.0, window=0).tolist() == [50, 51, 52, 120]
    assert find_pivots(s, tau=1e9).tolist() == []
    assert piv.dtype == np.int64


def test_find_pivots_edge_cases():
    assert find_pivots(np.full(50, 0.3)).tolist() == []  # constant score
    assert find_pivots(np.zeros(0)).tolist() == []  # empty trace
    short = np.array([0.0, 0.0, 5.0])
    assert find_pivots(short, min_tokens=8).tolist() == []  # too short
    assert find_pivots(short, min_tokens=1, tau=3.0).tolist() == [2]
    assert find_pivots(np.full(20, np.nan)).tolist() == []
    with pytest.raises(ValueError):
        find_pivots(np.zeros((3, 3)))
    with pytest.raises(ValueError):
        find_pivots(np.zeros(10), window=-1)


def test_dynamics_score_variants_and_layers():
    n = 6
    stats = {
        "shift": np.arange(2 * n, dtype=float).reshape(n, 2),
        "lookback": np.column_stack([np.linspace(1, 0.5, n), np.linspace(1, 0.3, n)]),
        "entropy": np.ones((n, 2)),
        "layers": np.array([3, 7]),
    }
    np.testing.assert_allclose(dynamics_score(stats, "shift"), stats["shift"].mean(1))
    np.testing.assert_allclose(dynamics_score(stats, "shift", layers=[7]), stats["shift"][:, 1])
    drop = dynamics_score(stats, "lookback_drop")
    assert drop[0] == 0.0
    np.testing.assert_allclose(drop[1:], -np.diff(stats["lookback"].mean(1)))
    np.testing.assert_allclose(dynamics_score(stats, "entropy"), np.ones(n))
    # without "layers", indices are column positions
    no_ids = {k: v for k, v in stats.items() if k != "layers"}
    np.testing.assert_allclose(dynamics_score(no_ids, "shift", layers=[1]), stats["shift"][:, 1])
    with pytest.raises(ValueError):
        dynamics_score(stats, "shift", layers=[0])  # layer 0 not traced
    with pytest.raises(ValueError):
        dynamics_score(stats, "nope")
    assert set(SCORES) == {"shift", "lookback_drop", "entropy"}


def test_density_and_uncertainty():
    assert pivot_density(2, 40) == 0.05
    assert pivot_density(0, 0) == 0.0
    with pytest.raises(ValueError):
        pivot_density(-1, 3)
    assert prompt_uncertainty([0.1, 0.3]) == pytest.approx(0.2)
    with pytest.raises(ValueError):
        prompt_uncertainty([])
    s = np.zeros((40, 2))
    s[[10, 30], :] = 1.0
    assert trace_density({"shift": s}) == pytest.approx(2 / 40)
    assert trace_density({"shift": s[:5]}) == 0.0
