"""Pivot tuning on dev: the sweep against a brute-force reference, planted spikes, the choice."""

import json

import numpy as np
import pandas as pd
import pytest

from pivottrace.method.pivots import trace_density
from pivottrace.method.tuning import apply_choice, choice_from_row, grid, sweep


def _traces(n_ids=12, k=3, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_ids):
        for j in range(k):
            n = int(rng.integers(6, 30))
            stats = {name: rng.random((n, 2)) ** (1 + 3 * (i % 2)) for name in ("shift", "lookback", "entropy")}
            out.append({"id": f"p{i:02d}", "k": j, "n_tokens": n, "stats": stats})
    return out


SPEC = {"scores": ["shift", "lookback_drop", "entropy"], "layers": ["all", 0, 1],
        "taus": [0.5, 1.5, 3.0], "windows": [0, 2]}


def _pairwise_auroc(u, y):
    """Mann-Whitney by brute force: P(u_fail > u_ok) + 0.5 P(u_fail == u_ok) over all pairs."""
    fail = [a for a, f in zip(u, y) if f == 1]
    ok = [b for b, f in zip(u, y) if f == 0]
    wins = sum((a > b) + 0.5 * (a == b) for a in fail for b in ok)
    return wins / (len(fail) * len(ok))


def _reference_row(traces, failure, params, min_tokens):
    """Per-prompt mean of trace_density over its traces, and the pairwise AUROC of that mean."""
    layers = None if params["layers"] == "all" else params["layers"]
    ids = sorted(failure)
    u = []
    for pid in ids:
        dens = [trace_density(t["stats"], params["score"], layers, params["tau"], params["window"],
                              min_tokens) for t in traces if t["id"] == pid]
        u.append(sum(dens) / len(dens))
    return u, _pairwise_auroc(u, [failure[pid] for pid in ids])


def _key(params):
    """(score, layers, tau, window) of a grid setting as the sweep table spells it."""
    layers = "all" if params["layers"] == "all" else str(params["layers"][0])
    return params["score"], layers, params["tau"], params["window"]


def test_pairwise_auroc_reference_on_hand_cases():
    assert _pairwise_auroc([0.9, 0.8, 0.1, 0.2], [1, 1, 0, 0]) == 1.0
    assert _pairwise_auroc([0.1, 0.2, 0.9, 0.8], [1, 1, 0, 0]) == 0.0
    assert _pairwise_auroc([0.5, 0.5, 0.5], [1, 0, 0]) == 0.5
    # fail 0.3 beats ok 0.1, ties ok 0.3, loses to ok 0.4: (1 + 0.5 + 0) / 3
    assert _pairwise_auroc([0.3, 0.1, 0.3, 0.4], [1, 0, 0, 0]) == pytest.approx(0.5)


def test_sweep_matches_an_independent_reference():
    traces = _traces()
    failure = {f"p{i:02d}": i % 2 for i in range(12)}
    combos = grid(SPEC)
    df = sweep(traces, failure, combos, min_tokens=8)
    assert len(df) == len(combos) == 3 * 3 * 3 * 2
    # every grid setting appears exactly once
    key = list(zip(df["score"], df["layers"], df["tau"], df["window"]))
    assert sorted(key) == sorted(_key(c) for c in combos)
    assert df["dev_auroc"].nunique() > 3  # the fixture separates settings
    by_key = {k: row for k, (_, row) in zip(key, df.iterrows())}
    checked = [combos[i] for i in (0, 7, 13, 22, 31, 40, 47, 53)]
    for params in checked:
        row = by_key[_key(params)]
        u, auroc = _reference_row(traces, failure, params, 8)
        assert row["dev_auroc"] == pytest.approx(auroc, abs=1e-12), params
        assert row["mean_density"] == pytest.approx(np.mean(u), abs=1e-12)
        assert row["frac_nonzero"] == pytest.approx(np.mean(np.array(u) > 0), abs=1e-12)
        assert row["n_distinct"] == len(set(np.round(u, 9)))
    # shuffling the traces (ids interleaved) changes nothing
    perm = np.random.default_rng(5).permutation(len(traces))
    again = sweep([traces[k] for k in perm], failure, combos, min_tokens=8)
    pd.testing.assert_frame_equal(again, df)


def _spiky_dev(n_ids=10, k=4, seed=0):
    """Failing prompts (odd ids) have planted spikes in layer 1 of "shift"; the rest is flat.

    "shift" layer 0 and every ok trace are uniform noise (robust z < 1.5), "lookback"
    and "entropy" are constant, so only settings that read shift layer 1 see a difference.
    """
    rng = np.random.default_rng(seed)
    traces, failure = [], {}
    for i in range(n_ids):
        pid = f"d{i:02d}"
        failure[pid] = i % 2
        for j in range(k):
            n = int(rng.integers(24, 40))
            shift = rng.random((n, 2))
            if failure[pid]:
                spikes = rng.choice(np.arange(0, n, 6), size=int(rng.integers(1, 4)), replace=False)
                shift[spikes, 1] = 50.0 + rng.random(spikes.size)
            traces.append({"id": pid, "k": j, "n_tokens": n,
                           "stats": {"shift": shift, "lookback": np.full((n, 2), 0.7),
                                     "entropy": np.full((n, 2), 1.3)}})
    return traces, failure


def test_sweep_ranks_the_setting_that_sees_planted_spikes_first():
    traces, failure = _spiky_dev()
    spec = {"scores": ["entropy", "lookback_drop", "shift"], "layers": [0, "all", 1],
            "taus": [3.0, 6.0], "windows": [0, 2]}
    df = sweep(traces, failure, grid(spec), min_tokens=8)
    sees = (df["score"] == "shift") & df["layers"].isin(["all", "1"])
    assert sees.sum() == 8
    # the spike-seeing settings separate fail from ok perfectly and come first
    assert (df.loc[sees, "dev_auroc"] > 0.99).all()
    assert sees.iloc[:8].all()
    best = df.iloc[0]
    assert best["score"] == "shift" and best["layers"] in ("all", "1") and best["dev_auroc"] > 0.99
    # constant statistics (and shift layer 0, pure noise) give a constant u: AUROC 0.5
    blind = df[~sees]
    assert len(blind) == 28 and (blind["dev_auroc"] == 0.5).all()
    assert (blind["mean_density"] == 0.0).all() and (blind["n_distinct"] == 1).all()
    for _, row in df.iterrows():  # and each agrees with the brute-force reference
        u, auroc = _reference_row(traces, failure, choice_from_row(row), 8)
        assert row["dev_auroc"] == pytest.approx(auroc, abs=1e-12)


def test_sweep_undefined_when_all_fail():
    traces = _traces(n_ids=4)
    df = sweep(traces, {f"p{i:02d}": 1 for i in range(4)}, grid(SPEC), min_tokens=8)
    assert df["dev_auroc"].isna().all()


def test_apply_choice_overrides_pivot_keys_only(tmp_path):
    path = tmp_path / "choice.json"
    path.write_text(json.dumps({"score": "lookback_drop", "layers": [2], "tau": 1.5, "window": 1,
                                "dev_auroc": 0.7}))
    cfg = {"scoring": {"score": "shift", "layers": "all", "tau": 3.0, "window": 3, "K": 8}}
    out = apply_choice(cfg, path)
    assert out["scoring"] == {"score": "lookback_drop", "layers": [2], "tau": 1.5, "window": 1, "K": 8}
    assert cfg["scoring"]["score"] == "shift"  # input untouched
    path.write_text(json.dumps({"score": "shift"}))
    with pytest.raises(ValueError, match="lacks"):
        apply_choice(cfg, path)
