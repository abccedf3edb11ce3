"""Trainer callbacks of the GRPO runs: the greedy dev curve and the pseudo-label log.

Both write into ``state.log_history``, so their entries are saved with every
checkpoint and restored on resume (a resumed run ends with the same record as
an uninterrupted one).
"""

from __future__ import annotations

from transformers import TrainerCallback

from pivottrace.sampling import greedy_accuracy

DEV_BATCH_SIZE = 128
"""Sequences per ``generate`` call of the greedy dev curve."""


class PseudoLabelCallback(TrainerCallback):
    """Moves the majority-vote pseudo-labels of each step into ``state.log_history``.

    Stored as ``{"pl_step": step, "pseudo_labels": {id: [answer, votes, n]}}`` so
    they are checkpointed and survive a resume. Never read by training; the
    record rule compares them with gold after the fact.
    """

    def __init__(self, buffer: list):
        self.buffer = buffer

    def on_step_end(self, args, state, control, **kw):
        merged: dict = {}
        for entry in self.buffer:
            merged.update(entry)
        self.buffer.clear()
        if merged:
            state.log_history.append({"pl_step": state.global_step, "pseudo_labels": merged})


class DevCurveCallback(TrainerCallback):
    """Logs greedy dev accuracy every ``every`` steps into ``state.log_history``.

    The entries live in the trainer state, so they are saved with checkpoints
    and restored on resume (the curve of a resumed run equals an uninterrupted one).
    ``start``: the step-0 accuracy computed once per base model
    (:mod:`pivottrace.rl.dev_start`), logged instead of evaluating the base model again.
    """

    def __init__(self, tokenizer, rows, verifier, every, max_new_tokens, batch_size,
                 start: float | None = None):
        self.tokenizer, self.rows, self.verifier, self.every = tokenizer, rows, verifier, every
        self.max_new_tokens, self.batch_size, self.start = max_new_tokens, batch_size, start

    @classmethod
    def for_grpo(cls, tokenizer, dev_rows, verifier, grpo: dict, start: float | None = None):
        """The dev curve of a GRPO run with config section ``grpo`` (the first ``dev_n`` dev
        rows, every ``eval_every`` steps, up to ``max_completion_length`` tokens); rule
        ``dev_start`` evaluates the base model with the same instance's :meth:`accuracy`."""
        return cls(tokenizer, dev_rows[: grpo["dev_n"]], verifier, grpo["eval_every"],
                   grpo["max_completion_length"], DEV_BATCH_SIZE, start=start)

    def accuracy(self, model) -> float:
        """Greedy accuracy of ``model`` on the curve's dev rows (one point of the curve)."""
        return greedy_accuracy(model, self.tokenizer, self.rows, self.verifier,
                               max_new_tokens=self.max_new_tokens, batch_size=self.batch_size)

    def _log(self, state, model):
        if any(h.get("dev_step") == state.global_step for h in state.log_history):
            return
        if state.global_step == 0 and self.start is not None:
            state.log_history.append({"dev_step": 0, "dev_accuracy": self.start})
            return
        state.log_history.append({"dev_step": state.global_step, "dev_accuracy": self.accuracy(model)})

    def on_train_begin(self, args, state, control, model=None, **kw):
        if state.global_step == 0:
            self._log(state, model)

    def on_step_end(self, args, state, control, model=None, **kw):
        if state.global_step % self.every == 0 or state.global_step == state.max_steps:
            self._log(state, model)
