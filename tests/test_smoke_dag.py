"""The whole Snakemake DAG on configs/smoke.yaml, in a temporary directory."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_snakemake  # the session fixture smoke_run lives in conftest.py too

REPO = Path(__file__).resolve().parents[1]


def test_smoke_dag_writes_table_and_records(smoke_run):
    with open(smoke_run / "results" / "table1.csv") as fh:
        rows = list(csv.DictReader(fh))
    methods = {(r["method"], r["budget"]) for r in rows}
    assert {("base", "none"), ("full", "none"), ("random", "0.5")} <= methods
    for r in rows:
        assert 0.0 <= float(r["test_accuracy"]) <= 1.0
        assert 0.0 <= float(r["annotated_fraction"]) <= 1.0
    record = json.loads((smoke_run / "runs/random/0.5/0/record.json").read_text())
    ledger = json.loads((smoke_run / "runs/random/0.5/0/ledger.json").read_text())
    assert record["n_annotated"] == ledger["n_annotated"] == 12
    assert record["annotated_fraction"] == pytest.approx(0.5)
    assert record["manifest"]["config_hash"] and record["manifest"]["packages"]["trl"]
    full = json.loads((smoke_run / "runs/full/none/0/record.json").read_text())
    assert full["annotated_fraction"] == 1.0 and full["steps"] == 4
    assert [s for s, _ in full["dev_curve"]] == [0, 2, 4]
    for budget in ("0.5", "auto"):
        rec = json.loads((smoke_run / f"runs/pivottrace/{budget}/0/record.json").read_text())
        led = json.loads((smoke_run / f"runs/pivottrace/{budget}/0/ledger.json").read_text())
        plan = json.loads((smoke_run / f"runs/pivottrace/{budget}/0/plan.json").read_text())
        assert rec["n_annotated"] == led["n_annotated"] == list(plan["routes"].values()).count("annotate")
        assert sorted(led["annotated_ids"]) == sorted(i for i, r in plan["routes"].items() if r == "annotate")
        assert set(plan["routes"].values()) <= {"annotate", "self", "defer"}
    row = next(r for r in rows if r["method"] == "pivottrace" and r["budget"] == "auto")
    assert float(row["annotated_fraction"]) == pytest.approx(rec["annotated_fraction"])
    with open(smoke_run / "results" / "calibration.csv") as fh:
        estimators = {r["estimator"] for r in csv.DictReader(fh)}
    assert {"pivot_density", "mean_token_entropy", "oracle_learnability"} <= estimators
    assert (smoke_run / "paper_figures" / "calibration.png").stat().st_size > 0
    base = json.loads((smoke_run / "results/base_model.json").read_text())
    assert base["uses_labels"] and 0.0 <= base["sampled_accuracy"] <= 1.0


def test_smoke_dag_is_up_to_date_after_a_run(smoke_run):
    proc = run_snakemake(smoke_run, "results/table1.csv", extra=("-n",))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_bad_config_fails_when_the_dag_is_built(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("grpo:\n  num_generations: 1\n")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-s", str(REPO / "Snakefile"),
                           "--directory", str(tmp_path), "--cores", "1", "--configfile", str(bad)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode != 0
    assert "num_generations" in proc.stdout + proc.stderr
