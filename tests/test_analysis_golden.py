"""Golden test for analysis: fixture run records -> expected table1 rows."""

import json
import math

import pandas as pd
import pytest

from analysis.table import COLUMNS, write_table


def _record(method, budget, seed, frac, test, hard, curve, pl=None, labels=False):
    return {"method": method, "budget": budget, "seed": seed, "annotated_fraction": frac,
            "test_accuracy": test, "test_hard_accuracy": hard, "steps": curve[-1][0] if curve else 0,
            "train_wall_s": 10.0 + seed, "uses_labels": labels, "dev_curve": curve,
            "pseudo_label_accuracy": pl, "n_annotated": int(frac * 100)}


RECORDS = [
    _record("base", None, 0, 0.0, 0.1, 0.05, []),
    _record("full", 1.0, 0, 1.0, 0.9, 0.2, [[0, 0.1], [10, 0.8], [20, 0.9]]),
    _record("full", 1.0, 1, 1.0, 0.8, 0.2, [[0, 0.1], [10, 0.9], [20, 0.95]]),
    _record("pivottrace", 0.3, 0, 0.3, 0.8, 0.3, [[0, 0.1], [10, 0.9], [20, 0.92]], pl=0.5),
    _record("pivottrace", 0.3, 1, 0.3, 0.6, 0.1, [[0, 0.1], [10, 0.8], [20, 0.9]], pl=0.7),
    # never reaches full's final 0.9 (seed 0), but 95% of it (0.855) at step 10
    _record("random", 0.3, 0, 0.3, 0.85, 0.2, [[0, 0.1], [10, 0.88], [20, 0.89]]),
]


@pytest.fixture
def table(tmp_path):
    paths = []
    for i, r in enumerate(RECORDS):
        p = tmp_path / f"r{i}.json"
        p.write_text(json.dumps(r))
        paths.append(p)
    write_table(paths, tmp_path / "t.csv", tmp_path / "t.md")
    return pd.read_csv(tmp_path / "t.csv", dtype={"budget": str}), (tmp_path / "t.md").read_text()


def test_golden_rows(table):
    df, md = table
    assert list(df.columns) == COLUMNS
    assert list(zip(df["method"], df["budget"])) == [("base", "none"), ("full", "1.0"),
                                                      ("pivottrace", "0.3"), ("random", "0.3")]
    full = df[df.method == "full"].iloc[0]
    assert full.test_accuracy == pytest.approx(0.85)
    assert full.test_accuracy_ci95 == pytest.approx(12.7062 * 0.05, rel=1e-4)  # t(0.975, 1) * sd / sqrt(2)
    assert full.steps_to_target == 20 and full.speedup == 1.0 and full.n_reached == 2
    assert full.steps_to_95 == 20 and full.speedup_95 == 1.0 and full.n_reached_95 == 2
    assert full.final_dev_accuracy == pytest.approx(0.925)
    pt = df[df.method == "pivottrace"].iloc[0]
    assert pt.annotated_fraction == pytest.approx(0.3)
    assert pt.test_accuracy == pytest.approx(0.7)
    # seed 0 reaches full's final 0.9 at step 10 (full: 20) -> speedup 2; seed 1 never reaches 0.95
    assert pt.steps_to_target == 10 and pt.speedup == 2.0 and pt.n_reached == 1
    # 95% targets: 0.855 (seed 0, reached at 10) and 0.9025 (seed 1, 0.9 at 20: not reached)
    assert pt.steps_to_95 == 10 and pt.speedup_95 == 2.0 and pt.n_reached_95 == 1
    rnd = df[df.method == "random"].iloc[0]
    assert math.isnan(rnd.steps_to_target) and rnd.n_reached == 0
    assert rnd.steps_to_95 == 10 and rnd.speedup_95 == 2.0 and rnd.n_reached_95 == 1
    assert pt.pseudo_label_accuracy == pytest.approx(0.6)
    assert pt.n_seeds == 2 and pt.train_wall_s == pytest.approx(10.5)
    base = df[df.method == "base"].iloc[0]
    assert math.isnan(base.steps_to_target) and base.n_reached == 0 and math.isnan(base.test_accuracy_ci95)
    assert "| pivottrace | 0.3 | 0.300 | 0.700 ± 1.271 |" in md and "1/2" in md


def test_record_missing_field_is_named(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text(json.dumps({k: v for k, v in RECORDS[1].items() if k != "dev_curve"}))
    with pytest.raises(ValueError, match=r"bad\.json.*dev_curve"):
        write_table([p], tmp_path / "t.csv", tmp_path / "t.md")
    assert not (tmp_path / "t.csv").exists()
