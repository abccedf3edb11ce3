"""Per-prompt uncertainty scores of the unlabeled pool, all from the same rollouts.

:func:`score_pool` samples ``K`` traces per pool prompt from the base model
under :class:`~pivottrace.method.trace.StreamingTracer` (attention dynamics) with
``output_logits=True`` (the raw next-token logits of every step), and computes
every label-free estimator of DESIGN.md section 2 on those same traces:

==========================  ==================================================
column                      per trace, then mean over the prompt's K traces
==========================  ==================================================
``pivot_density``           attention pivots per generated token
                            (:mod:`pivottrace.method.pivots`)
``lexical_reflections``     reflection words in the completion
                            (:func:`pivottrace.testbed.modchain.count_reflections`)
``mean_token_entropy``      mean over tokens of H(p_t) (nats), p_t = softmax of
                            the raw logits (temperature 1, whatever the
                            sampling temperature)
``self_certainty``          mean over tokens of KL(U || p_t) (Intuitor); higher
                            = more *confident*
``neg_self_certainty``      ``-self_certainty``, so that every estimator column
                            except ``self_certainty`` reads "higher = more
                            uncertain"
``majority_disagreement``   per prompt: ``1 - (votes of the majority answer)/K``;
                            a trace without an extracted answer (None) is its
                            own one-vote, non-matching answer
==========================  ==================================================

Self-certainty (Zhao et al. 2025, "Learning to Reason without External
Rewards", Intuitor). For a next-token distribution ``p`` over a vocabulary of
size ``V`` and the uniform ``U = 1/V``::

    KL(U || p) = sum_j (1/V) log((1/V) / p_j)
               = -log V - (1/V) sum_j log p_j
               = -log V - mean_j log p_j            (>= 0, = 0 iff p = U)

and the trace's self-certainty is its mean over the generated tokens
(Intuitor's ``-1/(|o| V) sum_i sum_j log(V p(j | q, o_<i))``). ``V`` is the
width of the model's logits (special tokens included). Computed from
``log_softmax`` of the raw logits in float32, averaged in float64.

Generated tokens of a trace are those up to and including the first EOS
(:func:`pivottrace.method.trace.generated_lengths`); every per-token measure (pivots,
entropy, self-certainty) and ``n_tokens`` uses exactly those tokens. The
completion text is their decoding without special tokens.

Label firewall: nothing here reads gold answers; ``score_pool`` takes an
:class:`~pivottrace.data.pool.UnlabeledPool` and the scores table has no
label-derived column. The oracle upper bound (pass rate, p(1-p)) is computed
from the per-trace file this module writes by
:mod:`pivottrace.labeled.oracle_scores`, into a separate file.

Config: the ``scoring`` section (keys and bounds in ``pivottrace/core/schema.yaml``); the verifier comes from ``task.verifier`` and the lexical
counter from ``task.name``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from pivottrace.core.config import validate_section
from pivottrace.core.io import atomic_write, read_jsonl, write_jsonl
from pivottrace.data.pool import UnlabeledPool, load_pool
from pivottrace.data.verifiers import get_verifier
from pivottrace.method.estimators import (
    lexical_counter,
    majority_disagreement,
    token_entropy_and_self_certainty,
)
from pivottrace.method.pivots import (
    dynamics_score,
    find_pivots,
    pivot_density,
    prompt_uncertainty,
)
from pivottrace.sampling import decode, sample_batches

DEFAULT_SCORING: dict[str, Any] = {
    "K": 8,
    "max_new_tokens": 128,
    "batch_size": 64,
    "temperature": 1.0,
    "layers": "all",
    "score": "shift",
    "tau": 3.0,
    "window": 3,
    "min_tokens": 8,
    "seed": 0,
}
"""Defaults of the ``scoring`` section for calls without a config; every key and its bounds
are described in ``pivottrace/core/schema.yaml`` (the one place that checks them)."""

SCORE_COLUMNS = ("id", "pivot_density", "lexical_reflections", "mean_token_entropy",
                 "self_certainty", "neg_self_certainty", "majority_disagreement")
"""Columns of the scores table, in order (one row per pool prompt, pool order)."""

_LABEL_HINTS = ("answer", "gold", "label", "pass", "oracle", "correct", "solution")


# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------


def scoring_config(cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``scoring`` section of a full config merged over :data:`DEFAULT_SCORING`, validated.

    Raises:
        ConfigError: an unknown key or an out-of-range value (bounds from the schema).
    """
    section = {**DEFAULT_SCORING, **dict((cfg or {}).get("scoring") or {})}
    return validate_section("scoring", section)


# ---------------------------------------------------------------------------
# Rollouts + per-trace measures
# ---------------------------------------------------------------------------


def _round_list(x: np.ndarray, nd: int = 5) -> list[float]:
    return [round(float(v), nd) for v in np.asarray(x, dtype=np.float64)]


def score_traces(model, tokenizer, pool: UnlabeledPool, cfg: Mapping[str, Any] | None = None, *,
                 progress: bool = True, return_stats: bool = False) -> list[dict[str, Any]]:
    """Sample ``K`` traces per prompt under the tracer and measure each (module docstring).

    Args:
        model: a Hugging Face causal LM (eval mode is set and restored).
        tokenizer: its tokenizer (padding side set to left for the call).
        pool: the unlabeled pool.
        cfg: the full config (``scoring`` section, ``task.verifier``, ``task.name``).
        progress: show a tqdm bar (sequences, with generated tokens/s).
        return_stats: also attach the raw tracer statistics (``stats``: the
            dict of :meth:`StreamingTracer.result`) and the full-precision
            ``dynamics_score`` array as ``score_array`` (for tests; not JSON).
    Returns:
        One record per trace, sorted by (pool order, k): ``id``, ``k``,
        ``completion``, ``answer`` (extracted, may be None), ``token_ids``
        (generated ids up to and including EOS), ``n_tokens``, ``n_pivots``,
        ``pivots`` (token positions), ``density``, ``lexical_reflections``,
        ``mean_token_entropy``, ``self_certainty``, ``shift`` (layer-mean JS
        shift per token) and ``dynamics_score`` (the thresholded score per
        token), both rounded to 5 decimals.
    """
    sc = scoring_config(cfg)
    task = dict((cfg or {}).get("task") or {})
    verifier = get_verifier(task.get("verifier", "modchain"))
    count_lexical = lexical_counter(task.get("name", "modchain"))
    ids = pool.ids
    records: list[dict[str, Any]] = []
    for batch in sample_batches(model, tokenizer, [item.prompt for item in pool], k=sc["K"],
                                temperature=sc["temperature"], max_new_tokens=sc["max_new_tokens"],
                                batch_size=sc["batch_size"], seed=sc["seed"],
                                trace_layers=sc["layers"], output_logits=True,
                                desc="score" if progress else None):
        ent, cert = token_entropy_and_self_certainty(batch.logits)  # raw logits: temperature 1
        ent, cert = ent.double().cpu().numpy(), cert.double().cpu().numpy()
        for row, i, j, token_ids in batch.rows():
            n, st = len(token_ids), batch.stats[row]
            completion = decode(tokenizer, token_ids)
            score = dynamics_score(st, score=sc["score"])
            piv = find_pivots(score, tau=sc["tau"], window=sc["window"],
                              min_tokens=sc["min_tokens"])
            rec = {
                "id": ids[i], "k": j, "completion": completion,
                "answer": verifier.extract(completion), "token_ids": token_ids, "n_tokens": n,
                "n_pivots": len(piv), "pivots": [int(x) for x in piv],
                "density": float(pivot_density(len(piv), n)),
                "lexical_reflections": int(count_lexical(completion)),
                "mean_token_entropy": float(ent[row, :n].mean()),
                "self_certainty": float(cert[row, :n].mean()),
                "shift": _round_list(st["shift"].mean(axis=1)),
                "dynamics_score": _round_list(score),
            }
            if return_stats:
                rec["stats"], rec["score_array"] = st, score
            records.append(rec)
    order = {pid: i for i, pid in enumerate(ids)}
    records.sort(key=lambda r: (order[r["id"]], r["k"]))
    return records


def aggregate_scores(traces: Iterable[Mapping[str, Any]], ids: Sequence[str]) -> pd.DataFrame:
    """Per-prompt scores table (:data:`SCORE_COLUMNS`, rows in ``ids`` order) from trace records."""
    by_id: dict[str, list[Mapping[str, Any]]] = {pid: [] for pid in ids}
    for r in traces:
        if r["id"] not in by_id:
            raise ValueError(f"trace of unknown id {r['id']!r}")
        by_id[r["id"]].append(r)
    rows = []
    for pid in ids:
        rs = sorted(by_id[pid], key=lambda r: r["k"])
        if not rs:
            raise ValueError(f"prompt {pid!r} has no traces")
        cert = float(np.mean([r["self_certainty"] for r in rs]))
        rows.append({
            "id": pid,
            "pivot_density": prompt_uncertainty([r["density"] for r in rs]),
            "lexical_reflections": float(np.mean([r["lexical_reflections"] for r in rs])),
            "mean_token_entropy": float(np.mean([r["mean_token_entropy"] for r in rs])),
            "self_certainty": cert,
            "neg_self_certainty": -cert,
            "majority_disagreement": majority_disagreement([r["answer"] for r in rs]),
        })
    df = pd.DataFrame(rows, columns=list(SCORE_COLUMNS))
    _assert_label_free(df)
    return df


def _assert_label_free(df: pd.DataFrame) -> None:
    bad = [c for c in df.columns if any(h in c.lower() for h in _LABEL_HINTS)]
    if bad:
        raise RuntimeError(f"scores table must not hold label-derived columns, got {bad}")


def score_pool(model_dir, pool: UnlabeledPool, cfg: Mapping[str, Any] | None = None, *,
               progress: bool = True, return_stats: bool = False
               ) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Label-free uncertainty scores of every pool prompt.

    Args:
        model_dir: a Hugging Face model directory, or a ``(model, tokenizer)`` pair.
        pool: the unlabeled pool (no answers).
        cfg: the full config (``scoring`` section, ``task``); None: all defaults.
    Returns:
        ``(scores, traces)``: the per-prompt table (:data:`SCORE_COLUMNS`, pool
        order) and the per-trace records of :func:`score_traces`.
    """
    if not isinstance(pool, UnlabeledPool):
        raise TypeError(f"score_pool takes an UnlabeledPool, got {type(pool).__name__}")
    if isinstance(model_dir, tuple):
        model, tokenizer = model_dir
    else:
        from pivottrace.core.runtime import load_causal_lm

        model, tokenizer = load_causal_lm(model_dir, cfg)
    traces = score_traces(model, tokenizer, pool, cfg, progress=progress,
                          return_stats=return_stats)
    return aggregate_scores(traces, pool.ids), traces


def read_traces(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a per-trace JSONL written by :func:`score_and_write` (K rows per id).

    Raises:
        DataError: naming the file and row, for invalid JSON or a missing/mistyped
            ``id`` (str), ``k`` (int) or ``completion`` (str), a repeated
            ``(id, k)``, or an empty file.
    """
    return read_jsonl(path, required={"id": str, "k": int, "completion": str}, unique=("id", "k"))


def write_csv(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a table as CSV atomically (no index; ``\\n`` line ends; byte-deterministic)."""
    with atomic_write(path) as fh:
        df.to_csv(fh, index=False, lineterminator="\n")


def _json_trace(r: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in r.items() if k not in ("stats", "score_array")}


def score_and_write(cfg: Mapping[str, Any], model_dir, pool_path, out_csv,
                    out_traces_jsonl) -> pd.DataFrame:
    """CLI entry: score the pool; write the scores CSV and the per-trace JSONL atomically.

    Reads only ``pool_path`` (the answer-free pool) and the model.
    """
    pool = load_pool(pool_path)
    scores, traces = score_pool(model_dir, pool, cfg)
    write_jsonl(out_traces_jsonl, [_json_trace(r) for r in traces])
    write_csv(scores, out_csv)
    return scores


__all__ = ["DEFAULT_SCORING", "SCORE_COLUMNS", "aggregate_scores", "read_traces", "score_and_write",
           "score_pool", "score_traces", "scoring_config", "write_csv"]
