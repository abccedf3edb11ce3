"""The testbed's task data: disjoint modchain/skillchain splits and noisy-teacher SFT traces."""

from __future__ import annotations

import random
from pathlib import Path

from pivottrace.data.splits import write_task_files
from pivottrace.testbed import modchain as mc
from pivottrace.testbed import skills

SPLIT_ORDER = ("test", "test_hard", "dev", "pool")
"""Evaluation splits are drawn first, so the pool can never contain them."""


def make_modchain(task: dict, out_dir: Path) -> dict[str, int]:
    """Generate disjoint splits and teacher traces; write the data files.

    Task ``modchain`` (v1) uses the single-slip teacher of :mod:`~pivottrace.testbed.modchain`;
    ``skillchain`` (v2) the per-skill teacher and stratified splits of
    :mod:`~pivottrace.testbed.skills`.

    Evaluation splits are drawn first so the pool can never contain them;
    SFT traces avoid every evaluation and pool prompt but may repeat among
    themselves. Returns the number of rows per file.
    """
    rng = random.Random(task["seed"])
    ops = tuple(task["ops"])
    v2 = task["name"] == "skillchain"
    if v2:
        teacher = skills.SkillTeacher.from_config(task["teacher"])
        hard_ops = tuple(task.get("hard_ops") or ("-", "*"))

        def trace(p):
            return skills.teacher_trace_v2(p, rng, teacher)
    else:
        noise = mc.TeacherNoise(**{k: task["teacher"][k] for k in
                                   ("p_slip_hard", "p_slip_easy", "p_reflect", "p_recheck")})

        def trace(p):
            return mc.teacher_trace(p, rng, noise)

    def draw(s, exclude, unique=True):
        if v2 and s.get("hard_weights"):
            return skills.generate_stratified(rng, s["n"], s["min_steps"], s["max_steps"],
                                              task["modulus"], ops, hard_ops, s["hard_weights"],
                                              exclude, unique=unique)
        return mc.generate_split(rng, s["n"], s["min_steps"], s["max_steps"], task["modulus"], ops,
                                 exclude, unique=unique)

    taken: set[str] = set()
    problems = {name: draw(task["splits"][name], taken) for name in SPLIT_ORDER}
    sft = draw(task["splits"]["sft"], set(taken), unique=False)

    def rows(name):
        return [{"id": f"{name}-{i:05d}", "prompt": p.prompt, "answer": p.answer,
                 "difficulty": p.difficulty} for i, p in enumerate(problems[name])]

    split_rows = {name: rows(name) for name in ("pool", "dev", "test", "test_hard")}
    write_task_files(out_dir, split_rows["pool"], split_rows, [
        {"id": f"sft-{i:06d}", "prompt": p.prompt, "completion": trace(p),
         "answer": p.answer, "difficulty": p.difficulty} for i, p in enumerate(sft)])
    return {name: len(r) for name, r in split_rows.items()} | {"sft": len(sft)}
