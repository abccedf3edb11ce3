"""READS LABELS. Rule ``base_report``: the base model measured on the pool (a testbed fact).

Sampled (temperature 1) pool accuracy by difficulty, reflection rate and greedy
accuracy, scored against the pool's gold answers through an analysis
:class:`~pivottrace.labeled.oracle.AnnotationOracle`. The report describes the
testbed; it is never an input to selection.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

from pivottrace.core.io import read_json, write_json
from pivottrace.testbed import modchain as mc

log = logging.getLogger(__name__)


def base_report(cfg: dict, model_dir: Path, data_dir: Path, out_path: Path) -> dict:
    """Sampled (temperature 1) pool accuracy by difficulty, reflection rate, greedy accuracy.

    Reads pool gold answers through an analysis oracle (``uses_labels``): the
    report is a measurement of the testbed, never an input to selection.
    """
    from pivottrace.core.io import check_model_dir
    from pivottrace.core.runtime import load_causal_lm
    from pivottrace.data.pool import load_pool
    from pivottrace.data.verifiers import get_verifier
    from pivottrace.labeled.oracle import AnnotationOracle
    from pivottrace.sampling import generate

    verifier = get_verifier(cfg["task"]["verifier"])
    rc = cfg["base_report"]
    check_model_dir(model_dir)
    model, tokenizer = load_causal_lm(model_dir, cfg)
    pool = load_pool(data_dir / "pool.jsonl")
    oracle = AnnotationOracle(data_dir / "pool_gold.jsonl", max_queries=len(pool),
                              verifier=cfg["task"]["verifier"], modulus=cfg["task"].get("modulus"))
    gold = oracle.annotate(pool.ids)
    prompts = [item.prompt for item in pool]
    sampled = generate(model, tokenizer, prompts, k=rc["k"], do_sample=True,
                       max_new_tokens=rc["max_new_tokens"], batch_size=rc["batch_size"],
                       seed=cfg["seed"], desc="base-report sample")
    greedy = generate(model, tokenizer, prompts, k=1, do_sample=False,
                      max_new_tokens=rc["max_new_tokens"], batch_size=rc["batch_size"],
                      desc="base-report greedy")
    by_diff = defaultdict(lambda: {"n": 0, "correct": 0, "greedy_correct": 0, "reflect": 0})
    n_traces = n_correct = n_reflect = n_greedy = 0
    for row, outs, g in zip(pool, sampled, greedy):
        d = by_diff[row.difficulty]
        for text in outs:
            ok = verifier.verify(text, gold[row.id])
            refl = mc.count_reflections(text) > 0
            d["n"] += 1
            d["correct"] += ok
            d["reflect"] += refl
            n_traces += 1
            n_correct += ok
            n_reflect += refl
        gok = verifier.verify(g[0], gold[row.id])
        d["greedy_correct"] += gok
        n_greedy += gok
    per_difficulty = {
        str(k): {"sampled_accuracy": v["correct"] / v["n"], "reflection_rate": v["reflect"] / v["n"],
                 "greedy_accuracy": v["greedy_correct"] * rc["k"] / v["n"], "n_prompts": v["n"] // rc["k"]}
        for k, v in sorted(by_diff.items())
    }
    build = (model_dir / "build.json")
    report = {
        "uses_labels": True,
        "n_prompts": len(pool),
        "k": rc["k"],
        "sampled_accuracy": n_correct / n_traces,
        "greedy_accuracy": n_greedy / len(pool),
        "reflection_rate": n_reflect / n_traces,
        "per_difficulty": per_difficulty,
        "build": read_json(build) if build.exists() else None,
        "targets": {"sampled_accuracy": [0.2, 0.7], "reflection_rate_min": 0.10,
                    "build_wall_s_max": 900},
        "examples": [{"prompt": item.prompt, "completion": outs[0], "gold": gold[item.id]}
                     for item, outs in list(zip(pool, sampled))[:3]],
    }
    write_json(out_path, report)
    log.info("base model: sampled acc %.3f, greedy acc %.3f, reflection rate %.3f",
             report["sampled_accuracy"], report["greedy_accuracy"], report["reflection_rate"])
    return report
