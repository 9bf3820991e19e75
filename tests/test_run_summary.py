"""A labelling run's summary says what it measured: no speed for a run answered from the cache, the
causal prompt (not a bank) for a causal run."""

from conftest import embedded_teacher
from dialpref.data.schema import Dialogue, Turn
from dialpref.label.run import LabelConfig, label_run
from dialpref.label.tasks import BUILTIN
from dialpref.teachers.cache import CachedTeacher, TeacherCache

DIALOGUE = Dialogue(id="d1", turns=[Turn(speaker="A", role="user", text="Could you pass the salt?"),
                                    Turn(speaker="B", role="assistant", text="Sure, here it is."),
                                    Turn(speaker="A", role="user", text="Thanks a lot.")])


def test_cached_rerun_reports_no_speed_and_causal_run_names_its_prompt(tmp_path):
    teacher = CachedTeacher(embedded_teacher("gemma3-270m"), TeacherCache(tmp_path / "c.sqlite"))
    config = LabelConfig(mode="causal", prior="unlabelled")
    first = label_run(teacher, BUILTIN["dialogue_act"], [DIALOGUE], config, tmp_path / "a.jsonl")
    assert first["answered_from_cache"] is False and first["labels_per_second"] > 0
    assert first["prompts"] == ["causal@v1"] and first["config"]["bank"] is None
    again = label_run(teacher, BUILTIN["dialogue_act"], [DIALOGUE], config, tmp_path / "b.jsonl")
    assert again["answered_from_cache"] is True and again["labels_per_second"] is None
    prefix = label_run(teacher, BUILTIN["dialogue_act"], [DIALOGUE], LabelConfig(mode="prefix", prior="none"),
                       tmp_path / "c.jsonl")
    assert prefix["prompts"] == ["choice_names@v1"] and prefix["config"]["bank"] == "choice_names@v1"
