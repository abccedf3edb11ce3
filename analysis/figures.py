"""The paper's figures from run records and scoring artifacts (seaborn, one style).

* ``efficiency``: test accuracy against annotated fraction, one marker per
  (method, budget), mean over seeds with a 95% t-interval.
* ``convergence``: greedy dev accuracy against GRPO step for the headline runs,
  mean over seeds with a 95% interval band.
* ``triage_map``: histogram of PivotTrace's prompt uncertainty coloured by the
  route one plan gave each prompt, with the base model's empirical pass rate
  per bin (gold read after the fact: analysis only).
* ``trace_pivots``: one pool trace, the per-token dynamics score that was
  thresholded and the pivots found in it.

Each is written as PNG, PDF and the CSV it was drawn from (:mod:`analysis.style`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.patches import Patch

from analysis import style
from analysis.convergence import curves_long
from analysis.table import ci95, load_records
from pivottrace.core.io import read_json, read_jsonl


def _zoom_range(data: pd.DataFrame) -> tuple[float, float] | None:
    """y-range of the zoom panel: the trained methods within 0.1 of the best, or None."""
    top = float(data["test_accuracy"].max())
    near = data[(data["method"] != "base") & (data["test_accuracy"] >= top - 0.1)]
    if len(near) < 2:
        return None
    lo = float((near["test_accuracy"] - near["ci95"].fillna(0.0)).min())
    hi = float((near["test_accuracy"] + near["ci95"].fillna(0.0)).max())
    lo, hi = max(lo, top - 0.1), min(hi, 1.0)
    pad = max(0.005, 0.08 * (hi - lo))
    return lo - pad, hi + pad


def efficiency(records: pd.DataFrame, stem: str | Path) -> list[Path]:
    """Test accuracy vs. annotated fraction (mean, 95% CI over seeds), with full supervision
    (dashed) and unsupervised TTRL (dotted) as horizontal reference lines.

    Left: the whole accuracy range. Right (when several trained methods lie near
    the top): the same points with the y-axis zoomed on them, so that differences
    of a point or two stay visible.
    """
    plt = style.setup()
    g = records.groupby(["method", "budget"], sort=True)
    data = g.agg(annotated_fraction=("annotated_fraction", "mean"),
                 test_accuracy=("test_accuracy", "mean"), ci95=("test_accuracy", ci95),
                 n_seeds=("seed", "nunique")).reset_index()
    zoom = _zoom_range(data)
    fig, axes = plt.subplots(1, 2 if zoom else 1, figsize=(11.0 if zoom else 6.2, 4.2),
                             squeeze=False)
    for k, ax in enumerate(axes[0]):
        for method, d in data.groupby("method", sort=False):
            d = d.sort_values("annotated_fraction")
            ax.errorbar(d["annotated_fraction"], d["test_accuracy"], yerr=d["ci95"].fillna(0.0),
                        color=style.color(method), marker=style.marker(method), ms=7, capsize=3,
                        ls="-" if len(d) > 1 else "none", lw=1.2, label=style.label(method))
            for r in d.itertuples():
                if r.budget == "auto":
                    ax.annotate("auto", (r.annotated_fraction, r.test_accuracy), fontsize=7,
                                xytext=(4, -10), textcoords="offset points")
        for ref, ls in (("full", "--"), ("unsupervised", ":")):  # the reference lines
            line = data[data["method"] == ref]
            if len(line):
                ax.axhline(float(line["test_accuracy"].iloc[0]), color=style.color(ref), ls=ls,
                           lw=0.8)
        ax.set_xlabel("annotated fraction of the pool (from the oracle ledger)")
        ax.set_xlim(-0.03, 1.03)
        if k == 0:
            ax.set_ylabel("test accuracy (greedy)")
            ax.set_ylim(-0.02, 1.05)  # accuracies; a t-interval over 3 seeds can reach past [0, 1]
            ax.set_title("Annotation efficiency (mean, 95% CI over seeds)")
            ax.legend(fontsize=7, loc="lower right")
        else:
            ax.set_ylim(*zoom)
            ax.set_title("Zoom on the top (same points)")
    fig.tight_layout()
    return style.save_figure(fig, stem, data)


def convergence(records: pd.DataFrame, stem: str | Path,
                budgets: Sequence[str] | None = None) -> list[Path]:
    """Greedy dev accuracy vs. step per (method, budget); mean with a 95% CI band over seeds.

    Args:
        budgets: budgets to draw (``none`` rows always); None draws every run.
    """
    import seaborn as sns

    plt = style.setup()
    runs = records[records["method"] != "base"]
    if budgets is not None:
        runs = runs[runs["budget"].isin([*budgets, "none"])]
    data = curves_long(runs)
    data["run"] = [f"{style.label(m)}" + ("" if b in ("none", "1.0") else f" @ {b}")
                   for m, b in zip(data["method"], data["budget"])]
    fig, ax = plt.subplots(figsize=(6.6, 4.2))
    if len(data):
        palette = {r: style.color(m) for r, m in zip(data["run"], data["method"])}
        dashes = {r: (2, 2) if b == "auto" else "" for r, b in zip(data["run"], data["budget"])}
        sns.lineplot(data=data, x="step", y="dev_accuracy", hue="run", style="run",
                     palette=palette, dashes=dashes, errorbar=("ci", 95), n_boot=200, seed=0,
                     marker="o", markersize=3, ax=ax)
        ax.legend(fontsize=7, loc="lower right")
    ax.set_xlabel("GRPO step")
    ax.set_ylabel("greedy dev accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Convergence (mean, 95% CI over seeds)")
    fig.tight_layout()
    return style.save_figure(fig, stem, data.drop(columns=["run"]))


def triage_map(scores_csv, oracle_csv, plan_json, stem: str | Path, n_bins: int = 20) -> list[Path]:
    """Uncertainty histogram coloured by route, with the empirical pass rate per bin.

    READS LABELS (``oracle_csv`` pass rates) after the fact, for the twin axis only.
    """
    plt = style.setup()
    plan = read_json(plan_json)
    column = plan.get("meta", {}).get("score_column", "pivot_density")
    scores = pd.read_csv(scores_csv, dtype={"id": str})
    oracle = pd.read_csv(oracle_csv, dtype={"id": str})
    data = scores[["id", column]].rename(columns={column: "uncertainty"})
    data["route"] = data["id"].map(plan["routes"])
    data = data.merge(oracle[["id", "pass_rate"]], on="id", how="left")
    if data["route"].isna().any():
        raise ValueError(f"{plan_json}: plan has no route for some scored ids")
    edges = np.histogram_bin_edges(data["uncertainty"], bins=n_bins)
    data["bin"] = np.clip(np.digitize(data["uncertainty"], edges[1:-1]), 0, n_bins - 1)
    fig, ax = plt.subplots(figsize=(6.6, 4.2))
    width = np.diff(edges)
    counts = data["route"].value_counts()
    order = [r for r in ("self", "annotate", "defer") if r in counts.index]
    sns.histplot(data=data, x="uncertainty", hue="route", hue_order=order, multiple="stack",
                 bins=edges, palette=style.ROUTE_COLORS, edgecolor="white", linewidth=0.4,
                 alpha=1.0, ax=ax)
    route_handles = [Patch(color=style.ROUTE_COLORS[r], label=f"{r} ({int(counts[r])})")
                     for r in order]
    ax.set_xlabel(f"prompt uncertainty ({column}, mean over K traces)")
    ax.set_ylabel("pool prompts")
    ax2 = ax.twinx()
    per_bin = data.groupby("bin")["pass_rate"].mean()
    centers = edges[:-1] + width / 2
    ax2.plot(centers[per_bin.index], per_bin.values, color="black", marker="o", ms=3, lw=1,
             label="base pass rate (gold, analysis only)")
    ax2.set_ylim(-0.02, 1.02)
    ax2.set_ylabel("empirical base pass rate")
    ax2.grid(False)
    h2, _ = ax2.get_legend_handles_labels()
    ax.legend(handles=route_handles + h2, fontsize=7, loc="upper right")
    budget = plan.get("budget")
    ax.set_title(f"Triage map: {style.label(plan['method'])} @ {budget}")
    fig.tight_layout()
    return style.save_figure(fig, stem, data)


def pick_trace(traces: Sequence[dict]) -> dict:
    """A deterministic showcase trace: the first with a reflection word and a pivot,
    else the first with a pivot, else the first."""
    for cond in (lambda t: t.get("lexical_reflections", 0) > 0 and t.get("n_pivots", 0) > 0,
                 lambda t: t.get("n_pivots", 0) > 0, lambda t: True):
        for t in traces:
            if cond(t):
                return t
    raise ValueError("no traces")


def trace_pivots(traces_jsonl, tokenizer_dir, stem: str | Path) -> list[Path]:
    """One trace's per-token dynamics score with its pivots marked."""
    from transformers import AutoTokenizer

    plt = style.setup()
    traces = read_jsonl(traces_jsonl, required={"id": str, "k": int, "token_ids": list,
                                                "dynamics_score": list, "pivots": list},
                        unique=("id", "k"))
    t = pick_trace(traces)
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    tokens = tok.convert_ids_to_tokens(t["token_ids"])
    score = np.asarray(t["dynamics_score"], dtype=float)
    n = min(len(tokens), len(score))
    data = pd.DataFrame({"id": t["id"], "k": t["k"], "position": np.arange(n), "token": tokens[:n],
                         "score": score[:n], "pivot": np.isin(np.arange(n), t["pivots"])})
    fig, ax = plt.subplots(figsize=(max(6.0, 0.22 * n), 3.6))
    ax.plot(data["position"], data["score"], color=style.color("pivottrace"), lw=1.2, marker=".")
    piv = data[data["pivot"]]
    ax.scatter(piv["position"], piv["score"], s=80, facecolors="none", edgecolors="black",
               lw=1.5, zorder=3, label=f"pivots ({len(piv)})")
    ax.set_xticks(data["position"])
    ax.set_xticklabels(data["token"], rotation=90, fontsize=7)
    ax.set_ylabel("dynamics score")
    ax.set_title(f"Pool trace {t['id']} #{t['k']}: attention dynamics and pivots")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return style.save_figure(fig, stem, data)


def pick_plan(record_paths: Sequence[Path]) -> Path:
    """The plan drawn in the triage map: PivotTrace at ``auto`` (else its first budget), seed 0."""
    runs = sorted((Path(p).parent for p in record_paths if Path(p).parts[-4] == "pivottrace"),
                  key=lambda d: (d.parts[-2] != "auto", d.parts[-2], d.parts[-1]))
    if not runs:
        raise ValueError("no pivottrace run among the records; the triage map needs one")
    return runs[0] / "plan.json"


def all_figures(record_paths: Sequence[Path], scores_csv, oracle_csv, traces_jsonl, tokenizer_dir,
                out_dir: str | Path, headline_budgets: Sequence[str] | None = None) -> list[Path]:
    """CLI entry: every figure of this module into ``out_dir``."""
    out = Path(out_dir)
    records = load_records(list(record_paths))
    paths = efficiency(records, out / "efficiency")
    paths += convergence(records, out / "convergence", headline_budgets)
    paths += triage_map(scores_csv, oracle_csv, pick_plan(record_paths), out / "triage_map")
    paths += trace_pivots(traces_jsonl, tokenizer_dir, out / "trace_pivots")
    return paths
