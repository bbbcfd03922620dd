"""The shape of leads/, sales/ and config/queue.py: one job per module, small modules, no import cycle.

Static checks over the source text (ast), no Django needed: a module over the size limit, a module
without a first line naming its job, a function-local import nobody needs, a citation of a file
outside the repository or an import loop fails here, not in a newcomer's first week.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPS = ("leads", "sales")
MAX_LINES = 400


def product_modules(*packages: str) -> list[Path]:
    found = []
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if "/migrations/" not in relative:
                found.append(path)
    return found


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, known: set[str]) -> list[tuple[str, bool]]:
    """(module, at function level) for every import of a known module, `from x import y` resolved to x.y
    when x.y is a module; relative imports resolved against `path`."""
    tree = ast.parse(path.read_text())
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    nested = {id(node) for function in ast.walk(tree) if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef)
              for node in ast.walk(function) if node is not function}
    found = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.append((target, id(node) in nested))
    return found


def import_graph(packages: tuple[str, ...]) -> dict[str, set[str]]:
    paths = product_modules(*packages)
    known = {module_name(path) for path in paths}
    return {module_name(path): {target for target, _ in imported_modules(path, known)} for path in paths}


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.add(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def is_task_service_pair(component: set[str]) -> bool:
    """Two modules, one of them an app's `tasks`: the task imports its service, the service queues the task."""
    return len(component) == 2 and any(name.endswith(".tasks") for name in component)


def test_no_module_is_over_the_size_limit():
    sizes = {path.relative_to(ROOT).as_posix(): len(path.read_text().splitlines())
             for path in product_modules(*APPS, "config/queue.py")}
    assert {path: lines for path, lines in sizes.items() if lines > MAX_LINES} == {}


def test_every_module_says_its_one_job_in_its_first_line():
    missing = []
    for path in product_modules(*APPS):
        first = path.read_text().splitlines()[:1]
        if not first or not first[0].startswith('"""') or len(first[0].strip('" ')) < 10:
            missing.append(path.relative_to(ROOT).as_posix())
    assert missing == []


def test_no_import_cycle_but_task_service_pairs():
    components = cycles(import_graph(("leads", "sales", "config")))
    assert [sorted(component) for component in components if not is_task_service_pair(component)] == []


def test_function_local_imports_only_where_django_or_the_task_pair_needs_them():
    """Allowed: AppConfig.ready (Django wants the registry ready) and a service importing its own app's tasks."""
    local = []
    for path in product_modules(*APPS, "config/queue.py"):
        if path.name == "apps.py":
            continue
        tree = ast.parse(path.read_text())
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.ImportFrom) and (node.module or "").rpartition(".")[2] == "tasks":
                    continue
                if isinstance(node, ast.Import | ast.ImportFrom):
                    local.append(f"{path.relative_to(ROOT).as_posix()}:{node.lineno}")
    assert sorted(set(local)) == []


def test_the_cycle_check_finds_a_made_up_loop():
    """The check above must be able to fail: a made-up loop is found."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert is_task_service_pair({"leads.tasks", "leads.push.schedule"})
    assert not is_task_service_pair({"leads.tasks", "leads.push.engine", "leads.push.schedule"})


def test_no_comment_cites_a_file_outside_the_repository():
    citing = [path.relative_to(ROOT).as_posix() for path in product_modules(*APPS, "config/queue.py")
              if "../shared" in path.read_text() or "amocrm-notes" in path.read_text()]
    assert citing == []
