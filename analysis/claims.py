"""The paper's claims, each decided by a written rule: ``results/claims.csv`` and ``claims.md``.

One row per claim (abstract of arXiv 2606.04503, DESIGN.md section 1):

a. PivotTrace matches or beats full supervision with about 29.3% of prompts
   annotated: test accuracy of ``pivottrace`` at budget 0.3 minus ``full``,
   paired by seed.
b. It converges 2.75x faster: per seed, full supervision's steps to 95% of its
   final dev accuracy divided by PivotTrace's (0 when PivotTrace never gets there).
c. Pivot density is a well-calibrated uncertainty estimate: its AUROC for the
   base model's failure on the pool (pass rate < 0.5), against token entropy and
   majority disagreement on the same rollouts (bootstrap over prompts, paired).
d. Its picks are smart: PivotTrace minus random at equal budget (0.3) on dev
   AUC, paired by seed, and its share of the random -> oracle gap.
e. Pivots are metacognitive: attention pivots fall within one token of a
   reflection word more often than pivots placed at random at the same density
   (precision and recall lifts; one-sided binomial test of the precision).

The verdict is one of :data:`VERDICTS`. The testbed's controls come first
(:mod:`analysis.controls`): unless every positive control passes, every verdict
is ``inconclusive: the testbed cannot resolve it``; unless full supervision's
dev curve is resolved (``dev_curve_resolved``), claim (b) is ``inconclusive:
the dev curve is not resolved``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import roc_auc_score

from analysis.calibration import ALIGNMENT_TOLERANCE
from analysis.controls import (
    arm,
    curve_resolved,
    paired_values,
    positive_controls_pass,
    write_controls,
)
from analysis.convergence import per_run
from analysis.stats import fmt_cell, paired_comparison
from pivottrace.core.io import atomic_write, write_results_csv

VERDICTS = ("reproduced", "not reproduced", "inconclusive")
UNRESOLVED = "inconclusive: the testbed cannot resolve it"
UNRESOLVED_CURVE = "inconclusive: the dev curve is not resolved"
HEADLINE_BUDGET = "0.3"
NON_INFERIORITY = 0.02
"""Claim (a): PivotTrace 'matches' full supervision if it is not worse by more than this."""
PAPER_SPEEDUP = 2.75
LIFT = 2.0
"""Claim (e): pivots must be at least this many times likelier than random placement
to land within one token of a reflection (precision and recall)."""
N_BOOT = 2000

COLUMNS = ["claim", "statement", "paper", "metric", "measured", "ci_low", "ci_high", "p_value",
           "detectable_effect", "n", "verdict", "rule"]

RULES = {
    "a": (f"reproduced if the 95% interval of pivottrace@0.3 - full (test accuracy) lies above "
          f"-{NON_INFERIORITY:g} (not worse by more than {NON_INFERIORITY * 100:g} points); not "
          "reproduced if it lies below 0; inconclusive otherwise"),
    "b": (f"reproduced if the mean speedup is >= {PAPER_SPEEDUP:g} and its 95% interval lies "
          f"above 1; not reproduced if the interval lies below {PAPER_SPEEDUP:g}; inconclusive "
          "otherwise"),
    "c": ("reproduced if the AUROC interval lies above 0.5 and pivot density is not worse than "
          "entropy or majority disagreement (each paired difference's interval reaches 0 or "
          "above); not reproduced if the AUROC interval contains 0.5 or it is worse than one of "
          "them (an interval below 0); inconclusive otherwise"),
    "d": ("reproduced if the 95% interval of pivottrace@0.3 - random@0.3 (dev AUC) lies above 0; "
          "not reproduced if it lies below 0; inconclusive otherwise"),
    "e": (f"reproduced if the precision and recall lifts over random placement (tolerance 1 "
          f"token) are both >= {LIFT:g} and the binomial p < 0.05; not reproduced if both are "
          "< 1 (pivots avoid reflections) or the reflection precision is not above random "
          "(p >= 0.05); inconclusive otherwise"),
}

STATEMENTS = {
    "a": "PivotTrace >= full supervision with ~29.3% annotated",
    "b": "2.75x faster convergence than full supervision",
    "c": "pivot density is a well-calibrated uncertainty estimate",
    "d": "PivotTrace's picks beat random at equal budget (share of the random -> oracle gap)",
    "e": "attention pivots coincide with reflection",
}


def _row(claim, paper, metric, measured, lo, hi, p, detect, n, verdict) -> dict:
    return {"claim": claim, "statement": STATEMENTS[claim], "paper": paper, "metric": metric,
            "measured": measured, "ci_low": lo, "ci_high": hi, "p_value": p,
            "detectable_effect": detect, "n": n, "verdict": verdict, "rule": RULES[claim]}


def claim_a(records: pd.DataFrame) -> dict:
    seeds, pt, full = paired_values(records, ("pivottrace", HEADLINE_BUDGET), ("full", "none"),
                              "test_accuracy")
    annotated = arm(records, "pivottrace", HEADLINE_BUDGET, "annotated_fraction")
    metric = (f"test acc, pivottrace@0.3 - full (annotated {annotated.mean():.3f})"
              if len(annotated) else "test acc, pivottrace@0.3 - full")
    if len(seeds) < 2:
        return _row("a", "beats full with 29.3% annotated", metric, math.nan, math.nan, math.nan,
                    math.nan, math.nan, len(seeds), "inconclusive")
    r = paired_comparison(pt, full)
    verdict = ("reproduced" if r.ci_low > -NON_INFERIORITY else
               "not reproduced" if r.ci_high < 0 else "inconclusive")
    return _row("a", "beats full with 29.3% annotated", metric, r.mean_diff, r.ci_low, r.ci_high,
                r.p_value, r.detectable_effect, len(seeds), verdict)


def claim_b(records: pd.DataFrame) -> dict:
    runs = per_run(records)
    full = runs[runs.method == "full"].set_index("seed")["steps_to_95"]
    pt = runs[(runs.method == "pivottrace") & (runs.budget == HEADLINE_BUDGET)].set_index("seed")
    speed = []
    for seed, steps in (pt["steps_to_95"].items() if len(pt) else []):
        theirs = full.get(seed, math.nan)
        if math.isnan(theirs):
            continue
        speed.append(0.0 if math.isnan(steps) else theirs / max(steps, 1.0))
    metric = "speedup: full's steps to 95% of its final dev acc / pivottrace@0.3's (0 = never)"
    if len(speed) < 2:
        return _row("b", f"{PAPER_SPEEDUP:g}x", metric, math.nan, math.nan, math.nan, math.nan,
                    math.nan, len(speed), "inconclusive")
    r = paired_comparison(speed, [1.0] * len(speed))  # interval of the mean speedup - 1
    mean, lo, hi = 1 + r.mean_diff, 1 + r.ci_low, 1 + r.ci_high
    verdict = ("reproduced" if mean >= PAPER_SPEEDUP and lo > 1 else
               "not reproduced" if hi < PAPER_SPEEDUP else "inconclusive")
    return _row("b", f"{PAPER_SPEEDUP:g}x", metric, mean, lo, hi, r.p_value,
                r.detectable_effect, len(speed), verdict)


def bootstrap_auroc(y: np.ndarray, scores: dict[str, np.ndarray], n_boot: int = N_BOOT,
                    seed: int = 0) -> dict[str, np.ndarray]:
    """AUROC of each score on ``n_boot`` resamples of the prompts (the same resamples for all)."""
    rng = np.random.default_rng(seed)
    out = {k: [] for k in scores}
    n = len(y)
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        if len(np.unique(y[idx])) < 2:
            continue
        for k, x in scores.items():
            out[k].append(roc_auc_score(y[idx], x[idx]))
    return {k: np.asarray(v) for k, v in out.items()}


def claim_c(scores_csv, oracle_csv) -> dict:
    from analysis.calibration import load_merged

    df = load_merged(scores_csv, oracle_csv,
                     ("pivot_density", "mean_token_entropy", "majority_disagreement"))
    y = df["failure"].to_numpy()
    cols = {k: df[k].to_numpy(dtype=float) for k in
            ("pivot_density", "mean_token_entropy", "majority_disagreement")}
    metric = "AUROC of pivot density for failure (pass rate < 0.5), 95% bootstrap over prompts"
    if len(np.unique(y)) < 2:
        return _row("c", "well calibrated", metric, math.nan, math.nan, math.nan, math.nan,
                    math.nan, len(y), "inconclusive")
    auc = {k: roc_auc_score(y, x) for k, x in cols.items()}
    boot = bootstrap_auroc(y, cols)
    lo, hi = np.percentile(boot["pivot_density"], [2.5, 97.5])
    diffs = {k: boot["pivot_density"] - boot[k] for k in ("mean_token_entropy", "majority_disagreement")}
    worse = any(np.percentile(d, 97.5) < 0 for d in diffs.values())
    # one-sided bootstrap p of AUROC <= 0.5
    p = float((np.sum(boot["pivot_density"] <= 0.5) + 1) / (len(boot["pivot_density"]) + 1))
    verdict = ("not reproduced" if lo <= 0.5 <= hi or worse else
               "reproduced" if lo > 0.5 else "inconclusive")
    note = "; ".join(f"{k} {auc[k]:.3f} (diff {np.mean(d):+.3f} [{np.percentile(d, 2.5):+.3f}, "
                     f"{np.percentile(d, 97.5):+.3f}])" for k, d in diffs.items())
    return _row("c", "well calibrated", f"{metric}; vs {note}", auc["pivot_density"], float(lo),
                float(hi), p, math.nan, len(y), verdict)


def claim_d(records: pd.DataFrame) -> dict:
    seeds, pt, rnd = paired_values(records, ("pivottrace", HEADLINE_BUDGET), ("random", HEADLINE_BUDGET),
                             "dev_auc")
    _, orc, rnd2 = paired_values(records, ("oracle_learnability", HEADLINE_BUDGET),
                           ("random", HEADLINE_BUDGET), "dev_auc")
    gap = (np.mean(orc) - np.mean(rnd2)) if len(orc) else math.nan
    if len(seeds) < 2:
        return _row("d", "smart picks (no number)", "dev AUC, pivottrace@0.3 - random@0.3",
                    math.nan, math.nan, math.nan, math.nan, math.nan, len(seeds), "inconclusive")
    r = paired_comparison(pt, rnd)
    share = r.mean_diff / gap if gap and not math.isnan(gap) and gap > 0 else math.nan
    metric = (f"dev AUC, pivottrace@0.3 - random@0.3 (share of the random -> oracle gap "
              f"{gap:+.3f}: {share:.2f})")
    verdict = ("reproduced" if r.ci_low > 0 else "not reproduced" if r.ci_high < 0
               else "inconclusive")
    return _row("d", "smart picks (no number)", metric, r.mean_diff, r.ci_low, r.ci_high,
                r.p_value, r.detectable_effect, len(seeds), verdict)


def claim_e(alignment_csv) -> dict:
    df = pd.read_csv(alignment_csv)
    row = df[(df.target == "reflection") & (df.tolerance == ALIGNMENT_TOLERANCE)]
    metric = "reflection precision lift over random placement, tolerance 1 token (recall lift in ci)"
    if row.empty or row.n_pivots.iloc[0] == 0:
        return _row("e", "pivots are metacognitive", metric, math.nan, math.nan, math.nan,
                    math.nan, math.nan, 0, "inconclusive")
    r = row.iloc[0]
    hits = int(round(r.precision * r.n_pivots))
    p = float(stats.binomtest(hits, int(r.n_pivots), min(max(r.precision_random, 1e-12), 1.0),
                              alternative="greater").pvalue)
    if r.precision_lift >= LIFT and r.recall_lift >= LIFT and p < 0.05:
        verdict = "reproduced"
    elif (r.precision_lift < 1 and r.recall_lift < 1) or p >= 0.05:
        verdict = "not reproduced"
    else:
        verdict = "inconclusive"
    return _row("e", "pivots are metacognitive", f"{metric}: recall lift {r.recall_lift:.2f}",
                float(r.precision_lift), float(r.precision_lift), float(r.recall_lift), p,
                math.nan, int(r.n_pivots), verdict)


def decide(records: pd.DataFrame, controls: pd.DataFrame, scores_csv, oracle_csv,
           alignment_csv) -> pd.DataFrame:
    """All five claims; every verdict is :data:`UNRESOLVED` unless the positive controls pass,
    and the convergence claim (b) is :data:`UNRESOLVED_CURVE` unless the dev curve is resolved."""
    rows = [claim_a(records), claim_b(records), claim_c(scores_csv, oracle_csv),
            claim_d(records), claim_e(alignment_csv)]
    table = pd.DataFrame(rows, columns=COLUMNS)
    if not positive_controls_pass(controls):
        table["verdict"] = UNRESOLVED
    elif not curve_resolved(controls):
        table.loc[table.claim == "b", "verdict"] = UNRESOLVED_CURVE
    return table


def to_markdown(table: pd.DataFrame, controls_ok: bool) -> str:
    lines = ["# Claims of the paper, decided by written rules", "",
             ("The testbed's positive controls pass (`results/controls.csv`), so the verdicts "
              "below are decided by their rules." if controls_ok else
              "**A positive control of the testbed failed (`results/controls.csv`): every verdict "
              "is inconclusive, whatever the measured values.**"), "",
             "| claim | paper | measured | 95% interval | p | detectable | n | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        lines.append(f"| ({r.claim}) {r.statement} | {r.paper} | {fmt_cell(r.measured)} | "
                     f"[{fmt_cell(r.ci_low)}, {fmt_cell(r.ci_high)}] | {fmt_cell(r.p_value)} | "
                     f"{fmt_cell(r.detectable_effect)} | {r.n} | **{r.verdict}** |")
    lines += ["", "Metrics and rules:", ""]
    lines += [f"- ({r.claim}) {r.metric}. Rule: {r.rule}." for r in table.itertuples()]
    lines += ["", "Paired statistics over seeds: expanded percentile bootstrap interval and exact "
              "sign-flip permutation p-value (`analysis/stats.py`); detectable = the smallest "
              "paired difference a two-sided test at 0.05 detects with 80% power at this seed "
              "count. Claim (e) has no interval: the ci columns hold the precision and recall "
              "lifts.", ""]
    return "\n".join(lines)


def write_claims(records: list[Path], scores_csv, oracle_csv, alignment_csv, out_controls: Path,
                 out_csv: Path, out_md: Path, out_frontier: Path | None = None) -> pd.DataFrame:
    """Rule ``claims``: the controls (``out_controls``) then the five claims, from run records;
    with ``out_frontier`` also the efficiency frontier (:mod:`analysis.frontier`, with claim
    (a)'s margin), which joins ``out_md`` as a section."""
    from analysis import frontier as fr
    from analysis.table import load_records

    df = load_records(records)
    controls = write_controls(df, out_controls)
    table = decide(df, controls, scores_csv, oracle_csv, alignment_csv)
    md = to_markdown(table, positive_controls_pass(controls))
    if out_frontier is not None:
        front = fr.frontier(df, NON_INFERIORITY)
        write_results_csv(front, out_frontier)
        md += "\n" + fr.to_markdown(front)
    write_results_csv(table, out_csv)
    with atomic_write(out_md) as fh:
        fh.write(md)
    return table

