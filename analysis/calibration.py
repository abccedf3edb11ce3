"""How well does each uncertainty estimator predict the base model's failures on the pool?

USES LABELS (analysis only): reads the oracle table written by
:func:`pivottrace.labeled.oracle_scores.write_oracle_scores` (``pass_rate`` from gold
answers). Nothing here feeds selection.

Inputs (joined on ``id``; the two id sets must be equal):

* the label-free scores table (``results/scores/pool_scores.csv``; columns of
  :data:`pivottrace.method.scoring.SCORE_COLUMNS`), every estimator oriented
  "higher = more uncertain" (``neg_self_certainty``, not ``self_certainty``);
* the oracle table (``results/scores/pool_oracle.csv``: ``id``,
  ``oracle_learnability``, ``pass_rate``).

Failure label. **Primary: a prompt is a failure when its pass rate over the K
base-model samples is below 0.5** (``pass_rate < 0.5``: the base model is wrong
on most of its samples; exactly 0.5 counts as success). As a secondary column
``auroc_unsolved`` uses ``pass_rate == 0`` (never solved in K samples). Caveat:
the pass rate and the label-free estimators come from the *same* K traces, so
agreement-type estimators (``majority_disagreement``) share sampling noise with
the label.

Per estimator (:func:`calibration`, ``results/calibration.csv``):

* ``auroc``: ``sklearn.metrics.roc_auc_score(failure, estimator)``; NaN with a
  ``note`` when the pool has a single class (all or no failures).
* ``auroc_unsolved``: the same for ``pass_rate == 0``.
* ``spearman_rho``/``spearman_p``: ``scipy.stats.spearmanr(estimator,
  pass_rate)``; a good uncertainty estimator has rho < 0. NaN (with a note)
  for a constant estimator.

Reliability (:func:`reliability_bins`, ``results/calibration_bins.csv``): each
estimator is cut into ``n_bins`` quantile bins (``pandas.qcut``; tied values
always share a bin, so heavily tied estimators get fewer bins); per bin the
empirical failure rate, its 95% Wilson interval, the mean pass rate, and
``quantile_mid``, the mean rank percentile of the bin's prompts (x axis).

``oracle_learnability`` (``p(1-p)`` from gold) READS LABELS and is flagged
``uses_labels`` in both tables and in the figure. It measures learnability,
not failure: it is 0 both for never- and always-solved prompts, so its failure
AUROC is not what it is an upper bound of; it is listed for completeness.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from scipy.stats import binomtest
from sklearn.metrics import roc_auc_score

from pivottrace.core.io import DataError, atomic_write

USES_LABELS = True
"""This module reads label-derived data (the oracle pass rate)."""

ESTIMATORS = ("pivot_density", "lexical_reflections", "mean_token_entropy",
              "neg_self_certainty", "majority_disagreement", "oracle_learnability")
"""Estimators compared, each "higher = more uncertain"."""

READS_LABELS = frozenset({"oracle_learnability"})
"""Estimators computed from gold answers (upper bounds, marked in tables and figure)."""

FAILURE_THRESHOLD = 0.5
"""Primary failure label: ``pass_rate < FAILURE_THRESHOLD``."""

N_BINS = 5

SUMMARY_COLUMNS = ["estimator", "uses_labels", "n", "n_failures", "failure_rate", "auroc",
                   "auroc_unsolved", "spearman_rho", "spearman_p", "note"]
ALIGNMENT_TARGETS = ("reflection", "first_error")
"""Targets of the pivot-alignment columns (``results/pivot_alignment.csv``)."""
ALIGNMENT_TOLERANCE = 1
"""Tolerance in tokens of the alignment columns and of claim (e)."""
ALIGNMENT_METRICS = ("precision", "recall", "precision_lift", "recall_lift")
ALIGNMENT_COLUMNS = [f"{t}_{m}" for t in ALIGNMENT_TARGETS for m in ALIGNMENT_METRICS]
"""Pivot alignment beside the AUROCs: filled on the ``pivot_density`` row only (NaN elsewhere)."""
BIN_COLUMNS = ["estimator", "uses_labels", "bin", "n", "lo", "hi", "mean_estimate",
               "quantile_mid", "failure_rate", "failure_rate_lo", "failure_rate_hi",
               "mean_pass_rate"]


def display_name(estimator: str) -> str:
    """Label used in the figure: label-reading estimators say so."""
    return f"{estimator} (reads labels)" if estimator in READS_LABELS else estimator


def _read(table, name: str) -> pd.DataFrame:
    if isinstance(table, pd.DataFrame):
        df = table.copy()
        df.attrs.setdefault("path", name)
        return df
    try:
        df = pd.read_csv(table, dtype={"id": str})
    except FileNotFoundError:
        raise DataError(f"{table}: file not found") from None
    df.attrs["path"] = str(table)
    return df


def load_merged(scores, oracle, estimators: Sequence[str] = ESTIMATORS) -> pd.DataFrame:
    """Join the scores and oracle tables on ``id`` (paths or DataFrames).

    Returns:
        One row per prompt: ``id``, the estimator columns, ``pass_rate``, ``failure``
        (primary label) and ``unsolved`` (``pass_rate == 0``), sorted by id.
    Raises:
        DataError: a missing column, duplicate ids, ids present in one table
            only, or a pass rate outside [0, 1].
    """
    s, o = _read(scores, "scores"), _read(oracle, "oracle")
    for df, need in ((o, ["id", "pass_rate", "oracle_learnability"]),
                     (s, ["id"] + [e for e in estimators if e != "oracle_learnability"])):
        missing = [c for c in need if c not in df.columns]
        if missing:
            raise DataError(f"{df.attrs['path']}: missing column(s) {missing}")
        if df["id"].duplicated().any():
            raise DataError(f"{df.attrs['path']}: duplicate id {df['id'][df['id'].duplicated()].iloc[0]!r}")
    only_s = sorted(set(s["id"]) - set(o["id"]))
    only_o = sorted(set(o["id"]) - set(s["id"]))
    if only_s or only_o:
        raise DataError(f"{s.attrs['path']} / {o.attrs['path']}: id sets differ "
                        f"({len(only_s)} only in scores, e.g. {only_s[:3]}; "
                        f"{len(only_o)} only in oracle, e.g. {only_o[:3]})")
    s = s.drop(columns=[c for c in ("oracle_learnability", "pass_rate") if c in s.columns])
    df = s.merge(o[["id", "pass_rate", "oracle_learnability"]], on="id").sort_values("id")
    p = df["pass_rate"].astype(float)
    if not p.between(0, 1).all():
        raise DataError(f"{o.attrs['path']}: field 'pass_rate' outside [0, 1]")
    df["failure"] = (p < FAILURE_THRESHOLD).astype(int)
    df["unsolved"] = (p == 0).astype(int)
    return df.reset_index(drop=True)


def _auroc(y: np.ndarray, x: np.ndarray) -> float:
    return float(roc_auc_score(y, x)) if len(np.unique(y)) == 2 else math.nan


def calibration(scores_csv, oracle_csv, estimators: Sequence[str] = ESTIMATORS) -> pd.DataFrame:
    """Per-estimator AUROC for base-model failure and Spearman correlation with pass rate.

    Args:
        scores_csv: the label-free scores table (path or DataFrame).
        oracle_csv: the oracle table (path or DataFrame); READS LABELS.
        estimators: columns to evaluate.
    Returns:
        DataFrame with :data:`SUMMARY_COLUMNS`, one row per estimator in the
        given order.
    """
    df = load_merged(scores_csv, oracle_csv, estimators)
    y, y0 = df["failure"].to_numpy(), df["unsolved"].to_numpy()
    p = df["pass_rate"].to_numpy(float)
    rows = []
    for est in estimators:
        x = df[est].to_numpy(float)
        ok = np.isfinite(x)
        notes = []
        if not ok.all():
            notes.append(f"{int((~ok).sum())} non-finite values dropped")
        xs, ys, y0s, ps = x[ok], y[ok], y0[ok], p[ok]
        auroc, auroc0 = _auroc(ys, xs), _auroc(y0s, xs)
        if math.isnan(auroc):
            notes.append("single class (pass_rate<0.5 for all or none): AUROC undefined")
        if math.isnan(auroc0) and not math.isnan(auroc):
            notes.append("single class for pass_rate==0: auroc_unsolved undefined")
        if len(xs) < 3 or np.ptp(xs) == 0 or np.ptp(ps) == 0:
            rho, pval = math.nan, math.nan
            notes.append("constant input: Spearman undefined")
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = stats.spearmanr(xs, ps)
            rho, pval = float(res.statistic), float(res.pvalue)
        if est in READS_LABELS:
            notes.append("reads labels (upper bound; measures learnability p(1-p), not failure)")
        rows.append({"estimator": est, "uses_labels": est in READS_LABELS, "n": int(ok.sum()),
                     "n_failures": int(ys.sum()),
                     "failure_rate": float(ys.mean()) if len(ys) else math.nan,
                     "auroc": auroc, "auroc_unsolved": auroc0, "spearman_rho": rho,
                     "spearman_p": pval, "note": "; ".join(notes)})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def _quantile_bins(x: pd.Series, n_bins: int) -> np.ndarray:
    if x.nunique() <= 1:
        return np.zeros(len(x), dtype=int)
    return pd.qcut(x, q=n_bins, labels=False, duplicates="drop").to_numpy(int)


def reliability_bins(scores_csv, oracle_csv, n_bins: int = N_BINS,
                     estimators: Sequence[str] = ESTIMATORS) -> pd.DataFrame:
    """Empirical failure rate per quantile bin of each estimator (the reliability curve).

    Returns:
        DataFrame with :data:`BIN_COLUMNS`; bins numbered from 0 (least
        uncertain) per estimator, ties never split (so possibly fewer than
        ``n_bins`` bins).
    """
    if n_bins < 1:
        raise ValueError("n_bins must be >= 1")
    df = load_merged(scores_csv, oracle_csv, estimators)
    rows = []
    for est in estimators:
        d = df[np.isfinite(df[est].astype(float))]
        if d.empty:
            continue
        x = d[est].astype(float)
        pct = ((x.rank(method="average") - 0.5) / len(x)).to_numpy()
        bins = _quantile_bins(x, n_bins)
        for b in np.unique(bins):
            m = bins == b
            f = d["failure"].to_numpy()[m]
            rate = float(f.mean())
            ci = binomtest(int(f.sum()), int(m.sum())).proportion_ci(0.95, method="wilson")
            rows.append({"estimator": est, "uses_labels": est in READS_LABELS, "bin": int(b),
                         "n": int(m.sum()), "lo": float(x[m].min()), "hi": float(x[m].max()),
                         "mean_estimate": float(x[m].mean()), "quantile_mid": float(pct[m].mean()),
                         "failure_rate": rate,
                         "failure_rate_lo": float(ci.low), "failure_rate_hi": float(ci.high),
                         "mean_pass_rate": float(d["pass_rate"].to_numpy(float)[m].mean())})
    return pd.DataFrame(rows, columns=BIN_COLUMNS)


def _write_csv(df: pd.DataFrame, path) -> None:
    with atomic_write(path) as fh:
        df.to_csv(fh, index=False, lineterminator="\n")


def figure_data(summary: pd.DataFrame, bins: pd.DataFrame) -> pd.DataFrame:
    """The long table a calibration figure is drawn from (written beside it).

    Columns: ``panel`` (``auroc`` | ``reliability``), ``estimator``, ``label``,
    ``uses_labels``, ``x`` (bin quantile midpoint; NaN for AUROC), ``y``
    (AUROC or failure rate), ``ylo``/``yhi`` (95% Wilson interval of the failure
    rate, which unlike the Wald error is not zero at rates 0 and 1; NaN for AUROC), ``n``.
    """
    a = pd.DataFrame({"panel": "auroc", "estimator": summary["estimator"],
                      "label": summary["estimator"].map(display_name),
                      "uses_labels": summary["uses_labels"].astype(bool), "x": math.nan,
                      "y": summary["auroc"], "ylo": math.nan, "yhi": math.nan,
                      "n": summary["n"]})
    r = pd.DataFrame({"panel": "reliability", "estimator": bins["estimator"],
                      "label": bins["estimator"].map(display_name),
                      "uses_labels": bins["uses_labels"].astype(bool), "x": bins["quantile_mid"],
                      "y": bins["failure_rate"], "ylo": bins["failure_rate_lo"],
                      "yhi": bins["failure_rate_hi"], "n": bins["n"]})
    return pd.concat([a, r], ignore_index=True)


def plot_calibration(summary_csv, bins_csv, out_png_pdf_stem) -> list[Path]:
    """Two panels: AUROC per estimator (bars) and reliability curves; PNG + PDF + CSV.

    Args:
        summary_csv: :func:`calibration` output (path or DataFrame).
        bins_csv: :func:`reliability_bins` output (path or DataFrame).
        out_png_pdf_stem: output path without suffix; writes ``.png``, ``.pdf``
            and ``.csv`` (the plotted data, :func:`figure_data`).
    Returns:
        The three paths written.
    """
    import seaborn as sns

    from analysis.style import save_figure, setup

    plt = setup()
    summary = summary_csv if isinstance(summary_csv, pd.DataFrame) else pd.read_csv(summary_csv)
    bins = bins_csv if isinstance(bins_csv, pd.DataFrame) else pd.read_csv(bins_csv)
    data = figure_data(summary, bins)
    stem = Path(out_png_pdf_stem)
    order = list(summary["estimator"])
    palette = dict(zip(order, sns.color_palette("colorblind", len(order))))

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1, 1.2]})
    a = data[data["panel"] == "auroc"].reset_index(drop=True)
    sns.barplot(data=a.assign(y=a["y"].fillna(0.0)), x="y", y="label", hue="estimator",
                palette=palette, legend=False, orient="h", ax=ax1)
    for k, row in a.iterrows():
        patch = ax1.patches[k] if k < len(ax1.patches) else None
        if row["uses_labels"] and patch is not None:
            patch.set_hatch("//")
            patch.set_edgecolor("black")
        text = "n/a" if pd.isna(row["y"]) else f"{row['y']:.2f}"
        ax1.text((0 if pd.isna(row["y"]) else row["y"]) + 0.01, k, text, va="center", fontsize=8)
    ax1.axvline(0.5, color="grey", ls="--", lw=1)
    ax1.set_xlim(0, 1.08)
    ax1.set_xlabel(f"AUROC for base-model failure (pass rate < {FAILURE_THRESHOLD:g})")
    ax1.set_ylabel("")
    ax1.set_title("Failure prediction")

    r = data[data["panel"] == "reliability"]
    for est in order:
        d = r[r["estimator"] == est].sort_values("x")
        if d.empty:
            continue
        labels_ = est in READS_LABELS
        ax2.errorbar(d["x"], d["y"], yerr=[d["y"] - d["ylo"], d["yhi"] - d["y"]], color=palette[est], marker="o",
                     ls=":" if labels_ else "-", capsize=2, lw=1.4, ms=4, label=display_name(est))
    if len(summary) and not summary["failure_rate"].isna().all():
        ax2.axhline(float(summary["failure_rate"].iloc[0]), color="grey", ls="--", lw=1,
                    label="pool failure rate")
    ax2.set_xlim(0, 1)
    ax2.set_ylim(-0.02, 1.02)
    ax2.set_xlabel("uncertainty quantile (bin midpoint; low = confident)")
    ax2.set_ylabel("empirical failure rate")
    ax2.set_title("Reliability")
    ax2.legend(fontsize=7, loc="best")
    fig.tight_layout()

    return save_figure(fig, stem, data)


def with_alignment(summary: pd.DataFrame, alignment_csv) -> pd.DataFrame:
    """``summary`` with :data:`ALIGNMENT_COLUMNS` from the pivot-alignment table.

    Precision and recall of attention pivots against reflection tokens and against the
    step where a trace first goes wrong, at :data:`ALIGNMENT_TOLERANCE` tokens, and each
    one's lift over pivots placed at random at the same density (:mod:`analysis.alignment`).
    They describe pivot density's pivots, so only that row is filled; a target the table
    lacks (e.g. ``first_error`` on free text) stays NaN.

    Raises:
        DataError: the alignment table lacks a column or the tolerance.
    """
    df = pd.read_csv(alignment_csv)
    if missing := {"target", "tolerance", *ALIGNMENT_METRICS} - set(df.columns):
        raise DataError(f"{alignment_csv}: missing column(s) {sorted(missing)}")
    at = df[df.tolerance == ALIGNMENT_TOLERANCE].set_index("target")
    if at.empty:
        raise DataError(f"{alignment_csv}: no row at tolerance {ALIGNMENT_TOLERANCE}")
    out = summary.copy()
    pivots = out.estimator == "pivot_density"
    for target in ALIGNMENT_TARGETS:
        for metric in ALIGNMENT_METRICS:
            col = f"{target}_{metric}"
            out[col] = math.nan
            if target in at.index:
                out.loc[pivots, col] = float(at.loc[target, metric])
    return out


def calibration_and_write(scores_csv, oracle_csv, out_csv, out_bins_csv, fig_stem,
                          n_bins: int = N_BINS,
                          alignment_csv=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """CLI entry: ``results/calibration.csv``, ``results/calibration_bins.csv`` and the figure.

    With ``alignment_csv`` (``results/pivot_alignment.csv``) the summary also carries
    :data:`ALIGNMENT_COLUMNS` (:func:`with_alignment`). Writes everything atomically;
    returns ``(summary, bins)``.
    """
    summary = calibration(scores_csv, oracle_csv)
    if alignment_csv is not None:
        summary = with_alignment(summary, alignment_csv)
    bins = reliability_bins(scores_csv, oracle_csv, n_bins=n_bins)
    _write_csv(summary, out_csv)
    _write_csv(bins, out_bins_csv)
    plot_calibration(summary, bins, fig_stem)
    return summary, bins


__all__ = ["ALIGNMENT_COLUMNS", "ALIGNMENT_TOLERANCE", "BIN_COLUMNS", "ESTIMATORS",
           "FAILURE_THRESHOLD", "READS_LABELS", "SUMMARY_COLUMNS", "USES_LABELS", "calibration",
           "calibration_and_write", "display_name", "figure_data", "load_merged",
           "plot_calibration", "reliability_bins", "with_alignment"]
