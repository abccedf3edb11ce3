"""Selection policies: the registry, the one argument check, plans and their files."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from pivottrace.core.io import DataError
from pivottrace.data.pool import (
    PoolItem,
    UnlabeledPool,
    load_plan,
    load_pool,
    score_vector,
    write_plan,
)
from pivottrace.method.selection import POLICIES, check_args, parse_budget, select

N = 20


@pytest.fixture
def pool():
    return UnlabeledPool(tuple(PoolItem(f"q{i:02d}", f"prompt {i}", i % 3) for i in range(N)))


@pytest.fixture
def scores(pool):
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "id": list(pool.ids),
        "pivot_density": rng.random(N),
        "mean_token_entropy": np.arange(N, dtype=float),
        "lexical_reflections": rng.integers(0, 5, N).astype(float),
        "oracle_learnability": rng.random(N) / 4,
    })


def _budget_for(spec):
    return 0.25 if spec.accepts_budget else None


def test_every_registered_name_resolves_and_round_trips(pool, scores, tmp_path):
    assert {"random", "entropy", "full", "unsupervised", "self_certainty",
            "oracle_learnability", "pivottrace"} <= set(POLICIES)
    for name, spec in POLICIES.items():
        assert callable(spec.fn) and spec.help, name
        plan = select(name, pool, budget=_budget_for(spec), seed=0, scores=scores)
        assert plan.method == name and list(plan.routes) == list(pool.ids)
        assert plan.uses_labels == spec.uses_labels
        path = tmp_path / name / "plan.json"
        write_plan(plan, path)
        obj = json.loads(path.read_text())
        assert set(obj) == {"method", "budget", "seed", "uses_labels", "self_reward", "routes",
                            "meta"}
        assert load_plan(path, pool) == plan


def test_baseline_routes(pool, scores):
    counts = {name: select(name, pool, budget=_budget_for(s), seed=0, scores=scores).counts()
              for name, s in POLICIES.items()}
    for name in ("random", "entropy", "oracle_learnability"):
        assert counts[name] == {"annotate": 5, "self": 0, "defer": 15}, name
    assert counts["full"] == {"annotate": N, "self": 0, "defer": 0}
    for name in ("unsupervised", "self_certainty"):
        assert counts[name] == {"annotate": 0, "self": N, "defer": 0}, name
    assert select("full", pool, budget=1.0).budget == select("full", pool).budget == 1.0
    assert select("unsupervised", pool).self_reward == "majority"
    assert select("self_certainty", pool).self_reward == "self_certainty"
    assert select("unsupervised", pool).budget is None
    entropy = select("entropy", pool, budget=0.25, seed=0, scores=scores)
    assert entropy.ids("annotate") == ["q15", "q16", "q17", "q18", "q19"]


def test_entropy_ties_broken_by_id(pool):
    flat = pd.DataFrame({"id": list(pool.ids), "mean_token_entropy": np.ones(N)})
    assert select("entropy", pool, budget=0.1, scores=flat).ids("annotate") == ["q00", "q01"]


def test_random_is_seed_deterministic(pool):
    a = select("random", pool, budget=0.3, seed=0)
    assert a == select("random", pool, budget=0.3, seed=0)
    others = [select("random", pool, budget=0.3, seed=s).ids("annotate") for s in (1, 2, 3)]
    assert all(o != a.ids("annotate") for o in others)
    assert all(len(o) == 6 for o in others)


def test_pivottrace_and_ablations_share_the_triage(pool, scores):
    plan = select("pivottrace", pool, budget=0.25, seed=0, scores=scores, defer_fraction=0.1)
    assert plan.counts() == {"annotate": 5, "self": 13, "defer": 2}
    assert plan.meta["score_column"] == "pivot_density"
    assert plan.meta["n_annotate"] == 5 and "annotate_from" in plan.meta
    by_entropy = select("pivottrace", pool, budget=0.25, seed=0, scores=scores,
                        score_column="mean_token_entropy")
    ablation = select("triage_entropy", pool, budget=0.25, seed=0, scores=scores)
    assert dict(ablation.routes) == dict(by_entropy.routes)
    assert ablation.method == "triage_entropy" and ablation.meta["score_column"] == "mean_token_entropy"
    auto = select("pivottrace", pool, budget="auto", seed=0, scores=scores)
    assert auto.budget == "auto" and 0 < auto.meta["fractions"]["annotate"] < 1
    two = select("pivottrace", pool, budget=0.25, scores=scores, mode="two_way")
    assert two.counts()["self"] == 0


@pytest.mark.parametrize("budget", [0, 0.0, 1.5, -0.1, "x", "", float("nan"), True, [0.2]])
def test_bad_budgets(budget):
    with pytest.raises(ValueError, match="budget"):
        check_args("random", budget, 0)


def test_argument_checks(pool, scores):
    with pytest.raises(ValueError, match=r"unknown method 'magic'; known: \[.*'random'"):
        check_args("magic", 0.2, 0)
    assert parse_budget("0.2") == 0.2 and parse_budget(1) == 1.0 and parse_budget(None) is None
    assert check_args("random", "0.5", 0)[1] == 0.5
    assert check_args("pivottrace", "auto", 0, scores)[1] == "auto"
    assert check_args("full", None, 0)[1] == 1.0
    with pytest.raises(ValueError, match="does not support budget 'auto'"):
        check_args("random", "auto", 0)
    with pytest.raises(ValueError, match="needs a budget"):
        check_args("random", None, 0)
    with pytest.raises(ValueError, match="takes no budget"):
        check_args("unsupervised", 0.2, 0)
    with pytest.raises(ValueError, match="takes no budget"):
        check_args("full", 0.5, 0)
    for seed in (-1, 1.5, "0", True):
        with pytest.raises(ValueError, match="seed"):
            check_args("random", 0.2, seed)
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['defer_fraction'\]"):
        check_args("random", 0.2, 0, params={"defer_fraction": 0.1})
    with pytest.raises(ValueError, match="defer_fraction"):
        check_args("pivottrace", 0.2, 0, scores, {"defer_fraction": 1.2})
    with pytest.raises(ValueError, match="mode"):
        check_args("pivottrace", 0.2, 0, scores, {"mode": "four_way"})
    with pytest.raises(ValueError, match="needs a scores table"):
        check_args("entropy", 0.2, 0)
    with pytest.raises(ValueError, match="score column 'nope'"):
        check_args("pivottrace", 0.2, 0, scores, {"score_column": "nope"})


def test_score_table_errors(pool, scores):
    assert score_vector(pool, scores.set_index("id"), "pivot_density").shape == (N,)
    shuffled = scores.sample(frac=1, random_state=0)
    assert np.array_equal(score_vector(pool, shuffled, "mean_token_entropy"), np.arange(N))
    scores.attrs["path"] = "runs/scores.csv"
    with pytest.raises(DataError, match=r"runs/scores.csv: pool id 'q19' has no score"):
        score_vector(pool, scores.iloc[:-1], "pivot_density")
    bad = scores.copy()
    bad.loc[3, "pivot_density"] = np.nan
    with pytest.raises(DataError, match="'q03' has non-finite"):
        select("pivottrace", pool, budget=0.2, scores=bad)
    with pytest.raises(DataError, match="duplicate id 'q00'"):
        score_vector(pool, pd.concat([scores, scores.iloc[:1]]), "pivot_density")
    with pytest.raises(DataError, match="ids must be strings"):
        score_vector(pool, scores.assign(id=range(N)), "pivot_density")


def test_load_plan_validates(pool, tmp_path):
    path = tmp_path / "plan.json"
    write_plan(select("random", pool, budget=0.2, seed=0), path)
    obj = json.loads(path.read_text())
    obj["routes"]["q04"] = "train"
    path.write_text(json.dumps(obj))
    with pytest.raises(DataError, match=r"plan.json: routes\['q04'\]: 'train' is not one of"):
        load_plan(path)
    obj["routes"]["q04"] = "defer"
    obj["routes"]["zz"] = "defer"
    path.write_text(json.dumps(obj))
    assert len(load_plan(path).routes) == N + 1  # no pool given: no id check
    with pytest.raises(DataError, match=r"plan.json: routes\['zz'\]: id not in pool"):
        load_plan(path, pool)
    del obj["routes"]["zz"], obj["routes"]["q07"]
    path.write_text(json.dumps(obj))
    with pytest.raises(DataError, match=r"plan.json: pool id 'q07' has no route"):
        load_plan(path, pool)
    del obj["self_reward"]
    path.write_text(json.dumps(obj))
    with pytest.raises(DataError, match="missing field 'self_reward'"):
        load_plan(path)


def test_plan_file_is_deterministic(pool, scores, tmp_path):
    for k in range(2):
        write_plan(select("pivottrace", pool, budget=0.3, seed=4, scores=scores),
                   tmp_path / f"{k}.json")
    assert (tmp_path / "0.json").read_bytes() == (tmp_path / "1.json").read_bytes()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_pool_loading_and_immutability(tmp_path):
    path = tmp_path / "pool.jsonl"
    path.write_text("")
    with pytest.raises(DataError, match="no rows"):
        load_pool(path)
    path.write_text('{"id": "a", "prompt": "p", "difficulty": 1}\n'
                    '{"id": "a", "prompt": "q", "difficulty": 1}\n')
    with pytest.raises(DataError, match="row 2: field 'id': duplicate id 'a'"):
        load_pool(path)
    path.write_text('{"id": "a", "prompt": "p", "difficulty": "1"}\n')
    with pytest.raises(DataError, match="row 1: field 'difficulty'"):
        load_pool(path)
    path.write_text('{"id": "b", "prompt": "p", "difficulty": 1}\n'
                    '{"id": "a", "prompt": "q", "difficulty": 2}\n')
    pool = load_pool(path)
    assert pool.ids == ("b", "a") and len(pool) == 2 and pool.source == str(path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        pool.items = ()
    with pytest.raises(DataError, match="empty pool"):
        UnlabeledPool(())


def test_semi_supervised_baselines_annotate_the_same_and_self_train_the_rest(pool, scores):
    """random_semi / entropy_semi: the same annotate set as random / entropy, every other prompt
    on the self route with the majority-vote reward (PivotTrace's regimes), nothing deferred."""
    for semi, base in (("random_semi", "random"), ("entropy_semi", "entropy")):
        for budget, seed in ((0.25, 0), (0.5, 3)):
            s = select(semi, pool, budget=budget, seed=seed, scores=scores)
            b = select(base, pool, budget=budget, seed=seed, scores=scores)
            assert s.method == semi and s.self_reward == "majority" and not s.uses_labels
            assert s.ids("annotate") == b.ids("annotate")
            assert s.ids("self") == b.ids("defer") and s.ids("defer") == []
    with pytest.raises(ValueError, match="needs a budget"):
        select("random_semi", pool, seed=0)
