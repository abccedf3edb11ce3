"""Controls from run records: paired differences, written rules, insufficient seeds."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.controls import CONTROLS, evaluate_controls, positive_controls_pass, to_markdown


def _records(n_seeds: int, oracle_gain: float, full_gain: float, aa_shift: float = 0.0,
             noise: float = 0.02) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for s in range(n_seeds):
        base = 0.5 + rng.normal(0, 0.05)  # shared per seed: pairing removes it
        for budget in ("0.1", "0.3"):
            rows.append({"method": "random", "budget": budget, "seed": s,
                         "dev_auc": base + rng.normal(0, noise), "test_accuracy": base})
            rows.append({"method": "oracle_learnability", "budget": budget, "seed": s,
                         "dev_auc": base + oracle_gain + rng.normal(0, noise), "test_accuracy": base})
        rows.append({"method": "random_alt", "budget": "0.3", "seed": s,
                     "dev_auc": base + aa_shift + rng.normal(0, noise), "test_accuracy": base})
        rows.append({"method": "full", "budget": "none", "seed": s, "dev_auc": base,
                     "test_accuracy": base + full_gain + rng.normal(0, noise),
                     "dev_curve": [[0, 0.1], [2, 0.3], [4, 0.5], [6, 0.7], [8, 0.9], [10, 0.92]]})
        rows.append({"method": "unsupervised", "budget": "none", "seed": s, "dev_auc": base,
                     "test_accuracy": base + rng.normal(0, noise)})
    return pd.DataFrame(rows)


def test_resolving_testbed_passes_every_control():
    t = evaluate_controls(_records(6, oracle_gain=0.1, full_gain=0.2))
    assert list(t.control) == [c.name for c in CONTROLS] + ["dev_curve_resolved"]
    assert (t.result == "pass").all() and (t.n_seeds == 6).all()
    assert positive_controls_pass(t)
    assert "All positive controls pass" in to_markdown(t)


def test_saturated_testbed_fails_the_positive_controls():
    t = evaluate_controls(_records(6, oracle_gain=0.0, full_gain=0.05)).set_index("control")
    assert t.loc["oracle_beats_random@0.3", "result"] == "fail"
    assert t.loc["full_beats_ttrl", "result"] == "fail"  # 5 points < the 10 the rule asks
    assert not positive_controls_pass(t.reset_index())
    assert "cannot resolve" in to_markdown(t.reset_index())


def test_aa_control_fails_when_the_arms_differ():
    t = evaluate_controls(_records(6, 0.1, 0.2, aa_shift=0.1)).set_index("control")
    assert t.loc["random_aa@0.3", "result"] == "fail"
    assert t.loc["random_aa@0.3", "ci_low"] > 0


def test_too_few_seeds_is_insufficient_never_pass():
    t = evaluate_controls(_records(3, oracle_gain=0.3, full_gain=0.4))
    assert (t.result == "insufficient").all()
    one = evaluate_controls(_records(1, 0.3, 0.4))
    assert (one.result == "insufficient").all() and one.mean_diff.isna().all()


def test_pairs_only_the_seeds_both_arms_ran():
    df = _records(6, 0.1, 0.2)
    df = df[~((df.method == "random") & (df.budget == "0.1") & (df.seed == 2))]
    t = evaluate_controls(df).set_index("control")
    assert t.loc["oracle_beats_random@0.1", "n_seeds"] == 5
    assert t.loc["oracle_beats_random@0.3", "n_seeds"] == 6


def test_unresolved_dev_curve_fails_the_resolution_check():
    df = _records(6, 0.1, 0.2)
    fast = [[0, 0.1], [2, 0.95], [4, 1.0]]
    df["dev_curve"] = [fast if m == "full" else None for m in df.method]
    t = evaluate_controls(df).set_index("control")
    assert t.loc["dev_curve_resolved", "result"] == "fail" and t.loc["dev_curve_resolved", "a_mean"] == 1
    assert positive_controls_pass(t.reset_index())  # a gate for convergence only
    assert "dev curve is not resolved" in to_markdown(t.reset_index())


def test_records_without_dev_curves_leave_the_resolution_check_insufficient():
    df = _records(6, 0.1, 0.2).drop(columns=["dev_curve"])
    t = evaluate_controls(df).set_index("control")
    assert t.loc["dev_curve_resolved", "result"] == "insufficient"
    assert t.loc["oracle_beats_random@0.3", "result"] == "pass"
