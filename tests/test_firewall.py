"""The label firewall: selection never reaches gold answers (DESIGN.md section 3).

Every label-free policy writes a byte-identical plan.json when every gold answer
is replaced or the gold file is gone, and no selection code opens the gold file
(checked at run time here; the import rule is ``tests/test_import_rules.py``).
"""

import dataclasses
import inspect
import json
import random
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pivottrace.core.io import DataError
from pivottrace.data.pool import PoolItem, UnlabeledPool, load_plan, load_pool, write_plan
from pivottrace.method.selection import POLICIES, select

N = 30
_WATCH = {"on": False, "opened": []}


def _audit(event, args):
    if _WATCH["on"] and event == "open" and args and isinstance(args[0], (str, bytes, Path)):
        _WATCH["opened"].append(str(args[0]))


sys.addaudithook(_audit)  # cannot be removed; inert unless _WATCH["on"]


def _write_data(root: Path) -> None:
    rng = random.Random(0)
    root.mkdir(parents=True, exist_ok=True)
    pool, gold = [], []
    for i in range(N):
        pid = f"q{i:03d}"
        pool.append({"id": pid, "prompt": f"a = {i} , b = a + 3 , b ?", "difficulty": i % 4})
        gold.append({"id": pid, "answer": str(rng.randrange(10))})
    (root / "pool.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pool))
    (root / "pool_gold.jsonl").write_text("".join(json.dumps(r) + "\n" for r in gold))
    rs = np.random.default_rng(1)
    trimodal = np.concatenate([rs.normal(0.02, 0.003, 15), rs.normal(0.1, 0.01, 10),
                               rs.normal(0.3, 0.02, 5)])
    pd.DataFrame({
        "id": [r["id"] for r in pool],
        "pivot_density": trimodal,
        "mean_token_entropy": rs.uniform(0, 2, N),
        "lexical_reflections": rs.integers(0, 4, N).astype(float),
        "oracle_learnability": rs.uniform(0, 0.25, N),
    }).to_csv(root / "scores.csv", index=False)


def _label_free_runs():
    for name, spec in POLICIES.items():
        if spec.uses_labels:
            continue
        budgets = [0.3] if spec.accepts_budget else [None]
        if spec.supports_auto:
            budgets.append("auto")
        for budget in budgets:
            yield name, budget


def _select_all(root: Path) -> dict:
    """Run every label-free policy as ``pivottrace select`` would; plan.json bytes per run."""
    out = {}
    _WATCH.update(on=True, opened=[])
    try:
        pool = load_pool(root / "pool.jsonl")
        scores = pd.read_csv(root / "scores.csv", dtype={"id": str})
        for name, budget in _label_free_runs():
            for seed in (0, 1):
                plan = select(name, pool, budget=budget, seed=seed, scores=scores)
                path = root / "runs" / name / str(budget) / str(seed) / "plan.json"
                write_plan(plan, path)
                out[name, budget, seed] = path.read_bytes()
    finally:
        _WATCH["on"] = False
    assert any(p.endswith("pool.jsonl") for p in _WATCH["opened"])  # the hook does see opens
    leaked = [p for p in _WATCH["opened"] if "pool_gold" in p]
    assert not leaked, f"selection opened the gold file: {leaked}"
    return out


def _rewrite_gold(root: Path, new_answer) -> None:
    path = root / "pool_gold.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps({"id": r["id"], "answer": new_answer(r["answer"])}) + "\n"
                            for r in rows))


def test_plans_are_byte_identical_when_gold_changes(tmp_path):
    _write_data(tmp_path)
    reference = _select_all(tmp_path)
    assert len(reference) >= 2 * 8
    rng = random.Random(123)
    variants = [lambda a: "WRONG-" + a,
                lambda a: "".join(rng.choice("xyz0123") for _ in range(rng.randrange(1, 9)))]
    for new_answer in variants:
        _rewrite_gold(tmp_path, new_answer)
        assert _select_all(tmp_path) == reference
    (tmp_path / "pool_gold.jsonl").unlink()
    assert _select_all(tmp_path) == reference
    for (name, _budget, _seed), raw in reference.items():
        assert json.loads(raw)["uses_labels"] is False, name


def test_oracle_learnability_is_flagged_uses_labels(tmp_path):
    assert {n for n, s in POLICIES.items() if s.uses_labels} == {"oracle_learnability"}
    _write_data(tmp_path)
    pool = load_pool(tmp_path / "pool.jsonl")
    scores = pd.read_csv(tmp_path / "scores.csv", dtype={"id": str})
    plan = select("oracle_learnability", pool, budget=0.2, seed=0, scores=scores)
    write_plan(plan, tmp_path / "plan.json")
    assert json.loads((tmp_path / "plan.json").read_text())["uses_labels"] is True
    assert load_plan(tmp_path / "plan.json", pool).uses_labels is True


def test_policies_receive_only_the_unlabeled_pool_and_scores():
    assert [f.name for f in dataclasses.fields(PoolItem)] == ["id", "prompt", "difficulty"]
    item = PoolItem("a", "p", 1)
    with pytest.raises((AttributeError, TypeError)):
        item.answer = "7"  # frozen and slotted: no field can be added
    for name, spec in POLICIES.items():
        params = list(inspect.signature(spec.fn).parameters.values())
        assert [p.name for p in params[:4]] == ["pool", "budget", "seed", "scores"], name
        extra = {p.name for p in params[4:]}
        assert extra == set(spec.params), name
        assert not any(w in p for p in extra for w in ("gold", "answer", "oracle", "path")), name
    with pytest.raises(TypeError, match="UnlabeledPool"):
        select("random", [{"id": "a", "prompt": "p", "answer": "1"}], budget=0.5)


def test_pool_file_with_answers_is_rejected(tmp_path):
    path = tmp_path / "pool.jsonl"
    path.write_text('{"id": "a", "prompt": "p", "difficulty": 1}\n'
                    '{"id": "b", "prompt": "p", "difficulty": 2, "answer": "7"}\n')
    with pytest.raises(DataError, match=r"pool.jsonl: row 2: field 'answer' is not allowed"):
        load_pool(path)
    path.write_text('{"id": "a", "prompt": "p", "difficulty": 1, "source": "x"}\n')
    pool = load_pool(path)
    assert isinstance(pool, UnlabeledPool) and pool.items == (PoolItem("a", "p", 1),)
