"""READS LABELS. Rule ``base_report``: the base model measured on the pool (a testbed fact).

K samples per pool prompt (temperature 1 unless ``base_report.temperature``) and one greedy completion, scored
against the pool's gold answers through an analysis
:class:`~pivottrace.labeled.oracle.AnnotationOracle`. The report describes the
testbed (DESIGN.md section 4): the pass-rate distribution (never / always /
sometimes solved), concentrated wrong modes (majority answer wrong with a vote
share of at least one half), majority-vote pseudo-label accuracy over the pool,
per skill family and per pass-rate bin, and reflection on failed and solved
traces. It is never an input to selection.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from pivottrace.core.io import read_json, write_json
from pivottrace.method.estimators import lexical_counter, majority_vote

log = logging.getLogger(__name__)

PASS_BINS = (("0", 0.0, 0.0), ("(0, 0.25]", 0.0, 0.25), ("(0.25, 0.5]", 0.25, 0.5),
             ("(0.5, 0.75]", 0.5, 0.75), ("(0.75, 1)", 0.75, 1.0), ("1", 1.0, 1.0))
"""Pass-rate bins of the per-bin pseudo-label accuracy (closed bins for 0 and 1)."""

TARGETS = {"never_solved": (0.20, 0.35), "always_solved": (0.15, 0.45),
           "majority_wrong_confident": (0.10, 1.0), "reflection_rate": (0.10, 1.0)}
"""Pool statistics the testbed v2 must show (issue 10, DESIGN.md section 4)."""


def pass_bin(p: float) -> str:
    """The :data:`PASS_BINS` label of a pass rate.

    >>> [pass_bin(x) for x in (0.0, 0.25, 0.3, 1.0)]
    ['0', '(0, 0.25]', '(0.25, 0.5]', '1']
    """
    if p == 0.0:
        return "0"
    if p == 1.0:
        return "1"
    for label, lo, hi in PASS_BINS[1:-1]:
        if lo < p <= hi and p < 1.0:
            return label
    raise ValueError(f"pass rate {p} outside [0, 1]")


def prompt_family(task: dict, prompt: str, difficulty: int) -> str:
    """The skill family of a prompt (skillchain) or its difficulty level (other tasks)."""
    if task.get("name") == "skillchain":
        from pivottrace.testbed.modchain import parse_prompt
        from pivottrace.testbed.skills import skill_family

        return skill_family(parse_prompt(prompt, task["modulus"]), task.get("hard_ops") or ("-", "*"))
    return f"difficulty {difficulty}"


def per_prompt_table(task: dict, pool, gold: dict, sampled: list[list[str]], greedy: list[str],
                     verifier, count_reflections) -> pd.DataFrame:
    """One row per pool prompt: family, pass rate, majority answer and share, reflections."""
    rows = []
    for item, outs, g in zip(pool, sampled, greedy):
        answers = [verifier.extract(t) for t in outs]
        ok = [verifier.verify(t, gold[item.id]) for t in outs]
        refl = [count_reflections(t) > 0 for t in outs]
        top, votes = majority_vote(answers)
        rows.append({
            "id": item.id, "family": prompt_family(task, item.prompt, item.difficulty),
            "difficulty": item.difficulty, "k": len(outs), "n_correct": int(sum(ok)),
            "pass_rate": sum(ok) / len(outs),
            "majority_correct": top is not None and any(o for a, o in zip(answers, ok) if a == top),
            "majority_share": votes / len(outs),
            "greedy_correct": bool(verifier.verify(g, gold[item.id])),
            "n_reflect": int(sum(refl)),
            "n_reflect_failed": int(sum(r and not o for r, o in zip(refl, ok))),
            "n_reflect_solved": int(sum(r and o for r, o in zip(refl, ok))),
        })
    return pd.DataFrame(rows)


def summarize(df: pd.DataFrame) -> dict:
    """The pool statistics of :func:`per_prompt_table`'s rows (fractions of prompts / traces)."""
    n_traces = int(df.k.sum())
    n_failed = int((df.k - df.n_correct).sum())
    n_solved = int(df.n_correct.sum())
    conf_wrong = (~df.majority_correct) & (df.majority_share >= 0.5)

    def group_stats(g: pd.DataFrame) -> dict:
        return {"n_prompts": len(g), "sampled_accuracy": float(g.n_correct.sum() / g.k.sum()),
                "never_solved": float((g.n_correct == 0).mean()),
                "always_solved": float((g.n_correct == g.k).mean()),
                "majority_vote_accuracy": float(g.majority_correct.mean()),
                "majority_wrong_confident": float(((~g.majority_correct) & (g.majority_share >= 0.5)).mean()),
                "greedy_accuracy": float(g.greedy_correct.mean()),
                "reflection_rate": float(g.n_reflect.sum() / g.k.sum())}

    bins = df.pass_rate.map(pass_bin)
    return {
        "sampled_accuracy": n_solved / n_traces,
        "greedy_accuracy": float(df.greedy_correct.mean()),
        "never_solved": float((df.n_correct == 0).mean()),
        "always_solved": float((df.n_correct == df.k).mean()),
        "sometimes_solved": float(((df.n_correct > 0) & (df.n_correct < df.k)).mean()),
        "majority_vote_accuracy": float(df.majority_correct.mean()),
        "majority_wrong_confident": float(conf_wrong.mean()),
        "reflection_rate": float(df.n_reflect.sum() / n_traces),
        "reflection_rate_failed": float(df.n_reflect_failed.sum() / n_failed) if n_failed else None,
        "reflection_rate_solved": float(df.n_reflect_solved.sum() / n_solved) if n_solved else None,
        "per_family": {f: group_stats(g) for f, g in sorted(df.groupby("family"))},
        "per_pass_rate_bin": {label: {"n_prompts": int((bins == label).sum()),
                                      "majority_vote_accuracy": (float(df.majority_correct[bins == label].mean())
                                                                 if (bins == label).any() else None)}
                              for label, _, _ in PASS_BINS},
        "per_difficulty": {str(d): group_stats(g) for d, g in sorted(df.groupby("difficulty"))},
    }


def check_targets(stats: dict) -> dict:
    """Each :data:`TARGETS` statistic with its range and whether it is inside."""
    return {k: {"value": stats[k], "target": list(rng), "pass": rng[0] <= stats[k] <= rng[1]}
            for k, rng in TARGETS.items()}


def draw_pass_rates(df: pd.DataFrame, stem: Path, temperature: float = 1.0) -> None:
    """Histogram of per-prompt pass rates, stacked by family: ``stem``.png/.pdf/.csv."""
    import seaborn as sns

    from analysis import style

    plt = style.setup()
    k = int(df.k.max())
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    sns.histplot(df, x="n_correct", hue="family", multiple="stack", discrete=True, ax=ax,
                 hue_order=sorted(df.family.unique()))
    ax.set_xlabel(f"solved samples of K = {k} (temperature {temperature:g})")
    ax.set_ylabel("pool prompts")
    ax.set_xlim(-0.6, k + 0.6)
    ax.set_title("Base model: pass rates over the pool")
    data = df[["id", "family", "difficulty", "k", "n_correct", "pass_rate", "majority_correct",
               "majority_share", "greedy_correct"]]
    fig.tight_layout()
    style.save_figure(fig, stem, data)


def base_report(cfg: dict, model_dir: Path, data_dir: Path, out_path: Path,
                figure: Path | None = None) -> dict:
    """Sample the pool K times (``base_report.temperature``, default 1) and greedily; write the
    pool statistics.

    Reads pool gold answers through an analysis oracle (``uses_labels``): the
    report is a measurement of the testbed, never an input to selection. With
    ``figure``, also draws the pass-rate histogram (``figure``.png/.pdf/.csv).
    """
    from pivottrace.core.io import check_model_dir
    from pivottrace.core.runtime import load_causal_lm
    from pivottrace.data.pool import load_pool
    from pivottrace.data.verifiers import get_verifier
    from pivottrace.labeled.oracle import AnnotationOracle
    from pivottrace.sampling import generate

    task = cfg["task"]
    verifier = get_verifier(task["verifier"])
    rc = cfg["base_report"]
    check_model_dir(model_dir)
    model, tokenizer = load_causal_lm(model_dir, cfg)
    pool = load_pool(data_dir / "pool.jsonl")
    oracle = AnnotationOracle(data_dir / "pool_gold.jsonl", max_queries=len(pool),
                              verifier=task["verifier"], modulus=task.get("modulus"))
    gold = oracle.annotate(pool.ids)
    prompts = [item.prompt for item in pool]
    temperature = float(rc.get("temperature", 1.0))
    sampled = generate(model, tokenizer, prompts, k=rc["k"], do_sample=True, temperature=temperature,
                       max_new_tokens=rc["max_new_tokens"], batch_size=rc["batch_size"],
                       seed=cfg["seed"], desc="base-report sample")
    greedy = generate(model, tokenizer, prompts, k=1, do_sample=False,
                      max_new_tokens=rc["max_new_tokens"], batch_size=rc["batch_size"],
                      desc="base-report greedy")
    df = per_prompt_table(task, pool, gold, sampled, [g[0] for g in greedy], verifier,
                          lexical_counter(task.get("name")))
    stats = summarize(df)
    build = model_dir / "build.json"
    report = {
        "uses_labels": True,
        "n_prompts": len(pool),
        "k": rc["k"],
        "temperature": temperature,
        **stats,
        "checks": check_targets(stats),
        "build": read_json(build) if build.exists() else None,
        "examples": [{"prompt": item.prompt, "completion": outs[0], "gold": gold[item.id]}
                     for item, outs in list(zip(pool, sampled))[:3]],
    }
    write_json(out_path, report)
    if figure is not None:
        draw_pass_rates(df, Path(figure), temperature)
    log.info("base model: sampled acc %.3f, greedy %.3f; never %.3f, always %.3f, confident wrong "
             "majority %.3f; reflection %.3f (failed %s, solved %s)", stats["sampled_accuracy"],
             stats["greedy_accuracy"], stats["never_solved"], stats["always_solved"],
             stats["majority_wrong_confident"], stats["reflection_rate"],
             stats["reflection_rate_failed"], stats["reflection_rate_solved"])
    return report

