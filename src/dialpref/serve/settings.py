"""The server's settings, apart from the app so the CLI can show them without importing FastAPI."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ServeSettings:
    """What `dialpref serve` exposes as flags; the defaults are the CLI's."""

    runtime: str = "onnx-int8"
    threads: int = 1
    max_batch: int = 32
    max_wait_ms: float = 2.0
    max_body_bytes: int = 1_000_000
    max_windows: int = 512  # utterances classified by one request
    max_sessions: int = 10_000
    session_idle_seconds: float = 3600.0
    read_timeout: float = 10.0
