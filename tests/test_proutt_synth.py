"""`dialpref synth` end to end: over real HTTP to a loopback OpenAI-compatible fake (fault injection,
concurrency, resume, secrets), through the real embedded SmolLM2, and into TRL's trainers."""

import importlib.util
import json
import re

import pytest
from typer.testing import CliRunner

from dialpref.cli import app
from dialpref.proutt.checks import CHECKS
from dialpref.proutt.run import synth_run
from dialpref.rows import read_rows_lenient
from dialpref.proutt.synthesize import SynthConfig
from dialpref.teachers.factory import make_teacher
from fake_openai import FakeOpenAI

SECRET = "sk-test-not-a-real-key-31337"
SIMILARITY = {"alpha": 0.9, "beta": 0.5, "gamma": 0.1}  # target word -> the band it lands in


def canned(payload):
    """A valid answer per stage (by schema title); scores follow the target; 'broken' breaks the insight."""
    title = payload["response_format"]["json_schema"]["schema"]["title"]
    text = " ".join(m["content"] for m in payload["messages"])
    if title == "GoldCategory":
        return json.dumps({"reasoning": "it asks", "category": "Question"})
    if title == "IntentTree":
        return json.dumps({"topics": [{"topic": "Cooking", "attributes": [{"name": "dish", "value": "pasta"}]}]})
    if title == "CategoryReasoning":
        return json.dumps({"statement": "s-reason", "question": "q-reason", "instruction": "i-reason"})
    if title == "Insight":
        if "broken" in text:
            return '{"mining": {"reasoning": "cut'
        chinese = "in Chinese" in text  # answer in the language asked for (the wrong one is rejected)
        view = {"reasoning": "r", "path": "Cooking -> sauce",
                "predictions": ["原来的第一个问题？", "原来的第二个问题？"] if chinese else ["orig one?", "orig two?"]}
        explore = {**view, "predictions": ["原来的第三个问题？", "原来的第四个问题？"] if chinese else ["orig three?", "orig four?"]}
        return json.dumps({"mining": view, "exploration": explore})
    if title == "Scores":  # the real next turn asks about sauce; the sample's negative (its first turn) does not
        real = text.split('Real next user turn:\n"""')[1].split('"""')[0]
        similarity = next((SIMILARITY[w] for w in SIMILARITY if w in real), 0.5) if "sauce" in real else 0.0
        return json.dumps({"scores": [{"reason": "r", "similarity": similarity}] + [{"reason": "r",
                                                                                          "similarity": 0.0}] * 3})
    if title == "GoldView":
        return json.dumps({"view_reasoning": "v", "view": "Mining", "path_reasoning": "p",
                           "paths": [{"source": "Cooking", "target": "sauce"}, {"source": "Cooking", "target": "salt"}]})
    if title == "NegativeRevision":
        return json.dumps({"wrong_paths": [{"source": "Cooking", "target": "cars"}, {"source": "Cooking", "target": "tax"}],
                           "thinking": "t", "revised": "wrong way", "predictions": ["neg one?", "neg two?"]})
    if title == "Revision":
        return json.dumps({"thinking": "t", "revised": "right way", "predictions": ["rev one?", "rev two?", "extra?"]})
    raise AssertionError(title)


def write_chats(path, words=("alpha", "beta", "gamma", "broken")):
    with path.open("w") as fh:
        for k, word in enumerate(words):
            turns = [("human", f"{word}: how do I cook pasta {k}?"), ("gpt", "Boil water, add salt."),
                     ("human", f"{word} what sauce goes with it?"), ("gpt", "Tomato.")]
            fh.write(json.dumps({"id": f"c{k}_0", "conversations": [{"from": f, "value": v} for f, v in turns]}) + "\n")
        fh.write("this line is not JSON\n")
        fh.write(json.dumps({"id": "short_0", "conversations": [{"from": "human", "value": "hi"},
                                                               {"from": "gpt", "value": "hello"}]}) + "\n")


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with FakeOpenAI(reply_for=canned, delay=0.02) as fake:
        yield fake


def test_synth_run_bands_rejects_resume_and_secrets(tmp_path, server):
    chats = tmp_path / "chats.jsonl"
    write_chats(chats)
    out, cache = tmp_path / "run", tmp_path / "cache.sqlite"
    teacher = make_teacher(server.url, cache_path=cache, concurrency=4)
    summary = synth_run(str(chats), out, teacher, SynthConfig(), concurrency=4)

    rows = {r["target"].split()[0]: r for r in read_rows_lenient(out / "synth.jsonl")}
    assert set(rows) == {"alpha", "beta", "gamma"}
    assert {w: rows[w]["band"] for w in rows} == {"alpha": "high", "beta": "mid", "gamma": "low"}
    # high: original > negative; mid: revised > negative; low: revised > original
    assert "orig one?" in rows["alpha"]["chosen"]["text"] and "neg one?" in rows["alpha"]["rejected"]["text"]
    assert "rev one?" in rows["beta"]["chosen"]["text"] and "neg one?" in rows["beta"]["rejected"]["text"]
    assert "rev one?" in rows["gamma"]["chosen"]["text"] and "orig one?" in rows["gamma"]["rejected"]["text"]
    assert "extra?" not in rows["gamma"]["chosen"]["text"]  # revised predictions cut to two: 2 + 2
    assert rows["gamma"]["chosen"]["text"].count("<predict>") == 4
    # the negative swaps in another category's reasoning; only the stages a band needs are called
    assert rows["alpha"]["rejected"]["trace"]["category"] != "Question"
    assert "revision" not in rows["alpha"]["stages"] and "negative" not in rows["gamma"]["stages"]
    assert set(rows["beta"]["stages"]) >= {"revision", "negative", "gold_view", "scoring"}

    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    reasons = {r.get("id"): r["reason"] for r in rejects}
    assert reasons["c3_0#2"].startswith("stage insight") and len(rejects) == 2  # plus the non-JSON line
    assert summary["samples"] == 3 and summary["rejected_samples"] == 1 and summary["skipped_short_conversations"] == 1
    assert summary["json_valid_after_retry"] < 1.0 and summary["tau_bands"] == {"high": 0.333, "mid": 0.333,
                                                                                "low": 0.333}
    assert server.max_in_flight > 1  # samples ran concurrently

    calls = len(server.requests)
    again = synth_run(str(chats), out, make_teacher(server.url, cache_path=cache), SynthConfig(), concurrency=4)
    assert len(server.requests) == calls and again["synthesized_this_run"] == 0  # resumed: nothing paid twice

    assert all(h.get("Authorization") == f"Bearer {SECRET}" for h in server.headers)
    for path in [*out.iterdir(), cache]:
        assert SECRET not in path.read_bytes().decode("utf-8", "replace"), path


def test_cli_synth_crosswoz_in_chinese_and_view(tmp_path, server, shared_data):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["synth", "run", str(shared_data / "crosswoz" / "val.json.zip"), "--teacher",
                                      server.url, "--limit", "2", "-o", str(out), "--language", "Chinese",
                                      "--cache", str(tmp_path / "c.sqlite"), "--llamafactory"])
    assert result.exit_code == 0, result.output
    assert "synth: 2/2" in result.output, result.output[-1500:]  # not a terminal: progress comes as lines
    rows = read_rows_lenient(out / "synth.jsonl")
    assert len(rows) == 2 and re.search(r"[\u4e00-\u9fff]", rows[0]["history"])
    sent = " ".join(m["content"] for p in server.requests for m in p["messages"])
    assert "in Chinese" in sent
    sft = [json.loads(line) for line in (out / "sft.jsonl").read_text(encoding="utf-8").splitlines()]
    assert "in Chinese" in sft[0]["messages"][0]["content"]
    factory = json.loads((out / "dpo_llamafactory.json").read_text(encoding="utf-8"))
    assert factory[0]["conversations"][0]["from"] == "human" and factory[0]["chosen"]["from"] == "gpt"
    view = CliRunner().invoke(app, ["synth", "view", str(out)])
    assert view.exit_code == 0, view.output
    page = (out / "view.html").read_text(encoding="utf-8")
    assert page.count("class=tree") == 2 and "chosen" in page and "rejected" in page and "Cooking" in page


@pytest.mark.slow
def test_real_smollm2_synthesis_keeps_provenance(tmp_path, smollm2):
    chats = tmp_path / "chats.jsonl"
    turns = [("human", "I want to plan a trip to Japan in April."), ("gpt", "April is cherry blossom season. "
             "Tokyo and Kyoto are popular."), ("human", "How much does a week in Kyoto cost?")]
    chats.write_text(json.dumps({"id": "trip_0", "conversations": [{"from": f, "value": v} for f, v in turns]}))
    from dialpref.teachers.cache import CachedTeacher, TeacherCache

    teacher = CachedTeacher(smollm2, TeacherCache(tmp_path / "c.sqlite"))
    summary = synth_run(str(chats), tmp_path / "run", teacher, SynthConfig(retries=1))
    rows, rejects = read_rows_lenient(tmp_path / "run" / "synth.jsonl"), read_rows_lenient(tmp_path / "run" / "rejects.jsonl")
    assert len(rows) + len(rejects) == 1  # the sample is kept or rejected with its reason, never lost
    if rows:
        stages = rows[0]["stages"]
        assert list(stages)[:4] == ["gold_category", "intent_tree", "category_reasoning", "insight"]
        assert all(s["raw_outputs"] and s["completion_tokens"] > 0 for s in stages.values())
        # the history stages after the first reuse its prompt prefix: fewer tokens evaluated than sent
        assert stages["category_reasoning"]["evaluated_prompt_tokens"] < stages["category_reasoning"]["prompt_tokens"]
        assert summary["tokens_per_sample"] > 0
    else:
        reason = rejects[0]["reason"]  # a failed stage keeps its raw answers; a degenerate sample names its check
        assert (reason.startswith("stage ") and rejects[0]["raw"]["raw_outputs"]) or \
            reason.split(":")[0].removeprefix("check ") in CHECKS


@pytest.mark.skipif(importlib.util.find_spec("trl") is None, reason="TRL not installed: pip install -e '.[next]'")
def test_trl_trainers_load_the_records_without_conversion(tmp_path, server):
    from datasets import load_dataset
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    from dialpref.proutt.causal_lm import load_causal_lm

    # real ShareGPT and CrossWOZ conversations when ../shared is there, else the local chats
    from conftest import SHARED_DATA

    out = tmp_path / "run"
    teacher = make_teacher(server.url, cache_path=tmp_path / "c.sqlite")
    if SHARED_DATA.exists():
        synth_run(str(SHARED_DATA / "sharegpt" / "sharegpt_v3_4k.jsonl.gz"), out, teacher, SynthConfig(), limit=2)
        synth_run(str(SHARED_DATA / "crosswoz" / "val.json.zip"), out, teacher, SynthConfig(language="Chinese"),
                  limit=1)
        assert len(read_rows_lenient(out / "synth.jsonl")) == 3
    else:
        chats = tmp_path / "chats.jsonl"
        write_chats(chats, words=("alpha", "beta"))
        synth_run(str(chats), out, teacher, SynthConfig())
    model, tokenizer = load_causal_lm()
    sft = load_dataset("json", data_files=str(out / "sft.jsonl"), split="train")
    dpo = load_dataset("json", data_files=str(out / "dpo.jsonl"), split="train")
    common = dict(output_dir=str(tmp_path / "t"), max_length=1024, report_to=[], use_cpu=True)
    sft_trainer = SFTTrainer(model=model, args=SFTConfig(**common), train_dataset=sft, processing_class=tokenizer)
    row = sft_trainer.train_dataset[0]
    assert len(row["input_ids"]) > 100
    # TRL's own tokenisation: the chat template's text, with the assistant turn (the trace) at its end
    decoded = tokenizer.decode(row["input_ids"])
    assert "<predict>orig" in decoded or "<predict>rev" in decoded
    dpo_trainer = DPOTrainer(model=model, args=DPOConfig(**common), train_dataset=dpo, processing_class=tokenizer)
    assert {"prompt_ids", "chosen_ids", "rejected_ids"} <= set(dpo_trainer.train_dataset.column_names)
    first = dpo_trainer.train_dataset[0]
    assert first["chosen_ids"] != first["rejected_ids"]


def test_degenerate_samples_are_rejected_with_their_check(tmp_path, monkeypatch):
    """A teacher answering English for Chinese, or a scorer rating every turn alike, gives rejects that name
    the check; the summary counts them; `--no-checks` keeps the samples."""
    def english_and_blind(payload):
        title = payload["response_format"]["json_schema"]["schema"]["title"]
        if title == "Scores":  # the same high score whatever the turn
            return json.dumps({"scores": [{"reason": "r", "similarity": 0.9}] * 4})
        return canned({**payload, "messages": [{"content": m["content"].replace("in Chinese", "in English")}
                                               for m in payload["messages"]]})

    chats = tmp_path / "chats.jsonl"
    write_chats(chats, words=("alpha", "beta"))
    with FakeOpenAI(reply_for=english_and_blind) as fake:
        teacher = make_teacher(fake.url, cache_path=None)
        chinese = synth_run(str(chats), tmp_path / "zh", teacher, SynthConfig(language="Chinese"))
        blind = synth_run(str(chats), tmp_path / "blind", teacher, SynthConfig())
        unchecked = synth_run(str(chats), tmp_path / "off", teacher, SynthConfig(checks=False))
    assert chinese["samples"] == 0 and chinese["check_rejections"] == {"wrong_language": 2}
    assert blind["samples"] == 0 and blind["check_rejections"] == {"blind_scorer": 2}
    reasons = [r["reason"] for r in read_rows_lenient(tmp_path / "blind" / "rejects.jsonl") if r.get("id")]
    assert all(r.startswith("check blind_scorer: the scorer gives another turn") for r in reasons)
    assert unchecked["samples"] == 2 and "negative_scoring" not in read_rows_lenient(
        tmp_path / "off" / "synth.jsonl")[0]["stages"]
