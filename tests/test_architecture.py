"""The repository's import architecture (issue 20), checked on the source (AST), never by importing it.

(a) No module imports another module's private (``_name``) attribute, as ``from m import _x`` or as ``m._x`` on an
    imported module. A private *module* (``dispersion_score/_native.py``) may be imported inside its own package;
    benchmarks may import the library's private modules listed in :data:`BENCHMARK_PRIVATE_MODULES`, each with
    its reason. Only the repository's own modules count (``os._exit`` is the standard library's API).
(b) No import cycle among the repository's modules: module- and function-level imports, except those under
    ``if TYPE_CHECKING:`` (never executed).
(c) The layers import only downwards: ``dispersion_score`` (the library stands alone) ← ``dataset`` ← ``models`` ←
    ``experiments``; a module of one layer imports nothing from a layer after it in :data:`LAYERS`.

tests/ is exempt as an importer. The checkers are plain functions of the sources, so the tests at the end show each
one fails on a violation.
"""

from __future__ import annotations

import ast
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# (benchmark module, private library module) -> why the benchmark needs the module rather than the public API.
BENCHMARK_PRIVATE_MODULES = {
    ("benchmarks.bench_chamfer", "dispersion_score._chamfer_kernel"): (
        "times the compiled kernel's instruction-set variants (load_variant, VARIANT_FLAGS, pack_store) against each "
        "other, which the public API deliberately hides"
    ),
    ("benchmarks.bench_chamfer", "dispersion_score._native"): (
        "builds the peak-throughput reference kernel with the library's own compiler driver and flags"
    ),
    ("benchmarks.bench_kmedoids_loops", "dispersion_score._kmedoids_kernel"): (
        "times the compiled k-medoids kernel's instruction-set variants and both swap loops (load_variant, swap's "
        "batched=), which the public API deliberately hides"
    ),
    ("benchmarks.bench_kmedoids_loops", "dispersion_score._native"): ("lists the variants this CPU can run (cpu_has)"),
    ("benchmarks.bench_oracle", "dispersion_score._chamfer_kernel"): (
        "compiles the kernel (once per machine) before the timings, so the first case is not charged for it"
    ),
    ("benchmarks.gpu.step_compute", "dispersion_score._chamfer_kernel"): (
        "records which CPU backend the GPU-vs-CPU comparison ran against (kernel or torch) and why"
    ),
    ("benchmarks.gpu.steps", "dispersion_score._chamfer_kernel"): (
        "records in the device report whether the compiled kernel builds on the machine, and why not"
    ),
}
LAYERS = ("dispersion_score", "dataset", "models", "experiments")


@dataclass(frozen=True)
class Module:
    name: str
    path: str
    tree: ast.Module
    is_package: bool


@dataclass(frozen=True)
class Imported:
    """One imported name: ``module`` (absolute), for ``from module import name`` the ``name``, and the local name
    the statement binds (``import a.b`` binds ``a``; ``import a.b as c`` binds ``c`` to ``a.b``)."""

    line: int
    module: str
    name: str | None
    type_checking: bool
    bound: str
    bound_to: str


def module_name(path: str) -> tuple[str, bool]:
    parts = list(Path(path).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    return ".".join(parts), is_package


def modules_from_sources(sources: dict[str, str]) -> dict[str, Module]:
    """{module name: Module} of {path relative to the repository: source}; tests/ left out."""
    modules = {}
    for path, source in sources.items():
        if path.startswith("tests/"):
            continue
        name, is_package = module_name(path)
        modules[name] = Module(name, path, ast.parse(source, filename=path), is_package)
    return modules


def repository_sources() -> dict[str, str]:
    """Every tracked or new (not ignored) .py file of the checkout."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return {path: (REPO / path).read_text() for path in listed if (REPO / path).is_file()}


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(child) for child in ast.walk(node)}
    return skipped


def imports_of(module: Module) -> Iterator[Imported]:
    """Every import statement of the module, at any depth, with relative imports made absolute."""
    skipped = _type_checking_nodes(module.tree)
    package = module.name if module.is_package else module.name.rpartition(".")[0]
    for node in ast.walk(module.tree):
        hidden = id(node) in skipped
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                bound, bound_to = (alias.asname, alias.name) if alias.asname else (top, top)
                yield Imported(node.lineno, alias.name, None, hidden, bound, bound_to)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                yield Imported(
                    node.lineno, base, alias.name, hidden, alias.asname or alias.name, f"{base}.{alias.name}"
                )


def _longest_module(name: str, modules: dict[str, Module]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _private_module_problem(importer: str, target: str) -> str | None:
    """Why ``importer`` may not import repository module ``target``, or None: each private component of
    ``target`` must be inside a package that also holds the importer (or be a listed benchmark exception)."""
    parts = target.split(".")
    for i, part in enumerate(parts):
        if not _is_private(part):
            continue
        package = ".".join(parts[:i])
        inside = importer == package or importer.startswith(package + ".")
        if inside or (importer, target) in BENCHMARK_PRIVATE_MODULES:
            continue
        return f"imports the private module {target} from outside its package {package}"
    return None


def private_import_violations(modules: dict[str, Module]) -> list[str]:
    """(a): ``path:line: importer ...`` for every import of another module's private attribute, and of a private
    module from outside its package."""
    problems = []
    for module in modules.values():
        aliases: dict[str, str] = {}  # local name -> repository module it is bound to
        for imported in imports_of(module):
            target = _longest_module(imported.module, modules)
            if imported.name is None:
                if target is not None:
                    problem = _private_module_problem(module.name, target)
                    if problem:
                        problems.append(f"{module.path}:{imported.line}: {problem}")
                    aliases[imported.bound] = imported.bound_to
                continue
            if target is None or target != imported.module:
                continue  # not a repository module (or a name of a module the repository does not hold)
            submodule = f"{imported.module}.{imported.name}"
            if submodule in modules:
                aliases[imported.bound] = imported.bound_to
                problem = _private_module_problem(module.name, submodule)
            elif _is_private(imported.name):
                problem = f"imports the private name {imported.name} of {imported.module}"
            else:
                problem = _private_module_problem(module.name, imported.module)
            if problem:
                problems.append(f"{module.path}:{imported.line}: {problem}")
        for node in ast.walk(module.tree):
            if not (isinstance(node, ast.Attribute) and _is_private(node.attr)):
                continue
            dotted = _dotted(node.value)
            if dotted is None or dotted.split(".")[0] not in aliases:
                continue
            head, _, rest = dotted.partition(".")
            owner = ".".join(filter(None, [aliases[head], rest]))
            if owner not in modules:
                continue
            if f"{owner}.{node.attr}" in modules:
                problem = _private_module_problem(module.name, f"{owner}.{node.attr}")
            else:
                problem = f"uses the private name {node.attr} of {owner}"
            if problem:
                problems.append(f"{module.path}:{node.lineno}: {problem}")
    return sorted(set(problems))


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def import_graph(modules: dict[str, Module]) -> dict[str, set[str]]:
    """{module: repository modules it imports}, TYPE_CHECKING imports left out; ``from p import m`` of a submodule
    counts as importing ``p.m``."""
    graph: dict[str, set[str]] = {}
    for module in modules.values():
        edges = set()
        for imported in imports_of(module):
            if imported.type_checking:
                continue
            names = [imported.module]
            if imported.name is not None:
                names.append(f"{imported.module}.{imported.name}")
            for name in names:
                target = _longest_module(name, modules)
                if target is not None and target != module.name:
                    edges.add(target)
        graph[module.name] = edges
    return graph


def import_cycles(modules: dict[str, Module]) -> list[list[str]]:
    """(b): the strongly connected components of more than one module (each holds a cycle), sorted."""
    graph = import_graph(modules)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        # Iterative Tarjan: (node, iterator over its successors).
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))
    return sorted(components)


def layer_violations(modules: dict[str, Module]) -> list[str]:
    """(c): imports (any, TYPE_CHECKING included) of a later layer of :data:`LAYERS` from an earlier one."""
    problems = []
    for module in modules.values():
        layer = module.name.split(".")[0]
        if layer not in LAYERS:
            continue
        above = LAYERS[LAYERS.index(layer) + 1 :]
        for imported in imports_of(module):
            if imported.module.split(".")[0] in above:
                problems.append(f"{module.path}:{imported.line}: imports {imported.module}")
    return problems


@pytest.fixture(scope="module")
def repository() -> dict[str, Module]:
    return modules_from_sources(repository_sources())


def test_no_module_imports_another_modules_private_names(repository: dict[str, Module]) -> None:
    problems = private_import_violations(repository)
    assert not problems, "private imports across module borders:\n" + "\n".join(problems)


def test_benchmark_exceptions_are_still_needed(repository: dict[str, Module]) -> None:
    """A listed exception whose import is gone is removed from the list, so the list stays the truth."""
    used = set()
    for module in repository.values():
        for imported in imports_of(module):
            for name in (imported.module, f"{imported.module}.{imported.name}"):
                used.add((module.name, name))
    assert set(BENCHMARK_PRIVATE_MODULES) <= used, sorted(set(BENCHMARK_PRIVATE_MODULES) - used)


def test_no_import_cycles(repository: dict[str, Module]) -> None:
    cycles = import_cycles(repository)
    assert not cycles, "import cycles (strongly connected modules):\n" + "\n".join(map(str, cycles))


def test_layers_import_only_downwards(repository: dict[str, Module]) -> None:
    problems = layer_violations(repository)
    assert not problems, "imports of a layer above:\n" + "\n".join(problems)


# --- the checkers fail on violations ------------------------------------------------------------------------


def test_private_import_check_flags_each_form() -> None:
    modules = modules_from_sources(
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "_hidden = 1\nshown = 2\n",
            "pkg/_impl.py": "value = 1\n",
            "pkg/ok.py": "from pkg import _impl\nfrom pkg._impl import value\nfrom pkg.a import shown\n",
            "other/__init__.py": "",
            "other/b.py": "from pkg.a import _hidden\n",
            "other/c.py": "import pkg.a\n\n\ndef f():\n    return pkg.a._hidden\n",
            "other/d.py": "from pkg import a as alias\nx = alias._hidden\n",
            "other/e.py": "from pkg._impl import value\n",
            "other/f.py": "from ..pkg import _impl\n",
            "other/g.py": "import os\nos._exit\n",
            "tests/test_x.py": "from pkg.a import _hidden\n",
        }
    )
    problems = private_import_violations(modules)
    assert [p.split(":")[0] for p in problems] == [
        "other/b.py",
        "other/c.py",
        "other/d.py",
        "other/e.py",
        "other/f.py",
    ], problems


def test_cycle_check_finds_function_level_cycles_but_not_type_checking_ones() -> None:
    sources = {
        "p/__init__.py": "",
        "p/a.py": "from p import b\n",
        "p/b.py": "def f():\n    from p.c import g\n",
        "p/c.py": "import p.a\n",
        "p/d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from p.e import x\n",
        "p/e.py": "from p.d import y\n",
    }
    assert import_cycles(modules_from_sources(sources)) == [["p.a", "p.b", "p.c"]]
    sources["p/b.py"] = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from p.c import g\n"
    assert import_cycles(modules_from_sources(sources)) == []


def test_layer_check_flags_an_import_of_the_experiments() -> None:
    modules = modules_from_sources(
        {"dispersion_score/__init__.py": "", "dispersion_score/x.py": "def f():\n    import experiments.runner\n"}
    )
    assert layer_violations(modules) == ["dispersion_score/x.py:2: imports experiments.runner"]
    modules = modules_from_sources({"dataset/__init__.py": "", "dataset/y.py": "from models.engine import train\n"})
    assert layer_violations(modules) == ["dataset/y.py:1: imports models.engine"]


def test_the_wheel_checks_library_tests_import_only_the_library() -> None:
    """.ci/wheel_check.sh runs these tests against the installed wheel, where dataset/models/experiments do not
    exist: an import of them there fails only in CI, after the whole suite (it happened once)."""
    script = (REPO / ".ci" / "wheel_check.sh").read_text()
    loop = re.search(r"for name in (conftest\.py .*?); do", script, re.S)
    assert loop, "wheel_check.sh's list of library tests not found"
    paths = [f"tests/{name}" for name in loop.group(1).replace("\\", " ").split()]
    paths += ["tests/test_perceptual.py", "benchmarks/_inputs.py"]
    assert "tests/test_tutorial.py" in paths and len(paths) > 5
    problems = []
    for path in paths:
        name, is_package = module_name(path)
        module = Module(name, path, ast.parse((REPO / path).read_text(), filename=path), is_package)
        problems += [
            f"{path}:{imported.line}: imports {imported.module}"
            for imported in imports_of(module)
            if imported.module.split(".")[0] in LAYERS[1:]
        ]
    assert not problems, "library tests importing the experiment layers:\n" + "\n".join(problems)
