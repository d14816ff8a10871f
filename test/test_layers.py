"""No module imports from a layer above its own (docs/architecture.md draws the layers)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "liquid_control"
# Bottom to top; a module may import its own layer and the ones below it.
LAYERS = [
    {"errors", "atomic", "paths", "schema", "image", "visual"},
    {"models"},
    {"envs"},
    {"experts"},
    {"data"},
    {"explain"},
    {"ros"},
    {"train"},
    {"bench"},
    {"cli", "__init__"},
]
# Known upward imports, each with the reason it still exists.
ALLOWED: set[tuple[str, str]] = set()


def layer_of(part: str) -> int:
    return next(i for i, names in enumerate(LAYERS) if part in names)


def imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found.extend(a.name for a in node.names)
    return [m for m in found if m.startswith("liquid_control.")]


def test_no_module_imports_from_a_layer_above_it() -> None:
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        own = layer_of(rel.parts[0] if len(rel.parts) > 1 else rel.stem)
        for module in imports(path):
            if layer_of(module.split(".")[1]) > own and (rel.as_posix(), module) not in ALLOWED:
                upward.append(f"{rel.as_posix()} imports {module}")
    assert upward == []


def test_every_allowed_upward_import_still_exists() -> None:
    """An exception that is no longer needed is removed from ALLOWED."""
    for rel, module in ALLOWED:
        assert module in imports(PACKAGE / rel), (rel, module)
