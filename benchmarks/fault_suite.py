"""The fault suite through the real command line (issue 19): malformed inputs, hostile replies, keys, stale caches.

Every malformed input of tests/fault_inputs.py goes through `dialpref data convert` in its own process
(peak memory from wait4); every hostile reply of tests/fault_replies.py is served by a loopback
OpenAI-compatible server to a `dialpref label -v` run. Counted: tracebacks, records lost
(total - read - rejected), peak RSS, runs crashed, rows lost, fragments of the key (any 8 consecutive
characters) in any file written or any stream, stale cache hits after a GGUF changes in place, and calls
paid twice by two processes on one cache.

    python benchmarks/fault_suite.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from _common import write_result  # noqa: E402
from fault_inputs import CASES, recoverable_lines  # noqa: E402
from fault_replies import HOSTILE, dialogues_jsonl  # noqa: E402
from fake_openai import FakeOpenAI  # noqa: E402

KEY = "sk-probe-SECRET-7f3a9c2e41d8b6"
GOOD_TOP = [{"token": "positive", "logprob": -0.2}, {"token": "neutral", "logprob": -1.9}]


def fragments(text: str) -> int:
    return sum(KEY[i:i + 8] in text for i in range(len(KEY) - 7))


def run_cli(args: list[str], env: dict) -> tuple[int, str, str, float]:
    """rc, stdout, stderr and peak memory (MB, the process's own VmHWM) of one `dialpref` process."""
    with tempfile.TemporaryDirectory() as tmp:
        peak = Path(tmp) / "peak"
        run = subprocess.run([sys.executable, str(HERE / "_peak.py"), "dialpref.cli", *args], capture_output=True,
                             text=True, env={**env, "PEAK_FILE": str(peak)}, timeout=600)
        return run.returncode, run.stdout, run.stderr, float(peak.read_text()) if peak.exists() else float("nan")


def file_lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8", errors="replace").splitlines()) if path.exists() else 0


def input_case(case, folder: Path, env: dict) -> dict:
    path = case.write(folder)
    out, rejects = folder / f"{case.name}.out.jsonl", folder / f"{case.name}.rejects.jsonl"
    started = time.perf_counter()
    rc, stdout, stderr, peak = run_cli(["data", "convert", str(path), str(out), "--rejects", str(rejects)], env)
    read, rejected = file_lines(out), file_lines(rejects)
    traceback = "Traceback" in stderr
    if case.partial:
        lost = max(0, recoverable_lines(path.read_bytes()) - 1 - (read + rejected - 1))
        ok = rc == 0 and rejected >= 1
    elif case.good is None:
        lost = max(0, (case.total or 0) - rejected)
        ok = rc == 2 and case.message in stderr and len(stderr.strip().splitlines()) == 1
    else:
        lost = case.total - read - rejected
        ok = rc == 0 and read == case.good
    return {"case": case.name, "outcome": "ok" if ok and not traceback and lost == 0 else "FAILED", "rc": rc,
            "read": read, "rejected": rejected, "records_lost": lost, "traceback": traceback,
            "max_rss_mb": round(peak, 1), "seconds": round(time.perf_counter() - started, 2),
            "message": (stderr.strip().splitlines() or [""])[-1][:200] if rc else "",
            "key_fragments": fragments(stdout + stderr + _texts(folder, case.name))}


def _texts(folder: Path, prefix: str) -> str:
    return "".join(p.read_text(errors="replace") for p in folder.glob(f"{prefix}.*") if p.is_file())


def hostile_case(case, folder: Path, env: dict) -> dict:
    source = folder / "dialogues.jsonl"
    source.write_text(dialogues_jsonl(2))
    run = folder / case.name
    args = ["-v", "label", str(source), "--task", "sentiment", "--mode", "prefix", "--dialogues", "2",
            "--output", str(run / "scores.jsonl"), "--cache", str(run / "cache.sqlite"), "--prior", "none"]
    if case.calls == "text":
        args += ["--estimator", "votes", "--votes", "1"]
    fake = FakeOpenAI(reply_for=lambda payload: "positive")
    fake.top_logprobs = GOOD_TOP
    with fake:
        fake.faults.append(case.fault)
        rc, stdout, stderr, _ = run_cli([*args[:2], *args[2:], "--teacher", fake.url], env)
    rows = file_lines(run / "scores.jsonl")
    summary = json.loads((run / "scores.summary.json").read_text()) if (run / "scores.summary.json").exists() else {}
    failures = summary.get("failures_by_reason", {})
    expected = {case.kind: 1} if case.kind else {}
    ok = rc == 0 and rows == 4 and failures == expected
    return {"case": case.name, "outcome": "ok" if ok else "FAILED", "rc": rc, "rows": rows, "rows_lost": 4 - rows,
            "failures_by_reason": failures, "traceback": "Traceback" in stderr,
            "key_fragments": fragments(stdout + stderr + "".join(
                p.read_bytes().decode("utf-8", "replace") for p in run.rglob("*") if p.is_file()))}


def key_offsets() -> dict:
    """The key echoed by the server at every offset around each cut of the client's messages."""
    from dialpref.teachers import ChatRequest, TeacherError
    from dialpref.teachers.openai_compat import OpenAICompatTeacher

    tried = found = 0
    with FakeOpenAI() as fake:
        teacher = OpenAICompatTeacher(fake.url, "m", backoff=0.0, max_retries=0)
        for status in (401, 503, 200):
            for offset in range(150, 320):
                fake.faults.append({"raw": ("x" * offset + "Bearer " + KEY).encode()} if status == 200
                                   else {"echo_auth": offset, "status": status})
                tried += 1
                try:
                    teacher.complete(ChatRequest.make([{"role": "user", "content": "x"}]))
                except TeacherError as err:
                    found += fragments(str(err))
    return {"messages_tried": tried, "key_fragments_found": found}


def stale_hits(folder: Path) -> dict:
    from dialpref.teachers import CachedTeacher, TeacherCache
    from dialpref.teachers.llamacpp import LlamaCppTeacher
    from dialpref.teachers.packaged import locate

    model = folder / "model.gguf"
    model.write_bytes(locate("smollm2-135m").read_bytes())
    cache = TeacherCache(folder / "stale.sqlite")
    questions = [[{"role": "user", "content": f"Question {i}: is it true? Answer yes or no."}] for i in range(12)]
    teacher = CachedTeacher(LlamaCppTeacher(str(model), n_ctx=512), cache)
    for q in questions:
        teacher.option_logprobs(q, ["yes", "no"])
    size = model.stat().st_size
    with model.open("r+b") as handle:
        handle.seek(size // 2)
        chunk = handle.read(1 << 16)
        handle.seek(size // 2)
        handle.write(bytes(b ^ 0x01 for b in chunk))
    changed = CachedTeacher(LlamaCppTeacher(str(model), n_ctx=512), cache)
    hits = sum(changed.option_logprobs(q, ["yes", "no"]).cached for q in questions)
    return {"questions": len(questions), "size_kept": model.stat().st_size == size, "stale_hits": hits}


CHILD = r"""
import sys
from dialpref.teachers import CachedTeacher, ChatRequest, TeacherCache
from dialpref.teachers.openai_compat import OpenAICompatTeacher
teacher = CachedTeacher(OpenAICompatTeacher(sys.argv[1], "m", concurrency=4), TeacherCache(sys.argv[2]))
print(sum(r.text == "ok" for r in teacher.complete_many(
    [ChatRequest.make([{"role": "user", "content": f"call {i}"}]) for i in range(96)])))
"""


def shared_cache(folder: Path) -> dict:
    with FakeOpenAI(delay=0.03) as fake:
        children = [subprocess.Popen([sys.executable, "-c", CHILD, fake.url, str(folder / "shared.sqlite")],
                                     stdout=subprocess.PIPE, text=True) for _ in range(2)]
        answers = [int(c.communicate(timeout=300)[0].strip() or 0) for c in children]
        paid = len(fake.requests)
    return {"processes": 2, "distinct_calls": 96, "answers_each": answers, "requests_paid": paid,
            "paid_twice": paid - 96}


def main() -> None:
    env = {**os.environ, "OPENAI_API_KEY": KEY, "DIALPREF_HOME": tempfile.mkdtemp()}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        inputs = [input_case(c, folder, env) for c in CASES]
        print(f"inputs: {sum(r['outcome'] == 'ok' for r in inputs)}/{len(inputs)} ok", flush=True)
        (folder / "hostile").mkdir()
        replies = [hostile_case(c, folder / "hostile", env) for c in HOSTILE]
        print(f"replies: {sum(r['outcome'] == 'ok' for r in replies)}/{len(replies)} ok", flush=True)
        os.environ["OPENAI_API_KEY"] = KEY
        offsets = key_offsets()
        stale = stale_hits(folder)
        shared = shared_cache(folder)
    result = {
        "inputs_tried": len(inputs),
        "tracebacks": sum(r["traceback"] for r in inputs + replies),
        "records_lost": sum(r["records_lost"] for r in inputs),
        "max_rss_mb": max(r["max_rss_mb"] for r in inputs),
        "hostile_replies_tried": len(replies),
        "runs_crashed": sum(r["rc"] != 0 for r in replies),
        "rows_lost": sum(r["rows_lost"] for r in replies),
        "key_fragments_found": sum(r["key_fragments"] for r in inputs + replies) + offsets["key_fragments_found"],
        "stale_hits_after_model_change": stale["stale_hits"],
        "calls_paid_twice_by_two_processes": shared["paid_twice"],
        "failed_cases": [r["case"] for r in inputs + replies if r["outcome"] != "ok"],
        "key_offsets": offsets, "stale_cache": stale, "shared_cache": shared,
        "inputs": inputs, "replies": replies,
    }
    path = write_result("fault_suite", result)
    print(json.dumps({k: v for k, v in result.items() if k not in ("inputs", "replies")}, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
