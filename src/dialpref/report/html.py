"""Write a run's report as one HTML file (plots inlined), which opens anywhere without a server.

The page is `templates/report.html.jinja`, rendered with autoescaping: every text, table cell and title
is escaped by jinja2, not by hand."""

from __future__ import annotations

import base64
import json
from functools import lru_cache
from pathlib import Path
from typing import Any


@lru_cache(maxsize=1)
def _template():
    import jinja2

    environment = jinja2.Environment(loader=jinja2.PackageLoader("dialpref.report", "templates"),
                                     autoescape=True, keep_trailing_newline=True)
    return environment.get_template("report.html.jinja")


def _item(item: Any) -> dict[str, Any]:
    """An item as the template shows it: a PNG inlined, a table of dict rows, JSON, or a paragraph."""
    if isinstance(item, Path):
        return {"kind": "image", "name": item.name, "data": base64.b64encode(item.read_bytes()).decode()}
    if isinstance(item, list):
        return {"kind": "table", "rows": item}
    if isinstance(item, dict):
        return {"kind": "json", "text": json.dumps(item, indent=2)}
    return {"kind": "text", "text": str(item)}


def write_report(path: Path, title: str, sections: list[tuple[str, list]]) -> Path:
    """sections: (heading, items); an item is a Path to a PNG, a list of dict rows (a table), or a string."""
    page = _template().render(title=title, sections=[(h, [_item(i) for i in items]) for h, items in sections])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page + ("" if page.endswith("\n") else "\n"), encoding="utf-8")
    return path
