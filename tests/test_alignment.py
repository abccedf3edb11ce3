"""analysis.alignment: pivots against reflections and first errors, against exact references."""

import itertools
import json
import random

import pandas as pd
import pytest

from analysis.alignment import (
    COLUMNS,
    alignment,
    modchain_first_error,
    modchain_step_results,
    reflection_positions,
    trace_counts,
)
from pivottrace.testbed import modchain as mc


@pytest.mark.parametrize("n,pivots,targets,tol", [(7, [1, 5], [2], 1), (9, [0, 4, 8], [0, 6], 2),
                                                   (6, [2], [0, 1, 5], 0), (5, [0, 1, 2, 3, 4], [2], 1)])
def test_random_expectations_equal_exhaustive_placement(n, pivots, targets, tol):
    """Average hits over every placement of the same number of distinct pivots."""
    got = trace_counts(pivots, targets, n, tol)
    placements = list(itertools.combinations(range(n), len(pivots)))
    hits = [trace_counts(list(p), targets, n, tol) for p in placements]
    assert got["pivot_hits_random"] == pytest.approx(sum(h["pivot_hits"] for h in hits) / len(hits))
    assert got["target_hits_random"] == pytest.approx(sum(h["target_hits"] for h in hits) / len(hits))


def test_micro_averaged_precision_recall_and_lift():
    traces = [{"pivots": [2, 7], "n_tokens": 10, "t": [3]}, {"pivots": [0], "n_tokens": 4, "t": []},
              {"pivots": [], "n_tokens": 5, "t": [1]}, {"pivots": [1], "n_tokens": 3, "t": None}]
    df = alignment(traces, {"x": lambda t: t["t"]}, tolerance=1)
    row = df.iloc[0]
    assert list(df.columns) == COLUMNS and row["n_traces"] == 3  # the None trace is skipped
    assert (row["n_pivots"], row["n_targets"]) == (3, 2)
    assert row["precision"] == pytest.approx(1 / 3) and row["recall"] == pytest.approx(1 / 2)
    prec_random = (2 * 3 / 10 + 0 + 0) / 3  # window of target 3 covers 3 of 10 tokens
    assert row["precision_random"] == pytest.approx(prec_random)
    assert row["precision_lift"] == pytest.approx((1 / 3) / prec_random)


def test_first_error_on_teacher_traces_with_planted_slips():
    rng = random.Random(0)
    for _ in range(200):
        p = mc.make_problem(rng, rng.randint(1, 5), 10, ("+", "-", "*"))
        words = mc.solve_trace(p).split()
        assert modchain_first_error(p.prompt, words, 10) == []
        results = [i + 1 for i in range(5, len(words) - 1)
                   if words[i] == "=" and words[i - 2] in mc.OPS]
        k = rng.randrange(len(results))
        bad = list(words)
        bad[results[k]] = str((int(bad[results[k]]) + 1) % 10)
        if k + 1 < len(results):  # a later step may also be wrong; the first one counts
            bad[results[k + 1]] = str((int(bad[results[k + 1]]) + 3) % 10)
        assert modchain_first_error(p.prompt, bad, 10) == [results[k]]
        assert modchain_step_results(words) == results
    only_answer = "b = 3 + 4 = 7 # 8".split()
    assert modchain_first_error("a = 3 , b = a + 4 , b ?", only_answer, 10) == [8]


def test_reflection_positions():
    assert reflection_positions("b = 3 + 4 = 8 wait b = 3 + 4 = 7 # 7".split(), {"wait"}) == [7]
    assert reflection_positions(["Hmm", "so", "WAIT"], {"hmm", "wait"}) == [0, 2]


def test_smoke_alignment_table_and_figure(smoke_run):
    df = pd.read_csv(smoke_run / "results/pivot_alignment.csv")
    assert list(df.columns) == COLUMNS
    assert sorted(zip(df["target"], df["tolerance"])) == sorted(
        itertools.product(["first_error", "reflection", "step_result"], [0, 1, 2]))
    n_traces = sum(1 for _ in (smoke_run / "results/scores/pool_traces.jsonl").open())
    assert (df["n_traces"] <= n_traces).all()
    pivots = sum(len(json.loads(ln)["pivots"]) for ln in (smoke_run / "results/scores/pool_traces.jsonl").open())
    assert (df["n_pivots"] <= pivots).all()
    for ext in ("png", "pdf", "csv"):
        assert (smoke_run / f"paper_figures/pivot_alignment.{ext}").stat().st_size > 0


class _PieceTokenizer:
    """Decodes id i to PIECES[i] (a stand-in for a real subword tokenizer)."""

    PIECES = [" 3", " +", " 4", " =", " 8", ".", " Wait", ",", " re", "check", ":", " 7", "<eos>"]

    def decode(self, ids):
        return "".join(self.PIECES[i] for i in ids)


def test_free_text_reflections_through_the_tokenizer(tmp_path):
    """A task other than the testbed's: reflection targets come from the decoded token ids."""
    from analysis.alignment import token_reflection_positions, write_alignment
    from pivottrace.core.io import write_jsonl

    ids = list(range(13))
    trace = {"id": "p1", "k": 0, "completion": "3 + 4 = 8. Wait, recheck: 7", "pivots": [6, 11],
             "n_tokens": 13, "token_ids": ids}
    write_jsonl(tmp_path / "traces.jsonl", [trace])
    write_jsonl(tmp_path / "pool.jsonl", [{"id": "p1", "prompt": "What is 3 + 4?", "difficulty": 0}])
    assert token_reflection_positions(_PieceTokenizer.PIECES, {"wait", "recheck"}) == [6, 8]
    df = write_alignment(tmp_path / "traces.jsonl", tmp_path / "pool.jsonl", None, "wordproblems",
                         tmp_path / "a.csv", tokenizer=_PieceTokenizer(), tolerances=(0,))
    row = df.set_index("target").loc["reflection"]
    assert (row["n_traces"], row["n_pivots"], row["n_targets"]) == (1, 2, 2)
    assert row["precision"] == 0.5 and row["recall"] == 0.5  # pivot 6 hits "Wait"; 8 is missed
    assert df.set_index("target").loc["first_error", "n_traces"] == 0  # not measured on free text
    none = write_alignment(tmp_path / "traces.jsonl", tmp_path / "pool.jsonl", None, "wordproblems",
                           tmp_path / "b.csv", tolerances=(0,))
    assert none.set_index("target").loc["reflection", "n_traces"] == 0  # no tokenizer, no targets
