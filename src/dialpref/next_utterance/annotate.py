"""Human A/B verdicts on two systems' next-utterance predictions, from a local web page.

The judge figures of `next eval` mean little until people agree with the judge; this is how the people's
side is collected. `AnnotationStore` holds the samples, both systems' predictions and the answers CSV (one
line per verdict, written and flushed at once: a killed server loses no answer, and a restarted one resumes
each annotator where they stopped). `create_app` serves the page and its two routes. The page is blind:
which system is shown on the left is drawn per (sample, annotator) and recorded with the verdict, which is
stored in terms of the systems (A = the `--a` file), never of the sides.
"""

from __future__ import annotations

import csv
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dialpref.next_utterance.evaluate import read_predictions, read_samples
from dialpref.teachers.base import stable_hash

VERDICTS = ("A", "B", "tie", "both_bad")
CHOICES = ("left", "right", "tie", "both_bad")
COLUMNS = ("sample_id", "annotator", "shown_order", "verdict", "timestamp")


class Answer(BaseModel):
    """One click or key press: which side won (the server knows which system that side showed)."""

    model_config = ConfigDict(extra="forbid")
    sample_id: str = Field(min_length=1, max_length=200)
    annotator: str = Field(min_length=1, max_length=64, pattern=r"^[\w .@-]+$")
    choice: Literal["left", "right", "tie", "both_bad"]


def shown_order(sample_id: str, annotator: str, seed: int = 0) -> str:
    """'A,B' (system A on the left) or 'B,A': random across samples, fixed for one annotator and sample."""
    return "A,B" if random.Random(stable_hash([sample_id, annotator, seed])).random() < 0.5 else "B,A"


def verdict_of(choice: str, order: str) -> str:
    """The side chosen, as the system it showed."""
    if choice in ("tie", "both_bad"):
        return choice
    left, right = order.split(",")
    return left if choice == "left" else right


@dataclass
class AnnotationStore:
    samples: list
    a: dict
    b: dict
    path: Path
    seed: int = 0

    def __post_init__(self) -> None:
        self.samples = [s for s in self.samples if s.id in self.a and s.id in self.b]
        if not self.samples:
            raise ValueError("no sample has a prediction from both systems")
        self.by_id = {s.id: s for s in self.samples}
        self._lock = threading.Lock()
        self.done: dict[str, set[str]] = {}
        if self.path.exists():
            for row in read_answers(self.path):
                self.done.setdefault(row["annotator"], set()).add(row["sample_id"])

    @classmethod
    def open(cls, samples: str | Path, a: str | Path, b: str | Path, path: str | Path, seed: int = 0):
        return cls(read_samples(samples), read_predictions(a), read_predictions(b), Path(path), seed)

    def next_for(self, annotator: str) -> dict[str, Any]:
        """The annotator's next unanswered sample (in file order) with its sides, or `done`."""
        seen = self.done.get(annotator, set())
        progress = {"done": len(seen & set(self.by_id)), "total": len(self.samples)}
        sample = next((s for s in self.samples if s.id not in seen), None)
        if sample is None:
            return {"done": True, "progress": progress}
        order = shown_order(sample.id, annotator, self.seed).split(",")
        systems = {"A": self.a[sample.id], "B": self.b[sample.id]}
        return {"done": False, "progress": progress, "sample_id": sample.id,
                "context": sample.model_dump()["context"], "reference": sample.target,
                "left": _side(systems[order[0]]), "right": _side(systems[order[1]])}

    def answer(self, answer: Answer) -> bool:
        """Record a verdict; False (nothing written) for a sample this annotator answered already."""
        if answer.sample_id not in self.by_id:
            raise KeyError(answer.sample_id)
        with self._lock:
            seen = self.done.setdefault(answer.annotator, set())
            if answer.sample_id in seen:
                return False
            order = shown_order(answer.sample_id, answer.annotator, self.seed)
            row = {"sample_id": answer.sample_id, "annotator": answer.annotator, "shown_order": order,
                   "verdict": verdict_of(answer.choice, order), "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            self._append(row)
            seen.add(answer.sample_id)
        return True

    def _append(self, row: dict[str, str]) -> None:
        new = not self.path.exists() or self.path.stat().st_size == 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS)
            if new:
                writer.writeheader()
            writer.writerow(row)
            handle.flush()


def _side(prediction) -> dict[str, Any]:
    return {"predictions": list(prediction.predictions), "failed": prediction.failed}


def read_answers(path: str | Path) -> list[dict[str, str]]:
    """The answers CSV: one row per (sample, annotator) verdict; a row with an unknown verdict is an error
    naming the line. An older two-column file (sample_id, label) reads as one anonymous annotator."""
    rows = []
    with Path(path).open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        column = next((c for c in ("verdict", "label", "human") if c in fields), None)
        if "sample_id" not in fields or column is None:
            raise ValueError(f"{path}: needs a 'sample_id' column and a 'verdict' (or 'label') column")
        for number, row in enumerate(reader, start=2):
            value = (row[column] or "").strip()
            verdict = {"a": "A", "b": "B", "tie": "tie", "both_bad": "both_bad", "both bad": "both_bad"}.get(
                value.lower())
            if verdict is None:
                raise ValueError(f"{path}:{number}: verdict {value!r} is not A, B, tie or both_bad")
            rows.append({"sample_id": row["sample_id"], "annotator": (row.get("annotator") or "").strip() or "-",
                         "verdict": verdict})
    return rows
