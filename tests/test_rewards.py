"""Reward regimes: majority vote (hand-written groups) and Intuitor self-certainty (plain torch)."""

import math

import pytest
import torch

from pivottrace.data.verifiers import get_verifier
from pivottrace.rl.rewards import (
    GOLD,
    SELF,
    SELF_CERTAINTY,
    make_gold_reward,
    make_majority_reward,
    make_self_certainty_reward,
    training_rows,
)
from pivottrace.testbed.reasoner import build_model, build_tokenizer


def _c(answer):
    """A modchain completion ending in ``# answer`` (None: no answer mark at all)."""
    return "x = 1 , y = 2" if answer is None else f"x = 1 , y = 2 # {answer}"


def test_majority_reward_on_hand_written_groups():
    log = []
    fn = make_majority_reward(get_verifier("modchain"), log)
    rows = [  # (id, answer, regime, expected reward); groups are interleaved on purpose
        ("a", "3", SELF, 1.0),  # a: 3, 3, 4 -> majority 3
        ("t", "9", SELF, 0.0),  # t: 9, 10, 9, 10 -> tie, smallest string "10" wins
        ("a", "3", SELF, 1.0),
        ("g", "5", GOLD, None),  # other regimes get None ...
        ("t", "10", SELF, 1.0),
        ("a", "4", SELF, 0.0),
        ("n", None, SELF, 0.0),  # n: None, None, None, 7 -> None never wins, 7 does
        ("t", "9", SELF, 0.0),
        ("n", None, SELF, 0.0),
        ("e", None, SELF, 0.0),  # e: nothing parseable -> 0 everywhere
        ("n", "7", SELF, 1.0),
        ("s", "5", SELF_CERTAINTY, None),  # ... including the self-certainty regime
        ("t", "10", SELF, 1.0),
        ("n", None, SELF, 0.0),
        ("e", None, SELF, 0.0),
        ("u", "8", SELF, 1.0),  # u: a single vote is the majority
    ]
    ids = [r[0] for r in rows]
    comps = [_c(r[1]) for r in rows]
    regime = [r[2] for r in rows]
    out = fn(comps, ids, regime)
    assert out == [r[3] for r in rows]
    assert all(type(x) is float for x in out if x is not None)
    # one log entry per call: id -> [majority answer, its votes, group size], ids sorted, SELF only
    assert log == [{"a": ["3", 2, 3], "e": [None, 0, 2], "n": ["7", 1, 4], "t": ["10", 2, 4],
                    "u": ["8", 1, 1]}]
    # a call with no SELF rows is all None and logs nothing
    assert fn([_c("1"), _c("2")], ["g", "h"], [GOLD, SELF_CERTAINTY]) == [None, None]
    assert len(log) == 1


def test_majority_tie_break_is_by_answer_string_not_by_order():
    fn = make_majority_reward(get_verifier("modchain"))
    # three-way tie: "1" < "12" < "2" as strings, whatever the order of appearance
    for order in (["2", "12", "1"], ["1", "2", "12"], ["12", "1", "2"]):
        got = fn([_c(a) for a in order], ["x"] * 3, [SELF] * 3)
        assert got == [float(a == "1") for a in order]
    # a strict majority beats a smaller string
    assert fn([_c("9"), _c("9"), _c("1")], ["x"] * 3, [SELF] * 3) == [1.0, 1.0, 0.0]


def test_gold_reward_only_for_gold_rows():
    fn = make_gold_reward(get_verifier("modchain"))
    out = fn([_c("7"), _c("6"), _c("7"), _c(None)], ["7", "7", "7", "7"],
             [GOLD, GOLD, SELF, GOLD])
    assert out == [1.0, 0.0, None, 0.0]


@pytest.fixture(scope="module")
def tiny_lm():
    from pivottrace.core.config import load_config
    from pivottrace.testbed import modchain as mc

    cfg = load_config("configs/smoke.yaml")
    tok = build_tokenizer(mc.vocabulary(10, ("+", "-", "*"), 3))
    return build_model(tok, cfg["model"], seed=0).eval(), tok


def _self_certainty_by_hand(model, p_ids, c_ids):
    """mean over completion positions of KL(U || p) = -log V - mean_j log p_j, in float64."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([p_ids + c_ids])).logits[0].double()
    vocab = logits.shape[-1]
    logp = logits - torch.logsumexp(logits, dim=-1, keepdim=True)
    # position t predicts token t + 1: the completion is predicted from len(p) - 1 on
    rows = logp[len(p_ids) - 1:len(p_ids) + len(c_ids) - 1]
    assert rows.shape[0] == len(c_ids)
    kl = (1.0 / vocab) * (math.log(1.0 / vocab) - rows).sum(dim=-1)  # sum_j U_j log(U_j / p_j)
    return float(kl.mean())


def test_self_certainty_reward_matches_plain_torch(tiny_lm):
    model, tok = tiny_lm
    prompts = ["a = 3 , b = a + 4 , b ?", "c = 5 ?", "a = 3 , b = a + 4 , b ?",
               "d = 1 , e = d * 2 , e ?", "c = 5 ?", "c = 5 ?"]
    comps = ["b = 3 + 4 = 7 # 7", "c = 5 # 5", "b = 3", "e = 1 * 2 = 2 # 2", "", "c = 5 # 5"]
    regime = [SELF_CERTAINTY, SELF_CERTAINTY, SELF_CERTAINTY, SELF_CERTAINTY, SELF_CERTAINTY, GOLD]
    c_ids = [tok(c, add_special_tokens=False)["input_ids"] for c in comps]
    assert c_ids[4] == []
    for batch_size in (64, 2):  # one padded batch, and chunks of 2 (another padding per chunk)
        fn = make_self_certainty_reward({"model": model, "tokenizer": tok}, batch_size=batch_size)
        out = fn(prompts=prompts, completion_ids=c_ids, regime=regime)
        assert out[5] is None  # other regime
        assert out[4] == 0.0  # empty completion
        for i in range(4):
            p_ids = tok(prompts[i], add_special_tokens=False)["input_ids"]
            want = _self_certainty_by_hand(model, p_ids, c_ids[i])
            assert want > 0.0  # a KL divergence, and this random model is not uniform
            assert out[i] == pytest.approx(want, rel=1e-4, abs=1e-7), (batch_size, i)
    # a prefix of a completion has its own mean (the reward reads the completion's positions)
    assert not math.isclose(out[0], out[2], rel_tol=1e-3)


def test_self_certainty_of_a_uniform_model_is_zero(tiny_lm):
    _, tok = tiny_lm
    vocab = len(tok)

    class Uniform(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, input_ids, attention_mask=None):
            logits = torch.zeros(*input_ids.shape, vocab) + self.w
            return type("Out", (), {"logits": logits})()

    fn = make_self_certainty_reward({"model": Uniform(), "tokenizer": tok})
    comp = tok("c = 5 # 5", add_special_tokens=False)["input_ids"]
    out = fn(prompts=["c = 5 ?"], completion_ids=[comp], regime=[SELF_CERTAINTY])
    assert out[0] == pytest.approx(0.0, abs=1e-6)


def test_self_reward_of_the_plan_picks_the_regime():
    from pivottrace.data.pool import PoolItem, UnlabeledPool

    pool = UnlabeledPool((PoolItem("a", "q", 1), PoolItem("b", "q", 1), PoolItem("c", "q", 1)))
    plan = {"routes": {"a": "self", "b": "annotate", "c": "defer"}, "self_reward": "self_certainty"}
    rows = training_rows(plan, pool, {"b": "7"})
    assert [(r["id"], r["regime"]) for r in rows] == [("a", SELF_CERTAINTY), ("b", "gold")]
    plan["self_reward"] = "majority"
    assert training_rows(plan, pool, {"b": "7"})[0]["regime"] == SELF


def test_majority_reward_refuses_a_split_group():
    """Under several processes a group could arrive in parts; voting over a part is refused."""
    reward = make_majority_reward(get_verifier("modchain"), group_size=4)
    whole = [_c("1")] * 4
    assert reward(whole, id=["p"] * 4, regime=[SELF] * 4) == [1.0] * 4
    assert len(reward(whole * 2, id=["p"] * 8, regime=[SELF] * 8)) == 8  # the prompt twice: fine
    with pytest.raises(RuntimeError, match=r"prompt 'p' has 3 completions.*num_generations=4"):
        reward(whole[:3], id=["p"] * 3, regime=[SELF] * 3)
    # gold-route prompts are not voted on, so their group size does not matter
    assert reward(whole[:3], id=["g"] * 3, regime=[GOLD] * 3) == [None] * 3
