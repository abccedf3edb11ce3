"""Testbed v2 (skillchain): stratified splits, per-skill teacher habits, prompt parsing."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from pivottrace.testbed import modchain as mc
from pivottrace.testbed import skills

OPS = ("+", "-", "*")
M = 13


def _teacher(**over):
    cfg = {"p_slip_easy": 0.0, "p_recheck": 0.0, "skills": {
        "+": {"error": "none"},
        "-": {"error": "scattered", "p_slip": 0.5, "p_fix": 0.0, "p_stuck": 0.0},
        "*": {"error": "quotient", "p_slip": 0.5, "p_fix": 0.0, "p_stuck": 0.0}}}
    cfg["skills"].update(over)
    return skills.SkillTeacher.from_config(cfg)


def test_stratified_counts_are_exact_and_disjoint():
    rng, taken = random.Random(0), set()
    w = [0.25, 0.15, 0.1, 0.1, 0.1, 0.15, 0.15]
    probs = skills.generate_stratified(rng, 200, 2, 6, M, OPS, ("-", "*"), w, taken)
    counts = Counter(skills.hard_steps(p) for p in probs)
    assert counts == {0: 50, 1: 30, 2: 20, 3: 20, 4: 20, 5: 30, 6: 30}
    assert len({p.prompt for p in probs}) == 200 and taken == {p.prompt for p in probs}
    again = skills.generate_stratified(random.Random(1), 50, 2, 6, M, OPS, ("-", "*"), w, taken)
    assert not {p.prompt for p in again} & {p.prompt for p in probs}
    for p in probs:  # hard steps are exactly the wrap-arounds of the tricky operators
        assert skills.hard_steps(p) == sum(
            skills.is_hard(p, i) and s.op in "-*" for i, s in enumerate(p.steps))


def test_stratified_rejects_impossible_strata():
    with pytest.raises(ValueError, match="asks for 4 hard steps in chains of at most 3"):
        skills.generate_stratified(random.Random(0), 5, 1, 3, M, OPS, ("-", "*"),
                                   [0, 0, 0, 0, 1], set())


def test_mastered_skill_never_errs_and_error_free_teacher_solves():
    t = _teacher(**{"-": {"error": "none"}, "*": {"error": "none"}})
    rng = random.Random(0)
    for _ in range(200):
        p = mc.make_problem(rng, rng.randint(1, 6), M, OPS)
        assert mc.verify(skills.teacher_trace_v2(p, rng, t), p.answer)


def test_quotient_habit_is_concentrated_and_scattered_is_not():
    rng = random.Random(0)
    t = _teacher()
    mul = mc.Problem(7, (mc.Step("b", "a", "*", 9),), M, str(63 % M))
    sub = mc.Problem(2, (mc.Step("b", "a", "-", 9),), M, str((2 - 9) % M))
    mul_wrong = Counter(a for a in (mc.extract_answer(skills.teacher_trace_v2(mul, rng, t))
                                    for _ in range(400)) if a != mul.answer)
    sub_wrong = Counter(a for a in (mc.extract_answer(skills.teacher_trace_v2(sub, rng, t))
                                    for _ in range(400)) if a != sub.answer)
    assert set(mul_wrong) == {str(63 // M)}  # one wrong answer: the quotient
    assert len(sub_wrong) >= 8  # wrong answers spread over the other values
    assert 150 < sum(mul_wrong.values()) < 250 and 150 < sum(sub_wrong.values()) < 250


def test_reflection_fix_and_stuck():
    rng = random.Random(0)
    fix = _teacher(**{"*": {"error": "quotient", "p_slip": 1.0, "p_fix": 1.0}})
    stuck = _teacher(**{"*": {"error": "quotient", "p_slip": 1.0, "p_stuck": 1.0}})
    p = mc.Problem(7, (mc.Step("b", "a", "*", 9),), M, str(63 % M))
    tf = skills.teacher_trace_v2(p, rng, fix)
    ts = skills.teacher_trace_v2(p, rng, stuck)
    assert tf == f"b = 7 * 9 = {63 // M} {mc.REFLECT} b = 7 * 9 = {63 % M} # {63 % M}"
    assert mc.count_reflections(tf) == 1 and mc.verify(tf, p.answer)
    assert mc.count_reflections(ts) == 1 and not mc.verify(ts, p.answer)
    assert ts.endswith(f"# {63 // M}")


def test_every_step_is_a_bijection_modulo_a_prime():
    """Modulo 13 no later step maps a wrong value onto the right one (modulo 10, * 2 would)."""
    for op in OPS:
        for k in range(2 if op == "*" else 1, M):
            assert len({mc.OPS[op](x, k) % M for x in range(M)}) == M
    assert len({(x * 2) % 10 for x in range(10)}) == 5


def test_stratified_data_files(tmp_path):
    from pivottrace.core.config import load_config
    from pivottrace.core.io import read_jsonl
    from pivottrace.testbed.data import make_modchain

    task = load_config()["task"]
    task["splits"] = {name: {**s, "n": 40} for name, s in task["splits"].items()}
    make_modchain(task, tmp_path)
    pool = read_jsonl(tmp_path / "pool.jsonl")
    hard = read_jsonl(tmp_path / "test_hard.jsonl")
    assert set(pool[0]) == {"id", "prompt", "difficulty"}  # no answer, no hard-step count
    n_hard = [skills.hard_steps(mc.parse_prompt(r["prompt"], task["modulus"])) for r in hard]
    assert min(n_hard) >= 4
    sft = read_jsonl(tmp_path / "sft.jsonl")
    assert any(mc.REFLECT in r["completion"] for r in sft)


def test_parse_prompt_round_trip_and_errors():
    rng = random.Random(2)
    for _ in range(50):
        p = mc.make_problem(rng, rng.randint(1, 6), M, OPS)
        assert mc.parse_prompt(p.prompt, M) == p
        assert mc.parse_prompt(p.prompt, M).answer == p.answer
    with pytest.raises(ValueError, match="not a modchain prompt"):
        mc.parse_prompt("what is 2 + 2 ?", M)


def test_skill_family():
    p = mc.Problem(7, (mc.Step("b", "a", "*", 8), mc.Step("c", "b", "+", 1)), M, "5")
    assert skills.skill_family(p) == "*"
    assert skills.skill_family(mc.Problem(1, (mc.Step("b", "a", "+", 2),), M, "3")) == "easy"
    q = mc.Problem(2, (mc.Step("b", "a", "-", 9), mc.Step("c", "b", "*", 5)), M, "0")
    assert skills.skill_family(q) == "*-"
