"""docs/architecture.md names every module of the package, and nothing outside the repository is cited."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_architecture_page_names_every_module() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = []
    for file in sorted((ROOT / "explorer").rglob("*.py")):
        rel = file.relative_to(ROOT / "explorer")
        if rel.name == "__init__.py" and len(rel.parts) > 1:
            continue  # a package is named by its folder
        name = str(rel) if len(rel.parts) > 1 else rel.stem
        if name not in page and str(rel) not in page:
            missing.append(str(rel))
    assert missing == []


def test_no_file_outside_the_repository_is_cited() -> None:
    cited = []
    for folder in ("explorer", "hw", "tcl", "deploy", "reports", "search_spaces", "docs", "bench", "reference"):
        for file in (ROOT / folder).rglob("*"):
            if file.is_file() and file.suffix in (".py", ".yaml", ".j2", ".md", ".sh"):
                text = file.read_text(encoding="utf-8", errors="replace")
                if re.search(r"shared/reference|\.\./shared|(?<![\w/])dpu_hw\.md", text):
                    cited.append(str(file.relative_to(ROOT)))
    assert cited == []
