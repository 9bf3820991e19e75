"""The server's settings, apart from the app so the CLI can show them without importing FastAPI."""

from __future__ import annotations

from dataclasses import dataclass, field


def _setting(default, help: str):
    """A setting with the help text its `dialpref serve` flag shows (one home for default and help)."""
    return field(default=default, metadata={"help": help})


@dataclass
class ServeSettings:
    """What `dialpref serve` exposes as flags; the defaults are the CLI's."""

    runtime: str = _setting("onnx-int8", "onnx-int8, onnx-fp32 or torch. The ONNX files come from "
                                         "`dialpref student export MODEL`.")
    threads: int = _setting(1, "Intra-op threads of one model call.")
    max_batch: int = _setting(32, "Most utterances one model call takes from concurrent requests (dynamic "
                                  "batching).")
    max_wait_ms: float = _setting(2.0, "How long a batch that already has company waits for more; a lone "
                                       "request never waits.")
    max_body_bytes: int = _setting(1_000_000, "Largest request body (and WebSocket message), in bytes.")
    max_windows: int = _setting(512, "Most utterances one request may classify.")
    max_sessions: int = _setting(10_000, "Live sessions kept; the least recent goes first.")
    session_idle_seconds: float = _setting(3600.0, "Seconds a live session may stay silent before it is dropped.")
    read_timeout: float = _setting(10.0, "Seconds a client may take to send its body before a 408 (slow clients).")
