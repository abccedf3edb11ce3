"""The run grid: headline + extra grids, config variants (ablations as config)."""

import pytest

from pivottrace.core.config import load_config
from pivottrace.data.pool import PoolItem, UnlabeledPool
from pivottrace.method.selection import resolve_method
from pivottrace.workflow import grid_runs, scores_input


def test_default_grid_covers_every_control_at_five_seeds():
    from analysis.controls import MIN_SEEDS, control_runs

    cfg = load_config()
    runs = grid_runs(cfg)
    assert runs[0] == ("base", "none", 0) and len(runs) == len(set(runs))
    for method, budget in control_runs() + [("pivottrace", "0.1"), ("pivottrace", "0.3")]:
        seeds = {s for m, b, s in runs if (m, b) == (method, budget)}
        assert len(seeds) >= MIN_SEEDS and seeds == {0, 1, 2, 3, 4}, (method, budget)
    for method, budget in [("entropy", "0.3"), ("pivottrace", "auto")]:
        assert {s for m, b, s in runs if (m, b) == (method, budget)} == {0, 1, 2}, method
    assert ("random", "auto", 0) not in runs  # auto only where supported


def test_variant_resolves_to_its_policy_with_params():
    cfg = load_config()
    assert resolve_method(cfg, "pivottrace_two_way") == (
        "pivottrace", {**cfg["selection"]["pivottrace"], "mode": "two_way"})
    assert resolve_method(cfg, "random_alt") == ("random", {"stream": 1})
    assert scores_input("pivottrace_two_way", cfg) == ["results/scores/pool_scores.csv"]
    assert scores_input("oracle_learnability", cfg) == ["results/scores/pool_oracle.csv"]
    with pytest.raises(ValueError, match="unknown method 'nope'.*variants"):
        resolve_method(cfg, "nope")


def test_unknown_method_in_an_extra_grid_is_named():
    cfg = load_config()
    cfg["experiment"]["extra"] = [{"name": "x", "methods": ["bogus"], "budgets": [0.3], "seeds": [0]}]
    with pytest.raises(ValueError, match=r"experiment \(x grid\).*bogus"):
        grid_runs(cfg)


def test_variant_plan_is_written_under_the_variant_name(tmp_path):
    import pandas as pd

    from pivottrace.data.pool import load_plan
    from pivottrace.method.selection import select_and_write

    items = [PoolItem(f"p{i}", "q", 1) for i in range(20)]
    pool_path = tmp_path / "pool.jsonl"
    pool_path.write_text("".join(f'{{"id": "{it.id}", "prompt": "q", "difficulty": 1}}\n' for it in items))
    scores = tmp_path / "s.csv"
    pd.DataFrame({"id": [it.id for it in items], "pivot_density": [i / 20 for i in range(20)]}).to_csv(scores, index=False)
    cfg = load_config()
    plan = select_and_write(cfg, "pivottrace_two_way", 0.3, 0, pool_path, scores, tmp_path / "plan.json")
    assert plan.method == "pivottrace_two_way" and plan.counts()["self"] == 0
    assert load_plan(tmp_path / "plan.json", UnlabeledPool(tuple(items))).method == "pivottrace_two_way"


def test_every_rule_that_runs_a_command_has_a_log_and_a_benchmark():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "Snakefile").read_text(encoding="utf-8")
    blocks = re.split(r"^rule ", text, flags=re.M)[1:]
    rules = {b.split(":", 1)[0]: b for b in blocks}
    assert len(rules) >= 13
    for name, body in rules.items():
        if "shell:" in body:
            assert "log:" in body and "benchmark:" in body, name
