"""Scale-out (issue 24): labelling on Ray against the local loop, kill-and-resume on a two-node cluster, and
the student through transformers.Trainer against the plain loop, one run on this machine.

Throughput: the same DailyDialog test dialogues labelled (fresh caches, so every call is computed) by
  - the local loop, embedded Gemma-3-270M in causal mode, 2 threads;
  - `--engine ray` (dialpref.scale.ray_label) with 1 actor of 2 CPUs and with 2 actors of 1 CPU each;
  - a fleet of 2 llama.cpp servers (1 thread each) in prefix mode: local loop vs Ray with 2 actors.
Ray's overhead is local labels/s over Ray's, less 1, at the same cores, once the actors have started (each
loads its model before its first dialogue: that start is reported beside it, not hidden). Kill-and-resume: a head and a worker
node (`ray start`, loopback), `dialpref label --engine ray` killed midway by SIGKILL of the worker node's
raylet, then rerun; every utterance must come out once and no stored call be paid again. Trainer vs loop:
the gold-only student (5 % of DailyDialog train, 3 seeds) fine-tuned by both engines. The scaling model is
arithmetic on these figures, with its assumptions written beside it.

    python benchmarks/scale_out.py            # about 15 minutes on 2 cores; run it alone
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, SHARED_DATA, write_result  # noqa: E402

from dialpref.data import Rejects, read_dialogues  # noqa: E402
from dialpref.label.bank import load_bank  # noqa: E402
from dialpref.label.run import LabelConfig, label_run  # noqa: E402
from dialpref.label.tasks import load_task  # noqa: E402
from dialpref.scale.cluster import RayOptions, TeacherSpec  # noqa: E402
from dialpref.teachers.factory import make_teacher  # noqa: E402

DD = SHARED_DATA / "dailydialog" / "data.zip"
TEACHER = "gemma3-270m"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dialogues", type=int, default=30, help="DailyDialog test dialogues per throughput run")
    parser.add_argument("--fleet-dialogues", type=int, default=8, help="dialogues for the server fleet runs")
    parser.add_argument("--parts", nargs="+", default=["throughput", "fleet", "kill_resume", "trainer", "model"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    return parser.parse_args()


def _dialogues(n: int) -> list:
    return list(read_dialogues(DD, Rejects(echo=False), split="test", limit=n))


def local_run(spec: str, mode: str, n: int, work: Path, **teacher) -> dict:
    task, config = load_task("dialogue_act"), LabelConfig(mode=mode)
    llm = make_teacher(spec, cache_path=work / f"local-{time.time_ns()}.sqlite", **teacher)
    summary = label_run(llm, task, _dialogues(n), config, work / "local.jsonl", load_bank(config.bank))
    return {"labels": summary["utterances"], "seconds": summary["seconds"],
            "labels_per_second": summary["labels_per_second"],
            "tokens_evaluated_per_label": summary.get("tokens_evaluated_per_label")}


def ray_run(spec: str, mode: str, n: int, work: Path, actors: int, cpus: float, **teacher) -> dict:
    from dialpref.scale import shards
    from dialpref.scale.ray_label import label_with_ray

    task, config = load_task("dialogue_act"), LabelConfig(mode=mode)
    out = work / f"ray-{actors}.jsonl"
    shards.clear(shards.shard_dir(out))
    (shards.shard_dir(out) / "run.json").unlink(missing_ok=True)
    started = time.perf_counter()
    summary = label_with_ray(str(DD), task, config, load_bank(config.bank), out,
                             TeacherSpec(spec, cache_path=str(work / f"ray-{time.time_ns()}.sqlite"),
                                         threads=max(1, int(cpus)), **teacher),
                             RayOptions(actors=actors, cpus_per_actor=cpus), split="test", limit=n)
    return {"labels": summary["utterances"], "seconds": summary["seconds"],
            "labels_per_second_with_actor_start": summary["labels_per_second"],
            "seconds_to_first_dialogue": summary["engine"].get("seconds_to_first_dialogue"),
            "labels_per_second": summary["engine"].get("labels_per_second_after_first"),
            "wall_seconds_with_actor_start": round(time.perf_counter() - started, 2)}


def throughput(args, work: Path) -> dict:
    """Embedded teacher: the local loop (2 threads) against Ray with 1 x 2 and 2 x 1 CPUs."""
    import ray

    local = local_run(TEACHER, "causal", args.dialogues, work, threads=2)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    one = ray_run(TEACHER, "causal", args.dialogues, work, actors=1, cpus=2)
    two = ray_run(TEACHER, "causal", args.dialogues, work, actors=2, cpus=1)
    ray.shutdown()
    return {"teacher": TEACHER, "mode": "causal", "local": local, "ray_1_actor": one, "ray_2_actors": two,
            "ray_overhead_ratio": {"1_actor": _overhead(local, one), "2_actors": _overhead(local, two)}}


def _overhead(local: dict, ray_result: dict) -> float:
    return round(local["labels_per_second"] / ray_result["labels_per_second"] - 1, 4)


def _servers(work: Path, n: int = 2):
    import httpx

    from dialpref.teachers.packaged import locate

    procs, urls = [], []
    for i in range(n):
        port = __import__("dialpref.scale.local_cluster", fromlist=["_free_port"])._free_port()
        log = (work / f"server{i}.log").open("wb")
        procs.append(subprocess.Popen([sys.executable, "-m", "dialpref.teachers.llama_server", "--model",
                                       str(locate(TEACHER)), "--host", "127.0.0.1", "--port", str(port), "--n_ctx",
                                       "4096", "--n_threads", "1", "--n_threads_batch", "1", "--model_alias", "teacher"], stdout=log,
                                      stderr=subprocess.STDOUT))
        urls.append(f"http://127.0.0.1:{port}")
    for url in urls:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/v1/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
    return procs, urls


def fleet(args, work: Path) -> dict:
    """A fleet of 2 llama.cpp servers (1 thread each), prefix mode: local loop against Ray with 2 actors."""
    import ray

    procs, urls = _servers(work)
    try:
        spec = ",".join(urls)
        local = local_run(spec, "prefix", args.fleet_dialogues, work, server_model="teacher")
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        two = ray_run(spec, "prefix", args.fleet_dialogues, work, actors=2, cpus=0.5, server_model="teacher")
        ray.shutdown()
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
    return {"teacher": f"{TEACHER} on 2 llama.cpp servers", "mode": "prefix", "local": local, "ray_2_actors": two,
            "ray_overhead_ratio": {"2_actors": _overhead(local, two)}}


def kill_resume(args, work: Path) -> dict:
    """`dialpref label --engine ray` on a two-node cluster, the worker node SIGKILLed after the first shard."""
    from dialpref.scale.local_cluster import LocalCluster
    from dialpref.teachers.cache import TeacherCache

    out, cache = work / "kill" / "scores.jsonl", work / "kill-cache.sqlite"
    command = [sys.executable, "-m", "dialpref.cli", "label", str(DD), "--split", "test", "--dialogues", "24",
               "--engine", "ray", "--teacher", "smollm2-135m", "--output", str(out), "--cache", str(cache),
               "--actors", "2", "--shard-dialogues", "2"]
    with LocalCluster(nodes=2, cpus_per_node=1, temp_dir=work / "ray") as cluster:
        command += ["--ray-address", cluster.address]
        first = subprocess.Popen(command, env=cluster.env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        shard_dir = out.with_name("scores.shards")
        while not list(shard_dir.glob("part-*.jsonl")) and first.poll() is None:
            time.sleep(0.2)
        shards_at_kill = len([p for p in shard_dir.glob("part-*.jsonl") if "rejects" not in p.name])
        cluster.kill_node(1)
        try:
            first_rc = first.wait(timeout=600)
        except subprocess.TimeoutExpired:
            first.kill()
            first_rc = "killed after 600 s"
        cluster.add_node()
        second = subprocess.run(command, env=cluster.env, capture_output=True, text=True, timeout=900)
    rows = [json.loads(line) for line in out.read_text().splitlines()] if second.returncode == 0 else []
    keys = [(r["dialogue_id"], r["turn_index"]) for r in rows]
    expected = sum(len(d.turns) for d in _dialogues(24))
    return {"dialogues": 24, "utterances": len(rows), "utterances_expected": expected,
            "labelled_once": len(keys) == len(set(keys)) == expected, "calls_repeated": TeacherCache(cache).repeated_calls(),
            "shards_at_kill": shards_at_kill, "shards_total": 12, "first_run_exit": first_rc,
            "rerun_exit": second.returncode}


def trainer_vs_loop(args, work: Path) -> dict:
    """The gold-only student on 5 % of DailyDialog train (3 seeds) by both engines; 200 test dialogues."""
    import random

    from dialpref.evaluate.classification import classification
    from dialpref.label.state import gold_by_turn
    from dialpref.student.model import Student, StudentConfig
    from dialpref.student.train import TrainConfig, finetune_schedule

    task = load_task("dialogue_act")
    train = list(read_dialogues(DD, Rejects(echo=False), split="train", limit=2000))
    test = list(read_dialogues(DD, Rejects(echo=False), split="test", limit=200))
    out = {}
    for engine in ("loop", "trainer"):
        for seed in args.seeds:
            student = Student(task, StudentConfig(), seed=seed)
            gold, test_gold = gold_by_turn(task, train), gold_by_turn(task, test)
            windows = [w for w in student.windows(train) if w.key in gold]
            random.Random(seed).shuffle(windows)
            windows = windows[:round(0.05 * len(windows))]
            steps, lr = finetune_schedule(len(windows))
            history = student.fit(windows, [gold[w.key] for w in windows], TrainConfig(
                steps=steps, batch_windows=16, learning_rate=lr, seed=seed, threads=2, engine=engine)).history_[-1]
            test_windows = [w for w in student.windows(test) if w.key in test_gold]
            predicted = student.predict(test_windows)
            out.setdefault(engine, {})[str(seed)] = {
                **classification([test_gold[w.key] for w in test_windows], predicted, task.class_names),
                "windows_per_second": history["windows_per_second"], "gold_windows": len(windows)}
    return out


def scaling_model(result: dict) -> dict:
    """Labels per hour for 1, 8 and 64 GPU workers running vLLM: arithmetic, with its assumptions."""
    measured = result.get("throughput", {})
    overhead = max(0.0, measured.get("ray_overhead_ratio", {}).get("2_actors", 0.0))
    tokens = measured.get("local", {}).get("tokens_evaluated_per_label") or 200  # measured here, causal mode
    assumed_gpu_tokens_per_second = 20000  # ASSUMPTION: vLLM prefill of a 1-2B model on one modern GPU, prefix cache on
    per_worker = assumed_gpu_tokens_per_second / tokens
    return {"assumptions": {"evaluated_tokens_per_label": tokens,
                            "gpu_prefill_tokens_per_second": assumed_gpu_tokens_per_second,
                            "ray_overhead_ratio_measured_here": overhead},
            "labels_per_hour": {str(n): round(n * per_worker * 3600 / (1 + overhead)) for n in (1, 8, 64)},
            "limits": ["the driver consumes every labelled dialogue and writes the shards: one process's JSON "
                       "and disk rate caps the fleet (measure it before 64 workers)",
                       "the SQLite teacher cache is one file: on a cluster, a shared file system and its locking "
                       "(or per-node caches, resume then rests on the output shards alone)",
                       "the prior is fitted once over all rows at the end, on the driver"]}


def main() -> None:
    args = parse_args()
    path = RESULTS / "scale_out.json"
    result = {k: v for k, v in (json.loads(path.read_text()) if path.exists() else {}).items()
              if k not in ("command", "machine", "finished")}
    steps = {"throughput": throughput, "fleet": fleet, "kill_resume": kill_resume, "trainer": trainer_vs_loop}
    with tempfile.TemporaryDirectory() as tmp:
        for part in args.parts:
            if part in steps:
                started = time.perf_counter()
                result[part if part != "trainer" else "trainer_vs_loop"] = steps[part](args, Path(tmp))
                print(part, round(time.perf_counter() - started), "s", flush=True)
                write_result("scale_out", result)
    if "model" in args.parts:
        result["scaling_model"] = scaling_model(result)
    if "throughput" in result:
        result["local_labels_per_second"] = result["throughput"]["local"]["labels_per_second"]
        result["ray_labels_per_second"] = {
            "embedded": {"1": result["throughput"]["ray_1_actor"]["labels_per_second"],
                         "2": result["throughput"]["ray_2_actors"]["labels_per_second"]},
            **({"fleet_2_servers": {"2": result["fleet"]["ray_2_actors"]["labels_per_second"]}} if "fleet" in result
               else {})}
        result["ray_overhead_ratio"] = result["throughput"]["ray_overhead_ratio"]["2_actors"]
    write_result("scale_out", result)


if __name__ == "__main__":
    main()
