"""The layering the design asks for, read from the source: `hardware/` never imports `agent/`, and
no module imports itself back through others (lazy imports inside functions count too)."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("agent", "hardware", "sim")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Each module of PACKAGES and the modules of PACKAGES it imports (anywhere in its body)."""
    files = {module_name(f): f for package in PACKAGES for f in (ROOT / package).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        named: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                named.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                named.add(node.module)
                named.update(f"{node.module}.{alias.name}" for alias in node.names)
        graph[name] = {other for other in named if other in files and other != name}
    return graph


def test_hardware_never_imports_agent() -> None:
    graph = import_graph()
    assert len(graph) > 50  # the walk found the packages
    package = {name: name.split(".")[0] for name in graph}
    crossing = [
        (m, d) for m, deps in graph.items() for d in deps if (package[m], package[d]) == ("hardware", "agent")
    ]
    assert crossing == []


def test_no_import_cycles() -> None:
    try:
        tuple(graphlib.TopologicalSorter(import_graph()).static_order())
    except graphlib.CycleError as exc:
        raise AssertionError(f"import cycle: {' -> '.join(exc.args[1])}") from None
