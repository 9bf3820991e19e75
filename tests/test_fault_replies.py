"""Hostile server replies, second processes and keys near every cut: rows, not crashes; nothing paid twice;
no key in any byte written (tests/fault_replies.py lists the replies)."""

import json
import logging
import subprocess
import sys

import pytest

from dialpref.data import Rejects, read_dialogues
from dialpref.label.run import LabelConfig, label_run
from dialpref.label.scoring import error_kind
from dialpref.label.tasks import BUILTIN
from dialpref.teachers import CachedTeacher, ChatRequest, TeacherCache, TeacherError
from dialpref.teachers.openai_compat import OpenAICompatTeacher

from fake_openai import FakeOpenAI
from fault_replies import HOSTILE, dialogues_jsonl

KEY = "sk-probe-SECRET-7f3a9c2e41d8b6"
GOOD_TOP = [{"token": "positive", "logprob": -0.2}, {"token": "neutral", "logprob": -1.9}]


def key_fragments(text: str, key: str = KEY, width: int = 8) -> list[str]:
    """Every run of `width` consecutive characters of the key found in `text`."""
    return [key[i:i + width] for i in range(len(key) - width + 1) if key[i:i + width] in text]


def written_text(folder) -> str:
    return "\n".join(p.read_bytes().decode("utf-8", "replace") for p in folder.rglob("*") if p.is_file())


def hostile_server():
    fake = FakeOpenAI(reply_for=lambda payload: "positive")
    fake.top_logprobs = GOOD_TOP
    return fake


def run_label(url, tmp_path, calls, retry_failed=False):
    source = tmp_path / "dialogues.jsonl"
    source.write_text(dialogues_jsonl(2))
    dialogues = list(read_dialogues(source, Rejects(echo=False)))
    inner = OpenAICompatTeacher(url, "m", backoff=0.01, timeout=1.0, max_retries=2, concurrency=1)
    teacher = CachedTeacher(inner, TeacherCache(tmp_path / "cache.sqlite"), retry_failed=retry_failed)
    config = (LabelConfig(mode="prefix", prior="none") if calls == "logprobs"
              else LabelConfig(mode="prefix", prior="none", estimator="votes", votes=1))
    summary = label_run(teacher, BUILTIN["sentiment"], dialogues, config, tmp_path / "out" / "scores.jsonl",
                        source=str(source))
    rows = [json.loads(l) for l in (tmp_path / "out" / "scores.jsonl").read_text().splitlines()]
    return summary, rows, inner


@pytest.mark.parametrize("case", HOSTILE, ids=lambda c: c.name)
def test_hostile_reply_is_a_row_not_a_crash(case, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    caplog.set_level(logging.DEBUG)
    with hostile_server() as fake:
        fake.faults.append(case.fault)
        summary, rows, inner = run_label(fake.url, tmp_path, case.calls)
    assert len(rows) == 4 and summary["utterances"] == 4  # no row lost
    failed = [r for r in rows if r["errors"]]
    if case.kind:
        assert len(failed) == 1, [r["errors"] for r in rows]
        assert error_kind(failed[0]["errors"][0]) == case.kind, failed[0]["errors"]
        assert summary["failures_by_reason"] == {case.kind: 1}
        rejects = (tmp_path / "out" / "scores.rejects.jsonl").read_text().splitlines()
        assert len(rejects) == 1 and json.loads(rejects[0])["id"] == f"{failed[0]['dialogue_id']}#0"
    else:
        assert not failed, [r["errors"] for r in rows]
        assert all(r["scores"] for r in rows)
    assert inner.json_mode == "auto"  # no single reply switches the JSON mode for the run
    assert not key_fragments(written_text(tmp_path) + caplog.text)


def test_invalid_answer_is_stored_as_invalid_and_asked_again_only_with_retry_failed(tmp_path):
    with hostile_server() as fake:
        fake.faults.append({"text": "banana split"})
        run_label(fake.url, tmp_path, "text")
        asked = len(fake.requests)
        _, rows, _ = run_label(fake.url, tmp_path, "text")  # a rerun: read from the cache, still invalid
        assert len(fake.requests) == asked
        assert sum(bool(r["errors"]) for r in rows) == 1 and "banana split" in json.dumps(rows)
        _, rows, _ = run_label(fake.url, tmp_path, "text", retry_failed=True)
        assert len(fake.requests) == asked + 1  # that one call, and only it, asked again
        assert not any(r["errors"] for r in rows)


def test_no_sleep_after_the_last_attempt(monkeypatch):
    """Three attempts sleep twice, between them; none after the last (counted, not timed)."""
    from dialpref.teachers import openai_compat

    slept = []

    async def record(seconds):
        slept.append(seconds)

    monkeypatch.setattr(openai_compat.asyncio, "sleep", record)
    with FakeOpenAI() as fake:
        fake.faults.extend([{"status": 503}] * 3)
        teacher = OpenAICompatTeacher(fake.url, "m", backoff=1.0, max_retries=2)
        with pytest.raises(TeacherError):
            teacher.complete(ChatRequest.make([{"role": "user", "content": "x"}]))
        assert len(fake.requests) == 3 and len(slept) == 2


@pytest.mark.parametrize("path", ["error_status", "retried_status", "unparseable_body"])
def test_key_at_every_offset_around_each_cut_is_scrubbed(path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    status = {"error_status": 401, "retried_status": 503, "unparseable_body": 200}[path]
    with FakeOpenAI() as fake:
        teacher = OpenAICompatTeacher(fake.url, "m", backoff=0.0, max_retries=0)
        for offset in range(150, 320):
            if path == "unparseable_body":
                fake.faults.append({"raw": ("x" * offset + "Bearer " + KEY).encode()})
            else:
                fake.faults.append({"echo_auth": offset, "status": status})
            with pytest.raises(TeacherError) as err:
                teacher.complete(ChatRequest.make([{"role": "user", "content": "x"}]))
            assert not key_fragments(str(err.value)), (offset, str(err.value)[-80:])


CHILD = r"""
import sys
from dialpref.teachers import CachedTeacher, ChatRequest, TeacherCache
from dialpref.teachers.openai_compat import OpenAICompatTeacher
url, db = sys.argv[1], sys.argv[2]
teacher = CachedTeacher(OpenAICompatTeacher(url, "m", concurrency=4), TeacherCache(db))
results = teacher.complete_many([ChatRequest.make([{"role": "user", "content": f"call {i}"}]) for i in range(96)])
print(sum(r.text == "ok" for r in results))
"""


def test_two_processes_on_one_cache_pay_each_call_once(tmp_path):
    db = tmp_path / "shared.sqlite"
    with FakeOpenAI(delay=0.03) as fake:
        children = [subprocess.Popen([sys.executable, "-c", CHILD, fake.url, str(db)], stdout=subprocess.PIPE,
                                     text=True) for _ in range(2)]
        outputs = [child.communicate(timeout=120)[0].strip() for child in children]
        paid = [r["messages"][0]["content"] for r in fake.requests]
    assert outputs == ["96", "96"]  # both got every answer...
    assert len(paid) == 96 and len(set(paid)) == 96  # ...and each call was paid for once


def test_a_second_run_on_the_same_output_stops_with_a_message(tmp_path):
    from dialpref.files import output_lock

    source = tmp_path / "d.jsonl"
    source.write_text(dialogues_jsonl(1))
    output = tmp_path / "scores.jsonl"
    with output_lock(output):
        run = subprocess.run([sys.executable, "-m", "dialpref.cli", "label", str(source), "--output", str(output),
                              "--teacher", "http://127.0.0.1:9", "--mode", "prefix"],
                             capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "another dialpref run" in run.stderr and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


def test_rows_are_written_whole_or_not_at_all(tmp_path):
    from dialpref.rows import write_rows

    path = tmp_path / "rows.jsonl"
    write_rows([{"a": 1}], path)

    def rows():
        yield {"a": 2}
        raise KeyboardInterrupt  # killed while the rows are produced

    with pytest.raises(KeyboardInterrupt):
        write_rows(rows(), path)
    assert path.read_text() == '{"a": 1}\n' and [p.name for p in tmp_path.iterdir()] == ["rows.jsonl"]


def test_templates_resolve_only_inside_the_prompts_folder(tmp_path):
    from dialpref.label.bank import load_bank

    bank = tmp_path / "bank.yaml"
    bank.write_text("prompts:\n  - id: evil@v1\n    template: ../../../../etc/passwd\n")
    with pytest.raises(ValueError, match="never a path"):
        load_bank(str(bank))


def test_changed_weights_with_the_same_name_and_size_miss_the_cache(tmp_path, monkeypatch):
    """A GGUF edited in place (same name, same size) is a new model: 0 stale hits."""
    from conftest import embedded_teacher
    from dialpref.teachers.packaged import locate

    embedded_teacher("smollm2-135m")  # skips without llama-cpp-python or the model package
    from dialpref.teachers.llamacpp import LlamaCppTeacher

    monkeypatch.setenv("DIALPREF_HOME", str(tmp_path / "home"))
    model = tmp_path / "model.gguf"
    model.write_bytes(locate("smollm2-135m").read_bytes())
    cache = TeacherCache(tmp_path / "cache.sqlite")
    messages = [{"role": "user", "content": "Is the sky blue? Answer yes or no."}]
    first = CachedTeacher(LlamaCppTeacher(str(model), n_ctx=512), cache)
    first.option_logprobs(messages, ["yes", "no"])
    assert first.option_logprobs(messages, ["yes", "no"]).cached  # same file: a hit
    size = model.stat().st_size
    with model.open("r+b") as handle:  # flip bytes deep in the weights, size unchanged
        handle.seek(size // 2)
        chunk = handle.read(4096)
        handle.seek(size // 2)
        handle.write(bytes(b ^ 0x01 for b in chunk))
    assert model.stat().st_size == size
    second = CachedTeacher(LlamaCppTeacher(str(model), n_ctx=512), cache)
    assert second.identity()["sha256"] != first.identity()["sha256"]
    assert not second.option_logprobs(messages, ["yes", "no"]).cached  # 0 stale hits


def test_synthesis_retries_an_empty_reply_and_survives_a_hostile_one(tmp_path, monkeypatch):
    from dialpref.proutt.run import synth_run
    from dialpref.proutt.synthesize import SynthConfig
    from dialpref.rows import read_rows_lenient
    from dialpref.teachers.factory import make_teacher
    from test_proutt_synth import canned, write_chats

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    chats = tmp_path / "chats.jsonl"
    write_chats(chats, words=("alpha", "beta"))
    with FakeOpenAI(reply_for=canned) as fake:
        fake.faults.extend([{"text": ""}, {"body": {"choices": [{"message": "not an object"}]}}])
        teacher = make_teacher(fake.url, cache_path=tmp_path / "cache.sqlite", concurrency=1)
        summary = synth_run(str(chats), tmp_path / "run", teacher, SynthConfig(), concurrency=1)
    rows = read_rows_lenient(tmp_path / "run" / "synth.jsonl")
    assert summary["samples"] == 2 and len(rows) == 2  # both samples made it, the faults cost retries only
    assert any("empty reply" in e for r in rows for s in r["stages"].values() for e in s["errors"])
    assert not key_fragments(written_text(tmp_path))


def test_a_plain_400_on_a_structured_call_keeps_the_json_mode():
    from pydantic import BaseModel

    from dialpref.teachers import structured

    class Answer(BaseModel):
        label: str

    with FakeOpenAI() as fake:
        teacher = OpenAICompatTeacher(fake.url, "m", backoff=0.01, max_retries=0)
        fake.faults.extend([{"status": 400, "message": "context length exceeded"}, {"text": '{"label": "a"}'}])
        result = structured(teacher, [{"role": "user", "content": "x"}], Answer, retries=1)
        assert result.ok and "HTTP 400" in result.errors[0]
        assert teacher.json_mode == "auto" and fake.requests[1]["response_format"]["type"] == "json_schema"


def test_a_model_swapped_behind_the_same_server_name_misses_the_cache(tmp_path):
    with FakeOpenAI() as fake:
        fake.models = [{"id": "m", "owned_by": "llamacpp", "meta": {"n_params": 134515008, "size": 98362432}}]
        request = ChatRequest.make([{"role": "user", "content": "x"}])
        cache = TeacherCache(tmp_path / "c.sqlite")
        first = CachedTeacher(OpenAICompatTeacher(fake.url, "m", backoff=0.01), cache)
        assert first.identity()["served"]["size"] == 98362432
        first.complete(request)
        assert CachedTeacher(OpenAICompatTeacher(fake.url, "m", backoff=0.01), cache).complete(request).cached
        fake.models = [{"id": "m", "owned_by": "llamacpp", "meta": {"n_params": 361821120, "size": 271000000}}]
        assert not CachedTeacher(OpenAICompatTeacher(fake.url, "m", backoff=0.01), cache).complete(request).cached


def test_a_key_echoed_during_synthesis_never_reaches_its_rejects(tmp_path, monkeypatch):
    from dialpref.proutt.run import synth_run
    from dialpref.proutt.synthesize import SynthConfig
    from dialpref.teachers.factory import make_teacher
    from test_proutt_synth import canned, write_chats

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    chats = tmp_path / "chats.jsonl"
    write_chats(chats, words=("alpha",))
    with FakeOpenAI(reply_for=canned) as fake:
        fake.faults.extend([{"echo_auth": offset, "status": 401} for offset in (190, 195, 290)])
        teacher = make_teacher(fake.url, cache_path=tmp_path / "cache.sqlite", concurrency=1)
        summary = synth_run(str(chats), tmp_path / "run", teacher, SynthConfig(), concurrency=1)
    rejects = (tmp_path / "run" / "rejects.jsonl").read_text()
    assert summary["rejected_samples"] == 1 and "HTTP 401" in rejects
    assert not key_fragments(written_text(tmp_path))
