"""`dialpref label --engine ray` on a real two-node Ray cluster on this machine (loopback only): the same rows
as the local loop, and a worker node killed midway loses nothing and repeats no stored call."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="the scale-out tests need Ray: pip install 'dialpref[scale]'")

from dialpref.data import Rejects, read_dialogues  # noqa: E402
from dialpref.label.bank import load_bank  # noqa: E402
from dialpref.label.run import LabelConfig, label_run  # noqa: E402
from dialpref.label.tasks import load_task  # noqa: E402
from dialpref.teachers.cache import TeacherCache  # noqa: E402
from dialpref.teachers.factory import make_teacher  # noqa: E402
from serve_helpers import free_port  # noqa: E402

pytest.importorskip("llama_cpp", reason="the embedded teacher needs dialpref[llamacpp]")

LINES = [["Hi, can you help me book a table?", "Sure, for how many people?", "Four, tonight at eight.",
          "Done. Anything else?", "No thanks, bye."],
         ["I lost my keys again.", "Oh no, where did you last see them?", "Probably at the gym.", "Call them."],
         ["What a great movie that was!", "I loved the ending.", "Me too, let's watch the sequel."],
         ["Could you close the window?", "Sure, is it cold?", "Yes, freezing."]]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head node and a worker node, 1 CPU each, as `ray start` makes them (one cluster for the module)."""
    from dialpref.scale.local_cluster import LocalCluster

    with LocalCluster(nodes=2, cpus_per_node=1, temp_dir=tmp_path_factory.mktemp("ray")) as local:
        yield local


def _dialogues(path: Path, copies: int) -> Path:
    rows = [{"id": f"d{k}-{j}", "turns": [{"speaker": "A" if i % 2 == 0 else "B", "role": "user" if i % 2 == 0
                                           else "assistant", "text": text} for i, text in enumerate(lines)]}
            for k in range(copies) for j, lines in enumerate(LINES)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _label(data: Path, out: Path, cache: Path, cluster, *extra) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dialpref.cli", "label", str(data), "--engine", "ray", "--ray-address", cluster.address,
         "--dialogues", "1000", "--output", str(out), "--cache", str(cache),
         "--actors", "2", "--shard-dialogues", "2", *_with_default_teacher(extra)],
        env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _said(text: str) -> str:
    """The CLI's words without the error box's borders and line breaks."""
    return " ".join(text.replace("│", " ").replace("╭", " ").replace("╰", " ").split())


def _with_default_teacher(extra) -> list[str]:
    return list(extra) if "--teacher" in extra else ["--teacher", "smollm2-135m", *extra]


def _local_rows(data: Path, tmp_path: Path) -> list[dict]:
    task, config = load_task("dialogue_act"), LabelConfig(mode="causal")
    teacher = make_teacher("smollm2-135m", cache_path=tmp_path / "local-cache.sqlite")
    out = tmp_path / "local.jsonl"
    label_run(teacher, task, list(read_dialogues(data, Rejects(echo=False))), config, out, load_bank(config.bank))
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_label_on_a_two_node_cluster_matches_local_and_survives_a_killed_node(cluster, tmp_path):
    data = _dialogues(tmp_path / "dialogues.jsonl", copies=4)  # 16 dialogues, 60 utterances
    out, cache = tmp_path / "ray" / "scores.jsonl", tmp_path / "ray-cache.sqlite"
    first = _label(data, out, cache, cluster)
    shard_dir = out.with_name("scores.shards")
    deadline = time.monotonic() + 240
    while not list(shard_dir.glob("part-*.jsonl")) and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert list(shard_dir.glob("part-*.jsonl")), first.communicate()[0][-3000:]
    written = len([p for p in shard_dir.glob("part-*.jsonl") if "rejects" not in p.name])
    assert written < 8  # of 8 shards (2 dialogues each): the kill comes midway
    cluster.kill_node(1)  # midway: some shards written, the rest in flight
    try:
        first.wait(timeout=240)  # Ray goes on with the head's actor, or the run fails: either way, rerun
    except subprocess.TimeoutExpired:
        first.kill()
    cluster.add_node()
    second = _label(data, out, cache, cluster)
    log = second.communicate(timeout=300)[0]
    assert second.returncode == 0, log[-3000:]
    summary = json.loads(out.with_name("scores.summary.json").read_text())
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    keys = [(r["dialogue_id"], r["turn_index"]) for r in rows]
    local = _local_rows(data, tmp_path)
    assert len(keys) == len(set(keys)) == len(local) == 60  # every utterance exactly once
    assert rows == local  # the same rows as the local loop, in the same order
    assert summary["engine"]["name"] == "ray" and summary["engine"]["dialogues_from_shards"] > 0
    assert TeacherCache(cache).repeated_calls() == 0  # no stored call was paid for again


def test_ray_refuses_a_content_free_prior_and_mixed_shards(cluster, tmp_path):
    """Clear errors, no traceback: a prior the actors cannot give, and shards of another run."""
    data = _dialogues(tmp_path / "d.jsonl", copies=1)
    out = tmp_path / "scores.jsonl"
    bad = _label(data, out, tmp_path / "c.sqlite", cluster, "--prior", "content_free")
    text = _said(bad.communicate(timeout=120)[0])
    assert bad.returncode != 0 and "pass --prior unlabelled" in text and "Traceback" not in text, text
    marker = out.with_name("scores.shards") / "run.json"
    marker.parent.mkdir(parents=True)
    marker.write_text(json.dumps({"task": "another"}))
    other = _label(data, out, tmp_path / "c.sqlite", cluster)
    text = _said(other.communicate(timeout=120)[0])
    assert other.returncode != 0 and "pass --fresh" in text and "Traceback" not in text, text


def _llama_server(tmp_path: Path, name: str):
    from dialpref.teachers.packaged import locate

    port = free_port()
    log = tmp_path / f"{name}.log"
    # a file, not a pipe: llama.cpp logs enough to fill a pipe and stall
    proc = subprocess.Popen([sys.executable, "-m", "dialpref.teachers.llama_server", "--model",
                             str(locate("smollm2-135m")), "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
                             "--n_threads", "1", "--n_threads_batch", "1", "--model_alias", "smollm2"], stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}", log


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """Two real llama.cpp servers of the packaged model on 127.0.0.1."""
    import importlib.util

    import httpx

    for module in ("uvicorn", "fastapi", "sse_starlette", "starlette_context"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} missing: pip install -e '.[llamacpp,server]'")
    root = tmp_path_factory.mktemp("fleet")
    servers = [_llama_server(root, f"server{i}") for i in range(2)]
    deadline = time.monotonic() + 120
    for proc, url, log in servers:
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")[-2000:]
            try:
                if httpx.get(f"{url}/v1/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
    yield [(url, log) for _, url, log in servers]
    for proc, _, _ in servers:
        proc.terminate()
        proc.wait(timeout=20)


def test_label_on_the_cluster_against_a_fleet_of_two_llama_servers(cluster, fleet, tmp_path):
    """Prefix mode against both servers as one teacher: the rows the local loop gives, both servers used,
    every utterance once, and a rerun repays nothing."""
    data = _dialogues(tmp_path / "dialogues.jsonl", copies=1)  # 4 dialogues, 15 utterances
    spec = ",".join(url for url, _ in fleet)
    out, cache = tmp_path / "ray" / "scores.jsonl", tmp_path / "cache.sqlite"
    served = _label(data, out, cache, cluster, "--teacher", spec, "--server-model", "smollm2", "--mode", "prefix")
    log = served.communicate(timeout=300)[0]
    assert served.returncode == 0, log[-3000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len({(r["dialogue_id"], r["turn_index"]) for r in rows}) == len(rows) == 15
    assert all(r["scores"] for r in rows)
    assert all("/v1/chat/completions" in path.read_text(errors="replace") for _, path in fleet)  # both served
    again = _label(data, out, cache, cluster, "--teacher", spec, "--server-model", "smollm2", "--mode", "prefix",
                   "--fresh")
    assert again.communicate(timeout=300)[0] and again.returncode == 0
    assert [json.loads(line) for line in out.read_text().splitlines()] == rows  # from the cache, the same rows
    assert TeacherCache(cache).repeated_calls() == 0
    from dialpref.teachers.factory import make_teacher as teacher_for

    local = tmp_path / "local.jsonl"
    label_run(teacher_for(spec, server_model="smollm2", cache_path=cache), load_task("dialogue_act"),
              list(read_dialogues(data, Rejects(echo=False))), LabelConfig(mode="prefix"), local,
              load_bank(LabelConfig.bank))
    assert [json.loads(line) for line in local.read_text().splitlines()] == rows


def test_synth_run_on_the_cluster_gives_the_local_records_and_resumes_without_paying(cluster, tmp_path, monkeypatch):
    """`synth run --engine ray` against a loopback OpenAI-compatible fake: the same records as the local
    path (chosen / rejected traces, bands, rejects), and a rerun asks the server nothing."""
    from test_proutt_synth import canned, write_chats

    from dialpref.proutt.run import synth_run
    from dialpref.proutt.synthesize import SynthConfig
    from fake_openai import FakeOpenAI

    def stable(folder: Path) -> list[tuple]:
        rows = [json.loads(line) for line in (folder / "synth.jsonl").read_text().splitlines()]
        return sorted((r["id"], r["band"], r["chosen"]["text"], r["rejected"]["text"]) for r in rows)

    chats = tmp_path / "chats.jsonl"
    write_chats(chats)
    with FakeOpenAI(reply_for=canned) as server:
        local = tmp_path / "local"
        synth_run(str(chats), local, make_teacher(server.url, cache_path=tmp_path / "local.sqlite"), SynthConfig())
        out = tmp_path / "ray"
        command = [sys.executable, "-m", "dialpref.cli", "synth", "run", str(chats), "-o", str(out), "--teacher",
                   server.url, "--engine", "ray", "--ray-address", cluster.address, "--cache",
                   str(tmp_path / "ray.sqlite")]
        done = subprocess.run(command, env=cluster.env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
        assert stable(out) == stable(local) and len(stable(out)) == 3
        rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
        assert any(r.get("id") == "c3_0#2" and r["reason"].startswith("stage insight") for r in rejects)
        calls = len(server.requests)
        again = subprocess.run(command, env=cluster.env, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0 and len(server.requests) == calls  # resumed: nothing asked twice


def test_a_failing_call_on_ray_is_a_kept_row_with_its_reason_and_the_key_stays_out(tmp_path, monkeypatch):
    """A server error under --engine ray (a local Ray the CLI starts: its workers have the CLI's environment,
    key included): the row stays, with its reason, in the rows, the rejects and its shard's rejects; the key
    reaches the server and nothing written, Ray's own logs included."""
    from fake_openai import FakeOpenAI
    from fault_replies import dialogues_jsonl
    from test_fault_replies import GOOD_TOP, KEY, key_fragments

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    data = tmp_path / "dialogues.jsonl"
    data.write_text(dialogues_jsonl(2))
    import tempfile

    ray_logs = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    with FakeOpenAI(reply_for=lambda payload: "positive") as fake:
        fake.top_logprobs = GOOD_TOP
        fake.faults.append({"status": 400, "message": "bad request"})
        out = tmp_path / "out" / "scores.jsonl"
        done = subprocess.run(
            [sys.executable, "-m", "dialpref.cli", "label", str(data), "--task", "sentiment", "--teacher", fake.url,
             "--mode", "prefix", "--prior", "none", "--engine", "ray", "--actors", "1", "--output", str(out),
             "--cache", str(tmp_path / "cache.sqlite")],
            env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled",
                 "RAY_TMPDIR": str(ray_logs)}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    failed = [r for r in rows if r["errors"]]
    assert len(rows) == 4 and len(failed) == 1 and "HTTP 400" in failed[0]["errors"][0]
    assert len(out.with_name("scores.rejects.jsonl").read_text().splitlines()) == 1
    shard_rejects = [json.loads(line) for p in out.with_name("scores.shards").glob("*.rejects.jsonl")
                     for line in p.read_text().splitlines()]
    assert len(shard_rejects) == 1 and "HTTP 400" in shard_rejects[0]["reason"]
    assert any(h.get("Authorization") == f"Bearer {KEY}" for h in fake.headers)  # the actor had the key
    written = "\n".join(p.read_bytes().decode("utf-8", "replace") for root in (tmp_path, ray_logs)
                        for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    assert not key_fragments(written + done.stdout + done.stderr)
