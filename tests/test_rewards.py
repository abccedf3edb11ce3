"""Reward regimes: majority vote with pseudo-label logging, and Intuitor self-certainty."""

import math

import torch

from pivottrace.reasoner import build_model, build_tokenizer
from pivottrace.rlvr import (
    SELF,
    SELF_CERTAINTY,
    make_majority_reward,
    make_self_certainty_reward,
    training_rows,
)
from pivottrace.scoring import token_entropy_and_self_certainty
from pivottrace.verifiers import get_verifier


def test_majority_reward_logs_pseudo_labels():
    log = []
    fn = make_majority_reward(get_verifier("modchain"), log)
    comps = ["x = 1 # 3", "x = 1 # 3", "x = 1 # 4", "x = 1 # 9", "no answer", "no answer"]
    ids = ["a", "a", "a", "b", "c", "c"]
    regime = [SELF, SELF, SELF, "gold", SELF, SELF]
    assert fn(comps, ids, regime) == [1.0, 1.0, 0.0, None, 0.0, 0.0]
    assert log == [{"a": ["3", 2, 3], "c": [None, 0, 2]}]


def test_self_certainty_reward_matches_a_direct_computation():
    from pivottrace.config import load_config
    from pivottrace.tasks import modchain as mc

    cfg = load_config("configs/smoke.yaml")
    tok = build_tokenizer(mc.vocabulary(10, ("+", "-", "*"), 3))
    model = build_model(tok, cfg["model"], seed=0).eval()
    prompt = tok.decode(tok("a = 3 , b = a + 4 , b ?", add_special_tokens=False)["input_ids"])
    comp = tok("b = 3 + 4 = 7 # 7", add_special_tokens=False)["input_ids"]
    fn = make_self_certainty_reward({"model": model, "tokenizer": tok})
    out = fn(prompts=[prompt, prompt, prompt], completion_ids=[comp, comp[:3], comp],
             regime=[SELF_CERTAINTY, SELF_CERTAINTY, "gold"])
    assert out[2] is None
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([p + comp])).logits
    _, cert = token_entropy_and_self_certainty(logits[0, len(p) - 1:len(p) + len(comp) - 1])
    assert math.isclose(out[0], float(cert.mean()), rel_tol=1e-5)
    assert not math.isclose(out[0], out[1], rel_tol=1e-6)  # a prefix has its own mean


def test_self_reward_of_the_plan_picks_the_regime():
    from pivottrace.pool import PoolItem, UnlabeledPool

    pool = UnlabeledPool((PoolItem("a", "q", 1), PoolItem("b", "q", 1), PoolItem("c", "q", 1)))
    plan = {"routes": {"a": "self", "b": "annotate", "c": "defer"}, "self_reward": "self_certainty"}
    rows = training_rows(plan, pool, {"b": "7"})
    assert [(r["id"], r["regime"]) for r in rows] == [("a", SELF_CERTAINTY), ("b", "gold")]
    plan["self_reward"] = "majority"
    assert training_rows(plan, pool, {"b": "7"})[0]["regime"] == SELF
