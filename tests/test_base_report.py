"""Pool statistics of the base report, against values counted by hand."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pivottrace.data.verifiers import get_verifier
from pivottrace.labeled.base_report import check_targets, pass_bin, per_prompt_table, summarize
from pivottrace.testbed.modchain import count_reflections

TASK = {"name": "skillchain", "modulus": 13, "hard_ops": ["-", "*"]}


def _item(pid, prompt, difficulty=1):
    return SimpleNamespace(id=pid, prompt=prompt, difficulty=difficulty)


def test_per_prompt_rows_and_summary():
    pool = [_item("p0", "a = 1 , b = a + 2 , b ?"),          # easy, answer 3
            _item("p1", "a = 7 , b = a * 9 , b ?"),          # '*' hard, answer 11, habit 4
            _item("p2", "a = 2 , b = a - 9 , b ?")]          # '-' hard, answer 6
    gold = {"p0": "3", "p1": "11", "p2": "6"}
    sampled = [["b = 1 + 2 = 3 # 3"] * 4,
               ["b = 7 * 9 = 4 # 4", "b = 7 * 9 = 4 wait b = 7 * 9 = 4 # 4", "b = 7 * 9 = 4 # 4",
                "b = 7 * 9 = 11 # 11"],
               ["b = 2 - 9 = 1 # 1", "b = 2 - 9 = 6 # 6", "b = 2 - 9 = 3 wait b = 2 - 9 = 6 # 6",
                "b = 2 - 9 = 6 # 6"]]
    greedy = ["b = 1 + 2 = 3 # 3", "b = 7 * 9 = 4 # 4", "b = 2 - 9 = 6 # 6"]
    df = per_prompt_table(TASK, pool, gold, sampled, greedy, get_verifier("modchain"), count_reflections)
    assert list(df.family) == ["easy", "*", "-"]
    assert list(df.n_correct) == [4, 1, 3]
    assert list(df.majority_correct) == [True, False, True]
    assert list(df.majority_share) == [1.0, 0.75, 0.75]
    s = summarize(df)
    assert s["never_solved"] == 0 and s["always_solved"] == pytest.approx(1 / 3)
    assert s["sometimes_solved"] == pytest.approx(2 / 3)
    assert s["majority_wrong_confident"] == pytest.approx(1 / 3)
    assert s["majority_vote_accuracy"] == pytest.approx(2 / 3)
    assert s["sampled_accuracy"] == pytest.approx(8 / 12)
    assert s["greedy_accuracy"] == pytest.approx(2 / 3)
    assert s["reflection_rate"] == pytest.approx(2 / 12)
    assert s["reflection_rate_failed"] == pytest.approx(1 / 4)  # 4 failed traces, one reflects
    assert s["reflection_rate_solved"] == pytest.approx(1 / 8)
    assert s["per_family"]["*"]["majority_wrong_confident"] == 1.0
    assert s["per_pass_rate_bin"]["(0, 0.25]"] == {"n_prompts": 1, "majority_vote_accuracy": 0.0}
    assert s["per_pass_rate_bin"]["1"]["n_prompts"] == 1
    checks = check_targets(s)
    assert not checks["never_solved"]["pass"] and checks["majority_wrong_confident"]["pass"]


@pytest.mark.parametrize("p, label", [(0.0, "0"), (1 / 16, "(0, 0.25]"), (0.25, "(0, 0.25]"),
                                      (0.5, "(0.25, 0.5]"), (0.75, "(0.5, 0.75]"),
                                      (15 / 16, "(0.75, 1)"), (1.0, "1")])
def test_pass_bins(p, label):
    assert pass_bin(p) == label
