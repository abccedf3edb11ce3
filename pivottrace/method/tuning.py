"""Choose the pivot definition on the dev split (never on pool or test).

The paper does not publish which attention statistic, layers, threshold or
window define a pivot. Rather than fix them by hand, rule ``tune_pivots``
samples ``K`` traces per *dev* prompt from the base model under the streaming
tracer (every layer traced once), recomputes pivot density for every
combination of the ``pivot_tuning`` grid from those same traces, and scores
each combination by its AUROC for predicting the base model's failure on the
dev prompt (sampled pass rate below ``failure_threshold``; dev answers are
labeled and may be used to tune). The best combination is written to a small
JSON file that the pool ``score`` rule reads; the whole sweep is written as a
CSV (the tau/window/layer/score ablation, on dev).

The dev split is disjoint from pool and test (``pivottrace.data.splits.check_disjoint``),
so the pool calibration AUROC of the chosen setting is an out-of-sample check.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from pivottrace.core.io import read_json, write_json
from pivottrace.method.pivots import (
    dynamics_score,
    pivot_density,
    pivot_z,
    pivots_from_z,
    prompt_uncertainty,
)

log = logging.getLogger(__name__)

PIVOT_KEYS = ("score", "layers", "tau", "window")
"""Keys of the ``scoring`` section that a pivot choice overrides."""

SWEEP_COLUMNS = ["score", "layers", "tau", "window", "dev_auroc", "n_distinct", "frac_nonzero",
                 "mean_density", "rank"]


def grid(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every combination of the ``pivot_tuning`` grid, in config order.

    ``layers`` entries are ``"all"`` or one layer index.

    Examples:
        >>> [g["layers"] for g in grid({"scores": ["shift"], "layers": ["all", 2],
        ...                             "taus": [2.0], "windows": [3]})]
        ['all', [2]]
    """
    out = []
    for score, layers, tau, window in itertools.product(spec["scores"], spec["layers"],
                                                        spec["taus"], spec["windows"]):
        out.append({"score": score, "layers": layers if layers == "all" else [int(layers)],
                    "tau": float(tau), "window": int(window)})
    if not out:
        raise ValueError("pivot_tuning grid is empty")
    return out


def _densities(traces: Sequence[Mapping], combos: Sequence[Mapping], min_tokens: int) -> np.ndarray:
    """Pivot density of every trace under every combination, shape (n_combos, n_traces).

    The robust z of a trace depends only on (score, layers), so
    :func:`~pivottrace.method.pivots.pivot_z` runs once per pair and
    :func:`~pivottrace.method.pivots.pivots_from_z` once per (tau, window).
    """
    out = np.zeros((len(combos), len(traces)))
    z_cache: dict[tuple, list[np.ndarray | None]] = {}
    for c, params in enumerate(combos):
        layers = None if params["layers"] == "all" else params["layers"]
        key = (params["score"], None if layers is None else tuple(layers))
        if key not in z_cache:
            z_cache[key] = [pivot_z(dynamics_score(t["stats"], score=key[0], layers=layers),
                                    min_tokens=min_tokens) for t in traces]
        for j, (t, z) in enumerate(zip(traces, z_cache[key])):
            n = len(pivots_from_z(z, tau=params["tau"], window=params["window"]))
            out[c, j] = pivot_density(n, t["n_tokens"])
    return out


def sweep(traces: Sequence[Mapping], failure: Mapping[str, int], combos: Sequence[Mapping],
          min_tokens: int) -> pd.DataFrame:
    """AUROC of mean pivot density (per prompt) for ``failure`` under each combination.

    Args:
        traces: records with ``id``, ``n_tokens`` and ``stats`` (all layers traced).
        failure: ``id -> 1`` when the base model fails the prompt, else 0.
        combos: pivot settings from :func:`grid`.
        min_tokens: ``scoring.min_tokens``.
    Returns:
        :data:`SWEEP_COLUMNS`, best first (ties keep grid order). A constant
        density gets AUROC 0.5; every AUROC is NaN when the dev prompts are all
        failures or all successes.
    """
    ids = sorted({t["id"] for t in traces})
    members: dict[str, list[int]] = defaultdict(list)
    for j, t in enumerate(traces):
        members[t["id"]].append(j)
    y = np.array([failure[i] for i in ids])
    defined = len(np.unique(y)) == 2
    dens = _densities(traces, combos, min_tokens)
    rows = []
    for params, d in zip(combos, dens):
        u = np.array([prompt_uncertainty(d[members[i]]) for i in ids])
        auroc = (float(roc_auc_score(y, u)) if np.ptp(u) > 0 else 0.5) if defined else math.nan
        rows.append({"score": params["score"],
                     "layers": "all" if params["layers"] == "all" else str(params["layers"][0]),
                     "tau": params["tau"], "window": params["window"], "dev_auroc": auroc,
                     "n_distinct": int(len(np.unique(np.round(u, 9)))),
                     "frac_nonzero": float(np.mean(u > 0)), "mean_density": float(u.mean())})
    df = pd.DataFrame(rows)
    df = df.sort_values("dev_auroc", ascending=False, kind="stable").reset_index(drop=True)
    df["rank"] = np.arange(1, len(df) + 1)
    return df[SWEEP_COLUMNS]


def choice_from_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """The ``scoring`` overrides (:data:`PIVOT_KEYS`) of one sweep row."""
    layers = row["layers"]
    return {"score": str(row["score"]), "layers": "all" if layers == "all" else [int(layers)],
            "tau": float(row["tau"]), "window": int(row["window"])}


def tune_and_write(cfg: Mapping[str, Any], model_dir, dev_path, out_csv, out_json) -> dict:
    """CLI entry: score the dev split, sweep the grid, write the sweep CSV and the choice JSON."""
    from pivottrace.data.pool import PoolItem, UnlabeledPool
    from pivottrace.data.splits import load_labeled
    from pivottrace.data.verifiers import get_verifier
    from pivottrace.method.scoring import score_pool, write_csv

    spec = cfg["pivot_tuning"]
    dev = load_labeled(dev_path)
    # The rollouts see prompts only; dev answers are used after the fact to label failure.
    pool = UnlabeledPool(tuple(PoolItem(r["id"], r["prompt"], r["difficulty"]) for r in dev))
    scoring = {**cfg["scoring"], "layers": "all", "seed": int(spec["seed"])}
    _, traces = score_pool(model_dir, pool, {**cfg, "scoring": scoring}, return_stats=True)
    verifier = get_verifier(cfg["task"]["verifier"])
    gold = {r["id"]: r["answer"] for r in dev}
    passes: dict[str, list[bool]] = defaultdict(list)
    for t in traces:
        passes[t["id"]].append(bool(verifier.verify(t["completion"], gold[t["id"]])))
    failure = {i: int(np.mean(p) < spec["failure_threshold"]) for i, p in passes.items()}
    df = sweep(traces, failure, grid(spec), cfg["scoring"]["min_tokens"])
    best = df.iloc[0]
    if np.isnan(best["dev_auroc"]):  # tiny dev sets: nothing to rank by; keep the config's values
        log.warning("dev failures are all equal; keeping scoring.%s as configured", PIVOT_KEYS)
        chosen = {k: cfg["scoring"][k] for k in PIVOT_KEYS}
    else:
        chosen = choice_from_row(best)
    choice = {**chosen, "dev_auroc": float(best["dev_auroc"]),
              "dev_failure_rate": float(np.mean(list(failure.values()))),
              "n_dev": len(dev), "n_combinations": len(df), "split": str(dev_path)}
    log.info("pivot choice on dev: %s", choice)
    write_csv(df, out_csv)
    write_json(out_json, choice)
    return choice


def apply_choice(cfg: Mapping[str, Any], choice_path: str | Path | None) -> dict[str, Any]:
    """``cfg`` with the ``scoring`` pivot keys replaced by a tuned choice (if given)."""
    if choice_path is None:
        return dict(cfg)
    choice = read_json(choice_path)
    missing = [k for k in PIVOT_KEYS if k not in choice]
    if missing:
        raise ValueError(f"{choice_path}: pivot choice lacks {missing}")
    return {**cfg, "scoring": {**cfg["scoring"], **{k: choice[k] for k in PIVOT_KEYS}}}
