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


LOG = """Building DAG of jobs...
Using shell: /usr/bin/bash
Provided cores: 2
[Sun Nov 29 22:24:41 2026]
localrule data:
    output: data/pool.jsonl
    jobid: 4
    resources: tmpdir=/tmp
[Sun Nov 29 22:24:51 2026]
Finished jobid: 4 (Rule: data)
1 of 3 steps (33%) done
[Sun Nov 29 22:24:51 2026]
localrule base_model:
    jobid: 3
    threads: 2
    resources: tmpdir=/tmp
[Sun Nov 29 22:25:11 2026]
Finished jobid: 3 (Rule: base_model)
[Sun Nov 29 22:25:11 2026]
localrule train:
    jobid: 2
    threads: 1
[Sun Nov 29 22:25:16 2026]
localrule train:
    jobid: 1
    threads: 1
[Sun Nov 29 22:25:21 2026]
Finished jobid: 2 (Rule: train)
[Sun Nov 29 22:25:31 2026]
Finished jobid: 1 (Rule: train)
"""


def test_idle_cores_from_the_snakemake_log(tmp_path, capsys):
    from analysis.rule_times import idle_cores, job_spans

    log = tmp_path / "run.snakemake.log"
    log.write_text(LOG)
    spans = job_spans(log)
    assert list(spans.rule) == ["data", "base_model", "train", "train"]
    assert list(spans.threads) == [1, 2, 1, 1]
    assert spans.start.tolist() == [0, 10, 30, 35] and spans.end.tolist() == [10, 30, 40, 50]
    idle, by = idle_cores(spans, cores=2)
    # data alone 10 s (1 idle core), train alone 30-35 and 40-50 (1 idle core each second)
    assert idle == 25 and by[("data",)] == 10 and by[("train",)] == 15
    _bench(tmp_path / "bench/train.tsv", 10.0)
    assert main([str(tmp_path / "bench"), "--log", str(log)]) == 0
    assert "idle 25 core-s" in capsys.readouterr().out


def test_log_without_finished_jobs_is_named(tmp_path, capsys):
    _bench(tmp_path / "bench/train.tsv", 10.0)
    log = tmp_path / "empty.log"
    log.write_text("Building DAG of jobs...\n")
    assert main([str(tmp_path / "bench"), "--log", str(log)]) == 2
    assert "empty.log" in capsys.readouterr().err
