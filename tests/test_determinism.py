"""Determinism: the smoke DAG run twice from scratch gives the same results, timing aside.

The first run is the session's smoke run (``smoke_run`` in conftest.py, shared
with test_smoke_dag.py). The default tests add one minimal second run from
scratch in a fresh directory: the same config, one target,
``runs/full/none/0/record.json`` (data, base model warm start, selection, GRPO
sampling and training, lm-eval, record), build that run's table row with the
table code (full supervision is its own convergence reference, so its row
needs no other run), and compare it and the run's artifacts, down to weights
and every evaluation completion, with the first run's. The other rows,
scoring and the pivot triage (tune-pivots, score and more training and
evaluation: minutes more) are compared by the slow test, which reruns the
whole smoke DAG and compares the whole table.
"""

import csv
import hashlib
import json
from pathlib import Path

import pytest
from conftest import run_snakemake

import analysis.table

TIMING_COLUMNS = set(getattr(analysis.table, "TIMING_COLUMNS", ("train_wall_s",)))
TIMING_KEYS = {"train_wall_s", "build_wall_s"}
MINIMAL_RUN = "runs/full/none/0"


def table(workdir: Path, path: str = "results/table1.csv") -> dict[tuple[str, str], dict]:
    with open(workdir / path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {(r["method"], r["budget"]): {k: v for k, v in r.items() if k not in TIMING_COLUMNS}
            for r in rows}


def without_timing(obj):
    if isinstance(obj, dict):
        return {k: without_timing(v) for k, v in obj.items() if k not in TIMING_KEYS}
    if isinstance(obj, list):
        return [without_timing(v) for v in obj]
    return obj


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def second_run(tmp_path_factory, *targets: str) -> Path:
    workdir = tmp_path_factory.mktemp("smoke_again")
    proc = run_snakemake(workdir, *targets)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return workdir


@pytest.fixture(scope="module")
def minimal_rerun(tmp_path_factory):
    return second_run(tmp_path_factory, f"{MINIMAL_RUN}/record.json")


def test_minimal_rerun_gives_the_same_table_row(smoke_run, minimal_rerun):
    from analysis.table import write_table

    write_table([minimal_rerun / MINIMAL_RUN / "record.json"],
                minimal_rerun / "results" / "table1.csv", minimal_rerun / "results" / "table1.md")
    first, again = table(smoke_run), table(minimal_rerun)
    assert set(again) == {("full", "none")}
    assert again[("full", "none")] == first[("full", "none")]
    assert float(again[("full", "none")]["annotated_fraction"]) == 1.0


def test_minimal_rerun_gives_the_same_artifacts(smoke_run, minimal_rerun):
    """Byte-identical data, plans, ledgers and weights; identical completions and records."""
    for rel in ["data/pool.jsonl", "data/pool_gold.jsonl", "data/sft.jsonl", "data/test.jsonl",
                "data/test_hard.jsonl", "models/base/model.safetensors", f"{MINIMAL_RUN}/plan.json",
                f"{MINIMAL_RUN}/ledger.json", f"{MINIMAL_RUN}/model/model.safetensors"]:
        assert sha256(smoke_run / rel) == sha256(minimal_rerun / rel), rel
    for name in ("eval.json", "train.json", "record.json"):
        a = json.loads((smoke_run / MINIMAL_RUN / name).read_text())
        b = json.loads((minimal_rerun / MINIMAL_RUN / name).read_text())
        for rec in (a, b):  # a commit landing between the two runs is not a difference
            rec.get("manifest", {}).pop("git_commit", None)
        assert without_timing(a) == without_timing(b), name


@pytest.mark.slow
def test_whole_smoke_dag_twice_gives_the_same_table(smoke_run, tmp_path_factory):
    again = second_run(tmp_path_factory, "results/table1.csv", "results/base_model.json",
                       "results/calibration.csv")
    assert table(again) == table(smoke_run)
    for rel in ("results/scores/pool_scores.csv", "results/scores/pool_oracle.csv",
                "results/calibration.csv", "runs/pivottrace/auto/0/plan.json"):
        assert sha256(again / rel) == sha256(smoke_run / rel), rel
