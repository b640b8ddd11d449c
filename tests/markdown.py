"""Reading the project's Markdown docs: sections and table rows."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
HELM_DOC = (REPO / "docs" / "helm.md").read_text()


def section(text: str, heading: str) -> str:
    """The body of the Markdown section titled `heading`, up to the next heading of its level."""
    match = re.search(rf"^(#+) {re.escape(heading)}\n", text, re.MULTILINE)
    assert match, f"no section {heading!r}"
    level = match.group(1)
    rest = text[match.end() :]
    end = re.search(rf"^#{{1,{len(level)}}} ", rest, re.MULTILINE)
    return rest[: end.start()] if end else rest


def table_rows(text: str) -> list[list[str]]:
    """The cells of each body row of the Markdown tables in `text`."""
    rows = []
    for line in text.splitlines():
        if not line.startswith("|") or set(line) <= set("|- "):
            continue
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return [row for row in rows[1:] if row != rows[0]]
