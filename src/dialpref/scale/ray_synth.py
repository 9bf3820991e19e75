"""`dialpref synth run --engine ray`: samples synthesized by Ray actors that hold a teacher.

The actor runs `proutt.run.synthesize_one`, the local loop's step; each result comes back to the driver,
which writes it to the run folder exactly as the local path does (synth.jsonl appended as each finishes,
rejects with their reason), so resume, `--retry-failed` and the exports are unchanged. The driver streams
the samples from the reader to Ray a chunk at a time (it never holds the corpus); the synthesis, which is
what costs, runs on the actors, each with the run's cache on a disk they share.
"""

from __future__ import annotations

import itertools
import json
from typing import Any, Iterable, Iterator

from dialpref.proutt.run import Engine, synthesize_one
from dialpref.proutt.samples import NextTurnSample
from dialpref.proutt.synthesize import SynthConfig
from dialpref.scale.cluster import RayOptions, TeacherSpec, connect


class SampleSynthesizer:
    """A Ray Data actor: builds its teacher once, then synthesizes each batch of samples."""

    def __init__(self, teacher: TeacherSpec, config: SynthConfig) -> None:
        self.teacher, self.config = teacher.build(), config

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        out = []
        for text in batch["sample"]:
            sample = NextTurnSample.model_validate_json(text)
            row, reject = synthesize_one(self.teacher, sample, self.config)
            out.append(json.dumps({"id": sample.id, "row": row, "reject": reject}, ensure_ascii=False))
        return {"result": out}


def ray_engine(teacher: TeacherSpec, config: SynthConfig, options: RayOptions, chunk: int = 256) -> Engine:
    """An engine for `proutt.run.synth_run`: the samples in as the reader streams them, (sample, record,
    reject) out as they finish. The stream goes to Ray `chunk` samples at a time, so the driver never holds
    more than that many."""

    def run(todo: Iterable[NextTurnSample]) -> Iterator[tuple[NextTurnSample, dict | None, tuple | None]]:
        import ray

        stream = iter(todo)
        while part := list(itertools.islice(stream, chunk)):
            connect(options)
            by_id = {s.id: s for s in part}
            done = ray.data.from_items([{"sample": s.model_dump_json()} for s in part]).map_batches(
                SampleSynthesizer, batch_size=1, fn_constructor_kwargs={"teacher": teacher, "config": config},
                **options.actor_pool())
            for record in done.iter_rows():
                result = json.loads(record["result"])
                yield by_id[result["id"]], result["row"], tuple(result["reject"]) if result["reject"] else None

    return run
