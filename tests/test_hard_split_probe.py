"""pivottrace.testbed.hard_split_probe: fresh probe chains with exactly h hard steps; gains table."""

import pandas as pd
import pytest

from pivottrace.testbed.hard_split_probe import draw_probe_sets, gains, to_markdown
from pivottrace.testbed.modchain import parse_prompt
from pivottrace.testbed.skills import hard_steps

TASK = {"modulus": 17, "ops": ["+", "-", "*"], "hard_ops": ["-", "*"]}


def test_sets_have_exactly_h_hard_steps_and_avoid_excluded_prompts():
    first = draw_probe_sets(TASK, [2, 4], n=30, seed=5, min_steps=4, max_steps=6, exclude=set())
    excluded = {r["prompt"] for r in first[2][:10]}
    sets = draw_probe_sets(TASK, [2, 4], n=30, seed=5, min_steps=4, max_steps=6, exclude=excluded)
    prompts = [r["prompt"] for rows in sets.values() for r in rows]
    assert len(prompts) == len(set(prompts)) == 60 and not excluded & set(prompts)
    for h, rows in sets.items():
        for r in rows:
            p = parse_prompt(r["prompt"], 17)
            assert 4 <= len(p.steps) <= 6 and hard_steps(p, ("-", "*")) == h
    with pytest.raises(ValueError, match="--hard 7"):
        draw_probe_sets(TASK, [7], n=3, seed=5, min_steps=4, max_steps=6, exclude=set())


def test_gains_are_per_model_differences_from_the_base():
    acc = pd.DataFrame({"model": ["base", "a", "b"] * 2, "hard": [2, 2, 2, 3, 3, 3],
                        "accuracy": [0.2, 0.4, 0.3, 0.1, 0.1, 0.2]})
    table = gains(acc)
    assert table.loc[2, "gain_mean"] == pytest.approx(0.15)
    assert table.loc[3, "gains"] == "+0.000, +0.100"
    assert "| 3 | 0.100 | 0.150 | +0.050 |" in to_markdown(table)
    with pytest.raises(ValueError, match="no model named 'base'"):
        gains(acc[acc.model != "base"])
