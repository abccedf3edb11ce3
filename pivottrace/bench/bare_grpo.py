"""Bare TRL GRPO: the reference run of ``pivottrace bench-train``.

``trl.GRPOTrainer`` on the same model, rows, gold reward and GRPO settings as
the suite's ``train`` rule (:func:`pivottrace.rl.grpo.grpo_args`), with none of
the suite's additions: no dev curve, no pseudo-label log, no checkpoints, no
saved model, no ledger. Run as ``python -m pivottrace.bench.bare_grpo``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pivottrace.bench.bare_grpo", description=__doc__)
    p.add_argument("--config", help="resolved config YAML (grpo, runtime, task)")
    p.add_argument("--rows", help="JSONL of GRPO rows (prompt, id, regime, answer)")
    p.add_argument("--model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", help="output_dir of the trainer (nothing is saved)")
    p.add_argument("--warm-up", action="store_true",
                   help="only import what both runs import (warms the file cache), then exit")
    a = p.parse_args(argv)
    if a.warm_up:
        from trl import GRPOTrainer  # noqa: F401

        import pivottrace.cli  # noqa: F401
        import pivottrace.rl.train  # noqa: F401

        return 0
    missing = [f"--{k}" for k in ("config", "rows", "model", "work") if getattr(a, k) is None]
    if missing:
        p.error(f"the following arguments are required: {', '.join(missing)}")
    import torch

    torch.set_num_threads(int(os.environ.get("PIVOTTRACE_THREADS", os.cpu_count() or 1)))
    from pivottrace.bench.profile import install_from_env

    install_from_env()
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOTrainer

    from pivottrace.core.config import load_config
    from pivottrace.core.io import read_jsonl
    from pivottrace.data.verifiers import get_verifier
    from pivottrace.rl.grpo import grpo_args
    from pivottrace.rl.rewards import make_gold_reward

    cfg = load_config(a.config)
    torch.manual_seed(a.seed)
    args = grpo_args(cfg["grpo"], a.seed, Path(a.work), cfg.get("runtime"), save_strategy="no")
    trainer = GRPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(a.model),
        reward_funcs=[make_gold_reward(get_verifier(cfg["task"]["verifier"]))],
        args=args,
        train_dataset=Dataset.from_list(read_jsonl(a.rows)),
        processing_class=AutoTokenizer.from_pretrained(a.model),
    )
    trainer.train()
    return 0


if __name__ == "__main__":
    sys.exit(main())
