"""The testbed task: determinism, verifiability, teacher behaviour, disjoint splits."""

import random

import pytest

from pivottrace.core.config import load_config
from pivottrace.core.io import DataError, read_jsonl
from pivottrace.data.splits import check_disjoint
from pivottrace.testbed import modchain as mc
from pivottrace.testbed.data import make_modchain

OPS = ("+", "-", "*")


def _draw(seed, n=50):
    return mc.generate_split(random.Random(seed), n, 2, 6, 10, OPS, set())


def test_generation_is_deterministic():
    assert [p.prompt for p in _draw(3)] == [p.prompt for p in _draw(3)]
    assert [p.prompt for p in _draw(3)] != [p.prompt for p in _draw(4)]


@pytest.mark.parametrize("modulus", [7, 10, 13])
def test_every_gold_verifies_and_wrong_answers_do_not(modulus):
    for p in mc.generate_split(random.Random(0), 200, 1, 8, modulus, OPS, set()):
        trace = mc.solve_trace(p)
        assert mc.verify(trace, p.answer)
        for wrong in range(modulus):
            if str(wrong) != p.answer:
                assert not mc.verify(trace.rsplit("#", 1)[0] + f"# {wrong}", p.answer)


def test_gold_answer_matches_direct_evaluation():
    p = mc.Problem(3, (mc.Step("b", "a", "+", 4), mc.Step("c", "b", "*", 2)), 10, "4")
    assert p.prompt == "a = 3 , b = a + 4 , c = b * 2 , c ?"
    assert mc.solve_trace(p) == "b = 3 + 4 = 7 , c = 7 * 2 = 4 # 4"


def test_teacher_slips_on_hard_steps_and_reflects():
    rng = random.Random(0)
    noise = mc.TeacherNoise(p_slip_hard=1.0, p_slip_easy=0.0, p_reflect=1.0, p_recheck=0.0)
    p = mc.Problem(9, (mc.Step("b", "a", "+", 3),), 10, "2")
    assert mc.teacher_trace(p, rng, noise) == "b = 9 + 3 = 3 wait b = 9 + 3 = 2 # 2"
    noise = mc.TeacherNoise(p_slip_hard=1.0, p_slip_easy=0.0, p_reflect=0.0, p_recheck=0.0)
    wrong = mc.teacher_trace(p, rng, noise)
    assert not mc.verify(wrong, p.answer) and mc.count_reflections(wrong) == 0


def test_extract_answer_edge_cases():
    assert mc.extract_answer("# 3 # 4") == "4"
    assert mc.extract_answer("b = 1 # 4 </s> # 5") == "4"
    assert mc.extract_answer("") is None
    assert not mc.verify("no answer", "3")


@pytest.mark.parametrize("config", ["configs/smoke.yaml", "configs/modchain_v1.yaml"], ids=["v2", "v1"])
def test_make_data_splits_are_disjoint_and_pool_has_no_answers(tmp_path, config):
    cfg = load_config(config)
    for s in cfg["task"]["splits"].values():
        s["n"] = min(s["n"], 64)
    counts = make_modchain(cfg["task"], tmp_path)
    assert counts["pool"] == cfg["task"]["splits"]["pool"]["n"]
    pool = read_jsonl(tmp_path / "pool.jsonl", required={"id": str, "prompt": str, "difficulty": int},
                      forbidden=("answer",))
    gold = read_jsonl(tmp_path / "pool_gold.jsonl", required={"id": str, "answer": str})
    assert [r["id"] for r in pool] == [r["id"] for r in gold]
    check_disjoint(tmp_path / "pool.jsonl", *(tmp_path / f"{s}.jsonl" for s in ("dev", "test", "test_hard")))
    hard = read_jsonl(tmp_path / "test_hard.jsonl", required={"difficulty": int})
    if cfg["task"]["name"] == "modchain":  # v1: longer chains
        assert min(r["difficulty"] for r in hard) > max(r["difficulty"] for r in pool)
    else:  # v2: more hard steps at pool lengths
        from pivottrace.testbed.skills import hard_steps

        def n_hard(rows):
            return [hard_steps(mc.parse_prompt(r["prompt"], cfg["task"]["modulus"])) for r in rows]

        assert sum(n_hard(hard)) / len(hard) > sum(n_hard(pool)) / len(pool)
    first = (tmp_path / "pool.jsonl").read_bytes()
    make_modchain(cfg["task"], tmp_path / "again")
    assert (tmp_path / "again" / "pool.jsonl").read_bytes() == first


def test_overlap_between_splits_is_reported(tmp_path):
    cfg = load_config("configs/smoke.yaml")
    make_modchain(cfg["task"], tmp_path)
    pool_row = (tmp_path / "pool.jsonl").read_text().splitlines()[0]
    with open(tmp_path / "test.jsonl", "a") as fh:
        import json
        row = json.loads(pool_row) | {"id": "leak", "answer": "1"}
        fh.write(json.dumps(row) + "\n")
    with pytest.raises(DataError, match=r"test.jsonl: row \d+: field 'prompt' also in the pool"):
        check_disjoint(tmp_path / "pool.jsonl", tmp_path / "test.jsonl")
