"""READS LABELS. The oracle upper bound: pass rate and learnability p(1-p) of the scored pool traces.

Used only by the ``oracle_learnability`` baseline (flagged ``uses_labels``) and
by analysis (calibration, figures); never by label-free selection. Gold
answers come through :class:`~pivottrace.labeled.oracle.AnnotationOracle`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from pivottrace.core.io import DataError
from pivottrace.data.verifiers import get_verifier
from pivottrace.labeled.oracle import AnnotationOracle
from pivottrace.method.scoring import read_traces, write_csv

ORACLE_COLUMNS = ("id", "oracle_learnability", "pass_rate")
"""Columns of the oracle table."""


def pass_rates_and_learnability(traces_answers: Iterable[Mapping[str, Any]], oracle,
                        verifier: str = "modchain") -> pd.DataFrame:
    """READS LABELS. Pass rate p and learnability p(1-p) of each prompt's K traces.

    An upper bound used only by the ``oracle_learnability`` baseline (flagged
    ``uses_labels``) and by analysis; never by label-free selection.

    Args:
        traces_answers: trace records with ``id`` and ``completion`` (as
            written by :func:`score_and_write`).
        oracle: an :class:`~pivottrace.labeled.oracle.AnnotationOracle` whose budget
            covers every id (each distinct id costs one query).
        verifier: verifier name; a trace passes when ``verify(completion, gold)``.
    Returns:
        DataFrame with :data:`ORACLE_COLUMNS`, one row per id in first-seen order.
    """
    ver = get_verifier(verifier)
    by_id: dict[str, list[str]] = {}
    for r in traces_answers:
        by_id.setdefault(r["id"], []).append(r["completion"])
    gold = oracle.annotate(list(by_id))
    rows = []
    for pid, completions in by_id.items():
        p = float(np.mean([bool(ver.verify(c, gold[pid])) for c in completions]))
        rows.append({"id": pid, "oracle_learnability": p * (1.0 - p), "pass_rate": p})
    return pd.DataFrame(rows, columns=list(ORACLE_COLUMNS))


def write_oracle_scores(cfg: Mapping[str, Any], traces_jsonl, gold_path, out_csv) -> pd.DataFrame:
    """READS LABELS. CLI entry: oracle pass rate / learnability of the scored traces -> CSV.

    Opens ``gold_path`` only through :class:`~pivottrace.labeled.oracle.AnnotationOracle`
    with a budget of exactly the number of scored prompts. Output (e.g.
    ``results/scores/pool_oracle.csv``) is kept apart from the label-free
    scores table.
    """
    traces = read_traces(traces_jsonl)
    n_ids = len({r["id"] for r in traces})
    oracle = AnnotationOracle(gold_path, max_queries=n_ids)
    verifier = dict((cfg or {}).get("task") or {}).get("verifier", "modchain")
    df = pass_rates_and_learnability(traces, oracle, verifier=verifier)
    if len(df) != n_ids:  # pragma: no cover - defensive
        raise DataError(f"{traces_jsonl}: {len(df)} oracle rows for {n_ids} ids")
    write_csv(df, out_csv)
    return df
