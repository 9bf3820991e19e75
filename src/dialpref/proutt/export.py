"""SFT and DPO records from synthesized samples, in the forms trainers load without conversion.

- SFT: `{"messages": [user prompt, assistant chosen trace]}` (TRL's conversational form).
- DPO: `{"prompt": [user], "chosen": [assistant], "rejected": [assistant]}` (TRL's conversational
  preference form, as `DPOTrainer` takes it).
- LLaMA-Factory (option): ShareGPT preference form, `{"conversations": [{"from": "human", ...}],
  "chosen": {"from": "gpt", ...}, "rejected": {...}}`, as the ProUtt release ships it.

Every record carries `sample_id` and `provenance` (a JSON string: the stage outputs, raw teacher
text and tokens). A string, not a nested column, because intent trees differ in shape from row to
row and `datasets` would otherwise have to unify their schemas.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from dialpref.proutt.stages import render
from dialpref.proutt.synthesize import DEFAULT_LANGUAGE


def prediction_prompt(history: str, language: str = "", *, with_tree: bool = True) -> str:
    """The user message a next-utterance model answers: the same at training and prediction.
    It names a language only when the run was given one (e.g. Chinese for CrossWOZ); `with_tree=False`
    drops the intent-tree step (the ablation)."""
    return render("predict.jinja", history=history, language=language, with_tree=with_tree)


def _provenance(row: dict[str, Any]) -> str:
    keep = ("id", "dialogue_id", "source", "target", "negatives", "intent_tree", "category_reasoning",
            "gold_category", "insight", "scores", "top_sim", "gold_view", "band", "rule", "revision", "negative",
            "stages", "usage", "teacher")
    return json.dumps({k: row.get(k) for k in keep}, ensure_ascii=False)


def row_language(row: dict[str, Any]) -> str:
    """The language a synthesized row was asked for, or "" when the run used the default."""
    language = (row.get("config") or {}).get("language", "")
    return "" if language == DEFAULT_LANGUAGE else language


def sft_record(row: dict[str, Any]) -> dict[str, Any]:
    prompt = prediction_prompt(row["history"], row_language(row))
    return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": row["chosen"]["text"]}],
            "sample_id": row["id"], "provenance": _provenance(row)}


def dpo_record(row: dict[str, Any]) -> dict[str, Any]:
    prompt = prediction_prompt(row["history"], row_language(row))
    return {"prompt": [{"role": "user", "content": prompt}],
            "chosen": [{"role": "assistant", "content": row["chosen"]["text"]}],
            "rejected": [{"role": "assistant", "content": row["rejected"]["text"]}],
            "sample_id": row["id"], "provenance": _provenance(row)}


def llamafactory_record(row: dict[str, Any]) -> dict[str, Any]:
    prompt = prediction_prompt(row["history"], row_language(row))
    return {"conversations": [{"from": "human", "value": prompt}],
            "chosen": {"from": "gpt", "value": row["chosen"]["text"]},
            "rejected": {"from": "gpt", "value": row["rejected"]["text"]}, "sample_id": row["id"]}


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    count = 0
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def export_records(rows: list[dict[str, Any]], out_dir: Path, *, llamafactory: bool = False) -> dict[str, str]:
    """Write sft.jsonl and dpo.jsonl (and dpo_llamafactory.json) for `rows`; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"sft": out_dir / "sft.jsonl", "dpo": out_dir / "dpo.jsonl"}
    write_jsonl(paths["sft"], (sft_record(r) for r in rows))
    write_jsonl(paths["dpo"], (dpo_record(r) for r in rows))
    if llamafactory:
        paths["dpo_llamafactory"] = out_dir / "dpo_llamafactory.json"
        paths["dpo_llamafactory"].write_text(json.dumps([llamafactory_record(r) for r in rows], ensure_ascii=False,
                                                        indent=1), encoding="utf-8")
    return {k: str(v) for k, v in paths.items()}
