"""LLM teachers behind one protocol: embedded llama.cpp or any OpenAI-compatible server, cached on disk."""

from dialpref.teachers.base import ChatRequest, Completion, Teacher, TeacherError
from dialpref.teachers.cache import CachedTeacher, TeacherCache
from dialpref.teachers.calls import option_probs, sample, structured

__all__ = ["ChatRequest", "Completion", "Teacher", "TeacherError", "CachedTeacher", "TeacherCache",
           "option_probs", "sample", "structured"]
