"""The testbed's task data: disjoint modchain splits and noisy-teacher SFT traces."""

from __future__ import annotations

import random
from pathlib import Path

from pivottrace.core.io import write_jsonl
from pivottrace.testbed import modchain as mc

SPLIT_ORDER = ("test", "test_hard", "dev", "pool")
"""Evaluation splits are drawn first, so the pool can never contain them."""


def make_modchain(task: dict, out_dir: Path) -> dict[str, int]:
    """Generate disjoint splits and teacher traces; write the data files.

    Evaluation splits are drawn first so the pool can never contain them;
    SFT traces avoid every evaluation and pool prompt but may repeat among
    themselves. Returns the number of rows per file.
    """
    rng = random.Random(task["seed"])
    ops = tuple(task["ops"])
    taken: set[str] = set()
    problems = {}
    for name in SPLIT_ORDER:
        s = task["splits"][name]
        problems[name] = mc.generate_split(
            rng, s["n"], s["min_steps"], s["max_steps"], task["modulus"], ops, taken
        )
    s = task["splits"]["sft"]
    sft = mc.generate_split(rng, s["n"], s["min_steps"], s["max_steps"], task["modulus"], ops,
                            set(taken), unique=False)
    noise = mc.TeacherNoise(**task["teacher"])

    def rows(name):
        return [{"id": f"{name}-{i:05d}", "prompt": p.prompt, "answer": p.answer,
                 "difficulty": p.difficulty} for i, p in enumerate(problems[name])]

    out_dir = Path(out_dir)
    counts = {}
    pool = rows("pool")
    write_jsonl(out_dir / "pool_gold.jsonl", [{"id": r["id"], "answer": r["answer"]} for r in pool])
    write_jsonl(out_dir / "pool.jsonl", [{k: r[k] for k in ("id", "prompt", "difficulty")} for r in pool])
    counts["pool"] = len(pool)
    for name in ("dev", "test", "test_hard"):
        write_jsonl(out_dir / f"{name}.jsonl", rows(name))
        counts[name] = len(problems[name])
    write_jsonl(out_dir / "sft.jsonl", [
        {"id": f"sft-{i:06d}", "prompt": p.prompt, "completion": mc.teacher_trace(p, rng, noise),
         "answer": p.answer, "difficulty": p.difficulty} for i, p in enumerate(sft)])
    counts["sft"] = len(sft)
    return counts
