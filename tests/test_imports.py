"""The package's import graph (issue 10): no circles, and no module imports another module's
private (``_x``) names. Every import counts, also those inside functions."""
from __future__ import annotations

import ast
from pathlib import Path

import aimgen

PACKAGE = Path(aimgen.__file__).resolve().parent

def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, str | None]]:
    """(imported module, imported name or None) for every import in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(a.name, None) for a in node.names if a.name.startswith("aimgen")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("aimgen"):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.append((sub, None) if sub in modules else (target, alias.name))
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: {m for m, _ in _imports(name, path, modules) if m in modules and m != name}
            for name, path in modules.items()}


def test_the_import_graph_has_no_cycles():
    graph = _graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_no_module_imports_another_modules_private_names():
    modules = _modules()
    private = [f"{name} imports {target}.{what}" for name, path in modules.items()
               for target, what in _imports(name, path, modules)
               if what and what.startswith("_") and not what.startswith("__") and target != name]
    assert sorted(set(private)) == []


def test_the_io_modules_have_one_job_each():
    """Export does not check, checks do not read files back themselves, nothing reads back
    generated files but readback."""
    graph = _graph()
    assert "aimgen.onnx_checks" not in graph["aimgen.export"] and "aimgen.validate" not in graph["aimgen.export"]
    assert {"aimgen.export", "aimgen.readback"} <= graph["aimgen.onnx_checks"]
    assert "aimgen.api" not in graph["aimgen.weights"]
    assert "aimgen.onnx_checks" in graph["aimgen.validate"]
