"""pivottrace.rl.dev_start: the dev curve's step-0 point, computed once per base model."""

import json

import pytest
from conftest import train_outputs

from pivottrace.core.runtime import resolve_device
from pivottrace.data.splits import load_labeled
from pivottrace.rl.dev_start import compute_dev_start, read_dev_start, start_key, write_dev_start
from pivottrace.rl.train import run_training


def _key(tiny):
    task = tiny["cfg"]["task"]
    dev = load_labeled(tiny["data"] / "dev.jsonl", task["verifier"], task.get("modulus"))
    return start_key(tiny["model"], dev, tiny["cfg"]["grpo"], resolve_device(tiny["cfg"]).type)


def test_computed_point_equals_the_step_zero_a_run_evaluates(tiny, grpo_run, tmp_path):
    out = tmp_path / "dev_start.json"
    acc = compute_dev_start(tiny["cfg"], tiny["model"], tiny["data"], out)
    curve = json.loads(train_outputs(grpo_run / "out")["summary"].read_text())["dev_curve"]
    assert curve[0] == [0, acc]
    assert read_dev_start(out, _key(tiny)) == acc


def test_a_run_logs_the_files_point_instead_of_evaluating(tiny, mixed_plan, grpo_run, tmp_path,
                                                           monkeypatch):
    import pivottrace.rl.callbacks as callbacks

    path = tmp_path / "dev_start.json"
    write_dev_start(path, _key(tiny), 0.123)  # not what the model scores: shows where it came from
    calls = []
    real = callbacks.greedy_accuracy
    monkeypatch.setattr(callbacks, "greedy_accuracy", lambda *a, **k: calls.append(1) or real(*a, **k))
    o = train_outputs(tmp_path / "out")
    run_training(tiny["cfg"], mixed_plan, tiny["data"], tiny["model"], 0, tmp_path / "work",
                 o["model"], o["summary"], o["ledger"], dev_start=path)
    curve = json.loads(o["summary"].read_text())["dev_curve"]
    ref = json.loads(train_outputs(grpo_run / "out")["summary"].read_text())["dev_curve"]
    assert curve[0] == [0, 0.123]
    assert curve[1:] == ref[1:] and len(calls) == len(ref) - 1  # the later points as before


@pytest.mark.parametrize("field,value", [("model", "0" * 16), ("dev_n", 7), ("max_new_tokens", 1),
                                         ("threads", 64)])
def test_a_file_made_for_something_else_stops_the_run_before_training(tiny, mixed_plan, tmp_path,
                                                                      field, value):
    path = tmp_path / "dev_start.json"
    write_dev_start(path, {**_key(tiny), field: value}, 0.5)
    o = train_outputs(tmp_path / "out")
    with pytest.raises(ValueError, match=f"dev_start.json: field '{field}'"):
        run_training(tiny["cfg"], mixed_plan, tiny["data"], tiny["model"], 0, tmp_path / "work",
                     o["model"], o["summary"], o["ledger"], dev_start=path)
    assert not (tmp_path / "work").exists() and not o["summary"].exists()


def test_a_malformed_file_is_named(tmp_path):
    path = tmp_path / "dev_start.json"
    path.write_text(json.dumps({"dev_accuracy": 0.5}))
    with pytest.raises(ValueError, match="not a dev_start file"):
        read_dev_start(path, {})
