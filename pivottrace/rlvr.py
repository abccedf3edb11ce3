"""GRPO training through TRL's GRPOTrainer with per-prompt reward regimes.

A selection plan routes every pool prompt to ``annotate`` (gold verifiable
reward, answer fetched through the annotation oracle), ``self`` (reward from
agreement with the majority answer of the prompt's own group, TTRL) or
``defer`` (not trained). Each regime is one reward function that returns
``None`` for prompts of other regimes; TRL sums rewards with nansum.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

from pivottrace.rollouts import generate
from pivottrace.verifiers import Verifier

GOLD, SELF = "gold", "self"


def make_gold_reward(verifier: Verifier):
    """Reward 1/0 from the verifier for gold-regime prompts, None elsewhere."""

    def gold_reward(completions, answer, regime, **_):
        return [float(verifier.verify(c, a)) if r == GOLD else None
                for c, a, r in zip(completions, answer, regime)]

    return gold_reward


def make_majority_reward(verifier: Verifier):
    """TTRL reward: 1 if a completion's answer equals its group's majority answer.

    Groups are the completions sharing a prompt ``id`` within one reward call
    (TRL's sampler keeps a prompt's ``num_generations`` completions together).
    Ties are broken by the smallest answer string, so the reward is
    deterministic; a group with no parseable answer gets 0 everywhere.
    """

    def majority_reward(completions, id, regime, **_):  # noqa: A002 (TRL passes the column name)
        answers = [verifier.extract(c) for c in completions]
        groups: dict[str, Counter] = defaultdict(Counter)
        for i, a, r in zip(id, answers, regime):
            if r == SELF and a is not None:
                groups[i][a] += 1
        majority = {i: min(cnt.items(), key=lambda kv: (-kv[1], kv[0]))[0] for i, cnt in groups.items()}
        return [(float(a is not None and a == majority.get(i)) if r == SELF else None)
                for i, a, r in zip(id, answers, regime)]

    return majority_reward


def training_rows(plan: dict, pool, gold: dict[str, str]) -> list[dict]:
    """Dataset rows for GRPO from a plan; deferred prompts are dropped.

    Args:
        plan: the selection plan (routes id -> annotate/self/defer).
        pool: the :class:`~pivottrace.pool.UnlabeledPool` (no answers).
        gold: answers of the annotated ids, as returned by the oracle.
    """
    rows = []
    for item in pool:
        route = plan["routes"][item.id]
        if route == "defer":
            continue
        regime = GOLD if route == "annotate" else SELF
        rows.append({"prompt": item.prompt, "id": item.id, "regime": regime,
                     "answer": gold[item.id] if regime == GOLD else ""})
    return rows


def greedy_accuracy(model, tokenizer, rows: list[dict], verifier: Verifier,
                    max_new_tokens: int, batch_size: int) -> float:
    """Greedy accuracy of ``model`` on labeled rows (dev curve)."""
    outs = generate(model, tokenizer, [r["prompt"] for r in rows], k=1, do_sample=False,
                    max_new_tokens=max_new_tokens, batch_size=batch_size)
    return sum(verifier.verify(o[0], r["answer"]) for o, r in zip(outs, rows)) / len(rows)


class DevCurveCallback(TrainerCallback):
    """Logs greedy dev accuracy every ``every`` steps into ``state.log_history``.

    The entries live in the trainer state, so they are saved with checkpoints
    and restored on resume (the curve of a resumed run equals an uninterrupted one).
    """

    def __init__(self, tokenizer, rows, verifier, every, max_new_tokens, batch_size):
        self.tokenizer, self.rows, self.verifier, self.every = tokenizer, rows, verifier, every
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size

    def _log(self, state, model):
        if any(h.get("dev_step") == state.global_step for h in state.log_history):
            return
        acc = greedy_accuracy(model, self.tokenizer, self.rows, self.verifier,
                              self.max_new_tokens, self.batch_size)
        state.log_history.append({"dev_step": state.global_step, "dev_accuracy": acc})

    def on_train_begin(self, args, state, control, model=None, **kw):
        if state.global_step == 0:
            self._log(state, model)

    def on_step_end(self, args, state, control, model=None, **kw):
        if state.global_step % self.every == 0 or state.global_step == state.max_steps:
            self._log(state, model)


def train_grpo(model_dir: str | Path, rows: list[dict], dev_rows: list[dict], verifier: Verifier,
               cfg: dict, seed: int, work_dir: str | Path, out_dir: str | Path) -> dict:
    """Train with GRPO and save the final model; resumes from the last checkpoint in ``work_dir``.

    Args:
        model_dir: the starting (base) model directory.
        rows: training rows from :func:`training_rows`.
        dev_rows: labeled dev rows for the greedy convergence curve.
        cfg: the ``grpo`` config section.
        work_dir: checkpoints (kept so a killed run resumes exactly).
        out_dir: where the final model is saved.
    Returns:
        Summary: steps, dev curve [[step, acc]...], reward means, wall time.
    """
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    work_dir = Path(work_dir)
    args = GRPOConfig(
        output_dir=str(work_dir),
        max_steps=cfg["max_steps"],
        per_device_train_batch_size=cfg["prompts_per_step"] * cfg["num_generations"],
        num_generations=cfg["num_generations"],
        max_completion_length=cfg["max_completion_length"],
        temperature=cfg["temperature"],
        learning_rate=cfg["learning_rate"],
        beta=cfg["beta"],
        logging_steps=1,
        save_strategy="steps",
        save_steps=cfg["save_steps"],
        report_to=[],
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        seed=seed,
        data_seed=seed,
        disable_tqdm=False,
    )
    callback = DevCurveCallback(tokenizer, dev_rows[: cfg["dev_n"]], verifier, cfg["eval_every"],
                                cfg["max_completion_length"], 128)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[make_gold_reward(verifier), make_majority_reward(verifier)],
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        callbacks=[callback],
    )
    has_ckpt = any(work_dir.glob("checkpoint-*"))
    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=True if has_ckpt else None)
    wall = time.perf_counter() - t0
    trainer.save_model(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    hist = trainer.state.log_history
    curve = sorted({h["dev_step"]: h["dev_accuracy"] for h in hist if "dev_step" in h}.items())
    reward_keys = sorted({k for h in hist for k in h if k.startswith("rewards/") and k.endswith("/mean")})
    rewards = {k: [h[k] for h in hist if h.get(k) is not None] for k in reward_keys}
    return {
        "steps": trainer.state.global_step,
        "dev_curve": [[s, a] for s, a in curve],
        "reward_means": {k: (sum(v) / len(v) if v else None) for k, v in rewards.items()},
        "train_wall_s": wall,
        "resumed": has_ckpt,
    }

