"""Dialogue state tracking (slot tasks): specs from YAML, gold changes, metrics, the teacher's two estimators."""

import json
import math

import pytest
import yaml
from typer.testing import CliRunner

from dialpref.cli import app
from dialpref.data.schema import Dialogue, Turn
from dialpref.evaluate.state_tracking import accumulate, change_f1, joint_goal_accuracy, rows_report, slot_accuracy
from dialpref.label.run import LabelConfig, label_run
from dialpref.label.slots import flat_state, state_changes
from dialpref.label.state import label_state_dialogue
from dialpref.label.scoring import ScoringConfig
from dialpref.label.tasks import BUILTIN, TaskSpec, load_task

runner = CliRunner()

# A domain dialpref ships nothing for: a taxi booking, one open slot and one categorical.
TAXI_SPEC = {
    "name": "taxi_state", "kind": "slots", "description": "the taxi ride the user wants to book",
    "gold_key": "state", "roles": ["user"],
    "domains": {"taxi": {"description": "book a taxi", "slots": {
        "destination": {"description": "where the ride ends", "values": "open"},
        "car": {"description": "the kind of car", "values": ["sedan", "van", "Electric"]}}}},
}


def taxi_dialogues() -> list[dict]:
    def user(text, state):
        return {"speaker": "user", "role": "user", "text": text, "labels": {"state": {"taxi": state}}}

    def system(text):
        return {"speaker": "system", "role": "assistant", "text": text}

    return [
        {"id": "taxi-1", "turns": [
            user("I need a taxi to the airport.", {"destination": "airport", "car": ""}),
            system("Sure. Any kind of car?"),
            user("A van please, we have bags.", {"destination": "airport", "car": "van"}),
            system("Booked."),
            user("Actually make it the train station.", {"destination": "train station", "car": "van"})]},
        {"id": "taxi-2", "turns": [
            user("Get me an electric car to the museum.", {"destination": "museum", "car": "electric"}),
            system("Done."),
            user("Any car is fine really.", {"destination": "museum", "car": "dontcare"})]},
    ]


@pytest.fixture
def taxi_files(tmp_path):
    spec = tmp_path / "taxi.yaml"
    spec.write_text(yaml.safe_dump(TAXI_SPEC, sort_keys=False))
    data = tmp_path / "taxi.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in taxi_dialogues()))
    return spec, data


def test_unseen_domain_spec_loads_from_yaml_and_gathers_open_values(taxi_files):
    spec_path, _ = taxi_files
    task = load_task(str(spec_path))
    assert task.kind == "slots" and task.slot_names == ["taxi-destination", "taxi-car"]
    assert task.slots[0].open and task.slots[0].values == ()
    assert task.slots[1].values == ("none", "dontcare", "sedan", "van", "electric")  # normalised, specials first
    dialogues = [Dialogue.model_validate(d) for d in taxi_dialogues()]
    filled = task.with_values_from(dialogues)
    assert not filled.slots[0].open
    assert set(filled.slots[0].values) == {"none", "dontcare", "airport", "train station", "museum"}
    assert filled.slots[0].values[:2] == ("none", "dontcare")


def test_state_changes_and_accumulate_invert_each_other():
    task = TaskSpec.from_dict(TAXI_SPEC).with_values_from([Dialogue.model_validate(d) for d in taxi_dialogues()])
    states = [t["labels"]["state"] for t in taxi_dialogues()[0]["turns"] if t["role"] == "user"]
    changes = state_changes(states, task.slots)
    assert changes == [{"taxi-destination": "airport", "taxi-car": "none"},
                       {"taxi-destination": "none", "taxi-car": "van"},
                       {"taxi-destination": "train station", "taxi-car": "none"}]
    assert accumulate(changes, task.slot_names) == [flat_state(s) | {} for s in
                                                    [{"taxi": {"destination": "airport", "car": "none"}},
                                                     {"taxi": {"destination": "airport", "car": "van"}},
                                                     {"taxi": {"destination": "train station", "car": "van"}}]]


@pytest.mark.parametrize("raw, message", [
    ({**TAXI_SPEC, "domains": {}}, "needs `domains`"),
    ({**TAXI_SPEC, "domains": {"taxi": {"slots": {"car": {"values": "sedan"}}}}}, "values must be a list"),
    ({**TAXI_SPEC, "classes": {"a": "x", "b": "y"}}, "not classes"),
    ({"name": "x", "kind": "multiclass", "classes": {"a": "x", "b": "y"}, "domains": TAXI_SPEC["domains"]},
     "belong to a task of kind slots"),
])
def test_bad_slot_specs_say_what_is_wrong(raw, message):
    with pytest.raises(ValueError, match=message):
        TaskSpec.from_dict(raw, "spec.yaml")


def test_state_metrics_by_hand():
    slots = ["a", "b"]
    gold_changes = [{"a": "x", "b": "none"}, {"a": "none", "b": "y"}, {"a": "z", "b": "none"}]
    pred_changes = [{"a": "x", "b": "none"}, {"a": "none", "b": "w"}, {"a": "z", "b": "none"}]
    gold = accumulate(gold_changes, slots)
    pred = accumulate(pred_changes, slots)
    assert pred[2] == {"a": "z", "b": "w"}  # the wrong b stays wrong: accumulated, as a live tracker
    assert joint_goal_accuracy(pred, gold, slots) == pytest.approx(1 / 3)
    assert slot_accuracy(pred, gold, slots) == pytest.approx({"a": 1.0, "b": 1 / 3, "mean": 2 / 3})
    f1 = change_f1(pred_changes, gold_changes, slots)
    assert (f1["precision"], f1["recall"], f1["gold_changes"]) == (pytest.approx(2 / 3), pytest.approx(2 / 3), 3)
    assert joint_goal_accuracy([], [], slots) is None


def test_whole_value_scores_reuse_the_prefix_exactly(smollm2):
    """A value scored after another prompt's KV state equals the same value scored from scratch, and a
    two-token value is scored over both tokens (less likely than its first token alone)."""
    system = {"role": "system", "content": "You track what a user wants of a restaurant."}
    first = [system, {"role": "user", "content": "user: cheap food please. Which area? Answer as JSON."}]
    second = [system, {"role": "user", "content": "user: asian food in the east. Which area? Answer as JSON."}]
    groups = [('{"food": "', ['asian oriental"', 'asian"', 'none"'])]
    smollm2.continuation_logprobs(first, groups)
    reused = smollm2.continuation_logprobs(second, groups).logprobs[0]
    smollm2.llm.n_tokens = 0
    fresh = smollm2.continuation_logprobs(second, groups).logprobs[0]
    assert reused == pytest.approx(fresh, abs=1e-9)
    head = smollm2.continuation_logprobs(second, [('{"food": "', ['asian'])]).logprobs[0]["asian"]
    assert reused['asian oriental"'] < head


def _check_rows(rows, task):
    assert rows and all(r["scores"] is not None and not r["errors"] for r in rows)
    for row in rows:
        assert set(row["scores"]) == set(task.slot_names)
        for slot in task.slots:
            assert set(row["scores"][slot.name]) == set(slot.values)
            assert math.isclose(sum(row["scores"][slot.name].values()), 1.0, abs_tol=1e-9)
            assert row["predicted"][slot.name] == max(row["scores"][slot.name], key=row["scores"][slot.name].get)


def test_votes_answers_are_grammar_constrained_enums(smollm2):
    task = TaskSpec.from_dict(TAXI_SPEC).with_values_from([Dialogue.model_validate(d) for d in taxi_dialogues()])
    dialogue = Dialogue.model_validate(taxi_dialogues()[1])
    rows = label_state_dialogue(smollm2, task, dialogue, ScoringConfig(estimator="votes", votes=3))
    _check_rows(rows, task)
    for row in rows:
        assert len(row["votes"]) == 3
        for vote in row["votes"]:
            assert all(vote["answer"][s.name] in s.values for s in task.slots)
        assert all(v * 3 == round(v * 3) for d in row["scores"].values() for v in d.values())  # shares of 3


def test_label_cli_on_a_yaml_only_domain(taxi_files, tmp_path):
    """`dialpref label --task taxi.yaml`: rows per slot, gold changes, the tracking figures in the summary."""
    spec, data = taxi_files
    out = tmp_path / "run" / "scores.jsonl"
    result = runner.invoke(app, ["label", str(data), "--task", str(spec), "--teacher", "smollm2-135m",
                                 "--output", str(out), "--cache", str(tmp_path / "cache.sqlite")])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    task = load_task(str(spec)).with_values_from([Dialogue.model_validate(d) for d in taxi_dialogues()])
    _check_rows(rows, task)
    assert [r["gold"]["taxi-car"] for r in rows] == ["none", "van", "none", "electric", "dontcare"]
    summary = json.loads((tmp_path / "run" / "scores.summary.json").read_text())
    assert summary["config"]["mode"] == "prefix" and summary["gold"]["turns"] == 5
    assert summary["config"]["prior"] == "unlabelled" and all(r["prior"]["kind"] == "unlabelled" for r in rows)
    assert summary["gold_before_prior"]["turns"] == 5 and all(r["scores_raw"] != r["scores"] for r in rows)
    assert summary["gold"] == rows_report(rows, task.slot_names, 10)
    again = runner.invoke(app, ["label", str(data), "--task", str(spec), "--teacher", "smollm2-135m",
                                "--output", str(out), "--cache", str(tmp_path / "cache.sqlite")])
    assert again.exit_code == 0 and json.loads((tmp_path / "run" / "scores.summary.json").read_text())[
        "answered_from_cache"]


def test_slot_tasks_refuse_causal_mode_and_servers_expected(smollm2, tmp_path):
    task = BUILTIN["woz_state"]
    dialogue = Dialogue(id="d", turns=[Turn(speaker="user", role="user", text="cheap food in the north")])
    with pytest.raises(ValueError, match="prefix mode"):
        label_run(smollm2, task, [dialogue], LabelConfig(mode="causal"), tmp_path / "s.jsonl")

    class NoScoring:
        backend, model = "openai", "m"

    rows = label_state_dialogue(NoScoring(), task, dialogue)
    assert rows[0]["scores"] is None and "use --estimator votes" in rows[0]["errors"][0]


def test_slot_student_trains_fine_tunes_predicts_exports_and_streams(taxi_files, tmp_path):
    """The whole student side for a YAML-only domain: pretrain on the teacher's per-slot scores, fine-tune on
    gold changes, predict with states and JGA, export to ONNX (same probabilities), track a live dialogue."""
    import numpy as np

    from dialpref.student.export import OnnxStudent
    from dialpref.student.model import Student
    from dialpref.student.stream import StreamingTracker

    spec, data = taxi_files
    scores = tmp_path / "label" / "scores.jsonl"
    cache = str(tmp_path / "cache.sqlite")
    assert runner.invoke(app, ["label", str(data), "--task", str(spec), "--teacher", "smollm2-135m",
                               "--output", str(scores), "--cache", cache]).exit_code == 0
    pre, fine = tmp_path / "student", tmp_path / "fine"
    result = runner.invoke(app, ["student", "train", str(scores), "--source", str(data), "--output", str(pre),
                                 "--steps", "3", "--threads", "1"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["student", "finetune", str(pre), str(data), "--output", str(fine), "--steps", "30",
                                 "--lr", "1e-3", "--threads", "1"])
    assert result.exit_code == 0, result.output
    student = Student.load(fine)
    assert student.task.kind == "slots" and student.model_.config.num_labels == sum(len(s.values)
                                                                                     for s in student.task.slots)
    out = tmp_path / "pred.jsonl"
    result = runner.invoke(app, ["predict", str(fine), str(data), "--output", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["gold_state"]["taxi-car"] for r in rows] == ["none", "van", "van", "electric", "dontcare"]
    for row in rows:
        assert all(math.isclose(sum(d.values()), 1.0, abs_tol=1e-5) for d in row["scores"].values())
    summary = json.loads(result.output[result.output.index("{"):])
    assert summary["turns"] == 5 and 0.0 <= summary["joint_goal_accuracy"] <= 1.0
    assert runner.invoke(app, ["student", "export", str(fine)]).exit_code == 0
    windows = student.windows([Dialogue.model_validate(d) for d in taxi_dialogues()])
    onnx = OnnxStudent(fine, "fp32")
    assert np.allclose(onnx.predict_proba(windows), student.predict_proba(windows), atol=1e-4)
    tracker = StreamingTracker(student)
    states = [tracker.add(t["speaker"], t["text"], t["role"]) for t in taxi_dialogues()[0]["turns"]]
    assert states[1] is None and states[0] is not None
    assert states[4] == [r["state"] for r in rows if r["dialogue_id"] == "taxi-1"][-1]  # live = batch tracker


def test_data_inspect_shows_each_slots_value_distribution(taxi_files):
    _, data = taxi_files
    result = runner.invoke(app, ["data", "inspect", str(data), "--show", "0"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if "state taxi-car" in x)
    assert "5 turns" in line and "none 20.0%" in line and "van 40.0%" in line


def test_simulated_slot_teacher_confuses_per_slot_with_a_dialogue_bias():
    import numpy as np

    from dialpref.student.simulated import LEVELS, NoiseModel, simulate_slot_scores

    rng = np.random.default_rng(1)
    gold = np.stack([rng.choice(5, 400, p=[0.6, 0.1, 0.1, 0.1, 0.1]), rng.choice(3, 400)], axis=1)
    gold[0, 0] = -100  # a value outside the slot's list counts as none
    ids = [f"d{i // 8}" for i in range(400)]
    s = simulate_slot_scores(gold, ids, [(0, 5), (5, 8)], LEVELS["low"], seed=0)
    assert s.shape == (400, 8)
    assert np.allclose(s[:, :5].sum(1), 1) and np.allclose(s[:, 5:].sum(1), 1)
    agree = (s[:, :5].argmax(1) == np.where(gold[:, 0] < 0, 0, gold[:, 0])).mean()
    assert 0.5 < agree < 0.95  # noisy, but informative
    flips = simulate_slot_scores(gold, ids, [(0, 5), (5, 8)], NoiseModel(flip=0.3, bias=0.0, noise=0.01), seed=0)
    missed = (gold[:, 0] > 0) & (flips[:, :5].argmax(1) != gold[:, 0])
    assert (flips[missed, :5].argmax(1) == 0).mean() > 0.5  # a flipped change mostly becomes none (frequent)
    biased = simulate_slot_scores(gold, ids, [(0, 5), (5, 8)], NoiseModel(flip=0.0, bias=1.0, noise=0.0), seed=0)
    same = [i for i in range(8) if gold[i, 1] == gold[0, 1]]  # dialogue d0, same gold area value
    assert len(same) > 1 and np.allclose(biased[same, 5:], biased[same[0], 5:])  # the bias is the dialogue's


def test_votes_through_a_server_send_the_enum_schema_and_retry_an_invalid_answer(taxi_files, tmp_path):
    """A slot task's votes from an OpenAI-compatible server on loopback: the JSON schema with each slot's
    values as an enum goes out as response_format; an answer outside the enum is sent back with the error."""
    from fake_openai import FakeOpenAI

    spec, data = taxi_files

    def reply(payload):
        schema = payload["response_format"]["json_schema"]["schema"]
        return json.dumps({k: v["enum"][-1] for k, v in schema["properties"].items()})

    with FakeOpenAI(reply_for=reply) as fake:
        fake.faults.append({"text": json.dumps({"taxi-destination": "airport", "taxi-car": "rocket"})})
        out = tmp_path / "votes.jsonl"
        result = runner.invoke(app, ["label", str(data), "--task", str(spec), "--teacher", fake.url,
                                     "--estimator", "votes", "--votes", "2", "--output", str(out),
                                     "--cache", str(tmp_path / "cache.sqlite")])
        assert result.exit_code == 0, result.output
        first = fake.requests[0]["response_format"]["json_schema"]["schema"]["properties"]
        assert first["taxi-car"]["enum"] == ["none", "dontcare", "sedan", "van", "electric"]
        assert "not valid" in fake.requests[1]["messages"][-1]["content"]  # the retry says what was wrong
        assert "taxi-car" in fake.requests[1]["messages"][-1]["content"]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 5 and all(len(r["votes"]) == 2 for r in rows)
    assert all(r["scores"]["taxi-car"]["electric"] == 1.0 for r in rows)  # every vote took the last enum value


def test_the_unlabelled_prior_divides_out_a_slots_lean():
    """A teacher that says `dontcare` for everything, a little less where the turn sets a value: after the
    per-slot prior, the turn's own evidence decides."""
    from dialpref.label.prior import apply_slot_priors, slot_priors

    task = TaskSpec.from_dict(TAXI_SPEC).with_values_from([Dialogue.model_validate(d) for d in taxi_dialogues()])
    values = task.slots[1].values  # none, dontcare, sedan, van, electric

    def row(van):
        dist = {v: 0.02 for v in values} | {"dontcare": 0.9 - van, "van": 0.02 + van}
        return {"scores": {"taxi-destination": {v: 1 / len(task.slots[0].values) for v in task.slots[0].values},
                           "taxi-car": dist}, "predicted": {}}

    rows = [row(0.0), row(0.0), row(0.1)]
    assert all(max(r["scores"]["taxi-car"], key=r["scores"]["taxi-car"].get) == "dontcare" for r in rows)
    fixed = apply_slot_priors(rows, slot_priors(rows, task))
    assert fixed[2]["predicted"]["taxi-car"] == "van" and fixed[0]["predicted"]["taxi-car"] != "van"
    assert math.isclose(sum(fixed[2]["scores"]["taxi-car"].values()), 1.0)
    assert fixed[2]["scores_raw"] == rows[2]["scores"]


def test_task_init_writes_a_slots_spec_from_gold_states(taxi_files, tmp_path):
    _, data = taxi_files
    out = tmp_path / "init.yaml"
    result = runner.invoke(app, ["task", "init", str(data), "--label", "state", "--output", str(out)])
    assert result.exit_code == 0, result.output
    task = load_task(str(out))
    assert task.kind == "slots" and task.slot_names == ["taxi-destination", "taxi-car"]
    assert set(task.slots[1].values) == {"none", "dontcare", "van", "electric"}  # only values the data holds
    assert "TODO" in out.read_text()


def test_a_new_slot_head_starts_from_the_values_text():
    """Before any training, the value-initialised head reads the value a turn names (a random head cannot):
    the reason a 70-value food slot learns from a few gold turns each (docs/state_tracking.md)."""
    from dialpref.student.model import Student, StudentConfig

    task = TaskSpec.from_dict(TAXI_SPEC, "taxi.yaml").with_values_from(
        [Dialogue.model_validate(d) for d in taxi_dialogues()])
    turns = [("I would like a van.", "van"), ("Send a sedan please.", "sedan"), ("An electric one.", "electric"),
             ("Thanks, bye.", "none")]
    dialogue = Dialogue.model_validate({"id": "d", "turns": [
        {"speaker": "user", "role": "user", "text": text} for text, _ in turns]})
    hits = {}
    for value_head in (True, False):
        student = Student(task, StudentConfig(value_head=value_head), seed=0)
        predicted = [change["taxi-car"] for change in student.predict(student.windows([dialogue]))]
        hits[value_head] = sum(p == want for p, (_, want) in zip(predicted, turns))
    assert hits[True] >= 3 and hits[False] <= 1, hits  # random rows: chance (1 in 5), not the named values
