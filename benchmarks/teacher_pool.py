"""Teacher labels for whole training sets (issue 25), made once in the background and kept in the repo.

Teacher: the embedded configuration the labelling benchmarks chose, Gemma-3-270M in causal mode (the
dialogue read once, "Class:" asked after each utterance); the unlabelled prior is divided out when the
pool is read (`load_pool`), from the raw distributions stored here, so any pool size gets its own prior.

Work is cut into chunks of --chunk dialogues; each finished chunk is one small Parquet file under
benchmarks/data/teacher_pool/<dataset>/ (dialogue ids, turn index and the raw class distribution: no
dialogue text, no gold). A chunk that exists is skipped, so a killed run resumes where it stopped and a
later session continues it; at most one chunk of work is repeated.

    nice -n 10 python benchmarks/teacher_pool.py --threads 1 > /work/logs/pool.log 2>&1 &
"""

from __future__ import annotations

import argparse
import sys
import time
from itertools import islice
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED_DATA  # noqa: E402

from dialpref.data import Rejects, read_dialogues  # noqa: E402
from dialpref.label.causal import label_causal  # noqa: E402
from dialpref.label.tasks import BUILTIN  # noqa: E402
from dialpref.teachers.base import TeacherError  # noqa: E402

HERE = Path(__file__).resolve().parent
OUT = HERE / "data" / "teacher_pool"
TEACHER = "gemma3-270m"
# dataset -> (file under shared/data, split, task)
SOURCES = {"meld_sentiment": ("meld/train_sent_emo.csv", None, "sentiment"),
           "dailydialog_acts": ("dailydialog/data.zip", "train", "dialogue_act")}


def chunk_path(dataset: str, index: int) -> Path:
    return OUT / dataset / f"chunk-{index:04d}.parquet"


def write_chunk(rows: list[dict], classes, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"dialogue_id": [r["dialogue_id"] for r in rows],
                      "turn_index": pa.array([r["turn_index"] for r in rows], pa.int16()),
                      **{c: pa.array([r["scores"][c] if r["scores"] else None for r in rows], pa.float32())
                         for c in classes}})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(path)  # a chunk is there whole or not at all


def label_dataset(teacher, dataset: str, chunk: int, limit: int | None) -> None:
    path, split, task_name = SOURCES[dataset]
    task = BUILTIN[task_name]
    dialogues = read_dialogues(SHARED_DATA / path, Rejects(echo=False), split=split, limit=limit)
    index = 0
    while True:
        batch = list(islice(dialogues, chunk))
        if not batch:
            break
        target = chunk_path(dataset, index)
        if not target.exists():
            started = time.perf_counter()
            rows = []
            for d in batch:
                try:
                    rows.extend(label_causal(teacher, task, d))
                except TeacherError as err:  # reported, the chunk goes on
                    print(f"{dataset} {d.id}: not labelled: {err}", flush=True)
            write_chunk(rows, task.class_names, target)
            seconds = time.perf_counter() - started
            print(f"{time.strftime('%H:%M:%S')} {dataset} chunk {index}: {len(batch)} dialogues, {len(rows)} "
                  f"utterances, {seconds:.0f} s ({len(rows) / max(seconds, 1e-9):.1f} labels/s)", flush=True)
        index += 1
    print(f"{dataset}: {index} chunks done", flush=True)


def load_pool(dataset: str, dialogues: int | None = None) -> dict[tuple[str, int], dict]:
    """(dialogue id, turn) -> {"scores": prior-corrected, "scores_raw"} over the finished chunks, in order, up
    to the first `dialogues` dialogues; the unlabelled prior is the mean raw distribution of exactly those."""
    import pyarrow.parquet as pq

    from dialpref.label.prior import correct, mean_distribution

    classes = BUILTIN[SOURCES[dataset][2]].class_names
    rows, seen = [], []
    for path in sorted((OUT / dataset).glob("chunk-*.parquet")):
        for row in pq.read_table(path).to_pylist():
            if row["dialogue_id"] not in seen[-1:]:
                seen.append(row["dialogue_id"])
            if dialogues is not None and len(seen) > dialogues:
                break
            rows.append(row)
    raw = [{c: r[c] for c in classes} if r[classes[0]] is not None else None for r in rows]
    prior = mean_distribution(raw, classes)
    return {(r["dialogue_id"], r["turn_index"]): {"scores": correct(d, prior) if d else None, "scores_raw": d}
            for r, d in zip(rows, raw)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(SOURCES), choices=list(SOURCES))
    parser.add_argument("--chunk", type=int, default=250, help="dialogues per chunk file")
    parser.add_argument("--limit", type=int, default=None, help="dialogues per dataset (default: all)")
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads (1 leaves a core free)")
    args = parser.parse_args()
    from dialpref.teachers.llamacpp import LlamaCppTeacher

    teacher = LlamaCppTeacher(TEACHER, n_ctx=4096, n_threads=args.threads)
    for dataset in args.datasets:
        label_dataset(teacher, dataset, args.chunk, args.limit)


if __name__ == "__main__":
    main()
