"""``pivottrace triage``: PivotTrace triage of a practitioner's own unlabeled prompts.

Outside the Snakemake DAG: a local Hugging Face causal LM directory and a JSONL
of prompts (no answers) go in; every prompt comes out routed to ``annotate``
(worth a label), ``self`` (confident: train on a label-free reward) or
``defer`` (beyond reach), with every label-free score behind the decision.

The pipeline is the suite's own, unchanged: :func:`load_prompts` builds an
:class:`~pivottrace.data.pool.UnlabeledPool` (the label firewall rejects any
row carrying an answer), :func:`~pivottrace.method.scoring.score_pool` samples
``K`` traces per prompt under the attention tracer, and the registered
``pivottrace`` policy (:func:`~pivottrace.method.selection.select`, with the
``selection.pivottrace`` section of the config: defer_fraction, mode,
auto_method) routes them by pivot density, for a fixed budget or ``"auto"``.

Files written to ``out_dir`` (each atomically):

- ``triage.jsonl`` / ``triage.csv``: one row per prompt in input order: id,
  route, rank (1 = most uncertain), the score columns
  (:data:`~pivottrace.method.scoring.SCORE_COLUMNS`), the majority answer and
  its vote share among the K traces, and the prompt as given;
- ``traces.jsonl``: the per-trace records, as ``pivottrace score`` writes them;
- ``summary.json``: counts and fractions per route, budget, K, model, options,
  pivot definition, triage cut points, wall seconds.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pivottrace.core.io import (
    DataError,
    check_model_dir,
    jsonl_row_lines,
    read_jsonl,
    write_json,
    write_jsonl,
)
from pivottrace.data.pool import LABEL_FIELDS, ROUTES, PoolItem, UnlabeledPool, parse_budget
from pivottrace.data.verifiers import get_verifier
from pivottrace.method.estimators import majority_vote
from pivottrace.method.scoring import SCORE_COLUMNS, score_pool, scoring_config, write_csv
from pivottrace.method.selection import resolve_method, select
from pivottrace.method.triage import rank_desc
from pivottrace.method.tuning import PIVOT_KEYS, apply_choice
from pivottrace.sampling import chat_prompt
from pivottrace.testbed.modchain import TESTBED_TASKS

log = logging.getLogger(__name__)

TRIAGE_COLUMNS = ("id", "route", "rank", *SCORE_COLUMNS[1:], "majority_answer",
                  "majority_share", "prompt")
"""Columns of ``triage.csv`` / keys of each ``triage.jsonl`` row, in order."""

OUTPUT_FILES = ("triage.jsonl", "triage.csv", "traces.jsonl", "summary.json")


# ---------------------------------------------------------------------------
# Input
# ---------------------------------------------------------------------------


def load_prompts(path, *, prompt_field: str = "prompt", id_field: str = "id") -> UnlabeledPool:
    """Read a JSONL of unlabeled prompts into an :class:`UnlabeledPool` (file order).

    Each row is an object with a non-empty string ``prompt_field``; optionally
    ``id_field`` (a non-empty string, or an int, used as text; default
    ``row-<line>``) and ``difficulty`` (int, default 0). Other fields are
    ignored, except label fields (:data:`~pivottrace.data.pool.LABEL_FIELDS`),
    which are rejected: triage never sees answers (the label firewall).

    Raises:
        DataError: naming file, row (1-based line) and field: invalid JSON, a
            missing/mistyped/empty prompt, a label field, a bad or duplicate id,
            a mistyped difficulty, or an empty file.
    """
    path = Path(path)
    for name, value in (("prompt field", prompt_field), ("id field", id_field)):
        if value in LABEL_FIELDS:
            raise DataError(f"{path}: the {name} may not be a label field {value!r} "
                            f"(label fields: {list(LABEL_FIELDS)})")
    rows = read_jsonl(path, required={prompt_field: str}, unique=())
    lines = jsonl_row_lines(path)
    items, seen = [], {}
    for line, row in zip(lines, rows, strict=True):
        where = f"{path}: row {line}"
        label = next((f for f in LABEL_FIELDS if f in row), None)
        if label is not None:
            raise DataError(f"{where}: field {label!r} is a label; triage reads unlabeled "
                            f"prompts only (label firewall): drop field {label!r} from the file")
        if not row[prompt_field].strip():
            raise DataError(f"{where}: field {prompt_field!r} is empty")
        if id_field in row:
            pid = row[id_field]
            if isinstance(pid, int) and not isinstance(pid, bool):
                pid = str(pid)
            if not isinstance(pid, str) or not pid:
                raise DataError(f"{where}: field {id_field!r} must be a non-empty string or an "
                                f"int, got {row[id_field]!r}")
        else:
            pid = f"row-{line}"
        if pid in seen:
            raise DataError(f"{where}: field {id_field!r}: duplicate id {pid!r} "
                            f"(first at row {seen[pid]})")
        seen[pid] = line
        difficulty = row.get("difficulty", 0)
        if isinstance(difficulty, bool) or not isinstance(difficulty, int):
            raise DataError(f"{where}: field 'difficulty' has type {type(difficulty).__name__}, "
                            "expected int")
        items.append(PoolItem(pid, row[prompt_field], difficulty))
    return UnlabeledPool(tuple(items), source=str(path))


def render_prompt(tokenizer, prompt: str, chat_template: bool = True) -> str:
    """The text sampled from: the prompt as a user turn of the tokenizer's chat template.

    With ``chat_template`` and a tokenizer that has one,
    :func:`~pivottrace.sampling.chat_prompt`; otherwise the prompt unchanged.
    """
    if chat_template and getattr(tokenizer, "chat_template", None):
        return chat_prompt(tokenizer, prompt)
    return prompt


# ---------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------


def triage_config(cfg: Mapping[str, Any], *, k: int | None = None,
                  max_new_tokens: int | None = None, temperature: float | None = None,
                  batch_size: int | None = None, seed: int | None = None,
                  verifier: str = "gsm8k", pivot_choice=None) -> dict[str, Any]:
    """``cfg`` with the command's options over ``scoring`` and ``task`` (None keeps the config's).

    ``task.verifier`` (answer extraction for majority disagreement) is
    ``verifier``; ``task.name`` only picks the lexical reflection counter: the
    testbed's word for ``modchain``, the general reflection words otherwise.

    Raises:
        ConfigError / ValueError: an out-of-range option or an unknown verifier.
    """
    cfg = copy.deepcopy(dict(cfg))
    get_verifier(verifier)
    over = {"K": k, "max_new_tokens": max_new_tokens, "temperature": temperature,
            "batch_size": batch_size, "seed": seed}
    cfg["scoring"] = {**(cfg.get("scoring") or {}), **{key: v for key, v in over.items() if v is not None}}
    cfg = apply_choice(cfg, pivot_choice)
    task = dict(cfg.get("task") or {})
    if verifier == "modchain":
        task["name"] = task["name"] if task.get("name") in TESTBED_TASKS else "modchain"
    else:
        task["name"] = "math"  # any non-testbed name: count general reflection words
    task["verifier"] = verifier
    cfg["task"] = task
    cfg["scoring"] = scoring_config(cfg)  # bounds from the schema, before any model is loaded
    return cfg


# ---------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------


def density_histogram(values, bins: int = 10) -> dict[str, list]:
    """Equal-width histogram of ``values`` over their range (one bin when all are equal).

    Examples:
        >>> density_histogram([0.0, 0.1, 0.1, 0.4], bins=4)["counts"]
        [1, 2, 0, 1]
        >>> density_histogram([0.2, 0.2])
        {'edges': [0.2, 0.2], 'counts': [2]}
    """
    v = np.asarray(values, dtype=float)
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        return {"edges": [lo, hi], "counts": [int(v.size)]}
    counts, edges = np.histogram(v, bins=bins, range=(lo, hi))
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}


def _majorities(traces, ids) -> dict[str, tuple[str | None, float]]:
    answers: dict[str, list] = {pid: [] for pid in ids}
    for r in traces:
        answers[r["id"]].append(r["answer"])
    out = {}
    for pid, a in answers.items():
        answer, votes = majority_vote(a)
        out[pid] = (answer, votes / len(a))
    return out


def triage_prompts(model_dir, prompts_path, budget, out_dir, *, k: int | None = None,
                   cfg: Mapping[str, Any] | None = None, max_new_tokens: int | None = None,
                   temperature: float | None = None, batch_size: int | None = None,
                   seed: int | None = None, verifier: str = "gsm8k", chat_template: bool = True,
                   prompt_field: str = "prompt", id_field: str = "id", pivot_choice=None,
                   progress: bool = True) -> dict[str, Any]:
    """Score and route every prompt of ``prompts_path``; write the four files; the summary.

    Args:
        model_dir: local Hugging Face causal LM directory.
        prompts_path: JSONL of unlabeled prompts (:func:`load_prompts`).
        budget: fraction annotated in (0, 1], or ``"auto"`` (cut points from the
            pivot-density distribution; the annotated fraction is an outcome).
        out_dir: created if needed; receives :data:`OUTPUT_FILES`.
        k, max_new_tokens, temperature, batch_size, seed: scoring options
            (None: the config's ``scoring`` value).
        cfg: the full config (default: ``configs/default.yaml``); its
            ``selection.pivottrace`` section sets defer_fraction, mode, auto_method.
        verifier: answer extractor of the majority vote (``gsm8k``, ``math``, ``modchain``).
        chat_template: render prompts with the tokenizer's chat template when it has one.
        prompt_field, id_field: field names in the JSONL.
        pivot_choice: a ``pivot_choice.json`` of ``pivottrace tune-pivots`` (optional).
        progress: show the scoring progress bar.
    Returns:
        The summary (also written to ``summary.json``).
    Raises:
        DataError / ValueError: bad input, options or model directory, before any
            sampling (naming the file, row and field).
    """
    t0 = time.perf_counter()
    if cfg is None:
        from pivottrace.core.config import load_config

        cfg = load_config()
    b = parse_budget(budget)
    if b is None:
        raise ValueError(f"triage needs a budget: a fraction in (0, 1] or 'auto'; got {budget!r}")
    cfg = triage_config(cfg, k=k, max_new_tokens=max_new_tokens, temperature=temperature,
                        batch_size=batch_size, seed=seed, verifier=verifier,
                        pivot_choice=pivot_choice)
    sc = cfg["scoring"]
    policy, params = resolve_method(cfg, "pivottrace")
    raw = load_prompts(prompts_path, prompt_field=prompt_field, id_field=id_field)
    if b == "auto" and len(raw) < 3:
        raise ValueError(f"budget 'auto' needs at least 3 prompts, {prompts_path} has {len(raw)}")
    check_model_dir(model_dir)

    from pivottrace.core.runtime import load_causal_lm

    model, tokenizer = load_causal_lm(Path(model_dir), cfg)
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise DataError(f"{model_dir}: tokenizer has neither a pad nor an EOS token")
        tokenizer.pad_token = tokenizer.eos_token  # left padding of batched sampling
    templated = bool(chat_template and getattr(tokenizer, "chat_template", None))
    pool = UnlabeledPool(tuple(PoolItem(it.id, render_prompt(tokenizer, it.prompt, chat_template),
                                        it.difficulty) for it in raw), source=raw.source)
    log.info("triage: %d prompts from %s, K=%d, chat template %s", len(pool), prompts_path,
             sc["K"], "on" if templated else "off")

    scores, traces = score_pool((model, tokenizer), pool, cfg, progress=progress)
    plan = select(policy, pool, budget=b, seed=sc["seed"], scores=scores, **params)
    column = plan.meta["score_column"]
    rank = np.empty(len(pool), dtype=int)
    rank[rank_desc(scores[column].to_numpy(dtype=float), list(scores["id"]))] = np.arange(1, len(pool) + 1)
    majority = _majorities(traces, pool.ids)
    rows = []
    for item, (_, s), r in zip(raw, scores.iterrows(), rank, strict=True):
        answer, share = majority[item.id]
        rows.append({"id": item.id, "route": plan.routes[item.id], "rank": int(r),
                     **{c: float(s[c]) for c in SCORE_COLUMNS[1:]},
                     "majority_answer": answer, "majority_share": share, "prompt": item.prompt})

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "triage.jsonl", rows)
    write_csv(pd.DataFrame(rows, columns=list(TRIAGE_COLUMNS)), out / "triage.csv")
    write_jsonl(out / "traces.jsonl", [{key: v for key, v in r.items()
                                        if key not in ("stats", "score_array")} for r in traces])
    counts = plan.counts()
    n = len(pool)
    summary = {
        "n": n, "counts": counts, "fractions": {r: counts[r] / n for r in ROUTES},
        "budget": b, "K": sc["K"], "model": str(model_dir), "prompts": str(prompts_path),
        "score_column": column,
        "options": {"max_new_tokens": sc["max_new_tokens"], "temperature": sc["temperature"],
                    "batch_size": sc["batch_size"], "seed": sc["seed"], "verifier": verifier,
                    "chat_template": templated, "prompt_field": prompt_field,
                    "id_field": id_field, "pivot_choice": str(pivot_choice) if pivot_choice else None,
                    "selection": params},
        "pivot": {key: sc[key] for key in (*PIVOT_KEYS, "min_tokens")},
        "triage": {key: plan.meta.get(key) for key in ("mode", "auto_method", "defer_fraction",
                                                       "annotate_from", "defer_from")
                   if key in plan.meta},
        "pivot_density_histogram": density_histogram(scores["pivot_density"]),
        "files": {name: str(out / name) for name in OUTPUT_FILES},
        "wall_seconds": round(time.perf_counter() - t0, 3),
    }
    write_json(out / "summary.json", summary)
    return summary


def format_summary(summary: Mapping[str, Any], width: int = 40) -> str:
    """A short human summary: counts per route, a pivot-density histogram, the output files."""
    n = summary["n"]
    lines = [f"triaged {n} prompts from {summary['prompts']} with {summary['model']} "
             f"(K={summary['K']}, budget {summary['budget']}, {summary['wall_seconds']:.1f}s)"]
    for r in ROUTES:
        c = summary["counts"][r]
        lines.append(f"  {r:<9}{c:>7}  ({100 * c / n:5.1f}%)")
    hist = summary["pivot_density_histogram"]
    top = max(hist["counts"]) or 1
    lines.append("pivot_density (pivots per generated token):")
    edges = hist["edges"]
    for j, c in enumerate(hist["counts"]):
        bar = "#" * (round(width * c / top) if c else 0)
        lines.append(f"  [{edges[j]:.4f}, {edges[j + 1]:.4f}{']' if j == len(hist['counts']) - 1 else ')'}"
                     f" {c:>6} {bar}")
    files = summary["files"]
    lines.append(f"wrote {Path(files['summary.json']).parent}/: "
                 + ", ".join(Path(p).name for p in files.values()))
    return "\n".join(lines)


__all__ = ["OUTPUT_FILES", "TRIAGE_COLUMNS", "density_histogram", "format_summary", "load_prompts",
           "render_prompt", "triage_config", "triage_prompts"]
