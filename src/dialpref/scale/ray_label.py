"""`dialpref label --engine ray`: dialogues as a Ray Dataset, labelled per dialogue by actors that hold a teacher.

The actor runs `label.run.label_dialogue`, the very step of the local loop, so both engines give the same
rows. Dialogues are streamed: the dataset is `n` read shards (1 by default), each a reader pass that keeps
every n-th dialogue and skips those the output shards already hold (resume), so no process holds the corpus. The
driver writes the labelled rows as JSONL shards as they arrive (`scale.shards`), then finishes the run as
the local path does (`label.run.finish_run`: prior, rows file, rejects, summary). Each actor's teacher has
the run's cache (SQLite in WAL mode on a disk the actors share), so a retried actor or a rerun pays no
finished call again. Ray restarts an actor whose worker died and retries its task.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from dialpref.data import Rejects, read_dialogues
from dialpref.data.schema import Dialogue
from dialpref.files import atomic_write_text
from dialpref.label.bank import Bank
from dialpref.label.run import LabelConfig, finish_run, label_dialogue
from dialpref.label.tasks import TaskSpec
from dialpref.scale import shards
from dialpref.scale.cluster import RayOptions, TeacherSpec, connect


@dataclass
class ReadShard:
    """Read pass `shard` of `of`: the dialogues at positions shard, shard + of, ... not in `skip`."""

    source: str
    split: str | None
    limit: int | None
    mapping: str | None
    of: int
    skip: set[str] = field(default_factory=set)
    rejects_dir: str | None = None

    def __call__(self, item: dict[str, Any]) -> Iterator[dict[str, Any]]:
        k = int(item["shard"])
        path = Path(self.rejects_dir) / f"input-{k:03d}.jsonl" if self.rejects_dir and k == 0 else None
        sink = Rejects(path, echo=False)  # one pass's rejects are every pass's: shard 0 keeps them
        for i, dialogue in enumerate(read_dialogues(self.source, sink, split=self.split, limit=self.limit,
                                                    mapping=self.mapping)):
            if i % self.of == k and dialogue.id not in self.skip:
                yield {"dialogue": dialogue.model_dump_json(), "position": i}
        sink.close()


class DialogueLabeller:
    """A Ray Data actor: builds its teacher once, then labels each batch of dialogues."""

    def __init__(self, teacher: TeacherSpec, task: dict, config: dict, bank: Bank) -> None:
        self.teacher = teacher.build()
        self.task, self.bank = TaskSpec.from_dict(task, "run"), bank
        self.config = LabelConfig(**config).resolved(self.teacher, self.task)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        """Each dialogue's rows as one JSON text (rows differ in shape between tasks: Arrow need not know it),
        each row with `position`, the dialogue's place in the input, which orders the output as the local
        path does."""
        out = []
        for text, position in zip(batch["dialogue"], batch["position"]):
            rows = label_dialogue(self.teacher, self.task, Dialogue.model_validate_json(text), self.config, self.bank)
            out.append(json.dumps([{**row, "position": int(position)} for row in rows]))
        return {"rows": out}


def _fingerprint(task: TaskSpec, config: LabelConfig, teacher: TeacherSpec, source: str) -> dict:
    return {"task": task.name, "teacher": teacher.spec, "server_model": teacher.server_model, "source": source,
            "config": {k: v for k, v in asdict(config).items() if k not in ("prior", "buckets")}}


def _check_shards(folder: Path, fingerprint: dict) -> None:
    """Shards of another run (other teacher, task, source or config) are never mixed into this one."""
    marker = folder / "run.json"
    if marker.exists() and json.loads(marker.read_text()) != fingerprint:
        raise ValueError(f"{folder} holds rows of another run ({marker}): pass --fresh to start over, or "
                         "another --output")
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(marker, json.dumps(fingerprint, indent=2) + "\n")


def _dataset(source: str, split, limit, mapping, options: RayOptions, skip: set[str], folder: Path):
    import ray

    read = ReadShard(str(source), split, limit, None if mapping is None else str(mapping), options.read_shards,
                     skip, str(folder))
    # a read pass reserves no CPU: the actors hold them all on a small machine, and a read that waits for a CPU
    # the actors never give back would wait for ever
    return ray.data.from_items([{"shard": k} for k in range(options.read_shards)]).flat_map(read, num_cpus=0)


def label_with_ray(source: str, task: TaskSpec, config: LabelConfig, bank: Bank, output: Path,
                   teacher: TeacherSpec, options: RayOptions, *, split=None, limit=None, mapping=None,
                   on_dialogue: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Label `source` on a Ray cluster; the output, rejects and summary are the local path's, plus `engine`."""
    import ray

    if task.kind != "slots" and config.prior not in ("none", "unlabelled"):
        raise ValueError(f"--engine ray divides out the unlabelled prior or none, not {config.prior!r} (the "
                         "content-free priors ask the teacher again): pass --prior unlabelled, or --engine local")
    folder = shards.shard_dir(output)
    _check_shards(folder, _fingerprint(task, config, teacher, str(source)))
    connect(options)
    done = shards.done_dialogues(folder)
    labelled = _dataset(source, split, limit, mapping, options, done, folder).map_batches(
        DialogueLabeller, batch_size=1, **options.actor_pool(),
        fn_constructor_kwargs={"teacher": teacher, "task": {**asdict(task), "roles": list(task.roles)},
                               "config": asdict(config), "bank": bank})
    started, first = time.perf_counter(), []

    def arrived(n_rows: int) -> None:
        first or first.append((time.perf_counter() - started, n_rows))
        if on_dialogue is not None:
            on_dialogue(n_rows)

    new = _write_as_they_come(labelled, folder, options.dialogues_per_shard, arrived)
    seconds = time.perf_counter() - started
    rows = sorted(shards.read_shards(folder), key=lambda r: (r["position"], r["turn_index"]))
    fresh = sum(1 for r in rows if r["dialogue_id"] not in done)
    rows = [{k: v for k, v in r.items() if k != "position"} for r in rows]
    n_dialogues = len({r["dialogue_id"] for r in rows})
    summary = finish_run(rows, task, config, output, bank, str(source), seconds, new > 0, n_dialogues)
    summary.update(engine={"name": "ray", **asdict(options), "dialogues_this_run": new,
                           "dialogues_from_shards": len(done), "shards": str(folder)})
    summary["labels_per_second"] = round(fresh / seconds, 2) if new and seconds else None
    if first and seconds > first[0][0]:  # actors start (a model load each) before the first dialogue comes back
        summary["engine"]["seconds_to_first_dialogue"] = round(first[0][0], 2)
        summary["engine"]["labels_per_second_after_first"] = round((fresh - first[0][1]) / (seconds - first[0][0]), 2)
    atomic_write_text(output.with_name(output.stem + ".summary.json"), json.dumps(summary, indent=2) + "\n")
    return summary


def _write_as_they_come(labelled, folder: Path, per_shard: int, on_dialogue) -> int:
    """Consume the labelled dataset, writing a shard every `per_shard` dialogues; the dialogues labelled."""
    pending: list[list[dict]] = []
    count = 0
    for record in labelled.iter_rows():
        pending.append(json.loads(record["rows"]))
        count += 1
        if on_dialogue is not None:
            on_dialogue(len(pending[-1]))
        if len(pending) >= per_shard:
            shards.write_shard(folder, [row for rows in pending for row in rows])
            pending = []
    if pending:
        shards.write_shard(folder, [row for rows in pending for row in rows])
    return count
