"""Which harder split can training move? Greedy accuracy by number of hard steps, on fresh problems.

Issue 10 item 3 asks for a harder split on which full supervision gains at least
10 points. This probe draws chains with exactly ``h`` hard steps for each
requested ``h`` from a seed of its own, excluding every prompt of the data
directory (pool, dev, test, test-hard, SFT), so it never reads the test split.
It then prints each model's greedy accuracy per ``h`` and each model's gain over
the base model::

    python -m pivottrace.testbed.hard_split_probe --config configs/default.yaml \\
        --data data --base models/base --models runs/full/none/*/model

Results of the reference run: ``results/reference/testbed_probes.md`` (third round).
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import pandas as pd

SPLIT_FILES = ("pool", "dev", "test", "test_hard", "sft")


def draw_probe_sets(task: dict, hard_counts: list[int], *, n: int, seed: int, min_steps: int,
                    max_steps: int, exclude: set[str]) -> dict[int, list[dict]]:
    """``n`` skillchain rows (``prompt``, ``answer``) with exactly ``h`` hard steps, per ``h``.

    Chains are ``min_steps``-``max_steps`` long; no prompt is in ``exclude`` or in two sets.
    """
    from pivottrace.testbed import skills

    rng = random.Random(seed)
    taken = set(exclude)
    sets = {}
    for h in hard_counts:
        if not 0 <= h <= max_steps:
            raise ValueError(f"--hard {h}: a chain of at most {max_steps} steps has 0-{max_steps}")
        weights = [0.0] * (max_steps + 1)
        weights[h] = 1.0
        problems = skills.generate_stratified(
            rng, n, min_steps, max_steps, task["modulus"], tuple(task["ops"]),
            tuple(task.get("hard_ops") or ("-", "*")), weights, taken)
        sets[h] = [{"prompt": p.prompt, "answer": p.answer} for p in problems]
    return sets


def split_prompts(data_dir: str | Path) -> set[str]:
    """Every prompt of the task data directory's splits (those present)."""
    from pivottrace.core.io import read_jsonl

    prompts: set[str] = set()
    for name in SPLIT_FILES:
        path = Path(data_dir) / f"{name}.jsonl"
        if path.exists():
            prompts |= {row["prompt"] for row in read_jsonl(path, required={"prompt": str})}
    return prompts


def gains(acc: pd.DataFrame, base: str = "base") -> pd.DataFrame:
    """Per ``hard``: the base model's accuracy, the other models' mean, mean gain and gains.

    ``acc`` has columns ``model``, ``hard``, ``accuracy``; ``base`` names the base model.
    """
    wide = acc.pivot(index="hard", columns="model", values="accuracy")
    if base not in wide:
        raise ValueError(f"no model named {base!r} among {sorted(wide)}")
    others = wide.drop(columns=base)
    diff = others.sub(wide[base], axis=0)
    return pd.DataFrame({
        "base": wide[base], "trained_mean": others.mean(axis=1), "gain_mean": diff.mean(axis=1),
        "gains": diff.round(3).apply(lambda r: ", ".join(f"{v:+.3f}" for v in r), axis=1)})


def to_markdown(table: pd.DataFrame) -> str:
    """:func:`gains`'s table as a markdown table."""
    lines = ["| hard steps | base | trained, mean | gain, mean | gain per model |", "|---|---|---|---|---|"]
    lines += [f"| {h} | {r.base:.3f} | {r.trained_mean:.3f} | {r.gain_mean:+.3f} | {r.gains} |"
              for h, r in table.iterrows()]
    return "\n".join(lines)


def main(argv=None) -> None:
    from pivottrace.core.config import load_config

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/default.yaml")
    ap.add_argument("--data", default="data", help="task data directory (its prompts are excluded)")
    ap.add_argument("--base", default="models/base")
    ap.add_argument("--models", nargs="+", required=True, help="trained model directories")
    ap.add_argument("--hard", nargs="+", type=int, default=[2, 3, 4])
    ap.add_argument("--n", type=int, default=200, help="problems per number of hard steps")
    ap.add_argument("--min-steps", type=int, default=4)
    ap.add_argument("--max-steps", type=int, default=6)
    ap.add_argument("--seed", type=int, default=987654)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)

    import torch
    from transformers import AutoModelForCausalLM

    from pivottrace.data.verifiers import get_verifier
    from pivottrace.rl.evaluate import load_tokenizer
    from pivottrace.sampling import greedy_accuracy

    task = load_config(args.config)["task"]
    if task["name"] != "skillchain":
        raise SystemExit(f"{args.config}: task.name is {task['name']!r}; the probe needs skillchain")
    torch.set_num_threads(args.threads)
    sets = draw_probe_sets(task, args.hard, n=args.n, seed=args.seed, min_steps=args.min_steps,
                           max_steps=args.max_steps, exclude=split_prompts(args.data))
    verifier = get_verifier(task.get("verifier", "modchain"))
    rows = []
    for name, path in [("base", args.base)] + [(str(p), p) for p in args.models]:
        model = AutoModelForCausalLM.from_pretrained(path).eval()
        tokenizer = load_tokenizer(path)
        for h, probe_rows in sets.items():
            rows.append({"model": name, "hard": h, "accuracy": greedy_accuracy(
                model, tokenizer, probe_rows, verifier, max_new_tokens=args.max_new_tokens)})
    table = gains(pd.DataFrame(rows))
    print(f"# {args.n} chains of {args.min_steps}-{args.max_steps} steps per number of hard steps, "
          f"seed {args.seed}; greedy accuracy; gains over the base model per trained model")
    print(to_markdown(table))


if __name__ == "__main__":
    main()
