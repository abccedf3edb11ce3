"""Rule ``train``: plan -> oracle -> GRPO -> model, summary and annotation ledger."""

from __future__ import annotations

import logging
from pathlib import Path

from pivottrace.data import load_labeled
from pivottrace.io import read_json, write_json
from pivottrace.pool import load_pool
from pivottrace.rlvr import train_grpo, training_rows
from pivottrace.verifiers import get_verifier

log = logging.getLogger(__name__)


def checkpoint_dir(work_dir: Path, plan_path: Path, model_dir: Path, grpo: dict, seed: int) -> Path:
    """Checkpoints live under a key of everything that determines the run.

    A rerun after a kill resumes only from checkpoints of the same plan, base
    model, GRPO settings and seed; anything else starts afresh.
    """
    import hashlib
    import json

    h = hashlib.sha256(plan_path.read_bytes())
    weights = sorted(Path(model_dir).glob("*.safetensors"))
    for w in weights:
        h.update(w.name.encode() + str(w.stat().st_size).encode() + w.read_bytes()[:1 << 20])
    h.update(json.dumps({"grpo": grpo, "seed": seed}, sort_keys=True).encode())
    return Path(work_dir) / h.hexdigest()[:16]


def run_training(cfg: dict, plan_path: Path, data_dir: Path, model_dir: Path, seed: int,
                 work_dir: Path, out_model: Path, summary_path: Path, ledger_path: Path) -> dict:
    """Fetch gold for the annotate route through the oracle, then train with GRPO.

    The oracle's budget is the number of prompts the plan routes to
    ``annotate``; it is the only reader of the pool's gold answers. The ledger
    it writes is what the table reports as the annotated fraction.
    """
    from pivottrace.oracle import AnnotationOracle

    plan = read_json(plan_path)
    pool = load_pool(data_dir / "pool.jsonl")
    missing = [i for i in pool.ids if i not in plan["routes"]]
    if missing:
        raise ValueError(f"{plan_path}: plan has no route for pool id {missing[0]!r}")
    to_annotate = [i for i in pool.ids if plan["routes"][i] == "annotate"]
    oracle = AnnotationOracle(data_dir / "pool_gold.jsonl", max_queries=len(to_annotate))
    gold = oracle.annotate(to_annotate) if to_annotate else {}
    rows = training_rows(plan, pool, gold)
    if not rows:
        raise ValueError(f"{plan_path}: the plan trains on no prompt (every route is 'defer')")
    verifier = get_verifier(cfg["task"]["verifier"])
    dev = load_labeled(data_dir / "dev.jsonl")
    log.info("training %s on %d prompts (%d gold, %d self)", plan["method"], len(rows),
             len(to_annotate), len(rows) - len(to_annotate))
    work = checkpoint_dir(work_dir, plan_path, model_dir, cfg["grpo"], seed)
    summary = train_grpo(model_dir, rows, dev, verifier, cfg["grpo"], seed, work, out_model)
    summary.update(n_trained_prompts=len(rows), n_gold_prompts=len(to_annotate))
    oracle.write_ledger(ledger_path)
    write_json(summary_path, summary)
    return summary
