"""Label a live dialogue utterance by utterance: each new turn is classified with the turns before it
(`StreamingClassifier`), or, for a slots task, the dialogue state is tracked turn by turn (`StreamingTracker`).

The classifier keeps only the last k turns (the window the student was trained on), so memory and
latency stay flat however long the conversation runs.
"""

from __future__ import annotations

from collections import deque

from dialpref.data.schema import Turn
from dialpref.data.windows import Window, window_at
from dialpref.evaluate.state_tracking import NONE, accumulate
from dialpref.student.slot_heads import to_changes


class StreamingClassifier:
    """`add(speaker, text)` -> {class: probability} for that utterance (None for roles the task skips).

    `predictor` is anything with `predict_proba(windows)`: a `Student` or an `OnnxStudent`.
    """

    def __init__(self, predictor, dialogue_id: str = "live") -> None:
        self.predictor, self.dialogue_id = predictor, dialogue_id
        self.task = predictor.task
        self.context_turns = predictor.config.context_turns
        self.turns: deque[Turn] = deque(maxlen=self.context_turns + 1)
        self.index = -1

    def push(self, speaker: str, text: str, role: str = "user") -> Window | None:
        """Record a turn; return the window to classify it with, or None when the task skips its role.
        A server batches these windows across sessions; `add` classifies one at once."""
        turn = Turn(speaker=speaker, role=role, text=text)
        self.turns.append(turn)
        self.index += 1
        if not self.task.labelled(turn):
            return None
        local = window_at(list(self.turns), len(self.turns) - 1, self.context_turns, self.dialogue_id)
        return Window(self.dialogue_id, self.index, local.text, local.context)

    def add(self, speaker: str, text: str, role: str = "user") -> dict[str, float] | None:
        window = self.push(speaker, text, role)
        if window is None:
            return None
        probs = self.predictor.predict_proba([window])[0]
        return {name: float(p) for name, p in zip(self.task.class_names, probs)}

    def reset(self) -> None:
        self.turns.clear()
        self.index = -1


class StreamingTracker:
    """The dialogue state of a live conversation for a slots task: `add(speaker, text)` -> the state after that
    turn ({slot: value}, `none` where unset; None for roles the task skips). Each labelled turn's predicted
    change is accumulated as `evaluate.state_tracking.accumulate` does for a whole dialogue."""

    def __init__(self, predictor, dialogue_id: str = "live") -> None:
        if predictor.task.kind != "slots":
            raise ValueError(f"task {predictor.task.name!r} is not a slots task: use StreamingClassifier")
        self.classifier = StreamingClassifier(predictor, dialogue_id)
        self.task = predictor.task
        self.state = {s: NONE for s in self.task.slot_names}

    def add(self, speaker: str, text: str, role: str = "user") -> dict[str, str] | None:
        window = self.classifier.push(speaker, text, role)
        if window is None:
            return None
        change = to_changes(self.classifier.predictor.predict_proba([window]), self.task)[0]
        self.state = accumulate([change], self.task.slot_names, start=self.state)[0]
        return dict(self.state)

    def reset(self) -> None:
        self.classifier.reset()
        self.state = {s: NONE for s in self.task.slot_names}
