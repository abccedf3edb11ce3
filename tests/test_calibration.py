"""Calibration of uncertainty estimators against base-model failure (synthetic data)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.calibration import (
    ALIGNMENT_COLUMNS,
    BIN_COLUMNS,
    ESTIMATORS,
    SUMMARY_COLUMNS,
    calibration,
    calibration_and_write,
    load_merged,
    reliability_bins,
    with_alignment,
)
from pivottrace.core.io import DataError

N = 2000
K = 8


def synthetic(n: int = N, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """pivot_density perfectly predictive (= 1 - pass rate); mean_token_entropy random."""
    rng = np.random.default_rng(seed)
    ids = [f"pool-{i:05d}" for i in range(n)]
    p = rng.integers(0, K + 1, n) / K
    scores = pd.DataFrame({
        "id": ids,
        "pivot_density": 1.0 - p,
        "lexical_reflections": rng.integers(0, 3, n).astype(float),  # heavily tied
        "mean_token_entropy": rng.uniform(0, 1, n),
        "self_certainty": rng.uniform(0, 1, n),
        "majority_disagreement": (1 - p) * 0.5 + rng.uniform(0, 0.5, n),
    })
    scores["neg_self_certainty"] = -scores["self_certainty"]
    oracle = pd.DataFrame({"id": ids[::-1], "oracle_learnability": (p * (1 - p))[::-1],
                           "pass_rate": p[::-1]})
    return scores, oracle


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("calib")
    scores, oracle = synthetic()
    scores.to_csv(root / "scores.csv", index=False)
    oracle.to_csv(root / "oracle.csv", index=False)
    return root


def test_perfect_and_random_estimators(files):
    s = calibration(files / "scores.csv", files / "oracle.csv").set_index("estimator")
    assert list(s.reset_index().columns) == SUMMARY_COLUMNS
    assert list(s.index) == list(ESTIMATORS)
    assert s.loc["pivot_density", "auroc"] == 1.0
    assert s.loc["pivot_density", "auroc_unsolved"] == 1.0
    assert s.loc["pivot_density", "spearman_rho"] == pytest.approx(-1.0)
    assert abs(s.loc["mean_token_entropy", "auroc"] - 0.5) < 0.05
    assert abs(s.loc["neg_self_certainty", "auroc"] - 0.5) < 0.05
    assert 0.6 < s.loc["majority_disagreement", "auroc"] < 1.0
    assert s["uses_labels"].to_dict() == {e: e == "oracle_learnability" for e in ESTIMATORS}
    assert "reads labels" in s.loc["oracle_learnability", "note"]
    assert s.loc["pivot_density", "n"] == N


def test_bins_monotone_for_the_perfect_estimator(files):
    b = reliability_bins(files / "scores.csv", files / "oracle.csv", n_bins=5)
    assert list(b.columns) == BIN_COLUMNS
    perfect = b[b["estimator"] == "pivot_density"].sort_values("bin")
    assert len(perfect) >= 3
    assert (np.diff(perfect["failure_rate"]) >= 0).all()
    assert perfect["failure_rate"].iloc[0] == 0.0 and perfect["failure_rate"].iloc[-1] == 1.0
    assert (np.diff(perfect["quantile_mid"]) > 0).all()
    for est, g in b.groupby("estimator"):
        assert g["n"].sum() == N, est  # every prompt in exactly one bin
        assert (g["lo"].to_numpy()[1:] > g["hi"].to_numpy()[:-1]).all(), est  # ties not split
    assert b[b["estimator"] == "lexical_reflections"]["bin"].nunique() <= 3


def test_single_class_gives_nan_with_note():
    scores, oracle = synthetic(n=50)
    oracle["pass_rate"] = 1.0
    s = calibration(scores, oracle).set_index("estimator")
    assert math.isnan(s.loc["pivot_density", "auroc"])
    assert "single class" in s.loc["pivot_density", "note"]
    assert s.loc["pivot_density", "n_failures"] == 0


def test_id_mismatch_is_an_error():
    scores, oracle = synthetic(n=20)
    with pytest.raises(DataError, match="id sets differ"):
        load_merged(scores, oracle.iloc[1:])
    with pytest.raises(DataError, match="missing column"):
        load_merged(scores.drop(columns=["neg_self_certainty"]), oracle)


def test_write_and_figure(files, tmp_path):
    out, out_bins, stem = tmp_path / "calibration.csv", tmp_path / "bins.csv", tmp_path / "fig" / "calib"
    calibration_and_write(files / "scores.csv", files / "oracle.csv", out, out_bins, stem)
    for p in (out, out_bins, stem.with_suffix(".png"), stem.with_suffix(".pdf"),
              stem.with_suffix(".csv")):
        assert p.exists() and p.stat().st_size > 0, p
    assert stem.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    drawn = pd.read_csv(stem.with_suffix(".csv"))
    assert set(drawn["panel"]) == {"auroc", "reliability"}
    assert "oracle_learnability (reads labels)" in set(drawn["label"])
    assert pd.read_csv(out)["estimator"].tolist() == list(ESTIMATORS)


def _alignment_table(targets=("reflection", "first_error", "step_result")) -> pd.DataFrame:
    rows = []
    for tol in (0, 1, 2):
        for i, t in enumerate(targets):
            rows.append({"target": t, "tolerance": tol, "n_traces": 10, "n_pivots": 40,
                         "n_targets": 12, "precision": 0.1 * (i + 1) + tol, "recall": 0.05 + tol,
                         "precision_random": 0.02, "recall_random": 0.03,
                         "precision_lift": 5.0 + i + tol, "recall_lift": 1.5 + tol})
    return pd.DataFrame(rows)


def test_alignment_joins_the_pivot_density_row_at_tolerance_one(files, tmp_path):
    """Issue 11 item 4: pivot precision/recall and lifts beside the AUROCs in calibration.csv."""
    align = tmp_path / "align.csv"
    _alignment_table().to_csv(align, index=False)
    out = tmp_path / "calibration.csv"
    calibration_and_write(files / "scores.csv", files / "oracle.csv", out, tmp_path / "bins.csv",
                          tmp_path / "calib", alignment_csv=align)
    df = pd.read_csv(out).set_index("estimator")
    assert list(df.columns[-len(ALIGNMENT_COLUMNS):]) == ALIGNMENT_COLUMNS
    row = df.loc["pivot_density"]
    assert row["reflection_precision"] == pytest.approx(1.1)  # tolerance 1, not 0 or 2
    assert row["reflection_precision_lift"] == pytest.approx(6.0)
    assert row["first_error_precision"] == pytest.approx(1.2)
    assert row["first_error_recall_lift"] == pytest.approx(2.5)
    assert df.drop(index="pivot_density")[ALIGNMENT_COLUMNS].isna().all().all()


def test_alignment_without_first_error_leaves_it_nan(files):
    summary = calibration(files / "scores.csv", files / "oracle.csv")
    out = with_alignment(summary, _write(_alignment_table(targets=("reflection",)), files / "a.csv"))
    row = out.set_index("estimator").loc["pivot_density"]
    assert row["reflection_recall"] == pytest.approx(1.05)
    assert math.isnan(row["first_error_precision"])


def test_alignment_table_without_the_tolerance_is_an_error(files):
    table = _alignment_table()
    summary = calibration(files / "scores.csv", files / "oracle.csv")
    with pytest.raises(DataError, match="no row at tolerance 1"):
        with_alignment(summary, _write(table[table.tolerance != 1], files / "a.csv"))
    with pytest.raises(DataError, match="missing column"):
        with_alignment(summary, _write(table.drop(columns=["recall_lift"]), files / "a.csv"))


def _write(df: pd.DataFrame, path):
    df.to_csv(path, index=False)
    return path
