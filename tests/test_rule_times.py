"""analysis.rule_times: per-rule sums of Snakemake benchmark files, clear errors on bad input."""

import pytest

from analysis.rule_times import main, rule_times

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _bench(path, seconds):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{seconds}\t0:00:01\t1\t1\t1\t1\t0\t0\t50\t{seconds / 2}\n")


def test_sums_per_rule_over_run_folders(tmp_path):
    _bench(tmp_path / "base_model.tsv", 600.0)
    _bench(tmp_path / "runs/full/none/0/train.tsv", 70.0)
    _bench(tmp_path / "runs/random/0.1/0/train.tsv", 50.0)
    per = rule_times(tmp_path).set_index("rule")
    assert per.loc["train", "jobs"] == 2
    assert per.loc["train", "wall_s"] == pytest.approx(120.0)
    assert per.loc["train", "mean_wall_s"] == pytest.approx(60.0)
    assert per["share"].sum() == pytest.approx(1.0)
    assert list(per.index) == ["base_model", "train"]  # longest first


def test_bad_input_names_the_file(tmp_path, capsys):
    (tmp_path / "x.tsv").write_text("a\tb\n1\t2\n")
    assert main([str(tmp_path)]) == 2
    assert "x.tsv" in capsys.readouterr().err
    assert main([str(tmp_path / "empty")]) == 2
