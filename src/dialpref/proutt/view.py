"""`dialpref synth view`: one self-contained HTML page for a synthesis run, to read what the teacher did.

Per sample: the history, the intent tree drawn as a tree, the two views with
each prediction's score against the real next turn, the gold category and view,
and the chosen trace beside the rejected one.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from dialpref.rows import read_rows_lenient

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;color:#222;line-height:1.4}
.sample{border:1px solid #ccc;border-radius:6px;padding:1em;margin:1.5em 0}
.history{white-space:pre-wrap;background:#f6f6f6;padding:.6em;max-height:18em;overflow:auto;font-size:.9em}
.target{background:#eef6ee;padding:.4em .6em;border-left:4px solid #4a4;white-space:pre-wrap}
.tree,.tree ul{list-style:none;margin:0;padding-left:1.2em;position:relative}
.tree li{position:relative;padding-left:1em}
.tree li:before{content:"";position:absolute;left:0;top:.75em;width:.8em;border-top:1px solid #888}
.tree ul:before{content:"";position:absolute;left:.2em;top:0;bottom:.75em;border-left:1px solid #888}
.topic{font-weight:600}.value{color:#555}
.views{display:grid;grid-template-columns:1fr 1fr;gap:1em}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:1em}
.trace{white-space:pre-wrap;font-size:.85em;background:#fafafa;padding:.6em;border:1px solid #ddd}
.chosen{border-color:#4a4}.rejected{border-color:#c44}
.score{display:inline-block;min-width:2.6em;text-align:center;border-radius:3px;color:#fff;margin-right:.4em}
.band{font-weight:600;text-transform:uppercase}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _tree(tree: dict[str, dict[str, str]]) -> str:
    items = []
    for topic, attributes in tree.items():
        leaves = "".join(f"<li>{_e(k)}: <span class=value>{_e(v)}</span></li>" for k, v in attributes.items())
        items.append(f"<li><span class=topic>{_e(topic)}</span><ul>{leaves}</ul></li>")
    return f"<ul class=tree>{''.join(items)}</ul>"


def _score_colour(similarity: float) -> str:
    red, green = int(200 * (1 - similarity)), int(160 * similarity)
    return f"rgb({red},{green},60)"


def _views(row: dict[str, Any]) -> str:
    scores = row["scores"]
    parts = []
    for index, name in enumerate(("mining", "exploration")):
        view = row["insight"][name]
        lines = []
        for k, prediction in enumerate(view["predictions"]):
            score = scores[2 * index + k]
            lines.append(f"<li><span class=score style='background:{_score_colour(score['similarity'])}'>"
                         f"{score['similarity']:.1f}</span>{_e(prediction)}<br><small>{_e(score['reason'])}</small></li>")
        parts.append(f"<div><h4>{name.title()} view <small>({_e(view['path'])})</small></h4>"
                     f"<p>{_e(view['reasoning'])}</p><ul>{''.join(lines)}</ul></div>")
    return f"<div class=views>{''.join(parts)}</div>"


def _sample(row: dict[str, Any]) -> str:
    gold = row["gold_view"]
    usage = row["usage"]
    paths = "; ".join(f"{p['source']} -> {p['target']}" for p in gold["paths"])
    return f"""<div class=sample id="{_e(row['id'])}">
<h3>{_e(row['id'])} <span class=band>{_e(row['band'])}</span> top_sim {row['top_sim']:.1f} · {_e(row['rule'])}</h3>
<details><summary>history ({len(row['context'])} turns)</summary><div class=history>{_e(row['history'])}</div></details>
<p><b>Real next turn</b> ({_e(row['gold_category']['category'])}; {_e(gold['view'])}: {_e(paths)})</p>
<div class=target>{_e(row['target'])}</div>
<h4>Intent tree</h4>{_tree(row['intent_tree'])}
{_views(row)}
<div class=pair><div><h4>chosen</h4><div class="trace chosen">{_e(row['chosen']['text'])}</div></div>
<div><h4>rejected</h4><div class="trace rejected">{_e(row['rejected']['text'])}</div></div></div>
<p><small>tokens: {usage['prompt_tokens']} prompt ({usage['evaluated_prompt_tokens']} evaluated after prefix reuse),
{usage['completion_tokens']} completion; {usage['seconds']:.1f} s</small></p></div>"""


def write_view(run_dir: Path, output: Path | None = None, *, limit: int | None = None) -> Path:
    """Write `<run_dir>/view.html` (or `output`) from the run's synth.jsonl and summary.json."""
    rows = read_rows_lenient(run_dir / "synth.jsonl")
    if not rows:
        raise FileNotFoundError(f"no synthesized samples in {run_dir / 'synth.jsonl'}")
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.exists() else {}
    head = {k: summary.get(k) for k in ("samples", "rejected_samples", "tokens_per_sample", "tau_bands",
                                        "json_valid_first_try", "json_valid_after_retry") if k in summary}
    index = "".join(f"<tr><td><a href='#{_e(r['id'])}'>{_e(r['id'])}</a></td><td>{_e(r['band'])}</td>"
                    f"<td>{r['top_sim']:.1f}</td><td>{_e(r['target'][:90])}</td></tr>" for r in rows[:limit])
    body = "".join(_sample(r) for r in rows[:limit])
    page = (f"<!doctype html><meta charset=utf-8><title>ProUtt synthesis: {_e(run_dir.name)}</title>"
            f"<style>{STYLE}</style><h1>ProUtt synthesis: {_e(run_dir)}</h1>"
            f"<pre>{_e(json.dumps(head, indent=1))}</pre>"
            f"<table><tr><th>sample</th><th>band</th><th>top_sim</th><th>real next turn</th></tr>{index}</table>{body}")
    output = output or run_dir / "view.html"
    output.write_text(page, encoding="utf-8")
    return output
