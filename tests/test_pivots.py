"""Pivot detection: robust z (literal values), NMS (brute-force reference), density, edge cases."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from scipy.stats import norm

from pivottrace.method import pivots
from pivottrace.method.pivots import (
    SCORES,
    dynamics_score,
    find_pivots,
    non_max_suppression,
    pivot_density,
    pivot_z,
    pivots_from_z,
    prompt_uncertainty,
    robust_z,
    trace_density,
)


def test_doctests():
    assert doctest.testmod(pivots).failed == 0


# Phi^-1(3/4). scipy's scale="normal" divides the raw MAD by it, so
# z = (x - median) * PHI_INV_34 / MAD.
PHI_INV_34 = 0.6744897501960817


def test_robust_z_literal_values():
    assert norm.ppf(0.75) == pytest.approx(PHI_INV_34, abs=1e-15)
    # median 3, |x - 3| = [2, 1, 0, 1, 97] -> raw MAD 1, MAD_n = 1 / Phi^-1(3/4)
    z = robust_z([1.0, 2.0, 3.0, 4.0, 100.0])
    np.testing.assert_allclose(z, np.array([-2.0, -1.0, 0.0, 1.0, 97.0]) * PHI_INV_34, rtol=1e-12)
    np.testing.assert_allclose(z, [-1.3489795003921634, -0.6744897501960817, 0.0,
                                   0.6744897501960817, 65.42550576901993], rtol=1e-12)
    # even length: median 1.5, |x - 1.5| = [1.5, 0.5, 0.5, 8.5] -> raw MAD 1.0
    np.testing.assert_allclose(robust_z([0.0, 1.0, 2.0, 10.0]),
                               np.array([-1.5, -0.5, 0.5, 8.5]) * PHI_INV_34, rtol=1e-12)
    # location/scale equivariance: z of a*x + b equals z of x for a > 0
    np.testing.assert_allclose(robust_z(np.array([1.0, 2.0, 3.0, 4.0, 100.0]) * 7.0 - 2.0), z,
                               rtol=1e-12)


def test_robust_z_resists_outliers_and_is_consistent_for_normal_data():
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 2.0, size=4001)
    z = robust_z(x)
    assert abs(np.std(z) - 1.0) < 0.05  # MAD_n estimates the standard deviation
    assert abs(np.median(z)) < 1e-12
    y = x.copy()
    y[0] = 1e6
    np.testing.assert_allclose(robust_z(y)[1:], z[1:], atol=0.01)  # one outlier barely matters
    assert robust_z(y)[0] > 1e5


def test_robust_z_constant_trace_is_all_zeros():
    for c in (0.0, 3.0, -2.5):
        z = robust_z(np.full(10, c))
        assert z.dtype == np.float64 and z.tolist() == [0.0] * 10


def test_robust_z_mad_floor_gives_huge_finite_z():
    spiky = np.zeros(10)
    spiky[4] = 1e-3
    z = robust_z(spiky, eps=1e-8)
    # MAD = 0, so the floor 1.4826 * eps is the scale
    assert np.isfinite(z).all()
    assert z[4] == pytest.approx(1e-3 / 1.4826e-8, rel=1e-12) and z[4] > 6e4
    assert (z[np.arange(10) != 4] == 0.0).all()
    assert robust_z(spiky, eps=1.0)[4] == pytest.approx(1e-3 / 1.4826, rel=1e-12)
    # majority tied at the median: MAD 0 although the values are not constant
    z = robust_z([1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 3.0])
    assert z.tolist()[:5] == [0.0] * 5
    assert z[5] == pytest.approx(1.0 / 1.4826e-8, rel=1e-12)
    assert z[6] == pytest.approx(2.0 / 1.4826e-8, rel=1e-12) and np.isfinite(z[6])
    # above the floor the MAD is used, not the floor
    assert robust_z([0.0, 1e-6, 2e-6], eps=1e-8)[2] == pytest.approx(PHI_INV_34, rel=1e-9)


def test_robust_z_nan_handling():
    # NaN ignored in median and MAD: median 2, |x - 2| = [1, 0, 1] -> raw MAD 1
    z = robust_z([1.0, np.nan, 2.0, 3.0])
    assert np.isnan(z[1])
    np.testing.assert_allclose(z[[0, 2, 3]], [-PHI_INV_34, 0.0, PHI_INV_34], rtol=1e-12)
    z = robust_z([2.0, np.nan, 2.0, 2.0])
    assert np.isnan(z[1]) and z[[0, 2, 3]].tolist() == [0.0, 0.0, 0.0]
    assert np.isnan(robust_z([np.nan, np.nan])).all() and robust_z([np.nan, np.nan]).shape == (2,)
    assert robust_z([]).size == 0


def _nms_reference(z, candidates, window):
    """Naive NMS: repeatedly keep the argmax of the remaining candidates, mask its window."""
    z = np.asarray(z, dtype=float)
    remaining = np.zeros(z.size, dtype=bool)
    remaining[np.asarray(candidates, dtype=int)] = True
    kept = []
    while remaining.any():
        i = int(np.argmax(np.where(remaining, z, -np.inf)))  # earliest index on ties
        kept.append(i)
        remaining[max(0, i - window):i + window + 1] = False
    return sorted(kept)


def _random_z(rng):
    n = int(rng.integers(0, 60))
    kind = rng.integers(0, 3)
    if kind == 0:
        z = rng.normal(0.0, 3.0, n)
    elif kind == 1:  # many exact ties
        z = rng.integers(0, 6, n) / 2.0
    else:  # plateaus, ties and NaNs
        z = rng.integers(-2, 5, n).astype(float)
        z[rng.random(n) < 0.15] = np.nan
    return z


def test_nms_and_pivots_from_z_match_brute_force_reference():
    rng = np.random.default_rng(12345)
    n_nonempty = 0
    for _ in range(600):
        z = _random_z(rng)
        tau = float(rng.choice([rng.uniform(-1.0, 4.0), rng.integers(-1, 4)]))
        window = int(rng.integers(0, 7))
        cand = np.flatnonzero(np.nan_to_num(z, nan=-np.inf) > tau)
        want = _nms_reference(z, cand, window)
        got = pivots_from_z(z, tau=tau, window=window)
        assert got.dtype == np.int64
        assert got.tolist() == want, (z.tolist(), tau, window)
        assert non_max_suppression(z, cand, window).tolist() == want
        n_nonempty += bool(want)
        # properties of the kept set
        assert all(z[i] > tau for i in got)
        assert all(b - a > window for a, b in zip(got[:-1], got[1:]))
        kept = set(got.tolist())
        for c in cand:
            if c not in kept:
                assert any(abs(int(c) - k) <= window and z[k] >= z[c] for k in kept), (c, got)
    assert n_nonempty > 300  # the random cases are not trivially empty


def test_pivot_z_min_tokens_and_find_pivots_composition():
    assert pivot_z(np.arange(7.0), min_tokens=8) is None
    assert pivot_z(np.zeros(0), min_tokens=0) is None  # an empty trace never has a z
    z = pivot_z(np.array([1.0, 2.0, 3.0, 4.0, 100.0]), min_tokens=5)
    np.testing.assert_allclose(z, np.array([-2.0, -1.0, 0.0, 1.0, 97.0]) * PHI_INV_34, rtol=1e-12)
    assert pivot_z(np.array([1.0, 2.0, 3.0, 4.0, 100.0]), min_tokens=6) is None
    with pytest.raises(ValueError, match="1-D"):
        pivot_z(np.zeros((8, 2)))
    rng = np.random.default_rng(3)
    for _ in range(200):
        n = int(rng.integers(0, 40))
        s = rng.gamma(1.0, 1.0, n)
        s[rng.random(n) < 0.1] *= 20.0
        tau, window = float(rng.uniform(0, 5)), int(rng.integers(0, 5))
        min_tokens = int(rng.integers(0, 12))
        got = find_pivots(s, tau=tau, window=window, min_tokens=min_tokens)
        want = pivots_from_z(pivot_z(s, min_tokens=min_tokens), tau=tau, window=window)
        assert got.tolist() == want.tolist()
        if n < max(min_tokens, 1):
            assert got.tolist() == []


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
