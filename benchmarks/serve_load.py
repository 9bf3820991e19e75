"""`dialpref serve` under load, loopback only, bounded in count and time (issue 23).

The server is its own process (`dialpref serve`, default settings: int8 ONNX, one thread per model call,
dynamic batching up to 32 with a 2 ms wait); the load comes from another process (this script with
--client), which sends single-utterance `POST /v1/classify` requests (real DailyDialog test utterances with
their two context turns) from C concurrent aiohttp connections until COUNT have been answered:

1. concurrency 1, 8, 32 and 128: p50 / p95 / p99 latency, requests per second, errors (anything but 200);
2. `server_overhead_ms`: the median at concurrency 1 minus the bare runtime call (the same int8 model and
   tokenizer in this process, one window at a time, while the server is idle);
3. the malformed-request battery of tests/serve_helpers.py (26 kinds through httpx, 3 as raw bytes):
   how many were answered 4xx, and whether the server still answered a good request after;
4. a slow client (sends half a body, then nothing) and a client that drops its WebSocket mid-stream, during
   a concurrency-8 run: that run's p95 against the same run without them, and the slow client's 408;
5. concurrency 32 and 128 again with `--threads 2` (both cores for the model call, shared with the client).

    python benchmarks/serve_load.py            # trains and exports the student of student_speed.py if absent
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from _common import write_result  # noqa: E402

LEVELS = (1, 8, 32, 128)
READ_TIMEOUT_S = 2


async def _load(url: str, payloads: list[dict], concurrency: int, count: int, deadline_s: float) -> dict:
    """C workers over one aiohttp session (its pool is O(1) per request; httpx's scans every connection,
    which at 128 connections costs the client more CPU than the server spends)."""
    import aiohttp

    latencies, errors, sent = [], 0, 0
    bodies = [json.dumps(p).encode() for p in payloads]
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout,
                                     headers={"content-type": "application/json"}) as http:
        stop_at = time.monotonic() + deadline_s

        async def worker() -> None:
            nonlocal errors, sent
            while sent < count and time.monotonic() < stop_at:
                body = bodies[sent % len(bodies)]
                sent += 1
                started = time.perf_counter()
                try:
                    async with http.post("/v1/classify", data=body) as response:
                        await response.read()
                        ok = response.status == 200
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    ok = False
                latencies.append((time.perf_counter() - started) * 1000)
                errors += not ok

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return {"concurrency": concurrency, "requests": len(latencies), "errors": errors,
            "p50_ms": round(float(np.percentile(latencies, 50)), 2),
            "p95_ms": round(float(np.percentile(latencies, 95)), 2),
            "p99_ms": round(float(np.percentile(latencies, 99)), 2),
            "requests_per_second": round(len(latencies) / wall, 1)}


def client_main(args) -> None:
    """The load generator, in its own process: prints one JSON line."""
    payloads = json.loads(Path(args.payloads).read_text())
    print(json.dumps(asyncio.run(_load(args.client, payloads, args.concurrency, args.count, args.deadline))))


def run_client(url: str, payload_file: Path, concurrency: int, count: int) -> dict:
    done = subprocess.run([sys.executable, __file__, "--client", url, "--payloads", str(payload_file),
                           "--concurrency", str(concurrency), "--count", str(count)],
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def student_folder() -> tuple[Path, list]:
    """The trained, exported student of student_speed.py (trained here if its cache is empty); test windows."""
    from student_speed import CACHE, trained_student
    from table1 import keep, load_part

    from dialpref.label.tasks import BUILTIN
    from dialpref.student.export import export_onnx
    from dialpref.student.model import Student, StudentConfig

    task = BUILTIN["dialogue_act"]
    probe = Student(task, StudentConfig(), seed=0)
    pool_d, pool_rows = load_part("dailydialog_acts", "pool", task)
    pool, _, pool_gold = keep(probe.windows(pool_d), pool_rows, task)
    test_d, test_rows = load_part("dailydialog_acts", "test", task)
    test, _, test_gold = keep(probe.windows(test_d), test_rows, task)
    folder = CACHE / "serve"
    if not (folder / "model.int8.onnx").exists():
        student, _ = trained_student(task, pool, pool_gold, test, test_gold)
        export_onnx(student, student.save(folder))
    return folder, test


def payloads_of(test) -> list[dict]:
    """Each test window as the request a client would send: the utterance, its speaker, its context turns."""
    out = []
    for w in test:
        speaker, _, text = w.text.partition(": ")
        context = [dict(zip(("speaker", "text"), turn.split(": ", 1))) for turn in w.context.split(" | ") if turn]
        out.append({"utterances": [{"text": text, "speaker": speaker, "context": context}]})
    return out


def bare_runtime_ms(folder: Path, test) -> float:
    from dialpref.student.export import OnnxStudent

    local = OnnxStudent(folder, "int8", threads=1)
    for w in test[:20]:
        local.predict_proba([w])
    times = []
    for w in test[:300]:
        started = time.perf_counter()
        local.predict_proba([w])
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 3)


def battery(url: str) -> dict:
    import httpx
    from serve_helpers import RAW_BAD, bad_requests, raw_http

    from dialpref.serve.settings import ServeSettings

    port = int(url.rsplit(":", 1)[1])
    answers = {}
    with httpx.Client(base_url=url, timeout=10) as http:
        for name, request in bad_requests(ServeSettings().max_body_bytes).items():
            answers[name] = http.request(**request).status_code
        for name, data in RAW_BAD.items():
            answers[name] = raw_http(port, data)
        still = http.post("/v1/classify", json={"utterances": [{"text": "still serving?"}]}).status_code
    return {"bad_requests_tried": len(answers),
            "bad_requests_answered_4xx": sum(400 <= s < 500 for s in answers.values()),
            "bad_request_statuses": answers, "good_request_after_battery": still}


def with_bad_clients(url: str, payload_file: Path) -> dict:
    """A concurrency-8 run while a client dribbles half a body and another drops its WebSocket unread."""
    from websockets.sync.client import connect

    port = int(url.rsplit(":", 1)[1])
    slow = socket.create_connection(("127.0.0.1", port))
    slow.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100\r\n\r\n{\"utter")
    dropped = connect(url.replace("http", "ws") + "/v1/live").__enter__()
    dropped.recv()
    dropped.send(json.dumps({"text": "where is the station?"}))
    dropped.socket.close()
    run = run_client(url, payload_file, 8, 1000)
    slow.settimeout(READ_TIMEOUT_S + 10)
    try:
        status = slow.recv(4096).split(b"\r\n")[0].decode(errors="replace")
    except socket.timeout:
        status = "no answer"
    slow.close()
    return {**run, "slow_client_answer": status}


def main() -> None:
    from serve_helpers import serving

    folder, test = student_folder()
    payload_file = folder / "payloads.json"
    payload_file.write_text(json.dumps(payloads_of(test)))
    result: dict = {"student": "MiniLM-L6 fine-tuned on the DailyDialog pool (student_speed.py), int8 ONNX",
                    "server": "dialpref serve, default settings (1 thread, max batch 32, max wait 2 ms), "
                              f"--read-timeout {READ_TIMEOUT_S}",
                    "bare_runtime_ms": bare_runtime_ms(folder, test)}
    with serving(folder, "--read-timeout", READ_TIMEOUT_S) as server:
        run_client(server.url, payload_file, 8, 200)  # warm-up
        result["levels"] = []
        for concurrency in LEVELS:
            level = run_client(server.url, payload_file, concurrency, max(1000, 16 * concurrency))
            result["levels"].append(level)
            print(level, flush=True)
        result["server_overhead_ms"] = round(result["levels"][0]["p50_ms"] - result["bare_runtime_ms"], 3)
        result.update(battery(server.url))
        print({k: result[k] for k in ("bad_requests_tried", "bad_requests_answered_4xx")}, flush=True)
        baseline = run_client(server.url, payload_file, 8, 1000)
        stalled = with_bad_clients(server.url, payload_file)
        result["bad_clients"] = {"without": baseline, "with_slow_and_dropped_clients": stalled,
                                 "p95_ratio": round(stalled["p95_ms"] / baseline["p95_ms"], 3)}
        print(result["bad_clients"], flush=True)
    with serving(folder, "--threads", 2) as server:  # the model call on both cores, sharing them with the client
        run_client(server.url, payload_file, 8, 200)
        result["levels_threads_2"] = [run_client(server.url, payload_file, c, max(1000, 16 * c)) for c in (32, 128)]
        print(result["levels_threads_2"], flush=True)
    write_result("serve_load", result)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client", help="(internal) run as the load generator against this URL")
    parser.add_argument("--payloads")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--deadline", type=float, default=120.0, help="seconds a level may take at most")
    args = parser.parse_args()
    client_main(args) if args.client else main()
