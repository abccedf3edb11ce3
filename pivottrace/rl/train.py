"""Rule ``train``: plan -> annotation oracle -> training rows -> GRPO -> model, summary, ledger.

The pipeline verb around :func:`pivottrace.rl.grpo.train_grpo`: it checks every
input, asks the oracle for the gold answers of the annotate route (the only
gold this run sees), and writes the run's annotation ledger.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pivottrace.core.io import check_model_dir, read_json, write_json
from pivottrace.core.runtime import resolve_device
from pivottrace.data.pool import load_plan, load_pool
from pivottrace.data.splits import load_labeled, validate_data_dir
from pivottrace.data.verifiers import get_verifier
from pivottrace.labeled.oracle import AnnotationOracle
from pivottrace.rl.checkpoints import checkpoint_dir
from pivottrace.rl.dev_start import read_dev_start, start_key
from pivottrace.rl.grpo import train_grpo
from pivottrace.rl.rewards import training_rows

log = logging.getLogger(__name__)


def run_training(cfg: dict, plan_path: Path, data_dir: Path, model_dir: Path, seed: int,
                 work_dir: Path, out_model: Path, summary_path: Path, ledger_path: Path,
                 dev_start: Path | None = None) -> dict:
    """Fetch gold for the annotate route through the oracle, then train with GRPO.

    The oracle's budget is the number of prompts the plan routes to
    ``annotate``; it is the only reader of the pool's gold answers. The ledger
    it writes is what the table reports as the annotated fraction. ``dev_start``:
    the base model's step-0 dev accuracy from rule ``dev_start``
    (:mod:`pivottrace.rl.dev_start`; checked against this run's model, dev rows,
    settings and device before anything else).
    """
    # every input is checked before the oracle is asked anything or a step is trained
    task = cfg["task"]
    check_model_dir(model_dir)
    validate_data_dir(data_dir, task)
    pool = load_pool(data_dir / "pool.jsonl")
    load_plan(plan_path, pool)  # fields, routes, and exactly the pool's ids (DataError)
    plan = read_json(plan_path)
    to_annotate = [i for i in pool.ids if plan["routes"][i] == "annotate"]
    oracle = AnnotationOracle(data_dir / "pool_gold.jsonl", max_queries=len(to_annotate),
                              verifier=task["verifier"], modulus=task.get("modulus"))
    gold = oracle.annotate(to_annotate) if to_annotate else {}
    rows = training_rows(plan, pool, gold)
    if not rows:
        raise ValueError(f"{plan_path}: the plan trains on no prompt (every route is 'defer')")
    verifier = get_verifier(cfg["task"]["verifier"])
    dev = load_labeled(data_dir / "dev.jsonl", task["verifier"], task.get("modulus"))
    start = None
    if dev_start is not None:
        key = start_key(model_dir, dev, cfg["grpo"], resolve_device(cfg).type)
        start = read_dev_start(dev_start, key)
    log.info("training %s on %d prompts (%d gold, %d self)", plan["method"], len(rows),
             len(to_annotate), len(rows) - len(to_annotate))
    work = checkpoint_dir(work_dir, plan_path, model_dir, cfg["grpo"], seed)
    summary = train_grpo(model_dir, rows, dev, verifier, cfg["grpo"], seed, work, out_model,
                         runtime=cfg.get("runtime"), dev_start=start)
    summary.update(n_trained_prompts=len(rows), n_gold_prompts=len(to_annotate))
    if int(os.environ.get("RANK", "0")) == 0:  # one writer under `accelerate launch`
        oracle.write_ledger(ledger_path)
        write_json(summary_path, summary)
    return summary
