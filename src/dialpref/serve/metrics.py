"""Prometheus metrics of one server: requests by route and status, latency, batch sizes, live sessions."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("dialpref_requests", "HTTP requests and WebSocket messages answered",
                                ["route", "status"], registry=self.registry)
        self.latency = Histogram("dialpref_request_seconds", "Time to answer, model call included", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch = Histogram("dialpref_batch_windows", "Windows per model call (dynamic batching)",
                               buckets=BATCH_BUCKETS, registry=self.registry)
        self.sessions = Gauge("dialpref_live_sessions", "Open live-dialogue sessions", registry=self.registry)

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)
