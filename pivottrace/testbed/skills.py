"""Testbed v2 ("skillchain"): modchain problems whose steps belong to skills with distinct habits.

The problem format, the vocabulary and the verifier are modchain's
(:mod:`pivottrace.testbed.modchain`); what changes is *where the structure
comes from*. v1 had one slip mode shared by every step, so a handful of gold
prompts fixed it everywhere and every pool prompt was partly solvable. Real
RLVR pools have zero-variance prompts, concentrated wrong modes and skills
(``../shared/DESIGN.md`` section 4); v2 builds all three from the task and the
teacher's habits, never from corrupted gold answers:

* **Skills.** A step's skill is its operator. A *hard* step is one whose exact
  result leaves ``[0, modulus)`` (a carry, a borrow, a product of two digits).
  Each skill has its own teacher habit on hard steps
  (:class:`SkillHabit`): ``none`` (mastered: the teacher never errs),
  ``scattered`` (a uniformly random wrong value: wrong answers disagree, so a
  majority vote is usually right) or ``quotient`` (writes the quotient of the
  exact result by the modulus instead of its remainder, e.g. ``7 * 8 = 5``
  modulo 11: a *concentrated* wrong mode, so a majority vote is confidently
  wrong). With a prime modulus every step is a bijection of the running value,
  so an error is never erased by a later step (modulo 10, ``* 2`` and ``* 5``
  would map a wrong value onto the right answer).
* **Zero-variance prompts and a frontier.** Problems are drawn stratified by
  their number of hard steps of the *tricky* skills (``hard_ops``; weights
  ``hard_weights``). Prompts without tricky hard steps are always solved;
  prompts with many are out of the base model's reach until training improves
  the per-step skill, which then carries over to them (and to ``test_hard``:
  more hard steps at pool lengths).
* **Reflection.** After a slip the teacher writes ``wait`` and either corrects
  the step (``p_fix``) or restates the same wrong value (``p_stuck``: a
  reflection that does not help); it re-checks correct hard steps with
  ``p_recheck``. So reflection is frequent where the model fails, and present on
  failed traces too.

Examples:
    >>> from pivottrace.testbed.modchain import make_problem
    >>> p = make_problem(random.Random(0), 3, modulus=10, ops=("+", "-", "*"))
    >>> hard_steps(p) == sum(is_hard(p, i) for i in range(3))
    True
    >>> quotient_error(7, 8, 11)  # 7 * 8 = 56 = 5 * 11 + 1: the habit writes 5, not 1
    5
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from pivottrace.testbed.modchain import (
    OPS,
    REFLECT,
    Problem,
    _step_text,
    draw_problem,
    write_trace,
)

ERROR_MODES = ("none", "scattered", "quotient", "swap")


@dataclass(frozen=True)
class SkillHabit:
    """The teacher's habit on the hard steps of one skill (operator).

    ``p_slip`` is the probability of an error on a hard step; after an error
    the teacher reflects and fixes it with ``p_fix``, reflects and restates the
    wrong value with ``p_stuck``, and goes on silently otherwise.
    """

    error: str = "none"
    p_slip: float = 0.0
    p_fix: float = 0.0
    p_stuck: float = 0.0

    def __post_init__(self):
        if self.error not in ERROR_MODES:
            raise ValueError(f"unknown error mode {self.error!r}; known: {list(ERROR_MODES)}")
        if self.p_fix + self.p_stuck > 1:
            raise ValueError(f"p_fix + p_stuck must be <= 1, got {self.p_fix} + {self.p_stuck}")


@dataclass(frozen=True)
class SkillTeacher:
    """The v2 teacher: one habit per skill, a small slip rate on easy steps, re-checks."""

    skills: dict[str, SkillHabit]
    p_slip_easy: float = 0.0
    p_recheck: float = 0.0

    @classmethod
    def from_config(cls, teacher: dict) -> SkillTeacher:
        """Build from the ``task.teacher`` config section (``skills`` plus the two rates)."""
        if "skills" not in teacher:
            raise ValueError("task.teacher.skills is required for task 'skillchain' "
                             "(one habit per operator, see pivottrace/testbed/skills.py)")
        return cls({op: SkillHabit(**h) for op, h in teacher["skills"].items()},
                   teacher.get("p_slip_easy", 0.0), teacher.get("p_recheck", 0.0))


def _exact_values(problem: Problem):
    """``(value before, exact result)`` of each step along the error-free chain."""
    value = problem.start
    for step in problem.steps:
        exact = OPS[step.op](value, step.operand)
        yield value, exact
        value = exact % problem.modulus


def is_hard(problem: Problem, i: int) -> bool:
    """Whether step ``i`` of the error-free chain wraps around the modulus."""
    _, exact = list(_exact_values(problem))[i]
    return not 0 <= exact < problem.modulus


def hard_steps(problem: Problem, ops: Sequence[str] = ("-", "*")) -> int:
    """Number of hard steps whose operator is in ``ops`` (the tricky skills)."""
    return sum(1 for step, (_, exact) in zip(problem.steps, _exact_values(problem))
               if step.op in ops and not 0 <= exact < problem.modulus)


def skill_family(problem: Problem, ops: Sequence[str] = ("-", "*")) -> str:
    """The prompt's family: ``easy`` (no tricky hard step) or the tricky skills it needs.

    >>> p = Problem(3, (), 10, "3")
    >>> skill_family(p)
    'easy'
    """
    needed = sorted({step.op for step, (_, exact) in zip(problem.steps, _exact_values(problem))
                     if step.op in ops and not 0 <= exact < problem.modulus})
    return "easy" if not needed else "".join(needed)


def quotient_error(value: int, operand: int, modulus: int, op: str = "*") -> int:
    """The concentrated wrong mode: the quotient of the exact result instead of its remainder."""
    return (abs(OPS[op](value, operand)) // modulus) % modulus


def teacher_trace_v2(problem: Problem, rng: random.Random, teacher: SkillTeacher) -> str:
    """A trace of the v2 teacher (module docstring): per-skill slips, reflections, ``# answer``."""
    m = problem.modulus

    def step_fn(step, value, right, hard):
        habit = teacher.skills.get(step.op, SkillHabit())
        wrong = None
        if hard and habit.error != "none" and rng.random() < habit.p_slip:
            if habit.error == "quotient":
                wrong = quotient_error(value, step.operand, m, step.op)
            elif habit.error == "swap":  # subtracts the smaller from the larger
                wrong = abs(OPS[step.op](value, step.operand)) % m
            else:  # scattered: any other value
                wrong = rng.choice([v for v in range(m) if v != right])
        elif rng.random() < teacher.p_slip_easy:
            wrong = (right + rng.randrange(1, m)) % m
        if wrong is not None and wrong != right:
            text = _step_text(step, value, wrong)
            u = rng.random()
            if u < habit.p_fix:
                return text + f" {REFLECT} " + _step_text(step, value, right), right
            if u < habit.p_fix + habit.p_stuck:
                return text + f" {REFLECT} " + _step_text(step, value, wrong), wrong
            return text, wrong
        text = _step_text(step, value, right)
        if hard and rng.random() < teacher.p_recheck:
            text += f" {REFLECT} " + _step_text(step, value, right)
        return text, right

    return write_trace(problem, step_fn)


def generate_stratified(
    rng: random.Random,
    n: int,
    min_steps: int,
    max_steps: int,
    modulus: int,
    ops: tuple[str, ...],
    hard_ops: Sequence[str],
    hard_weights: Sequence[float],
    exclude: set[str],
    unique: bool = True,
    max_tries: int = 5000,
) -> list[Problem]:
    """Draw ``n`` problems whose number of tricky hard steps follows ``hard_weights``.

    ``hard_weights[h]`` is the share of problems with exactly ``h`` hard steps of
    ``hard_ops``; each problem's length is uniform in ``[max(min_steps, h),
    max_steps]`` and it is drawn by rejection. Counts per stratum are exact
    (largest remainder), then the problems are shuffled. Prompts in
    ``exclude`` are never drawn; with ``unique`` new prompts join it.
    """
    if not hard_weights or sum(hard_weights) <= 0:
        raise ValueError("hard_weights must have a positive sum")
    if len(hard_weights) - 1 > max_steps and hard_weights[-1] > 0:
        raise ValueError(f"hard_weights asks for {len(hard_weights) - 1} hard steps in chains of "
                         f"at most {max_steps} steps")
    total = float(sum(hard_weights))
    quotas = [int(n * w / total) for w in hard_weights]
    rest = sorted(range(len(hard_weights)), key=lambda h: -(n * hard_weights[h] / total - quotas[h]))
    for h in rest[: n - sum(quotas)]:
        quotas[h] += 1
    out: list[Problem] = []
    for h, quota in enumerate(quotas):
        lo = max(min_steps, h, 1)
        for _ in range(quota):
            p = draw_problem(rng, lo, max_steps, modulus, ops, exclude,
                             accept=lambda q, h=h: hard_steps(q, hard_ops) == h, max_tries=max_tries)
            if p is None:
                raise ValueError(f"could not draw a prompt with {h} hard steps of {list(hard_ops)} "
                                 f"in {max_tries} tries (steps {lo}-{max_steps}, "
                                 f"{len(exclude)} excluded)")
            if unique:
                exclude.add(p.prompt)
            out.append(p)
    rng.shuffle(out)
    return out
