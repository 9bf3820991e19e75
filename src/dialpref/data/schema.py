"""The two records every stage speaks: a `Turn` and a `Dialogue`.

Readers normalise every source format into these, so the rest of dialpref
never needs to know where a conversation came from.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Speaker names a reader may produce. Sources name them many ways
# (human/gpt, usr/sys, user/system, Chandler/Monica); readers map them here,
# except for multi-party data, which keeps the character's name as `speaker`
# and sets `role` to "user".
ROLES = ("user", "assistant", "system")

# A turn longer than this is almost always a pasted document or a broken
# record, and it would blow any teacher's context; readers reject it.
MAX_TURN_CHARS = 20_000


class Turn(BaseModel):
    """One utterance: who said it, what was said, and any gold labels."""

    model_config = ConfigDict(extra="forbid")

    speaker: str = Field(min_length=1, description="Who spoke: a role or a character name.")
    role: str = Field(description="user / assistant / system: the part the speaker plays.")
    text: str = Field(description="The utterance, unchanged apart from stripped whitespace.")
    labels: dict[str, Any] = Field(
        default_factory=dict,
        description="Gold labels by task, e.g. {'dialogue_act': 'inform', 'emotion': 'joy'}.",
    )
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("role")
    @classmethod
    def _known_role(cls, role: str) -> str:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r} (expected one of {', '.join(ROLES)})")
        return role

    @field_validator("text")
    @classmethod
    def _sane_text(cls, text: str) -> str:
        text = text.strip()
        if not text:
            raise ValueError("empty turn text")
        if len(text) > MAX_TURN_CHARS:
            raise ValueError(f"turn too long: {len(text):,} characters, over the {MAX_TURN_CHARS:,} limit")
        return text


class Dialogue(BaseModel):
    """A conversation: an id, its turns in order, and where it came from."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    turns: list[Turn]
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _not_empty(self) -> "Dialogue":
        if not self.turns:
            raise ValueError("dialogue has no turns")
        return self

    def to_json(self) -> str:
        return self.model_dump_json(exclude_defaults=False)

    @property
    def speakers(self) -> list[str]:
        return sorted({t.speaker for t in self.turns})
