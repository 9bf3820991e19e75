"""Labelling with real teachers: the embedded SmolLM2 and a loopback OpenAI-compatible server."""

import json
import math
import sqlite3
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from dialpref.cli import app
from dialpref.label.run import resolve_mode
from dialpref.data.schema import Dialogue
from dialpref.label.bank import BUILTIN_PROMPTS, Bank, load_bank, utterance_queries
from dialpref.label.causal import causal_pieces, label_causal
from dialpref.label.run import LabelConfig, label_run
from dialpref.label.scoring import ScoringConfig, score_dialogue
from dialpref.label.tasks import BUILTIN
from dialpref.teachers.cache import CachedTeacher, TeacherCache
from dialpref.teachers.calls import option_probs
from dialpref.teachers.factory import make_teacher
from tests.conftest import embedded_teacher
from tests.fake_openai import FakeOpenAI
from tests.kill_midway import kill_after_stored

runner = CliRunner()
TASK = BUILTIN["dialogue_act"]
DIALOGUE = Dialogue(id="d1", turns=[
    {"speaker": "A", "role": "user", "text": "Would you like to come to dinner on Friday?", "labels": {"dialogue_act": "question"}},
    {"speaker": "B", "role": "assistant", "text": "I'd love to. What time?", "labels": {"dialogue_act": "commissive"}},
    {"speaker": "A", "role": "user", "text": "Come around seven, and bring your sister.", "labels": {"dialogue_act": "directive"}},
    {"speaker": "B", "role": "assistant", "text": "She is away this week, sadly.", "labels": {"dialogue_act": "inform"}},
])


def test_expected_scores_every_prompt_and_sum_to_one(smollm2):
    bank = Bank([BUILTIN_PROMPTS[p] for p in ("choice_names@v1", "choice_letters@v1", "yes_no@v1")])
    rows = score_dialogue(smollm2, TASK, bank, DIALOGUE)
    assert [r["turn_index"] for r in rows] == [0, 1, 2, 3]
    for row in rows:
        assert set(row["per_prompt"]) == set(bank.ids)
        for dist in [row["scores"], *row["per_prompt"].values()]:
            assert math.isclose(sum(dist.values()), 1.0, rel_tol=1e-9)
        # S is the mean of the prompts' distributions
        mean = sum(d["inform"] for d in row["per_prompt"].values()) / 3
        assert math.isclose(row["scores"]["inform"], mean, rel_tol=1e-9)
        assert len(row["raw_outputs"]) == 1 + 1 + 4 and row["prompt_tokens"] > 0 and row["gold"]


def test_prefix_reuse_gives_the_same_distribution_as_a_fresh_prompt(smollm2):
    query = utterance_queries(BUILTIN_PROMPTS["choice_names@v1"], TASK, DIALOGUE, 2)[0]
    option_probs(smollm2, utterance_queries(BUILTIN_PROMPTS["choice_names@v1"], TASK, DIALOGUE, 1)[0].messages,
                 query.options)  # leaves the shared prefix in the KV state
    before = smollm2.evaluated_tokens
    reused = option_probs(smollm2, query.messages, query.options)
    reused_cost = smollm2.evaluated_tokens - before
    smollm2.reuse_prefix = False
    try:
        before = smollm2.evaluated_tokens
        fresh = option_probs(smollm2, query.messages, query.options)
        fresh_cost = smollm2.evaluated_tokens - before
    finally:
        smollm2.reuse_prefix = True
    assert max(abs(reused[c] - fresh[c]) for c in reused) < 1e-3
    assert reused_cost * 3 < fresh_cost


def test_causal_mode_reads_each_turn_once_and_matches_the_fresh_prompt(smollm2):
    before = smollm2.evaluated_tokens
    rows = label_causal(smollm2, TASK, DIALOGUE)
    head, segments, ask = causal_pieces(TASK, DIALOGUE)
    spent = smollm2.evaluated_tokens - before
    head_tokens = len(smollm2.tokenize(head))
    turn_tokens = sum(len(smollm2.tokenize_piece(s)) for s in segments)
    ask_tokens = len(smollm2.tokenize_piece(ask))
    assert spent <= head_tokens + turn_tokens + 4 * ask_tokens  # every turn once, plus a short question each
    for i, row in enumerate(rows):
        fresh = smollm2.fresh_option_logprobs([head, *segments[:i + 1], ask], TASK.class_names)
        dist = row["per_prompt"]["causal@v1"]
        expected = option_probs.__globals__["normalise"](fresh.logprobs)
        assert max(abs(dist[c] - expected[c]) for c in dist) < 1e-3
        assert row["prompt_tokens"] == fresh.prompt_tokens


def test_causal_mode_goes_through_the_cache_and_a_rerun_reads_nothing_again(smollm2, tmp_path):
    from dialpref.teachers.base import TeacherError
    from dialpref.teachers.factory import make_teacher

    teacher = CachedTeacher(smollm2, TeacherCache(tmp_path / "c.sqlite"))
    first = label_causal(teacher, TASK, DIALOGUE)
    assert teacher.cache.stats()["stored"] == len(DIALOGUE.turns)  # one answer per turn, keyed by its text
    before = teacher.evaluated_tokens
    again = label_causal(teacher, TASK, DIALOGUE)
    assert teacher.evaluated_tokens == before  # the teacher read nothing again
    assert [r["scores"] for r in again] == [r["scores"] for r in first]
    server = make_teacher("http://127.0.0.1:9", cache_path=tmp_path / "s.sqlite")
    with pytest.raises(TeacherError, match="causal mode needs the embedded"):
        label_causal(server, TASK, DIALOGUE)


def test_sampled_votes_are_real_cached_generations_that_track_the_distribution(smollm2, tmp_path):
    teacher = CachedTeacher(smollm2, TeacherCache(tmp_path / "c.sqlite"))
    one = Dialogue(id="d2", turns=DIALOGUE.turns[:1])
    config = ScoringConfig(estimator="votes", votes=40, temperature=1.0, top_k=0, top_p=1.0)
    row = score_dialogue(teacher, TASK, load_bank("choice_names@v1"), one, config)[0]
    assert len(row["votes"]) == 40 and all(v["raw"] in TASK.classes for v in row["votes"])
    assert teacher.cache.stats()["misses"] == 40
    expected = score_dialogue(teacher, TASK, load_bank("choice_names@v1"), one)[0]["scores"]
    top = max(expected, key=expected.get)
    assert abs(row["scores"][top] - expected[top]) < 0.25  # 40 votes: within about 3 standard errors
    again = score_dialogue(teacher, TASK, load_bank("choice_names@v1"), one, config)[0]
    assert again["votes"] == row["votes"] and teacher.cache.stats()["hits"] >= 40
    drawn = score_dialogue(teacher, TASK, load_bank("choice_names@v1"), one,
                           ScoringConfig(estimator="votes", votes=40, sampler="distribution", top_k=0, top_p=1.0))[0]
    assert abs(drawn["scores"][top] - expected[top]) < 0.25


def test_unreadable_answers_are_kept_with_the_reason_and_listed_as_rejects(tmp_path):
    answers = iter(["inform", "no idea, sorry", "question", "directive"] * 10)
    with FakeOpenAI(reply_for=lambda payload: next(answers)) as fake:
        teacher = make_teacher(fake.url, cache_path=tmp_path / "c.sqlite")
        teacher.teacher.concurrency = 1
        config = LabelConfig(bank="choice_names@v1", estimator="votes", votes=2)
        summary = label_run(teacher, TASK, [DIALOGUE], config, tmp_path / "scores.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "scores.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and summary["with_errors"] >= 1
    bad = [r for r in rows if r["errors"]]
    assert any("unparseable answer 'no idea, sorry'" in e for r in bad for e in r["errors"])
    assert any(v["raw"] == "no idea, sorry" and v["classes"] is None for r in bad for v in r["votes"])
    rejects = [json.loads(line) for line in (tmp_path / "scores.rejects.jsonl").read_text().splitlines()]
    assert {r["id"] for r in rejects} == {f"d1#{r['turn_index']}" for r in bad}


def test_label_cli_writes_parquet_and_jsonl_that_datasets_loads(smollm2, shared_data, tmp_path):
    datasets = pytest.importorskip("datasets")
    source = str(shared_data / "dailydialog" / "data.zip")
    for suffix in ("parquet", "jsonl"):
        out = tmp_path / f"scores.{suffix}"
        result = runner.invoke(app, ["label", source, "--split", "test", "--dialogues", "2", "--bank",
                                     "choice_names@v1,yes_no@v1", "--output", str(out), "--cache",
                                     str(tmp_path / "c.sqlite"), "--teacher", "smollm2-135m"])
        assert result.exit_code == 0, result.output
        loaded = datasets.load_dataset(suffix if suffix == "parquet" else "json", data_files=str(out), split="train")
        assert {"dialogue_id", "turn_index", "speaker", "text", "scores", "per_prompt", "votes", "gold",
                "prompt_ids", "raw_outputs", "errors", "prompt_tokens"} <= set(loaded.column_names)
        assert set(loaded[0]["scores"]) == set(TASK.classes) and loaded[0]["prompt_ids"] == ["choice_names@v1",
                                                                                            "yes_no@v1"]
        summary = json.loads((tmp_path / "scores.summary.json").read_text())
        assert summary["gold"]["n"] == len(loaded) and 0 <= summary["gold"]["ece"] <= 1
        # a bank was asked for, so --mode auto stays with prompts; the prior is the default, unlabelled
        assert summary["config"]["mode"] == "prefix" and summary["config"]["prior"] == "unlabelled"
        assert (tmp_path / "scores.reliability.png").exists()


@pytest.mark.parametrize("teacher, estimator, bank, expected", [
    ("gemma3-270m", "expected", None, "causal"),              # the defaults
    ("gemma3-270m", "votes", None, "prefix"),                 # causal mode has no votes
    ("gemma3-270m", "expected", "choice_names@v1", "prefix"),  # a bank asked for is a bank used
    ("http://127.0.0.1:8080", "expected", None, "prefix"),    # a server cannot stream a dialogue
])
def test_auto_mode_is_causal_only_where_causal_applies(teacher, estimator, bank, expected):
    assert resolve_mode("auto", teacher, estimator, bank) == expected
    assert resolve_mode("prefix", teacher, estimator, bank) == "prefix"  # an explicit mode stays


def test_label_cli_defaults_to_the_dev_chosen_embedded_configuration(shared_data, tmp_path):
    embedded_teacher("gemma3-270m")  # skips without the model
    out = tmp_path / "scores.jsonl"
    result = runner.invoke(app, ["label", str(shared_data / "dailydialog" / "data.zip"), "--split", "test",
                                 "--dialogues", "2", "--output", str(out), "--cache", str(tmp_path / "c.sqlite")])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "scores.summary.json").read_text())
    assert summary["teacher"] == "gemma3-270m"
    assert (summary["config"]["mode"], summary["config"]["prior"]) == ("causal", "unlabelled")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and all(abs(sum(r["scores"].values()) - 1) < 1e-6 for r in rows)
    mean_prompt = sum(r["prompt_tokens"] for r in rows) / len(rows)
    assert summary["tokens_evaluated_per_label"] < 0.5 * mean_prompt  # each turn read once, not once per label


def test_calibrate_cli_fits_on_dev_and_reports_before_and_after(tmp_path):
    rows = []
    for i in range(60):  # overconfident scores: right two times in three at confidence 0.95
        gold = "inform" if i % 3 else "question"
        rows.append({"dialogue_id": f"d{i}", "turn_index": 0, "gold": gold, "estimator": "expected",
                     "scores": {"inform": 0.95, "question": 0.02, "directive": 0.02, "commissive": 0.01}})
    (tmp_path / "dev.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    result = runner.invoke(app, ["calibrate", str(tmp_path / "dev.jsonl"), "--fit", str(tmp_path / "dev.jsonl"),
                                 "--output", str(tmp_path / "cal.jsonl"), "--plots", str(tmp_path / "plots")])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{"):])
    assert report["before"]["ece"] == pytest.approx(0.95 - 2 / 3, abs=1e-6)
    assert report["after"]["ece"] < 0.05 and (tmp_path / "plots" / "reliability.png").exists()
    fixed = [json.loads(line) for line in (tmp_path / "cal.jsonl").read_text().splitlines()]
    assert fixed[0]["scores_uncalibrated"]["inform"] == 0.95 and fixed[0]["scores"]["inform"] < 0.75


def test_bank_expand_writes_teacher_paraphrases_as_prompts(tmp_path):
    reply = json.dumps({"paraphrases": ["Tag every line of the chat by its function.", "Tag every line of the chat "
                                        "by its function.", "Decide what each message is doing."]})
    with FakeOpenAI(reply_for=lambda payload: reply) as fake:
        result = runner.invoke(app, ["bank", "expand", "choice_names@v1", "--n", "3", "--teacher", fake.url,
                                     "--output", str(tmp_path / "bank.yaml"), "--cache", str(tmp_path / "c.sqlite")])
    assert result.exit_code == 0, result.output
    bank = load_bank(tmp_path / "bank.yaml")
    assert bank.ids == ["choice_names@v1", "choice_names@para1", "choice_names@para2"]  # the duplicate is dropped
    assert bank.prompts[2].instructions == "Decide what each message is doing."
    assert "got 2 usable" in result.output


def test_bank_select_scores_each_prompt_on_gold_dev(smollm2, shared_data, tmp_path):
    result = runner.invoke(app, ["bank", "select", "choice_names@v1,choice_letters@v1", "--dev",
                                 str(shared_data / "dailydialog" / "data.zip"), "--split", "validation",
                                 "--dialogues", "2", "--min-accuracy", "0", "--output", str(tmp_path / "sel.yaml"),
                                 "--cache", str(tmp_path / "c.sqlite")], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "choice_letters@v1" in result.output and "ECE" in result.output
    assert load_bank(tmp_path / "sel.yaml").ids == ["choice_names@v1", "choice_letters@v1"]  # floor 0 keeps all


CHILD = """
import sys
from dialpref.cli import app
from dialpref.label.run import resolve_mode
sys.argv = ["dialpref", "label", sys.argv[1], "--split", "test", "--dialogues", "12", "--output", sys.argv[2],
            "--cache", sys.argv[3], "--teacher", "smollm2-135m", "--mode", "prefix", "--prior", "none"]
app()
"""


def test_label_run_killed_midway_resumes_without_repeating_a_call(smollm2, shared_data, tmp_path):
    db = tmp_path / "cache.sqlite"
    args = [str(shared_data / "dailydialog" / "data.zip"), str(tmp_path / "s.jsonl"), str(db)]
    child = subprocess.Popen([sys.executable, "-c", CHILD, *args], stderr=subprocess.DEVNULL)
    kill_after_stored(child, db, 15, timeout=240, poll=0.2)
    with sqlite3.connect(db) as conn:
        before = conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    rerun = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    summary = json.loads((tmp_path / "s.summary.json").read_text())
    assert summary["cache"]["hits"] == before and summary["cache"]["misses"] == summary["utterances"] - before
    assert 15 <= before < summary["utterances"]
