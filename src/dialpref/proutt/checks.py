"""Checks that keep degenerate synthesis out of the training data, each with the reason it gives.

A small teacher can pass every schema and still write nothing of use: on CrossWOZ chats the 135M teacher
copied the prompt's example tree (`{"Code debugging": {"language": "Python"}}` for hotel bookings), wrote
placeholders ("Topic -> New topic - Attribute", `"] ,"`, runs of "1.0"), answered in English when asked for
Chinese, and scored 1.0 against anything. A sample is rejected by the first check that fails:

- `tree_from_prompt`: a topic, attribute or value of the tree is one of the prompts' own examples and the
  conversation never says it;
- `placeholder_prediction`: a prediction with almost no letters, one token repeated, or a prompt example;
- `wrong_language`: the predictions' script is not the requested language's (or, by default, the
  conversation's);
- `blind_scorer`: the scorer gives one of the sample's negatives (another turn of the same user) a score as
  high as the real next turn's, where that score lifts the sample out of the low band: its 1.0 says nothing.
`suspicions` are softer signs a kept sample is shown with in `synth view`.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from importlib import resources
from typing import Iterable, Sequence

CHECKS = ("tree_from_prompt", "placeholder_prediction", "wrong_language", "blind_scorer")
LANGUAGE_SCRIPTS = {"chinese": "cjk", "mandarin": "cjk", "japanese": "cjk", "korean": "cjk",
                    "russian": "cyrillic", "ukrainian": "cyrillic", "bulgarian": "cyrillic", "arabic": "arabic",
                    "english": "latin", "french": "latin", "german": "latin", "spanish": "latin",
                    "portuguese": "latin", "italian": "latin", "dutch": "latin", "polish": "latin"}
EXAMPLE_PROMPTS = ("intent_tree.jinja", "insight.jinja", "revision.jinja", "negative.jinja")


class CheckFailed(Exception):
    """A sample the checks reject: which check, and why."""

    def __init__(self, check: str, reason: str) -> None:
        super().__init__(f"{check}: {reason}")
        self.check, self.reason = check, reason


@lru_cache(maxsize=None)
def prompt_examples() -> frozenset[str]:
    """The quoted examples the prompts show ("Code debugging", "Topic -> Attribute", ...), lower-cased."""
    found = set()
    for name in EXAMPLE_PROMPTS:
        text = resources.files("dialpref.proutt").joinpath("prompts", name).read_text(encoding="utf-8")
        found.update(m.lower() for m in re.findall(r'"([^"{}]{2,60})"', text))
    return frozenset(found)


def script_of(text: str) -> str | None:
    """The script most of the letters are in: cjk, latin, cyrillic, arabic or other (None: no letters)."""
    counts: dict[str, int] = {}
    for char in text:
        if not char.isalpha():
            continue
        name = unicodedata.name(char, "")
        script = ("cjk" if name.startswith(("CJK", "HIRAGANA", "KATAKANA", "HANGUL")) else
                  "latin" if name.startswith("LATIN") else "cyrillic" if name.startswith("CYRILLIC") else
                  "arabic" if name.startswith("ARABIC") else "other")
        counts[script] = counts.get(script, 0) + 1
    return max(counts, key=counts.get) if counts else None


def tree_from_prompt(tree: dict[str, dict[str, str]], history: str) -> str | None:
    said = history.lower()
    items = [t for t in tree] + [a for attrs in tree.values() for a in attrs] + \
        [v for attrs in tree.values() for v in attrs.values()]
    copied = list(dict.fromkeys(x for x in items if x.strip().lower() in prompt_examples()
                                and x.strip().lower() not in said))
    if not copied or (len(copied) < 2 and not any(t in copied for t in tree)):
        return None  # one attribute name alone ("language") can be a fair word for a conversation
    return f"intent tree copies the prompt's examples {copied[:3]}, which the conversation never says"


def placeholder(prediction: str) -> str | None:
    """Why `prediction` is no utterance at all, or None."""
    text = prediction.strip()
    visible = [c for c in text if not c.isspace()]
    letters = sum(c.isalpha() for c in visible)
    if letters < 2 or letters < 0.5 * len(visible):
        return f"{text[:40]!r} is mostly not words"
    tokens = text.lower().split()
    if len(tokens) >= 3 and len(set(tokens)) / len(tokens) <= 0.34:
        return f"{text[:40]!r} repeats one token"
    if text.lower().strip(' ."\'') in prompt_examples() or re.search(r"\btopic\s*->", text, re.I):
        return f"{text[:40]!r} is the prompt's example, not a prediction"
    return None


def placeholder_prediction(predictions: Iterable[str]) -> str | None:
    return next((f"placeholder prediction: {why}" for p in predictions for why in [placeholder(p)] if why), None)


def wrong_language(predictions: Sequence[str], language: str, conversation: str) -> str | None:
    expected = LANGUAGE_SCRIPTS.get(language.strip().lower()) or script_of(conversation)
    got = script_of(" ".join(predictions))
    if expected and got and got != expected:
        asked = language if language.strip().lower() in LANGUAGE_SCRIPTS else "the conversation's language"
        return f"predictions are in {got} script, {asked} is {expected}"
    return None


def blind_scorer(top_sim: float, negative_top: float | None, tau_low: float = 0.3) -> str | None:
    """Only a score that lifts the sample out of the low band must beat the negatives: two zeros can be right
    (predictions that match neither turn)."""
    if negative_top is not None and top_sim >= tau_low and negative_top >= top_sim:
        return (f"the scorer gives another turn of the same user {negative_top} against {top_sim} for the real "
                "next turn: it cannot tell them apart")
    return None


def check_content(tree, history: str, predictions: Sequence[str], language: str, conversation: str) -> None:
    """The checks that need no scores, run before the scoring stage is paid for; raises CheckFailed."""
    for check, reason in (("tree_from_prompt", tree_from_prompt(tree, history)),
                          ("placeholder_prediction", placeholder_prediction(predictions)),
                          ("wrong_language", wrong_language(predictions, language, conversation))):
        if reason:
            raise CheckFailed(check, reason)


def check_scorer(top_sim: float, negative_top: float | None, tau_low: float) -> None:
    reason = blind_scorer(top_sim, negative_top, tau_low)
    if reason:
        raise CheckFailed("blind_scorer", reason)


def _units(text: str) -> set[str]:
    """Words, or characters for CJK text (no spaces between words)."""
    return set(text) - {" "} if script_of(text) == "cjk" else set(text.lower().split())


def suspicions(record: dict) -> list[str]:
    """Softer signs on a kept record, for `synth view`: a perfect score for a prediction that shares few
    words with the real turn, and negatives scored close to it."""
    out = []
    if record.get("top_sim") == 1.0:
        target = _units(record.get("target", ""))
        insight = record.get("insight") or {}
        predictions = [p for view in ("mining", "exploration") for p in (insight.get(view) or {}).get("predictions", [])]
        best = max((len(target & _units(p)) / max(1, len(target)) for p in predictions), default=0.0)
        if best < 0.3:
            out.append("top similarity 1.0 for predictions that share few words with the real turn")
    negative_top = record.get("negative_top_sim")
    if negative_top is not None and record.get("top_sim") is not None and record["top_sim"] - negative_top < 0.2:
        out.append(f"the scorer rates another turn of the user {negative_top} (real turn {record['top_sim']})")
    return out
