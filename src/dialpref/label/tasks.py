"""Task specs: what to label, the classes with one-line descriptions, whose turns, how much context.

A spec is a YAML file; the built-ins ship as YAML in `task_specs/` so a user
copies one to start their own. Multi-class tasks are scored one-vs-rest, one
score per class, and the scores of an utterance sum to 1. A `slots` task
(dialogue state tracking, `label/slots.py`) scores each slot's values, summing
to 1 per slot.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from dialpref.label.slots import SlotSpec, parse_slots, with_open_values

KINDS = ("binary", "multiclass", "slots")


@dataclass(frozen=True)
class TaskSpec:
    """What is labelled, as data: the classes with a one-line description each (the prompts show them to the
    teacher), the roles whose turns are labelled, and where the gold label sits (`gold_key`, `gold_map`), so a
    user's task is a YAML file, not code."""

    name: str
    kind: str  # binary | multiclass | slots
    classes: dict[str, str] = field(default_factory=dict)  # class name -> one-line description (not for slots)
    description: str = ""  # what is being labelled, in a few words (goes into prompts)
    gold_key: str | None = None  # the Turn.labels key holding the gold label
    roles: tuple[str, ...] = ("user", "assistant")  # whose turns are labelled
    context_turns: int | None = None  # None: the whole dialogue is visible
    gold_map: dict[str, str] = field(default_factory=dict)  # dataset label -> class name
    slots: tuple[SlotSpec, ...] = ()  # slots tasks: every `domain-slot` with its values

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"task {self.name!r}: kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.kind == "slots":
            if not self.slots or self.classes:
                raise ValueError(f"task {self.name!r}: a slots task lists `domains` with their slots, not classes")
            return
        if len(self.classes) < 2:
            raise ValueError(f"task {self.name!r}: needs at least two classes")
        if self.kind == "binary" and len(self.classes) != 2:
            raise ValueError(f"task {self.name!r}: a binary task has exactly two classes")
        if len(self.classes) > len(string.ascii_uppercase):
            raise ValueError(f"task {self.name!r}: at most 26 classes")

    @property
    def class_names(self) -> list[str]:
        return list(self.classes)

    @property
    def letters(self) -> dict[str, str]:
        """Answer letter -> class name, in the spec's order (A, B, C, ...)."""
        return {string.ascii_uppercase[i]: name for i, name in enumerate(self.classes)}

    def gold(self, labels: dict) -> str | None:
        value = labels.get(self.gold_key) if self.gold_key else None
        if value is None:
            return None
        value = self.gold_map.get(str(value), str(value))
        return value if value in self.classes else None

    def labelled(self, turn) -> bool:
        return turn.role in self.roles

    @property
    def slot_names(self) -> list[str]:
        return [s.name for s in self.slots]

    def with_values_from(self, dialogues) -> "TaskSpec":
        """This spec with its open slots' values gathered from the gold states of `dialogues`."""
        if not any(s.open for s in self.slots):
            return self
        states = ([t.labels.get(self.gold_key) for t in d.turns if self.labelled(t) and self.gold_key in t.labels]
                  for d in dialogues)
        return replace(self, slots=with_open_values(self.slots, states))

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "<dict>") -> "TaskSpec":
        known = set(cls.__dataclass_fields__) | {"domains"}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"{source}: unknown task fields {sorted(unknown)}; known: {sorted(known)}")
        raw = dict(raw)
        if raw.get("kind") != "slots" and (raw.get("domains") or raw.get("slots")):
            raise ValueError(f"{source}: `domains` / `slots` belong to a task of kind slots, not {raw.get('kind')!r}")
        if raw.get("kind") == "slots":
            raw["slots"] = _slots_field(raw.pop("domains", None), raw.get("slots"), source)
        missing = ({"name", "kind"} | ({"classes"} if raw.get("kind") != "slots" else set())) - set(raw)
        if missing:
            raise ValueError(f"{source}: missing task fields {sorted(missing)}")
        raw["classes"] = {str(k): str(v) for k, v in (raw.get("classes") or {}).items()}
        raw["roles"] = tuple(raw.get("roles") or ("user", "assistant"))
        raw["gold_map"] = {str(k): str(v) for k, v in (raw.get("gold_map") or {}).items()}
        return cls(**raw)


def _slots_field(domains: Any, recorded: Any, source: str) -> tuple[SlotSpec, ...]:
    """Slots from a YAML `domains` tree, or from a summary's recorded list of slots (`asdict` form)."""
    if domains is not None:
        return parse_slots(domains, source)
    if isinstance(recorded, (list, tuple)) and recorded:
        return tuple(SlotSpec(s["name"], s["description"], tuple(s["values"]), bool(s.get("open")))
                     for s in recorded)
    return parse_slots(None, source)


def _builtins() -> dict[str, TaskSpec]:
    specs = {}
    for entry in sorted(resources.files("dialpref.label").joinpath("task_specs").iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".yaml"):
            spec = TaskSpec.from_dict(yaml.safe_load(entry.read_text()), source=entry.name)
            specs[spec.name] = spec
    return specs


BUILTIN: dict[str, TaskSpec] = _builtins()


def load_task(name_or_path: str) -> TaskSpec:
    """A built-in task by name, or a YAML file with the same fields."""
    if name_or_path in BUILTIN:
        return BUILTIN[name_or_path]
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.exists():
            raise ValueError(f"task file {path} does not exist")
        return TaskSpec.from_dict(yaml.safe_load(path.read_text(encoding="utf-8")) or {}, source=str(path))
    raise ValueError(f"unknown task {name_or_path!r}: built-ins are {', '.join(BUILTIN)}, or pass a YAML file")


def task_for_rows(rows: list[dict[str, Any]], scores: Path, task: str | None = None) -> TaskSpec:
    """The task score rows were made for: `task` if given (it must be the rows' task), else the spec the
    labelling run recorded in the summary beside them, else the built-in the rows name."""
    import json

    named = rows[0].get("task") if rows else None
    if task:
        spec = load_task(task)
        if named and spec.name != named:
            raise ValueError(f"--task {task} is {spec.name!r} but {scores} was labelled for {named!r}")
        return spec
    summary = scores.with_name(scores.stem + ".summary.json")
    if summary.exists():
        recorded = json.loads(summary.read_text(encoding="utf-8")).get("task_spec")
        if recorded and recorded.get("name") == named:
            return TaskSpec.from_dict(recorded, str(summary))
    if named in BUILTIN:
        return BUILTIN[named]
    classes = next((set(r["scores"]) for r in rows if isinstance(r.get("scores"), dict)), None)
    same = [t for t in BUILTIN.values() if classes and set(t.class_names) == classes]
    if named is None and len(same) == 1:
        return same[0]  # rows that name no task: the one built-in with exactly their classes
    raise ValueError(f"{scores} was labelled for task {named!r}, which is not built in, and no {summary.name} "
                     "beside it records its spec: pass --task with the spec's YAML file")
