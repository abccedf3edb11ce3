"""The label firewall as an import rule (DESIGN.md section 3), checked on the source tree.

- No label-free module (the method: tracing, pivots, estimators, scoring,
  tuning, triage, selection; the baselines; the data types; the sampling loop;
  the testbed) reaches ``pivottrace.labeled`` through any chain of imports,
  module-level or inside a function.
- Only a fixed list of modules may import ``pivottrace.labeled`` at all; a new
  importer must be added here, in review.
- Only ``pivottrace.labeled`` reads a gold file: outside it, no read call takes
  an argument that names gold (``gold_path``, ``pool_gold.jsonl``, ...).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("pivottrace", "baselines", "analysis")
LABELED = "pivottrace.labeled"

LABEL_FREE = ("pivottrace.method", "pivottrace.data", "pivottrace.sampling", "pivottrace.testbed",
              "pivottrace.pretrained",
              "baselines")
"""Module prefixes that must never reach :data:`LABELED`, directly or transitively."""

ALLOWED_IMPORTERS = {
    "pivottrace.cli": "dispatches the label-reading verbs (base-report, oracle-scores)",
    "pivottrace.records": "pseudo-label accuracy of a finished run (analysis only)",
    "pivottrace.rl.train": "asks the annotation oracle for the annotate route's gold",
    "pivottrace.bench.train": "gives the bare-TRL reference the same gold rows as the train rule",
}
"""Modules outside :data:`LABELED` allowed to import it, each with its reason."""

READ_CALLS = {"open", "read_jsonl", "read_json", "read_text", "read_bytes", "read_csv", "load",
              "loads", "safe_load"}


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Known modules that ``name`` imports anywhere in its file (parents of a dotted name too)."""
    package = name if _is_package(path) else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets.add(base)
            targets |= {f"{base}.{a.name}" for a in node.names}
    out = set()
    for t in targets:
        parts = t.split(".")
        out |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & known
    out.discard(name)
    return out


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: imports_of(name, path, set(mods)) for name, path in mods.items()}


def _inside(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def chain_to(graph: dict[str, set[str]], start: str, target: str) -> list[str] | None:
    """The shortest import chain from ``start`` to a module inside ``target``, or None."""
    seen, frontier = {start}, [[start]]
    while frontier:
        nxt = []
        for chain in frontier:
            for dep in sorted(graph.get(chain[-1], ())):
                if _inside(dep, target):
                    return [*chain, dep]
                if dep not in seen:
                    seen.add(dep)
                    nxt.append([*chain, dep])
        frontier = nxt
    return None


def firewall_violations(graph: dict[str, set[str]]) -> list[str]:
    """Every broken import rule of ``graph``, as readable lines."""
    out = []
    for name in sorted(graph):
        if any(_inside(name, p) for p in LABEL_FREE):
            chain = chain_to(graph, name, LABELED)
            if chain:
                out.append(f"label-free {name} reaches the label readers: {' -> '.join(chain)}")
        if not _inside(name, LABELED) and name not in ALLOWED_IMPORTERS and \
                any(_inside(d, LABELED) for d in graph[name]):
            out.append(f"{name} imports {LABELED} but is not an allowed importer")
    return out


def test_the_tree_keeps_the_firewall():
    graph = import_graph()
    assert "pivottrace.method.selection" in graph and "pivottrace.labeled.oracle" in graph
    assert firewall_violations(graph) == []
    for name in ALLOWED_IMPORTERS:  # a stale entry would hide nothing but mislead a reader
        assert any(_inside(d, LABELED) for d in graph[name]), name


@pytest.mark.parametrize("module", ["pivottrace.method.selection", "baselines.policies",
                                    "pivottrace.method.scoring", "pivottrace.sampling"])
def test_a_label_reader_import_in_a_label_free_module_is_caught(module):
    graph = import_graph()
    graph[module] = graph[module] | {"pivottrace.labeled.oracle"}
    found = firewall_violations(graph)
    assert any(line.startswith(f"label-free {module} reaches") for line in found), found
    assert any(line.startswith(f"{module} imports") for line in found), found


def test_an_indirect_chain_is_caught():
    graph = import_graph()
    # selection -> pool is a real edge; make pool import the oracle scores
    assert "pivottrace.data.pool" in graph["pivottrace.method.selection"]
    graph["pivottrace.data.pool"] = graph["pivottrace.data.pool"] | {"pivottrace.labeled.oracle_scores"}
    found = firewall_violations(graph)
    assert any("pivottrace.method.selection -> pivottrace.data.pool -> "
               "pivottrace.labeled.oracle_scores" in line for line in found), found


def test_relative_and_function_level_imports_are_seen(tmp_path):
    pkg = tmp_path / "pivottrace" / "method"
    pkg.mkdir(parents=True)
    mod = pkg / "x.py"
    mod.write_text("def f():\n    from ..labeled import oracle\n    return oracle\n")
    known = {"pivottrace.labeled", "pivottrace.labeled.oracle"}
    assert imports_of("pivottrace.method.x", mod, known) == known


class _GoldReads(ast.NodeVisitor):
    def __init__(self):
        self.found: list[int] = []

    def visit_Call(self, node):
        fn = node.func
        name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
        text = " ".join(ast.unparse(a) for a in [*node.args, *(k.value for k in node.keywords)])
        if isinstance(fn, ast.Attribute):
            text += " " + ast.unparse(fn.value)  # Path(gold).read_text()
        if name in READ_CALLS and "gold" in text.lower():
            self.found.append(node.lineno)
        self.generic_visit(node)


def gold_reads(path: Path) -> list[int]:
    finder = _GoldReads()
    finder.visit(ast.parse(path.read_text(encoding="utf-8")))
    return finder.found


def test_only_the_labeled_package_reads_gold_files():
    bad = [f"{name}:{line}" for name, path in _modules().items() if not _inside(name, LABELED)
           for line in gold_reads(path)]
    assert bad == []
    assert gold_reads(REPO / "pivottrace/labeled/oracle.py"), "the oracle reads the gold file"


def test_a_gold_read_outside_labeled_is_caught(tmp_path):
    mod = tmp_path / "m.py"
    mod.write_text("from pivottrace.core.io import read_jsonl\n"
                   "def f(data_dir):\n    return read_jsonl(data_dir / 'pool_gold.jsonl')\n")
    assert gold_reads(mod) == [3]
