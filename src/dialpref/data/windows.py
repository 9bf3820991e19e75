"""Sliding windows over a dialogue: utterance i with up to k previous utterances as its context.

A student sees what a live classifier would see: the utterance being labelled and the turns before it,
never the turns after. The window keeps the utterance and its context apart (a sentence pair for the
tokenizer), so truncation cuts the oldest context first and never the utterance itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from dialpref.data.schema import Dialogue, Turn

CONTEXT_SEP = " | "


@dataclass(frozen=True)
class Window:
    dialogue_id: str
    turn_index: int
    text: str  # "speaker: utterance" of the turn being labelled
    context: str  # the k previous turns, oldest first, "speaker: utterance" joined by CONTEXT_SEP

    @property
    def key(self) -> tuple[str, int]:
        return self.dialogue_id, self.turn_index


def mark(turn: Turn) -> str:
    """The speaker-marked line of a turn, as the window shows it."""
    return f"{turn.speaker}: {turn.text}"


def window_at(turns: Sequence[Turn], index: int, context_turns: int, dialogue_id: str = "") -> Window:
    start = max(0, index - context_turns)
    context = CONTEXT_SEP.join(mark(t) for t in turns[start:index])
    return Window(dialogue_id, index, mark(turns[index]), context)


def dialogue_windows(dialogue: Dialogue, context_turns: int = 2, roles: Iterable[str] | None = None) -> list[Window]:
    """Stride-1 windows of the turns whose role is in `roles` (all turns when None)."""
    if context_turns < 0:
        raise ValueError(f"context_turns must be >= 0, not {context_turns}")
    roles = set(roles) if roles is not None else None
    return [window_at(dialogue.turns, i, context_turns, dialogue.id)
            for i, turn in enumerate(dialogue.turns) if roles is None or turn.role in roles]


def windows_of(dialogues: Iterable[Dialogue], context_turns: int = 2,
               roles: Iterable[str] | None = None) -> list[Window]:
    roles = tuple(roles) if roles is not None else None
    return [w for d in dialogues for w in dialogue_windows(d, context_turns, roles)]
