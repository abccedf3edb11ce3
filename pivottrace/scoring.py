"""Per-prompt uncertainty scores of the unlabeled pool, all from the same rollouts.

:func:`score_pool` samples ``K`` traces per pool prompt from the base model
under :class:`~pivottrace.trace.StreamingTracer` (attention dynamics) with
``output_logits=True`` (the raw next-token logits of every step), and computes
every label-free estimator of DESIGN.md section 2 on those same traces:

==========================  ==================================================
column                      per trace, then mean over the prompt's K traces
==========================  ==================================================
``pivot_density``           attention pivots per generated token
                            (:func:`pivottrace.pivots.trace_density`)
``lexical_reflections``     reflection words in the completion
                            (:func:`pivottrace.tasks.modchain.count_reflections`)
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
(:func:`pivottrace.trace.generated_lengths`); every per-token measure (pivots,
entropy, self-certainty) and ``n_tokens`` uses exactly those tokens. The
completion text is their decoding without special tokens.

Label firewall: nothing here before :func:`oracle_learnability` reads gold
answers; ``score_pool`` takes an :class:`~pivottrace.pool.UnlabeledPool` and the
scores table has no label-derived column. :func:`oracle_learnability` /
:func:`write_oracle_scores` READ LABELS (through
:class:`~pivottrace.oracle.AnnotationOracle`, imported only inside them): they
write a separate file (e.g. ``results/scores/pool_oracle.csv``) that only the
``oracle_learnability`` baseline (an upper bound, flagged ``uses_labels``) and
analysis may read.

Config: the ``scoring`` section, defaults in :data:`DEFAULT_SCORING` (keys
documented there); the verifier comes from ``task.verifier`` and the lexical
counter from ``task.name``.
"""

from __future__ import annotations

import math
import os
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from pivottrace.io import DataError, atomic_write, read_jsonl, write_jsonl
from pivottrace.pivots import SCORES, dynamics_score, find_pivots, pivot_density
from pivottrace.pool import UnlabeledPool, load_pool
from pivottrace.tasks import modchain
from pivottrace.trace import StreamingTracer, generated_lengths
from pivottrace.verifiers import get_verifier

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
"""Defaults of the ``scoring`` config section. Keys:

* ``K`` (int >= 1): sampled traces per pool prompt.
* ``max_new_tokens`` (int >= 1): generation length limit per trace.
* ``batch_size`` (int >= 1): sequences per ``generate`` call (the K copies of
  a prompt are separate sequences; batches are filled in prompt-length order).
  Results depend on it (it changes how the RNG stream is consumed).
* ``temperature`` (number > 0): sampling temperature (top-k/top-p off). The
  entropy and self-certainty are always of the temperature-1 distribution.
* ``layers`` (``"all"`` or list of ints, negative from the end): layers traced
  and averaged in the dynamics score.
* ``score`` (``shift`` | ``lookback_drop`` | ``entropy``): dynamics score
  (:func:`pivottrace.pivots.dynamics_score`).
* ``tau`` (number): robust z threshold of a pivot.
* ``window`` (int >= 0): non-maximum suppression half-width in tokens.
* ``min_tokens`` (int >= 1): traces shorter than this have no pivots.
* ``seed`` (int >= 0): seeds sampling (the caller's RNG state is untouched).
"""

SCORE_COLUMNS = ("id", "pivot_density", "lexical_reflections", "mean_token_entropy",
                 "self_certainty", "neg_self_certainty", "majority_disagreement")
"""Columns of the scores table, in order (one row per pool prompt, pool order)."""

ESTIMATORS = ("pivot_density", "lexical_reflections", "mean_token_entropy",
              "neg_self_certainty", "majority_disagreement")
"""Label-free estimator columns, each "higher = more uncertain"."""

ORACLE_COLUMNS = ("id", "oracle_learnability", "pass_rate")
"""Columns of the oracle table (READS LABELS)."""

#: Reflection words of the generic lexical counter (tasks other than modchain).
REFLECTION_WORDS = ("wait", "hmm", "however", "recheck", "re-check", "verify", "alternatively",
                    "mistake", "actually")

_LABEL_HINTS = ("answer", "gold", "label", "pass", "oracle", "correct", "solution")


# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------


def scoring_config(cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``scoring`` section of a full config merged over :data:`DEFAULT_SCORING`.

    Raises:
        ValueError: an unknown key or an out-of-range value.
    """
    section = dict((cfg or {}).get("scoring") or {})
    unknown = sorted(set(section) - set(DEFAULT_SCORING))
    if unknown:
        raise ValueError(f"unknown scoring keys {unknown}; known: {sorted(DEFAULT_SCORING)}")
    out = {**DEFAULT_SCORING, **section}
    for key in ("K", "max_new_tokens", "batch_size", "min_tokens"):
        if isinstance(out[key], bool) or not isinstance(out[key], int) or out[key] < 1:
            raise ValueError(f"scoring.{key} must be an int >= 1, got {out[key]!r}")
    if isinstance(out["window"], bool) or not isinstance(out["window"], int) or out["window"] < 0:
        raise ValueError(f"scoring.window must be an int >= 0, got {out['window']!r}")
    if not isinstance(out["temperature"], (int, float)) or not out["temperature"] > 0:
        raise ValueError(f"scoring.temperature must be > 0, got {out['temperature']!r}")
    if out["score"] not in SCORES:
        raise ValueError(f"scoring.score must be one of {SCORES}, got {out['score']!r}")
    if isinstance(out["tau"], bool) or not isinstance(out["tau"], (int, float)):
        raise ValueError(f"scoring.tau must be a number, got {out['tau']!r}")
    if out["layers"] != "all" and not (isinstance(out["layers"], (list, tuple))
                                       and all(isinstance(x, int) for x in out["layers"])):
        raise ValueError(f"scoring.layers must be 'all' or a list of ints, got {out['layers']!r}")
    return out


def lexical_counter(task_name: str | None):
    """``completion -> int`` reflection counter for a task (modchain: its reflection word)."""
    if task_name in (None, "modchain"):
        return modchain.count_reflections

    def count(completion: str) -> int:
        words = completion.lower().replace(",", " ").replace(".", " ").split()
        return sum(words.count(w) for w in REFLECTION_WORDS)

    return count


# ---------------------------------------------------------------------------
# Estimators on arrays (pure functions, tested by hand)
# ---------------------------------------------------------------------------


def token_entropy_and_self_certainty(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token entropy H(p) and self-certainty KL(U || p) of raw logits, in nats.

    Args:
        logits: (..., V) raw next-token logits (temperature 1).
    Returns:
        ``(entropy, self_certainty)``, each of shape ``logits.shape[:-1]``, float32.
        ``self_certainty = -log V - mean_j log p_j`` (0 for a uniform p).

    Examples:
        >>> h, sc = token_entropy_and_self_certainty(torch.zeros(4))
        >>> round(float(h), 6) == round(math.log(4), 6), abs(float(sc)) < 1e-6
        (True, True)
    """
    logp = torch.log_softmax(logits.float(), dim=-1)
    entropy = -(logp.exp() * logp).sum(-1)
    v = logits.shape[-1]
    self_certainty = -math.log(v) - logp.mean(-1)
    return entropy, self_certainty


def majority_disagreement(answers: Sequence[str | None]) -> float:
    """``1 - (votes of the most frequent answer) / K``; each None is its own one-vote answer.

    Examples:
        >>> majority_disagreement(["7", "7", "3", None])
        0.5
        >>> majority_disagreement([None, None, None, None])
        0.75
        >>> majority_disagreement(["1", "1"])
        0.0
    """
    k = len(answers)
    if k == 0:
        raise ValueError("need at least one answer")
    counts = Counter(a for a in answers if a is not None)
    top = max(counts.values(), default=0)
    return 1.0 - max(top, 1) / k  # all None: K singleton votes


# ---------------------------------------------------------------------------
# Rollouts + per-trace measures
# ---------------------------------------------------------------------------


def _round_list(x: np.ndarray, nd: int = 5) -> list[float]:
    return [round(float(v), nd) for v in np.asarray(x, dtype=np.float64)]


@torch.no_grad()
def score_traces(model, tokenizer, pool: UnlabeledPool, cfg: Mapping[str, Any] | None = None, *,
                 progress: bool = True, return_stats: bool = False) -> list[dict[str, Any]]:
    """Sample ``K`` traces per prompt and measure each (see the module docstring).

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
    device = next(model.parameters()).device
    fork_devices = [device] if device.type == "cuda" else []
    was_training = model.training
    side = tokenizer.padding_side
    model.eval()
    tokenizer.padding_side = "left"
    try:
        with torch.random.fork_rng(devices=fork_devices):
            torch.manual_seed(sc["seed"])
            records = _score(model, tokenizer, pool, sc, verifier, count_lexical, device,
                             progress, return_stats)
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    order = {pid: i for i, pid in enumerate(pool.ids)}
    records.sort(key=lambda r: (order[r["id"]], r["k"]))
    return records


def _score(model, tokenizer, pool, sc, verifier, count_lexical, device, progress, return_stats):
    prompts = [item.prompt for item in pool]
    ids = pool.ids
    lengths = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    jobs = sorted((lengths[i], i, j) for i in range(len(prompts)) for j in range(sc["K"]))
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    records: list[dict[str, Any]] = []
    bar = tqdm(total=len(jobs), desc="score", unit="seq", disable=not progress, mininterval=2.0)
    n_tokens_total, t0 = 0, time.perf_counter()
    for start in range(0, len(jobs), sc["batch_size"]):
        chunk = jobs[start:start + sc["batch_size"]]
        enc = tokenizer([prompts[i] for _, i, _ in chunk], return_tensors="pt", padding=True,
                        add_special_tokens=False).to(device)
        with StreamingTracer(model, layers=sc["layers"],
                             prompt_lengths=[n for n, _, _ in chunk]) as tracer:
            out = model.generate(**enc, do_sample=True, temperature=float(sc["temperature"]),
                                 top_k=None, top_p=None, max_new_tokens=sc["max_new_tokens"],
                                 pad_token_id=pad, eos_token_id=eos,
                                 output_logits=True, return_dict_in_generate=True)
        gen = out.sequences[:, enc["input_ids"].shape[1]:]
        n_gen = generated_lengths(gen, eos)
        stats = tracer.result(lengths=n_gen)
        logits = torch.stack(out.logits, dim=1)  # (B, N, V), raw (temperature 1)
        ent, cert = token_entropy_and_self_certainty(logits)
        ent, cert = ent.double().cpu().numpy(), cert.double().cpu().numpy()
        gen_cpu = gen.cpu()
        for row, (_, i, j) in enumerate(chunk):
            n = n_gen[row]
            if n < 1:  # generate always emits at least one token
                raise RuntimeError(f"prompt {ids[i]!r}: empty generation")
            token_ids = gen_cpu[row, :n].tolist()
            completion = tokenizer.decode(token_ids, skip_special_tokens=True).strip()
            st = stats[row]
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
        n_tokens_total += sum(n_gen)
        bar.update(len(chunk))
        bar.set_postfix(tok_s=f"{n_tokens_total / max(time.perf_counter() - t0, 1e-9):.0f}")
    bar.close()
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
            "pivot_density": float(np.mean([r["density"] for r in rs])),
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
        from pivottrace.runtime import load_causal_lm

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


# ---------------------------------------------------------------------------
# The oracle upper bound: READS LABELS
# ---------------------------------------------------------------------------


def oracle_learnability(traces_answers: Iterable[Mapping[str, Any]], oracle,
                        verifier: str = "modchain") -> pd.DataFrame:
    """READS LABELS. Pass rate p and learnability p(1-p) of each prompt's K traces.

    An upper bound used only by the ``oracle_learnability`` baseline (flagged
    ``uses_labels``) and by analysis; never by label-free selection.

    Args:
        traces_answers: trace records with ``id`` and ``completion`` (as
            written by :func:`score_and_write`).
        oracle: an :class:`~pivottrace.oracle.AnnotationOracle` whose budget
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

    Opens ``gold_path`` only through :class:`~pivottrace.oracle.AnnotationOracle`
    with a budget of exactly the number of scored prompts. Output (e.g.
    ``results/scores/pool_oracle.csv``) is kept apart from the label-free
    scores table.
    """
    from pivottrace.oracle import AnnotationOracle

    traces = read_traces(traces_jsonl)
    n_ids = len({r["id"] for r in traces})
    oracle = AnnotationOracle(gold_path, max_queries=n_ids)
    verifier = dict((cfg or {}).get("task") or {}).get("verifier", "modchain")
    df = oracle_learnability(traces, oracle, verifier=verifier)
    if len(df) != n_ids:  # pragma: no cover - defensive
        raise DataError(f"{traces_jsonl}: {len(df)} oracle rows for {n_ids} ids")
    write_csv(df, out_csv)
    return df


__all__ = ["DEFAULT_SCORING", "ESTIMATORS", "ORACLE_COLUMNS", "SCORE_COLUMNS", "aggregate_scores",
           "lexical_counter", "majority_disagreement", "oracle_learnability", "read_traces",
           "score_and_write",
           "score_pool", "score_traces", "scoring_config", "token_entropy_and_self_certainty",
           "write_csv", "write_oracle_scores"]
