"""Task ``wordproblems``: short arithmetic word problems in English, for a real pretrained model.

Two kinds of problem, both a chain of ``ops`` operations on small non-negative
integers, with the gold answer computed exactly (never written by a model):

* ``story``: someone starts with a number of things, then ``ops`` events change
  it (buys / finds more: ``+``; gives away / loses / sells: ``-``; the amount
  doubles, triples ...: ``*``), then the question asks how many there are now;
* ``bare``: the same chain as a question, ``What is 7 + 5 - 3?`` (evaluated left
  to right: ``*`` only as the first operation, so precedence never matters).

A *level* is ``{kind, ops, max_number}`` (``max_number``: the largest number a
start or an operand uses). A row's ``difficulty`` is its level's index in the
split's level list plus ``difficulty_offset`` (so ``test_hard`` levels can rank
above every pool level). SmolLM2-135M-Instruct solves one-digit bare sums and
products about a third of the time and longer stories almost never
(README, "A real pretrained model"), so a mix of levels spreads its pass rates.

Prompts go through the model's own chat template (``task.wordproblems.chat_model``:
a local model directory whose tokenizer has one), rendered to text at data
time, so every rule downstream (scoring, GRPO, lm-eval) sees the exact string
the model was trained to continue. Answers are graded by the ``gsm8k``
verifier (the number after ``####``, else the last number in the completion).

Optionally the easiest GSM8K problems (``gsm8k: {path, max_steps, n}``: at most
``max_steps`` solution lines) are mixed into the pool, with difficulty
``gsm8k_difficulty``.

Examples:
    >>> import random
    >>> p = make_problem(random.Random(0), ops=2, max_number=9)
    >>> p.answer == str(p.value) and p.value >= 0
    True
    >>> p.text.endswith("now?")
    True
    >>> q = make_problem(random.Random(1), ops=2, max_number=9, kind="bare")
    >>> q.text.startswith("What is ") and eval(q.text[8:-1]) == q.value
    True
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from pivottrace.core.io import DataError
from pivottrace.data.splits import write_task_files

SPLITS = ("test", "test_hard", "dev", "pool")
"""Drawn in this order, so no pool prompt repeats an evaluation prompt."""

NAMES = ("Tom", "Anna", "Ben", "Lucy", "Sam", "Mia", "Leo", "Emma", "Max", "Zoe", "Jack", "Lily",
         "Noah", "Ella", "Omar", "Sara")
THINGS = ("apples", "stickers", "marbles", "books", "cookies", "pencils", "coins", "cards",
          "shells", "stamps", "balloons", "candies")
ADD = ("{name} buys {x} more {things}.", "{name} finds {x} more {things}.",
       "{friend} gives {name} {x} more {things}.")
SUB = ("{name} gives {x} {things} to {friend}.", "{name} loses {x} {things}.",
       "{name} sells {x} {things}.")
MUL = {2: "Then {name}'s number of {things} doubles.",
       3: "Then {name}'s number of {things} triples.",
       4: "Then {name} ends up with 4 times as many {things} as before.",
       5: "Then {name} ends up with 5 times as many {things} as before."}
INSTRUCTION = "Answer with a number."


@dataclass(frozen=True)
class Problem:
    text: str
    value: int

    @property
    def answer(self) -> str:
        return str(self.value)


KINDS = ("story", "bare")


def make_bare(rng: random.Random, ops: int, max_number: int) -> Problem:
    """``What is a op b op c?``, left to right; ``*`` only first; never negative."""
    value = rng.randint(1, max_number)
    text = str(value)
    for step in range(ops):
        kinds = ["+", "-", "*"] if step == 0 else ["+", "-"]
        if value < 2:
            kinds.remove("-")
        kind = rng.choice(kinds)
        x = (rng.randint(2, max_number) if kind == "*" else
             rng.randint(1, min(value - 1, max_number)) if kind == "-" else
             rng.randint(1, max_number))
        value = value + x if kind == "+" else value - x if kind == "-" else value * x
        text += f" {kind} {x}"
    return Problem(f"What is {text}?", value)


def make_problem(rng: random.Random, ops: int, max_number: int, kind: str = "story") -> Problem:
    """One chain of ``ops`` operations over numbers up to ``max_number`` (module docstring)."""
    if ops < 1 or max_number < 2:
        raise ValueError(f"a level needs ops >= 1 and max_number >= 2, got {ops}, {max_number}")
    if kind not in KINDS:
        raise ValueError(f"unknown problem kind {kind!r}; known: {list(KINDS)}")
    if kind == "bare":
        return make_bare(rng, ops, max_number)
    name, friend = rng.sample(NAMES, 2)
    things = rng.choice(THINGS)
    value = rng.randint(2, max_number)
    sentences = [f"{name} has {value} {things}."]
    for _ in range(ops):
        kinds = ["+", "*"] if value < 2 else ["+", "-", "*"]
        if value * 2 > 4 * max_number:  # keep the numbers small enough to stay in reach
            kinds.remove("*")
        kind = rng.choice(kinds)
        if kind == "+":
            x = rng.randint(1, max_number)
            value += x
            sentences.append(rng.choice(ADD).format(name=name, friend=friend, x=x, things=things))
        elif kind == "-":
            x = rng.randint(1, min(value - 1, max_number))
            value -= x
            sentences.append(rng.choice(SUB).format(name=name, friend=friend, x=x, things=things))
        else:
            k = rng.choice([2, 3]) if max_number < 10 else rng.choice(sorted(MUL))
            value *= k
            sentences.append(MUL[k].format(name=name, things=things))
    sentences.append(f"How many {things} does {name} have now?")
    return Problem(" ".join(sentences), value)


def chat_renderer(model_dir: str | Path, instruction: str = INSTRUCTION, system: str | None = None):
    """``problem text -> prompt string`` through the chat template of ``model_dir``'s tokenizer.

    Raises:
        DataError: the directory has no tokenizer or the tokenizer no chat template.
    """
    from transformers import AutoTokenizer

    from pivottrace.sampling import chat_prompt

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise DataError(f"{model_dir}: task.wordproblems.chat_model: model directory not found")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if not getattr(tokenizer, "chat_template", None):
        raise DataError(f"{model_dir}: task.wordproblems.chat_model: the tokenizer has no chat "
                        "template")

    def render(text: str) -> str:
        return chat_prompt(tokenizer, f"{text}\n{instruction}" if instruction else text, system)

    return render


def draw_split(rng: random.Random, n: int, levels: list[dict], taken: set[str]) -> list[tuple[Problem, int]]:
    """``n`` distinct problems, levels in turn (balanced), none of whose text is in ``taken``."""
    out: list[tuple[Problem, int]] = []
    tries = 0
    while len(out) < n:
        level = len(out) % len(levels)
        spec = levels[level]
        p = make_problem(rng, int(spec["ops"]), int(spec["max_number"]), spec.get("kind", "story"))
        tries += 1
        if tries > 200 * max(n, 1):
            raise ValueError(f"task.wordproblems: cannot draw {n} distinct problems from levels {levels}")
        if p.text in taken:
            continue
        taken.add(p.text)
        out.append((p, level))
    return out


def _gsm8k_rows(spec: dict, seed: int, taken: set[str]) -> list[dict]:
    from pivottrace.data.real import load_gsm8k

    rows = [r for r in load_gsm8k(spec["path"], template="{prompt}")
            if r["difficulty"] <= int(spec.get("max_steps", 2)) and r["prompt"] not in taken]
    n = spec.get("n")
    if n is not None and len(rows) > int(n):
        keep = sorted(random.Random(f"{seed}:gsm8k").sample(range(len(rows)), int(n)))
        rows = [rows[i] for i in keep]
    return rows


def make_wordproblems(task: dict, out_dir: Path) -> dict[str, int]:
    """Write pool (no answers), pool_gold, dev, test, test_hard and an empty sft file."""
    w = task["wordproblems"]
    render = chat_renderer(w["chat_model"], w.get("instruction", INSTRUCTION), w.get("system"))
    rng = random.Random(task["seed"])
    taken: set[str] = set()
    rows: dict[str, list[dict]] = {}
    for name in SPLITS:
        spec = w["splits"][name]
        offset = int(spec.get("difficulty_offset", 0))
        rows[name] = [{"id": f"{name}-{i:05d}", "prompt": render(p.text), "answer": p.answer,
                       "difficulty": level + offset}
                      for i, (p, level) in enumerate(draw_split(rng, int(spec["n"]), spec["levels"], taken))]
    if w.get("gsm8k"):
        g = w["gsm8k"]
        extra = _gsm8k_rows(g, task["seed"], taken)
        rows["pool"] += [{"id": r["id"], "prompt": render(r["prompt"]), "answer": r["answer"],
                          "difficulty": int(g.get("difficulty", 9))} for r in extra]
    write_task_files(out_dir, rows["pool"], rows)
    return {name: len(rows[name]) for name in SPLITS} | {"sft": 0}
