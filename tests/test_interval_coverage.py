"""analysis.interval_coverage: the paired-comparison rule's false-positive rate, measured with the rule itself."""

import pytest

from analysis.interval_coverage import main, rejection_rates


def test_at_five_seeds_the_rule_holds_its_level_and_the_plain_percentile_interval_does_not():
    r = rejection_rates(5, 300, n_resamples=999, seed=1)
    # any bootstrap interval excludes 0 when all differences share a sign (1/16 under the null)
    assert r["percentile"] >= r["expanded"] >= r["same_sign"] > 0.02
    assert r["percentile"] > 0.10  # about 0.16 measured with 2,000 draws
    assert r["expanded"] < 0.10    # the rule: 0.085 measured with 2,000 draws (floor 1/16)
    assert r["t"] < 0.10           # the Student-t interval holds its level (about 0.05)
    for k in ("expanded", "percentile", "t"):
        assert r[f"{k}_above"] <= r[k]


def test_a_large_effect_is_found_by_every_interval():
    r = rejection_rates(10, 50, effect=5.0, n_resamples=999)
    assert r["expanded_above"] == r["percentile_above"] == r["t_above"] == 1.0


def test_bad_arguments_are_refused_and_the_cli_prints_a_row_per_seed_count(capsys):
    with pytest.raises(ValueError, match="n >= 2"):
        rejection_rates(1, 10)
    main(["--n", "3", "4", "--reps", "20"])
    rows = capsys.readouterr().out.strip().splitlines()
    assert [row.split()[0] for row in rows[-2:]] == ["3", "4"]
