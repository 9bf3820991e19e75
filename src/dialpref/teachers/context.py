"""What to show a teacher when a dialogue does not fit its context window.

The rule, the same for every mode and backend: the instructions always, then as
many of the most recent preceding turns as fit, and the utterance itself whole.
An utterance longer than the whole context is cut to its head and its tail with
a marker between them (causal mode) or rejected with its reason (prompt mode).
Each label records how many preceding turns it did not see and whether its own
text was cut, so a run can count what truncation changed.

Causal mode reads a dialogue once, so dropping one old turn per new turn would
re-read the whole window every turn. Instead, when the next turn does not fit,
the window restarts from the instructions and the most recent turns that fill at
most half the room: a restart happens once per half-window of new text and the
cost stays linear in the dialogue. Prompt mode moves the first visible turn in
steps of `START_STRIDE` turns, so consecutive utterances keep sharing a prefix.
"""

from __future__ import annotations

from typing import Callable, Sequence, TypeVar

T = TypeVar("T")
START_STRIDE = 8  # prompt mode: the first visible turn moves in steps of this many turns
CUT_MARKER = " [...] "
SERVER_CONTEXT = 8192  # default context assumed for an OpenAI-compatible server (a setting)
CHARS_PER_TOKEN = 3.0  # a server's prompt length estimated from characters (conservative for English)


def cut_middle(tokens: Sequence[T], keep: int, marker: Sequence[T]) -> list[T]:
    """`tokens` shortened to `keep` items: its head, `marker`, its tail."""
    if len(tokens) <= keep:
        return list(tokens)
    room = max(2, keep - len(marker))
    head = room // 2
    return [*tokens[:head], *marker, *tokens[len(tokens) - (room - head):]]


def recent_start(lengths: Sequence[int], budget: int) -> int:
    """Index of the first of the most recent items whose lengths sum to at most `budget`."""
    total, start = 0, len(lengths)
    while start > 0 and total + lengths[start - 1] <= budget:
        start -= 1
        total += lengths[start]
    return start


def first_fitting_start(lowest: int, target: int, fits: Callable[[int], bool]) -> int | None:
    """The smallest start in lowest, lowest + stride, ..., target whose window fits (None: not even
    the utterance alone). `fits(start)` must be monotone: a later start never needs more room."""
    if fits(lowest):
        return lowest
    starts = list(range(lowest + START_STRIDE - (lowest % START_STRIDE), target, START_STRIDE)) + [target]
    lo, hi = 0, len(starts) - 1
    if not fits(starts[hi]):
        return None
    while lo < hi:  # binary search for the first start that fits
        mid = (lo + hi) // 2
        if fits(starts[mid]):
            hi = mid
        else:
            lo = mid + 1
    return starts[lo]


def estimated_tokens(messages: Sequence[dict[str, str]]) -> int:
    """Prompt tokens of chat messages for a backend without a tokenizer (a server)."""
    return sum(int(len(m.get("content", "")) / CHARS_PER_TOKEN) + 8 for m in messages)
