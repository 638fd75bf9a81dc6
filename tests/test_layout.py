"""The package layout: no import cycles between modules, each module importable alone, and the
top-level listing the README documents.

The import graph is read statically from every module's source, imports inside functions included
(a lazy import still ties the two modules together). Only imports under `if TYPE_CHECKING:` are left
out: they never run, and are the way a module names a type from a module that imports it.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "videoproc")


def _modules() -> dict[str, str]:
    """Dotted module name -> source path, package __init__ files named after their package."""
    found = {}
    for folder, dirs, files in os.walk(PACKAGE):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            rel = os.path.relpath(os.path.join(folder, name), ROOT)[: -len(".py")]
            dotted = rel.replace(os.sep, ".").removesuffix(".__init__")
            found[dotted] = os.path.join(folder, name)
    return found


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, package: str):
    """Every import statement in `tree` that can run, with relative imports made absolute."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from (n for child in node.orelse for n in _imports(child, package))
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            for alias in node.names:
                yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
        yield from _imports(node, package)


def import_graph() -> dict[str, set[str]]:
    """Module -> the videoproc modules it imports (a submodule imported by name counts as itself;
    a package's implicit import of its parents does not count)."""
    graph = {}
    for name, path in MODULES.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), filename=path)
        package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
        targets = set()
        for target in _imports(tree, package):
            while target and target not in MODULES:  # `import videoproc.a.b` names a module or its package
                target = target.rpartition(".")[0]
            if target and target != name:
                targets.add(target)
        graph[name] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_sees_lazy_imports_and_the_cycle_finder_finds_cycles():
    graph = import_graph()
    # cli registers the stages' commands at import; generate's runner imports its Ray executor lazily.
    assert "videoproc.preprocess.command" in graph["videoproc.cli"]
    assert "videoproc.generate.executor_ray" in graph["videoproc.generate.runner"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_shared_layer_imports_no_stage():
    graph = import_graph()
    for name, targets in graph.items():
        if name.startswith("videoproc.common"):
            stray = sorted(t for t in targets if not t.startswith("videoproc.common"))
            assert not stray, f"{name} is in the shared layer but imports {stray}"


def _import_alone(module: str) -> tuple[str, int, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    last_line = (done.stderr.strip().splitlines() or [""])[-1]
    return module, done.returncode, last_line


def test_every_module_imports_alone_in_a_fresh_interpreter():
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(_import_alone, sorted(MODULES)))
    failed = [f"{module}: {error}" for module, code, error in results if code != 0]
    assert len(results) == len(MODULES) > 60
    assert not failed, "modules that fail to import alone:\n" + "\n".join(failed)


def _documented_top_level() -> set[str]:
    """The entries of the README's Project layout tree directly under videoproc/."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    section = text.split("## Project layout", 1)[1]
    tree = section.split("```", 2)[1]
    return set(re.findall(r"^  (\S+)", tree.split("videoproc/", 1)[1].split("\njobs/", 1)[0], re.M))


def test_the_top_level_listing_is_the_documented_layout():
    on_disk = {
        name + ("/" if os.path.isdir(os.path.join(PACKAGE, name)) else "")
        for name in os.listdir(PACKAGE)
        if name != "__pycache__"
    }
    expected = {"__init__.py", "cli.py", "common/", "generate/", "preprocess/", "read/", "report/", "source/", "video/"}
    assert on_disk == expected
    assert _documented_top_level() == expected - {"__init__.py"}


@pytest.mark.parametrize("folder", ["common", "video", "preprocess", "source", "generate", "read", "report"])
def test_every_module_of_a_stage_is_in_the_readme(folder):
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        layout = f.read().split("## Project layout", 1)[1].split("```", 2)[1]
    listed = set(re.findall(r"\b(\w+)\.py\b", layout)) | set(re.findall(r"\b(\w+)/", layout))
    names = {name.rpartition(".")[2] for name in MODULES if name.startswith(f"videoproc.{folder}.")}
    missing = sorted(names - listed)
    assert not missing, f"videoproc/{folder}/ modules missing from the README's Project layout: {missing}"
