"""A fleet of OpenAI-compatible endpoints as one teacher: load-balanced, per-endpoint rate limit and
backoff, one dead endpoint costs its share only; real loopback HTTP servers (tests/fake_openai.py)."""

import time

import pytest

from dialpref.teachers.base import ChatRequest, TeacherError
from dialpref.teachers.factory import make_teacher
from dialpref.teachers.fleet import FleetTeacher

from fake_openai import FakeOpenAI


def _requests(n: int) -> list[ChatRequest]:
    return [ChatRequest.make([{"role": "user", "content": f"question {i}"}]) for i in range(n)]


def test_a_fleet_spreads_requests_and_routes_around_a_failing_endpoint():
    with FakeOpenAI(delay=0.05) as a, FakeOpenAI(delay=0.05) as b:
        fleet = make_teacher(f"{a.url},{b.url}", cache_path=None, concurrency=2)
        assert isinstance(fleet, FleetTeacher)
        results = fleet.complete_many(_requests(20))
        assert all(r.text == "ok" for r in results)
        assert abs(len(a.requests) - len(b.requests)) <= 2 and len(a.requests) + len(b.requests) == 20
        assert a.max_in_flight <= 2 and b.max_in_flight <= 2  # concurrency holds per endpoint
        before_a, before_b = len(a.requests), len(b.requests)
        b.faults.extend({"status": 503, "retry_after": 30} for _ in range(3))  # b says: not for 30 s
        started = time.monotonic()
        results = fleet.complete_many(_requests(10))
        assert all(r.text == "ok" for r in results)
        assert time.monotonic() - started < 10  # nobody waited out b's 30 s: a took the work
        assert len(b.requests) - before_b <= 3 and len(a.requests) - before_a >= 10


def test_a_fleet_keeps_each_endpoints_rate_limit():
    with FakeOpenAI() as a, FakeOpenAI() as b:
        fleet = make_teacher(f"{a.url},{b.url}", cache_path=None, qps=10)
        started = time.monotonic()
        fleet.complete_many(_requests(20))
        elapsed = time.monotonic() - started
        assert elapsed >= 0.8  # 20 requests at 10 per second on each of 2 endpoints: about 1 s, not less
        assert len(a.requests) == len(b.requests) == 10


def test_a_dead_fleet_fails_with_a_clear_error_and_the_cache_key_ignores_urls(tmp_path):
    with FakeOpenAI() as a:
        dead = "http://127.0.0.1:9"  # nothing listens there
        fleet = make_teacher(f"{dead},{dead}", cache_path=None, timeout=1)
        fleet.max_retries, fleet.backoff = 1, 0.01
        result = fleet.complete_many(_requests(1))[0]
        assert isinstance(result, TeacherError) and "2 endpoints" in str(result) and "connection" in str(result)
        one, two = (make_teacher(spec, cache_path=None) for spec in (f"{a.url},{dead}", f"{a.url},{a.url}/"))
        assert one.identity() == two.identity() and "url" not in one.identity()
    with pytest.raises(ValueError, match="http"):
        make_teacher("http://127.0.0.1:1,smollm2-135m", cache_path=None)
