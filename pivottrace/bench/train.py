"""``pivottrace bench-train``: where a GRPO run's time goes, and what it costs over bare TRL.

On a base model and the first ``rows`` pool prompts (a full-supervision plan,
so every prompt gets the gold reward), it runs one after the other, each in a
fresh process started the same way:

(a) ``pivottrace train`` as the Snakemake ``train`` rule runs it (input
    checks, annotation oracle, GRPO with the dev curve, whose step-0 point comes
    from ``pivottrace dev-start`` run once beforehand and untimed as rule
    ``dev_start`` runs it once per base model, pseudo-label log and
    checkpoints, saved model, summary and ledger), but without ``--eval-out``:
    the rule's final lm-eval evaluation on test and test_hard is evaluation, not
    training (it was a rule of its own), and bare TRL has nothing like it;
(b) bare ``trl.GRPOTrainer`` on the same model, rows, gold reward and GRPO
    settings (:mod:`pivottrace.bench.bare_grpo`): no callbacks, no checkpoints,
    nothing saved, and TRL's own rollouts (Hugging Face's dynamic cache, not the
    suite's in-place one: :mod:`pivottrace.core.kv_cache`);

both under the phase profiler (:mod:`pivottrace.bench.profile`). Then a plain
``model.generate`` loop samples the same batch shape in this process (same
threads) for a generation-throughput reference. It prints where (a)'s and
(b)'s wall time goes (start-up, generation, rewards, other scoring, loss and
backward, optimizer, dev evaluation, checkpointing, other loop work, finish)
and, last, ``train_overhead_ratio=<wall a / wall b>``.

Reads the pool's gold answers (through the annotation oracle) to give (b) the
same rows as (a); a benchmark, never an input to selection.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PHASES = ("start-up", "generation", "rewards", "other scoring", "loss + backward", "optimizer",
          "dev evaluation", "checkpointing", "other loop work", "finish")
"""Rows of the time table, in the order a run passes through them."""


@dataclass(frozen=True)
class BenchTrainConfig:
    """What ``pivottrace bench-train`` runs (CLI flags of the same names)."""

    model: Path
    data: Path
    rows: int = 64
    steps: int | None = None
    seed: int = 0
    threads: int = 1
    gen_repeats: int = 3
    repeats: int = 2
    keep: Path | None = None


def phases(profile: dict, wall: float) -> dict[str, float]:
    """Seconds per :data:`PHASES` from a profile JSON and the spawn-to-exit wall time.

    Phases nest (generation and rewards inside scoring, scoring inside
    ``_prepare_inputs`` inside ``training_step``), so each row is the
    exclusive part; the rows sum to ``wall``.

    Examples:
        >>> prof = {"seconds": {"generation": 4, "rewards": 1, "prepare_inputs": 6,
        ...                     "training_step": 9, "optimizer": 1}, "train_begin_s": 2,
        ...         "train_end_s": 14}
        >>> p = phases(prof, wall=15)
        >>> p["other scoring"], p["loss + backward"], p["other loop work"], sum(p.values())
        (1, 3, 2.0, 15.0)
    """
    s = {k: profile["seconds"].get(k, 0.0) for k in (
        "generation", "rewards", "prepare_inputs", "training_step", "optimizer",
        "dev_evaluation", "checkpointing")}
    out = {
        "start-up": profile["train_begin_s"],
        "generation": s["generation"],
        "rewards": s["rewards"],
        "other scoring": s["prepare_inputs"] - s["generation"] - s["rewards"],
        "loss + backward": s["training_step"] - s["prepare_inputs"],
        "optimizer": s["optimizer"],
        "dev evaluation": s["dev_evaluation"],  # the step-0 one runs in on_train_begin, in the loop
        "checkpointing": s["checkpointing"],
    }
    loop = profile["train_end_s"] - profile["train_begin_s"]
    out["other loop work"] = loop - sum(s[k] for k in ("training_step", "optimizer", "dev_evaluation",
                                                        "checkpointing"))
    out["finish"] = wall - profile["train_end_s"]
    return out


def _prepare(c: BenchTrainConfig, cfg: dict, root: Path) -> dict[str, Path]:
    """Data subset, full-supervision plan, the rows of (b) and the resolved config, under ``root``."""
    import yaml

    from pivottrace.core.io import atomic_write, read_jsonl, write_jsonl
    from pivottrace.data.pool import load_pool, write_plan
    from pivottrace.labeled.oracle import AnnotationOracle
    from pivottrace.method.selection import select
    from pivottrace.rl.rewards import training_rows

    data = root / "data"
    data.mkdir(parents=True)
    pool_rows = read_jsonl(c.data / "pool.jsonl", required={"id": str})[: c.rows]
    write_jsonl(data / "pool.jsonl", pool_rows)
    for name in ("dev", "test", "test_hard"):
        write_jsonl(data / f"{name}.jsonl", read_jsonl(c.data / f"{name}.jsonl"))
    pool = load_pool(data / "pool.jsonl")
    oracle = AnnotationOracle(c.data / "pool_gold.jsonl", max_queries=len(pool))
    gold = oracle.annotate(pool.ids)
    write_jsonl(data / "pool_gold.jsonl", [{"id": i, "answer": gold[i]} for i in pool.ids])
    plan = select("full", pool, seed=c.seed)
    write_plan(plan, root / "plan.json")
    write_jsonl(root / "rows.jsonl", training_rows(plan.to_dict(), pool, gold))
    if c.steps is not None:
        cfg = {**cfg, "grpo": {**cfg["grpo"], "max_steps": c.steps}}
    with atomic_write(root / "config.yaml") as fh:
        yaml.safe_dump(cfg, fh, sort_keys=False)
    return {"data": data, "plan": root / "plan.json", "rows": root / "rows.jsonl",
            "config": root / "config.yaml", "dev_start": root / "dev_start.json"}


def _suite_argv(py: list[str], paths: dict[str, Path], c: BenchTrainConfig, root: Path,
                r: int) -> list[str]:
    """``pivottrace train`` as the rule runs it, less the final evaluation (``--eval-out``, module
    docstring); repeat ``r`` writes its own checkpoints and model."""
    return [*py, "pivottrace.cli", "--config", str(paths["config"]), "train",
            "--plan", str(paths["plan"]), "--data", str(paths["data"]), "--model", str(c.model),
            "--seed", str(c.seed), "--work", str(root / f"a{r}_ckpt"),
            "--out-model", str(root / f"a{r}_model"), "--summary", str(root / f"a{r}_train.json"),
            "--ledger", str(root / f"a{r}_ledger.json"), "--dev-start", str(paths["dev_start"])]


def _bare_argv(py: list[str], paths: dict[str, Path], c: BenchTrainConfig, root: Path,
               r: int) -> list[str]:
    """Bare TRL (:mod:`pivottrace.bench.bare_grpo`) on the same rows and settings."""
    return [*py, "pivottrace.bench.bare_grpo", "--config", str(paths["config"]),
            "--rows", str(paths["rows"]), "--model", str(c.model), "--seed", str(c.seed),
            "--work", str(root / f"b{r}_work")]


def _spawn(argv: list[str], profile: Path, threads: int, log: Path) -> tuple[float, float]:
    """Run ``argv`` under the profiler; its wall-clock and CPU (user + system) seconds."""
    import resource

    env = dict(os.environ, PIVOTTRACE_THREADS=str(threads), TOKENIZERS_PARALLELISM="false",
               HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    env["PIVOTTRACE_PROFILE"] = str(profile)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    env["PIVOTTRACE_PROFILE_T0"] = repr(t0)
    with open(log, "w", encoding="utf-8") as fh:
        proc = subprocess.run(argv, env=env, stdout=fh, stderr=subprocess.STDOUT, check=False)
    wall = time.time() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise RuntimeError(f"bench-train: {' '.join(argv[:4])} ... exited {proc.returncode}:\n{tail}")
    return wall, cpu


def plain_generate_tokens_per_s(model_dir: Path, cfg: dict, rows_path: Path, threads: int,
                                repeats: int, seed: int) -> float:
    """Generated tokens/s of a plain ``model.generate`` loop on one GRPO batch shape.

    ``prompts_per_step`` prompts, each repeated ``num_generations`` times, left
    padded, sampled at the GRPO temperature up to ``max_completion_length``;
    tokens are counted up to and including EOS. The median of ``repeats`` batches.
    """
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pivottrace.core.io import read_jsonl
    from pivottrace.method.trace import generated_lengths

    torch.set_num_threads(threads)
    g = cfg["grpo"]
    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    rows = read_jsonl(rows_path)
    torch.manual_seed(seed)
    rates = []
    for r in range(repeats):
        start = (r * g["prompts_per_step"]) % max(len(rows) - g["prompts_per_step"] + 1, 1)
        prompts = [row["prompt"] for row in rows[start:start + g["prompts_per_step"]]
                   for _ in range(g["num_generations"])]
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        t0 = time.perf_counter()
        with torch.no_grad():
            out = model.generate(**enc, do_sample=True, temperature=g["temperature"], top_k=None,
                                 top_p=None, max_new_tokens=g["max_completion_length"],
                                 pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        dt = time.perf_counter() - t0
        rates.append(sum(generated_lengths(out[:, enc["input_ids"].shape[1]:], tok.eos_token_id)) / dt)
    return float(np.median(rates))


def format_table(walls: dict[str, list[float]], cpus: dict[str, list[float]],
                 profiles: dict[str, list[dict]], plain_tok_s: float) -> str:
    """The printed report; its last line is ``train_overhead_ratio=<a/b>``.

    Every number is the mean over the repeats (which alternate the order of (a) and (b)), so
    the rows of each column still sum to its total.
    """
    import numpy as np

    mean_wall = {run: float(np.mean(walls[run])) for run in walls}
    per_repeat = {run: [phases(p, w) for p, w in zip(profiles[run], walls[run])]
                  for run in ("suite", "bare")}
    split = {run: {ph: float(np.mean([rep[ph] for rep in per_repeat[run]])) for ph in PHASES}
             for run in per_repeat}
    lines = [f"{'phase':<18}{'suite (a) s':>12}{'share':>8}{'bare TRL (b) s':>16}{'share':>8}"]
    for ph in PHASES:
        a, b = split["suite"][ph], split["bare"][ph]
        lines.append(f"{ph:<18}{a:>12.2f}{a / mean_wall['suite']:>8.1%}{b:>16.2f}"
                     f"{b / mean_wall['bare']:>8.1%}")
    lines.append(f"{'total (wall)':<18}{mean_wall['suite']:>12.2f}{1:>8.1%}{mean_wall['bare']:>16.2f}"
                 f"{1:>8.1%}")
    gen = {run: sum(p["generated_tokens"] for p in profiles[run])
           / max(sum(p["seconds"].get("generation", 0.0) for p in profiles[run]), 1e-9)
           for run in ("suite", "bare")}
    per_run = ", ".join(f"{a:.1f}/{b:.1f}" for a, b in zip(walls["suite"], walls["bare"]))
    cpu_ratio = float(np.mean(cpus["suite"])) / max(float(np.mean(cpus["bare"])), 1e-9)
    lines += ["",
              f"repeats: {len(walls['suite'])} (order alternating); wall a/b per repeat: {per_run} s",
              f"generation tokens/s: suite {gen['suite']:.0f}, bare TRL {gen['bare']:.0f}, "
              f"plain model.generate loop {plain_tok_s:.0f} "
              f"(TRL / plain = {gen['bare'] / plain_tok_s:.2f})",
              f"overhead of the suite over bare TRL: {mean_wall['suite'] - mean_wall['bare']:+.2f} s",
              f"cpu_overhead_ratio={cpu_ratio:.3f} (process CPU seconds, steadier on a shared machine)",
              f"train_overhead_ratio={mean_wall['suite'] / mean_wall['bare']:.3f}"]
    return "\n".join(lines)


def main(c: BenchTrainConfig, cfg: dict) -> str:
    """Run (a), (b) and the plain generation loop; return the report (see module docstring)."""
    from pivottrace.core.io import check_model_dir

    check_model_dir(c.model)
    for name in ("pool.jsonl", "pool_gold.jsonl", "dev.jsonl", "test.jsonl", "test_hard.jsonl"):
        if not (c.data / name).is_file():
            raise FileNotFoundError(f"bench-train: {c.data / name} is missing (run "
                                    "`snakemake data/pool.jsonl models/base` first)")
    root = Path(tempfile.mkdtemp(prefix="bench-train-")) if c.keep is None else Path(c.keep)
    try:
        paths = _prepare(c, cfg, root)
        py = [sys.executable, "-m"]
        # imports of the same stack once before timing, so (a), run first, does not pay for a cold
        # file cache that (b) then finds warm (measured: +3.4 s of start-up on (a) without it)
        subprocess.run([*py, "pivottrace.bench.bare_grpo", "--warm-up"], check=True,
                       stdout=subprocess.DEVNULL, env=dict(os.environ, TOKENIZERS_PARALLELISM="false"))
        # the dev curve's step-0 point, once per base model as rule dev_start computes it (untimed)
        subprocess.run([*py, "pivottrace.cli", "--config", str(paths["config"]), "dev-start",
                        "--model", str(c.model), "--data", str(paths["data"]),
                        "--out", str(paths["dev_start"])], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL,
                       env=dict(os.environ, PIVOTTRACE_THREADS=str(c.threads),
                                TOKENIZERS_PARALLELISM="false"))
        walls, cpus, profiles = {"suite": [], "bare": []}, {"suite": [], "bare": []}, {"suite": [], "bare": []}
        for r in range(c.repeats):  # alternate the order, so a drift of the machine's speed cancels
            for run in (("suite", "bare") if r % 2 == 0 else ("bare", "suite")):
                argv = _suite_argv(py, paths, c, root, r) if run == "suite" else _bare_argv(py, paths, c, root, r)
                prof = root / f"{run}_{r}_profile.json"
                wall, cpu = _spawn(argv, prof, c.threads, root / f"{run}_{r}.log")
                walls[run].append(wall)
                cpus[run].append(cpu)
                profiles[run].append(json.loads(prof.read_text(encoding="utf-8")))
        from pivottrace.core.config import load_config

        plain = plain_generate_tokens_per_s(c.model, load_config(paths["config"]), paths["rows"],
                                            c.threads, c.gen_repeats, c.seed)
        return format_table(walls, cpus, profiles, plain)
    finally:
        if c.keep is None:
            shutil.rmtree(root, ignore_errors=True)
