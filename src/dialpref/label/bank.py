"""The prompt bank: several genuinely different ways of asking the teacher the same question.

The paper's soft score S is the share of positive votes over N answers drawn
from a bank of diverse prompts; averaging over prompts is what calibrates S.
A bank is a list of `PromptSpec`s (built-in or from YAML). Each spec turns an
utterance (or, for `dialogue_list`, a whole dialogue) into `Query`s: the chat
messages, the answer options, and how an answer maps onto the task's classes.

Forms:
- `choice`: one question per utterance, answered by class name or letter;
- `yes_no`: one question per class ("is it X?"), P(yes) per class, normalised;
- `dialogue_list`: one question per class for the whole dialogue, answered with
  the list of matching utterance numbers as JSON (sampled votes only).
Every template puts the instructions and the dialogue first and the question
last, so the KV state of the shared prefix is reused across utterances.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import jinja2
import yaml

from dialpref.data.schema import Dialogue
from dialpref.label.tasks import TaskSpec
from dialpref.teachers.base import TeacherError
from dialpref.teachers.context import first_fitting_start

Fits = Callable[[list[dict[str, str]]], bool]

FORMS = ("choice", "yes_no", "dialogue_list")
ANSWERS = ("name", "letter")


@lru_cache(maxsize=None)
def template_names() -> list[str]:
    """The prompt templates dialpref ships (file stems in dialpref/label/prompts/)."""
    folder = resources.files("dialpref.label").joinpath("prompts")
    return sorted(p.name.removesuffix(".jinja") for p in folder.iterdir() if p.name.endswith(".jinja"))


def environment() -> jinja2.Environment:
    def load(name: str) -> str:
        if name.removesuffix(".jinja") not in template_names():
            raise jinja2.TemplateNotFound(name)  # never a path outside the prompts folder
        return resources.files("dialpref.label").joinpath("prompts", name).read_text(encoding="utf-8")

    return jinja2.Environment(loader=jinja2.FunctionLoader(load), undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=False)


@dataclass(frozen=True)
class PromptSpec:
    id: str  # stable id recorded in every output row, e.g. "choice_names@v1"
    template: str  # file stem in dialpref/label/prompts/
    form: str = "choice"
    answer: str = "name"  # choice form: answer by class name or by letter
    shots: int = 0  # few-shot examples per class (drawn from gold data)
    instructions: str | None = None  # replaces the template's first sentence (bank expand writes these)

    def __post_init__(self) -> None:
        if self.template not in template_names():
            raise ValueError(f"prompt {self.id!r}: template {self.template!r} is not one of dialpref's templates "
                             f"({', '.join(template_names())}); a template is a name, never a path")
        if self.form not in FORMS:
            raise ValueError(f"prompt {self.id!r}: form must be one of {FORMS}, not {self.form!r}")
        if self.answer not in ANSWERS:
            raise ValueError(f"prompt {self.id!r}: answer must be one of {ANSWERS}, not {self.answer!r}")

    @property
    def per_utterance(self) -> bool:
        return self.form != "dialogue_list"


@dataclass(frozen=True)
class Example:
    text: str
    label: str


@dataclass
class Query:
    """One question to the teacher and how to read its answer."""

    prompt_id: str
    messages: list[dict[str, str]]
    options: list[str]  # the answers the teacher may give
    to_class: dict[str, str]  # choice: option -> class; yes_no: {"yes": class}
    form: str
    target_class: str | None = None  # yes_no / dialogue_list: the class asked about
    turns_dropped: int = 0  # preceding turns left out because the prompt did not fit the teacher's context


BUILTIN_PROMPTS: dict[str, PromptSpec] = {p.id: p for p in [
    PromptSpec("choice_names@v1", "multiple_choice", "choice", "name"),
    PromptSpec("choice_letters@v1", "multiple_choice", "choice", "letter"),
    PromptSpec("yes_no@v1", "yes_no", "yes_no"),
    PromptSpec("few_shot@v1", "few_shot", "choice", "name", shots=2),
    PromptSpec("dialogue_list@v1", "dialogue_list", "dialogue_list"),
]}
DEFAULT_BANK = ("choice_names@v1", "choice_letters@v1", "yes_no@v1", "few_shot@v1")


def dialogue_list_schema(turns: int) -> dict[str, Any]:
    """JSON answer of a dialogue_list prompt: utterance numbers 1..turns, at most `turns` of them."""
    return {"type": "object", "required": ["utterances"], "properties": {"utterances": {
        "type": "array", "maxItems": turns, "items": {"type": "integer", "minimum": 1, "maximum": turns}}}}


@dataclass
class Bank:
    prompts: list[PromptSpec]
    examples: list[Example] = field(default_factory=list)  # few-shot pool (gold)

    @property
    def ids(self) -> list[str]:
        return [p.id for p in self.prompts]

    def usable(self) -> list[PromptSpec]:
        """Prompts that can run: few-shot prompts need examples."""
        return [p for p in self.prompts if not p.shots or self.examples]

    def shots_for(self, prompt: PromptSpec, task: TaskSpec) -> list[Example]:
        """`shots` examples per class, the same ones for every utterance (seeded by the prompt id)."""
        if not prompt.shots:
            return []
        rng = random.Random(prompt.id)
        chosen: list[Example] = []
        for name in task.classes:
            pool = [e for e in self.examples if e.label == name]
            chosen += rng.sample(pool, min(prompt.shots, len(pool)))
        rng.shuffle(chosen)
        return chosen

    def to_yaml(self) -> str:
        entries = [{k: v for k, v in asdict(p).items() if v not in (None, 0)} for p in self.prompts]
        return yaml.safe_dump({"prompts": entries}, sort_keys=False, allow_unicode=True)


def load_bank(spec: str | Path | Sequence[str] | None = None, examples: Iterable[Example] = ()) -> Bank:
    """A bank from built-in prompt ids (comma-separated or a list), a YAML file, or the default bank."""
    if spec is None:
        ids: Sequence[str] = DEFAULT_BANK
    elif isinstance(spec, Path) or (isinstance(spec, str) and spec.endswith((".yaml", ".yml"))):
        path = Path(spec)
        if not path.exists():
            raise ValueError(f"bank file {path} does not exist")
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        prompts = []
        for entry in raw.get("prompts", []):
            if isinstance(entry, str):
                prompts.append(_builtin(entry))
            else:
                prompts.append(PromptSpec(**entry))
        if not prompts:
            raise ValueError(f"bank file {path} lists no prompts")
        return Bank(prompts, list(examples))
    else:
        ids = spec.split(",") if isinstance(spec, str) else spec
    return Bank([_builtin(i.strip()) for i in ids if i.strip()], list(examples))


def _builtin(prompt_id: str) -> PromptSpec:
    if prompt_id not in BUILTIN_PROMPTS:
        raise ValueError(f"unknown prompt {prompt_id!r}; built-ins: {', '.join(BUILTIN_PROMPTS)}")
    return BUILTIN_PROMPTS[prompt_id]


def examples_from(dialogues: Iterable[Dialogue], task: TaskSpec, limit_per_class: int = 50) -> list[Example]:
    """Gold-labelled utterances to draw few-shot examples from."""
    counts: dict[str, int] = {}
    out = []
    for dialogue in dialogues:
        for turn in dialogue.turns:
            label = task.gold(turn.labels) if task.labelled(turn) else None
            if label is None or counts.get(label, 0) >= limit_per_class or len(turn.text) > 200:
                continue
            counts[label] = counts.get(label, 0) + 1
            out.append(Example(turn.text, label))
    return out


def visible_turns(task: TaskSpec, dialogue: Dialogue, target: int) -> tuple[list, int]:
    """The turns the teacher sees for utterance `target`, and its index among them."""
    turns = list(dialogue.turns)
    if task.context_turns is None:
        return turns, target
    start = max(0, target - task.context_turns)
    return turns[start:target + 1], target - start


def _render(prompt: PromptSpec, **values: Any) -> list[dict[str, str]]:
    template = environment().get_template(f"{prompt.template}.jinja")
    content = template.render(instructions=prompt.instructions, answer=prompt.answer, **values)
    return [{"role": "user", "content": content.strip() + "\n"}]


def utterance_queries(prompt: PromptSpec, task: TaskSpec, dialogue: Dialogue, target: int,
                      examples: Sequence[Example] = (), fits: Fits | None = None) -> list[Query]:
    """The questions one per-utterance prompt asks about utterance `target`.

    `fits(messages)`: the teacher's context rule; when the prompt does not fit, the oldest turns are left
    out (`teachers/context.py`) and each query records how many in `turns_dropped`.
    """
    if prompt.form == "dialogue_list":
        raise ValueError(f"prompt {prompt.id!r} ({prompt.form}) is asked once per dialogue, not per utterance")
    turns, index = visible_turns(task, dialogue, target)
    dropped = 0
    if fits is not None:
        start = first_fitting_start(0, index, lambda s: fits(_queries(prompt, task, turns[s:], index - s,
                                                                      examples)[0].messages))
        if start is None:
            raise TeacherError(f"utterance {target + 1} alone does not fit the teacher's context with the "
                               f"prompt {prompt.id}")
        turns, index, dropped = turns[start:], index - start, start
    queries = _queries(prompt, task, turns, index, examples)
    for query in queries:
        query.turns_dropped = dropped
    return queries


def _queries(prompt: PromptSpec, task: TaskSpec, turns: list, index: int, examples: Sequence[Example]) -> list[Query]:
    if prompt.form == "choice":
        if prompt.answer == "letter":
            options, to_class = list(task.letters), dict(task.letters)
        else:
            options, to_class = task.class_names, {c: c for c in task.classes}
        messages = _render(prompt, task=task, turns=turns, target=index, options=options, examples=examples)
        return [Query(prompt.id, messages, options, to_class, "choice")]
    return [Query(prompt.id, _render(prompt, task=task, turns=turns, target=index, class_name=name,
                                     options=["yes", "no"], examples=examples),
                  ["yes", "no"], {"yes": name}, "yes_no", target_class=name)
            for name in task.classes]


def dialogue_queries(prompt: PromptSpec, task: TaskSpec, dialogue: Dialogue) -> list[Query]:
    """`dialogue_list` prompts: one question per class over the whole dialogue."""
    if prompt.form != "dialogue_list":
        raise ValueError(f"prompt {prompt.id!r} is asked per utterance")
    return [Query(prompt.id, _render(prompt, task=task, turns=list(dialogue.turns), class_name=name),
                  [], {}, "dialogue_list", target_class=name) for name in task.classes]


# --- what a prompt says first (the seed of label/select.py's paraphrases) ---------------------------
def default_instructions(prompt: PromptSpec, task: TaskSpec) -> str:
    """The first line the template writes when no `instructions` are given."""
    from dialpref.data.schema import Turn

    probe = Dialogue(id="probe", turns=[Turn(speaker="A", role=task.roles[0], text="Hello.")])
    queries = (utterance_queries(prompt, task, probe, 0, [Example("Hello.", task.class_names[0])])
               if prompt.per_utterance else dialogue_queries(prompt, task, probe))
    return queries[0].messages[0]["content"].splitlines()[0].strip()
