"""Phase profiler of a GRPO run, switched on by ``PIVOTTRACE_PROFILE=<json path>``.

Wraps, at class level and only in a process that asks for it, the methods of
``trl.GRPOTrainer`` that do the work of a step (generation, rewards, the rest
of scoring, loss and backward, checkpoint saving), the greedy dev curve of
:class:`pivottrace.rl.callbacks.DevCurveCallback`, and times the optimizer
step and the training loop with a callback. At exit it writes one JSON:
seconds and calls per phase, generated tokens, and the wall-clock offsets of
train begin and train end from ``PIVOTTRACE_PROFILE_T0`` (the moment the
parent spawned the process), so start-up and finish can be told apart.
``pivottrace bench-train`` reads it. Nothing is timed unless the variable is set.
"""

from __future__ import annotations

import atexit
import functools
import os
import time
from collections import defaultdict

ENV, ENV_T0 = "PIVOTTRACE_PROFILE", "PIVOTTRACE_PROFILE_T0"

_seconds: dict[str, float] = defaultdict(float)
_calls: dict[str, int] = defaultdict(int)
_marks: dict[str, float] = {}
_tokens = {"generated": 0}
_installed = {"done": False}


def _timed(cls, name: str, phase: str, count_tokens: bool = False) -> None:
    fn = getattr(cls, name)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            out = fn(*args, **kwargs)
        finally:
            _seconds[phase] += time.perf_counter() - t0
            _calls[phase] += 1
        if count_tokens:  # GRPOTrainer._generate returns (prompt_ids, completion_ids, ...)
            _tokens["generated"] += sum(len(ids) for ids in out[1])
        return out

    setattr(cls, name, wrapper)


def _callback():
    from transformers import TrainerCallback

    class ProfileCallback(TrainerCallback):
        """Train begin/end marks and the optimizer step (between its two callback events)."""

        def on_train_begin(self, args, state, control, **kw):
            _marks["train_begin"] = time.time()

        def on_pre_optimizer_step(self, args, state, control, **kw):
            _marks["opt"] = time.perf_counter()

        def on_optimizer_step(self, args, state, control, **kw):
            _seconds["optimizer"] += time.perf_counter() - _marks.pop("opt")
            _calls["optimizer"] += 1

        def on_train_end(self, args, state, control, **kw):
            _marks["train_end"] = time.time()

    return ProfileCallback()


def install(path: str | os.PathLike) -> None:
    """Patch the trainer classes and write the profile to ``path`` when the process exits."""
    if _installed["done"]:
        return
    from trl import GRPOTrainer

    from pivottrace.rl.callbacks import DevCurveCallback

    _timed(GRPOTrainer, "_generate", "generation", count_tokens=True)
    _timed(GRPOTrainer, "_calculate_rewards", "rewards")
    _timed(GRPOTrainer, "_prepare_inputs", "prepare_inputs")
    _timed(GRPOTrainer, "training_step", "training_step")
    _timed(GRPOTrainer, "_save_checkpoint", "checkpointing")
    _timed(DevCurveCallback, "_log", "dev_evaluation")
    init = GRPOTrainer.__init__

    @functools.wraps(init)
    def init_with_profile(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.callback_handler.callbacks.insert(0, _callback())  # first: marks precede the dev eval

    GRPOTrainer.__init__ = init_with_profile
    atexit.register(_write, str(path))
    _installed["done"] = True


def _write(path: str) -> None:
    t0 = float(os.environ.get(ENV_T0, "nan"))
    out = {"seconds": dict(_seconds), "calls": dict(_calls), "generated_tokens": _tokens["generated"],
           "train_begin_s": _marks.get("train_begin", float("nan")) - t0,
           "train_end_s": _marks.get("train_end", float("nan")) - t0,
           "exit_s": time.time() - t0}
    from pivottrace.core.io import write_json

    write_json(path, out)


def install_from_env() -> None:
    """:func:`install` when ``PIVOTTRACE_PROFILE`` is set (called by the CLI)."""
    if os.environ.get(ENV):
        install(os.environ[ENV])
