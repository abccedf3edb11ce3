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
    assert set(base["checks"]) == {"never_solved", "always_solved", "majority_wrong_confident",
                                   "reflection_rate"}
    assert (smoke_run / "paper_figures/base_pass_rates.png").stat().st_size > 0


def test_smoke_dag_writes_controls_and_claims(smoke_run):
    """One seed cannot decide a control, so every control is insufficient and every claim
    inconclusive (the rule is in each row)."""
    controls = list(csv.DictReader(open(smoke_run / "results/controls.csv")))
    assert [r["control"] for r in controls][-1] == "dev_curve_resolved"
    assert {r["result"] for r in controls} == {"insufficient"}
    claims = list(csv.DictReader(open(smoke_run / "results/claims.csv")))
    assert [r["claim"] for r in claims] == list("abcde")
    frontier = {r["method"]: r for r in csv.DictReader(open(smoke_run / "results/frontier.csv"))}
    assert set(frontier) == {"random", "pivottrace"}  # the budgeted methods of the smoke grid
    assert frontier["random"]["budgets"] == "0.5" and frontier["random"]["match_fraction"]
    assert "Efficiency frontier" in (smoke_run / "results/claims.md").read_text()
    assert all(r["rule"] and r["verdict"].startswith("inconclusive") for r in claims)
    md = (smoke_run / "results/table1.md").read_text()
    assert md.index("## Controls") < md.index("## Main table") < md.index("## Paired comparisons")
    header = (smoke_run / "results/comparisons.csv").read_text().splitlines()[0]
    assert header.startswith("kind,a,b,budget,metric,regime,n_seeds")  # one seed: no pair
    assert "Rule:" in (smoke_run / "results/claims.md").read_text()


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


def _dry_run_jobs(smoke_run, override: Path) -> dict[str, int]:
    """``rule -> number of jobs`` a dry run would rerun after ``override`` is merged over smoke."""
    proc = run_snakemake(smoke_run, "results/table1.csv", extra=("-n", "--quiet", "rules"),
                         configfiles=(REPO / "configs/smoke.yaml", override))
    assert proc.returncode == 0, proc.stderr[-2000:]
    jobs = {}
    for line in (proc.stdout + proc.stderr).splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] != "total":
            jobs[parts[0]] = int(parts[1])
    return jobs


def test_a_selection_change_reruns_the_plans(smoke_run, tmp_path):
    override = tmp_path / "defer.yaml"
    override.write_text("selection:\n  pivottrace:\n    defer_fraction: 0.2\n")
    jobs = _dry_run_jobs(smoke_run, override)
    assert jobs.get("select", 0) >= 2, jobs  # every pivottrace plan (0.5 and auto), at least
    assert "base_model" not in jobs and "score" not in jobs, jobs


def test_a_runtime_change_reruns_evaluation(smoke_run, tmp_path):
    override = tmp_path / "runtime.yaml"
    override.write_text("runtime:\n  device: cpu\n")  # smoke leaves runtime unset
    jobs = _dry_run_jobs(smoke_run, override)
    # trained models are evaluated by their train job; rule evaluate is the base model's
    assert jobs.get("evaluate", 0) == 1 and jobs.get("train", 0) >= 3, jobs


def test_an_eval_change_reruns_the_train_jobs_that_evaluate(smoke_run, tmp_path):
    override = tmp_path / "eval.yaml"
    override.write_text("eval:\n  max_new_tokens: 100\n")
    jobs = _dry_run_jobs(smoke_run, override)
    assert jobs.get("evaluate", 0) == 1 and jobs.get("train", 0) >= 3, jobs
    assert "base_model" not in jobs and "select" not in jobs, jobs


def test_every_file_a_rule_writes_is_declared(smoke_run):
    """No output of the DAG is untracked (e.g. the calibration figure's PDF and CSV)."""
    proc = run_snakemake(smoke_run, extra=("--list-untracked",))
    assert proc.returncode == 0, proc.stderr[-2000:]
    untracked = [ln.strip() for ln in (proc.stdout + proc.stderr).splitlines()
                 if ln.strip().startswith(("results/", "paper_figures/"))]
    assert untracked == []
    assert (smoke_run / "paper_figures/calibration.pdf").is_file()


@pytest.mark.parametrize("rule", ["record", "figures", "calibration", "claims", "base_report"])
def test_rule_shell_takes_paths_from_input_and_output(rule):
    text = (REPO / "Snakefile").read_text(encoding="utf-8")
    body = text.split(f"\nrule {rule}:\n", 1)[1].split("\nrule ", 1)[0]
    shell = body.split("shell:", 1)[1].split("\n\n", 1)[0]  # the shell block ends at a blank line
    assert "{PT}" in shell
    for literal in ("data/", "runs/", "paper_figures", "results/"):
        assert literal not in shell, (rule, literal)


def test_report_holds_table_calibration_alignment_and_figures(smoke_run, tmp_path):
    out = tmp_path / "report.html"
    proc = run_snakemake(smoke_run, extra=("--report", str(out)))
    assert proc.returncode == 0, proc.stderr[-2000:]
    html = out.read_text(encoding="utf-8", errors="replace")
    for name in ("table1.csv", "calibration.csv", "calibration.png", "pivot_alignment.csv",
                 "efficiency.png", "convergence.png", "triage_map.png", "trace_pivots.png",
                 "base_model.json", "pivot_tuning.csv", "controls.csv", "claims.csv",
                 "base_pass_rates.png"):
        assert name in html, name


def test_train_job_evaluates_like_the_evaluate_verb(smoke_run, tmp_path):
    """The train rule writes eval.json in its own process (one start instead of two): it must
    equal what `pivottrace evaluate` writes for the same saved model."""
    run = smoke_run / "runs/full/none/0"
    config = next((smoke_run / "runs/config").glob("*.yaml"))
    out = tmp_path / "eval.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pivottrace.cli", "--config", str(config), "evaluate",
         "--model", str(run / "model"), "--data", str(smoke_run / "data"), "--out", str(out)],
        cwd=smoke_run, capture_output=True, text=True, env={**os.environ, "PIVOTTRACE_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    from_train, alone = json.loads((run / "eval.json").read_text()), json.loads(out.read_text())
    assert from_train["accuracy"] == alone["accuracy"]
    for split in ("test", "test_hard"):
        assert from_train["splits"][split]["samples"] == alone["splits"][split]["samples"]
    assert not (smoke_run / "logs/runs/full/none/0/evaluate.log").exists()  # no second job


def test_calibration_carries_pivot_alignment(smoke_run):
    calib = {r["estimator"]: r for r in csv.DictReader(open(smoke_run / "results/calibration.csv"))}
    for col in ("reflection_precision", "reflection_recall", "reflection_precision_lift",
                "reflection_recall_lift", "first_error_precision_lift", "first_error_recall_lift"):
        assert calib["pivot_density"][col] != "", col
        assert calib["mean_token_entropy"][col] == "", col
