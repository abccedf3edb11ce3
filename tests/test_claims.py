"""Claims with verdicts: each rule on synthetic records where the answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import claims
from analysis.controls import evaluate_controls


def _curve(speed: float) -> list:
    """A dev curve rising to 0.8; ``speed`` steps per evaluation interval of 2."""
    return [[s, round(min(0.8, 0.2 + 0.6 * s * speed / 24), 4)] for s in range(0, 25, 2)]


def _records(n=6, pt_gain=0.05, pt_speed=3.0, dev_gain=0.05, oracle_gain=0.1):
    rng = np.random.default_rng(1)
    rows = []
    for s in range(n):
        base = 0.5 + rng.normal(0, 0.03)
        def add(method, budget, test, dev_auc, curve, annotated, s=s):
            rows.append({"method": method, "budget": budget, "seed": s, "test_accuracy": test,
                         "test_hard_accuracy": test, "dev_auc": dev_auc, "dev_curve": curve,
                         "annotated_fraction": annotated, "steps": 24, "train_wall_s": 1.0,
                         "uses_labels": method == "oracle_learnability",
                         "pseudo_label_accuracy": np.nan, "frac_reward_zero_std": 0.5})
        e = lambda: rng.normal(0, 0.01)  # noqa: E731
        add("full", "none", base + 0.2 + e(), base, _curve(1.0), 1.0)
        add("unsupervised", "none", base + e(), base, _curve(0.1), 0.0)
        for b in ("0.1", "0.3"):
            add("random", b, base + e(), base + e(), _curve(1.0), float(b))
            add("oracle_learnability", b, base + e(), base + oracle_gain + e(), _curve(1.0), float(b))
        add("random_alt", "0.3", base + e(), base + e(), _curve(1.0), 0.3)
        add("pivottrace", "0.3", base + 0.2 + pt_gain + e(), base + dev_gain + e(),
            _curve(pt_speed), 0.29)
    return pd.DataFrame(rows)


@pytest.fixture
def calib(tmp_path):
    rng = np.random.default_rng(0)
    n = 300
    fail = rng.random(n) < 0.5
    ids = [f"p{i}" for i in range(n)]
    pd.DataFrame({"id": ids, "pivot_density": fail * 1.0 + rng.normal(0, 0.6, n),
                  "mean_token_entropy": fail * 0.5 + rng.normal(0, 0.6, n),
                  "majority_disagreement": rng.random(n)}).to_csv(tmp_path / "s.csv", index=False)
    pd.DataFrame({"id": ids, "pass_rate": np.where(fail, 0.25, 0.75),
                  "oracle_learnability": 0.1875}).to_csv(tmp_path / "o.csv", index=False)
    pd.DataFrame([{"target": "reflection", "tolerance": 1, "n_traces": 100, "n_pivots": 1000,
                   "n_targets": 200, "precision": 0.3, "recall": 0.6, "precision_random": 0.05,
                   "recall_random": 0.2, "precision_lift": 6.0, "recall_lift": 3.0}]
                 ).to_csv(tmp_path / "a.csv", index=False)
    return tmp_path / "s.csv", tmp_path / "o.csv", tmp_path / "a.csv"


def test_a_resolving_grid_reproduces_every_claim(calib):
    df = _records()
    t = claims.decide(df, evaluate_controls(df), *calib).set_index("claim")
    assert list(t.index) == list("abcde")
    assert (t.verdict == "reproduced").all(), t.verdict.to_dict()
    assert t.loc["b", "measured"] == pytest.approx(3.0, rel=0.1)
    assert t.loc["c", "measured"] > 0.8


def test_negative_results_are_not_reproduced(calib):
    df = _records(pt_gain=-0.1, pt_speed=1.0, dev_gain=-0.05)
    t = claims.decide(df, evaluate_controls(df), *calib).set_index("claim")
    assert t.loc["a", "verdict"] == "not reproduced"
    assert t.loc["b", "verdict"] == "not reproduced"  # speedup 1 < 2.75
    assert t.loc["d", "verdict"] == "not reproduced"


def test_failed_positive_control_makes_every_verdict_inconclusive(calib):
    df = _records(oracle_gain=0.0)
    controls = evaluate_controls(df)
    assert not (controls.result == "pass").all()
    t = claims.decide(df, controls, *calib)
    assert (t.verdict == claims.UNRESOLVED).all()
    md = claims.to_markdown(t, controls_ok=False)
    assert "every verdict is inconclusive" in md and md.count("Rule:") == 5


def test_pivots_that_avoid_reflections_are_not_metacognitive(tmp_path):
    pd.DataFrame([{"target": "reflection", "tolerance": 1, "n_traces": 100, "n_pivots": 1000,
                   "n_targets": 200, "precision": 0.01, "recall": 0.05, "precision_random": 0.05,
                   "recall_random": 0.2, "precision_lift": 0.2, "recall_lift": 0.25}]
                 ).to_csv(tmp_path / "a.csv", index=False)
    row = claims.claim_e(tmp_path / "a.csv")
    assert row["verdict"] == "not reproduced" and row["p_value"] > 0.99


def test_uncalibrated_pivots_are_not_reproduced(tmp_path):
    rng = np.random.default_rng(0)
    n = 300
    fail = rng.random(n) < 0.5
    ids = [f"p{i}" for i in range(n)]
    pd.DataFrame({"id": ids, "pivot_density": rng.random(n),
                  "mean_token_entropy": fail + rng.normal(0, 0.5, n),
                  "majority_disagreement": rng.random(n)}).to_csv(tmp_path / "s.csv", index=False)
    pd.DataFrame({"id": ids, "pass_rate": np.where(fail, 0.0, 1.0),
                  "oracle_learnability": 0.0}).to_csv(tmp_path / "o.csv", index=False)
    row = claims.claim_c(tmp_path / "s.csv", tmp_path / "o.csv")
    assert row["verdict"] == "not reproduced"


def test_unresolved_curve_leaves_only_the_convergence_claim_inconclusive(calib):
    df = _records()
    df["dev_curve"] = [[[0, 0.5], [2, 0.8], [4, 0.8]] if m == "full" else c
                       for m, c in zip(df.method, df.dev_curve)]
    t = claims.decide(df, evaluate_controls(df), *calib).set_index("claim")
    assert t.loc["b", "verdict"] == claims.UNRESOLVED_CURVE
    assert t.loc["a", "verdict"] == "reproduced" and t.loc["c", "verdict"] == "reproduced"
