"""Pass probability of each control at n seeds (analysis.control_power) and stored records.jsonl."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis.control_power import main, pass_probability, power_table
from analysis.controls import CONTROLS
from analysis.table import load_records
from pivottrace.core.io import DataError

ORACLE_01, _, FULL_VS_TTRL, AA = CONTROLS


def _records(n_seeds: int, oracle_gain: float, noise: float = 0.02) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for s in range(n_seeds):
        for budget in ("0.1", "0.3"):
            rows.append({"method": "random", "budget": budget, "seed": s,
                         "dev_auc": 0.5 + rng.normal(0, noise)})
            rows.append({"method": "oracle_learnability", "budget": budget, "seed": s,
                         "dev_auc": 0.5 + oracle_gain + rng.normal(0, noise)})
        rows.append({"method": "random_alt", "budget": "0.3", "seed": s,
                     "dev_auc": 0.5 + rng.normal(0, noise)})
    return pd.DataFrame(rows).assign(test_accuracy=np.nan)  # every column load_records gives


def test_power_grows_with_seeds_for_a_small_effect():
    # an effect of about half a per-seed sd: rarely found by 5 seeds, usually by 30
    z = np.random.default_rng(0).normal(size=15)
    d = (z - z.mean()) / z.std(ddof=1) + 0.6  # mean / sd exactly 0.6
    at5, at30 = (pass_probability(d, ORACLE_01, n, reps=200, n_resamples=499) for n in (5, 30))
    assert at5 < 0.5 < at30


def test_full_vs_ttrl_needs_the_minimum_gain_too():
    assert pass_probability([0.05, 0.06, 0.055, 0.052], FULL_VS_TTRL, 10, reps=20,
                            n_resamples=199) == 0.0  # above 0, below the 0.10 bar
    assert pass_probability([0.15, 0.16, 0.155, 0.152], FULL_VS_TTRL, 5, reps=20,
                            n_resamples=199) == 1.0


def test_aa_control_passes_when_the_arms_agree_and_fails_when_they_differ():
    same = np.random.default_rng(2).normal(0.0, 1.0, size=20)
    assert pass_probability(same, AA, 10, reps=100, n_resamples=499) > 0.8
    assert pass_probability(same + 3.0, AA, 10, reps=100, n_resamples=499) == 0.0


def test_power_table_rows_for_the_controls_with_paired_seeds():
    table = power_table(_records(8, oracle_gain=0.1), seed_counts=(5, 10), reps=20,
                        n_resamples=199)
    # no full / unsupervised runs: that control has no row
    assert list(table.control) == ["oracle_beats_random@0.1", "oracle_beats_random@0.3",
                                   "random_aa@0.3"]
    assert (table.n_seeds == 8).all()
    oracle = table.set_index("control").loc["oracle_beats_random@0.1"]
    assert oracle.pass_at_5 == 1.0 and oracle.effect_sd > 2


@pytest.mark.parametrize("bad", [[0.1], []])
def test_too_few_observed_differences_is_an_error(bad):
    with pytest.raises(ValueError, match="at least 2"):
        pass_probability(bad, ORACLE_01, 5)


def _record(method, budget, seed, dev_auc):
    return {"method": method, "budget": budget, "seed": seed, "annotated_fraction": 0.1,
            "test_accuracy": 0.5, "test_hard_accuracy": 0.1, "steps": 4, "train_wall_s": 1.0,
            "uses_labels": method == "oracle_learnability", "dev_curve": [[0, 0.4], [4, dev_auc]],
            "pseudo_label_accuracy": None, "dev_auc": dev_auc, "frac_reward_zero_std": 0.5,
            "route_fractions": {"annotate": 0.1, "defer": 0.9, "self": 0.0}}


def test_records_jsonl_loads_as_the_record_files_do(tmp_path):
    recs = [_record(m, 0.1, s, 0.5 + 0.1 * (m == "oracle_learnability") + 0.01 * s)
            for s in range(3) for m in ("random", "oracle_learnability")]
    files = []
    for i, r in enumerate(recs):
        files.append(tmp_path / f"r{i}.json")
        files[-1].write_text(json.dumps(r))
    jsonl = tmp_path / "records.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in recs))
    pd.testing.assert_frame_equal(load_records([jsonl]), load_records(files))


def test_records_jsonl_with_a_run_twice_names_file_and_row(tmp_path):
    jsonl = tmp_path / "records.jsonl"
    jsonl.write_text("".join(json.dumps(_record("random", 0.1, s, 0.5)) + "\n" for s in (0, 1, 0)))
    with pytest.raises(DataError, match=r"records.jsonl: row 3: .*duplicate"):
        load_records([jsonl])


def test_cli_prints_and_writes_the_table(tmp_path, capsys):
    recs = [_record(m, b, s, 0.5 + 0.1 * (m == "oracle_learnability") + 0.01 * ((s * 7) % 5))
            for s in range(6) for b in (0.1, 0.3) for m in ("random", "oracle_learnability")]
    jsonl, out = tmp_path / "records.jsonl", tmp_path / "power.csv"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in recs))
    main([str(jsonl), "--n", "5", "--reps", "10", "--n-resamples", "199", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "| oracle_beats_random@0.1 | 6 |" in printed and "P(pass) at 5" in printed
    assert list(pd.read_csv(out).control) == ["oracle_beats_random@0.1", "oracle_beats_random@0.3"]
