"""The package layers hold: no module imports a module of a higher layer, and no imports form a
cycle (``src/modelmix/layers.py`` has the table, ``docs/architecture.md`` explains it).

Imports are read from the source with ``ast``: module-level and function-level ones alike, but
not those under ``if TYPE_CHECKING:`` (they do not run). The only exceptions are the late-bound
plugin lookups ``layers.LATE_BOUND`` lists, each a function-level import.

The cycle check also follows the package ``__init__`` an import runs: importing
``modelmix.simulated.answers`` from outside ``simulated/`` first executes
``simulated/__init__.py``, so a cycle through a package's re-exports is found too.
"""

from __future__ import annotations

import ast
import shutil
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

import modelmix
from modelmix.layers import LATE_BOUND, LAYERS, layer_of

SRC = Path(modelmix.__file__).parent


@dataclass(frozen=True, slots=True)
class Import:
    importer: str
    target: str
    line: int
    late: bool  # inside a function


def _modules(root: Path) -> dict[str, Path]:
    mods = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts).removesuffix(".__init__")
        mods[name] = path
    return mods


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_pkg: bool) -> list[str]:
    """The modules (or, for ``from m import name``, ``m.name`` candidates) an import names."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_pkg else module.split(".")[:-1]
        package = package[: len(package) - node.level + 1]
        base = ".".join([*package, *([node.module] if node.module else [])])
    return [f"{base}.{alias.name}" for alias in node.names]


def _resolve(name: str, mods: dict[str, Path]) -> str | None:
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str, path: Path, mods: dict[str, Path]) -> list[Import]:
    found: list[Import] = []

    def visit(node: ast.AST, late: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.orelse:
                    visit_one(stmt, late)
                continue
            visit_one(child, late)

    def visit_one(node: ast.AST, late: bool) -> None:
        if isinstance(node, ast.Import | ast.ImportFrom):
            for name in _targets(node, module, path.name == "__init__.py"):
                target = _resolve(name, mods) if name.startswith("modelmix") else None
                if target and target != module:
                    found.append(Import(module, target, node.lineno, late))
            return
        visit(node, late or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda))

    visit(ast.parse(path.read_text(), str(path)), False)
    return found


def all_imports(root: Path) -> tuple[dict[str, Path], list[Import]]:
    mods = _modules(root)
    found = [imp for name, path in mods.items() for imp in imports_of(name, path, mods)]
    return mods, list(dict.fromkeys(found))  # ``from m import a, b`` names m once


def _short(module: str) -> str:
    return module.removeprefix("modelmix.")


def late_bound_reason(imp: Import) -> str | None:
    for importer, target, reason in LATE_BOUND:
        if (
            imp.late
            and fnmatch(_short(imp.importer), importer)
            and fnmatch(_short(imp.target), target)
        ):
            return reason
    return None


def layer_violations(mods: dict[str, Path], imports: list[Import]) -> list[str]:
    """``importer (layer) -> target (higher layer)`` for every upward import, and the modules
    the table does not cover."""
    problems = [
        f"{m}: no layer (add it or its package to modelmix/layers.py)"
        for m in mods
        if layer_of(m) is None
    ]
    for imp in imports:
        low, high = layer_of(imp.importer), layer_of(imp.target)
        if low is None or high is None or high <= low or late_bound_reason(imp):
            continue
        problems.append(
            f"{imp.importer}:{imp.line} ({LAYERS[low][0]}) imports {imp.target} ({LAYERS[high][0]})"
        )
    return problems


def import_graph(mods: dict[str, Path], imports: list[Import]) -> dict[str, set[str]]:
    """Module -> modules its import statements run, with the package ``__init__``s on the way
    (those the importer is not itself inside), late-bound lookups left out."""
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for imp in imports:
        if late_bound_reason(imp):
            continue
        graph[imp.importer].add(imp.target)
        package = imp.target.rpartition(".")[0]
        while package and not (imp.importer + ".").startswith(package + "."):
            graph[imp.importer].add(package)
            package = package.rpartition(".")[0]
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_every_module_is_in_a_layer_and_imports_only_its_own_or_lower_layers() -> None:
    mods, imports = all_imports(SRC)
    assert len(mods) > 100 and len(imports) > 300  # the walk saw the package
    assert layer_violations(mods, imports) == []


def test_no_import_cycles() -> None:
    mods, imports = all_imports(SRC)
    assert cycles(import_graph(mods, imports)) == []


def test_every_late_bound_exception_is_a_function_level_import_in_use() -> None:
    _, imports = all_imports(SRC)
    for importer, target, _ in LATE_BOUND:
        matching = [
            imp
            for imp in imports
            if fnmatch(_short(imp.importer), importer) and fnmatch(_short(imp.target), target)
        ]
        assert matching, f"unused exception {importer} -> {target}"
        assert all(imp.late for imp in matching), f"{importer} -> {target} has a top-level import"


def _copy_with(tmp_path: Path, module: str, line: str) -> Path:
    root = tmp_path / "modelmix"
    shutil.copytree(SRC, root, ignore=shutil.ignore_patterns("__pycache__", "*.npz"))
    path = root.joinpath(*module.split(".")[1:]).with_suffix(".py")
    path.write_text(path.read_text() + f"\n{line}\n")
    return root


def test_an_upward_import_is_reported(tmp_path: Path) -> None:
    root = _copy_with(tmp_path, "modelmix.types", "from modelmix.gateway import Gateway")
    problems = layer_violations(*all_imports(root))
    assert len(problems) == 1
    assert (
        problems[0].startswith("modelmix.types:")
        and "imports modelmix.gateway (gateway)" in problems[0]
    )


def test_a_cycle_within_a_layer_is_reported(tmp_path: Path) -> None:
    # request_facts imports tokens; a function-level import back still closes a cycle
    root = _copy_with(tmp_path, "modelmix.tokens", "def f():\n    import modelmix.request_facts")
    mods, imports = all_imports(root)
    assert layer_violations(mods, imports) == []
    assert cycles(import_graph(mods, imports)) == [["modelmix.request_facts", "modelmix.tokens"]]


def test_a_cycle_through_a_package_init_is_reported(tmp_path: Path) -> None:
    # wire.gemini.simulated imports simulated.answers, which runs simulated/__init__ (the app)
    root = _copy_with(
        tmp_path, "modelmix.simulated.app", "from modelmix.wire.gemini.simulated import GeminiWire"
    )
    found = cycles(import_graph(*all_imports(root)))
    assert len(found) == 1
    assert {
        "modelmix.simulated",
        "modelmix.simulated.app",
        "modelmix.wire.gemini.simulated",
    } <= set(found[0])
