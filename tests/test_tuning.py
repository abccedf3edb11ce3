"""Pivot tuning on dev: the fast sweep equals per-trace densities, and the choice is applied."""

import json

import numpy as np
import pytest

from pivottrace.pivots import trace_density
from pivottrace.tuning import apply_choice, choice_from_row, grid, sweep


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


def test_sweep_matches_per_trace_density():
    traces = _traces()
    failure = {f"p{i:02d}": i % 2 for i in range(12)}
    df = sweep(traces, failure, grid(SPEC), min_tokens=8)
    assert len(df) == 3 * 3 * 3 * 2 and list(df["rank"]) == list(range(1, len(df) + 1))
    assert df["dev_auroc"].is_monotonic_decreasing
    for _, row in df.sample(10, random_state=0).iterrows():
        p = choice_from_row(row)
        layers = None if p["layers"] == "all" else p["layers"]
        u = [np.mean([trace_density(t["stats"], p["score"], layers, p["tau"], p["window"], 8)
                      for t in traces if t["id"] == pid]) for pid in sorted(failure)]
        assert np.isclose(np.mean(u), row["mean_density"])


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
