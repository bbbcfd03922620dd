"""The shape of the product packages: small modules that state their job, no import cycle, citations that resolve.

Static checks over the source text (ast), no Django needed. Each rule lives here once, for every product
package; tests/amocrm/test_layers.py keeps only what is amocrm's own (the order of its layers).

Also a script: `python tests/test_layout.py [package ...]` prints every module's product imports (module
level and function level alike), the allowed task <-> service pairs and the cycles.
"""

import ast
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("amocrm", "leads", "sales", "monitoring", "conversions", "config")
MAX_LINES = 400
# config/settings.py is the one module that reads the environment: every setting with its comment sits
# in one file an operator can read top to bottom, so it may be a little longer than the rest.
LONGER_ALLOWED = {"config/settings.py": 480}
# A service queues its own app's task and the task calls the service: the only import loops allowed.
# Listed one by one so a new loop is a decision, not an accident.
TASK_SERVICE_PAIRS = {
    frozenset({"amocrm.tasks", "amocrm.webhooks.processing"}),  # a stored delivery's processing
    frozenset({"leads.tasks", "leads.push.schedule"}),  # an account's push
    frozenset({"monitoring.tasks", "monitoring.services"}),  # an alert notification's sending
}
OUTSIDE_CITATIONS = ("../shared", "shared/amocrm-notes", "amocrm-notes.md")


def product_modules(*packages: str) -> dict[str, Path]:
    """Dotted module name → file, for every module of `packages` outside migrations."""
    modules = {}
    for package in packages or PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if "migrations" in parts:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def imports(module: str, path: Path, known: set[str]) -> list[tuple[str, bool]]:
    """(known module, inside a function) for every import in the file; `from x import y` counts as x.y when
    x.y is a module, and relative imports are resolved against `module`."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    in_function = {id(node) for function in ast.walk(tree)
                   if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef)
                   for node in ast.walk(function) if node is not function}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            # The deepest known module the name lies in (amocrm.webhooks.parser.X → amocrm.webhooks.parser).
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != module:
                found.append((target, id(node) in in_function))
    return found


def import_graph(*packages: str) -> dict[str, set[str]]:
    """Module → the product modules it imports anywhere in its file (at module level or inside a function)."""
    modules = product_modules(*packages)
    known = set(modules)
    # A package's own __init__ is imported on the way to each of its modules: not an edge worth counting.
    return {name: {target for target, _ in imports(name, path, known) if not name.startswith(target + ".")}
            for name, path in modules.items()}


def cycles(graph: dict[str, set[str]], allowed: set[frozenset[str]] = frozenset()) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), after dropping the `allowed` pairs' edges."""
    edges = {node: {target for target in targets if frozenset({node, target}) not in allowed}
             for node, targets in graph.items()}
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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
        for target in graph.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def is_task_service_pair(pair: frozenset[str]) -> bool:
    """Two modules of one app, one of them the app's `tasks`."""
    names = sorted(pair)
    return (len(names) == 2 and names[0].split(".")[0] == names[1].split(".")[0]
            and sum(name.rpartition(".")[2] == "tasks" for name in names) == 1)


def heading_anchors(markdown: Path) -> set[str]:
    """GitHub's anchors for the file's headings: lower case, punctuation dropped, spaces as hyphens."""
    return {re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
            for line in markdown.read_text().splitlines() if line.startswith("#")}


# ---------------------------------------------------------------------------- the tests


def test_no_module_is_over_the_size_limit():
    too_long = {}
    for path in product_modules().values():
        lines = len(path.read_text().splitlines())
        if lines > LONGER_ALLOWED.get(relative(path), MAX_LINES):
            too_long[relative(path)] = lines
    assert too_long == {}


def test_every_module_states_its_job_in_its_first_line():
    """A docstring opening the file with a sentence; an empty package marker has no job to state."""
    missing = []
    for path in product_modules().values():
        text = path.read_text()
        first = text.splitlines()[:1]
        if text.strip() and (not first or not first[0].startswith('"""') or len(first[0].strip('" ')) < 10):
            missing.append(relative(path))
    assert missing == []


def test_no_import_cycle_but_the_listed_task_service_pairs():
    """Function-local imports count: an import moved into a function to dodge a cycle is still a cycle."""
    assert cycles(import_graph(), TASK_SERVICE_PAIRS) == []


def test_each_allowed_pair_is_a_task_service_pair_that_still_loops():
    graph = import_graph()
    for pair in TASK_SERVICE_PAIRS:
        first, second = sorted(pair)
        assert is_task_service_pair(pair), pair
        assert second in graph[first] and first in graph[second], f"{sorted(pair)} no longer loop: drop the pair"


def test_the_cycle_check_can_fail(tmp_path):
    """A made-up loop is found, function-local or not, and only the exact listed pair is let through."""
    graph = {"a.one": {"a.two"}, "a.two": {"a.three"}, "a.three": {"a.one"}, "a.four": {"a.one"},
             "b.tasks": {"b.services"}, "b.services": {"b.tasks", "b.models"}, "b.models": {"b.services"}}
    assert cycles(graph, {frozenset({"b.tasks", "b.services"})}) == [
        ["a.one", "a.three", "a.two"], ["b.models", "b.services"]]
    assert is_task_service_pair(frozenset({"leads.tasks", "leads.push.schedule"}))
    assert not is_task_service_pair(frozenset({"leads.tasks", "sales.services"}))
    assert not is_task_service_pair(frozenset({"leads.push.engine", "leads.push.schedule"}))

    module = tmp_path / "one.py"
    module.write_text("def later():\n    from . import two\n")
    assert imports("a.one", module, {"a.one", "a.two"}) == [("a.two", True)]


def test_function_local_imports_only_where_django_or_the_task_pair_needs_them():
    """Allowed: AppConfig.ready (Django wants the registry ready) and a service importing its own app's tasks."""
    local = []
    for path in [*product_modules("leads", "sales").values(), ROOT / "config" / "queue.py"]:
        if path.name == "apps.py":
            continue
        for function in ast.walk(ast.parse(path.read_text())):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.ImportFrom) and (node.module or "").rpartition(".")[2] == "tasks":
                    continue
                if isinstance(node, ast.Import | ast.ImportFrom):
                    local.append(f"{relative(path)}:{node.lineno}")
    assert sorted(set(local)) == []


def test_nothing_cites_a_path_outside_the_repository():
    texts = [*product_modules().values(), ROOT / "README.md", ROOT / ".env.example", *(ROOT / "docs").rglob("*.md")]
    citing = [relative(path) for path in texts if any(outside in path.read_text() for outside in OUTSIDE_CITATIONS)]
    assert citing == []


def test_cited_docs_pages_and_their_sections_exist():
    """Code cites `docs/<page>.md#<section>`; README and docs/ link pages and sections in Markdown."""
    citations = []  # (citing file, cited file, anchor or "")
    for path in product_modules().values():
        citations += [(path, ROOT / "docs" / page, anchor)
                      for page, anchor in re.findall(r"\bdocs/([\w\-/]+\.md)(?:#([\w\-]+))?", path.read_text())]
    for path in [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")]:
        for target, anchor in re.findall(r"\]\((?!https?:|mailto:)([^)#\s]*)(?:#([^)\s]+))?\)", path.read_text()):
            citations.append((path, path.parent / target if target else path, anchor))
    missing = []
    for path, target, anchor in citations:
        if not target.exists():
            missing.append(f"{relative(path)}: {os.path.relpath(target, ROOT)} does not exist")
        elif anchor and (target.suffix != ".md" or anchor not in heading_anchors(target)):
            missing.append(f"{relative(path)}: {os.path.relpath(target, ROOT)}#{anchor} is no section")
    assert len(citations) > 10, "the check found next to no citations: its patterns are out of date"
    assert missing == []


if __name__ == "__main__":
    graph = import_graph(*sys.argv[1:])
    for name in sorted(graph):
        print(f"{name} -> {', '.join(sorted(graph[name])) or '(nothing)'}")
    mutual = {frozenset({a, b}) for a in graph for b in graph[a] if a in graph.get(b, ())}
    loops = sorted(sorted(pair) for pair in mutual)
    print(f"\nmutual imports: {loops or 'none'}")
    print(f"allowed task <-> service pairs: {sorted(sorted(pair) for pair in TASK_SERVICE_PAIRS)}")
    found = cycles(graph, TASK_SERVICE_PAIRS)
    print(f"cycles: {found or 'none'}")
    sys.exit(1 if found else 0)
