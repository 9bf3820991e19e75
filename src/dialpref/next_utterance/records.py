"""Training records for next-utterance models, rebuilt from a synthesis run's `synth.jsonl`.

Rebuilt rather than read from the run's sft.jsonl / dpo.jsonl so that one run serves every system:
- `proutt`: the chosen (and rejected) reasoning trace, in TRL's prompt-completion form so the loss
  falls on the completion only;
- `proutt` with `with_tree=False`: the same traces and prompt without the intent tree (the ablation);
- `simulator`: the raw next user turn, no reasoning (a Socratic-style user simulator).
The history is re-rendered from the stored context with the budget the model will be asked with.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from dialpref.proutt.export import prediction_prompt, row_language
from dialpref.proutt.preference import Trace
from dialpref.proutt.samples import HistoryBudget, render_history
from dialpref.proutt.stages import render

Style = Literal["proutt", "proutt_no_tree", "simulator"]
STYLES: tuple[str, ...] = get_args(Style)

def prompt_for(context: list[dict], style: Style, budget: HistoryBudget = HistoryBudget(), language: str = "") -> str:
    """The user message a model of `style` is given for a conversation: the same at training and prediction."""
    history = render_history(context, budget)
    if style == "simulator":
        return render("simulator.jinja", strip=False, history=history)
    return prediction_prompt(history, language, with_tree=style != "proutt_no_tree")


def _completion(row: dict[str, Any], which: str, style: Style) -> str:
    if style == "simulator":
        return row["target"]
    return Trace.from_dict(row[which]["trace"]).text(with_tree=style != "proutt_no_tree")


def sft_records(rows: list[dict[str, Any]], style: Style, budget: HistoryBudget = HistoryBudget()) -> list[dict]:
    return [{"prompt": [{"role": "user", "content": prompt_for(r["context"], style, budget, row_language(r))}],
             "completion": [{"role": "assistant", "content": _completion(r, "chosen", style)}],
             "sample_id": r["id"]} for r in rows]


def dpo_records(rows: list[dict[str, Any]], style: Style, budget: HistoryBudget = HistoryBudget()) -> list[dict]:
    if style == "simulator":
        raise ValueError("the simulator baseline has no preference pairs: train it with SFT only")
    return [{"prompt": [{"role": "user", "content": prompt_for(r["context"], style, budget, row_language(r))}],
             "chosen": [{"role": "assistant", "content": _completion(r, "chosen", style)}],
             "rejected": [{"role": "assistant", "content": _completion(r, "rejected", style)}],
             "sample_id": r["id"]} for r in rows]
