"""Dialogue records, the readers that produce them, and where bad records go."""

from dialpref.data.schema import Dialogue, Turn
from dialpref.data.rejects import Rejects
from dialpref.data.formats import detect_format, read_dialogues

__all__ = ["Dialogue", "Turn", "Rejects", "detect_format", "read_dialogues"]
