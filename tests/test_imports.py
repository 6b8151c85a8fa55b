"""The import graph of `rnnlab`, read from the source (function-local imports included; those under
`if TYPE_CHECKING:`, which never run, left out): no module imports itself back through others, and the cell
modules do not import each other."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in (SRC / "rnnlab").rglob("*.py")}


def _existing(name: str) -> str:
    """`name`, or the longest prefix of it that is a module (`from a import b` where b is not a module)."""
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The dotted names an import statement in `module` asks for."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:  # relative: from the module's package, `level - 1` packages up
        package = module if MODULES[module].name == "__init__.py" else module.rsplit(".", 1)[0]
        package = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
        base = f"{package}.{base}" if base else package
    return [f"{base}.{alias.name}" for alias in node.names]


def _statements(node: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement under `node`, at any depth, except in the body of `if TYPE_CHECKING:`."""
    if isinstance(node, ast.Import | ast.ImportFrom):
        return [node]
    children = list(ast.iter_child_nodes(node))
    if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
        children = node.orelse
    return [statement for child in children for statement in _statements(child)]


@cache
def imports(module: str) -> frozenset[str]:
    """The rnnlab modules that importing `module` runs directly: every module named by an import statement anywhere
    in its file, and the packages above it that `module` is not inside (their `__init__` runs first)."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found = set()
    for node in _statements(tree):
        for target in _targets(module, node):
            if target.split(".")[0] != "rnnlab":
                continue
            target = _existing(target)
            parts = target.split(".")
            for depth in range(1, len(parts) + 1):
                above = ".".join(parts[:depth])
                if above in MODULES and not (module == above or module.startswith(above + ".")):
                    found.add(above)
    return frozenset(found)


def cycles() -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in imports(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in imports(v):
                found.append(sorted(component))

    for module in sorted(MODULES):
        if module not in index:
            visit(module)
    return found


def reachable(start: str) -> set[str]:
    """Every module that importing `start` runs, directly or not."""
    seen, todo = set(), [start]
    while todo:
        for target in imports(todo.pop()) - seen:
            seen.add(target)
            todo.append(target)
    return seen


def test_the_graph_is_read_from_every_kind_of_import() -> None:
    """Top-level, function-local and relative imports, and a package's `__init__` run by importing a submodule."""
    assert "rnnlab.nn.registry" in imports("rnnlab.nn.cells")  # `from rnnlab.nn.registry import ...`
    assert {"rnnlab.nn", "rnnlab.nn.recurrent"} <= imports("rnnlab.lm.stepper")  # rnnlab.nn's __init__ runs
    assert "rnnlab.nn" not in imports("rnnlab.nn.cells")  # already running: cells is inside it
    assert "rnnlab.nn.scan" in imports("rnnlab.nn")
    local = "rnnlab.analysis.gradients"  # cli/probe.py imports it inside a function
    assert local in imports("rnnlab.analysis.cli")
    assert "rnnlab.lm.model" not in imports("rnnlab.lm.stepper")  # under TYPE_CHECKING


def test_there_is_no_import_cycle() -> None:
    assert cycles() == []


def test_the_cell_modules_do_not_import_each_other() -> None:
    """scan.py builds on cells.py's `Cell`; cells.py must not reach scan.py, even through a function-local import
    (the registry, which cells.py imports, imports no cell module)."""
    assert "rnnlab.nn.scan" not in reachable("rnnlab.nn.cells")
    assert not reachable("rnnlab.nn.registry") & {"rnnlab.nn.cells", "rnnlab.nn.scan"}


CORE = ("rnnlab.nn", "rnnlab.train", "rnnlab.data", "rnnlab.rundir", "rnnlab.config", "rnnlab.errors",
        "rnnlab.ui", "rnnlab.metrics", "rnnlab.threads", "rnnlab._version")  # fmt: skip
APPS = ("rnnlab.lm", "rnnlab.seq", "rnnlab.esn", "rnnlab.lab", "rnnlab.analysis", "rnnlab.serve",
        "rnnlab.reference", "rnnlab.baselines", "rnnlab.cli", "rnnlab.info", "rnnlab.__main__")  # fmt: skip


def _within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def test_every_module_is_core_an_app_or_a_task_generator() -> None:
    others = [m for m in MODULES if not _within(m, CORE + APPS + ("rnnlab.tasks",)) and m != "rnnlab"]
    assert others == [], "place each module in the core, an app or tasks/ (../shared/DESIGN.md)"


def test_the_core_never_imports_an_app_and_tasks_only_generate_data() -> None:
    """nn/, train/, data/ and the core modules run no app's code when imported (an app may import the core);
    tasks/ holds data generators, which import neither apps nor models."""
    for module in MODULES:
        if _within(module, CORE) or _within(module, ("rnnlab.tasks",)):
            apps = sorted(m for m in reachable(module) if _within(m, APPS))
            assert apps == [], f"{module} imports {apps}"
