"""`dialpref synth view`: one self-contained HTML page for a synthesis run, to read what the teacher did.

Per sample: the history, the intent tree drawn as a tree, the two views with
each prediction's score against the real next turn, the gold category and view,
and the chosen trace beside the rejected one; samples with a sign of degenerate synthesis
(`proutt.checks.suspicions`) are marked, and the run's rejects are counted by check. The page is `templates/view.html.jinja`, rendered with
autoescaping (every text from the teacher or the chat log is escaped by jinja2).
"""

from __future__ import annotations

import json
from pathlib import Path

from dialpref.proutt.checks import suspicions
from dialpref.rows import read_rows_lenient


def _score_colour(similarity: float) -> str:
    red, green = int(200 * (1 - similarity)), int(160 * similarity)
    return f"rgb({red},{green},60)"


def _template():
    import jinja2

    environment = jinja2.Environment(loader=jinja2.PackageLoader("dialpref.proutt", "templates"), autoescape=True)
    return environment.get_template("view.html.jinja")


def write_view(run_dir: Path, output: Path | None = None, *, limit: int | None = None) -> Path:
    """Write `<run_dir>/view.html` (or `output`) from the run's synth.jsonl and summary.json."""
    rows = read_rows_lenient(run_dir / "synth.jsonl")
    if not rows:
        raise FileNotFoundError(f"no synthesized samples in {run_dir / 'synth.jsonl'}")
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.exists() else {}
    head = {k: summary.get(k) for k in ("samples", "rejected_samples", "check_rejections", "tokens_per_sample",
                                        "tau_bands", "json_valid_first_try", "json_valid_after_retry") if k in summary}
    shown = rows[:limit]
    page = _template().render(run_name=run_dir.name, run_dir=str(run_dir), head=json.dumps(head, indent=1),
                              rows=shown, colour=_score_colour, suspicious={r["id"]: suspicions(r) for r in shown})
    output = output or run_dir / "view.html"
    output.write_text(page, encoding="utf-8")
    return output
