"""The layout keeps its promises: no import circles, small modules and folders, layers that point one way."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "app"
MAX_MODULE_LINES = 420
MAX_MODULES_PER_FOLDER = 12
# Plain Python below the web layer: none of these may import FastAPI or Starlette.
NO_WEB_FRAMEWORK = ("engine", "serving", "control", "runtime", "jobs", "wire", "live")


def _module(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Modules ``path`` imports at its top level (imports inside functions are deferred on purpose)."""
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _app_graph() -> dict[str, set[str]]:
    modules = {_module(path): path for path in APP.rglob("*.py")}
    return {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def test_no_import_circles():
    graph = _app_graph()
    visiting: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> None:
        if module in done:
            return
        if module in visiting:
            cycle = [*visiting[visiting.index(module) :], module]
            pytest.fail("import circle: " + " -> ".join(cycle))
        visiting.append(module)
        for imported in sorted(graph[module]):
            if not imported.startswith(module + "."):  # a package importing its own submodule
                visit(imported)
        visiting.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)


def test_modules_and_folders_stay_small():
    long = {
        str(p.relative_to(REPO)): n
        for p in APP.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"
    for folder in [APP, *(d for d in APP.rglob("*") if d.is_dir() and d.name != "__pycache__")]:
        modules = [p for p in folder.glob("*.py") if p.name != "__init__.py"]
        assert len(modules) <= MAX_MODULES_PER_FOLDER, f"{folder.relative_to(REPO)} has {len(modules)} modules"


@pytest.mark.parametrize("layer", NO_WEB_FRAMEWORK)
def test_layers_below_http_do_not_import_the_web_framework(layer):
    for path in (APP / layer).rglob("*.py"):
        web = {m for m in _imports(path) if m.split(".")[0] in ("fastapi", "starlette") or m.startswith("app.http")}
        assert not web, f"{path.relative_to(REPO)} imports {sorted(web)}"


def test_tests_do_not_import_the_benchmarks():
    for path in (REPO / "tests").rglob("*.py"):
        benches = {m for m in _imports(path) if m.split(".")[0] == "bench"}
        assert not benches, f"{path.relative_to(REPO)} imports {sorted(benches)}"
