"""Reward regimes of GRPO and the training rows that carry them (open-r1 style plain functions).

A selection plan routes every pool prompt to ``annotate`` (gold verifiable
reward, answer fetched through the annotation oracle), ``self`` (a label-free
reward chosen by the plan's ``self_reward``: agreement with the majority answer
of the prompt's own group, TTRL, or the policy's self-certainty, Intuitor) or
``defer`` (not trained). Each regime is one reward function that returns
``None`` for prompts of other regimes; TRL sums rewards with nansum. The
regime of a row travels in the dataset's ``regime`` column (TRL passes extra
columns to reward functions), never in globals.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import torch

from pivottrace.data.verifiers import Verifier
from pivottrace.method.estimators import token_entropy_and_self_certainty, top_answer

GOLD, SELF, SELF_CERTAINTY = "gold", "self", "self_certainty"


def training_rows(plan: dict, pool, gold: dict[str, str]) -> list[dict]:
    """Dataset rows for GRPO from a plan; deferred prompts are dropped.

    Args:
        plan: the selection plan (routes id -> annotate/self/defer).
        pool: the :class:`~pivottrace.data.pool.UnlabeledPool` (no answers).
        gold: answers of the annotated ids, as returned by the oracle.
    """
    rows = []
    for item in pool:
        route = plan["routes"][item.id]
        if route == "defer":
            continue
        if route == "annotate":
            regime = GOLD
        else:
            regime = SELF_CERTAINTY if plan.get("self_reward") == "self_certainty" else SELF
        rows.append({"prompt": item.prompt, "id": item.id, "regime": regime,
                     "answer": gold[item.id] if regime == GOLD else ""})
    return rows


def make_gold_reward(verifier: Verifier):
    """Reward 1/0 from the verifier for gold-regime prompts, None elsewhere."""

    def gold_reward(completions, answer, regime, **_):
        return [float(verifier.verify(c, a)) if r == GOLD else None
                for c, a, r in zip(completions, answer, regime)]

    return gold_reward


def make_majority_reward(verifier: Verifier, log: list | None = None,
                         group_size: int | None = None):
    """TTRL reward: 1 if a completion's answer equals its group's majority answer.

    Groups are the completions sharing a prompt ``id`` within one reward call
    (TRL's sampler keeps a prompt's ``num_generations`` completions together).
    Ties are broken by the smallest answer string, so the reward is
    deterministic; a group with no parseable answer gets 0 everywhere.

    Under ``accelerate launch`` each process scores only its own completions;
    a prompt's group stays whole when every process's batch holds whole groups
    (``per_device_train_batch_size * steps_per_generation`` divisible by
    ``num_generations``, as :func:`pivottrace.rl.grpo.grpo_args` sets it). With
    ``group_size`` the reward checks this and fails loudly on a split group
    instead of voting over part of it.

    Args:
        verifier: extracts answers from completions.
        log: if given, one ``{id: [majority answer or None, votes, group size]}``
            dict is appended per call (the pseudo-labels; for analysis only,
            see :class:`pivottrace.rl.callbacks.PseudoLabelCallback`).
        group_size: ``num_generations``; a self-route prompt whose completions
            in one call are not a multiple of it raises ``RuntimeError``.
    """

    def majority_reward(completions, id, regime, **_):  # noqa: A002 (TRL passes the column name)
        answers = [verifier.extract(c) for c in completions]
        groups: dict[str, Counter] = defaultdict(Counter)
        sizes: Counter = Counter()
        for i, a, r in zip(id, answers, regime):
            if r == SELF:
                sizes[i] += 1
                if a is not None:
                    groups[i][a] += 1
        split = sorted(i for i, n in sizes.items() if group_size and n % group_size)
        if split:
            raise RuntimeError(
                f"majority reward: prompt {split[0]!r} has {sizes[split[0]]} completions in this "
                f"reward call, not a multiple of num_generations={group_size}: its group was split "
                "(across processes?); keep every process's batch a multiple of num_generations")
        majority = {i: top_answer(cnt) for i, cnt in groups.items()}
        if log is not None and sizes:
            log.append({i: [*majority.get(i, (None, 0)), n] for i, n in sorted(sizes.items())})
        return [(float(a is not None and a == majority[i][0]) if r == SELF and i in majority
                 else (0.0 if r == SELF else None))
                for i, a, r in zip(id, answers, regime)]

    return majority_reward


def make_self_certainty_reward(holder: dict, batch_size: int = 64):
    """Intuitor reward: the policy's mean self-certainty KL(U || p) over a completion's tokens.

    ``holder["model"]`` must be set to the policy before training (the reward
    reads the current weights); the prompt is re-encoded with
    ``holder["tokenizer"]`` and the completion's token ids come from TRL. GRPO
    normalises rewards within each group, so only their order within a group
    matters. None for prompts of other regimes.
    """
    @torch.no_grad()
    def self_certainty_reward(prompts, completion_ids, regime, **_):
        out: list[float | None] = [None] * len(regime)
        idx = [i for i, r in enumerate(regime) if r == SELF_CERTAINTY]
        model, tok = holder["model"], holder["tokenizer"]
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        for start in range(0, len(idx), batch_size):
            chunk = idx[start:start + batch_size]
            p_ids = [tok(prompts[i], add_special_tokens=False)["input_ids"] for i in chunk]
            c_ids = [list(completion_ids[i]) for i in chunk]
            width = max(len(p) + len(c) for p, c in zip(p_ids, c_ids))
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for row, (p, c) in enumerate(zip(p_ids, c_ids)):
                ids[row, :len(p) + len(c)] = torch.tensor(p + c)
                mask[row, :len(p) + len(c)] = 1
            device = next(model.parameters()).device
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
            _, cert = token_entropy_and_self_certainty(logits)
            for row, (i, p, c) in enumerate(zip(chunk, p_ids, c_ids)):
                if not c:
                    out[i] = 0.0
                    continue  # positions len(p)-1 .. len(p)+len(c)-2 predict the completion
                out[i] = float(cert[row, len(p) - 1:len(p) + len(c) - 1].mean())
        return out

    return self_certainty_reward
