"""The teacher cache: keys change with anything that changes the answer; kill -9 loses no finished call."""

import json
import sqlite3
import subprocess
import sys

import pytest

from dialpref.teachers import CachedTeacher, ChatRequest, TeacherCache
from dialpref.teachers.openai_compat import OpenAICompatTeacher

from fake_openai import FakeOpenAI
from kill_midway import kill_after_stored

MSG = [{"role": "user", "content": "hello"}]


def test_hits_misses_and_key_sensitivity(tmp_path):
    with FakeOpenAI() as fake:
        teacher = CachedTeacher(OpenAICompatTeacher(fake.url, "m", backoff=0.01), TeacherCache(tmp_path / "c.db"))
        base = ChatRequest.make(MSG)
        teacher.complete(base)
        assert teacher.complete(base).cached
        variants = [ChatRequest.make([{"role": "user", "content": "hello!"}]), ChatRequest.make(MSG, temperature=0.5),
                    ChatRequest.make(MSG, sample_index=1), ChatRequest.make(MSG, max_tokens=10),
                    ChatRequest.make(MSG, json_schema={"type": "object"})]
        assert not any(teacher.complete(v).cached for v in variants)
        assert teacher.cache.stats() == {"hits": 1, "misses": 6, "stored": 6}
        assert len(fake.requests) == 6
        other_model = CachedTeacher(OpenAICompatTeacher(fake.url, "other", backoff=0.01), teacher.cache)
        assert not other_model.complete(base).cached


CHILD = r"""
import sys

import pytest
from dialpref.teachers import CachedTeacher, ChatRequest, TeacherCache
from dialpref.teachers.openai_compat import OpenAICompatTeacher
url, db = sys.argv[1], sys.argv[2]
teacher = CachedTeacher(OpenAICompatTeacher(url, "m", concurrency=2), TeacherCache(db))
requests = [ChatRequest.make([{"role": "user", "content": f"utterance {i}"}]) for i in range(40)]
teacher.complete_many(requests)
print("done", teacher.cache.stats())
"""


def test_kill_9_midway_then_rerun_repeats_no_completed_call(tmp_path):
    db = tmp_path / "cache.sqlite"
    with FakeOpenAI(delay=0.05) as fake:
        child = subprocess.Popen([sys.executable, "-c", CHILD, fake.url, str(db)], stdout=subprocess.PIPE)
        kill_after_stored(child, db, 10, timeout=60)
        with sqlite3.connect(db) as conn:
            done_before = {json.loads(r[0])["messages"][0]["content"] for r in
                           conn.execute("SELECT request FROM calls")}
        assert 10 <= len(done_before) < 40, "the kill should land midway"
        seen_before_kill = len(fake.requests)
        rerun = subprocess.run([sys.executable, "-c", CHILD, fake.url, str(db)], capture_output=True, text=True,
                               timeout=120)
        assert "done" in rerun.stdout
        asked_again = [r["messages"][0]["content"] for r in fake.requests[seen_before_kill:]]
    assert not done_before & set(asked_again), "a call completed before the kill was paid for again"
    assert len(asked_again) == 40 - len(done_before)
    assert f"'hits': {len(done_before)}" in rerun.stdout


def test_opening_a_cache_retries_what_sqlite_calls_locked_and_nothing_else():
    """Two processes creating one cache both switch it to WAL; SQLite may answer one "locked" at once."""
    import sqlite3

    from dialpref.teachers.cache import _retry_locked

    tries = []

    def flaky():
        tries.append(1)
        if len(tries) < 3:
            raise sqlite3.OperationalError("database is locked")
        return "done"

    assert _retry_locked(flaky) == "done" and len(tries) == 3
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        _retry_locked(lambda: (_ for _ in ()).throw(sqlite3.OperationalError("no such table: x")))


def test_two_teachers_reading_one_dialogue_causally_at_once_pay_once(tmp_path, smollm2):
    """Causal mode claims the dialogue's stream: a second process (here a second cache handle, another
    owner) that needs the same answers waits for them instead of reading the dialogue again."""
    import threading

    from dialpref.label.causal import label_causal
    from dialpref.label.tasks import BUILTIN
    from test_student import dialogues

    path = tmp_path / "cache.sqlite"
    teachers = [CachedTeacher(smollm2, TeacherCache(path)), CachedTeacher(smollm2.__class__("smollm2-135m", n_ctx=2048),
                                                                          TeacherCache(path))]
    dialogue, rows = dialogues(1)[0], {}
    threads = [threading.Thread(target=lambda k=k: rows.setdefault(k, label_causal(teachers[k], BUILTIN[
        "dialogue_act"], dialogue))) for k in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert rows[0] and [r["scores"] for r in rows[0]] == [r["scores"] for r in rows[1]]
    assert TeacherCache(path).repeated_calls() == 0 and len(TeacherCache(path)) == len(rows[0])
