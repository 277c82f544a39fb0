"""The package's layers import downwards only (docs/architecture.md): no cycle, no upward arrow.

A module may import from its own layer or any layer below it. Imports inside functions count too: a
lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "explorer"

# Bottom to top. Modules of one layer may use each other; study and export are siblings (neither imports
# the other), and so are perf and compress.
LAYERS: list[set[str]] = [
    {"errors", "datafiles", "fileio", "hooks", "tables", "recent", "runtime", "templates", "__init__"},
    {"hardware"},
    {"data", "evaluators"},
    {"graph"},
    {"dpu"},
    {"perf", "compress"},
    {"export", "study"},
    {"report"},
    {"commands"},
    {"cli", "__main__"},
]
SIBLINGS = [{"export", "study"}, {"perf", "compress"}]


def layer_of(part: str) -> int:
    for index, members in enumerate(LAYERS):
        if part in members:
            return index
    raise AssertionError(f"explorer.{part} is in no layer: add it to LAYERS and docs/architecture.md")


def imports() -> list[tuple[str, str, str]]:
    """(importing file, its top part, imported top part) for every explorer import in the package."""
    found = []
    for file in sorted(PACKAGE.rglob("*.py")):
        rel = file.relative_to(PACKAGE)
        source = rel.parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] if node.module != "explorer" else ["explorer.__init__"]  # __version__
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                parts = name.split(".")
                if parts[0] == "explorer" and len(parts) > 1:
                    found.append((str(rel), source, parts[1]))
    return found


def violations(found: list[tuple[str, str, str]]) -> list[str]:
    out = []
    for file, source, target in found:
        if source == target:
            continue
        if layer_of(target) > layer_of(source):
            out.append(f"{file} imports explorer.{target}")
        if any({source, target} == pair for pair in SIBLINGS):
            out.append(f"{file} imports its sibling explorer.{target}")
    return out


def test_every_import_goes_down_or_stays_in_its_layer() -> None:
    assert violations(imports()) == []


def test_the_check_can_fail() -> None:
    assert violations([("graph/x.py", "graph", "dpu")]) == ["graph/x.py imports explorer.dpu"]  # upward
    assert violations([("study/x.py", "study", "export")]) == ["study/x.py imports its sibling explorer.export"]
    assert violations([("report/x.py", "report", "hardware")]) == []  # downward
