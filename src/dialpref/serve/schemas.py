"""What the server accepts and answers. Strict types (a number is not a text), no unknown fields, and
bounds on every list, so a bad request is a 422 that names the field and never reaches the model."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dialpref.data.schema import MAX_TURN_CHARS

MAX_CONTEXT_TURNS = 64  # more than any student's window; older turns would be cut anyway
MAX_DIALOGUE_TURNS = 1024


class TurnIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    text: str = Field(max_length=MAX_TURN_CHARS, description="The utterance.")
    speaker: str = Field("user", min_length=1, max_length=200, description="Who said it, as in training data.")
    role: Literal["user", "assistant", "system"] = "user"

    @field_validator("text")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        text = text.strip()
        if not text:
            raise ValueError("text is empty")
        return text


class UtteranceIn(TurnIn):
    id: Optional[str] = Field(None, max_length=200, description="Echoed back in the result.")
    context: list[TurnIn] = Field(default_factory=list, max_length=MAX_CONTEXT_TURNS,
                                  description="The turns before it, oldest first.")


class DialogueIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    id: Optional[str] = Field(None, max_length=200)
    turns: list[TurnIn] = Field(min_length=1, max_length=MAX_DIALOGUE_TURNS)


class ClassifyRequest(BaseModel):
    """Either utterances (each with its own context) or whole dialogues (every labelled turn classified)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    utterances: Optional[list[UtteranceIn]] = Field(None, min_length=1)
    dialogues: Optional[list[DialogueIn]] = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one_of(self) -> "ClassifyRequest":
        if (self.utterances is None) == (self.dialogues is None):
            raise ValueError("give exactly one of 'utterances' or 'dialogues'")
        return self


class Scored(BaseModel):
    label: Optional[str] = Field(description="The most probable class; null for a turn the task does not label.")
    scores: Optional[dict[str, float]] = None
    turn_index: Optional[int] = None
    id: Optional[str] = None
    skipped: Optional[str] = Field(None, description="Why a turn has no label (its role is not labelled).")


class DialogueResult(BaseModel):
    id: Optional[str] = None
    turns: list[Scored]


class ClassifyResponse(BaseModel):
    task: str
    results: Optional[list[Scored]] = None
    dialogues: Optional[list[DialogueResult]] = None


class SessionCreated(BaseModel):
    session_id: str
