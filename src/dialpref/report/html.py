"""Write a run's report as one HTML file (plots inlined), which opens anywhere without a server."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any


def _image(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{html.escape(Path(path).name)}" src="data:image/png;base64,{data}">'


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p>(none)</p>"
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r.values()) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def write_report(path: Path, title: str, sections: list[tuple[str, list]]) -> Path:
    """sections: (heading, items); an item is a Path to a PNG, a list of dict rows (a table), or a string."""
    parts = [f"<h1>{html.escape(title)}</h1>"]
    for heading, items in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        for item in items:
            if isinstance(item, Path):
                parts.append(_image(item))
            elif isinstance(item, list):
                parts.append(_table(item))
            elif isinstance(item, dict):
                parts.append(f"<pre>{html.escape(json.dumps(item, indent=2))}</pre>")
            else:
                parts.append(f"<p>{html.escape(str(item))}</p>")
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
             "text-align:left}img{max-width:100%;margin:.5em 0}h2{border-bottom:1px solid #ddd}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                    f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n", encoding="utf-8")
    return path
