"""The OpenAI-compatible client against a loopback fake that injects faults: retried or reported, never lost."""

import json
import logging

import pytest
from pydantic import BaseModel

from dialpref.teachers import CachedTeacher, ChatRequest, TeacherCache, TeacherError, option_probs, structured
from dialpref.teachers.openai_compat import OpenAICompatTeacher

from fake_openai import FakeOpenAI

MSG = [{"role": "user", "content": "hello"}]


def client(url, **kw):
    kw.setdefault("backoff", 0.01)
    kw.setdefault("timeout", 2.0)
    return OpenAICompatTeacher(url, "fake-model", **kw)


@pytest.mark.parametrize("fault", [{"status": 429, "retry_after": 0}, {"status": 500}, {"status": 503},
                                   {"truncate": True}, {"hang": 1.5}])
def test_transient_faults_are_retried(fault):
    with FakeOpenAI(reply_for=lambda p: "fine") as fake:
        fake.faults.extend([fault, dict(fault)])
        teacher = client(fake.url, timeout=1.0)
        result = teacher.complete(ChatRequest.make(MSG))
        assert result.text == "fine"
        assert len(fake.requests) == 3 and teacher.retries_made == 2


def test_exhausted_retries_are_reported_not_lost():
    with FakeOpenAI() as fake:
        fake.faults.extend([{"status": 500}] * 10)
        teacher = client(fake.url, max_retries=2)
        results = teacher.complete_many([ChatRequest.make(MSG), ChatRequest.make(MSG, seed=1)])
        assert all(isinstance(r, TeacherError) for r in results)  # 2 calls x 3 attempts, all 500
        assert "failed after 3 attempts" in str(results[0]) and "HTTP 500" in str(results[0])
        assert len(fake.requests) == 6


def test_client_errors_are_not_retried():
    with FakeOpenAI() as fake:
        fake.faults.append({"status": 400, "message": "bad request"})
        with pytest.raises(TeacherError, match="HTTP 400"):
            client(fake.url).complete(ChatRequest.make(MSG))
        assert len(fake.requests) == 1


def test_concurrency_limit_is_respected():
    with FakeOpenAI(delay=0.1) as fake:
        teacher = client(fake.url, concurrency=3)
        results = teacher.complete_many([ChatRequest.make(MSG, seed=i) for i in range(12)])
        assert all(r.text == "ok" for r in results)
        assert fake.max_in_flight == 3


class Answer(BaseModel):
    label: str
    confidence: float


def test_schema_violating_json_is_retried_with_the_error():
    with FakeOpenAI() as fake:
        fake.faults.extend([{"text": '{"label": "yes"}'},              # missing field
                            {"text": '{"label": "yes", "confid'},       # truncated JSON
                            {"text": '{"label": "yes", "confidence": 0.9}'}])
        result = structured(client(fake.url), MSG, Answer, retries=2)
        assert result.value == Answer(label="yes", confidence=0.9)
        assert len(result.raw_outputs) == 3 and len(result.errors) == 2
        assert "confidence" in result.errors[0]
        # the second request carried the first answer and what was wrong with it
        retry_messages = fake.requests[1]["messages"]
        assert retry_messages[-2]["content"] == '{"label": "yes"}'
        assert "not valid" in retry_messages[-1]["content"]
        assert fake.requests[0]["response_format"]["type"] == "json_schema"


def test_invalid_after_all_retries_keeps_raw_outputs():
    with FakeOpenAI() as fake:
        fake.faults.extend([{"text": "I cannot help with that."}] * 3)
        result = structured(client(fake.url), MSG, Answer, retries=2)
        assert result.value is None and result.raw_outputs == ["I cannot help with that."] * 3


def test_json_schema_refused_falls_back_to_json_object():
    with FakeOpenAI() as fake:
        fake.faults.append({"status": 400, "message": "response_format json_schema unsupported"})
        fake.faults.append({"text": '{"label": "a", "confidence": 1}'})
        teacher = client(fake.url)
        assert structured(teacher, MSG, Answer).ok
        assert fake.requests[1]["response_format"]["type"] == "json_object"
        assert teacher.json_mode == "json_object"


def test_option_probs_from_top_logprobs():
    with FakeOpenAI() as fake:
        probs = option_probs(client(fake.url), MSG, ["yes", "no"])
        assert probs["yes"] > probs["no"] and abs(sum(probs.values()) - 1) < 1e-9
        assert fake.requests[0]["logprobs"] is True and fake.requests[0]["max_tokens"] == 1


def test_api_key_never_reaches_logs_cache_outputs_or_errors(tmp_path, monkeypatch, caplog):
    secret = "sk-test-SECRET-0123456789"
    monkeypatch.setenv("DIALPREF_TEST_KEY", secret)
    caplog.set_level(logging.DEBUG)
    with FakeOpenAI() as fake:
        fake.faults.append({"status": 401, "message": f"invalid key {secret}"})  # a server that echoes it
        teacher = CachedTeacher(client(fake.url, api_key_env="DIALPREF_TEST_KEY"),
                                TeacherCache(tmp_path / "cache.sqlite"))
        with pytest.raises(TeacherError) as err:
            teacher.complete(ChatRequest.make(MSG))
        assert secret not in str(err.value) and "***" in str(err.value)
        out = teacher.complete(ChatRequest.make(MSG, seed=5))
        assert fake.headers[-1]["Authorization"] == f"Bearer {secret}"  # it was sent...
    teacher.cache.close()
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert secret.encode() not in stored  # ...but never stored
    assert secret not in caplog.text and secret not in json.dumps(out.__dict__)
