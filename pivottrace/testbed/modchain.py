"""Chained modular arithmetic over named variables: the embedded testbed task.

A problem is a chain ``a = 3 , b = a + 4 , c = b * 2 , c ?`` evaluated modulo
``modulus``; its difficulty is the number of derived steps. Every token is a
whole word (a number below the modulus, a variable letter, an operator), so a
word-level tokenizer gives one token per symbol and traces stay short.

A *noisy teacher* writes reasoning traces for warm-start SFT. On a "hard"
step (one whose exact result leaves ``[0, modulus)``, i.e. wraps around) it
slips systematically to ``(r + 1) % modulus`` with probability
``p_slip_hard``; on easy steps with ``p_slip_easy``. After a slip it reflects
with probability ``p_reflect`` (``wait`` and the corrected step); otherwise the
wrong value propagates to the final answer. With ``p_recheck`` it re-checks a
correct step. Since the slip is systematic and more likely than not on hard
steps, the imitating model's greedy output is wrong there, while sampling
finds the right value often enough for RL to sharpen it.

Examples:
    >>> p = make_problem(random.Random(0), 2, modulus=10, ops=("+", "-", "*"))
    >>> verify(solve_trace(p), p.answer)
    True
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

TESTBED_TASKS = ("modchain", "skillchain")
"""Task names (v1, v2) whose traces are this word-level format with the reflection word."""

OPS = {"+": lambda x, k: x + k, "-": lambda x, k: x - k, "*": lambda x, k: x * k}
REFLECT = "wait"
ANSWER_MARK = "#"
STOP = "</s>"
_ANSWER_RE = re.compile(r"#\s*(\S+)")


@dataclass(frozen=True)
class Step:
    """One derived step ``name = src op operand``."""

    name: str
    src: str
    op: str
    operand: int


@dataclass(frozen=True)
class Problem:
    """A generated chain with its gold answer (labels live here, never in the pool file)."""

    start: int
    steps: tuple[Step, ...]
    modulus: int
    answer: str = field(compare=False)

    @property
    def difficulty(self) -> int:
        return len(self.steps)

    @property
    def prompt(self) -> str:
        parts = [f"a = {self.start}"]
        parts += [f"{s.name} = {s.src} {s.op} {s.operand}" for s in self.steps]
        return " , ".join(parts) + f" , {self.steps[-1].name} ?"


@dataclass(frozen=True)
class TeacherNoise:
    """Error and reflection rates of the noisy teacher (see module docstring)."""

    p_slip_hard: float = 0.55
    p_slip_easy: float = 0.05
    p_reflect: float = 0.45
    p_recheck: float = 0.03


def variable_names(n: int) -> list[str]:
    if n > 26:
        raise ValueError(f"at most 25 steps are supported, got {n - 1}")
    return [chr(ord("a") + i) for i in range(n)]


def make_problem(rng: random.Random, n_steps: int, modulus: int, ops: tuple[str, ...]) -> Problem:
    """Draw one chain of ``n_steps`` derived steps."""
    names = variable_names(n_steps + 1)
    start = rng.randrange(modulus)
    steps, value = [], start
    for i in range(1, n_steps + 1):
        op = rng.choice(ops)
        operand = rng.randrange(2 if op == "*" else 1, modulus)
        steps.append(Step(names[i], names[i - 1], op, operand))
        value = OPS[op](value, operand) % modulus
    return Problem(start, tuple(steps), modulus, str(value))


_STEP_RE = re.compile(r"^([a-z]) = ([a-z]) ([-+*]) (\d+)$")


def parse_prompt(prompt: str, modulus: int) -> Problem:
    """The problem a prompt states (the inverse of :attr:`Problem.prompt`).

    >>> p = make_problem(random.Random(3), 3, modulus=10, ops=("+", "-", "*"))
    >>> parse_prompt(p.prompt, 10) == p and parse_prompt(p.prompt, 10).answer == p.answer
    True
    """
    parts = [x.strip() for x in prompt.split(",")]
    head = re.fullmatch(r"a = (\d+)", parts[0]) if parts else None
    if head is None or len(parts) < 3 or not parts[-1].endswith("?"):
        raise ValueError(f"not a modchain prompt: {prompt!r}")
    steps, value = [], int(head.group(1))
    start = value
    for part in parts[1:-1]:
        m = _STEP_RE.match(part)
        if m is None:
            raise ValueError(f"not a modchain step: {part!r} in {prompt!r}")
        step = Step(m.group(1), m.group(2), m.group(3), int(m.group(4)))
        steps.append(step)
        value = OPS[step.op](value, step.operand) % modulus
    return Problem(start, tuple(steps), modulus, str(value))


def _step_text(step: Step, value: int, result: int) -> str:
    return f"{step.name} = {value} {step.op} {step.operand} = {result}"


def solve_trace(problem: Problem) -> str:
    """The error-free trace (used by tests and as the teacher's ideal)."""
    return teacher_trace(problem, random.Random(0), TeacherNoise(0.0, 0.0, 0.0, 0.0))


def write_trace(problem: Problem, step_fn) -> str:
    """Walk the chain: ``step_fn(step, value, right, hard) -> (text, next value)`` writes each
    step (``right`` is the correct result from ``value``, ``hard`` whether the exact result
    wraps around); the steps are joined by commas and the last value is the answer."""
    m = problem.modulus
    value, chunks = problem.start, []
    for step in problem.steps:
        exact = OPS[step.op](value, step.operand)
        text, value = step_fn(step, value, exact % m, not 0 <= exact < m)
        chunks.append(text)
    return " , ".join(chunks) + f" {ANSWER_MARK} {value}"


def teacher_trace(problem: Problem, rng: random.Random, noise: TeacherNoise) -> str:
    """A trace of the noisy teacher: slips, reflections, re-checks, final ``# answer``."""
    m = problem.modulus

    def step_fn(step, value, right, hard):
        if rng.random() < (noise.p_slip_hard if hard else noise.p_slip_easy):
            wrong = (right + 1) % m
            text = _step_text(step, value, wrong)
            if rng.random() < noise.p_reflect:
                return text + f" {REFLECT} " + _step_text(step, value, right), right
            return text, wrong
        text = _step_text(step, value, right)
        if rng.random() < noise.p_recheck:
            text += f" {REFLECT} " + _step_text(step, value, right)
        return text, right

    return write_trace(problem, step_fn)


def extract_answer(completion: str) -> str | None:
    """The token after the last ``#`` of a completion, or None.

    >>> extract_answer("b = 3 + 4 = 7 # 7")
    '7'
    >>> extract_answer("b = 3 + 4 = 7") is None
    True
    """
    found = _ANSWER_RE.findall(completion.split(STOP)[0])
    return found[-1] if found else None


def verify(completion: str, gold: str) -> bool:
    """Exact match of the extracted answer against the gold answer string."""
    pred = extract_answer(completion)
    return pred is not None and pred == str(gold).strip()


def count_reflections(completion: str) -> int:
    """Lexical reflection count (occurrences of the reflection word)."""
    return completion.split().count(REFLECT)


def vocabulary(modulus: int, ops: tuple[str, ...], max_steps: int) -> list[str]:
    """All words the task can produce (numbers, variable names, symbols)."""
    return (
        [str(i) for i in range(modulus)]
        + variable_names(max_steps + 1)
        + list(ops)
        + ["=", ",", "?", ANSWER_MARK, REFLECT]
    )


def generate_split(
    rng: random.Random,
    n: int,
    min_steps: int,
    max_steps: int,
    modulus: int,
    ops: tuple[str, ...],
    exclude: set[str],
    unique: bool = True,
    max_tries: int = 200,
) -> list[Problem]:
    """Draw ``n`` problems with difficulty uniform in ``[min_steps, max_steps]``.

    Prompts in ``exclude`` are never drawn (keeps splits disjoint); with
    ``unique`` the new prompts are added to ``exclude`` as they are drawn.
    """
    out: list[Problem] = []
    for _ in range(n):
        p = draw_problem(rng, min_steps, max_steps, modulus, ops, exclude, max_tries=max_tries)
        if p is None:
            raise ValueError(
                f"could not draw a prompt outside {len(exclude)} excluded ones after "
                f"{max_tries} tries: the space for steps {min_steps}-{max_steps} is too small"
            )
        if unique:
            exclude.add(p.prompt)
        out.append(p)
    return out


def draw_problem(rng: random.Random, min_steps: int, max_steps: int, modulus: int,
                 ops: tuple[str, ...], exclude: set[str], accept=None,
                 max_tries: int = 200) -> Problem | None:
    """One problem of uniform length in ``[min_steps, max_steps]`` whose prompt is not in
    ``exclude`` and that ``accept(problem)`` (if given) accepts; None after ``max_tries``."""
    for _ in range(max_tries):
        p = make_problem(rng, rng.randint(min_steps, max_steps), modulus, ops)
        if p.prompt not in exclude and (accept is None or accept(p)):
            return p
    return None
