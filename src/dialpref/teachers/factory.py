"""One way to name a teacher on the command line: a packaged model, a .gguf path, or a server URL."""

from __future__ import annotations

import os
from pathlib import Path

from dialpref.teachers.cache import CachedTeacher, TeacherCache
from dialpref.teachers.context import SERVER_CONTEXT
from dialpref.teachers.packaged import DEFAULT_MODEL

EMBEDDED_CONTEXT = 4096

DEFAULT_CACHE = Path(os.environ.get("DIALPREF_CACHE", ".dialpref/teacher-cache.sqlite"))


def is_server(spec: str) -> bool:
    """Whether a teacher spec names an OpenAI-compatible server rather than an embedded model."""
    return spec.startswith(("http://", "https://"))


def make_teacher(spec: str = DEFAULT_MODEL, *, server_model: str = "default", api_key_env: str = "OPENAI_API_KEY",
                 cache_path: str | Path | None = DEFAULT_CACHE, concurrency: int = 8, timeout: float = 60.0,
                 n_ctx: int | None = None, retry_failed: bool = False, threads: int | None = None,
                 qps: float | None = None):
    """`spec`: 'smollm2-135m' / 'gemma3-270m' / path.gguf (embedded), http(s)://host:port (a server), or
    several server URLs joined by commas (a fleet serving one model: teachers/fleet.py; `concurrency` and
    `qps` hold per endpoint). `n_ctx`: the context window in tokens (default 4096 embedded, 8192 for a
    server); dialogues that do not fit are cut by the rule in `teachers/context.py`. `retry_failed`: ask
    again where the cache holds an answer an earlier run found invalid. `threads`: an embedded teacher's CPU
    threads (None: every core); a Ray actor passes the CPUs it holds."""
    if is_server(spec):
        teacher = _server_teacher(spec, server_model, api_key_env, concurrency, timeout, n_ctx, qps)
    else:
        from dialpref.teachers.llamacpp import LlamaCppTeacher

        teacher = LlamaCppTeacher(spec, n_ctx=n_ctx or EMBEDDED_CONTEXT, n_threads=threads)
    if cache_path is None:
        return teacher
    return CachedTeacher(teacher, TeacherCache(cache_path), retry_failed=retry_failed)


def _server_teacher(spec, server_model, api_key_env, concurrency, timeout, n_ctx, qps):
    options = dict(api_key_env=api_key_env, concurrency=concurrency, timeout=timeout,
                   context_tokens=n_ctx or SERVER_CONTEXT)
    urls = [u.strip() for u in spec.split(",") if u.strip()]
    if len(urls) > 1 or qps:
        from dialpref.teachers.fleet import FleetTeacher

        bad = [u for u in urls if not is_server(u)]
        if bad:
            raise ValueError(f"a fleet is a list of http(s):// URLs; not one: {', '.join(bad)}")
        return FleetTeacher(urls, server_model, qps=qps, **options)
    from dialpref.teachers.openai_compat import OpenAICompatTeacher

    return OpenAICompatTeacher(urls[0], server_model, **options)
