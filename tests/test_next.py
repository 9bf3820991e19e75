"""Next-utterance models: the parse rule, records per style, config, judge / pairwise over real HTTP,
Cohen's kappa, real MiniLM similarity, and (slow) real SFT -> DPO -> predict -> eval on SmolLM2."""

import importlib.util
import json

import pytest
from typer.testing import CliRunner

from dialpref.cli import app
from dialpref.evaluate import next_utterance as figures
from dialpref.next_utterance import evaluate as ev
from dialpref.next_utterance.config import NextRunConfig, parse_train_args
from dialpref.next_utterance.parse import lenient_predictions, parse_trace, parse_utterances
from dialpref.next_utterance.records import dpo_records, sft_records
from dialpref.next_utterance.train import synth_rows
from dialpref.proutt.run import synth_run
from dialpref.proutt.samples import NextTurnSample
from dialpref.proutt.synthesize import SynthConfig
from dialpref.teachers.factory import make_teacher
from fake_openai import FakeOpenAI
from test_proutt_synth import SECRET, canned, write_chats

needs_trl = pytest.mark.skipif(importlib.util.find_spec("trl") is None, reason="pip install -e '.[next]'")


@pytest.fixture
def synth_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    chats = tmp_path / "chats.jsonl"
    write_chats(chats)
    with FakeOpenAI(reply_for=canned) as fake:
        synth_run(str(chats), tmp_path / "synth", make_teacher(fake.url, cache_path=tmp_path / "c.sqlite"),
                  SynthConfig())
    return tmp_path / "synth"


def test_parse_rule_keeps_four_reports_the_rest():
    p = parse_trace("s1", "<think>tree and views</think>\n<predict>a?</predict><predict>  </predict>\n<predict>b</predict>")
    assert p.predictions == ["a?", "b"] and p.think == "tree and views" and p.error == "2 of 4 predictions"
    many = parse_trace("s2", "".join(f"<predict>p{i}</predict>" for i in range(6)))
    assert many.predictions == ["p0", "p1", "p2", "p3"] and many.error is None
    cut = parse_trace("s3", "<think>I was still thinking", truncated=True)
    assert cut.failed and "cut off" in cut.error and cut.think == "I was still thinking"
    assert lenient_predictions(cut) == ["I was still thinking"] and lenient_predictions(many) == many.predictions
    assert parse_utterances("s4", ["", " hi there "]).predictions == ["hi there"]
    assert parse_utterances("s5", ["", " "]).failed


def test_forced_prefix_closes_reasoning_and_drops_a_broken_prediction():
    from dialpref.next_utterance.predict import forced_prefix

    assert forced_prefix("<think>[Mining View]: more") == "<think>[Mining View]: more\n</think>\n<predict>"
    # reasoning already closed: not closed twice; a half-written prediction is cut, the forced one replaces it
    assert forced_prefix("<think>a</think>\n<predict>Hel") == "<think>a</think>\n<predict>"
    assert forced_prefix("User: hi\n") == "User: hi\n</think>\n<predict>"


def test_records_per_style_follow_the_parse_rule(synth_folder):
    rows = synth_rows(synth_folder)
    assert len(rows) == 3  # the 'broken' sample was rejected at synthesis
    full, no_tree, sim = (sft_records(rows, s) for s in ("proutt", "proutt_no_tree", "simulator"))
    assert "[User Intent Tree]" in full[0]["completion"][0]["content"]
    assert "intent tree" in full[0]["prompt"][0]["content"]
    assert "[User Intent Tree]" not in no_tree[0]["completion"][0]["content"]
    assert "intent tree" not in no_tree[0]["prompt"][0]["content"]
    assert [r["completion"][0]["content"] for r in sim] == [r["target"] for r in rows]
    # what a model learns to write is what the parser reads back
    for record, row in zip(full, rows):
        assert parse_trace("x", record["completion"][0]["content"]).predictions == row["chosen"]["trace"]["mining"][
            "predictions"] + row["chosen"]["trace"]["exploration"]["predictions"]
    pairs = dpo_records(rows, "proutt_no_tree")
    assert all(p["chosen"] != p["rejected"] for p in pairs)
    with pytest.raises(ValueError, match="SFT only"):
        dpo_records(rows, "simulator")


def test_config_is_flags_and_yaml_over_trls_own_configs(tmp_path):
    from trl import DPOConfig, SFTConfig

    from dialpref.next_utterance.config import write_yaml

    path = tmp_path / "run.yaml"
    path.write_text("data: runs/synth\nnum_train_epochs: 3\nlora_r: 4\nweight_decay: 0.2\n")
    run, args = parse_train_args("sft", ["--config", str(path), "--lora_r", "8", "--no_resume", "--max_steps", "7"])
    assert isinstance(args, SFTConfig) and (run.data, run.lora_r, run.resume) == ("runs/synth", 8, False)
    # TRL's own flags work, from the file and from the command line; dialpref's defaults fill the rest
    assert (args.num_train_epochs, args.weight_decay, args.max_steps) == (3, 0.2, 7)
    assert (args.learning_rate, args.gradient_accumulation_steps, args.completion_only_loss) == (2e-4, 4, True)
    assert args.use_cpu is False  # nothing pins the device: a GPU is used when there is one
    _, dpo = parse_train_args("dpo", ["--data", "x", "--beta", "0.3"])
    assert isinstance(dpo, DPOConfig) and (dpo.beta, dpo.learning_rate) == (0.3, 5e-5)
    write_yaml("sft", run, args, tmp_path / "again.yaml")
    again_run, again = parse_train_args("sft", ["--config", str(tmp_path / "again.yaml")])
    assert again_run == run and again.to_dict() == args.to_dict()
    with pytest.raises(ValueError, match="style"):
        NextRunConfig(data="x", style="tree")


def judge_reply(payload):
    """Scores: 9 points (0.9) for a prediction saying 'right'. Pairwise: the block holding 'right' wins; with
    'biased' in the real turn, always 'A' (pure position bias)."""
    title = payload["response_format"]["json_schema"]["schema"]["title"]
    text = payload["messages"][-1]["content"]
    if title == "JudgeScores":
        lines = text.split("[Predictions]")[1].strip().splitlines()
        return json.dumps({"scores": [9 if "right" in line else 2 for line in lines if line[:1].isdigit()]})
    if "biased" in text:
        return json.dumps({"winner": "A"})
    a, b = text.split("[System A]")[1].split("[System B]")
    return json.dumps({"winner": "A" if "right" in a else "B" if "right" in b else "tie"})


def test_judge_best_of_four_and_pairwise_flips_over_http(tmp_path):
    samples = [NextTurnSample(id=f"s{i}", dialogue_id=f"d{i}", context=[], target=t)
               for i, t in enumerate(["the right one", "biased case", "no prediction"])]
    a = {"s0": parse_trace("s0", "<predict>wrong</predict><predict>right</predict>"),
         "s1": parse_trace("s1", "<predict>right</predict>"), "s2": parse_trace("s2", "nothing parseable")}
    b = {"s0": parse_trace("s0", "<predict>wrong</predict>"), "s1": parse_trace("s1", "<predict>x</predict>"),
         "s2": parse_trace("s2", "<predict>y</predict>")}
    with FakeOpenAI(reply_for=judge_reply) as fake:
        judge = make_teacher(fake.url, cache_path=None)
        rows = ev.score_predictions(samples, a, judge=judge)
        pairs = ev.pairwise_compare(samples, a, b, judge)
        asked = len(fake.requests)
    assert [r["judge_score"] for r in rows] == [0.9, 0.9, 0.0]  # best of the predictions; failure scores 0
    assert rows[0]["judge_scores"] == [0.2, 0.9] and rows[2]["format_failure"]
    assert [p["verdict"] for p in pairs] == ["A", "tie", "B"]  # s1: 'A' both times is a flip -> tie; s2: no prediction loses
    assert pairs[1]["flipped"] and not pairs[0]["flipped"] and pairs[2]["rule"] == "format failure"
    assert asked == 2 + 4  # two judge calls (no call for the failure), two pairwise samples in both orders
    summary = figures.summarise_pairwise(pairs)
    assert (summary["win"], summary["tie"], summary["loss"], summary["flip_rate"]) == (1, 1, 1, 0.5)
    scores = figures.summarise_scores(rows)
    assert scores["format_failure_rate"] == pytest.approx(1 / 3, abs=1e-3)
    assert scores["judge_score_parsed_only"] == 0.9
    with FakeOpenAI(reply_for=judge_reply) as fake:  # the looser reading scores the failure by its text
        loose = ev.score_predictions(samples, a, judge=make_teacher(fake.url, cache_path=None), lenient=True)
    assert loose[2]["format_failure"] and loose[2]["judge_score"] == 0.2 and loose[0]["judge_score"] == 0.9


def test_agreement_and_kappa_against_a_human_csv(tmp_path):
    from dialpref.next_utterance.annotate import read_answers

    labels = tmp_path / "human.csv"
    labels.write_text("sample_id,label\ns1,A\ns2,b\ns3,A\ns4,A\ns9,tie\n")  # the older two-column form
    human = figures.human_majority(read_answers(labels))
    result = figures.agreement({"s1": "A", "s2": "B", "s3": "tie", "s4": "A"}, human)
    # p_o = 3/4; p_e = .5*.75 + .25*.25 + .25*0 = .4375; kappa = (.75 - .4375) / .5625
    assert result == {"samples": 4, "agreement": 0.75, "cohen_kappa": round(0.3125 / 0.5625, 4)}
    labels.write_text("sample_id,label\ns1,A\ns2,maybe\n")
    with pytest.raises(ValueError, match=r"human.csv:3: verdict 'maybe'"):
        read_answers(labels)


def test_embedding_similarity_is_best_of_four_and_failures_score_zero():
    samples = [NextTurnSample(id="s0", dialogue_id="d0", context=[], target="How do I reverse a list in Python?"),
               NextTurnSample(id="s1", dialogue_id="d1", context=[], target="Thanks, that works!")]
    preds = {"s0": parse_trace("s0", "<predict>What is the capital of France?</predict>"
                                     "<predict>How do I reverse a list in Python?</predict>"),
             "s1": parse_trace("s1", "garbled")}
    rows = ev.score_predictions(samples, preds, embedder=ev.EmbeddingSimilarity())
    assert rows[0]["embed_sim"] > 0.99 and rows[1]["embed_sim"] == 0.0 and rows[1]["format_failure"]
    only_france = ev.EmbeddingSimilarity().best([samples[0].target], [["What is the capital of France?"]])[0]
    assert only_france < 0.5


@pytest.mark.slow
@needs_trl
def test_train_resume_dpo_predict_and_eval_from_the_cli(tmp_path, synth_folder, monkeypatch):
    from transformers import AutoModelForCausalLM

    runner = CliRunner()
    sft = tmp_path / "sft"
    flags = ["--data", str(synth_folder), "--output_dir", str(sft), "--num_train_epochs", "1", "--gradient_accumulation_steps", "2",
             "--save_steps", "1", "--max_length", "512", "--history_chars", "600"]
    result = runner.invoke(app, ["next", "train", "sft", *flags])
    assert result.exit_code == 0, result.output
    summary = json.loads((sft / "train_summary.json").read_text())
    assert summary["records"] == 3 and summary["steps"] == 2 and (sft / "checkpoints" / "checkpoint-2").exists()
    assert AutoModelForCausalLM.from_pretrained(sft / "merged").config.model_type == "llama"
    # an interrupted run (no merged model yet) resumes from its last checkpoint instead of retraining
    import shutil

    shutil.rmtree(sft / "merged")
    (sft / "train_summary.json").unlink()
    assert runner.invoke(app, ["next", "train", "sft", *flags]).exit_code == 0
    assert json.loads((sft / "train_summary.json").read_text())["resumed_from"].endswith("checkpoint-2")

    dpo = tmp_path / "dpo"
    result = runner.invoke(app, ["next", "train", "dpo", "--data", str(synth_folder), "--model", str(sft / "merged"),
                                 "--output_dir", str(dpo), "--limit", "2", "--gradient_accumulation_steps", "2", "--num_train_epochs", "1",
                                 "--max_length", "512", "--history_chars", "600"])
    assert result.exit_code == 0, result.output
    assert json.loads((dpo / "train_summary.json").read_text())["steps"] == 1

    samples = tmp_path / "samples.jsonl"
    chats = tmp_path / "chats.jsonl"
    assert runner.invoke(app, ["next", "samples", str(chats), "--part", "all", "-o", str(samples)]).exit_code == 0
    predictions = tmp_path / "preds.jsonl"
    result = runner.invoke(app, ["next", "predict", "--samples", str(samples), "--model", str(dpo / "merged"),
                                 "--think-budget", "12", "--answer-tokens", "16", "--history-chars", "600",
                                 "-o", str(predictions)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert len(rows) == 4 and all(r["raw"] for r in rows)
    assert all(r["error"] for r in rows if not r["predictions"])  # a failure says why
    # budget forcing: 12 tokens hold no full trace, so each row was closed and made to predict
    forced = [r for r in rows if r["budget_forced"]]
    assert forced and all("</think>\n<predict>" in r["raw"] for r in forced)
    assert "format failures" in result.output

    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with FakeOpenAI(reply_for=judge_reply) as fake:
        report = tmp_path / "eval.json"
        result = runner.invoke(app, ["next", "eval", "--samples", str(samples), "--predictions", str(predictions),
                                     "--against", str(predictions), "--metrics", "embed,judge,pairwise",
                                     "--judge", fake.url, "--cache", str(tmp_path / "j.sqlite"), "-o", str(report)])
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    assert data["scores"]["samples"] == 4 and 0.0 <= data["scores"]["embed_sim"] <= 1.0
    assert data["pairwise"]["samples"] == 4
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".jsonl", ".yaml", ".sqlite"):
            assert SECRET.encode() not in path.read_bytes(), path


def test_a_judge_that_stays_out_of_range_is_counted_not_averaged():
    samples = [NextTurnSample(id="s0", dialogue_id="d0", context=[], target="hello")]
    preds = {"s0": parse_trace("s0", "<predict>hi</predict>")}
    with FakeOpenAI(reply_for=lambda payload: json.dumps({"scores": [12]})) as fake:
        rows = ev.score_predictions(samples, preds, judge=make_teacher(fake.url, cache_path=None))
        asked = len(fake.requests)
    assert asked == 3 and rows[0]["judge_score"] is None and "scores.0" in rows[0]["judge_error"]
    summary = figures.summarise_scores(rows)
    assert summary["judge_failures"] == 1 and summary["judge_score"] is None  # nothing judged: no mean, not 0


def test_predict_refuses_a_malformed_conversation_in_one_line(tmp_path):
    bad = tmp_path / "chat.json"
    bad.write_text(json.dumps([{"role": "user", "content": "hi"}, "not a message"]))
    result = CliRunner().invoke(app, ["next", "predict", "--conversation", str(bad), "--model", "smollm2-135m",
                                      "-o", str(tmp_path / "p.jsonl")], terminal_width=300)
    assert result.exit_code == 2 and "message 1 is not a {role, content} object" in " ".join(result.output.split())
    assert "Traceback" not in result.output
