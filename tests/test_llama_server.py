"""The OpenAI-compatible client against a real llama.cpp server on 127.0.0.1 serving the packaged model."""

import importlib.util
import math
import socket
import subprocess
import sys
import time

import httpx
import pytest
from pydantic import BaseModel

from dialpref.teachers import option_probs, sample, structured
from dialpref.teachers.openai_compat import OpenAICompatTeacher


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    for module in ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} missing: pip install -e '.[llamacpp,server]'")
    from dialpref.teachers.packaged import locate

    port = _free_port()
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    log = log_path.open("wb")  # a file, not a pipe: llama.cpp logs enough to fill a pipe and stall
    # llama_cpp.server with weight repacking off (its repacked kernels crash on AVX-512 / AMX CPUs)
    proc = subprocess.Popen([sys.executable, "-m", "dialpref.teachers.llama_server",
                             "--model", str(locate("smollm2-135m")), "--host", "127.0.0.1", "--port", str(port),
                             "--n_ctx", "2048", "--model_alias", "smollm2"],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"llama.cpp server exited: {log_path.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(f"{url}/v1/models", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail(f"llama.cpp server did not start within 90 s: {log_path.read_text(errors='replace')[-2000:]}")
    yield url
    proc.terminate()
    proc.wait(timeout=20)


class Mood(BaseModel):
    sentiment: str
    intensity: int


def test_chat_samples(server):
    teacher = OpenAICompatTeacher(server, "smollm2", concurrency=2)
    results = sample(teacher, [{"role": "user", "content": "Name a fruit."}], n=3, temperature=1.0, max_tokens=16)
    assert len(results) == 3 and all(r.text.strip() for r in results)
    assert all(r.prompt_tokens > 0 for r in results)


def test_schema_constrained_json(server):
    teacher = OpenAICompatTeacher(server, "smollm2")
    result = structured(teacher, [{"role": "user", "content": "Give the mood of 'what a lovely day' as JSON."}], Mood)
    assert result.ok, result.errors
    assert isinstance(result.value.intensity, int)


def test_option_probabilities_from_logprobs(server):
    teacher = OpenAICompatTeacher(server, "smollm2")
    probs = option_probs(teacher, [{"role": "user", "content": "Answer yes or no: is water wet?"}], ["yes", "no"])
    assert math.isclose(sum(probs.values()), 1.0, rel_tol=1e-9)
    assert max(probs.values()) > 0.5
