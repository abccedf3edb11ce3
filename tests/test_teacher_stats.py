"""pivottrace.labeled.teacher_stats: the teacher's pool statistics on the pool make-data draws."""

import copy

import pytest

from pivottrace.core.config import load_config
from pivottrace.core.io import read_jsonl
from pivottrace.labeled.teacher_stats import main, teacher_pool_stats
from pivottrace.testbed.data import make_modchain


@pytest.fixture(scope="module")
def task():
    return load_config("configs/smoke.yaml")["task"]


def test_the_pool_is_the_one_make_data_draws(task, tmp_path):
    make_modchain(task, tmp_path)
    r = teacher_pool_stats(task, k=2)
    assert r["n_prompts"] == len(read_jsonl(tmp_path / "pool.jsonl"))
    assert r["source"] == "teacher" and "greedy_accuracy" not in r
    assert all("greedy_accuracy" not in g for g in r["per_family"].values())
    assert r == teacher_pool_stats(task, k=2)  # seeded


def test_a_teacher_that_never_slips_always_solves(task):
    t = copy.deepcopy(task)
    t["teacher"] = {"p_slip_easy": 0.0, "p_recheck": 0.0,
                    "skills": {op: {"error": "none"} for op in t["ops"]}}
    r = teacher_pool_stats(t, k=3)
    assert r["always_solved"] == 1.0 and r["never_solved"] == 0.0
    assert r["majority_wrong_confident"] == 0.0 and r["reflection_rate"] == 0.0
    assert r["checks"]["never_solved"]["pass"] is False


def test_bad_arguments_and_the_cli(task, capsys):
    with pytest.raises(ValueError, match="skillchain"):
        teacher_pool_stats({**task, "name": "modchain"})
    with pytest.raises(ValueError, match="k must be"):
        teacher_pool_stats(task, k=0)
    main(["--config", "configs/smoke.yaml", "--k", "2"])
    assert '"never_solved"' in capsys.readouterr().out
