"""The pivot pipeline: attention dynamics -> pivots -> pivot density -> prompt uncertainty.

Pure numpy/scipy, and the only implementation of these steps: pool scoring
(:mod:`pivottrace.method.scoring`), the dev sweep (:mod:`pivottrace.method.tuning`)
and the tests call it (the trace figure draws the pivots scoring stored). The input ``stats`` of one trace
is what :mod:`pivottrace.method.trace` returns per sequence: a mapping with
``lookback``, ``shift`` and ``entropy`` arrays of shape (n_tokens, n_layers)
and optionally ``layers`` (the model layer index of each column).

For one trace (every keyword is a config key)::

    score = dynamics_score(stats, score="shift", layers=None)   # per token
    z = pivot_z(score, min_tokens=8)                            # robust z, None if too short
    idx = pivots_from_z(z, tau=3.0, window=3)                   # outliers, one per window
    rho = pivot_density(len(idx), len(score))

:func:`find_pivots` and :func:`trace_density` chain these steps; the dev sweep
computes ``z`` once per (score, layers) and thresholds it for every (tau, window).
``prompt_uncertainty([rho_1, ..., rho_K])`` is u(x) over the K traces of a prompt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.stats import median_abs_deviation

SCORES = ("shift", "lookback_drop", "entropy")
"""Names accepted by :func:`dynamics_score`."""

MAD_SCALE = 1.4826
"""``1 / Phi^-1(3/4)`` to 4 digits: the MAD floor ``eps`` in standard-deviation units."""


def _layer_columns(stats: Mapping, layers: Sequence[int] | None, n_cols: int) -> list[int]:
    if layers is None:
        return list(range(n_cols))
    if "layers" in stats and stats["layers"] is not None:
        ids = [int(x) for x in np.asarray(stats["layers"])]
        missing = [x for x in layers if int(x) not in ids]
        if missing:
            raise ValueError(f"layers {missing} were not traced (traced: {ids})")
        return [ids.index(int(x)) for x in layers]
    cols = [int(x) for x in layers]
    if any(not 0 <= c < n_cols for c in cols):
        raise ValueError(f"layer columns {cols} out of range for {n_cols} columns")
    return cols


def dynamics_score(
    stats: Mapping[str, np.ndarray],
    score: str = "shift",
    layers: Sequence[int] | None = None,
) -> np.ndarray:
    """Per-token dynamics score: a statistic averaged over the selected layers.

    Args:
        stats: one trace, ``{"lookback"|"shift"|"entropy": (n_tokens, n_layers)}``,
            optionally ``"layers"`` (model layer index per column).
        score: which statistic.

            * ``"shift"``: Jensen-Shannon divergence between consecutive
              attention rows (a sudden re-allocation of attention).
            * ``"lookback_drop"``: ``lookback[t-1] - lookback[t]``, the fall of
              the lookback ratio (sudden turn away from the prompt to the
              model's own text); 0 for the first token. The layer mean is taken
              before differencing (the two commute).
            * ``"entropy"``: attention entropy (nats). Note that it grows with
              the number of visible keys, so outliers favour late tokens.
        layers: model layer indices to average (looked up in ``stats["layers"]``
            when present, else column positions); None for all columns.
    Returns:
        float64 array of shape (n_tokens,).

    Examples:
        >>> st = {"shift": np.array([[0.0, 0.2], [0.4, 0.0]]),
        ...       "lookback": np.array([[1.0, 1.0], [0.5, 0.7]]),
        ...       "entropy": np.zeros((2, 2)), "layers": np.array([10, 11])}
        >>> dynamics_score(st, "shift").tolist()
        [0.1, 0.2]
        >>> dynamics_score(st, "shift", layers=[10]).tolist()
        [0.0, 0.4]
        >>> np.round(dynamics_score(st, "lookback_drop"), 6).tolist()
        [0.0, 0.4]
    """
    if score not in SCORES:
        raise ValueError(f"unknown score {score!r}; choose from {SCORES}")
    name = "lookback" if score == "lookback_drop" else score
    values = np.asarray(stats[name], dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2:
        raise ValueError(f"stats[{name!r}] must be (n_tokens, n_layers), got {values.shape}")
    cols = _layer_columns(stats, layers, values.shape[1])
    if not cols:
        raise ValueError("no layers selected")
    mean = values[:, cols].mean(axis=1)
    if score == "lookback_drop":
        out = np.zeros_like(mean)
        out[1:] = mean[:-1] - mean[1:]
        return out
    return mean


def robust_z(x: Sequence[float] | np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Robust z-score ``(x - median) / max(MAD_n, 1.4826 * eps)``.

    ``MAD_n`` is :func:`scipy.stats.median_abs_deviation` with ``scale="normal"``
    (the MAD divided by ``Phi^-1(3/4)``, a consistent estimator of the standard
    deviation for normal data). The floor ``eps`` (in MAD units of ``x``) keeps
    the score finite: a constant trace gives all zeros, while a trace that is
    constant except for a few tokens (MAD = 0) gives those tokens a very large
    z. NaNs are ignored in the medians and stay NaN.

    Examples:
        >>> robust_z([1.0, 2.0, 3.0, 4.0, 100.0]).round(3).tolist()
        [-1.349, -0.674, 0.0, 0.674, 65.426]
        >>> robust_z([2.0, 2.0, 2.0]).tolist()
        [0.0, 0.0, 0.0]
    """
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0 or np.all(np.isnan(x)):
        return np.full_like(x, np.nan)
    med = np.nanmedian(x)
    mad = float(median_abs_deviation(x, scale="normal", nan_policy="omit"))
    return (x - med) / max(mad, MAD_SCALE * eps)


def non_max_suppression(z: np.ndarray, candidates: np.ndarray, window: int) -> np.ndarray:
    """Greedy NMS: keep the highest candidate, drop candidates within ``window``, repeat.

    Ties keep the earlier token. Returns kept indices in ascending order.
    Hand-written rather than :func:`scipy.signal.find_peaks` (``height``,
    ``distance``): find_peaks keeps only strict local maxima and never the
    first or last token, so a pivot at a trace's edge, on a plateau or on the
    flank of a suppressed peak would change; ``tests/test_pivots.py`` checks
    this function against a brute-force reference.

    Examples:
        >>> non_max_suppression(np.array([5., 6., 0., 0., 4.]), np.array([0, 1, 4]), window=3)
        array([1])
        >>> non_max_suppression(np.array([5., 6., 0., 0., 0., 4.]), np.array([0, 1, 5]), window=3)
        array([1, 5])
    """
    order = sorted((int(i) for i in candidates), key=lambda i: (-z[i], i))
    kept: list[int] = []
    for i in order:
        if all(abs(i - j) > window for j in kept):
            kept.append(i)
    return np.array(sorted(kept), dtype=np.int64)


def pivot_z(score: Sequence[float] | np.ndarray, min_tokens: int = 8,
            eps: float = 1e-8) -> np.ndarray | None:
    """Robust z of a trace's dynamics score, or None for a trace too short to have pivots.

    A median and MAD over fewer than ``min_tokens`` tokens are meaningless.

    Examples:
        >>> pivot_z(np.arange(3.0), min_tokens=8) is None
        True
        >>> pivot_z(np.array([0., 0., 0., 0., 1.]), min_tokens=5).tolist()[-1] > 1e6
        True
    """
    score = np.asarray(score, dtype=np.float64)
    if score.ndim != 1:
        raise ValueError(f"score must be 1-D, got shape {score.shape}")
    if score.size < max(min_tokens, 1):
        return None
    return robust_z(score, eps=eps)


def pivots_from_z(z: np.ndarray | None, tau: float = 3.0, window: int = 3) -> np.ndarray:
    """Pivot tokens of a trace from its robust z: above ``tau`` (strictly), one per ``+-window``.

    Examples:
        >>> pivots_from_z(np.array([0., 4., 3.5, 0., 0., 0., 5.]), tau=3.0, window=2).tolist()
        [1, 6]
        >>> pivots_from_z(None).tolist()
        []
    """
    if window < 0:
        raise ValueError("window must be >= 0")
    if z is None:
        return np.zeros(0, dtype=np.int64)
    candidates = np.flatnonzero(np.nan_to_num(z, nan=-np.inf) > tau)
    return non_max_suppression(z, candidates, window)


def find_pivots(
    score: Sequence[float] | np.ndarray,
    tau: float = 3.0,
    window: int = 3,
    min_tokens: int = 8,
    eps: float = 1e-8,
) -> np.ndarray:
    """Pivot tokens of one trace: :func:`pivot_z` then :func:`pivots_from_z`.

    Args:
        score: per-token dynamics score of one trace (:func:`dynamics_score`).
        tau: robust z threshold (strictly greater).
        window: non-maximum suppression half-width in tokens; 0 disables NMS.
        min_tokens: traces shorter than this have no pivots.
        eps: MAD floor of :func:`robust_z`.
    Returns:
        int64 indices of pivot tokens, ascending.

    Examples:
        >>> s = np.zeros(20); s[[5, 6, 15]] = [1.0, 0.9, 2.0]
        >>> find_pivots(s, tau=3.0, window=3).tolist()
        [5, 15]
        >>> find_pivots(np.ones(20)).tolist()
        []
        >>> find_pivots(s[:6], min_tokens=8).tolist()
        []
    """
    return pivots_from_z(pivot_z(score, min_tokens=min_tokens, eps=eps), tau=tau, window=window)


def pivot_density(n_pivots: int | np.ndarray, n_tokens: int | np.ndarray) -> float | np.ndarray:
    """Pivots per generated token; an empty trace has density 0.

    Examples:
        >>> pivot_density(3, 60)
        0.05
        >>> pivot_density(0, 0)
        0.0
        >>> pivot_density(np.array([1, 2]), np.array([10, 0])).tolist()
        [0.1, 0.0]
    """
    n_p = np.asarray(n_pivots, dtype=np.float64)
    n_t = np.asarray(n_tokens, dtype=np.float64)
    if np.any(n_p < 0) or np.any(n_t < 0):
        raise ValueError("counts must be non-negative")
    rho = np.where(n_t > 0, n_p / np.maximum(n_t, 1.0), 0.0)
    return float(rho) if rho.ndim == 0 else rho


def prompt_uncertainty(densities: Sequence[float] | np.ndarray) -> float:
    """u(x): mean pivot density over the K traces of one prompt.

    Examples:
        >>> prompt_uncertainty([0.0, 0.25, 0.5])
        0.25
    """
    d = np.asarray(densities, dtype=np.float64)
    if d.size == 0:
        raise ValueError("need at least one trace")
    return float(d.mean())


def trace_density(
    stats: Mapping[str, np.ndarray],
    score: str = "shift",
    layers: Sequence[int] | None = None,
    tau: float = 3.0,
    window: int = 3,
    min_tokens: int = 8,
    eps: float = 1e-8,
) -> float:
    """Pivot density of one trace: :func:`dynamics_score` -> :func:`find_pivots` -> density.

    Examples:
        >>> s = np.zeros((20, 1)); s[[5, 15], 0] = 1.0
        >>> trace_density({"shift": s})
        0.1
    """
    sc = dynamics_score(stats, score=score, layers=layers)
    idx = find_pivots(sc, tau=tau, window=window, min_tokens=min_tokens, eps=eps)
    return pivot_density(len(idx), len(sc))
