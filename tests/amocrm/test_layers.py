"""The shape of amocrm/: import layers without cycles, modules of a readable size, comments citing docs/ only.

Also a script: `python tests/amocrm/test_layers.py [package ...]` prints every module's amoCRM-internal
imports and the cycles among them (module-level and function-level imports alike).
"""

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Not product code: the sandbox is a fake amoCRM for tests and benchmarks (moving out of amocrm/).
EXCLUDED = ("migrations", "sandbox")
MAX_LINES = 400


def product_modules(package: str = "amocrm") -> dict[str, Path]:
    """Dotted module name → file, for every module of `package` outside migrations and the sandbox."""
    modules = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if any(part in EXCLUDED for part in parts):
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _imported(module: str, path: Path, known: set[str]) -> set[str]:
    """The known modules `module` imports anywhere in its file (at module level or inside a function)."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            # `from . import errors` names a submodule; `from .client import X` names the module itself.
            names = [f"{prefix}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            # The deepest known module the name lies in (amocrm.webhooks.parser.X → amocrm.webhooks.parser).
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def import_graph(packages: tuple[str, ...] = ("amocrm",)) -> dict[str, set[str]]:
    modules = {}
    for package in packages:
        modules.update(product_modules(package))
    known = set(modules)
    # A package's own __init__ is imported on the way to each of its modules: not an edge worth counting.
    return {name: {dep for dep in _imported(name, path, known) if not name.startswith(dep + ".")}
            for name, path in modules.items()}


def _is_task_service_pair(a: str, b: str) -> bool:
    """A service enqueues its own app's task and the task calls the service: the one allowed loop."""
    return any(x.rpartition(".")[2] == "tasks" and x.split(".")[0] == y.split(".")[0] for x, y in ((a, b), (b, a)))


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), after dropping task ↔ service pairs."""
    edges = {node: {dep for dep in deps if not (node in graph.get(dep, ()) and _is_task_service_pair(node, dep))}
             for node, deps in graph.items()}
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in edges.get(node, ()):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return groups


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for dep in graph.get(todo.pop(), ()):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


# ---------------------------------------------------------------------------- the tests


def test_amocrm_has_no_import_cycle_counting_function_local_imports():
    assert cycles(import_graph()) == []


def test_the_layers_import_only_downwards():
    graph = import_graph()
    # transport → oauth → tokens → client → services: each may use the ones before it, never one after.
    layers = ["amocrm.transport", "amocrm.oauth", "amocrm.tokens", "amocrm.client", "amocrm.services"]
    for position, layer in enumerate(layers):
        above = set(layers[position + 1:])
        assert not reachable(graph, layer) & above, f"{layer} reaches {sorted(reachable(graph, layer) & above)}"


def test_the_transport_knows_nothing_of_tokens():
    graph = import_graph()
    assert not reachable(graph, "amocrm.transport") & {"amocrm.tokens", "amocrm.oauth", "amocrm.client"}
    source = (ROOT / "amocrm" / "transport.py").read_text()
    assert not re.search(r"\bToken\b|refresh", source), "the transport must not handle tokens"


def test_no_amocrm_module_is_over_400_lines():
    sizes = {name: len(path.read_text().splitlines()) for name, path in product_modules().items()}
    assert {name: size for name, size in sizes.items() if size > MAX_LINES} == {}


def test_code_comments_cite_docs_in_the_repository_and_their_sections_exist():
    headings = {re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
                for line in (ROOT / "docs" / "amocrm.md").read_text().splitlines() if line.startswith("#")}
    for path in product_modules().values():
        text = path.read_text()
        assert "shared/amocrm-notes" not in text, path
        for anchor in re.findall(r"docs/amocrm\.md#([\w\-]+)", text):
            assert anchor in headings, f"{path}: docs/amocrm.md#{anchor} is no section"


if __name__ == "__main__":
    packages = tuple(sys.argv[1:]) or ("amocrm",)
    graph = import_graph(packages)
    for name in sorted(graph):
        print(f"{name} -> {', '.join(sorted(graph[name])) or '(nothing)'}")
    found = cycles(graph)
    allowed = sorted({tuple(sorted((a, b))) for a in graph for b in graph[a]
                      if a in graph.get(b, ()) and _is_task_service_pair(a, b)})
    print(f"\ntask <-> service pairs (allowed): {allowed or 'none'}")
    print(f"cycles: {found or 'none'}")
    sys.exit(1 if found else 0)
