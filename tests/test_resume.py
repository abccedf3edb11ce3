"""Exact resume: GRPO killed mid-run and rerun equals an uninterrupted run (CPU, same seed).

The uninterrupted run and the reruns go through ``pivottrace.rl.train.run_training``
(what ``pivottrace train`` calls); the killed run is ``pivottrace train`` in a
subprocess that SIGKILLs itself while writing a checkpoint. Compared: the
training summary fields that enter the run record (steps, dev curve, reward
means, pseudo-labels), the annotation ledger and the final weights' hash;
never timing.
"""

import hashlib
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import subprocess_env, train_outputs

from pivottrace.rl.train import run_training

# Runs ``pivottrace <argv>`` and SIGKILLs the process when trainer_state.json of
# checkpoint-<PT_KILL_AT_STEP> is about to be written: the weights, optimizer and
# RNG state of that checkpoint are on disk, its state file is not (HF Trainer
# writes it last), exactly what a kill during a checkpoint save leaves.
KILL_DURING_CHECKPOINT = r"""
import os, signal, sys
from transformers.trainer_callback import TrainerState
at = int(os.environ["PT_KILL_AT_STEP"])
save = TrainerState.save_to_json
def save_to_json(self, path):
    if self.global_step == at and os.path.basename(os.path.dirname(path)) == f"checkpoint-{at}":
        os.kill(os.getpid(), signal.SIGKILL)
    return save(self, path)
TrainerState.save_to_json = save_to_json
from pivottrace.cli import main
sys.exit(main(sys.argv[1:]))
"""

RECORD_FIELDS = ("steps", "dev_curve", "reward_means", "pseudo_labels", "n_trained_prompts",
                 "n_gold_prompts")


def train(tiny, plan: Path, work: Path, out: Path) -> dict:
    o = train_outputs(out)
    run_training(tiny["cfg"], plan, tiny["data"], tiny["model"], 0, work, o["model"], o["summary"],
                 o["ledger"])
    return outcome(out)


def outcome(out: Path) -> dict:
    o = train_outputs(out)
    summary = json.loads(o["summary"].read_text())
    return {"summary": {k: summary[k] for k in RECORD_FIELDS},
            "resumed_from_step": summary["resumed_from_step"],
            "ledger": json.loads(o["ledger"].read_text()),
            "weights": hashlib.sha256((o["model"] / "model.safetensors").read_bytes()).hexdigest()}


@pytest.fixture(scope="module")
def uninterrupted(grpo_run):
    return grpo_run, outcome(grpo_run / "out")


@pytest.fixture
def plan(mixed_plan):
    return mixed_plan


def test_uninterrupted_run_is_a_real_run(uninterrupted, tiny):
    _, ref = uninterrupted
    grpo = tiny["cfg"]["grpo"]
    assert ref["resumed_from_step"] is None
    assert ref["summary"]["steps"] == grpo["max_steps"] == 4
    assert [s for s, _ in ref["summary"]["dev_curve"]] == [0, 2, 4]
    assert ref["ledger"]["n_annotated"] == ref["summary"]["n_gold_prompts"] > 0
    assert ref["summary"]["pseudo_labels"], "self-route prompts must have been trained"


def test_killed_during_a_checkpoint_then_rerun_equals_uninterrupted(uninterrupted, tiny, plan,
                                                                    tmp_path):
    _, ref = uninterrupted
    work, out = tmp_path / "work", tmp_path / "out"
    o = train_outputs(out)
    argv = ["--config", str(tiny["config"]), "train", "--plan", str(plan), "--data",
            str(tiny["data"]), "--model", str(tiny["model"]), "--seed", "0", "--work", str(work),
            "--out-model", str(o["model"]), "--summary", str(o["summary"]),
            "--ledger", str(o["ledger"])]
    proc = subprocess.run([sys.executable, "-c", KILL_DURING_CHECKPOINT, *argv],
                          capture_output=True, text=True, timeout=600,
                          env=subprocess_env(PT_KILL_AT_STEP="4", PIVOTTRACE_THREADS="2"))
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    # killed mid-run: nothing the rule outputs exists, checkpoint-4 is half written
    assert not any(p.exists() for p in o.values())
    (key,) = work.iterdir()
    assert (key / "checkpoint-2" / "trainer_state.json").is_file()
    assert (key / "checkpoint-4" / "model.safetensors").is_file()
    assert not (key / "checkpoint-4" / "trainer_state.json").exists()

    resumed = train(tiny, plan, work, out)  # rerun of the rule
    assert resumed["resumed_from_step"] == 2  # the half-written checkpoint-4 was not used
    assert resumed["summary"] == ref["summary"]
    assert resumed["ledger"] == ref["ledger"]
    assert resumed["weights"] == ref["weights"]


def test_rerun_after_the_final_checkpoint_runs_no_extra_step(uninterrupted, tiny, plan, tmp_path):
    """Killed after checkpoint-<max_steps> but before the model was saved: HF Trainer
    would resume at global_step == max_steps and run one step too many."""
    root, ref = uninterrupted
    rerun = train(tiny, plan, root / "work", tmp_path / "out")  # the finished run's checkpoints
    assert rerun["resumed_from_step"] == tiny["cfg"]["grpo"]["max_steps"]
    assert rerun["summary"] == ref["summary"]
    assert rerun["ledger"] == ref["ledger"]
    assert rerun["weights"] == ref["weights"]
