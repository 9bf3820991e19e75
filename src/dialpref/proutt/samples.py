"""Next-user-utterance samples from chat logs, and the one rule that renders (and cuts) their history.

A sample is a target user turn after the first round, the conversation before
it as context, and up to two other user turns of the same conversation as
negatives (never equal to the target: the reference code allowed that). The
history is rendered round by round and cut by `HistoryBudget`; synthesis,
training and prediction all call `render_history`, so a model is trained on
exactly the history shape it will be asked about.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Iterable, Iterator, Literal

from pydantic import BaseModel, Field

from dialpref.data.schema import Dialogue

TargetMode = Literal["last", "all"]


class ChatMessage(BaseModel):
    role: Literal["user", "assistant", "system"]
    content: str


class NextTurnSample(BaseModel):
    """One prediction problem: what does the user say after `context`?"""

    id: str = Field(description="'<dialogue id>#<turn index of the target>'")
    dialogue_id: str
    context: list[ChatMessage]
    target: str
    negatives: list[str] = Field(default_factory=list)
    source: str = ""

    @property
    def conversation_key(self) -> str:
        """The conversation a ShareGPT part belongs to ('abc_0' and 'abc_1' are one conversation)."""
        head, _, tail = self.dialogue_id.rpartition("_")
        return head if head and tail.isdigit() else self.dialogue_id


@dataclass
class SampleStats:
    dialogues: int = 0
    samples: int = 0
    skipped_short: int = 0  # fewer than two rounds: no user turn has a completed round before it
    skipped_no_user: int = 0


def _rounds_before(turns: list[ChatMessage]) -> int:
    """Completed rounds (a user turn answered by the assistant) in `turns`."""
    rounds, asked = 0, False
    for turn in turns:
        if turn.role == "user":
            asked = True
        elif turn.role == "assistant" and asked:
            rounds += 1
            asked = False
    return rounds


def samples_from_dialogue(dialogue: Dialogue, *, mode: TargetMode = "last", max_negatives: int = 2,
                          seed: int = 0, stats: SampleStats | None = None) -> list[NextTurnSample]:
    """Targets: user turns with at least one completed round before them (the last one, or all)."""
    stats = stats if stats is not None else SampleStats()
    stats.dialogues += 1
    messages = [ChatMessage(role=t.role, content=t.text) for t in dialogue.turns]  # roles already validated
    user_indices = [i for i, m in enumerate(messages) if m.role == "user"]
    if not user_indices:
        stats.skipped_no_user += 1
        return []
    candidates = [i for i in user_indices if _rounds_before(messages[:i]) >= 1 and messages[i - 1].role != "user"]
    if not candidates:
        stats.skipped_short += 1
        return []
    targets = candidates[-1:] if mode == "last" else candidates
    out = []
    for index in targets:
        target = messages[index].content
        others = list(dict.fromkeys(messages[i].content for i in user_indices
                                    if i != index and messages[i].content.strip() != target.strip()))
        rng = random.Random(f"{seed}:{dialogue.id}:{index}")
        negatives = rng.sample(others, min(max_negatives, len(others)))
        out.append(NextTurnSample(id=f"{dialogue.id}#{index}", dialogue_id=dialogue.id, context=messages[:index],
                                  target=target, negatives=negatives,
                                  source=str(dialogue.metadata.get("format", ""))))
    stats.samples += len(out)
    return out


def iter_samples(dialogues: Iterable[Dialogue], *, mode: TargetMode = "last", max_negatives: int = 2,
                 seed: int = 0, stats: SampleStats | None = None) -> Iterator[NextTurnSample]:
    for dialogue in dialogues:
        yield from samples_from_dialogue(dialogue, mode=mode, max_negatives=max_negatives, seed=seed, stats=stats)


def split_of(sample: NextTurnSample, *, test_share: float = 0.1, salt: str = "dialpref") -> str:
    """'train' or 'test', fixed by the conversation (all parts of one ShareGPT conversation go together)."""
    digest = hashlib.sha256(f"{salt}:{sample.conversation_key}".encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2**64 < test_share else "train"


# --- history -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HistoryBudget:
    """How a long history is cut. Characters, not tokens, so the rule does not depend on a tokenizer
    (about 4 characters a token for English; Chinese runs nearer 1.5).

    1. A turn longer than its cap keeps its head (two thirds of the cap) and tail (one third), joined by
       ' [...] '. Assistant turns are capped tighter: the user's own words say more about what comes next.
    2. The most recent rounds are kept while the total stays within `max_chars`; earlier rounds are
       replaced by one line saying how many were left out. The last round is always kept.
    """

    max_chars: int = 2000
    max_user_chars: int = 800
    max_assistant_chars: int = 500
    max_target_chars: int = 600  # the real next turn, where a stage shows it to the teacher


def shorten(text: str, cap: int) -> str:
    text = text.strip()
    if len(text) <= cap:
        return text
    head = (cap * 2) // 3
    tail = cap - head
    return f"{text[:head].rstrip()} [...] {text[-tail:].lstrip()}"


def rounds_of(context: list[ChatMessage]) -> list[list[ChatMessage]]:
    """Group turns into rounds: each starts at a user turn that follows a non-user turn."""
    rounds: list[list[ChatMessage]] = []
    for message in context:
        starts = message.role == "user" and (not rounds or rounds[-1][-1].role != "user")
        if starts or not rounds:
            rounds.append([])
        rounds[-1].append(message)
    return rounds


def render_history(context: list[ChatMessage] | list[dict], budget: HistoryBudget = HistoryBudget()) -> str:
    """The history as '[Round k]\\nUser: ...\\nAssistant: ...' blocks, cut by `budget`."""
    messages = [m if isinstance(m, ChatMessage) else ChatMessage(**m) for m in context]
    label = {"user": "User", "assistant": "Assistant", "system": "System"}
    cap = {"user": budget.max_user_chars, "assistant": budget.max_assistant_chars, "system": budget.max_user_chars}
    blocks = []
    for number, round_ in enumerate(rounds_of(messages), start=1):
        lines = [f"[Round {number}]"] + [f"{label[m.role]}: {shorten(m.content, cap[m.role])}" for m in round_]
        blocks.append("\n".join(lines))
    kept: list[str] = []
    total = 0
    for block in reversed(blocks):
        if kept and total + len(block) > budget.max_chars:
            break
        kept.append(block)
        total += len(block) + 1
    kept.reverse()
    if len(kept) == 1 and len(kept[0]) > budget.max_chars:
        kept[0] = shorten(kept[0], budget.max_chars)
    omitted = len(blocks) - len(kept)
    if omitted:
        kept.insert(0, f"[{omitted} earlier round{'s' if omitted > 1 else ''} left out]")
    return "\n".join(kept)
