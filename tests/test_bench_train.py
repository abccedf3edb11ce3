"""pivottrace bench-train: the suite's training against bare TRL, with a phase breakdown."""

import re

import pytest

from pivottrace.bench.train import PHASES, phases
from pivottrace.cli import main


def _profile(**seconds):
    return {"seconds": seconds, "calls": {}, "generated_tokens": 0}


def test_phases_are_exclusive_and_sum_to_the_wall_time():
    prof = {**_profile(generation=3.0, rewards=0.5, prepare_inputs=4.0, training_step=7.0,
                       optimizer=0.7, dev_evaluation=2.0, checkpointing=0.3),
            "train_begin_s": 5.0, "train_end_s": 16.0}
    p = phases(prof, wall=18.0)
    assert list(p) == list(PHASES)
    assert p == pytest.approx({"start-up": 5.0, "generation": 3.0, "rewards": 0.5,
                               "other scoring": 0.5, "loss + backward": 3.0, "optimizer": 0.7,
                               "dev evaluation": 2.0, "checkpointing": 0.3,
                               "other loop work": 1.0, "finish": 2.0})
    assert sum(p.values()) == pytest.approx(18.0)


@pytest.fixture(scope="module")
def report(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench_train.txt"
    rc = main(["--config", str(tiny["config"]), "bench-train", "--model", str(tiny["model"]),
               "--data", str(tiny["data"]), "--rows", "8", "--steps", "2", "--gen-repeats", "1",
               "--out", str(out)])
    assert rc == 0
    return out.read_text()


def test_report_rows_add_up_and_the_ratio_is_wall_a_over_wall_b(report):
    lines = report.strip().splitlines()
    table = {m.group(1).strip(): (float(m.group(2)), float(m.group(3)))
             for m in (re.match(r"(.{18})\s+([\d.]+)\s+[\d.]+%\s+([\d.]+)\s+[\d.]+%", ln)
                       for ln in lines) if m}
    assert set(PHASES) | {"total (wall)"} == set(table)
    wall_a, wall_b = table.pop("total (wall)")
    assert sum(a for a, _ in table.values()) == pytest.approx(wall_a, abs=0.01 * len(PHASES))
    assert sum(b for _, b in table.values()) == pytest.approx(wall_b, abs=0.01 * len(PHASES))
    assert table["dev evaluation"][0] > 0 and table["dev evaluation"][1] == 0  # bare TRL has none
    assert table["checkpointing"][0] > 0 and table["checkpointing"][1] == 0
    assert table["generation"][0] > 0 and table["generation"][1] > 0
    last = re.fullmatch(r"train_overhead_ratio=(\d+\.\d{3})", lines[-1])
    assert last, lines[-1]
    assert float(last.group(1)) == pytest.approx(wall_a / wall_b, abs=2e-3 + 0.01 / wall_b)
    assert re.search(r"plain model.generate loop \d+", report)
    assert re.search(r"repeats: 2 \(order alternating\)", report)
    assert re.search(r"^cpu_overhead_ratio=\d+\.\d{3} ", report, re.M)


def test_missing_inputs_fail_clearly(tiny, tmp_path, capsys):
    rc = main(["--config", str(tiny["config"]), "bench-train", "--model", str(tiny["model"]),
               "--data", str(tmp_path)])
    assert rc == 2
    assert "pool.jsonl is missing" in capsys.readouterr().err
