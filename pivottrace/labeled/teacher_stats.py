"""READS LABELS (it draws the problems, so it knows their answers). The teacher's pool statistics.

Rule ``base_report`` measures the pool statistics of the *built* base model (K
samples per pool prompt; DESIGN.md section 4). Building a base model takes
minutes, so a testbed change is first tried on the teacher itself: this module
draws the pool exactly as ``make-data`` would for a config (same seed, same
splits drawn before it), samples K teacher traces per pool prompt and reports
the same statistics and checks (:func:`~pivottrace.labeled.base_report.summarize`,
:func:`~pivottrace.labeled.base_report.check_targets`), without a model and
without writing anything. No greedy accuracy: the teacher has no greedy decode.
A built base model follows the teacher closely but not exactly (default config:
never solved 0.195 simulated against 0.213 measured on the base model, confident
wrong majority 0.131 against 0.121), so a check passed here by a hair may fail on
the model::

    python -m pivottrace.labeled.teacher_stats [--config OVERLAY ...] [--k 16]

Only for the ``skillchain`` task (testbed v2).
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import tempfile
from pathlib import Path

GREEDY_KEYS = ("greedy_accuracy",)
"""Statistics of :func:`~pivottrace.labeled.base_report.summarize` the teacher cannot have."""


def teacher_pool_stats(task: dict, k: int = 16, seed: int = 0) -> dict:
    """The pool statistics of ``k`` teacher traces per pool prompt, with their ``checks``.

    Args:
        task: the ``task`` config section (``name: skillchain``).
        k: traces per prompt (``base_report.k`` is 16).
        seed: seeds the teacher's traces (the pool itself comes from ``task.seed``).

    Examples:
        >>> from pivottrace.core.config import load_config
        >>> task = load_config("configs/smoke.yaml")["task"]
        >>> r = teacher_pool_stats(task, k=4)
        >>> 0 <= r["never_solved"] <= 1 and set(r["checks"]) >= {"never_solved", "always_solved"}
        True
    """
    from pivottrace.core.io import read_jsonl
    from pivottrace.data.pool import load_pool
    from pivottrace.data.verifiers import get_verifier
    from pivottrace.labeled.base_report import check_targets, per_prompt_table, summarize
    from pivottrace.method.estimators import lexical_counter
    from pivottrace.testbed import modchain as mc
    from pivottrace.testbed import skills
    from pivottrace.testbed.data import make_modchain

    if task.get("name") != "skillchain":
        raise ValueError(f"task.name is {task.get('name')!r}; the teacher statistics need "
                         "'skillchain' (testbed v2)")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    t = copy.deepcopy(task)
    t["splits"]["sft"] = {**t["splits"]["sft"], "n": 1}  # drawn after the pool: same pool
    with tempfile.TemporaryDirectory() as d:
        make_modchain(t, Path(d))
        pool = load_pool(Path(d) / "pool.jsonl")
        gold = {r["id"]: r["answer"] for r in read_jsonl(Path(d) / "pool_gold.jsonl")}
    teacher = skills.SkillTeacher.from_config(task["teacher"])
    rng = random.Random(seed)
    sampled = [[skills.teacher_trace_v2(mc.parse_prompt(item.prompt, task["modulus"]), rng, teacher)
                for _ in range(k)] for item in pool]
    df = per_prompt_table(task, pool, gold, sampled, [""] * len(sampled),
                          get_verifier(task["verifier"]), lexical_counter(task["name"]))
    stats = summarize(df)
    for g in (stats, *stats["per_family"].values(), *stats["per_difficulty"].values()):
        for key in GREEDY_KEYS:
            g.pop(key, None)
    return {"source": "teacher", "n_prompts": len(pool), "k": k, **stats,
            "checks": check_targets(stats)}


def main(argv: list[str] | None = None) -> None:
    from pivottrace.core.config import load_config

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", nargs="+", default=[],
                    help="overlays merged over configs/default.yaml, in order (as Snakemake's "
                         "--configfile); none: the default config")
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    r = teacher_pool_stats(load_config(*a.config)["task"], k=a.k, seed=a.seed)
    print(json.dumps({key: r[key] for key in ("never_solved", "always_solved", "majority_wrong_confident",
                                              "reflection_rate", "sampled_accuracy", "checks")},
                     indent=1))
    for fam, g in r["per_family"].items():
        print(f"{fam:6s} prompts {g['n_prompts']:4d}  sampled {g['sampled_accuracy']:.3f}  never "
              f"{g['never_solved']:.3f}  always {g['always_solved']:.3f}  confident wrong majority "
              f"{g['majority_wrong_confident']:.3f}")


if __name__ == "__main__":
    main()
