"""Are attention pivots metacognitive? Pivots against reflections and first errors, with lift.

For every scored pool trace (``results/scores/pool_traces.jsonl``: generated
token ids and pivot positions) two sets of *target* tokens:

- ``reflection``: tokens that are reflection words (the task's lexical
  reflection vocabulary, e.g. ``wait``); for tasks other than the testbed's
  (free text from a real tokenizer) the first token of each reflection word,
  found by decoding the trace's token ids (:func:`token_reflection_positions`);
- ``first_error``: the token where the trace first writes a wrong value
  (modchain: the first step result or final answer that differs from the
  chain's true value). READS LABELS: the true values are solved from the
  prompt; analysis only;
- ``step_result`` (a control): every token where the trace writes a step's
  result, right or wrong (modchain). If pivots fall near first errors no more
  often than near any result, they mark *writing a result*, not *going wrong*.

``first_error`` and ``step_result`` need the testbed's step grammar; for free
text they are not measured (rows with ``n_traces`` 0).

A pivot *hits* a target within ``tolerance`` tokens. Precision = pivots that
hit a target / pivots; recall = targets with a pivot within ``tolerance`` /
targets (micro-averaged over traces). The reference is the same number of
pivots per trace placed uniformly at random among the trace's tokens, whose
expected precision and recall are exact (no simulation): a random pivot hits
with probability (tokens within ``tolerance`` of a target) / n, and a target
of window size s is missed by all m pivots with probability C(n-s, m)/C(n, m).
Lift = observed / random.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pivottrace.core.io import atomic_write

COLUMNS = ["target", "tolerance", "n_traces", "n_pivots", "n_targets", "precision", "recall",
           "precision_random", "recall_random", "precision_lift", "recall_lift"]


def _window(targets: Sequence[int], n: int, tol: int) -> np.ndarray:
    near = np.zeros(n, dtype=bool)
    for t in targets:
        near[max(0, t - tol):min(n, t + tol + 1)] = True
    return near


def trace_counts(pivots: Sequence[int], targets: Sequence[int], n: int, tol: int) -> dict[str, float]:
    """Hits and their random-placement expectations for one trace of ``n`` tokens.

    Examples:
        >>> c = trace_counts([3, 9], [4], n=10, tol=1)
        >>> c["pivot_hits"], c["target_hits"], c["pivot_hits_random"]
        (1, 1, 0.6)
        >>> round(c["target_hits_random"], 4)  # 1 - C(7,2)/C(10,2)
        0.5333
    """
    m = len(pivots)
    near = _window(targets, n, tol)
    pivot_hits = int(sum(near[p] for p in pivots if 0 <= p < n))
    target_hits = sum(any(abs(p - t) <= tol for p in pivots) for t in targets)
    miss = [math.comb(n - int(_window([t], n, tol).sum()), m) / math.comb(n, m) if m <= n else 0.0
            for t in targets]
    return {"n_pivots": m, "n_targets": len(targets), "pivot_hits": pivot_hits,
            "target_hits": target_hits,
            "pivot_hits_random": float(m * near.sum() / n) if n else 0.0,
            "target_hits_random": float(sum(1 - x for x in miss))}


def alignment(traces: Iterable[Mapping], targets_of: Mapping[str, Callable[[Mapping], list[int] | None]],
              tolerance: int = 2) -> pd.DataFrame:
    """One row per target kind (:data:`COLUMNS`); traces whose targets are None are skipped."""
    rows = []
    traces = list(traces)
    for name, fn in targets_of.items():
        tot: dict[str, float] = {}
        n_traces = 0
        for t in traces:
            targets = fn(t)
            if targets is None:
                continue
            n_traces += 1
            for k, v in trace_counts(t["pivots"], targets, t["n_tokens"], tolerance).items():
                tot[k] = tot.get(k, 0) + v
        p = tot.get("n_pivots", 0)
        g = tot.get("n_targets", 0)

        def ratio(a, b):
            return a / b if b else math.nan

        prec, rec = ratio(tot.get("pivot_hits", 0), p), ratio(tot.get("target_hits", 0), g)
        prec_r, rec_r = ratio(tot.get("pivot_hits_random", 0), p), ratio(tot.get("target_hits_random", 0), g)
        rows.append({"target": name, "tolerance": tolerance, "n_traces": n_traces,
                     "n_pivots": int(p), "n_targets": int(g), "precision": prec, "recall": rec,
                     "precision_random": prec_r, "recall_random": rec_r,
                     "precision_lift": ratio(prec, prec_r), "recall_lift": ratio(rec, rec_r)})
    return pd.DataFrame(rows, columns=COLUMNS)


def reflection_positions(words: Sequence[str], vocabulary: Iterable[str]) -> list[int]:
    """Token positions of reflection words (one token per word, as in modchain).

    Examples:
        >>> reflection_positions("b = 3 wait b = 4".split(), {"wait"})
        [3]
    """
    vocab = {w.lower() for w in vocabulary}
    return [i for i, w in enumerate(words) if w.lower() in vocab]


def token_reflection_positions(pieces: Sequence[str], vocabulary: Iterable[str]) -> list[int]:
    """Positions of the tokens where a reflection word starts, in decoded token pieces.

    A word may span tokens (``re`` + ``check``); it is matched on the joined text
    as a whole word, case-insensitively, and mapped to the token holding its first
    character.

    Examples:
        >>> token_reflection_positions([" 3", " +", " 4", ".", " Wait", ",", " re", "check"],
        ...                            {"wait", "recheck"})
        [4, 6]
    """
    import re

    words = sorted({w.lower() for w in vocabulary}, key=len, reverse=True)
    if not words:
        return []
    pattern = re.compile(r"(?<![\w-])(?:" + "|".join(map(re.escape, words)) + r")(?![\w-])",
                         re.IGNORECASE)
    starts = np.cumsum([0] + [len(x) for x in pieces])[:-1]
    text = "".join(pieces)
    return sorted({int(np.searchsorted(starts, m.start(), side="right") - 1)
                   for m in pattern.finditer(text)})


def modchain_step_results(words: Sequence[str]) -> list[int]:
    """Positions of every step result ``r`` in ``name = v op k = r`` (modchain).

    Examples:
        >>> modchain_step_results("b = 3 + 4 = 8 wait b = 3 + 4 = 7 # 7".split())
        [6, 14]
    """
    from pivottrace.testbed.modchain import OPS

    return [i + 1 for i in range(5, len(words) - 1)
            if words[i] == "=" and words[i - 2] in OPS and words[i + 1].isdigit()]


def modchain_first_error(prompt: str, words: Sequence[str], modulus: int) -> list[int]:
    """READS LABELS. ``[position]`` of the first wrong value a modchain trace writes, or [].

    True values are solved from the prompt (``a = 3 , b = a + 4 , ... , c ?``);
    a step ``name = v op k = r`` is checked at ``r``, the final answer after ``#``.

    Examples:
        >>> modchain_first_error("a = 3 , b = a + 4 , b ?", "b = 3 + 4 = 8 wait b = 3 + 4 = 7 # 7".split(), 10)
        [6]
        >>> modchain_first_error("a = 3 , b = a + 4 , b ?", "b = 3 + 4 = 7 # 7".split(), 10)
        []
    """
    from pivottrace.testbed.modchain import ANSWER_MARK, OPS

    parts = [p.split() for p in prompt.replace("?", "").split(",") if p.strip()]
    values = {parts[0][0]: int(parts[0][2]) % modulus}
    for name, _, src, op, k in (p for p in parts[1:] if len(p) == 5):
        values[name] = OPS[op](values[src], int(k)) % modulus
    final = values[parts[-1][0]] if len(parts[-1]) == 1 else None
    for i in range(len(words) - 1):
        if i >= 5 and words[i] == "=" and words[i - 2] in OPS and words[i - 5] in values \
                and words[i + 1].isdigit() and int(words[i + 1]) != values[words[i - 5]]:
            return [i + 1]
        if words[i] == ANSWER_MARK and final is not None and words[i + 1] != str(final):
            return [i + 1]
    return []


TOLERANCES = (0, 1, 2)
"""Match tolerances reported (tokens); none is chosen after the fact."""


def write_alignment(traces_jsonl, pool_jsonl, modulus: int | None, task_name: str,
                    out_csv, figure_stem=None,
                    tolerances: Sequence[int] = TOLERANCES, tokenizer=None) -> pd.DataFrame:
    """CLI entry (rule ``alignment``): one row per (target, tolerance) as CSV, and the figure.

    ``tokenizer``: decodes the traces' ``token_ids`` for the reflection targets of
    tasks other than the testbed's (None: those traces have no targets).
    """
    from pivottrace.core.io import read_jsonl
    from pivottrace.method.estimators import REFLECTION_WORDS
    from pivottrace.testbed.modchain import REFLECT, TESTBED_TASKS

    traces = read_jsonl(traces_jsonl, required={"id": str, "k": int, "completion": str,
                                                "pivots": list, "n_tokens": int},
                        unique=("id", "k"))
    prompts = {r["id"]: r["prompt"] for r in read_jsonl(pool_jsonl, required={"id": str, "prompt": str})}
    modchain = task_name in TESTBED_TASKS  # word-level traces, one reflection word
    vocab = {REFLECT} if modchain else set(REFLECTION_WORDS)

    def words(t):  # word-level tokens: the i-th word is the i-th generated token (EOS last)
        w = t["completion"].split()
        return w if modchain and len(w) in (t["n_tokens"], t["n_tokens"] - 1) else None

    def targets_of(t) -> dict[str, list[int] | None]:
        if not modchain:
            ids = t.get("token_ids")
            refl = None
            if tokenizer is not None and isinstance(ids, list) and len(ids) == t["n_tokens"]:
                refl = token_reflection_positions([tokenizer.decode([i]) for i in ids], vocab)
            return {"reflection": refl, "first_error": None, "step_result": None}
        w = words(t)
        if w is None:
            return dict.fromkeys(("reflection", "first_error", "step_result"))
        return {"reflection": reflection_positions(w, vocab),
                "first_error": (None if modulus is None
                                else modchain_first_error(prompts[t["id"]], w, modulus)),
                "step_result": modchain_step_results(w)}

    found = [targets_of(t) for t in traces]  # once per trace, shared by every tolerance
    for t, f in zip(traces, found):
        t["_targets"] = f
    targets = {name: (lambda t, name=name: t["_targets"][name])
               for name in ("reflection", "first_error", "step_result")}
    df = pd.concat([alignment(traces, targets, tol) for tol in tolerances], ignore_index=True)
    with atomic_write(Path(out_csv)) as fh:
        df.to_csv(fh, index=False, lineterminator="\n")
    if figure_stem is not None:
        plot_alignment(df, figure_stem)
    return df


def plot_alignment(df: pd.DataFrame, stem) -> list[Path]:
    """Lift of pivots over random placement, per target and tolerance (PNG, PDF and its CSV)."""
    import seaborn as sns

    from analysis import style

    plt = style.setup()
    data = df.melt(id_vars=["target", "tolerance"], value_vars=["precision_lift", "recall_lift"],
                   var_name="measure", value_name="lift")
    data["measure"] = data["measure"].str.replace("_lift", "")
    data["panel"] = data["target"].str.replace("_", " ") + "\n" + data["measure"]
    fig, ax = plt.subplots(figsize=(7.2, 3.8))
    sns.barplot(data=data, x="panel", y="lift", hue="tolerance", palette="crest", ax=ax)
    ax.axhline(1.0, color="black", lw=1, ls="--", label="random placement")
    ax.set_xlabel("")
    ax.set_ylabel("lift over pivots placed at random")
    ax.set_title("Attention pivots against reflections, first errors and step results")
    ax.tick_params(axis="x", labelsize=8)
    ax.legend(title="tolerance (tokens)", fontsize=7)
    fig.tight_layout()
    return style.save_figure(fig, stem, data)
