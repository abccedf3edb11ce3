"""Build the base reasoner (rule ``base_model``) and measure it (rule ``base_report``)."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from pathlib import Path

from pivottrace.io import atomic_dir, read_jsonl, write_json
from pivottrace.reasoner import build_model, build_tokenizer, n_parameters, sft
from pivottrace.runtime import autocast, resolve_device
from pivottrace.tasks import modchain as mc

log = logging.getLogger(__name__)


def link_base(src: Path, out_dir: Path) -> dict:
    """Use an existing local Hugging Face model directory as the base model (``model.path``).

    Files are hard-linked where the file system allows (no copy of multi-GB
    weights), else copied; the source is checked first (config, weights,
    tokenizer), so a missing or broken directory fails here, naming it.
    """
    import os
    import shutil

    from pivottrace.io import check_model_dir

    src = Path(src)
    check_model_dir(src)

    def link_or_copy(a, b):
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    with atomic_dir(out_dir) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True, copy_function=link_or_copy,
                        ignore=shutil.ignore_patterns(".git", ".cache"))
        summary = {"source": str(src.resolve()), "linked": True}
        write_json(tmp / "build.json", summary)
    log.info("base model: linked %s -> %s", src, out_dir)
    return summary


def build_base(cfg: dict, data_dir: Path, out_dir: Path) -> dict:
    """Tokenizer + from-scratch Llama + SFT on teacher traces, saved as an HF directory.

    With ``model.path`` set, that local model directory is used instead (:func:`link_base`).
    """
    if cfg["model"].get("path"):
        return link_base(Path(cfg["model"]["path"]), out_dir)
    t0 = time.perf_counter()
    task = cfg["task"]
    max_steps = max(s["max_steps"] for s in task["splits"].values())
    tokenizer = build_tokenizer(mc.vocabulary(task["modulus"], tuple(task["ops"]), max_steps))
    model = build_model(tokenizer, cfg["model"], seed=cfg["seed"]).to(resolve_device(cfg))
    records = read_jsonl(data_dir / "sft.jsonl", required={"prompt": str, "completion": str})
    log.info("base model: %d parameters, %d SFT traces", n_parameters(model), len(records))
    with autocast(cfg):
        summary = sft(model, tokenizer, records, cfg["sft"], seed=cfg["seed"])
    summary.update(n_parameters=n_parameters(model), n_sft_traces=len(records),
                   build_wall_s=time.perf_counter() - t0)
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / "build.json", summary)
    return summary


def base_report(cfg: dict, model_dir: Path, data_dir: Path, out_path: Path) -> dict:
    """Sampled (temperature 1) pool accuracy by difficulty, reflection rate, greedy accuracy.

    Reads pool gold answers through an analysis oracle (``uses_labels``): the
    report is a measurement of the testbed, never an input to selection.
    """
    from pivottrace.io import check_model_dir
    from pivottrace.oracle import AnnotationOracle
    from pivottrace.pool import load_pool
    from pivottrace.rollouts import generate
    from pivottrace.runtime import load_causal_lm
    from pivottrace.verifiers import get_verifier

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
        "build": read_json_safe(build),
        "targets": {"sampled_accuracy": [0.2, 0.7], "reflection_rate_min": 0.10,
                    "build_wall_s_max": 900},
        "examples": [{"prompt": item.prompt, "completion": outs[0], "gold": gold[item.id]}
                     for item, outs in list(zip(pool, sampled))[:3]],
    }
    write_json(out_path, report)
    log.info("base model: sampled acc %.3f, greedy acc %.3f, reflection rate %.3f",
             report["sampled_accuracy"], report["greedy_accuracy"], report["reflection_rate"])
    return report


def read_json_safe(path: Path) -> dict | None:
    from pivottrace.io import read_json

    return read_json(path) if path.exists() else None
