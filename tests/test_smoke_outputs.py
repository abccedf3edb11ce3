"""What the smoke DAG adds beyond the table: dev tuning, figures, pseudo-label accuracy."""

import csv
import json

import pandas as pd

from analysis.table import COLUMNS


def test_pivot_choice_comes_from_the_dev_sweep(smoke_run):
    sweep = pd.read_csv(smoke_run / "results/pivot_tuning.csv")
    choice = json.loads((smoke_run / "results/pivot_choice.json").read_text())
    assert len(sweep) == choice["n_combinations"] == 3 * 3 * 2 * 1  # smoke grid
    assert choice["split"].endswith("dev.jsonl")
    assert {"score", "layers", "tau", "window"} <= set(choice)


def test_every_figure_is_drawn_with_its_data(smoke_run):
    for name in ("efficiency", "convergence", "triage_map", "trace_pivots", "calibration"):
        for ext in ("png", "pdf", "csv"):
            assert (smoke_run / "paper_figures" / f"{name}.{ext}").stat().st_size > 0, (name, ext)
    conv = pd.read_csv(smoke_run / "paper_figures/convergence.csv")
    assert set(conv["step"]) == {0, 2, 4}
    tri = pd.read_csv(smoke_run / "paper_figures/triage_map.csv")
    assert set(tri["route"]) <= {"self", "annotate", "defer"} and len(tri) == 24


def _first_step_at(curve, target):
    return next((step for step, acc in sorted(curve) if acc >= target - 1e-9), None)


def test_table_convergence_columns_recomputed_from_the_records(smoke_run):
    """steps_to_target / steps_to_95 of every row, recomputed here from the run records."""
    with open(smoke_run / "results/table1.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == COLUMNS
    full_curve = json.loads((smoke_run / "runs/full/none/0/record.json").read_text())["dev_curve"]
    target = max(full_curve)[1]  # final dev accuracy of full supervision, seed 0
    for r in rows:
        if r["method"] == "base":
            continue
        budget = r["budget"]
        curve = json.loads((smoke_run / f"runs/{r['method']}/{budget}/0/record.json").read_text())["dev_curve"]
        for col, count, frac in (("steps_to_target", "n_reached", 1.0), ("steps_to_95", "n_reached_95", 0.95)):
            step = _first_step_at(curve, frac * target)
            if step is None:
                assert r[count] == "0" and r[col] in ("", "nan"), (r["method"], budget, col, r[col])
            else:
                assert r[count] == "1" and float(r[col]) == step, (r["method"], budget, col, r[col])


def test_pseudo_label_accuracy_recomputed_from_gold(smoke_run):
    """The record's pseudo-label accuracy, recomputed from the training log and the gold file."""
    run = smoke_run / "runs/pivottrace/0.5/0"
    plan = json.loads((run / "plan.json").read_text())
    self_ids = {i for i, r in plan["routes"].items() if r == "self"}
    assert self_ids  # budget 0.5 and defer 0.1 leave 40% of the pool on the self route
    gold = {}
    for line in (smoke_run / "data/pool_gold.jsonl").read_text().splitlines():
        row = json.loads(line)
        gold[row["id"]] = row["answer"]
    logged = json.loads((run / "train.json").read_text())["pseudo_labels"]
    groups = [(pid, v[0]) for _, entry in logged for pid, v in entry.items()]
    assert groups and {pid for pid, _ in groups} <= self_ids
    record = json.loads((run / "record.json").read_text())
    assert record["n_pseudo_groups"] == len(groups)
    expected = sum(ans is not None and ans == gold[pid] for pid, ans in groups) / len(groups)
    assert record["pseudo_label_accuracy"] == expected
    no_self = json.loads((smoke_run / "runs/random/0.5/0/record.json").read_text())
    assert no_self["pseudo_label_accuracy"] is None and no_self["n_pseudo_groups"] == 0


def test_records_carry_dev_auc_route_mix_and_zero_variance_share(smoke_run):
    for run in ("full/none/0", "random/0.5/0", "pivottrace/0.5/0", "pivottrace/auto/0"):
        rec = json.loads((smoke_run / f"runs/{run}/record.json").read_text())
        plan = json.loads((smoke_run / f"runs/{run}/plan.json").read_text())
        train = json.loads((smoke_run / f"runs/{run}/train.json").read_text())
        accs = [a for _, a in rec["dev_curve"]]
        assert rec["dev_auc"] == sum(accs) / len(accs)
        routes = list(plan["routes"].values())
        assert rec["route_fractions"] == {r: routes.count(r) / len(routes)
                                          for r in ("annotate", "self", "defer")}
        assert rec["frac_reward_zero_std"] == train["frac_reward_zero_std"]
        assert 0.0 <= rec["frac_reward_zero_std"] <= 1.0
    base = json.loads((smoke_run / "runs/base/none/0/record.json").read_text())
    assert base["route_fractions"] is None and base["dev_auc"] is None
