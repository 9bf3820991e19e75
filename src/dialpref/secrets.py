"""Keeping API keys out of every byte dialpref writes.

Keys come from the environment only. Any text that might echo one (a server's
error body, a URL, an exception) goes through `scrub` *before* it is cut to a
length, so no part of a key survives at any offset.
"""

from __future__ import annotations

import os
import re
from typing import Iterable

# Environment variables whose values are secrets, whatever the backend.
_SECRET_NAME = re.compile(r"(API_?KEY|TOKEN|SECRET|PASSWORD)", re.I)
# Shorter values are too common to be keys (and replacing them would garble text).
_MIN_SECRET_CHARS = 8
MASK = "***"


def secret_values(extra_env: Iterable[str] = ()) -> list[str]:
    """The values of every secret-looking environment variable (and of `extra_env`), longest first."""
    names = {n for n in os.environ if _SECRET_NAME.search(n)} | set(extra_env)
    values = {os.environ[n] for n in names if len(os.environ.get(n, "")) >= _MIN_SECRET_CHARS}
    return sorted(values, key=len, reverse=True)


def scrub(text: str, extra_env: Iterable[str] = ()) -> str:
    """`text` with every secret value, and any `Bearer <token>`, replaced by ***."""
    for value in secret_values(extra_env):
        text = text.replace(value, MASK)
    return _BEARER.sub(f"Bearer {MASK}", text)


def scrub_and_cut(text: str, limit: int, extra_env: Iterable[str] = ()) -> str:
    """Scrub first, then cut: a key straddling the cut is never written in part."""
    clean = scrub(text, extra_env)
    return clean if len(clean) <= limit else clean[:limit] + f"... [{len(clean) - limit:,} more characters]"


_BEARER = re.compile(r"Bearer\s+[A-Za-z0-9._~+/=-]{4,}")
